"""The foreign-clips check of `bench leakage`: does training carry a motion the world never made?

The clips come from a renderer of their own, not the shapes world's: a disc of a colour outside the world's
palette on a vertical gradient (a background the world has not), moving along a figure-eight (a motion outside
the world's list) at the world's speeds, captioned without a motion word ("an orange disc on a gradient"). Each
method trains on them through the same config `motionsep train` reads; the base model and the LoRA then generate
the bench's prompts (the world's looks, "moving in a zigzag" replaced by no motion word). A tracker that is not
the world's evaluator reads the generated motion: OpenCV point tracks (`tracks.point_tracks`), their mean
displacement from the first frame, compared with the reference's by the mean distance in pixels. The LoRA carries
the motion when its distance is below the base model's for the same prompts and seeds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..stats import mean_ci
from ..tracks import moving_tracks, point_tracks
from ..video import write_mp4
from .report import FOREIGN_SHEET

SIZE = 32
COLOUR = (250, 140, 20)  # orange: none of the world's five
COLOUR_WORD, SUBJECT, SCENE_PHRASE = "orange", "disc", "on a gradient"
CAPTION = f"an {COLOUR_WORD} {SUBJECT} {SCENE_PHRASE}"
# the prompts' looks (colour, shape, background): the world's, none of them the clips'
PROMPT_LOOKS = (
    ("blue", "circle", "plain"),
    ("green", "triangle", "stripes"),
    ("yellow", "cross", "dots"),
    ("purple", "circle", "stripes"),
)
PROMPTS = tuple(f"a {colour} {shape} on a {background} background" for colour, shape, background in PROMPT_LOOKS)


def figure_eight(frames: int, phase: float = 0.0) -> np.ndarray:
    """The disc's offset from its start per frame, (frames, 2): one figure-eight (a lemniscate, 7 px wide and 4 px
    high, about the world's 1-2 px a frame) over the clip, from `phase` of the loop."""
    a = 2 * math.pi * (np.arange(frames) / frames + phase)
    path = np.stack([7 * np.sin(a), 4 * np.sin(2 * a)], axis=1)
    return path - path[0]


def render_foreign(frames: int, start: tuple[float, float], radius: float = 5.0) -> np.ndarray:
    """uint8 (frames, SIZE, SIZE, 3): the orange disc on a blue-grey vertical gradient, along the figure-eight."""
    y, x = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    gradient = np.stack([40 + 2.0 * y, 60 + 2.5 * y, 90 + 3.0 * y], axis=-1)
    out = np.empty((frames, SIZE, SIZE, 3), np.uint8)
    for i, (dx, dy) in enumerate(figure_eight(frames)):
        disc = (x - start[0] - dx) ** 2 + (y - start[1] - dy) ** 2 <= radius**2
        out[i] = np.where(disc[..., None], np.array(COLOUR, np.float64), gradient).astype(np.uint8)
    return out


def write_foreign_clips(folder: Path, frames: int, count: int = 4) -> Path:
    """`count` clips in `folder`/clips with same-name captions, each from its own start, all from the same point
    of the loop; returns the clips folder."""
    clips = folder / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        start = (16 + rng.uniform(-2, 2), 16 + rng.uniform(-2, 2))
        write_mp4(render_foreign(frames, start), clips / f"eight-{i}.mp4")
        (clips / f"eight-{i}.txt").write_text(CAPTION + "\n", encoding="utf-8")
    return clips


def tracked_path(video: np.ndarray) -> np.ndarray:
    """The motion a point tracker reads in a video: the mean offset from the first frame of its moving tracks
    (zeros when nothing moves), (frames, 2)."""
    tracks = moving_tracks(point_tracks(video))
    if len(tracks) == 0:
        return np.zeros((len(video), 2))
    return (tracks - tracks[:, :1]).mean(axis=0)


def path_errors(videos: np.ndarray, reference: np.ndarray) -> list[float]:
    """Per video, the mean distance in pixels between its tracked path and the reference path."""
    return [float(np.linalg.norm(tracked_path(v) - reference, axis=-1).mean()) for v in videos]


