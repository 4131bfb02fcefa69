"""The shapes world: one object on a patterned background, moving, every attribute known.

A clip is fully described by a :class:`Scene`; :func:`render` draws it deterministically. Captions
name shape, colour, background and motion, in varied phrasings; two more attributes, the object's
size and a small static "window" patch, vary across clips but are never named. A model trained on
this world draws them at its own prior rates, which is what appearance leakage is measured on.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, replace

import numpy as np

SIZE = 32  # frame side in pixels
FRAMES = 8

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {  # saturated colours, far from every background colour and from the white window
    "red": (225, 35, 35),
    "green": (40, 200, 50),
    "blue": (40, 80, 235),
    "yellow": (235, 215, 30),
    "purple": (165, 50, 215),
}
BACKGROUNDS = {  # pattern and its two colours, all dull, so objects stand out
    "plain": ((95, 95, 95), (95, 95, 95)),
    "stripes": ((20, 60, 70), (70, 110, 110)),
    "checker": ((90, 60, 30), (140, 105, 60)),
    "dots": ((25, 25, 60), (120, 120, 150)),
}
SPEEDS = {"slowly": 1.0, "quickly": 2.0}  # pixels per frame
DIRECTIONS = {  # name -> unit step (x right, y down)
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
    "up and left": (-0.7071, -0.7071),
    "up and right": (0.7071, -0.7071),
    "down and left": (-0.7071, 0.7071),
    "down and right": (0.7071, 0.7071),
}
PRETRAIN_MOTIONS = ["still"] + [f"{d} {s}" for d in DIRECTIONS for s in SPEEDS]
HELD_OUT_MOTIONS = ("zigzag", "orbit", "bounce", "spiral")
MOTIONS = tuple(PRETRAIN_MOTIONS) + HELD_OUT_MOTIONS
SIZES = {"small": 5.0, "large": 7.0}  # unnamed: object radius in pixels
WINDOWS = ("none", "window")  # unnamed: a white 6x6 patch with a cross bar in the top-left corner
WINDOW_BOX = (2, 2, 8, 8)  # x0, y0, x1, y1
UNNAMED = {"size": tuple(SIZES), "window": WINDOWS}
START_JITTER = 2.0  # px around the centred path
# A progress bar along the bottom pixel row, filled up to (frame + 1) / frames of the width, as a video
# player draws one. UNet3DConditionModel's temporal attention has no position embedding, so the model
# can tell frame order only through the temporal convolutions' zero padding; in a world whose clips are
# as likely forwards as backwards ("left" is "right" played backwards) nothing made it learn that, and a
# model without an arrow of time cannot tell "left" from "right" (measured at 7,000 steps: reversing the
# initial noise reversed the video, and every direction word gave the same video for a seed). The bar is
# the same in every clip, so it names no attribute and cannot leak; objects never reach its row.
TIMELINE_ROW = SIZE - 1
TIMELINE_COLOUR = (245, 245, 245)


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    background: str
    motion: str
    size: str = "small"
    window: str = "none"
    start: tuple[float, float] = (16.0, 16.0)  # object centre in the first frame
    phase: float = 0.0  # background pattern offset, so backgrounds are not pixel-identical

    def attributes(self) -> dict[str, str]:
        d = asdict(self)
        return {k: d[k] for k in ("shape", "colour", "background", "motion", "size", "window")}


def frame_rate(frames: int) -> int:
    """Frames a clip of `frames` shows per step of the world's motions: 1 up to 16 frames; a clip of 1 + 8r frames
    (r >= 2) shows the 9-frame clip's motion at r times the frame rate, as real video models sample a motion
    densely (Wan: 81 frames at 16 fps). A DiT whose causal VAE pairs frames then sees each latent frame hold one
    position instead of a double exposure of two."""
    return (frames - 1) // 8 if frames >= 17 else 1


def offsets(motion: str, frames: int = FRAMES) -> np.ndarray:
    """The object's displacement from its start, per frame: (frames, 2) as (dx, dy)."""
    rate = frame_rate(frames)
    t = np.arange(frames, dtype=np.float64) / rate
    span = (frames - 1) / rate + 1  # the clip's length in steps of the motion, for the cyclic motions
    if motion == "still":
        return np.zeros((frames, 2))
    if motion in PRETRAIN_MOTIONS:
        direction, speed = motion.rsplit(" ", 1)
        ux, uy = DIRECTIONS[direction]
        return np.stack([ux * SPEEDS[speed] * t, uy * SPEEDS[speed] * t], axis=1)
    if motion == "zigzag":  # right, with y switching between two rows every two frames
        return np.stack([1.5 * t, np.where((t // 2) % 2 == 0, -3.0, 3.0) + 3.0], axis=1)
    if motion == "orbit":  # a full circle of radius 6 round a point left of the start
        a = 2 * math.pi * t / span
        return np.stack([6 * (np.cos(a) - 1), -6 * np.sin(a)], axis=1)
    if motion == "bounce":  # up and down twice, drifting right
        return np.stack([1.0 * t, -9 * np.abs(np.sin(math.pi * t / 4))], axis=1)
    if motion == "spiral":  # a growing circle
        a = 2 * math.pi * t / span * 1.25
        r = 1.0 + 0.8 * t
        return np.stack([r * np.cos(a) - 1.0, r * np.sin(a)], axis=1)
    raise ValueError(f"unknown motion '{motion}'")


def _background(name: str, phase: float) -> np.ndarray:
    a, b = (np.array(c, np.float32) for c in BACKGROUNDS[name])
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    p = int(phase * 8)
    if name == "plain":
        mask = np.zeros((SIZE, SIZE), bool)
    elif name == "stripes":
        mask = ((y + p) // 4) % 2 == 0
    elif name == "checker":
        mask = (((x + p) // 4) + ((y + p) // 4)) % 2 == 0
    else:  # dots
        mask = (((x + p) % 6) < 2) & (((y + p) % 6) < 2)
    return np.where(mask[..., None], b, a)


def _shape_mask(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    dx, dy = x - cx, y - cy
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "square":
        s = r * 0.85
        return (np.abs(dx) <= s) & (np.abs(dy) <= s)
    if shape == "triangle":  # pointing up
        h = r * 1.1
        inside_y = (dy >= -h) & (dy <= h * 0.8)
        half_width = (dy + h) / (1.8 * h) * r * 1.1
        return inside_y & (np.abs(dx) <= half_width)
    if shape == "cross":
        w = r * 0.38
        return ((np.abs(dx) <= w) & (np.abs(dy) <= r)) | ((np.abs(dy) <= w) & (np.abs(dx) <= r))
    raise ValueError(f"unknown shape '{shape}'")


def render(scene: Scene, frames: int = FRAMES) -> np.ndarray:
    """uint8 frames (frames, SIZE, SIZE, 3); the same scene always gives the same pixels."""
    background = _background(scene.background, scene.phase)
    if scene.window == "window":
        x0, y0, x1, y1 = WINDOW_BOX
        background[y0:y1, x0:x1] = 245
        background[y0:y1, (x0 + x1) // 2] = 150  # window bars
        background[(y0 + y1) // 2, x0:x1] = 150
    colour = np.array(COLOURS[scene.colour], np.float32)
    out = np.empty((frames, SIZE, SIZE, 3), np.uint8)
    for i, (dx, dy) in enumerate(offsets(scene.motion, frames)):
        mask = _shape_mask(scene.shape, scene.start[0] + dx, scene.start[1] + dy, SIZES[scene.size])
        out[i] = np.where(mask[..., None], colour, background).astype(np.uint8)
        out[i, TIMELINE_ROW, : timeline_length(i, frames)] = TIMELINE_COLOUR
    return out


def timeline_length(frame: int, frames: int) -> int:
    """Pixels of the progress bar filled in `frame` of a clip of `frames`."""
    return round(SIZE * (frame + 1) / frames)


def _fits(scene: Scene, frames: int = FRAMES, margin: float = 1.0) -> bool:
    r = SIZES[scene.size]
    pts = offsets(scene.motion, frames) + np.array(scene.start)
    return bool(np.all(pts - r >= margin) and np.all(pts + r <= SIZE - margin))


def random_scene(rng: random.Random, motions=PRETRAIN_MOTIONS, **fixed) -> Scene:
    """A random scene whose object stays inside the frame; `fixed` pins attributes."""
    for _ in range(1000):
        scene = Scene(
            shape=fixed.get("shape", rng.choice(SHAPES)),
            colour=fixed.get("colour", rng.choice(list(COLOURS))),
            background=fixed.get("background", rng.choice(list(BACKGROUNDS))),
            motion=fixed.get("motion", rng.choice(list(motions))),
            size=fixed.get("size", rng.choice(list(SIZES))),
            window=fixed.get("window", rng.choice(WINDOWS)),
            phase=rng.random(),
        )
        r = SIZES[scene.size]
        pts = offsets(scene.motion)
        lo = np.ceil(r + 1 - pts.min(axis=0))
        hi = np.floor(SIZE - r - 1 - pts.max(axis=0))
        if np.all(lo <= hi):
            # The path is centred in the frame, give or take START_JITTER px. With a start anywhere, the
            # best guess of a video from its caption alone is a smear over the frame whatever the
            # direction, and a model trained on it took its motion from the noise (2-5% motion accuracy
            # over 6,000 steps); the advice is to shrink the world rather than lower the bar.
            centre = SIZE / 2 - (pts.min(axis=0) + pts.max(axis=0)) / 2
            start = np.clip(centre + np.array([rng.uniform(-START_JITTER, START_JITTER) for _ in range(2)]), lo, hi)
            scene = replace(scene, start=(float(start[0]), float(start[1])))
            if _fits(scene):
                return scene
    raise ValueError(f"no start position fits {fixed}")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(scene: Scene, rng: random.Random | None = None) -> str:
    """A caption naming shape, colour, background and motion; phrasing varies when `rng` is given."""
    motion = (
        "standing still"
        if scene.motion == "still"
        else (
            f"moving {scene.motion}"
            if scene.motion in PRETRAIN_MOTIONS
            else f"moving in {_article(scene.motion)} {scene.motion}"
        )
    )
    subject = f"{_article(scene.colour)} {scene.colour} {scene.shape}"
    background = f"on a {scene.background} background"
    if rng is None:
        return f"{subject} {motion} {background}"
    templates = (
        "{s} {m} {b}",
        "{s} {b} {m}",
        "{b}, {s} {m}",
        "{s} {m}",  # background left out now and then: it must be read, not assumed
        "a video of {s} {m} {b}",
    )
    template = rng.choices(templates, weights=(4, 3, 2, 1, 1))[0]
    return template.format(s=subject, m=motion, b=background)


def vocabulary() -> tuple[str, ...]:
    """Every word a caption can contain, for the tokenizer's whole-word merges."""
    words = {"a", "an", "video", "of", "on", "background", "moving", "in", "standing", "still", "and"}
    words |= set(SHAPES) | set(COLOURS) | set(BACKGROUNDS) | set(SPEEDS) | set(HELD_OUT_MOTIONS)
    for d in DIRECTIONS:
        words |= set(d.split())
    return tuple(sorted(words))
