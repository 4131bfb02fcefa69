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
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .config import config_from_dict
from .errors import MotionsepError, closest, refuse_nonempty
from .generate import MotionPipeline
from .methods import METHODS
from .toy.evaluate import evaluate_video
from .toy.metrics import score
from .toy.protocol import DEMO_LOOKS, REFERENCE_LOOK, TOY_SAMPLING, world_frames, world_sampling
from .toy.recipes import NEW_LOOKS, RECIPES, Recipe
from .toy.reference import write_reference_clips
from .toy.world import Scene, caption, render
from .train import train
from .video import contact_sheet, write_gif, write_mp4

# The embedded model the demo runs on: the one where TAP has a lever. On `toy` (ModelScope family) the motion
# lives in the temporal convolutions and tap learns none of the held-out motions (docs/benchmarks/leakage.md);
# on `toy-animatediff` the motion modules' attention carries all of it (docs/probe-toy-animatediff.json).
DEMO_MODEL = "toy-animatediff"


def demo_prompts(motion: str) -> list[Scene]:
    return [Scene(shape, colour, background, motion) for shape, colour, background in DEMO_LOOKS]


def _generate(
    pipeline: MotionPipeline, prompts: list[str], seeds: list[int], desc: str, progress: bool, settings
) -> np.ndarray:
    videos = []
    for prompt in tqdm(prompts, desc=desc, disable=not progress):
        videos.append(pipeline.videos([prompt] * len(seeds), seeds, settings))
    return np.concatenate(videos)


# What the demo compares by default: the paper's method against the strongest baseline of the benchmark; on a
# DiT the best one-look recipe the Wan-world bench measured (docs/benchmarks/toy-wan, toy.recipes.NEW_LOOKS)
# against the LoRA on every layer that its trainers train.
DEMO_METHODS = ("tap", "motiondirector")
DIT_DEMO_METHODS = (NEW_LOOKS, "full-lora")


def demo_methods(model: str) -> tuple[str, ...]:
    from .models import has_highway

    return DEMO_METHODS if has_highway(model) else DIT_DEMO_METHODS


def demo_recipe(method: str) -> Recipe:
    """A demo method: a recipe of the lab's table (toy.recipes.RECIPES: the leakage bench's rows, e.g. the
    augmented ones) or a preset, trained on the demo's four reference clips."""
    if method not in RECIPES and method not in METHODS:
        raise MotionsepError(f"unknown method '{method}'{closest(method, [*METHODS, *RECIPES])}")
    recipe = RECIPES.get(method) or Recipe(method)
    if recipe.vary or recipe.clips != 4:
        raise MotionsepError(
            f"demo method '{method}' trains on other clips than the demo's four reference clips: run it with "
            "`motionsep bench leakage` instead"
        )
    return recipe


def _sheet(out: Path, motion: str, model: str, reference, jobs: list, videos: dict) -> Path:
    """The contact sheet: the reference clip, then the methods side by side for each prompt and seed."""
    look = f"{REFERENCE_LOOK['colour']} {REFERENCE_LOOK['shape']} on {REFERENCE_LOOK['background']}"
    rows = [(f"reference ({motion}, {look})", reference)]
    for i, (_, prompt, seed) in enumerate(jobs):
        rows += [(f"{method}: {prompt} (seed {seed})", videos[method][i]) for method in videos]
    return contact_sheet(rows, out / "contact_sheet.png", cell=96)


