"""The shapes-world measurement protocol in one place: how videos are sampled, what the reference
clips look like, and which looks the prompts ask for. The demo, the leakage benchmark, the base-model
quality check and the probe all read it from here."""

from __future__ import annotations

from dataclasses import replace

from ..errors import MotionsepError
from ..generate import SamplingSettings
from .world import FRAMES

# Sampling settings used for every shapes-world measurement (chosen on the base model, see README).
TOY_SAMPLING = SamplingSettings(num_frames=FRAMES, height=32, width=32, steps=25, guidance=6.0)
# A Wan-family model's clips are 1 + 4k frames (its causal VAE); the world renders 9 for it.
WAN_WORLD_FRAMES = 9


def world_frames(model: str) -> int:
    """Frames of the world's clips for `model`: what its model card says it was trained on ("clip_frames"), else
    8, or 9 for a model whose VAE encodes 1 + 4k frames."""
    from ..models import family_of_model, model_card

    try:
        family = family_of_model(model)
    except MotionsepError:
        return FRAMES  # not a model motionsep reads here: the loader will say why, where it matters
    recorded = model_card(model).get("clip_frames")
    if recorded is not None:
        return int(recorded)
    return FRAMES if family.encodes_frames_alone() else WAN_WORLD_FRAMES


def world_sampling(model: str) -> SamplingSettings:
    """TOY_SAMPLING with the frames `model` takes."""
    return replace(TOY_SAMPLING, num_frames=world_frames(model))


# The reference clips' look: every attribute fixed, named or not, so leakage of each can be read.
REFERENCE_LOOK = {"shape": "square", "colour": "red", "background": "checker", "size": "large", "window": "window"}

# Prompt looks (shape, colour, background), each differing from REFERENCE_LOOK in every named attribute.
DEMO_LOOKS = (
    ("circle", "blue", "plain"),
    ("triangle", "green", "stripes"),
    ("cross", "yellow", "dots"),
    ("circle", "purple", "stripes"),
)
# The benchmark's: the demo's four and four more.
BENCH_LOOKS = (
    *DEMO_LOOKS,
    ("triangle", "yellow", "plain"),
    ("cross", "blue", "stripes"),
    ("circle", "green", "dots"),
    ("triangle", "purple", "dots"),
)
