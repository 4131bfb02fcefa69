"""Reference clips and their captions."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
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
    """The clips of `config.path`, each `frames` long: from its first frame, or with `align_phase` from where its
    motion matches the first clip's (`phase_starts`)."""
    size = (config.size[0], config.size[1])
    paths = find_clips(config.path)
    captions = [caption_for(path, config.caption) for path in paths]
    if not config.align_phase:
        clips = [Clip(p, read_video(p, config.frames, config.stride, size), c) for p, c in zip(paths, captions)]
        warn_if_out_of_phase(clips)
        return clips
    whole = [read_video(p, None, config.stride, size) for p in paths]
    for path, video in zip(paths, whole):
        if len(video) < config.frames:
            raise MotionsepError(
                f"clip '{path}' has {len(video)} frames at stride {config.stride}; need {config.frames}"
            )
    starts = phase_starts(whole, config.frames)
    return [Clip(p, v[s : s + config.frames], c) for p, v, s, c in zip(paths, whole, starts, captions)]


MOTION_PX = 0.2  # mean flow (pixels a frame) below which a pixel counts as still


def motion_signal(frames: np.ndarray) -> np.ndarray:
    """The clip's motion as one vector a frame transition: the mean optical flow (Farneback) of the pixels that
    move, (frames - 1, 2). The phase of a cyclic motion is where this signal is in its cycle."""
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    out = []
    for a, b in zip(gray, gray[1:]):
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 9, 3, 5, 1.1, 0)  # type: ignore[call-overload]
        moving = np.linalg.norm(flow, axis=-1) > MOTION_PX
        out.append(flow[moving].mean(axis=0) if moving.any() else np.zeros(2))
    return np.asarray(out, np.float64)


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two motion signals taken whole: 1 when they move alike frame by frame."""
    return float((a * b).sum() / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-9))


def phase_starts(videos: list[np.ndarray], frames: int) -> list[int]:
    """For each video, the first frame of the window of `frames` whose motion best matches the first video's
    first window (the first video starts at 0)."""
    reference = motion_signal(videos[0][:frames])
    starts = [0]
    for video in videos[1:]:
        signal = motion_signal(video)
        scores = [_agreement(signal[s : s + frames - 1], reference) for s in range(len(video) - frames + 1)]
        starts.append(int(np.argmax(scores)))
    return starts


def warn_if_out_of_phase(clips: list[Clip], threshold: float = 0.3) -> None:
    """Clips of one motion whose motions disagree frame by frame (a cyclic motion filmed from different points)
    teach the LoRA no motion at all: say so, and how to fix it."""
    if len(clips) < 2:
        return
    signals = [motion_signal(c.frames) for c in clips]
    if min(float(np.linalg.norm(s)) for s in signals) < MOTION_PX:
        return  # a still clip: nothing to compare
    agreement = float(np.mean([_agreement(s, signals[0]) for s in signals[1:]]))
    if agreement < threshold:
        warnings.warn(
            f"the clips' motions are out of step (agreement {agreement:.2f} with the first clip; 1 is in step): a "
            "cyclic motion filmed from different points teaches no motion; set data.align_phase: true (with clips "
            "longer than data.frames) or cut the clips to start at the same point of the motion",
            stacklevel=2,
        )


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
