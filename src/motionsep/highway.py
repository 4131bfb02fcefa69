"""Appearance Highway: skip connections taken from the spatial attention, not the temporal one.

In a ModelScope ``CrossAttnDownBlock3D`` layer the order is resnet -> temp_conv -> spatial transformer
(``attentions[j]``) -> temporal transformer (``temp_attentions[j]``), and the state after the
temporal transformer is appended to the skip connections; AnimateDiff's ``CrossAttnDownBlockMotion``
is resnet -> attention -> motion module -> append. The highway appends the spatial transformer's
output instead (times ``scale``), so high-frequency appearance reaches the decoder without passing
the LoRA-adapted temporal layers. The main path, the downsampler's skip and blocks without attention
are untouched.

It is done with forward hooks on unmodified diffusers modules: a hook on each spatial transformer
remembers its output, a hook on the block swaps it into the block's returned skip tuple. Switched
off, the hooks return None and the UNet computes exactly what plain diffusers computes.
"""

from __future__ import annotations

from typing import Any

import torch

from .config import HighwaySettings
from .errors import MotionsepError
from .models import Denoiser, attention_down_blocks, family_of

__all__ = ["AppearanceHighway", "HighwaySettings", "hook_points", "select_blocks"]


def select_blocks(unet: Denoiser, blocks: str | list[int]) -> list[int]:
    HighwaySettings(blocks=blocks).check("highway blocks")
    family = family_of(unet)
    if not family.supports_highway:
        raise MotionsepError(
            f"the Appearance Highway reroutes U-Net skip connections, which the {family.name} family has none of: "
            "set appearance_highway.enabled to false"
        )
    candidates = attention_down_blocks(unet)
    if blocks == "deepest":
        return candidates[-1:]
    if blocks == "all":
        return candidates
    assert not isinstance(blocks, str)
    bad = [b for b in blocks if b not in candidates]
    if bad:
        raise MotionsepError(f"down block {bad[0]} has no spatial attention; the highway can use blocks {candidates}")
    return sorted(set(blocks))


def hook_points(unet: Denoiser, settings: HighwaySettings) -> list[dict[str, Any]]:
    """Where the highway acts: one entry per rerouted skip (what `inspect` lists)."""
    points = []
    for i in select_blocks(unet, settings.blocks):
        block = unet.down_blocks[i]
        temporal = family_of(unet).temporal_in_block
        for j in range(len(block.attentions)):
            points.append(
                {
                    "skip": f"down_blocks.{i} layer {j}",
                    "from": f"down_blocks.{i}.attentions.{j}",
                    "instead_of": f"down_blocks.{i}.{temporal}.{j}",
                    "channels": block.attentions[j].config.in_channels,
                    "scale": settings.scale,
                }
            )
    first = family_of(unet).first_temporal_layer
    if settings.first_skip_from_conv_in and first is not None:
        points.append(
            {
                "skip": "first skip",
                "from": "conv_in",
                "instead_of": first,
                "channels": unet.conv_in.out_channels,
                "scale": 1.0,
            }
        )
    return points


class AppearanceHighway:
    """Attach once to a UNet; switch with :meth:`enable` / :meth:`disable`; :meth:`remove` detaches."""

    def __init__(self, unet: Denoiser, settings: HighwaySettings | None = None, enabled: bool = True):
        self.unet = unet
        self.settings = settings or HighwaySettings()
        self.blocks = select_blocks(unet, self.settings.blocks)
        self.enabled = enabled
        self._captured: dict[Any, torch.Tensor] = {}
        self._handles = []
        for i in self.blocks:
            block = unet.down_blocks[i]
            for j, attention in enumerate(block.attentions):
                self._handles.append(attention.register_forward_hook(self._capture((i, j))))
            self._handles.append(block.register_forward_hook(self._reroute(i, len(block.attentions))))
        if self.settings.first_skip_from_conv_in and family_of(unet).first_temporal_layer is not None:
            # UNet3DConditionModel takes its first skip after transformer_in; it is consumed by the
            # last resnet of the last up block, so swap it in that block's skip tuple.
            self._handles.append(unet.conv_in.register_forward_hook(self._capture("conv_in")))
            self._handles.append(unet.up_blocks[-1].register_forward_pre_hook(self._first_skip, with_kwargs=True))

    def enable(self) -> AppearanceHighway:
        self.enabled = True
        return self

    def disable(self) -> AppearanceHighway:
        self.enabled = False
        self._captured.clear()
        return self

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._captured.clear()

    def _capture(self, key):
        def hook(module, args, output):
            if self.enabled:
                self._captured[key] = output[0] if isinstance(output, tuple) else getattr(output, "sample", output)

        return hook

    def _reroute(self, index: int, layers: int):
        def hook(module, args, output):
            if not self.enabled:
                return None
            hidden_states, skips = output
            skips = list(skips)
            for j in range(layers):
                skips[j] = self._captured.pop((index, j)) * self.settings.scale
            return hidden_states, tuple(skips)

        return hook

    def _first_skip(self, module, args, kwargs):
        if not self.enabled or "conv_in" not in self._captured:
            return None
        skips = list(kwargs["res_hidden_states_tuple"])
        skips[0] = self._captured.pop("conv_in")
        return args, {**kwargs, "res_hidden_states_tuple": tuple(skips)}
