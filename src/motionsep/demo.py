"""`motionsep demo`: the main job on the embedded shapes-world model, measured.

Render reference clips of a held-out motion with one look, train a motion LoRA, generate the
motion with prompts that differ from the references in every attribute, and score the result with
the shapes world's evaluator: motion accuracy, appearance accuracy and leakage (named attributes
against the prompt; unnamed ones as the rise over the base model for the same prompts and seeds).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .errors import refuse_nonempty
from .generate import MotionPipeline
from .toy.evaluate import evaluate_video
from .toy.metrics import score
from .toy.quality import TOY_SAMPLING
from .toy.reference import REFERENCE_LOOK, toy_training_config, write_reference_clips
from .toy.world import Scene, caption, render
from .train import train
from .video import contact_sheet, write_gif, write_mp4

# Every one differs from REFERENCE_LOOK (red square on checker) in shape, colour and background.
DEMO_LOOKS = (
    ("circle", "blue", "plain"),
    ("triangle", "green", "stripes"),
    ("cross", "yellow", "dots"),
    ("circle", "purple", "stripes"),
)


def demo_prompts(motion: str) -> list[Scene]:
    return [Scene(shape, colour, background, motion) for shape, colour, background in DEMO_LOOKS]


def _generate(pipeline: MotionPipeline, prompts: list[str], seeds: list[int], desc: str, progress: bool, steps: int) -> np.ndarray:
    settings = replace(TOY_SAMPLING, steps=steps)
    videos = []
    for prompt in tqdm(prompts, desc=desc, disable=not progress):
        videos.append(pipeline.videos([prompt] * len(seeds), seeds, settings))
    return np.concatenate(videos)


def run_demo(
    out: str | Path,
    motion: str = "zigzag",
    method: str = "tap",
    model: str = "toy",
    steps: int = 300,
    seeds: tuple[int, ...] = (0, 1),
    overwrite: bool = False,
    progress: bool = True,
    sampling_steps: int = TOY_SAMPLING.steps,
) -> dict:
    out = Path(out)
    if not overwrite:
        refuse_nonempty(out, "choose another --out or pass --overwrite")
    started = time.time()
    config_path = write_reference_clips(out / "reference", motion, count=4, steps=steps, overwrite=overwrite)
    config = toy_training_config(out / "reference" / "clips", out / "lora", model=model, method=method, steps=steps)
    lora = train(config, overwrite=overwrite, progress=progress)
    scenes = demo_prompts(motion)
    prompts = [caption(s) for s in scenes]
    with_lora = _generate(MotionPipeline.from_pretrained(model, lora=str(lora)), prompts, list(seeds), "generate", progress, sampling_steps)
    base = _generate(MotionPipeline.from_pretrained(model), prompts, list(seeds), "base model", progress, sampling_steps)
    videos_dir = out / "videos"
    videos_dir.mkdir(exist_ok=True)
    records, rows = [], [("reference: " + (out / "reference" / "clips").name, render(_reference_scene(config_path)))]
    predictions, base_predictions, prompt_scenes = [], [], []
    for i, (scene, prompt) in enumerate((s, p) for s, p in zip(scenes, prompts) for _ in seeds):
        seed = seeds[i % len(seeds)]
        stem = videos_dir / f"{i:02d}-{scene.shape}-{scene.colour}-{scene.background}-seed{seed}"
        write_mp4(with_lora[i], stem.with_suffix(".mp4"))
        write_gif(with_lora[i], stem.with_suffix(".gif"))
        predicted = evaluate_video(with_lora[i])
        predictions.append(predicted)
        base_predictions.append(evaluate_video(base[i]))
        prompt_scenes.append(scene)
        records.append({"prompt": prompt, "seed": seed, "mp4": str(stem.with_suffix(".mp4")), "predicted": {k: v for k, v in predicted.items() if k != "trajectory"}})
        rows.append((f"{prompt} (seed {seed})", with_lora[i]))
    sheet = contact_sheet(rows, out / "contact_sheet.png", cell=96)
    reference = {**REFERENCE_LOOK, "motion": motion}
    metrics = {
        "motion": motion,
        "method": method,
        "reference": reference,
        **score(predictions, prompt_scenes, reference, base_predictions),
        "videos": records,
        "seconds": round(time.time() - started, 1),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return {**metrics, "lora": str(lora), "contact_sheet": str(sheet), "metrics": str(out / "metrics.json"), "videos_dir": str(videos_dir)}


def _reference_scene(config_path: Path) -> Scene:
    first = json.loads((config_path.parent / "scenes.json").read_text())[0]
    first["start"] = tuple(first["start"])
    return Scene(**first)

