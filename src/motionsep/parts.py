"""Motion parts that are not LoRAs, for a DiT: trained beside (or instead of) the motion LoRA, saved beside it.

* `FrameOffsets` (preset `tap-offsets`): a content-independent part. A LoRA on a DiT's `to_q`/`to_k` changes what a
  token's features ask for, and those features carry the look: what it learns from clips of one look may hold for
  that look only. Positions enter Wan's attention only through RoPE, applied to query and key after the
  projections. This part adds, in every cross-frame self-attention, a learned vector per latent frame to the normed
  query and another to the key (each head its own slice, as MotionInversion's motion embeddings), the same for
  every token of the frame and every look; RoPE then rotates them with the token's position, so the offsets of two
  frames add a frame-pair term to the attention score that no feature changes.
* `TemporalBranch` (preset `det`): DeT's temporal kernel. In every block, a side branch on the self-attention:
  down-projection to 128 channels, a 1-D convolution (kernel 3) along the latent frames at each token position,
  up-projection, added to the attention's output; the DiT stays frozen and only the branches train.

Both start at zero (the model is unchanged until they train), are saved beside the LoRA as safetensors
(plain diffusers loads the LoRA file alone, without them) and follow a clip of another latent frame count
(offsets are resampled in time; a convolution does not care).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .checkpoint import atomic_save_file
from .errors import MotionsepError
from .heads import cross_frame_attentions
from .models import Denoiser, Family, token_grid

OFFSETS_NAME = "motion_offsets.safetensors"
BRANCH_NAME = "temporal_branch.safetensors"
BRANCH_CHANNELS = 128  # DeT's


class _TokenGrid:
    """A pre-hook on the denoiser that keeps (latent frames, tokens a frame) of the current forward."""

    def __init__(self, denoiser: Denoiser, frames: int):
        self.denoiser = denoiser
        self.value: tuple[int, int] = (frames, 1)
        self.handle = denoiser.register_forward_pre_hook(self._read, with_kwargs=True)

    def _read(self, module, args, kwargs) -> None:
        sample = args[0] if args else kwargs["hidden_states"]
        frames, height, width = token_grid(self.denoiser, sample.shape)
        self.value = (frames, height * width)


def _read_part(path: Path, expected: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A part's saved tensors, checked against the names and widths this model gives it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        saved = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise MotionsepError(f"'{path}' is missing or corrupt ({exc}): retrain or restore the LoRA folder") from None
    if set(saved) != set(expected) or any(v.shape[-1] != expected[k].shape[-1] for k, v in saved.items()):
        raise MotionsepError(f"'{path}' does not fit this model's attentions: use the base model it was trained on")
    return saved


class FrameOffsets:
    """The offsets and the hooks that add them; `weight` scales them (a LoRA mix's weight times its scale)."""

    file = OFFSETS_NAME

    def __init__(self, denoiser: Denoiser, family: Family, frames: int, weight: float = 1.0):
        modules = dict(denoiser.named_modules())
        device = next(denoiser.parameters()).device
        names = cross_frame_attentions(denoiser, family)
        self.tensors = {
            f"{name}.{which}": torch.nn.Parameter(torch.zeros(frames, modules[name].inner_dim, device=device))
            for name in names
            for which in ("query", "key")
        }
        self.weight, self.grid = weight, _TokenGrid(denoiser, frames)
        self.handles = [self.grid.handle]
        for name in names:
            for which, norm in (("query", modules[name].norm_q), ("key", modules[name].norm_k)):
                self.handles.append(norm.register_forward_hook(self._adder(f"{name}.{which}")))

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.tensors.values())

    def _adder(self, key: str):
        def add(module, args, out: torch.Tensor) -> torch.Tensor:
            offsets: torch.Tensor = self.tensors[key]
            frames, per_frame = self.grid.value
            if out.shape[1] != frames * per_frame:  # a forward of another layout (not the clip's tokens)
                return out
            if offsets.shape[0] != frames:  # another clip length: the same motion, resampled in time
                offsets = F.interpolate(offsets.T[None], size=frames, mode="linear", align_corners=True)[0].T
            return out + self.weight * offsets.repeat_interleave(per_frame, dim=0).to(out.dtype)[None]

        return add

    def state(self) -> dict[str, torch.Tensor]:
        return dict(self.tensors)

    def load(self, folder: Path) -> None:
        """For sampling: the saved offsets, whatever clip length they were trained at, frozen."""
        for key, value in _read_part(Path(folder) / self.file, self.tensors).items():
            self.tensors[key] = torch.nn.Parameter(value.to(self.tensors[key].device), requires_grad=False)

    def restore(self, folder: Path) -> None:
        """For a resumed training: the saved values copied into the parameters the optimizer holds."""
        with torch.no_grad():
            for key, value in _read_part(Path(folder) / self.file, self.tensors).items():
                self.tensors[key].copy_(value)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


