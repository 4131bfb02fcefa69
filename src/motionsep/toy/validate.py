"""Evaluator check: accuracy per attribute on fresh renders covering every value and motion."""

from __future__ import annotations

import random
from collections import defaultdict

from .evaluate import evaluate_video, trajectory, trajectory_error
from .world import MOTIONS, offsets, random_scene, render


def validate_evaluator(per_motion: int = 20, seed: int = 12345) -> dict:
    rng = random.Random(seed)
    hits: dict[str, int] = defaultdict(int)
    total = 0
    worst_trajectory = 0.0
    for motion in MOTIONS:
        for _ in range(per_motion):
            scene = random_scene(rng, motion=motion)
            video = render(scene)
            predicted = evaluate_video(video)
            for key, value in scene.attributes().items():
                hits[key] += predicted[key] == value
            expected = offsets(motion) + scene.start
            worst_trajectory = max(worst_trajectory, trajectory_error(trajectory(video), expected))
            total += 1
    return {
        "renders": total,
        "accuracy": {k: round(v / total, 4) for k, v in hits.items()},
        "worst_trajectory_error_px": round(worst_trajectory, 3),
    }
