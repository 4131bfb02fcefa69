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
    vae = pipe.vae
    out = []
    for clip in clips:
        frames = torch.from_numpy(clip.frames).to(device=device, dtype=vae.dtype).permute(0, 3, 1, 2) / 127.5 - 1
        out.append(family.encode_video(vae, frames, one_frame_clips))
    return torch.stack(out).float()


@torch.no_grad()
def encode_text(pipe, family: Family, captions: list[str], device) -> torch.Tensor:
    """Caption embeddings as the family's pipeline samples with them (`Family.encode_text`)."""
    return family.encode_text(pipe, captions, device).float()


@torch.no_grad()
def encode_conditions(pipe, family: Family, clips: list[Clip], device) -> dict[str, torch.Tensor]:
    """The family's conditions of every clip besides its text (`Family.encode_conditions`: an image-to-video
    model's first frame), clips first; empty for a text-to-video model."""
    per_clip = []
    for clip in clips:
        frames = torch.from_numpy(clip.frames).to(device=device, dtype=pipe.vae.dtype).permute(0, 3, 1, 2) / 127.5 - 1
        per_clip.append(family.encode_conditions(pipe, frames))
    return {name: torch.stack([c[name] for c in per_clip]).float() for name in (per_clip[0] if per_clip else {})}