def foreign_row(base_errors: list[float], lora_errors: list[float]) -> dict:
    """The report's row: both distances, their paired difference (negative: the LoRA is closer) and whether the
    difference's 95% interval lies below zero."""
    difference = mean_ci([a - b for a, b in zip(lora_errors, base_errors)])
    return {
        "base_error": mean_ci(base_errors),
        "lora_error": mean_ci(lora_errors),
        "difference": difference,
        "carries_motion": bool(difference["ci95"][1] < 0),
    }


def for_foreign_captions(config: dict) -> dict:
    """A recipe's config with its augmentation's words made for the foreign captions, as a user with these clips
    would write them: the clips' colour named among the colours the copies swap in, their scene phrase ("on a
    gradient") replaced by the world's backgrounds, their object word ("disc") by the world's shapes, and the
    prompts' looks kept out of the copies."""
    from ..toy.world import BACKGROUNDS

    data = config["data"]
    if "colour_words" in data:
        data["colour_words"] = {COLOUR_WORD: list(COLOUR)} | data["colour_words"]
    scenes = data.get("new_scenes")
    if scenes:
        scenes["phrase"] = SCENE_PHRASE
        scenes["prompts"] = [f"on a {b} background" for b in BACKGROUNDS]
        if scenes.get("subject"):
            scenes["subject"] = SUBJECT
            scenes["avoid"] = [list(look) for look in PROMPT_LOOKS]
    return config


def read_rows(folder: Path) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def run_foreign(work: Path, settings, recipes: dict, progress: bool) -> dict[str, dict]:
    """Train each of `settings.foreign` (names in `recipes`) on the foreign clips with the bench's budget and
    score it against the base model; every piece saved as it is done (a resume reuses it)."""
    from dataclasses import replace

    from ..config import config_from_dict
    from ..generate import MotionPipeline
    from ..toy.protocol import world_frames, world_sampling
    from ..train import train
    from .report import write_json

    folder = work / "foreign"
    frames = world_frames(settings.model)
    clips = folder / "clips" if (folder / "clips").is_dir() else write_foreign_clips(folder, frames)
    reference = figure_eight(frames)
    prompts = [p for p in PROMPTS for _ in settings.seeds]
    seeds = [s for _ in PROMPTS for s in settings.seeds]
    sampling = replace(world_sampling(settings.model), steps=settings.sampling_steps, guidance=settings.guidance)
    base_file = folder / "base_errors.json"
    if not base_file.is_file():
        videos = MotionPipeline.from_pretrained(settings.model).videos(prompts, seeds, sampling)
        _keep_first(folder, "base", videos)
        write_json(base_file, path_errors(videos, reference))
    base = json.loads(base_file.read_text())
    rows = {}
    for name in settings.foreign:
        done = folder / "scored" / f"{name}.json"
        if not done.is_file():
            recipe = recipes[name]
            config = recipe.config_dict(clips, folder / "loras" / name, settings.model, **settings.budget())
            lora = train(config_from_dict(for_foreign_captions(config)), resume=True, progress=progress)
            videos = MotionPipeline.from_pretrained(settings.model, lora=str(lora)).videos(prompts, seeds, sampling)
            _keep_first(folder, name, videos)
            done.parent.mkdir(parents=True, exist_ok=True)
            write_json(done, foreign_row(base, path_errors(videos, reference)))
        rows[name] = json.loads(done.read_text())
    _sheet(folder, clips, rows, work.parent / FOREIGN_SHEET)
    return rows


def _keep_first(folder: Path, name: str, videos: np.ndarray) -> None:
    """The first prompt's first seed, for the contact sheet (a resumed run draws it from here)."""
    (folder / "first").mkdir(parents=True, exist_ok=True)
    np.save(folder / "first" / f"{name}.npy", videos[0])


def _sheet(folder: Path, clips: Path, rows: dict, path: Path) -> None:
    """The first reference clip, then the base model and each LoRA for the first prompt and seed."""
    from ..video import contact_sheet, read_video

    kept = [(name, folder / "first" / f"{name}.npy") for name in ("base", *rows)]
    shown = [(f"{'base model' if n == 'base' else n}: {PROMPTS[0]}", np.load(f)) for n, f in kept if f.is_file()]
    contact_sheet([(f"reference: {CAPTION}", read_video(sorted(clips.glob("*.mp4"))[0])), *shown], path, cell=72)
