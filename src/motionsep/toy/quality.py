"""Base-model quality: generate from random pretraining-world prompts, read them back, count."""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict

from tqdm.auto import tqdm

from ..generate import MotionPipeline
from .evaluate import evaluate_video, frames_as_prompted
from .metrics import NAMED, share
from .protocol import world_sampling
from .world import PRETRAIN_MOTIONS, caption, random_scene


def base_model_quality(model: str = "toy", n: int = 200, seed: int = 0, batch: int = 25, progress: bool = True) -> dict:
    rng = random.Random(seed)
    scenes = [random_scene(rng, motions=PRETRAIN_MOTIONS) for _ in range(n)]
    prompts = [caption(s) for s in scenes]
    pipeline = MotionPipeline.from_pretrained(model)
    sampling = world_sampling(model)
    started = time.time()
    hits = defaultdict(list)
    rates = defaultdict(list)
    # What the misses are: drawn value per asked value, and shape accuracy per unnamed size
    # (small objects are the ones a 4x VAE blurs).
    confusion: dict[str, defaultdict[str, Counter]] = {key: defaultdict(Counter) for key in NAMED}
    shape_by_size = defaultdict(list)
    per_frame = defaultdict(list)  # the object as asked, in the first frame and in the later ones
    for i in tqdm(range(0, n, batch), desc="base-model quality", disable=not progress):
        videos = pipeline.videos(prompts[i : i + batch], list(range(i, min(n, i + batch))), sampling)
        for scene, video in zip(scenes[i : i + batch], videos):
            predicted = evaluate_video(video)
            for key in (*NAMED, "motion"):
                hits[key].append(predicted[key] == getattr(scene, key))
            for key, table in confusion.items():
                table[getattr(scene, key)][predicted[key]] += 1
            shape_by_size[predicted["size"]].append(predicted["shape"] == scene.shape)
            rates["large"].append(predicted["size"] == "large")
            rates["window"].append(predicted["window"] == "window")
            shown = frames_as_prompted(video, scene.shape, scene.colour)
            per_frame["first"].append(bool(shown[0]))
            per_frame["later"] += shown[1:].tolist()
    return {
        "generations": n,
        "accuracy": {k: share(v) for k, v in hits.items()},
        "unnamed_rates": {k: share(v) for k, v in rates.items()},
        "confusion": {key: {asked: dict(drawn) for asked, drawn in sorted(t.items())} for key, t in confusion.items()},
        "shape_accuracy_by_drawn_size": {size: share(v) for size, v in sorted(shape_by_size.items())},
        "object_as_prompted_by_frame": {k: share(v) for k, v in per_frame.items()},
        "sampling": sampling.__dict__,
        "seconds": round(time.time() - started, 1),
    }
