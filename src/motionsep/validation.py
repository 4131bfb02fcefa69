"""Samples during training that are what `motionsep generate` will give.

At a validation step the LoRA checkpoint of that step is on disk; the samples are made from it by
`generate.MotionPipeline` and `generate.generate_videos`, the code path of `motionsep generate`, with
the LoRA's own highway and PLI defaults. The sampling pipeline is a second copy of the base model,
loaded once (on a GPU it takes that memory while training runs); at each later validation step only
the LoRA weights are read again. The training model, its RNG streams and its LoRA are not touched:
a run with validation ends with the LoRA of a run without it.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from .adapters import MOTION, WEIGHTS_NAME, read_lora_weights, set_lora_weights
from .config import TrainConfig, ValidationConfig
from .generate import MotionPipeline, SamplingSettings, generate_videos
from .models import denoiser_of


def sampling_settings(validation: ValidationConfig) -> SamplingSettings:
    """The `generate` settings a validation config stands for (frames and size default to the LoRA's)."""
    return SamplingSettings(
        num_frames=validation.num_frames,
        height=validation.height,
        width=validation.width,
        steps=validation.steps,
        guidance=validation.guidance,
    )


def is_validation_step(validation: ValidationConfig, step: int, last: int) -> bool:
    return bool(validation.prompts) and (step == last or (validation.every > 0 and step % validation.every == 0))


class ValidationSampler:
    """Writes OUTPUT_DIR/samples/step-NNNNNN/ (videos, contact sheet, generation.json) from a LoRA folder."""

    def __init__(self, config: TrainConfig, device: str | torch.device = "cpu"):
        self.config, self.device = config, device
        self.pipeline: MotionPipeline | None = None

    def sample(self, step: int, lora_folder: Path) -> Path:
        validation = self.config.train.validation
        out = Path(self.config.output_dir) / "samples" / f"step-{step:06d}"
        states = torch.get_rng_state(), np.random.get_state(), random.getstate()
        if self.pipeline is None:
            self.pipeline = MotionPipeline.from_pretrained(
                self.config.model,
                lora=str(lora_folder),
                motion_adapter=self.config.motion_adapter,
                device=str(self.device),
            )
        else:  # the same adapter and parts, this step's weights
            if (lora_folder / WEIGHTS_NAME).is_file():
                weights = read_lora_weights(lora_folder / WEIGHTS_NAME)
                set_lora_weights(denoiser_of(self.pipeline.pipe), weights, MOTION, lora_folder)
            for part in self.pipeline.parts:
                part.load(lora_folder)
        generate_videos(
            self.pipeline,
            list(validation.prompts),
            list(validation.seeds),
            out,
            sampling_settings(validation),
            overwrite=True,  # a resumed run samples its steps again
            progress=False,
        )
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])
        return out
