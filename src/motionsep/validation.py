"""Samples during training that are what `motionsep generate` will give.

At a validation step the LoRA checkpoint of that step is on disk; the samples are what `motionsep
generate` makes from it (`generate.MotionPipeline` and `generate.generate_videos`, with the LoRA's own
highway and PLI defaults), made with the very modules the run trains, which hold the same weights (no second copy of
the base model: on a GPU that would double the memory of the frozen weights). The LoRA's weights, its
RNG streams and its training mode are as they were afterwards: a run with validation ends with the LoRA
of a run without it.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .adapters import SPATIAL, lora_disabled, read_lora_record
from .config import ValidationConfig
from .generate import MotionPipeline, SamplingSettings, generate_videos
from .highway import AppearanceHighway


def sampling_settings(validation: ValidationConfig, image: str | None = None) -> SamplingSettings:
    """The `generate` settings a validation config stands for (frames and size default to the LoRA's; `image`:
    an image-to-video model's first frame when the config names none)."""
    return SamplingSettings(
        num_frames=validation.num_frames,
        height=validation.height,
        width=validation.width,
        steps=validation.steps,
        guidance=validation.guidance,
        image=validation.image or image,
    )


def is_validation_step(validation: ValidationConfig, step: int, last: int) -> bool:
    return bool(validation.prompts) and (step == last or (validation.every > 0 and step % validation.every == 0))


class ValidationSampler:
    """Writes OUTPUT_DIR/samples/step-NNNNNN/ (videos, contact sheet, generation.json) from a LoRA folder,
    sampling with the modules the run trains (`MotionPipeline.around`)."""

    def __init__(self, state: Any):
        self.state = state  # train.TrainingState: its pipe, family, denoiser, highway and method
        self.first_frame: str | None = None  # an image-to-video model's: the first training clip's first frame
        validation = state.config.train.validation
        if state.family.takes_image() and not validation.image and validation.prompts:
            from PIL import Image

            from .data import load_clips

            path = Path(state.config.output_dir) / "samples" / "first-frame.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(load_clips(state.config.data)[0].frames[0]).save(path)
            self.first_frame = str(path)

    def sample(self, step: int, lora_folder: Path) -> Path:
        state, validation = self.state, self.state.config.train.validation
        out = Path(state.config.output_dir) / "samples" / f"step-{step:06d}"
        rng = torch.get_rng_state(), np.random.get_state(), random.getstate()
        pipeline = MotionPipeline.around(state.pipe, state.family, read_lora_record(lora_folder))
        with _as_generate_samples(state):
            try:
                generate_videos(
                    pipeline,
                    list(validation.prompts),
                    list(validation.seeds),
                    out,
                    sampling_settings(validation, self.first_frame),
                    overwrite=True,  # a resumed run samples its steps again
                    progress=False,
                )
            finally:
                pipeline.release()
        torch.set_rng_state(rng[0])
        np.random.set_state(rng[1])
        random.setstate(rng[2])
        return out


@contextlib.contextmanager
def _as_generate_samples(state: Any) -> Iterator[None]:
    """The training pipeline as `generate` loads a LoRA folder, for the time of a validation sample: no dropout,
    the dual path's spatial LoRA off, no training-time highway (generate hooks on the LoRA's own), the encoders
    back on the denoiser's device, a scheduler of its own (sampling sets its timesteps); then all as it was."""
    pipe, denoiser = state.pipe, state.denoiser
    device = next(p.device for p in denoiser.parameters())
    # the VAE, the text encoder and a model's other expert wait on the CPU while training (train.cache_inputs)
    others = [n for n, c in pipe.components.items() if isinstance(c, torch.nn.Module) and c is not denoiser]
    places = {name: next(getattr(pipe, name).parameters()).device for name in others}
    scheduler = pipe.scheduler
    if state.highway is not None:
        state.highway.remove()
    denoiser.eval()
    try:
        pipe.scheduler = type(scheduler).from_config(scheduler.config)
        for name in places:
            getattr(pipe, name).to(device)
        with lora_disabled(denoiser, SPATIAL) if SPATIAL in state.lora_configs else contextlib.nullcontext():
            yield
    finally:
        pipe.scheduler = scheduler
        for name, place in places.items():
            getattr(pipe, name).to(place)
        denoiser.train()
        if state.highway is not None:
            state.highway = AppearanceHighway(denoiser, state.config.appearance_highway)
