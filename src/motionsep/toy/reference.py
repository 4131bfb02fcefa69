"""Reference clips of a held-out motion with one appearance, plus a ready training config."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import asdict
from pathlib import Path

import yaml

from ..errors import MotionsepError, closest, refuse_nonempty
from ..video import write_mp4
from .protocol import REFERENCE_LOOK
from .world import MOTIONS, Scene, caption, random_scene, render


def reference_scenes(motion: str, count: int = 4, seed: int = 0, look: dict | None = None) -> list[Scene]:
    if motion not in MOTIONS:
        raise MotionsepError(f"unknown motion '{motion}'{closest(motion, MOTIONS)}")
    rng = random.Random(seed)
    return [random_scene(rng, motion=motion, **(look or REFERENCE_LOOK)) for _ in range(count)]


NAMED = ("shape", "colour", "background")


def many_look_scenes(motion: str, count: int = 16, seed: int = 0, vary: tuple[str, ...] = NAMED) -> list[Scene]:
    """`count` clips of `motion`, each with a look of its own in the named attributes of `vary` (none of the
    benchmark's prompt looks). With every named attribute varied, size and window are random too: what a LoRA needs
    to learn the motion apart from any look (the leakage bench's multi-look control). With fewer, the rest of the
    look is REFERENCE_LOOK: which attribute's variety frees the motion (the bench's diagnostics)."""
    from .protocol import BENCH_LOOKS
    from .world import BACKGROUNDS, COLOURS, SHAPES

    if motion not in MOTIONS:
        raise MotionsepError(f"unknown motion '{motion}'{closest(motion, MOTIONS)}")
    if not vary or not set(vary) <= set(NAMED):
        raise MotionsepError(f"vary must name some of {', '.join(NAMED)}, got {list(vary)}")
    rng = random.Random(seed)
    choices = {"shape": SHAPES, "colour": tuple(COLOURS), "background": tuple(BACKGROUNDS)}
    options = [choices[a] if a in vary else (REFERENCE_LOOK[a],) for a in NAMED]
    free = [look for look in itertools.product(*options) if look not in set(BENCH_LOOKS)]
    every = set(vary) == set(NAMED)
    pinned = {} if every else {a: REFERENCE_LOOK[a] for a in ("size", "window")}
    if every:
        if count > len(free):
            raise MotionsepError(f"{count} looks asked for; the world has {len(free)} outside the benchmark's")
        looks = rng.sample(free, count)
    else:  # few looks to choose from: each one as often as the others, in an order of the seed's
        rng.shuffle(free)
        looks = [free[i % len(free)] for i in range(count)]
    return [random_scene(rng, motion=motion, **dict(zip(NAMED, look)), **pinned) for look in looks]


def toy_config_dict(
    data: str | Path,
    output_dir: str | Path,
    *,
    model: str = "toy",
    method: str = "tap",
    steps: int = 300,
    learning_rate: float = 1e-3,
    rank: int = 16,
    batch_size: int = 4,
    targets: list[str] | None = None,
    checkpoint_every: int = 100,
    augment_copies: int = 0,
    augment: str = "recolour",
    loss: str = "standard",
    object_scale: tuple[float, float] | None = None,
    new_shapes: bool = False,
    draw_steps: int | None = None,
) -> dict:
    """The training config for shapes-world clips (the world's clip length for the model; 32x32; no LoRA dropout) as
    plain data: the demo, the benchmarks and `toy render`'s config.yaml all train with it. `draw_steps`: the sampling
    steps of new scenes (None: the world's)."""
    from .protocol import world_frames

    lora = {"rank": rank, "dropout": 0.0} | ({"targets": targets} if targets else {})
    return {
        "model": model,
        "method": method,
        "output_dir": str(output_dir),
        "data": {"path": str(data), "frames": world_frames(model), "size": [32, 32]}
        | (_augmentation(augment_copies, augment, object_scale, new_shapes, draw_steps) if augment_copies else {}),
        "lora": lora,
        "train": {
            "steps": steps,
            "learning_rate": learning_rate,
            "batch_size": batch_size,
            "checkpoint_every": checkpoint_every,
        }
        | {"loss": loss},  # explicit: a family's default loss (train.loss: auto) is not what the bench compares
    }


# Augmented copies of each of 4 reference clips: 16 clips in all, as many as the multi-look control (the bench's
# augmentation recipes, toy.recipes).
AUGMENTED_COPIES = 3


def _augmentation(
    copies: int,
    kind: str,
    object_scale: tuple[float, float] | None = None,
    new_shapes: bool = False,
    draw_steps: int | None = None,
) -> dict:
    """The data keys of appearance augmentation. The swaps read and write the world's own colour words; new scenes
    replace the reference look's background words by the world's other backgrounds, drawn as the bench samples,
    with the object scaled by `object_scale` when given, and with `new_shapes` its shape word by the world's
    other shapes (the drawn object moved along the clip's path)."""
    from .protocol import BENCH_LOOKS, TOY_SAMPLING
    from .world import BACKGROUNDS, COLOURS, SHAPES

    swaps = kind not in ("recolour", "recompose")
    words: dict = {"colour_words": {w: list(rgb) for w, rgb in COLOURS.items()}} if swaps else {}
    if kind == "new-scenes":
        words["new_scenes"] = {
            "phrase": f"on a {REFERENCE_LOOK['background']} background",
            "prompts": [f"on a {b} background" for b in BACKGROUNDS if b != REFERENCE_LOOK["background"]],
            "steps": draw_steps or TOY_SAMPLING.steps,
            "guidance": TOY_SAMPLING.guidance,
        } | ({"object_scale": list(object_scale)} if object_scale else {})
        if new_shapes:
            words["new_scenes"] |= {
                "subject": REFERENCE_LOOK["shape"],
                "subjects": list(SHAPES),
                "avoid": [list(look) for look in BENCH_LOOKS],  # as the multi-look control: none of the bench's
            }
    return {"augment_copies": copies} | ({"augment": kind} if kind != "recolour" else {}) | words


def toy_training_config(data: str | Path, output_dir: str | Path, **settings):
    from ..config import config_from_dict

    return config_from_dict(toy_config_dict(data, output_dir, **settings))


def write_reference_clips(
    out: str | Path,
    motion: str = "zigzag",
    count: int = 4,
    seed: int = 0,
    steps: int = 300,
    overwrite: bool = False,
    model: str = "toy",
    vary: tuple[str, ...] = (),
) -> Path:
    """clips/*.mp4 + same-name .txt captions, scenes.json, and config.yaml for `motionsep train`: one look
    (REFERENCE_LOOK), or a look per clip in the attributes of `vary` (`many_look_scenes`)."""
    out = Path(out)
    if not overwrite:
        refuse_nonempty(out, "choose another --out or pass --overwrite")
    clips = out / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    from .protocol import world_frames

    scenes = many_look_scenes(motion, count, seed, vary) if vary else reference_scenes(motion, count, seed)
    frames = world_frames(model)
    for i, scene in enumerate(scenes):
        write_mp4(render(scene, frames), clips / f"{motion}-{i}.mp4")
        (clips / f"{motion}-{i}.txt").write_text(caption(scene) + "\n", encoding="utf-8")
    (out / "scenes.json").write_text(json.dumps([asdict(s) for s in scenes], indent=2), encoding="utf-8")
    # absolute: `motionsep train` reads the config from any folder (a config's paths are the working folder's)
    config = toy_config_dict(clips.resolve(), (out / "lora").resolve(), model=model, steps=steps)
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
