"""`motionsep demo`: the whole job end to end on a model that needs no download.

Until the embedded shapes-world model ships, the base model is a tiny random-weight pipeline of
the real diffusers classes: the demo checks an installation (data, training, LoRA files, highway,
PLI, export) in about a minute on a CPU; its videos are noise, not a quality result.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .config import config_from_dict
from .errors import MotionsepError
from .generate import MotionPipeline, SamplingSettings, generate_videos
from .tiny import save_tiny_pipeline
from .train import train
from .video import contact_sheet, read_video, write_mp4


def reference_clip(frames: int = 12, size: int = 16) -> np.ndarray:
    """A red square crossing a dark frame left to right."""
    video = np.full((frames, size, size, 3), 30, np.uint8)
    for i in range(frames):
        x = round(i * (size - 5) / (frames - 1))
        video[i, 5:10, x : x + 5] = (220, 60, 40)
    return video


def run_demo(out: str | Path, method: str = "tap", family: str = "modelscope", steps: int = 30, overwrite: bool = False) -> dict:
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise MotionsepError(f"'{out}' already holds files: choose another --out or pass --overwrite")
    started = time.time()
    model = save_tiny_pipeline(out / "base-model", family)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    write_mp4(reference_clip(), out / "clips" / "square-right.mp4")
    config = config_from_dict(
        {
            "model": str(model),
            "method": method,
            "output_dir": str(out / "lora"),
            "data": {"path": str(out / "clips"), "caption": "a red square moving right", "frames": 8, "size": [16, 16]},
            "lora": {"rank": 8},
            "pli_tau": 333,
            "train": {"steps": steps, "checkpoint_every": 0, "learning_rate": 5e-4},
        }
    )
    lora = train(config, overwrite=overwrite)
    pipeline = MotionPipeline.from_pretrained(str(model), lora=str(lora))
    prompts = ["a blue circle moving right", "a green triangle moving right"]
    records = generate_videos(pipeline, prompts, [0], out / "videos", SamplingSettings(steps=10), overwrite=overwrite)
    rows = [("reference", read_video(out / "clips" / "square-right.mp4"))]
    rows += [(r["prompt"], read_video(r["mp4"])) for r in records]
    sheet = contact_sheet(rows, out / "contact_sheet.png")
    return {"lora": str(lora), "videos": [r["mp4"] for r in records], "contact_sheet": str(sheet), "seconds": round(time.time() - started, 1)}
