"""Phased LoRA Integration: the motion LoRA shapes the early, high-noise steps only.

At sampling the LoRA is on for timesteps t > tau and off for t <= tau, where appearance detail
settles (the release's value is tau = 333 of 1000). It is a forward pre-hook on the UNet that reads
the timestep of each call, so the pipeline's own loop runs unchanged: no extra UNet evaluations.
"""

from __future__ import annotations

import torch

from .adapters import MOTION, set_lora_enabled
from .models import UNet


class PhasedLora:
    """`fused`: the LoRA was folded into the weights (adapters.FusedLora); switch by swapping weights."""

    def __init__(self, unet: UNet, tau: int, adapter_name: str = MOTION, fused=None):
        self.unet, self.tau, self.adapter_name, self.fused = unet, tau, adapter_name, fused
        self._on: bool | None = None
        self.calls: list[tuple[float, bool]] = []  # (timestep, LoRA on) per UNet call, for checking
        self._handle = unet.register_forward_pre_hook(self._switch, with_kwargs=True)

    def _switch(self, module, args, kwargs):
        timestep = kwargs["timestep"] if "timestep" in kwargs else args[1]
        t = float(torch.as_tensor(timestep).flatten()[0])
        on = t > self.tau
        if on != self._on:  # switch once per phase, not on every call
            if self.fused is not None:
                self.fused.set(on)
            else:
                set_lora_enabled(self.unet, on, self.adapter_name)
            self._on = on
        self.calls.append((t, on))

    def remove(self) -> None:
        self._handle.remove()
        if self.fused is not None:
            self.fused.set(True)
        else:
            set_lora_enabled(self.unet, True, self.adapter_name)
        self._on = None
