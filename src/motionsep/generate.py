"""Sampling with a motion LoRA: Appearance Highway and PLI on a plain diffusers pipeline, then export.

``MotionPipeline`` wraps the family's own diffusers pipeline (``TextToVideoSDPipeline``,
``AnimateDiffPipeline`` or ``WanPipeline``); the LoRA is loaded with peft, the highway and PLI are hooks,
so the sampling loop is diffusers' own.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .adapters import MOTION, FusedLora, load_motion_lora, set_lora_scale
from .errors import MotionsepError, refuse_existing
from .highway import AppearanceHighway, HighwaySettings
from .models import denoiser_of, load_pipeline
from .pli import PhasedLora
from .record import LoraRecord
from .video import contact_sheet, write_gif, write_mp4


@dataclass
class SamplingSettings:
    num_frames: int | None = None  # None: the LoRA's training length, else 16
    height: int | None = None  # None: the LoRA's training size, else the UNet's native size
    width: int | None = None
    steps: int = 30  # MotionDirector's DDIM steps
    guidance: float = 12.0  # MotionDirector's guidance scale
    negative_prompt: str | None = None
    fps: int = 8


class MotionPipeline:
    """A base pipeline with an optional motion LoRA, Appearance Highway and Phased LoRA Integration."""

    def __init__(self, pipe, family, lora_meta: LoraRecord | None = None):
        self.pipe, self.family, self.lora_meta = pipe, family, lora_meta
        self.highway: AppearanceHighway | None = None
        self.pli: PhasedLora | None = None

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        lora: str | None = None,
        motion_adapter: str | None = None,
        highway: bool | None = None,
        highway_blocks: str | list[int] | None = None,
        highway_scale: float | None = None,
        pli_tau: int | None = None,
        lora_scale: float = 1.0,
        fuse_lora: bool = False,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> MotionPipeline:
        """Highway and PLI settings default to the LoRA's motionsep.json; explicit arguments win.

        `fuse_lora` folds the motion LoRA into the weights (no LoRA matmuls at sampling; PLI then
        swaps the fused and plain weights, exactly).
        """
        pipe, family = load_pipeline(model, motion_adapter, dtype=dtype, device=device)
        denoiser = denoiser_of(pipe)
        meta = None
        if lora is not None:
            meta = load_motion_lora(denoiser, lora)
            set_lora_scale(denoiser, lora_scale, MOTION)
        self = cls(pipe, family, meta)
        fused = FusedLora(denoiser, MOTION) if (fuse_lora and meta is not None) else None
        settings = meta.appearance_highway if meta is not None else HighwaySettings(enabled=False)
        settings = replace(
            settings,
            blocks=settings.blocks if highway_blocks is None else highway_blocks,
            scale=settings.scale if highway_scale is None else highway_scale,
        )
        enabled = bool(settings.enabled if highway is None else highway)
        if family.supports_highway or enabled:  # asked for on a DiT: AppearanceHighway says why it cannot
            self.highway = AppearanceHighway(denoiser, settings, enabled=enabled)
        tau = pli_tau if pli_tau is not None else (meta.pli_tau if meta is not None else None)
        if tau is not None and tau >= 0 and meta is not None:
            self.pli = PhasedLora(denoiser, tau, fused=fused)
        return self

    def describe(self) -> dict[str, Any]:
        return {
            "family": self.family.name,
            "lora": None
            if self.lora_meta is None
            else {"method": self.lora_meta.method, "steps": self.lora_meta.steps},
            "appearance_highway": {**self.highway.settings.to_dict(), "enabled": self.highway.enabled}
            if self.highway
            else None,
            "pli_tau": None if self.pli is None else self.pli.tau,
        }

    def _defaults(self, settings: SamplingSettings) -> tuple[int, int, int]:
        meta = self.lora_meta
        if self.family.native_size is not None:
            native = list(self.family.native_size)
        else:
            side = self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor
            native = [side, side]
        size = meta.size if meta is not None else native
        default_frames = 17 if self.family.video_vae else 16  # Wan's causal VAE: 1 + 4k frames
        return (
            settings.num_frames or (meta.num_frames if meta is not None else default_frames),
            settings.height or size[0],
            settings.width or size[1],
        )

    def check_prompt(self, prompt: str) -> None:
        if not prompt or not prompt.strip():
            raise MotionsepError('empty prompt: describe the video you want, e.g. --prompt "a monkey playing golf"')
        tokenizer = self.pipe.tokenizer
        count = len(tokenizer(prompt).input_ids)
        if count > tokenizer.model_max_length:
            warnings.warn(
                f"prompt has {count} tokens; the text encoder reads {tokenizer.model_max_length}, the rest is cut off",
                stacklevel=2,
            )

    @torch.no_grad()
    def videos(self, prompts: list[str], seeds: list[int], settings: SamplingSettings | None = None) -> np.ndarray:
        """A batch of videos, prompt i with seed i, as uint8 (batch, frames, height, width, 3).

        Each video has its own generator, so a video depends on its prompt and seed only.
        """
        settings = settings or SamplingSettings()
        for prompt in prompts:
            self.check_prompt(prompt)
        num_frames, height, width = self._defaults(settings)
        if self.family.video_vae and (num_frames - 1) % 4:
            raise MotionsepError(
                f"{num_frames} frames: Wan's causal VAE decodes 1 + 4k frames (17, 33, 49, 81, ...); "
                f"pass --frames {4 * round((num_frames - 1) / 4) + 1}"
            )
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            result = self.pipe(
                prompt=list(prompts),
                negative_prompt=None if settings.negative_prompt is None else [settings.negative_prompt] * len(prompts),
                num_frames=num_frames,
                height=height,
                width=width,
                num_inference_steps=settings.steps,
                guidance_scale=settings.guidance,
                generator=generators,
                output_type="np",
            )
        frames = np.asarray(result.frames)
        return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)

    def __call__(self, prompt: str, seed: int = 0, settings: SamplingSettings | None = None) -> np.ndarray:
        """One video as uint8 frames (frames, height, width, 3)."""
        return self.videos([prompt], [seed], settings)[0]


def slug(text: str, limit: int = 48) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "video"


def generate_videos(
    pipeline: MotionPipeline,
    prompts: list[str],
    seeds: list[int],
    out_dir: str | Path,
    settings: SamplingSettings | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """An MP4 and a GIF per prompt and seed, one contact sheet, and generation.json; returns the records."""
    settings = settings or SamplingSettings()
    out = Path(out_dir)
    for prompt in prompts:
        pipeline.check_prompt(prompt)
    jobs = [(p, s, out / f"{slug(p)}-seed{s}") for p in prompts for s in seeds]
    refuse_existing([stem.with_suffix(".mp4") for _, _, stem in jobs], overwrite)
    out.mkdir(parents=True, exist_ok=True)
    records, rows = [], []
    for prompt, seed, stem in tqdm(jobs, desc="generate", disable=not progress):
        frames = pipeline(prompt, seed, settings)
        mp4 = write_mp4(frames, stem.with_suffix(".mp4"), settings.fps)
        gif = write_gif(frames, stem.with_suffix(".gif"), settings.fps)
        records.append(
            {
                "prompt": prompt,
                "seed": seed,
                "mp4": str(mp4),
                "gif": str(gif),
                "frames": int(frames.shape[0]),
                "size": list(frames.shape[1:3]),
            }
        )
        rows.append((f"{prompt} (seed {seed})", frames))
    sheet = contact_sheet(rows, out / "contact_sheet.png")
    summary = {
        "settings": settings.__dict__,
        "pipeline": pipeline.describe(),
        "videos": records,
        "contact_sheet": str(sheet),
    }
    (out / "generation.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return records
