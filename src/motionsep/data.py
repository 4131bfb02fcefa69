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
