"""Reference clips and their captions."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .config import DataConfig, NewScenes
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
    move, (frames - 1, 2), in the clip's pixels. The phase of a cyclic motion is where this signal is in its
    cycle. Small frames are enlarged first (shorter side at least 128): on 32-pixel frames Farneback's flow of
    clips in step agreed by as little as 0.06 (spiral), enlarged by 0.85 or more."""
    scale = max(1, 128 // min(frames.shape[1:3]))
    gray = [
        cv2.cvtColor(cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC), cv2.COLOR_RGB2GRAY)
        for f in frames
    ]
    out = []
    for a, b in zip(gray, gray[1:]):
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.1, 0) / scale  # type: ignore[call-overload,unused-ignore]
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


# A pixel is foreground where it differs from the clip's static background (its per-pixel median over time) by
# more than this, on 0-255 in any channel: well above video-codec noise, well below an object's contrast.
FOREGROUND_DIFFERENCE = 24


def _solid(mask: np.ndarray) -> np.ndarray:
    """The mask without specks and threads: its connected parts at least 2 pixels wide and tall."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = (stats[:, cv2.CC_STAT_WIDTH] >= 2) & (stats[:, cv2.CC_STAT_HEIGHT] >= 2) & (np.arange(count) > 0)
    return keep[labels]


def split_layers(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The clip's static background (one frame: the per-pixel median over time), its moving foreground mask
    (frames, height, width) without specks and threads, and every pixel that differs from the background (the
    threads too); None where the split fails: a clip in which nothing
    moves or more than half of each frame does (a moving camera), which `recompose` then recolours whole. Where
    an object covers a pixel in most frames the median is the object's colour there: such a split is rough, and
    only the moving parts change look."""
    background = np.median(frames, axis=0).astype(np.uint8)
    raw = np.abs(frames.astype(np.int16) - background).max(axis=-1) > FOREGROUND_DIFFERENCE
    mask = np.stack([_solid(m) for m in raw])
    share = mask.mean(axis=(1, 2))
    if share.max() == 0 or share.mean() > 0.5:
        return None
    return background, mask, raw


def _new_background(background: np.ndarray, rng: np.random.Generator, jitter: float) -> np.ndarray:
    """A background unlike the clip's, as a function of `rng`: its own one recoloured, a plain colour, or a smooth
    two-colour texture (static, so it adds no motion)."""
    height, width = background.shape[:2]
    kind = rng.integers(3)
    if kind == 0:
        return recolour(background[None], rng, jitter)[0]
    colours = rng.uniform(40, 200, size=(2, 3)).astype(np.float32)
    if kind == 1:
        return np.broadcast_to(colours[0], background.shape).round().astype(np.uint8)
    coarse = rng.uniform(0, 1, size=(max(2, height // 8), max(2, width // 8))).astype(np.float32)
    weight = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)[..., None]
    return (colours[0] * (1 - weight) + colours[1] * weight).round().astype(np.uint8)


def _reshape(frames: np.ndarray, mask: np.ndarray, grow: int) -> tuple[np.ndarray, np.ndarray]:
    """The foreground grown (grow > 0) or shrunk (grow < 0) by `grow` pixels all round: a new size and outline,
    the same centre, so the same motion. Grown pixels take the largest foreground value near them."""
    if grow == 0:
        return frames, mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(grow) + 1, 2 * abs(grow) + 1))
    operation = cv2.dilate if grow > 0 else cv2.erode
    new_mask = np.stack([operation(m.astype(np.uint8), kernel) for m in mask]).astype(bool)
    if grow < 0:
        return frames, new_mask
    grown = np.stack([cv2.dilate(np.ascontiguousarray(f * m[..., None]), kernel) for f, m in zip(frames, mask)])
    return np.where(mask[..., None], frames, grown), new_mask


