"""Encoding clips and captions as a model's denoiser sees them: VAE latents and text embeddings, computed once.

Below training, generation's noise prior and the probe, which all encode clips the same way.
"""

from __future__ import annotations

import torch

from .data import Clip
from .models import Family


@torch.no_grad()
def encode_clips(pipe, family: Family, clips: list[Clip], device, one_frame_clips: bool = False) -> torch.Tensor:
    """VAE latents of every clip, computed once (the VAE mean; no sampling noise to cache), as
    (clips, channels, latent frames, h, w), encoded as the family's pipeline encodes them
    (`Family.encode_video`); with `one_frame_clips` each frame is a clip of its own (one latent frame each)."""
    out = [family.encode_video(pipe.vae, clip_frames(clip, device, pipe.vae.dtype), one_frame_clips) for clip in clips]
    return torch.stack(out).float()


def clip_frames(clip: Clip, device, dtype: torch.dtype) -> torch.Tensor:
    """A clip's uint8 frames (F, H, W, 3) as the VAE reads them: (F, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(clip.frames).to(device=device, dtype=dtype).permute(0, 3, 1, 2) / 127.5 - 1


@torch.no_grad()
def encode_text(pipe, family: Family, captions: list[str], device) -> torch.Tensor:
    """Caption embeddings as the family's pipeline samples with them (`Family.encode_text`)."""
    return family.encode_text(pipe, captions, device).float()


@torch.no_grad()
def encode_conditions(pipe, family: Family, clips: list[Clip], device) -> dict[str, torch.Tensor]:
    """The family's conditions of every clip besides its text (`Family.encode_conditions`: an image-to-video
    model's first frame), clips first; empty for a text-to-video model."""
    per_clip = [family.encode_conditions(pipe, clip_frames(clip, device, pipe.vae.dtype)) for clip in clips]
    return {name: torch.stack([c[name] for c in per_clip]).float() for name in (per_clip[0] if per_clip else {})}
