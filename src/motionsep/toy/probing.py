"""`motionsep probe` on a shapes-world model: rendered clips for the model's own measure, and the
world's evaluator for ground truth (motion accuracy of generations with each pathway off)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..generate import MotionPipeline, SamplingSettings
from ..models import denoiser_of
from ..probe import ProbeSettings, pathways_off, probe_batch_from_videos, probe_pipeline, settings_to_probe
from .evaluate import evaluate_video
from .metrics import share
from .protocol import world_frames, world_sampling
from .world import PRETRAIN_MOTIONS, caption, random_scene, render

# Motions whose accuracy can only come from a working temporal path: a model that moves nothing still
# draws "still" right, so it is left out of the prompts.
MOVING_MOTIONS = [m for m in PRETRAIN_MOTIONS if m != "still"]


def _scenes(n: int, seed: int):
    rng = random.Random(seed)
    return [random_scene(rng, motions=MOVING_MOTIONS) for _ in range(n)]


def evaluator_measure(pipeline: MotionPipeline, settings: ProbeSettings, sampling: SamplingSettings) -> dict[str, Any]:
    """Motion and colour accuracy of generations (prompts with moving pretraining motions) per setting."""
    scenes = _scenes(settings.generations, settings.seed)
    prompts = [caption(s) for s in scenes]
    seeds = list(range(len(prompts)))
    accuracy: dict[str, dict[str, Any]] = {}
    for name, off in tqdm(
        settings_to_probe(pipeline.family).items(), desc="probe: evaluator measure", disable=not settings.progress
    ):
        with pathways_off(denoiser_of(pipeline.pipe), pipeline.family, off):
            videos = pipeline.videos(prompts, seeds, sampling)
        read = [evaluate_video(v) for v in videos]
        accuracy[name] = {
            "motion": share([r["motion"] == s.motion for r, s in zip(read, scenes)]),
            "colour": share([r["colour"] == s.colour for r, s in zip(read, scenes)]),
        }
    full = accuracy["nothing"]["motion"]["value"]
    kept = {k: (round(v["motion"]["value"] / full, 4) if full else None) for k, v in accuracy.items()}
    return {"generations": len(prompts), "accuracy": accuracy, "kept": kept, "sampling": sampling.__dict__}


def probe_world_model(model: str, settings: ProbeSettings | None = None) -> dict[str, Any]:
    """Both measures on a shapes-world model, and whether they rank the pathways the same way."""
    settings = settings or ProbeSettings()
    pipeline = MotionPipeline.from_pretrained(model)
    scenes = _scenes(settings.clips, settings.seed + 1)
    videos = np.stack([render(s, world_frames(model)) for s in scenes])
    batch = probe_batch_from_videos(pipeline.pipe, videos, [caption(s) for s in scenes])
    report = probe_pipeline(
        pipeline.pipe,
        pipeline.family,
        batch,
        settings,
        f"{len(scenes)} rendered shapes-world clips (moving pretraining motions)",
    )
    report["evaluator_measure"] = evaluator_measure(pipeline, settings, world_sampling(model))
    report["same_ranking"] = same_ranking(
        report["model_measure"]["kept"], report["evaluator_measure"]["kept"], [p.name for p in pipeline.family.pathways]
    )
    return report


def same_ranking(model_kept: dict, evaluator_kept: dict, pathways: list[str]) -> bool:
    """Whether both measures order the pathways alike (ties in the evaluator's count allow either order)."""
    for a in pathways:
        for b in pathways:
            if model_kept[a] is None or evaluator_kept[a] is None:
                return False
            if evaluator_kept[a] < evaluator_kept[b] and not model_kept[a] < model_kept[b]:
                return False
    return True
