"""Where does a model's motion live? Switch off each temporal pathway and measure what remains.

A family names its temporal pathways (``Family.pathways``: ModelScope's temporal attention, temporal
convolutions and ``transformer_in``; AnimateDiff's motion-module attention and feed-forward; a DiT's
cross-frame attention, switched off by restricting every self-attention to the tokens of its own frame).
The probe switches each off with hooks on the unmodified diffusers modules and measures:

* **cross-frame skill kept** (any model): clips are noised at a few timesteps and the model predicts
  the diffusion target; only the part of the prediction that changes across frames is scored
  (prediction and target minus their mean over frames). The per-frame model, every pathway off,
  sets the floor. ``kept = (E_floor - E_off) / (E_floor - E_full)``: 100% means the pathway is not
  needed for what the model knows about how frames differ, 0% means all of it went through it.
  A few forward passes per pathway; no sampling.
* **motion kept** (shapes-world models): videos are generated for prompts with pretraining motions
  and read back by the world's evaluator; ``kept = motion accuracy off / motion accuracy on``.

TAP trains LoRA on temporal attention's query and key only, so it has a lever on a model where
switching temporal attention off loses most of the motion (``kept`` well below 50%) and none on a
model that keeps its motion without it.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import MotionsepError
from .families import Pathway
from .losses import DenoisingObjective, Objective, across_frames, objective_for
from .models import (
    Denoiser,
    Family,
    _Bypass,
    denoiser_of,
    family_of,
    family_of_pipe,
    frame_of_token,
    temporal_layers_bypassed,
)

ALL_OFF = "every temporal layer"  # the per-frame image model: the floor of every measure
NOTHING_OFF = "nothing"


def pathway_modules(denoiser: Denoiser, pathway: Pathway) -> list[str]:
    """Names of the UNet modules `pathway` switches off (full matches of its pattern)."""
    pattern = re.compile(pathway.pattern)
    return [name for name, _ in denoiser.named_modules() if name and pattern.fullmatch(name)]


def _zero_output(module, args, kwargs, output):
    if isinstance(output, tuple):
        return (torch.zeros_like(output[0]),) + tuple(output[1:])
    return torch.zeros_like(output)


class _SameFrameAttention:
    """Forward pre-hooks that give a DiT's self-attentions a mask letting each token attend only to tokens of
    its own frame. The DiT's tokens are frame-major (patchified (frames, height, width) flattened), so the mask
    is block-diagonal; its size is read from the input of each forward of the model."""

    def __init__(self, model: Denoiser, attentions: list[torch.nn.Module]):
        self.mask: torch.Tensor | None = None
        self._handles = [model.register_forward_pre_hook(self._read_shape, with_kwargs=True)]
        self._handles += [a.register_forward_pre_hook(self._restrict, with_kwargs=True) for a in attentions]
        self.model = model

    def _read_shape(self, module, args, kwargs):
        sample = args[0] if args else kwargs["hidden_states"]
        frames = frame_of_token(self.model, sample.shape, sample.device)
        self.mask = frames[:, None] == frames[None, :]

    def _restrict(self, module, args, kwargs):
        if len(args) > 2:  # WanTransformerBlock calls attn1(hidden_states, None, None, rotary_emb)
            return (*args[:2], self.mask, *args[3:]), kwargs
        return args, {**kwargs, "attention_mask": self.mask}

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


class pathways_off:
    """Context manager: the named pathways of `family` switched off on `denoiser` by hooks.

    ALL_OFF makes every temporal layer an identity (MotionDirector's spatial path): attention and
    feed-forward alone would leave the temporal transformers' GroupNorm, whose statistics span frames.
    On a DiT it is every pathway at once (its only one: cross-frame attention).
    """

    def __init__(self, denoiser: Denoiser, family: Family, names: list[str]):
        self.denoiser, self.same_frame = denoiser, []
        if names == [ALL_OFF] and family.all_temporal_off() is not None:
            names = list(family.all_temporal_off() or ())
        if names == [ALL_OFF]:
            self.zero, self.identity = [], temporal_layers_bypassed(denoiser).modules
            return
        by_name = {p.name: p for p in family.pathways}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"{family.name} has no pathway {unknown}; it has {list(by_name)}")
        modules = dict(denoiser.named_modules())
        self.zero = [
            modules[m] for n in names if by_name[n].action == "zero" for m in pathway_modules(denoiser, by_name[n])
        ]
        self.identity = [
            modules[m] for n in names if by_name[n].action == "identity" for m in pathway_modules(denoiser, by_name[n])
        ]
        self.same_frame = [
            modules[m]
            for n in names
            if by_name[n].action == "same_frame"
            for m in pathway_modules(denoiser, by_name[n])
        ]

    def __enter__(self):
        self._handles = [m.register_forward_hook(_zero_output, with_kwargs=True) for m in self.zero]
        self._bypass = _Bypass(self.identity)
        self._same_frame = _SameFrameAttention(self.denoiser, self.same_frame) if self.same_frame else None
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._bypass.remove()
        if self._same_frame is not None:
            self._same_frame.remove()


def settings_to_probe(family: Family) -> dict[str, list[str]]:
    """Every setting the probe measures: nothing off, each pathway alone, every temporal layer (on a DiT, whose
    one pathway is all of it, the floor is that pathway's row)."""
    pathways = {p.name: [p.name] for p in family.pathways}
    return {NOTHING_OFF: [], **pathways, ALL_OFF: [ALL_OFF]}


# --- the model's own measure -------------------------------------------------------------------


@dataclass
class ProbeBatch:
    """Clean latents (batch, channels, frames, h, w) and the UNet's text conditioning for them."""

    latents: torch.Tensor
    text: torch.Tensor


@torch.no_grad()
def cross_frame_errors(
    denoiser, objective: Objective, family: Family, batch: ProbeBatch, timesteps: tuple[int, ...], seed: int = 0
) -> list[float]:
    """Per timestep, the mean squared error of the across-frame part of the prediction (fixed noise)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(batch.latents.shape, generator=g)
    errors = []
    for step in timesteps:
        t = torch.full((batch.latents.shape[0],), step, dtype=torch.long)
        noisy = objective.noisy(batch.latents, noise, t)
        pred = family.predict(denoiser, noisy, t, batch.text)
        target = objective.target(batch.latents, noise, t)
        errors.append(torch.mean((across_frames(pred) - across_frames(target)) ** 2).item())
    return errors


def skill_kept(errors: dict[str, float]) -> dict[str, float | None]:
    """Per setting, the share of the full model's cross-frame skill left (None where the model has none)."""
    floor, full = errors[ALL_OFF], errors[NOTHING_OFF]
    if floor - full <= 1e-12 * max(1.0, abs(floor)):
        return {k: None for k in errors}
    return {k: round((floor - e) / (floor - full), 4) for k, e in errors.items()}


# --- probing a pipeline ------------------------------------------------------------------------


@dataclass
class ProbeSettings:
    timesteps: tuple[int, ...] = (100, 300, 500, 700, 900)
    clips: int = 8  # rendered or generated clips for the model measure
    generations: int = 24  # shapes world: prompts (seeds 0..n-1) for the evaluator measure
    seed: int = 0
    progress: bool = True


def probe_batch_from_videos(pipe, videos: np.ndarray, captions: list[str]) -> ProbeBatch:
    """Videos uint8 (batch, frames, h, w, 3) encoded by the pipeline's VAE, captions by its text encoder."""
    from .data import Clip
    from .encoding import encode_clips, encode_text

    clips = [Clip(path=None, frames=v, caption=c) for v, c in zip(videos, captions)]  # type: ignore[arg-type]
    family = family_of_pipe(pipe)
    return ProbeBatch(encode_clips(pipe, family, clips, "cpu"), encode_text(pipe, family, captions, "cpu"))


def probe_objective(scheduler) -> Objective:
    """How the probe noises clips: as the model was trained (a sampling scheduler's training-time twin)."""
    from diffusers import DDPMScheduler

    objective = objective_for(scheduler)
    if isinstance(objective, DenoisingObjective):
        return DenoisingObjective(DDPMScheduler.from_config(scheduler.config))
    return objective


def model_measure(pipe, family: Family, batch: ProbeBatch, settings: ProbeSettings) -> dict[str, Any]:
    """Cross-frame error and skill kept for every setting of `family`."""
    objective = probe_objective(pipe.scheduler)
    denoiser = denoiser_of(pipe)
    per_step = {}
    for name, off in tqdm(
        settings_to_probe(family).items(), desc="probe: model measure", disable=not settings.progress
    ):
        with pathways_off(denoiser, family, off):
            per_step[name] = cross_frame_errors(denoiser, objective, family, batch, settings.timesteps, settings.seed)
    errors = {name: float(np.mean(e)) for name, e in per_step.items()}
    return {
        "cross_frame_error": errors,
        "kept": skill_kept(errors),
        "kept_per_timestep": {
            str(t): skill_kept({n: e[i] for n, e in per_step.items()}) for i, t in enumerate(settings.timesteps)
        },
    }


# Prompts for a model that came with no clips: the model makes its own, with motion in them.
GENERIC_PROMPTS = (
    "a car driving along a coastal road",
    "a person walking through a park",
    "waves rolling onto a beach",
    "a dog running across a field",
    "a flag waving in the wind",
    "a train passing through the countryside",
    "a bird flying over a lake",
    "clouds drifting over mountains",
)
# Why the numbers on random weights mean nothing, printed with them.
RANDOM_WEIGHTS_NOTE = "random weights: the architecture runs, the numbers carry no meaning"


def check_probe_pathways(family: Family) -> None:
    if not family.pathways:
        raise MotionsepError(
            f"the {family.name} family declares no temporal pathway to switch off yet, so the probe has nothing to "
            "measure on it: probe a ModelScope, AnimateDiff or Wan model"
        )


def probe_pipeline(pipe, family: Family, batch: ProbeBatch, settings: ProbeSettings, source: str) -> dict[str, Any]:
    check_probe_pathways(family)
    result = model_measure(pipe, family, batch, settings)
    return {
        "family": family.name,
        "pathways": {
            p.name: {"summary": p.summary, "action": p.action, "modules": len(pathway_modules(denoiser_of(pipe), p))}
            for p in family.pathways
        },
        "tap_pathway": next(p.name for p in family.pathways if p.adapted_by_tap),
        "clips": {"source": source, "count": int(batch.latents.shape[0]), "frames": int(batch.latents.shape[2])},
        "timesteps": list(settings.timesteps),
        "model_measure": result,
    }


def probe_model(
    model: str,
    clips: str | None = None,
    caption: str | None = None,
    frames: int = 16,
    size: tuple[int, int] | None = None,
    settings: ProbeSettings | None = None,
) -> dict[str, Any]:
    """Probe any model: its own clips from `clips` (a video or folder) or, without them, generated by it."""
    from .data import find_clips
    from .generate import MotionPipeline, SamplingSettings
    from .video import read_video

    settings = settings or ProbeSettings()
    pipeline = MotionPipeline.from_pretrained(model)
    pipe, family = pipeline.pipe, pipeline.family
    height, width = size or pipeline.native_sampling()[1]
    frames = family.valid_frames(pipe, frames)
    if clips is not None:
        from .data import caption_for

        paths = find_clips(clips)[: settings.clips]
        videos = np.stack([read_video(p, num_frames=frames, size=(height, width)) for p in paths])
        captions = [
            caption_for(p, caption) if caption is not None or p.with_suffix(".txt").is_file() else "" for p in paths
        ]
        source = f"{len(paths)} clip(s) from {clips}"
    else:
        rng = random.Random(settings.seed)
        captions = [GENERIC_PROMPTS[i % len(GENERIC_PROMPTS)] for i in range(settings.clips)]
        rng.shuffle(captions)
        sampling = SamplingSettings(num_frames=frames, height=height, width=width, steps=20, guidance=7.5)
        videos = pipeline.videos(captions, list(range(len(captions))), sampling)
        source = "generated by the model itself from generic prompts (no --clips given)"
    batch = probe_batch_from_videos(pipe, videos, captions)
    return probe_pipeline(pipe, family, batch, settings, source)


def probe_denoiser_config(
    config: dict[str, Any], frames: int = 8, latent_size: int = 8, progress: bool = True
) -> dict[str, Any]:
    """The probe on an architecture alone (a UNet or DiT config): random weights, random latents and text.

    One clip at one timestep: the architecture must run, and its numbers mean nothing anyway."""
    from types import SimpleNamespace

    from .models import build_denoiser_from_config, family_of_denoiser_class

    check_probe_pathways(family_of_denoiser_class(config.get("_class_name", "")))  # before building a large model
    settings = ProbeSettings(timesteps=(500,), clips=1, progress=progress)
    torch.manual_seed(settings.seed)
    denoiser: Any = build_denoiser_from_config(config, device="cpu").eval()
    family = family_of(denoiser)
    g = torch.Generator().manual_seed(settings.seed)
    latents = torch.randn((settings.clips, denoiser.config.in_channels, frames, latent_size, latent_size), generator=g)
    text = torch.randn((settings.clips, 16, family.text_width(denoiser)), generator=g)
    pipe = SimpleNamespace(**{family.denoiser: denoiser}, scheduler=family.training_scheduler())
    report = probe_pipeline(pipe, family, ProbeBatch(latents, text), settings, "random latents")
    report["note"] = RANDOM_WEIGHTS_NOTE
    return report


# --- report ------------------------------------------------------------------------------------


def _pct(value) -> str:
    return "  -  " if value is None else f"{value:5.0%}"


def format_probe(report: dict[str, Any]) -> str:
    """The probe's table for the terminal: one row per setting, each measure's share of motion kept."""
    model_kept = report["model_measure"]["kept"]
    world = report.get("evaluator_measure")
    header = f"{'switched off':<30} {'cross-frame skill kept':>22}"
    if world:
        header += f" {'motion kept':>12} {'motion acc.':>12} {'colour acc.':>12}"
    lines = [f"probe: {report['family']} model; clips: {report['clips']['source']}", header, "-" * len(header)]
    for name in model_kept:
        row = f"{name:<30} {_pct(model_kept[name]):>22}"
        if world:
            acc = world["accuracy"][name]
            row += f" {_pct(world['kept'][name]):>12} {acc['motion']['value']:>12.0%} {acc['colour']['value']:>12.0%}"
        lines.append(row)
    if world:
        lines.append(
            f"(evaluator: {world['generations']} generations per row, pretraining motions other than 'still'; "
            f"the two measures rank the pathways {'the same' if report['same_ranking'] else 'differently'})"
        )
    attention = report["tap_pathway"]
    kept = (world or report["model_measure"])["kept"].get(attention)
    if "note" in report:
        lines.append(f"note: {report['note']}")
    elif kept is not None:
        verdict = "has a lever" if kept <= 0.5 else "has little to work with"
        lines.append(
            f"TAP adapts {attention}; with it off {kept:.0%} of the motion remains, so TAP {verdict} on this model."
        )
    return "\n".join(lines)
