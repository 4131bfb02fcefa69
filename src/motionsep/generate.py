"""Sampling with a motion LoRA: Appearance Highway and PLI on a plain diffusers pipeline, then export.

``MotionPipeline`` wraps the family's own diffusers pipeline (``TextToVideoSDPipeline``,
``AnimateDiffPipeline`` or ``WanPipeline``); the LoRA is loaded with peft, the highway and PLI are hooks,
so the sampling loop is diffusers' own.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .adapters import (
    MOTION,
    FusedLora,
    load_appearance_lora,
    load_motion_lora,
    read_lora_record,
    set_lora_scale,
)
from .errors import MotionsepError, refuse_existing
from .highway import AppearanceHighway, HighwaySettings
from .models import denoiser_of, load_pipeline, model_card
from .parts import load_parts
from .pli import PhasedLora
from .record import METADATA_NAME, LoraRecord, expert_pair
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
    noise_prior: float = 0.0  # MotionDirector's noise prior P (0: plain noise); needs prior_clip
    prior_clip: str | None = None
    image: str | None = None  # an image-to-video model's first frame (an image file); required there, refused else


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA of a mix: a folder or file, and its weight (`--lora PATH` or `--lora PATH:0.6`).

    A motionsep folder (it has motionsep.json) is a motion LoRA: PLI and the highway act on it. Anything else
    is an appearance LoRA of another trainer, in diffusers format: it stays on at every step."""

    path: str
    weight: float = 1.0

    @classmethod
    def parse(cls, text: str) -> LoraSpec:
        path, sep, weight = text.rpartition(":")
        if not sep or not path or Path(text).exists():
            return cls(text)
        try:
            return cls(path, float(weight))
        except ValueError:
            raise MotionsepError(
                f"LoRA weight '{weight}' in '{text}' is not a number: write --lora PATH or --lora PATH:0.6"
            ) from None

    @property
    def is_motion(self) -> bool:
        return (Path(self.path) / METADATA_NAME).is_file()

    def expanded(self) -> list[LoraSpec]:
        """The LoRAs this stands for: an `expert: both` run's folder is its two experts' LoRAs, at its weight."""
        pair = expert_pair(self.path)
        return [self] if pair is None else [LoraSpec(str(folder), self.weight) for folder in pair]


def _load_motion_loras(pipe, family, specs: list[LoraSpec], lora_scale: float):
    """The motion LoRAs of `specs`, each into the expert it was trained on (of a model with two experts), as
    adapters MOTION, MOTION-1, ...; returns the first one's record, the adapters on the first one's expert (what
    PLI switches and fusing folds), what was loaded (for describe) and the LoRAs' parts."""
    meta, motion_names, loaded, parts = None, [], [], []
    for i, spec in enumerate(s for s in specs if s.is_motion):
        name = MOTION if i == 0 else f"{MOTION}-{i}"
        denoiser = denoiser_of(pipe, read_lora_record(spec.path).expert)
        record = load_motion_lora(denoiser, spec.path, name)
        meta = meta or record
        if record.lora_config:  # a method may keep its motion in parts alone
            set_lora_scale(denoiser, lora_scale * spec.weight, name)
            if denoiser is denoiser_of(pipe, meta.expert):
                motion_names.append(name)
        # its parts that are not LoRAs, weighted as its LoRA (always on: PLI switches LoRAs only)
        parts += load_parts(denoiser, family, record.parts, spec.path, lora_scale * spec.weight)
        loaded.append({"path": spec.path, "weight": spec.weight, "kind": "motion", "method": record.method})
    return meta, motion_names, loaded, parts


