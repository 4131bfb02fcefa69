"""Training targets and losses shared by LoRA training, the probe and shapes-world pretraining.

The objective (denoising or flow matching) comes from the model's own scheduler config, not from its family."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F


def diffusion_target(scheduler, latents, noise, timesteps) -> torch.Tensor:
    """What the model predicts: the velocity for v-prediction schedulers, the noise for epsilon ones."""
    if scheduler.config.prediction_type == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    return noise


def debiased_loss(pred: torch.Tensor, target: torch.Tensor, anchor: int, beta: float = 1.0) -> torch.Tensor:
    """MotionDirector's appearance-debiased loss: compare each frame's offset from an anchor frame."""
    alpha = math.sqrt(beta**2 + 1)
    pred_d = alpha * pred - beta * pred[:, :, anchor : anchor + 1]
    target_d = alpha * target - beta * target[:, :, anchor : anchor + 1]
    return F.mse_loss(pred_d.float(), target_d.float())


def across_frames(x: torch.Tensor) -> torch.Tensor:
    """What changes from frame to frame: x (batch, channels, frames, h, w) minus its mean over frames."""
    return x - x.mean(dim=2, keepdim=True)


# --- training objectives -----------------------------------------------------------------------


class DenoisingObjective:
    """DDPM-family training (ModelScope, AnimateDiff): uniform integer timesteps, `scheduler.add_noise`,
    the noise (or the velocity for v-prediction) as target, every timestep weighted alike."""

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def draw_timesteps(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(self.scheduler.config.num_train_timesteps, (n,), generator=generator)

    def middle_timesteps(self, n: int) -> torch.Tensor:
        """The middle of the training schedule, for measurements at one typical noise level."""
        return torch.full((n,), self.scheduler.config.num_train_timesteps // 2, dtype=torch.long)

    def noisy(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return self.scheduler.add_noise(latents, noise, timesteps)

    def target(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return diffusion_target(self.scheduler, latents, noise, timesteps)

    def loss(self, pred: torch.Tensor, target: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(pred.float(), target.float())


class FlowMatchingObjective:
    """Rectified-flow training as Wan was trained: the noisy latents lie on the straight line between data and
    noise, x_s = (1 - s) x + s noise, and the model predicts the velocity noise - x.

    Timesteps and sigmas come from a `FlowMatchEulerDiscreteScheduler` with the model's shift (the tables the
    diffusers flow-matching training scripts use); u is drawn by `compute_density_for_timestep_sampling` and
    the loss weighted by `compute_loss_weighting_for_sd3` ("none": uniform u, equal weights; "logit_normal",
    "mode", "sigma_sqrt", "cosmap" as in diffusers).
    """

    def __init__(self, scheduler, weighting_scheme: str = "none", timestep_range: tuple[float, float] | None = None):
        from diffusers import FlowMatchEulerDiscreteScheduler

        config = scheduler.config
        self.shift = float(config.get("shift") if "shift" in config else config.get("flow_shift") or 1.0)
        self.num_train_timesteps = int(config.num_train_timesteps)
        table: Any = FlowMatchEulerDiscreteScheduler(
            num_train_timesteps=self.num_train_timesteps, shift=self.shift
        )  # its timesteps and sigmas are set in __init__, which a type checker does not see
        self.table = table
        self.weighting_scheme = weighting_scheme
        # the table's indices whose timesteps lie in `timestep_range`, [low, high) (a Wan 2.2 expert's share); all
        # by default
        lo, hi = timestep_range or (0, math.inf)
        inside = ((table.timesteps >= lo) & (table.timesteps < hi)).nonzero().flatten()
        self.first, self.count = int(inside.min()), len(inside)  # the table descends: a contiguous run

    def draw_timesteps(self, n: int, generator: torch.Generator) -> torch.Tensor:
        from diffusers.training_utils import compute_density_for_timestep_sampling

        u = compute_density_for_timestep_sampling(
            self.weighting_scheme, n, logit_mean=0.0, logit_std=1.0, mode_scale=1.29, generator=generator
        )
        index = self.first + (u * self.count).long().clamp(0, self.count - 1)
        return self.table.timesteps[index]

    def middle_timesteps(self, n: int) -> torch.Tensor:
        """The middle of the training table (sigma about 0.75 at Wan's shift 3), for measurements at one level."""
        return self.table.timesteps[self.num_train_timesteps // 2].repeat(n)

    def sigmas(self, timesteps: torch.Tensor, ndim: int) -> torch.Tensor:
        """The sigma of each timestep, shaped to broadcast over a latent of `ndim` dimensions."""
        table = self.table.timesteps.to(timesteps.device)
        index = (table[None, :] - timesteps.float()[:, None]).abs().argmin(dim=1)
        sigma = self.table.sigmas.to(timesteps.device)[index]
        return sigma.reshape(-1, *([1] * (ndim - 1)))

    def noisy(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        sigma = self.sigmas(timesteps, latents.ndim).to(latents.dtype)
        return (1.0 - sigma) * latents + sigma * noise

    def target(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return noise - latents

    def loss(self, pred: torch.Tensor, target: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        from diffusers.training_utils import compute_loss_weighting_for_sd3

        weights = compute_loss_weighting_for_sd3(self.weighting_scheme, self.sigmas(timesteps, pred.ndim))
        return (weights.float() * (pred.float() - target.float()) ** 2).mean()


Objective = DenoisingObjective | FlowMatchingObjective


def is_flow_matching(scheduler) -> bool:
    """Wan ships `FlowMatchEulerDiscreteScheduler` or `UniPCMultistepScheduler` with flow sigmas."""
    config = scheduler.config
    return (
        type(scheduler).__name__.startswith("FlowMatch")
        or config.get("prediction_type") == "flow_prediction"
        or bool(config.get("use_flow_sigmas"))
    )


def objective_for(scheduler, timestep_range: tuple[float, float] | None = None) -> Objective:
    """The training objective the model's own scheduler implies, over `timestep_range` when the denoiser serves
    only part of the schedule (a Wan 2.2 expert: `Family.timestep_range`)."""
    if is_flow_matching(scheduler):
        return FlowMatchingObjective(scheduler, timestep_range=timestep_range)
    return DenoisingObjective(scheduler)
