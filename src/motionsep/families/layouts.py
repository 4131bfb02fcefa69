"""Helpers for a family's LoRA key layouts (export to ComfyUI and back)."""

from __future__ import annotations

import re

import torch


def lora_pairs(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{module name: (lora_A, lora_B)} of a diffusers-format file whose keys start with `prefix`."""
    out = {}
    for key in weights:
        if key.endswith(".lora_A.weight"):
            module = key[len(prefix) : -len(".lora_A.weight")]
            out[module] = (weights[key], weights[key.replace(".lora_A.", ".lora_B.")])
    return out


def rename(name: str, rules) -> str:
    """`name` through (pattern, replacement) rules in order."""
    for pattern, replacement in rules:
        name = re.sub(pattern, replacement, name)
    return name
