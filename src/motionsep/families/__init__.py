"""The base-model families motionsep supports, one file each; `FAMILIES` by name.

A new family is a file here and a line below: a `Family` (or `DiTFamily`) whose methods answer what the rest of
motionsep asks."""

from __future__ import annotations

from .animatediff import ANIMATEDIFF
from .base import DiTFamily, Family, Pathway
from .cogvideox import COGVIDEOX
from .modelscope import MODELSCOPE
from .wan import WAN
from .wan_i2v import WAN_I2V

FAMILIES: dict[str, Family] = {f.name: f for f in (MODELSCOPE, ANIMATEDIFF, WAN, WAN_I2V, COGVIDEOX)}

__all__ = ["ANIMATEDIFF", "COGVIDEOX", "FAMILIES", "MODELSCOPE", "WAN", "WAN_I2V", "DiTFamily", "Family", "Pathway"]
