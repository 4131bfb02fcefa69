"""A content-independent motion part for a DiT: learned per-frame query and key offsets.

A LoRA on a DiT's `to_q`/`to_k` changes what a token's features ask for, and those features carry the look: what
it learns from clips of one look may hold for that look only. Positions enter Wan's attention only through RoPE,
applied to query and key after the projections. This part adds, in every cross-frame self-attention, a learned
vector per latent frame to the normed query and another to the key (each head its own slice, as MotionInversion's
motion embeddings), the same for every token of the frame and every look; RoPE then rotates them with the token's
position, so the pair of offsets of two frames adds a frame-pair term to the attention score that no feature
changes. Zero at initialisation: the model is unchanged until it trains.

It is saved beside the LoRA as `motion_offsets.safetensors` ({attention}.query and .key, (frames, heads x dim));
plain diffusers loads the LoRA file alone, without it. A video of another latent frame count gets the offsets
interpolated linearly in time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .checkpoint import atomic_save_file
from .errors import MotionsepError
from .heads import cross_frame_attentions
from .models import Family, UNet

OFFSETS_NAME = "motion_offsets.safetensors"


class FrameOffsets:
    """The offsets and the hooks that add them; `weight` scales them (a LoRA mix's weight times its scale)."""

    def __init__(self, denoiser: UNet, family: Family, frames: int, weight: float = 1.0):
        modules = dict(denoiser.named_modules())
        self.names = cross_frame_attentions(denoiser, family)
        device = next(denoiser.parameters()).device
        self.tensors = {
            f"{name}.{which}": torch.nn.Parameter(torch.zeros(frames, modules[name].inner_dim, device=device))
            for name in self.names
            for which in ("query", "key")
        }
        self.weight, self.patch = weight, denoiser.config.patch_size
        self.grid: tuple[int, int] = (frames, 1)  # (latent frames, tokens a frame) of the current forward
        self.handles = [denoiser.register_forward_pre_hook(self._read_grid, with_kwargs=True)]
        for name in self.names:
            for which, norm in (("query", modules[name].norm_q), ("key", modules[name].norm_k)):
                self.handles.append(norm.register_forward_hook(self._adder(f"{name}.{which}")))

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.tensors.values())

    def _read_grid(self, module, args, kwargs) -> None:
        sample = args[0] if args else kwargs["hidden_states"]
        frames, height, width = (n // p for n, p in zip(sample.shape[2:], self.patch))
        self.grid = (frames, height * width)

    def _adder(self, key: str):
        def add(module, args, out: torch.Tensor) -> torch.Tensor:
            offsets: torch.Tensor = self.tensors[key]
            frames, per_frame = self.grid
            if offsets.shape[0] != frames:  # another clip length: the same motion, resampled in time
                offsets = F.interpolate(offsets.T[None], size=frames, mode="linear", align_corners=True)[0].T
            if out.shape[1] != frames * per_frame:  # a forward of another layout (not the clip's tokens)
                return out
            return out + self.weight * offsets.repeat_interleave(per_frame, dim=0).to(out.dtype)[None]

        return add

    def save(self, folder: Path) -> Path:
        path = Path(folder) / OFFSETS_NAME
        atomic_save_file({k: v.detach().cpu().contiguous() for k, v in self.tensors.items()}, path)
        return path

    def _read(self, folder: Path) -> dict[str, torch.Tensor]:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(folder) / OFFSETS_NAME
        try:
            saved = load_file(str(path))
        except (OSError, SafetensorError) as exc:
            raise MotionsepError(
                f"'{path}' is missing or corrupt ({exc}): retrain or restore the LoRA folder"
            ) from None
        if set(saved) != set(self.tensors) or any(v.shape[1] != self.tensors[k].shape[1] for k, v in saved.items()):
            raise MotionsepError(f"'{path}' does not fit this model's attentions: use the base model it was trained on")
        return saved

    def load(self, folder: Path) -> None:
        """For sampling: the saved offsets, whatever clip length they were trained at, frozen."""
        for key, value in self._read(folder).items():
            self.tensors[key] = torch.nn.Parameter(value.to(self.tensors[key].device), requires_grad=False)

    def restore(self, folder: Path) -> None:
        """For a resumed training: the saved values copied into the parameters the optimizer holds."""
        with torch.no_grad():
            for key, value in self._read(folder).items():
                self.tensors[key].copy_(value)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def load_frame_offsets(denoiser: UNet, family: Family, folder: str | Path, weight: float = 1.0) -> Any:
    """The offsets saved in a LoRA folder, attached to `denoiser` with `weight`."""
    offsets = FrameOffsets(denoiser, family, frames=1, weight=weight)
    offsets.load(Path(folder))
    return offsets
