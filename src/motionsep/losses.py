"""Training targets and losses shared by LoRA training and shapes-world pretraining."""

from __future__ import annotations

import math

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