def recompose(frames: np.ndarray, rng: np.random.Generator, jitter: float) -> np.ndarray:
    """The clip split into its static background and moving foreground (`split_layers`), each given a look of its
    own: the foreground recoloured and grown or shrunk by up to two pixels, the background recoloured apart from it
    or replaced (`_new_background`). Every foreground pixel stays where it moved, so the motion is the clip's; a
    clip that does not split is recoloured whole. uint8 in, uint8 out."""
    layers = split_layers(frames)
    if layers is None:
        return recolour(frames, rng, jitter)
    background, mask, raw = layers
    foreground, new_mask = _reshape(recolour(frames, rng, jitter), mask, int(rng.integers(-1, 3)))
    # moving threads (a progress bar, a thin edge) keep their own pixels
    near = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    thin = raw & ~np.stack([cv2.dilate(m.astype(np.uint8), near) for m in mask]).astype(bool)
    out = np.where(thin[..., None], frames, _new_background(background, rng, jitter)[None])
    return np.where(new_mask[..., None], foreground, out).astype(np.uint8)


# The basic colour terms of English (Berlin and Kay) at typical sRGB values: what `swap_colours` may turn a
# caption's colour into unless data.colour_words names the colours a model knows.
BASIC_COLOURS = {
    "red": (220, 30, 30),
    "orange": (245, 140, 20),
    "yellow": (235, 215, 30),
    "green": (40, 180, 50),
    "blue": (40, 80, 230),
    "purple": (150, 50, 200),
    "pink": (240, 130, 180),
    "brown": (130, 80, 40),
    "black": (20, 20, 20),
    "white": (240, 240, 240),
    "grey": (128, 128, 128),
}


