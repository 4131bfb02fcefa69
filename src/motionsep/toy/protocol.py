"""The shapes-world measurement protocol in one place: how videos are sampled, what the reference
clips look like, and which looks the prompts ask for. The demo, the leakage benchmark, the base-model
quality check and the probe all read it from here."""

from __future__ import annotations

from ..generate import SamplingSettings

# Sampling settings used for every shapes-world measurement (chosen on the base model, see README).
TOY_SAMPLING = SamplingSettings(num_frames=8, height=32, width=32, steps=25, guidance=6.0)

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
