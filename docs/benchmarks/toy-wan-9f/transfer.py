"""Does a zigzag LoRA trained on toy-wan move the object in a zigzag for the reference look, and for looks
that differ in one named attribute? Reads the LoRAs of the budget runs (steps-1000*/), writes transfer.json.

Run from the repository root after `motionsep bench leakage --model toy-wan --motion zigzag ...` has written
them: python docs/benchmarks/toy-wan-9f/transfer.py
"""

import json
import platform
import time
from pathlib import Path

import torch

from motionsep.generate import MotionPipeline
from motionsep.toy.evaluate import evaluate_video
from motionsep.toy.protocol import world_sampling

HERE = Path(__file__).parent
SEEDS = list(range(6))
PROMPTS = {
    "reference look": "a red square moving in a zigzag on a checker background",
    "colour changed": "a blue square moving in a zigzag on a checker background",
    "shape changed": "a red circle moving in a zigzag on a checker background",
    "background changed": "a red square moving in a zigzag on a plain background",
    "all three changed": "a blue circle moving in a zigzag on a plain background",
}
started = time.time()
sampling = world_sampling("toy-wan")
rows = {}
for run in sorted(HERE.glob("steps-1000*")):
    for lora in sorted((run / "leakage-work" / "zigzag" / "loras").iterdir()):
        pipeline = MotionPipeline.from_pretrained("toy-wan", lora=str(lora))
        rows[f"{run.name}/{lora.name}"] = {
            look: sum(evaluate_video(v).get("motion") == "zigzag" for v in pipeline.videos([p] * 6, SEEDS, sampling))
            for look, p in PROMPTS.items()
        }
report = {
    "what": "zigzag generations out of 6 seeds per prompt, toy-wan with each zigzag LoRA",
    "command": "python docs/benchmarks/toy-wan-9f/transfer.py",
    "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
    "date": time.strftime("%Y-%m-%d"),
    "seconds": round(time.time() - started, 1),
    "prompts": PROMPTS,
    "zigzag_out_of_6": rows,
}
(HERE / "transfer.json").write_text(json.dumps(report, indent=2) + "\n")
for name, row in rows.items():
    print(f"{name:45s}", "  ".join(f"{look}: {n}/6" for look, n in row.items()))