class MotionPipeline:
    """A base pipeline with optional motion LoRAs (mixed by weight), appearance LoRAs, Appearance Highway and
    Phased LoRA Integration."""

    def __init__(self, pipe, family, lora_meta: LoraRecord | None = None):
        self.pipe, self.family, self.lora_meta = pipe, family, lora_meta
        self.highway: AppearanceHighway | None = None
        self.pli: PhasedLora | None = None
        self.loras: list[dict[str, Any]] = []  # what is loaded, for describe()
        self.parts: list[Any] = []  # the motion LoRAs' parts that are not LoRAs (parts.py)
        self.card = model_card(str(getattr(pipe, "name_or_path", "") or ""))  # read once, not each video
        self._inverted: tuple[Any, torch.Tensor] | None = None  # the noise prior's inverted clip, by its key
        self._opened: tuple[str, Any] | None = None  # the first-frame image last read, by its path

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        lora: str | LoraSpec | list[str | LoraSpec] | None = None,
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
        """Highway and PLI settings default to the first motion LoRA's motionsep.json; explicit arguments win.

        `lora`: one LoRA or several (`LoraSpec`s or "PATH[:WEIGHT]" strings). Motion LoRAs are mixed by weight
        (their deltas add, each times its weight and `lora_scale`); appearance LoRAs stack on them.
        `fuse_lora` folds the motion LoRAs into the weights (no LoRA matmuls at sampling; PLI then
        swaps the fused and plain weights, exactly).
        """
        given = [] if lora is None else [lora] if isinstance(lora, (str, LoraSpec)) else list(lora)
        specs = [x for s in given for x in (s if isinstance(s, LoraSpec) else LoraSpec.parse(s)).expanded()]
        for spec in specs:
            if not Path(spec.path).exists():
                raise MotionsepError(f"LoRA '{spec.path}' does not exist: give a LoRA folder or .safetensors file")
        pipe, family = load_pipeline(model, motion_adapter, dtype=dtype, device=device)
        meta, motion_names, loaded, parts = _load_motion_loras(pipe, family, specs, lora_scale)
        denoiser = denoiser_of(pipe)
        for j, spec in enumerate(s for s in specs if not s.is_motion):
            name = f"appearance-{j}"
            load_appearance_lora(pipe, denoiser, spec.path, name)
            set_lora_scale(denoiser, spec.weight, name)
            loaded.append({"path": spec.path, "weight": spec.weight, "kind": "appearance"})
        self = cls(pipe, family, meta)
        self.loras, self.parts = loaded, parts
        first = denoiser_of(pipe, meta.expert if meta is not None else None)
        fused = FusedLora(first, motion_names) if (fuse_lora and motion_names) else None
        self._hook(motion_names, fused, highway, highway_blocks, highway_scale, pli_tau)
        return self

    @classmethod
    def around(cls, pipe, family, record: LoraRecord) -> MotionPipeline:
        """The pipeline a training run holds, its motion LoRA (adapter MOTION) and parts already in its denoiser,
        sampled as `from_pretrained` would sample the LoRA folder `record` describes: its highway and PLI
        defaults hooked on until `release`. Validation samples this way, with no second copy of the base."""
        self = cls(pipe, family, record)
        self._hook([MOTION] if record.lora_config else [], None, None, None, None, None)
        return self

    def _hook(self, motion_names: list[str], fused, highway, highway_blocks, highway_scale, pli_tau) -> None:
        """The Appearance Highway and PLI hooks: the motion LoRA's recorded settings, explicit arguments winning."""
        meta = self.lora_meta
        denoiser = denoiser_of(self.pipe, meta.expert if meta is not None else None)
        settings = meta.appearance_highway if meta is not None else HighwaySettings(enabled=False)
        settings = replace(
            settings,
            blocks=settings.blocks if highway_blocks is None else highway_blocks,
            scale=settings.scale if highway_scale is None else highway_scale,
        )
        enabled = bool(settings.enabled if highway is None else highway)
        if self.family.supports_highway or enabled:  # asked for on a DiT: AppearanceHighway says why it cannot
            self.highway = AppearanceHighway(denoiser, settings, enabled=enabled)
        tau = pli_tau if pli_tau is not None else (meta.pli_tau if meta is not None else None)
        if tau is not None and tau >= 0 and meta is not None and motion_names:
            self.pli = PhasedLora(denoiser, tau, motion_names, fused=fused)

    def release(self) -> None:
        """Take the highway and PLI hooks off the denoiser (the pipeline stays usable without them)."""
        for hooks in (self.highway, self.pli):
            if hooks is not None:
                hooks.remove()
        self.highway = self.pli = None

    def describe(self) -> dict[str, Any]:
        return {
            "family": self.family.name,
            "lora": None
            if self.lora_meta is None
            else {"method": self.lora_meta.method, "steps": self.lora_meta.steps},
            "loras": self.loras,
            "appearance_highway": {**self.highway.settings.to_dict(), "enabled": self.highway.enabled}
            if self.highway
            else None,
            "pli_tau": None if self.pli is None else self.pli.tau,
        }

    def native_sampling(self) -> tuple[int, list[int]]:
        """(frames, [height, width]) the base model samples at when asked for nothing else: what its folder's
        model_card.json declares ("clip_frames", "size": a model trained on small clips, such as the embedded
        ones), else the family's (`Family.native_sampling`)."""
        frames, size = self.family.native_sampling(self.pipe)
        return int(self.card.get("clip_frames", frames)), list(self.card.get("size", size))

    def resolved(self, settings: SamplingSettings) -> tuple[int, int, int]:
        """(frames, height, width) a video of `settings` gets: the given ones, else the LoRA's training clips', else
        the model's own (`native_sampling`)."""
        meta = self.lora_meta
        frames, size = (meta.num_frames, meta.size) if meta is not None else self.native_sampling()
        height = size[0] if settings.height is None else settings.height
        width = size[1] if settings.width is None else settings.width
        return frames if settings.num_frames is None else settings.num_frames, height, width

    def size_multiple(self) -> int:
        """What height and width must be multiples of (`Family.size_multiple`)."""
        return self.family.size_multiple(self.pipe)

    def check_settings(self, settings: SamplingSettings, frames: int, height: int, width: int) -> None:
        """One-line errors for what the pipeline would fail on deep inside (or silently change)."""
        if frames < 1:
            raise MotionsepError(f"--frames {frames}: give 1 or more frames")
        if settings.steps < 1:
            raise MotionsepError(f"--steps {settings.steps}: give 1 or more denoising steps")
        if not math.isfinite(settings.guidance) or settings.fps < 1:
            raise MotionsepError("--guidance must be a finite number and --fps at least 1")
        self._first_frame(settings.image)  # given where it must be, and readable
        m = self.size_multiple()
        if height < m or width < m or height % m or width % m:
            near = [max(m, m * round(v / m)) for v in (height, width)]
            raise MotionsepError(
                f"{height} x {width}: this model's height and width are multiples of {m}; pass --height {near[0]} "
                f"--width {near[1]}"
            )
        need, have = sampling_memory(frames, height, width), available_memory(self.pipe.device)
        if need > have:
            raise MotionsepError(
                f"{frames} frames of {height} x {width} need about {need / 2**30:.0f} GiB to decode, more than the "
                f"{have / 2**30:.0f} GiB here; ask for a smaller size or fewer frames"
            )

    def _check_position_reach(self, height: int, width: int) -> None:
        """A DiT's rotary position table covers a limited side; beyond it diffusers fails deep inside the forward.
        A small model (the shapes world's) cannot reach the family's 480 x 832."""
        reach = self.family.position_reach(self.pipe)
        if reach is not None and max(height, width) > reach:
            raise MotionsepError(
                f"{height} x {width} is beyond this model's reach: its transformer places at most {reach} px a side; "
                "ask for a smaller height and width (the shapes-world models are 32 x 32)"
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
        num_frames, height, width = self.resolved(settings)
        self.check_settings(settings, num_frames, height, width)
        self.family.check_frames(self.pipe, num_frames)
        self._check_position_reach(height, width)
        first_frame = self._first_frame(settings.image)
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        latents = self._prior_latents(settings, num_frames, height, width, generators) if settings.noise_prior else None
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
                latents=latents,
                output_type="np",
                **self.family.sampling_arguments(self.pipe),
                **({"image": first_frame} if first_frame is not None else {}),
            )
        frames = np.asarray(result.frames)
        return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)

    def _first_frame(self, image: str | None):
        """The image an image-to-video model starts from (the pipeline resizes it to the video's size); one-line
        errors for a missing or unreadable one, or for an image given to a text-to-video model."""
        if self.family.takes_image() and not image:
            raise MotionsepError("this is an image-to-video model: pass --image START.png, the video's first frame")
        if image and not self.family.takes_image():
            raise MotionsepError(
                f"--image needs an image-to-video model (a WanImageToVideoPipeline); this {self.family.name} model "
                "makes videos from text alone: drop --image or pass such a model"
            )
        if not image:
            return None
        if self._opened is not None and self._opened[0] == image:  # read once for every video of a batch
            return self._opened[1]
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(image) as opened:
                self._opened = (image, opened.convert("RGB"))
                return self._opened[1]
        except (OSError, UnidentifiedImageError):
            raise MotionsepError(
                f"--image '{image}' is not an image file PIL can read (PNG, JPEG, WebP, ...)"
            ) from None

    def _prior_latents(self, settings: SamplingSettings, frames: int, height: int, width: int, generators):
        """Initial latents with the noise prior: the inverted prior clip mixed with each seed's own noise."""
        from .noise_prior import clip_latents, invert_latents, mix

        if not settings.prior_clip:
            raise MotionsepError("--noise-prior needs --prior-clip: the clip whose layout the noise should carry")
        key = (settings.prior_clip, frames, height, width, settings.steps)
        if self._inverted is None or self._inverted[0] != key:  # one inversion per clip and size, reused
            latents = clip_latents(self.pipe, self.family, settings.prior_clip, frames, height, width)
            self._inverted = (key, invert_latents(self.pipe, self.family, latents, settings.steps))
        inverted = self._inverted[1]
        noise = [torch.randn(inverted.shape[1:], generator=g).to(inverted) for g in generators]
        return torch.stack([mix(settings.noise_prior, inverted[0], n) for n in noise])

    def __call__(self, prompt: str, seed: int = 0, settings: SamplingSettings | None = None) -> np.ndarray:
        """One video as uint8 frames (frames, height, width, 3)."""
        return self.videos([prompt], [seed], settings)[0]


def sampling_memory(frames: int, height: int, width: int) -> int:
    """Bytes a video of this size needs at least, from the VAE decoder's last stage: every video VAE here decodes
    at full resolution with 128 channels in fp32 and holds about three such tensors a frame (one frame or one
    causal chunk at a time), plus the decoded frames themselves. A floor, not a forecast: it refuses what cannot
    fit (a 20,000-pixel side), not what might."""
    return height * width * (128 * 4 * 3 + frames * 3 * 4)


def available_memory(device: torch.device) -> int:
    """Bytes the sampling device has in all: the GPU's memory, or the machine's physical memory."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


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
    pipeline.check_settings(settings, *pipeline.resolved(settings))  # before anything is written
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
