"""MotionDirector's noise prior: start sampling from noise that carries a reference clip's layout.

The initial latents are sqrt(P) * z_inv + sqrt(1 - P) * eps, with z_inv the reference clip's latents
carried to the first sampling timestep by the deterministic inverse of the sampler, with the empty prompt
(as MotionDirector does), and eps the seed's own noise. The inversion is diffusers': `DDIMInverseScheduler`
for the denoising families, and for flow-matching ones (Wan) a `FlowMatchEulerDiscreteScheduler` with
`invert_sigmas`, which integrates the same velocity field from data towards noise.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .data import Clip
from .encoding import encode_clips, encode_text
from .errors import MotionsepError
from .losses import FlowMatchingObjective, is_flow_matching
from .models import Family, denoiser_of
from .video import read_video


def inverse_scheduler(scheduler):
    """The deterministic inverse of the model's sampler, from diffusers."""
    from diffusers import DDIMInverseScheduler, FlowMatchEulerDiscreteScheduler

    if is_flow_matching(scheduler):
        shift = FlowMatchingObjective(scheduler).shift
        return FlowMatchEulerDiscreteScheduler(
            num_train_timesteps=scheduler.config.num_train_timesteps, shift=shift, invert_sigmas=True
        )
    return DDIMInverseScheduler.from_config(scheduler.config)


@torch.no_grad()
def invert_latents(pipe, family: Family, latents: torch.Tensor, steps: int, progress: bool = False) -> torch.Tensor:
    """Clean latents (1, C, F, h, w) carried to the noise end by `steps` inverse steps, prompt "" (unconditional)."""
    denoiser = denoiser_of(pipe)
    text = encode_text(pipe, family, [""], latents.device).to(denoiser.dtype)
    scheduler = inverse_scheduler(pipe.scheduler)
    scheduler.set_timesteps(steps)
    x = latents.to(denoiser.dtype)
    for t in tqdm(scheduler.timesteps, desc="noise prior: inversion", disable=not progress):
        timestep = t.reshape(1).to(latents.device)
        prediction = family.predict(denoiser, x, timestep, text)
        x = scheduler.step(prediction, t, x).prev_sample
    return x


def clip_latents(pipe, family: Family, clip: str | Path, frames: int, height: int, width: int) -> torch.Tensor:
    """The prior clip read at the sampling size and length, encoded by the pipeline's VAE: (1, C, F, h, w)."""
    video = read_video(clip, size=(height, width))
    if len(video) < frames:
        raise MotionsepError(
            f"prior clip '{clip}' has {len(video)} frames, fewer than the {frames} to generate: pass --frames "
            f"{len(video)} or less, or a longer --prior-clip"
        )
    video = video[:frames]
    device = denoiser_of(pipe).device
    return encode_clips(pipe, family, [Clip(path=Path(clip), frames=video, caption="")], device)


def mix(prior: float, inverted: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """sqrt(P) * z_inv + sqrt(1 - P) * eps: unit variance kept when both are unit-variance."""
    if not 0.0 <= prior <= 1.0:
        raise MotionsepError(f"--noise-prior must be in [0, 1], got {prior}")
    return math.sqrt(prior) * inverted + math.sqrt(1.0 - prior) * noise