def run_demo(
    out: str | Path,
    motion: str = "zigzag",
    methods: tuple[str, ...] | None = None,  # None: demo_methods(model)
    model: str = DEMO_MODEL,
    steps: int = 300,
    seeds: tuple[int, ...] = (0, 1),
    overwrite: bool = False,
    progress: bool = True,
    sampling_steps: int = TOY_SAMPLING.steps,
) -> dict:
    """Train one LoRA per method on the same reference clips, generate the same prompts and seeds, score each."""
    out = Path(out)
    if not overwrite:
        refuse_nonempty(out, "choose another --out or pass --overwrite")
    started = time.time()
    methods = methods or demo_methods(model)
    recipes = {method: demo_recipe(method) for method in methods}  # a wrong name stops here, before any work
    config_path = write_reference_clips(
        out / "reference", motion, count=4, steps=steps, overwrite=overwrite, model=model
    )
    scenes = demo_prompts(motion)
    prompts = [caption(s) for s in scenes]
    jobs = [(scene, prompt, seed) for scene, prompt in zip(scenes, prompts) for seed in seeds]
    sampling = replace(world_sampling(model), steps=sampling_steps)
    base = _generate(MotionPipeline.from_pretrained(model), prompts, list(seeds), "base model", progress, sampling)
    base_predictions = [evaluate_video(v) for v in base]
    reference = {**REFERENCE_LOOK, "motion": motion}
    results, videos = {}, {}
    for method in methods:
        clips = out / "reference" / "clips"
        train_one = recipes[method].config_dict(clips, out / f"lora-{method}", model, steps=steps)
        lora = train(config_from_dict(train_one), overwrite=overwrite, progress=progress)
        method_started = time.time()
        pipeline = MotionPipeline.from_pretrained(model, lora=str(lora))
        videos[method] = _generate(pipeline, prompts, list(seeds), f"generate ({method})", progress, sampling)
        folder = out / "videos" / method
        written = _write_method_videos(folder, method, jobs, videos[method], reference, base_predictions)
        results[method] = {**written, "lora": str(lora), "generation_seconds": round(time.time() - method_started, 1)}
    sheet = _sheet(out, motion, model, render(_reference_scene(config_path), world_frames(model)), jobs, videos)
    metrics: dict[str, Any] = {"motion": motion, "model": model, "methods": results, "reference": reference}
    metrics["seconds"] = round(time.time() - started, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return {
        **metrics,
        "contact_sheet": str(sheet),
        "metrics": str(out / "metrics.json"),
        "videos_dir": str(out / "videos"),
    }


def _write_method_videos(
    folder: Path, method: str, jobs, videos: np.ndarray, reference: dict, base_predictions: list
) -> dict:
    """An MP4 and a GIF per generation, and the evaluator's scores of them."""
    folder.mkdir(parents=True, exist_ok=True)
    records, predictions = [], []
    for i, (scene, prompt, seed) in enumerate(jobs):
        stem = folder / f"{i:02d}-{scene.shape}-{scene.colour}-{scene.background}-seed{seed}"
        write_mp4(videos[i], stem.with_suffix(".mp4"))
        write_gif(videos[i], stem.with_suffix(".gif"))
        predicted = evaluate_video(videos[i])
        predictions.append(predicted)
        records.append(
            {
                "prompt": prompt,
                "seed": seed,
                "mp4": str(stem.with_suffix(".mp4")),
                "predicted": {k: v for k, v in predicted.items() if k != "trajectory"},
            }
        )
    return {
        "method": method,
        **score(predictions, [job[0] for job in jobs], reference, base_predictions),
        "videos": records,
    }


def _reference_scene(config_path: Path) -> Scene:
    first = json.loads((config_path.parent / "scenes.json").read_text())[0]
    first["start"] = tuple(first["start"])
    return Scene(**first)


def format_demo(r: dict) -> str:
    """The demo's summary for the terminal: one column per method."""
    methods = list(r["methods"])
    first = r["methods"][methods[0]]

    def row(label: str, cell) -> str:
        return f"  {label:<24}" + "".join(f"{cell(r['methods'][m]):>18}" for m in methods)

    lines = [
        f"\ndemo: learned '{r['motion']}' on {r['model']} in {r['seconds']} s "
        f"({first['generations']} generations per method, prompts unlike the reference in every named attribute)",
        f"  {'':<24}" + "".join(f"{m:>18}" for m in methods),
        row("motion accuracy", lambda x: f"{x['motion_accuracy']['value']:.0%}"),
        row("trajectory error", lambda x: f"{x['trajectory_error']['value']:.2f} px"),
        row("appearance accuracy", lambda x: f"{x['appearance_accuracy']['all']['value']:.0%}"),
    ]
    for a in ("shape", "colour", "background"):
        lines.append(row(f"leakage: {a}", lambda x, a=a: f"{x['leakage'][a]['value']:.0%}"))
    for a in ("size", "window"):
        lines.append(row(f"leakage: {a} (rise)", lambda x, a=a: f"{x['leakage'][a]['rise']['value']:+.0%}"))
    lines += [
        f"  motion LoRAs           {', '.join(r['methods'][m]['lora'] for m in methods)}",
        f"  videos (MP4 + GIF)     {r['videos_dir']}",
        f"  contact sheet          {r['contact_sheet']}  (the reference, then the methods side by side per prompt)",
        f"  metrics                {r['metrics']}",
    ]
    return "\n".join(lines)
