"""Reference clips and their captions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import DataConfig
from .errors import MotionsepError
from .video import VIDEO_EXTENSIONS, read_video


@dataclass
class Clip:
    path: Path
    frames: np.ndarray  # (frames, height, width, 3) uint8
    caption: str


def find_clips(path: str | Path) -> list[Path]:
    """One video file, or every video file directly inside a folder (sorted, so runs are repeatable)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise MotionsepError(f"data path '{path}' does not exist: give a video file or a folder of clips")
    clips = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if not clips:
        raise MotionsepError(
            f"folder '{path}' holds no videos ({', '.join(VIDEO_EXTENSIONS)}): add clips or fix data.path"
        )
    return clips


def caption_for(clip: Path, caption: str | None) -> str:
    """The configured caption, else the text of a same-name .txt beside the clip."""
    if caption is not None:
        return caption
    txt = clip.with_suffix(".txt")
    if not txt.is_file():
        raise MotionsepError(f"no caption for '{clip}': set data.caption or write {txt.name} beside the clip")
    text = txt.read_text(encoding="utf-8").strip()
    if not text:
        raise MotionsepError(f"caption file '{txt}' is empty: write the clip's caption in it")
    return text


def load_clips(config: DataConfig) -> list[Clip]:
    size = (config.size[0], config.size[1])
    clips = []
    for path in find_clips(config.path):
        caption = caption_for(path, config.caption)
        frames = read_video(path, num_frames=config.frames, stride=config.stride, size=size)
        clips.append(Clip(path, frames, caption))
    return clips


def recolour(frames: np.ndarray, rng: np.random.Generator, jitter: float) -> np.ndarray:
    """The clip with one random colour map applied to every pixel of every frame: hue turned about the grey axis,
    then saturation, contrast and brightness scaled. Pixels that were equal stay equal, so what moves where is
    unchanged; only the look is. uint8 in, uint8 out."""
    angle = rng.uniform(-1, 1) * jitter * np.pi
    saturation, contrast, brightness = (1 + rng.uniform(-0.5, 0.5, size=3) * jitter).tolist()
    axis = np.ones(3) / np.sqrt(3)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    turn = np.cos(angle) * np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * np.outer(axis, axis)
    x = frames.astype(np.float32) / 255 @ turn.T.astype(np.float32)
    grey = x.mean(axis=-1, keepdims=True)
    x = grey + saturation * (x - grey)
    x = 0.5 + contrast * (x - 0.5)
    return (np.clip(x * brightness, 0, 1) * 255).round().astype(np.uint8)


def augmented(clips: list[Clip], copies: int, jitter: float, seed: int) -> list[Clip]:
    """`copies` recoloured copies of every clip (same caption), a function of the seed: appearance augmentation."""
    rng = np.random.default_rng(seed)
    return [Clip(c.path, recolour(c.frames, rng, jitter), c.caption) for c in clips for _ in range(copies)]
