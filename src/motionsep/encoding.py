"""Encoding clips and captions as a model's denoiser sees them: VAE latents and text embeddings, computed once.

Below training, generation's noise prior and the probe, which all encode clips the same way.
"""

from __future__ import annotations

import torch

from .data import Clip
from .errors import MotionsepError
from .models import Family, denoiser_of


@torch.no_grad()
def encode_clips(pipe, family: Family, clips: list[Clip], device, one_frame_clips: bool = False) -> torch.Tensor:
    """VAE latents of every clip, computed once (the VAE mean; no sampling noise to cache), as
    (clips, channels, latent frames, h, w).

    Frame-by-frame VAEs (SD's): each frame alone, times `scaling_factor`. Causal video VAEs (Wan's): the clip
    at once, normalised by the VAE's per-channel latents_mean and latents_std as WanPipeline decodes them;
    with `one_frame_clips` each frame is encoded as a clip of its own (one latent frame each).
    """
    vae = pipe.vae
    out = []
    for clip in clips:
        frames = torch.from_numpy(clip.frames).to(device=device, dtype=vae.dtype).permute(0, 3, 1, 2) / 127.5 - 1
        if not family.video_vae:
            latent = vae.encode(frames).latent_dist.mode() * vae.config.scaling_factor  # (F, C, h, w)
            out.append(latent.permute(1, 0, 2, 3))
            continue
        video = frames.permute(1, 0, 2, 3)[None]  # (1, C, F, H, W)
        parts = [video[:, :, i : i + 1] for i in range(video.shape[2])] if one_frame_clips else [video]
        latent = torch.cat([vae.encode(part).latent_dist.mode() for part in parts], dim=2)[0]
        mean = torch.tensor(vae.config.latents_mean, device=latent.device).view(-1, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std, device=latent.device).view(-1, 1, 1, 1)
        out.append((latent - mean) / std)
    return torch.stack(out).float()


@torch.no_grad()
def encode_text(pipe, family: Family, captions: list[str], device) -> torch.Tensor:
    if family.is_dit:
        embeds, _ = pipe.encode_prompt(
            captions, do_classifier_free_guidance=False, max_sequence_length=family.text_tokens, device=device
        )
    else:
        embeds, _ = pipe.encode_prompt(captions, device, 1, False)
    return embeds.float()


def check_clip_shape(pipe, family: Family, frames: int, size: tuple[int, int] | list[int]) -> None:
    """Clips a causal video VAE can encode: 1 + 4k frames (AutoencoderKLWan encodes the first frame, then chunks
    of four, whatever its temporal factor), sides a multiple of its spatial factor times the DiT's patch side."""
    if not family.video_vae:
        return
    if (frames - 1) % 4:
        near = 4 * round((frames - 1) / 4) + 1
        raise MotionsepError(
            f"data.frames is {frames}, but Wan's causal VAE encodes 1 + 4k frames (17, 33, 49, 81, ...): "
            f"set data.frames to {near}"
        )
    multiple = pipe.vae_scale_factor_spatial * denoiser_of(pipe).config.patch_size[1]
    if any(side % multiple for side in size):
        raise MotionsepError(
            f"data.size is {list(size)}: this model needs both sides divisible by {multiple} (its VAE's spatial "
            f"factor {pipe.vae_scale_factor_spatial} times its patch side), e.g. "
            f"{[max(multiple, multiple * round(v / multiple)) for v in size]}"
        )