class _Branch(torch.nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.down = torch.nn.Linear(width, BRANCH_CHANNELS)
        self.conv = torch.nn.Conv1d(BRANCH_CHANNELS, BRANCH_CHANNELS, kernel_size=3, padding=1)
        self.up = torch.nn.Linear(BRANCH_CHANNELS, width)
        torch.nn.init.zeros_(self.up.weight)  # the branch adds nothing until it trains
        torch.nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """x (batch, frames x tokens a frame, width), frame-major as a DiT's tokens -> the same shape."""
        batch, tokens, _ = x.shape
        h = self.down(x).view(batch, frames, tokens // frames, BRANCH_CHANNELS)
        h = h.permute(0, 2, 3, 1).reshape(-1, BRANCH_CHANNELS, frames)  # each token position's series in time
        h = self.conv(h).view(batch, tokens // frames, BRANCH_CHANNELS, frames).permute(0, 3, 1, 2)
        return self.up(h.reshape(batch, tokens, BRANCH_CHANNELS))


class TemporalBranch:
    """DeT's temporal side branches, one per cross-frame self-attention, added to its output by hooks."""

    file = BRANCH_NAME

    def __init__(self, denoiser: Denoiser, family: Family, frames: int, weight: float = 1.0):
        modules = dict(denoiser.named_modules())
        param = next(denoiser.parameters())
        names = cross_frame_attentions(denoiser, family)
        self.branches = torch.nn.ModuleDict(
            {n.replace(".", "/"): _Branch(modules[n].inner_dim).to(param.device) for n in names}
        )
        self.weight, self.grid = weight, _TokenGrid(denoiser, frames)
        self.handles = [self.grid.handle]
        self.handles += [modules[n].register_forward_hook(self._adder(n.replace(".", "/"))) for n in names]

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.branches.parameters())

    def _adder(self, key: str):
        def add(module, args, out: torch.Tensor) -> torch.Tensor:
            frames, per_frame = self.grid.value
            x = args[0]
            if x.shape[1] != frames * per_frame:
                return out
            branch = self.branches[key]
            dtype = next(branch.parameters()).dtype  # fp32 beside a base cast to half precision
            return out + self.weight * branch(x.to(dtype), frames).to(out)

        return add

    def state(self) -> dict[str, torch.Tensor]:
        return {k.replace("/", "."): v for k, v in self.branches.state_dict().items()}

    def load(self, folder: Path) -> None:
        self.restore(folder)
        self.branches.requires_grad_(False)

    def restore(self, folder: Path) -> None:
        saved = _read_part(Path(folder) / self.file, self.state())
        by_module = {}
        for key, value in saved.items():
            name, layer, tensor = key.rsplit(".", 2)
            by_module[f"{name.replace('.', '/')}.{layer}.{tensor}"] = value
        self.branches.load_state_dict(by_module)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


Part = FrameOffsets | TemporalBranch
PARTS: dict[str, type[Part]] = {"frame_offsets": FrameOffsets, "temporal_branch": TemporalBranch}


def save_parts(parts: dict[str, Any], folder: Path) -> None:
    for part in parts.values():
        atomic_save_file({k: v.detach().cpu().contiguous() for k, v in part.state().items()}, Path(folder) / part.file)


def load_parts(denoiser: Denoiser, family: Family, names: list[str], folder: str | Path, weight: float = 1.0) -> list:
    """The parts a LoRA folder's record lists, loaded from it and attached to `denoiser` with `weight`."""
    loaded = []
    for name in names:
        part = PARTS[name](denoiser, family, frames=1, weight=weight)
        part.load(Path(folder))
        loaded.append(part)
    return loaded
