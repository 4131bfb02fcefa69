"""Base-model quality: generate from random pretraining-world prompts, read them back, count."""

from __future__ import annotations

import random
import time
from collections import defaultdict

from tqdm.auto import tqdm

from ..generate import MotionPipeline, SamplingSettings
from .evaluate import evaluate_video
from .metrics import share
from .world import PRETRAIN_MOTIONS, caption, random_scene

# Sampling settings used for every shapes-world measurement (chosen on the base model, see README).
TOY_SAMPLING = SamplingSettings(num_frames=8, height=32, width=32, steps=25, guidance=6.0)


def base_model_quality(model: str = "toy", n: int = 200, seed: int = 0, batch: int = 25, progress: bool = True) -> dict:
    rng = random.Random(seed)
    scenes = [random_scene(rng, motions=PRETRAIN_MOTIONS) for _ in range(n)]
    prompts = [caption(s) for s in scenes]
    pipeline = MotionPipeline.from_pretrained(model)
    started = time.time()
    hits = defaultdict(list)
    rates = defaultdict(list)
    for i in tqdm(range(0, n, batch), desc="base-model quality", disable=not progress):
        videos = pipeline.videos(prompts[i : i + batch], list(range(i, min(n, i + batch))), TOY_SAMPLING)
        for scene, video in zip(scenes[i : i + batch], videos):
            predicted = evaluate_video(video)
            for key in ("shape", "colour", "background", "motion"):
                hits[key].append(predicted[key] == getattr(scene, key))
            rates["large"].append(predicted["size"] == "large")
            rates["window"].append(predicted["window"] == "window")
    return {
        "generations": n,
        "accuracy": {k: share(v) for k, v in hits.items()},
        "unnamed_rates": {k: share(v) for k, v in rates.items()},
        "sampling": TOY_SAMPLING.__dict__,
        "seconds": round(time.time() - started, 1),
    }