def _colour_map(source: np.ndarray, target: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The map of RGB (0-1) that turns `source` into `target` exactly and moves every other colour alike: the
    chroma (the part off the grey axis) turned about the grey axis and scaled, the brightness shifted."""
    axis = np.ones(3) / np.sqrt(3)
    chroma = [c - c.mean() for c in (source, target)]
    lengths = [float(np.linalg.norm(c)) for c in chroma]
    turn, scale = np.eye(3), 1.0
    if min(lengths) > 1e-3:  # a grey has no hue to turn: brightness alone then
        u, v = chroma[0] / lengths[0], chroma[1] / lengths[1]
        angle = np.arctan2(float(np.dot(np.cross(u, v), axis)), float(np.dot(u, v)))
        cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        turn = np.cos(angle) * np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * np.outer(axis, axis)
        scale = lengths[1] / lengths[0]
    shift = float(target.mean() - source.mean())

    def apply(x: np.ndarray) -> np.ndarray:
        grey = x.mean(axis=-1, keepdims=True)
        return grey + shift + scale * ((x - grey) @ turn.T)

    return apply


# How far (RGB distance, 0-255 scale) a pixel's colour may be from the caption's named colour and still be turned
# with it: the named object's shading and its edges blended by the codec, not the world around it (in the shapes
# world every background colour lies 105 or more from every object colour).
SWAP_REACH = 90.0


def _named_colour(
    clip: Clip, rng: np.random.Generator, words: Mapping[str, Sequence[int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, np.ndarray] | None:
    """What a colour swap needs: the clip's pixels (0-1), the named colour's colour map applied to them, each
    pixel's closeness to the named colour (full at the colour, none at SWAP_REACH), the caption with the new
    colour word and the new colour (0-1); None when the caption names none of `words` or the clip does not show
    the colour it names."""
    tokens = re.split(r"(\W+)", clip.caption)
    named = [t.lower() for t in tokens if t.lower() in words]
    if not named:
        return None
    table = {w: np.array(rgb, np.float64) / 255 for w, rgb in words.items()}
    source, target = named[0], str(rng.choice([w for w in words if w != named[0]]))
    x = clip.frames.astype(np.float64) / 255
    weight = _closeness(x, table[source])
    if not (weight > 0.5).any():  # the named colour is nowhere in the clip: renaming it would make a false caption
        return None
    caption = "".join(target if t.lower() == source else t for t in tokens)
    return x, _colour_map(table[source], table[target])(x), weight, caption, table[target]


def _closeness(x: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Each pixel's closeness to `colour` (both 0-1): 1 at the colour, 0 at SWAP_REACH and beyond; a trailing axis
    of one, to weigh pixels by."""
    return np.clip(1 - np.linalg.norm(x - colour, axis=-1, keepdims=True) * 255 / SWAP_REACH, 0, 1)


def _centre(weight: np.ndarray) -> tuple[float, float] | None:
    """(x, y) of the middle of a frame's object (where `weight`, height x width, is over a half); None if none."""
    ys, xs = np.nonzero(weight > 0.5)
    return (float(xs.mean()), float(ys.mean())) if len(ys) else None


def _as_uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


def swap_colours(clip: Clip, rng: np.random.Generator, words: Mapping[str, Sequence[int]]) -> Clip | None:
    """A copy of the clip in which the first colour its caption names is another of `words`, in the pixels and
    the caption alike, so the caption stays true. Only pixels near the named colour change: by the colour map that
    takes it exactly to the new one (`_colour_map`), weighted by closeness (full at the colour, none at
    SWAP_REACH), so the rest of the scene keeps its look and equal pixels stay equal (the motion is the clip's).
    A global map would turn the background's hues along with the object's (measured: the LoRA then flooded
    every scene with the new colour). None when the caption names none of `words` or the clip does not show the
    colour it names."""
    found = _named_colour(clip, rng, words)
    if found is None:
        return None
    x, moved, weight, caption, _ = found
    return Clip(clip.path, _as_uint8(x + weight * (moved - x)), caption)


def swap_scene(clip: Clip, rng: np.random.Generator, words: Mapping[str, Sequence[int]], jitter: float) -> Clip | None:
    """`swap_colours`, and every pixel away from the named colour (the scene: background, props) recoloured by one
    random map of its own (`recolour`). The scene's patterns and shading stay, so words naming them ("stripes",
    "a street") stay true, while their colours vary from copy to copy as the object's do; a caption naming the
    scene's colour ("on a blue wall") would turn false. None where `swap_colours` gives None."""
    found = _named_colour(clip, rng, words)
    if found is None:
        return None
    _, moved, weight, caption, _ = found
    scene = recolour(clip.frames, rng, jitter).astype(np.float64) / 255
    return Clip(clip.path, _as_uint8(scene + weight * (moved - scene)), caption)


def _without_object(video: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """A drawn video with its object painted over from the scene around it, frame by frame (OpenCV's inpainting: a
    drawn object often stands still, so no frame shows what is behind it). The object: the pixels near `colour`
    (0-1), every solid part that moves (`split_layers`: a drawn object is not always of one colour, and its other
    parts, left in, were learned as a second object), and two pixels around them. uint8 in, 0-1 out."""
    near = _closeness(video.astype(np.float64) / 255, colour)[..., 0] > 0
    layers = split_layers(video)
    if layers is not None:
        near |= layers[1]
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    out = [
        cv2.inpaint(np.ascontiguousarray(frame), cv2.dilate(mask.astype(np.uint8), grow), 3, cv2.INPAINT_TELEA)
        for frame, mask in zip(video, near)
    ]
    return np.stack(out).astype(np.float64) / 255


def new_scene(
    clip: Clip,
    rng: np.random.Generator,
    words: Mapping[str, Sequence[int]],
    scenes: NewScenes,
    draw: Callable[[str, int], np.ndarray],
) -> Clip | None:
    """`swap_colours` over a scene the base model draws: the caption's colour swapped and its scene phrase replaced by
    another of `scenes.prompts`; `draw(caption, seed)` makes that video, its object is taken out (`_without_object`),
    and the clip's object, in its new colour, is painted over it where it moved. With `scenes.subject` the caption
    names another object too, and the one the model draws for it moves along the clip object's path instead
    (`_drawn_cut`, `_on_path`). Every caption word stays true, and the scene (and object) is one the model itself
    draws for those words. None where `swap_colours` gives None or the caption lacks the scene phrase."""
    look = _new_look(clip, rng, words, scenes)
    if look is None:
        return None
    (_, moved, weight, caption, colour), subject, told = look
    for _ in range(DRAW_TRIES):  # a drawing with fragments or the object in other colours leaves them in the scene
        drawn = draw(told, int(rng.integers(2**31)))
        cut = _drawn_cut(drawn, colour, weight)
        if cut is not None:
            break
    scene = _without_object(drawn, colour)
    if subject and cut is not None:  # else the clip's own object, and the caption keeps its word
        (moved, weight), caption = _on_path(*cut, weight), told
    low, high = scenes.object_scale
    if (low, high) != (1.0, 1.0):  # drawn only when asked: earlier configs keep their copies
        moved, weight = _scaled_object(moved, weight, float(rng.uniform(low, high)))
    return Clip(clip.path, _as_uint8(scene + weight * (moved - scene)), caption)


# How often the base model draws a copy's caption (new seeds) until the drawing shows its object whole
# (`_drawn_whole`); the last drawing serves otherwise.
DRAW_TRIES = 3
# How often a copy's look is drawn again when it is one of `NewScenes.avoid` before the copy falls back to the
# clip's scene (swapped colours alone).
LOOK_TRIES = 20


def _new_look(
    clip: Clip, rng: np.random.Generator, words: Mapping[str, Sequence[int]], scenes: NewScenes
) -> tuple[tuple, str | None, str] | None:
    """A new scene's look for a copy: `_named_colour`'s swap with the caption's scene phrase replaced, the new
    subject where one is asked for (`_other_subject`) and the caption to draw (it names that subject). Drawn again
    while its caption holds every word of one of `scenes.avoid`; None where that never ends, or the caption lacks
    the scene phrase, or the swap gives None."""
    for _ in range(LOOK_TRIES):
        found = _named_colour(clip, rng, words)
        if found is None or scenes.phrase not in found[3]:
            return None
        other = str(rng.choice([p for p in scenes.prompts if p != scenes.phrase]))
        found = (*found[:3], found[3].replace(scenes.phrase, other), found[4])
        subject = _other_subject(found[3], rng, scenes)
        told = _subject_word(scenes.subject).sub(subject, found[3]) if subject else found[3]
        said = set(re.findall(r"\w+", told.lower()))
        if not any({w.lower() for w in look} <= said for look in scenes.avoid):
            return found, subject, told
    return None


def _subject_word(subject: str) -> re.Pattern[str]:
    return re.compile(rf"\b{re.escape(subject)}\b")


def _other_subject(caption: str, rng: np.random.Generator, scenes: NewScenes) -> str | None:
    """One of `scenes.subjects` for a copy whose caption names `scenes.subject`; None where none is asked for (the
    rng untouched then, so earlier configs keep their copies) or the caption does not name it."""
    if not scenes.subject or not _subject_word(scenes.subject).search(caption):
        return None
    return str(rng.choice([s for s in scenes.subjects if s != scenes.subject]))


def _scaled_object(pixels: np.ndarray, weight: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The object's pixels and weight (frames, h, w, c and frames, h, w, 1) scaled by `scale` about the object's
    centre in each frame (where weight > 0.5), so its path is the clip's at another size."""
    pixels, weight = pixels.copy(), weight.copy()
    for f in range(len(pixels)):
        centre = _centre(weight[f, ..., 0])
        if centre is None:
            continue
        warp = cv2.getRotationMatrix2D(centre, 0.0, scale)
        size = (pixels.shape[2], pixels.shape[1])
        pixels[f] = cv2.warpAffine(pixels[f], warp, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        weight[f, ..., 0] = cv2.warpAffine(weight[f, ..., 0], warp, size, flags=cv2.INTER_LINEAR)
    return pixels, weight


def _drawn_cut(drawn: np.ndarray, colour: np.ndarray, path: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The object a drawn video shows (its pixels near `colour`, 0-1), cut from the frame where its area is the
    median of the frames that show it (a whole object, not one leaving the frame): that frame's pixels (0-1) and the
    object's weight in it (height x width); None where the drawing does not show it whole (`_drawn_whole`, against
    the clip object's area: `path`, its weight, frames x height x width x 1)."""
    x = drawn.astype(np.float64) / 255
    closeness = _closeness(x, colour)
    areas = (closeness[..., 0] > 0.5).sum(axis=(1, 2))
    shown = np.flatnonzero(areas)
    if len(shown) == 0:
        return None
    cut = int(shown[np.argsort(areas[shown], kind="stable")[len(shown) // 2]])
    if not _drawn_whole(closeness[..., 0] > 0.5, cut, float(np.median((path[..., 0] > 0.5).sum(axis=(1, 2))))):
        return None
    return x[cut], np.ascontiguousarray(closeness[cut, ..., 0])


def _on_path(sprite: np.ndarray, sprite_weight: np.ndarray, path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A cut object (`_drawn_cut`) put in every frame where the clip's object is (`path`), centre on centre: a new
    object on the clip's path, so the motion is the clip's. Pixels (0-1) and weight as `_named_colour` gives them."""
    start = _centre(sprite_weight)
    assert start is not None  # the cut frame shows the object
    pixels, weight = np.repeat(sprite[None], len(path), axis=0), np.zeros_like(path)
    size = (sprite.shape[1], sprite.shape[0])
    for f in range(len(path)):
        centre = _centre(path[f, ..., 0])
        if centre is None:  # the clip's object is out of sight: so is the new one
            continue
        shift = np.array([[1.0, 0.0, centre[0] - start[0]], [0.0, 1.0, centre[1] - start[1]]])
        pixels[f] = cv2.warpAffine(sprite, shift, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        weight[f, ..., 0] = cv2.warpAffine(sprite_weight, shift, size, flags=cv2.INTER_LINEAR)
    return pixels, weight


def _drawn_whole(shown: np.ndarray, cut: int, clip_area: float) -> bool:
    """Whether a drawing shows the object it was asked for (`shown`: its pixels of the asked colour, frame by
    frame): in at least half the frames, and in the `cut` frame as one solid piece of 0.5-2x the clip object's
    area. A model that draws a colour badly leaves fragments, or the object in other colours: moved as the new
    object, such a cut teaches the LoRA broken objects (measured: shapes drawn right fell from 75% to 21%)."""
    if (shown.sum(axis=(1, 2)) > 0).mean() < 0.5:
        return False
    pieces = cv2.connectedComponents(_solid(shown[cut]).astype(np.uint8), connectivity=8)[0] - 1
    return pieces == 1 and 0.5 * clip_area <= shown[cut].sum() <= 2 * clip_area


def augmented(
    clips: list[Clip],
    copies: int,
    jitter: float,
    seed: int,
    kind: str = "recolour",
    colour_words: Mapping[str, Sequence[int]] | None = None,
    scenes: NewScenes | None = None,
    draw: Callable[[str, int], np.ndarray] | None = None,
) -> list[Clip]:
    """`copies` augmented copies of every clip, a function of the seed: appearance augmentation by `kind`, one of
    config.AUGMENTATIONS. `recolour` and `recompose` keep the caption; `swap-colours`, `swap-scene` and `new-scenes`
    change the caption's colour words with the pixels (`swap_colours`, `swap_scene`, `new_scene`, which also needs
    `scenes` and a `draw` of the base model, and swaps colours alone where the caption lacks the scene phrase), and
    recolour a clip whose caption names no colour of `colour_words`."""
    rng = np.random.default_rng(seed)
    words = colour_words or BASIC_COLOURS
    out = []
    for clip in clips:
        for _ in range(copies):
            swapped = None
            if kind == "swap-colours":
                swapped = swap_colours(clip, rng, words)
            elif kind == "swap-scene":
                swapped = swap_scene(clip, rng, words, jitter)
            elif kind == "new-scenes" and scenes is not None and draw is not None:
                swapped = new_scene(clip, rng, words, scenes, draw) or swap_colours(clip, rng, words)
            if swapped is not None:
                out.append(swapped)
                continue
            change = recompose if kind == "recompose" else recolour
            out.append(Clip(clip.path, change(clip.frames, rng, jitter), clip.caption))
    return out
