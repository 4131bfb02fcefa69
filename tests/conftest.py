"""Shared fixtures: tiny random pipelines of both families and a reference clip, built offline."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", category=FutureWarning)

from motionsep.config import config_from_dict
from motionsep.testing import WAN_FRAMES, WAN_SIZE, save_tiny_pipeline
from motionsep.video import write_mp4

FAMILIES = ("modelscope", "animatediff")  # the U-Net families, which share the parametrised tests; Wan: test_wan.py


@pytest.fixture(scope="session")
def pipeline_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipelines")
    return {
        family: str(save_tiny_pipeline(root / family, family)) for family in (*FAMILIES, "wan", "wan-i2v", "cogvideox")
    }


def moving_square(frames: int = 12, size: int = 16) -> np.ndarray:
    video = np.full((frames, size, size, 3), 30, np.uint8)
    for i in range(frames):
        x = i % (size - 4)
        video[i, 5:10, x : x + 4] = (220, 60, 40)
    return video


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    write_mp4(moving_square(), root / "square.mp4")
    (root / "square.txt").write_text("a red square moving right\n")
    return root


def wan_square(frames: int = 12, size: int = 32) -> np.ndarray:
    """A red square moving right 2 pixels a frame over 32 x 32: the Wan tests' clip (1 + 4k frames are cut from
    it: 9)."""
    video = np.full((frames, size, size, 3), 30, np.uint8)
    for i in range(frames):
        video[i, 10:18, 2 * i : 2 * i + 8] = (220, 60, 40)
    return video


@pytest.fixture(scope="session")
def wan_clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("wan-clips")
    write_mp4(wan_square(), root / "square.mp4")
    (root / "square.txt").write_text("a red square moving right\n")
    return root


def plain_video(plain, prompt: str, frames: int, side: int, steps: int, **inputs) -> np.ndarray:
    """The video a plain diffusers pipeline (its LoRAs loaded by the caller) makes of `prompt`: `frames` square
    frames of `side`, `steps` steps, no guidance, seed 0, uint8; `inputs`: more of its arguments."""
    plain.set_progress_bar_config(disable=True)
    video = plain(
        prompt=[prompt],
        num_frames=frames,
        height=side,
        width=side,
        num_inference_steps=steps,
        guidance_scale=1.0,
        generator=[torch.Generator("cpu").manual_seed(0)],
        output_type="np",
        **inputs,
    ).frames
    return (np.clip(np.asarray(video)[0], 0, 1) * 255).round().astype(np.uint8)


def plain_wan_video(plain, prompt: str, **inputs) -> np.ndarray:
    """`plain_video` at the Wan tests' sampling: 9 frames of 32 x 32, 4 steps; `inputs`: an I2V pipeline's image."""
    return plain_video(plain, prompt, WAN_FRAMES, WAN_SIZE, 4, **inputs)


@pytest.fixture
def make_config(pipeline_dirs, clip_dir, tmp_path):
    def make(family="modelscope", method="tap", **sections):
        data = {
            "model": pipeline_dirs[family],
            "method": method,
            "output_dir": str(tmp_path / f"run-{family}-{method}"),
            "data": {"path": str(clip_dir), "frames": 8, "size": [16, 16]},
            "train": {"steps": 3, "checkpoint_every": 0},
            "lora": {"rank": 4, "dropout": 0.0},
        }
        for key, value in sections.items():
            if isinstance(value, dict):
                data.setdefault(key, {}).update(value)
            else:
                data[key] = value
        return config_from_dict(data)

    return make


def unet_inputs(unet, family: str, frames: int = 4, seed: int = 0):
    """A fixed noisy latent video, timestep and text for a direct UNet call."""
    g = torch.Generator().manual_seed(seed)
    sample = torch.randn(1, 4, frames, 8, 8, generator=g)
    text = torch.randn(1, 7, 32, generator=g)
    if family == "animatediff":
        text = text.repeat_interleave(frames, dim=0)
    return sample, torch.tensor([500]), text


def run_unet(unet, family: str, frames: int = 4, seed: int = 0) -> torch.Tensor:
    sample, t, text = unet_inputs(unet, family, frames, seed)
    with torch.no_grad():
        return unet(sample, t, encoder_hidden_states=text).sample


def assert_steps_lower_the_loss(state, lr: float) -> None:
    """Eight AdamW steps on one fixed batch lower every path's loss (spatial, temporal) by at least 1%."""
    from motionsep.train import sample_batch, step_losses

    batch = sample_batch(state, torch.Generator().manual_seed(0), "cpu")
    params = [p for group in state.params.values() for p in group]
    optimizer = torch.optim.AdamW(params, lr=lr)

    def losses(backward=None):
        return step_losses(state, batch, torch.Generator().manual_seed(1), backward)

    with torch.no_grad():
        before = {k: float(v) for k, v in losses().items()}
    for _ in range(8):
        losses(backward=lambda loss, inputs: loss.backward(inputs=inputs))
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        after = {k: float(v) for k, v in losses().items()}
    for path in before:
        assert after[path] < before[path] * 0.99, (path, before, after)


def record_pli_calls(pipeline) -> list[tuple[float, bool | None]]:
    """(timestep, motion LoRA on) of every denoiser call of a MotionPipeline with PLI, from a hook that runs after
    PLI's own switch."""
    from motionsep.models import denoiser_of

    calls: list[tuple[float, bool | None]] = []

    def record(module, args, kwargs):
        timestep = kwargs["timestep"] if "timestep" in kwargs else args[1]
        calls.append((float(torch.as_tensor(timestep).flatten()[0]), pipeline.pli.lora_on))

    denoiser_of(pipeline.pipe).register_forward_pre_hook(record, with_kwargs=True)
    return calls
