"""Phased LoRA Integration: the motion LoRA shapes the early, high-noise steps only.

At sampling the LoRA is on for timesteps t > tau and off for t <= tau, where appearance detail
settles (the release's value is tau = 333 of 1000). It is a forward pre-hook on the denoiser that reads
the timestep of each call, so the pipeline's own loop runs unchanged: no extra denoiser evaluations.
"""

from __future__ import annotations

import torch

from .adapters import MOTION, set_lora_enabled
from .models import Denoiser


class PhasedLora:
    """Switches the motion LoRA(s) `adapter_names` by timestep; other adapters (an appearance LoRA) stay on.
    `fused`: the LoRAs were folded into the weights (adapters.FusedLora); switch by swapping weights."""

    def __init__(self, denoiser: Denoiser, tau: int, adapter_names: str | list[str] = MOTION, fused=None):
        self.denoiser, self.tau, self.fused = denoiser, tau, fused
        self.adapter_names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        self._on: bool | None = None
        self._handle = denoiser.register_forward_pre_hook(self._switch, with_kwargs=True)

    def _switch(self, module, args, kwargs):
        timestep = kwargs["timestep"] if "timestep" in kwargs else args[1]
        t = float(torch.as_tensor(timestep).flatten()[0])
        on = t > self.tau
        if on != self._on:  # switch once per phase, not on every call
            if self.fused is not None:
                self.fused.set(on)
            else:
                for name in self.adapter_names:
                    set_lora_enabled(self.denoiser, on, name)
            self._on = on

    @property
    def lora_on(self) -> bool | None:
        """Whether the motion LoRA is on for the current denoiser call (None before the first)."""
        return self._on

    def remove(self) -> None:
        self._handle.remove()
        if self.fused is not None:
            self.fused.set(True)
        else:
            for name in self.adapter_names:
                set_lora_enabled(self.denoiser, True, name)
        self._on = None
