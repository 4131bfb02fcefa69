"""Learning a motion LoRA: the accelerate training loop.

One function, :func:`train`, reads like the method: cache latents and text once, inject LoRA with
peft as the preset says, then for each step noise a clip, run the denoiser (UNet or DiT), take the loss, step.
Dual-path presets (``motiondirector``, ``tap-official``) run MotionDirector's spatial path first on
one random frame with the temporal layers bypassed (a DiT: a one-frame clip, so its attention sees that
frame alone); each path's loss updates only its own LoRA. The objective (denoising or flow matching)
follows the model's scheduler (``losses.objective_for``).
Runs on one CPU as it is and on several GPUs under ``accelerate launch`` with no change.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import re
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors import SafetensorError
from tqdm.auto import tqdm

from . import __version__
from .adapters import (
    METADATA_NAME,
    MOTION,
    SPATIAL,
    WEIGHTS_NAME,
    add_lora,
    lora_disabled,
    lora_parameters,
    make_lora_config,
    read_lora_weights,
    save_lora_folder,
    set_lora_weights,
)
from .checkpoint import (
    complete_checkpoints,
    latest_checkpoint,
    load_training_state,
    save_rng_state,
    save_training_state,
)
from .config import AUTO, LoraSettings, TrainConfig
from .data import augmented, load_clips
from .encoding import encode_clips, encode_conditions, encode_text
from .errors import MotionsepError, refuse_nonempty
from .heads import choose_heads, confine_to_heads, cross_frame_shares
from .highway import AppearanceHighway
from .losses import Objective, across_frames, debiased_loss, objective_for
from .methods import TARGET_LAYERS, Method, lora_targets, resolve_method
from .models import (
    Denoiser,
    Family,
    denoiser_of,
    expert_boundary,
    experts_of,
    load_pipeline,
    resolve_model,
    temporal_layers_bypassed,
    token_grid,
    transformer_blocks,
)
from .parts import PARTS, Part, save_parts
from .record import EXPERT_FOLDERS, LoraRecord
from .tracks import latent_tracks, reference_tracks, tracking_loss
from .validation import ValidationSampler, is_validation_step


@dataclass
class TrainingState:
    """Everything a step needs; built by :func:`prepare`."""

    config: TrainConfig
    method: Method
    family: Family
    pipe: Any  # the loaded pipeline; None where only the denoiser was built (the cost bench)
    denoiser: Denoiser  # the pipeline's UNet or, in a DiT family, its transformer (models.denoiser_of)
    latents: torch.Tensor  # (clips, channels, latent frames, h, w), normalised as the VAE's pipeline does
    text: torch.Tensor  # (clips, tokens, dim)
    lora_configs: dict[str, Any]
    targets: dict[str, list[str]]
    objective: Objective
    # what the spatial path samples one frame of: the latents themselves when the VAE works frame by frame;
    # every frame encoded as a one-frame clip when it encodes clips causally (a latent frame there is 4 frames)
    frame_latents: torch.Tensor | None = None
    highway: AppearanceHighway | None = None
    params: dict[str, list[torch.nn.Parameter]] = field(default_factory=dict)
    clip_indices: list[int] | None = None  # this process's shard of the clips; None: all of them
    heads: dict[str, list[int]] | None = None  # the heads the LoRA is confined to (Method.head_fraction)
    parts: dict[str, Part] = field(default_factory=dict)  # motion parts that are not LoRAs (Method.parts)
    # (clips, tracks, latent frames, 2): the reference clips' optical-flow tracks (Method.tracking_weight)
    tracks: torch.Tensor | None = None
    # what the denoiser is conditioned on besides text, clips first (an image-to-video model: each clip's first
    # frame, `Family.encode_conditions`); empty for a text-to-video model
    conditions: dict[str, torch.Tensor] = field(default_factory=dict)


# --- caching -----------------------------------------------------------------------------------


# --- setup -------------------------------------------------------------------------------------


def enable_gradient_checkpointing(denoiser: Denoiser) -> None:
    """diffusers checkpoints UNetMotionModel itself; UNet3DConditionModel declares no support, so
    each of its blocks' forward is wrapped in non-reentrant torch checkpointing (hooks keep working)."""
    if getattr(denoiser, "_supports_gradient_checkpointing", False):
        denoiser.enable_gradient_checkpointing()
        return
    import torch.utils.checkpoint as ckpt

    blocks = [denoiser.transformer_in, *denoiser.down_blocks, denoiser.mid_block, *denoiser.up_blocks]
    for block in blocks:
        forward = block.forward

        def checkpointed(*args, _forward=forward, **kwargs):
            if torch.is_grad_enabled():
                return ckpt.checkpoint(_forward, *args, use_reentrant=False, **kwargs)
            return _forward(*args, **kwargs)

        block.forward = checkpointed


def attach_method_lora(denoiser: Denoiser, method: Method, lora: LoraSettings):
    """Freeze the UNet and inject the method's LoRA adapters; returns (targets, peft configs, trainable params)."""
    denoiser.requires_grad_(False)
    targets = lora_targets(denoiser, method)
    lora_configs = {}
    if targets["temporal"]:  # none: the motion lives in parts alone (Method.parts)
        lora_configs[MOTION] = make_lora_config(targets["temporal"], lora.rank, lora.alpha, lora.dropout)
        add_lora(denoiser, lora_configs[MOTION], MOTION)
    if method.dual_path:
        lora_configs[SPATIAL] = make_lora_config(targets["spatial"], lora.rank, lora.alpha, lora.dropout)
        add_lora(denoiser, lora_configs[SPATIAL], SPATIAL)
    params = {MOTION: [], **{name: lora_parameters(denoiser, name) for name in lora_configs}}
    for group in params.values():
        for p in group:
            p.requires_grad_(True)
    return targets, lora_configs, params


def prepare(
    config: TrainConfig, pipe=None, family: Family | None = None, device="cpu", dtype: torch.dtype = torch.float32
) -> TrainingState:
    """Load the model at `dtype` (diffusers keeps each model's `_keep_in_fp32_modules` in fp32), cache latents and
    text, inject LoRA (and the method's other parts) as the method says."""
    if config.expert == "both":
        raise MotionsepError("expert 'both' is two runs, one an expert: train() makes them (train_each_expert)")
    if config.method != AUTO:  # a misspelt method fails before the model loads
        resolve_method(config.method, config.lora.targets)
    if pipe is None:  # on the CPU: the modules visit the device one phase at a time (`cache_inputs`)
        pipe, family = load_pipeline(config.model, config.motion_adapter, dtype=dtype, device="cpu")
    assert family is not None  # load_pipeline returns it with the pipeline
    config = with_family_defaults(config, family)
    method = resolve_method(config.method, config.lora.targets)
    if config.appearance_highway.enabled and not family.supports_highway:
        raise MotionsepError(
            f"appearance_highway.enabled is true, but the Appearance Highway reroutes U-Net skip connections and "
            f"the {family.name} family (a DiT) has none: remove it or set it to false"
        )
    family.check_clip_shape(pipe, config.data.frames, config.data.size)
    if method.dual_path and family.takes_image():
        raise MotionsepError(
            f"{method.name}'s spatial path trains on single frames, which an image-to-video model takes as its given "
            "first frame (it would learn to copy it): use tap, full-lora or another one-path method"
        )
    clips = training_clips(config, pipe, family, device)
    if config.train.memory.fp8_text_encoder:
        store_in_fp8(pipe.text_encoder, dtype)
    latents, frame_latents, text, conditions = cache_inputs(pipe, family, clips, method.dual_path, device)
    denoiser = denoiser_of(pipe, config.expert)
    if config.train.memory.fp8_base:  # before the LoRA exists: only the frozen base is stored in float8
        denoiser.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
    denoiser.to(device)  # after caching: the text encoder (Wan's UMT5 is 11 GB in bf16) has left the device
    targets, lora_configs, params = attach_method_lora(denoiser, method, config.lora)
    if config.train.memory.fp8_base or dtype != torch.float32:
        from diffusers.training_utils import cast_training_params

        cast_training_params(denoiser, dtype=torch.float32)  # peft makes a LoRA in its base layer's dtype
    state = TrainingState(
        config,
        method,
        family,
        pipe,
        denoiser,
        latents,
        text,
        lora_configs,
        targets,
        objective_for(pipe.scheduler, family.timestep_range(pipe, config.expert)),
    )
    state.frame_latents, state.params, state.conditions = frame_latents, params, conditions
    attach_method_parts(state, clips)
    if config.appearance_highway.during_training:
        state.highway = AppearanceHighway(denoiser, config.appearance_highway)
    if config.train.gradient_checkpointing:
        enable_gradient_checkpointing(denoiser)
    return state


def store_in_fp8(text_encoder, dtype: torch.dtype) -> None:
    """The text encoder's linear layers stored in float8 and computed at `dtype` (diffusers' layerwise casting).
    T5 casts its input to `wo`'s weight dtype before `wo` runs: the modules it keeps at its own dtype stay so."""
    from diffusers.hooks import apply_layerwise_casting
    from diffusers.hooks.layerwise_casting import DEFAULT_SKIP_MODULES_PATTERN

    kept = tuple(getattr(text_encoder, "_keep_in_fp32_modules", None) or ())
    skip = DEFAULT_SKIP_MODULES_PATTERN + kept
    apply_layerwise_casting(text_encoder, torch.float8_e4m3fn, dtype, skip_modules_pattern=skip)


def with_family_defaults(config: TrainConfig, family: Family) -> TrainConfig:
    """The config with `method: auto` and `train.loss: auto` made the family's own defaults."""
    method = family.default_method if config.method == AUTO else config.method
    loss = family.default_loss if config.train.loss == AUTO else config.train.loss
    return replace(config, method=method, train=replace(config.train, loss=loss))


def training_clips(config: TrainConfig, pipe, family: Family, device) -> list:
    """The reference clips and their augmented copies (data.augment_copies). For `data.augment: new-scenes` the
    whole pipeline visits the device once, before any LoRA exists, to draw every copy's scene."""
    data = config.data
    clips = load_clips(data)
    drawing = data.augment == "new-scenes" and data.augment_copies > 0
    draw = scene_drawer(pipe, family, config) if drawing else None
    if drawing:
        pipe.to(device)
    try:
        settings = (data.augment, data.colour_words, data.new_scenes, draw)
        return clips + augmented(clips, data.augment_copies, data.jitter, config.train.seed, *settings)
    finally:
        if drawing:
            pipe.to("cpu")


def scene_drawer(pipe, family: Family, config: TrainConfig) -> Callable[[str, int], np.ndarray]:
    """`draw(caption, seed)`: the base model's video of a caption at the training clips' frames and size, for
    `data.augment: new-scenes`, on whatever device the pipeline is."""
    from .generate import MotionPipeline, SamplingSettings

    data, scenes = config.data, config.data.new_scenes
    settings = SamplingSettings(data.frames, data.size[0], data.size[1], scenes.steps, scenes.guidance)
    sampler = MotionPipeline(pipe, family)  # once: it reads the model card as it is made
    return lambda caption, seed: sampler.videos([caption], [seed], settings)[0]


def cache_inputs(pipe, family: Family, clips: list, dual_path: bool, device) -> tuple[Any, ...]:
    """Latents (and, for a dual-path method on a clip-wise VAE, every frame's as a one-frame clip), caption
    embeddings and the family's other conditions (an image-to-video model's first frames), computed once with the
    encoders on the device and then sent back to the CPU, so they never sit on the device beside the denoiser.
    Returns (latents, frame_latents, text, conditions)."""
    found = [getattr(pipe, n, None) for n in ("vae", "text_encoder", "image_encoder")]
    encoders = [m for m in found if isinstance(m, torch.nn.Module)]
    for module in encoders:
        module.to(device)
    latents = frame_latents = encode_clips(pipe, family, clips, device)
    if dual_path and not family.encodes_frames_alone():
        frame_latents = encode_clips(pipe, family, clips, device, one_frame_clips=True)
    text = encode_text(pipe, family, [c.caption for c in clips], device)
    conditions = encode_conditions(pipe, family, clips, device)
    for module in encoders:
        module.to("cpu")
    return latents, frame_latents, text, conditions


def attach_method_parts(state: TrainingState, clips: list) -> None:
    """What a method trains besides LoRAs, on a state whose LoRA is still at zero: the heads its LoRA is confined
    to (chosen on the frozen model), its parts (in the motion LoRA's parameter group: one path, one backward), and
    the reference clips' tracks for its tracking loss."""
    method, denoiser, frames = state.method, state.denoiser, state.latents.shape[2]
    if method.head_fraction is not None:
        shares = cross_frame_shares(
            denoiser, state.family, state.objective, state.latents, state.text, state.conditions
        )
        state.heads = choose_heads(shares, method.head_fraction)
        layers = tuple(layer for t in method.temporal_targets if t in ("q", "k", "v") for layer in TARGET_LAYERS[t])
        confine_to_heads(denoiser, state.heads, MOTION, layers)
    state.parts = {name: PARTS[name](denoiser, state.family, frames) for name in method.parts}
    for part in state.parts.values():
        state.params[MOTION] += part.parameters()
    if method.tracking_weight:  # a causal video VAE's latent frame stands for several frames
        per_latent = state.family.frames_per_latent(state.pipe)
        state.tracks = torch.stack(
            [latent_tracks(reference_tracks(c.frames), c.frames.shape[1:3], frames, per_latent, 64) for c in clips]
        )


# --- one step ----------------------------------------------------------------------------------


def step_losses(
    state: TrainingState,
    batch: dict[str, torch.Tensor],
    generator: torch.Generator,
    backward: Callable[..., None] | None = None,
) -> dict[str, torch.Tensor]:
    """Losses of one step on `batch` (latents, text, noise, timesteps); randomness from `generator`.

    With `backward` (e.g. ``accelerator.backward``) each path's loss is back-propagated into its
    own LoRA only, inside the context it was computed in, so gradient checkpointing recomputes
    exactly the forward that was run (the spatial LoRA's switch and the bypass hooks included).
    """
    denoiser, objective = state.denoiser, state.objective
    latents, text, noise, t = batch["latents"], batch["text"], batch["noise"], batch["timesteps"]
    noisy = objective.noisy(latents, noise, t)
    target = objective.target(latents, noise, t)
    num_frames = latents.shape[2]
    losses = {}
    spatial_off: contextlib.AbstractContextManager = contextlib.nullcontext()
    if state.method.dual_path:
        frames, frame_noise = batch["frame_latents"], batch["frame_noise"]
        frame = int(torch.randint(frames.shape[2], (1,), generator=generator))
        one = slice(frame, frame + 1)
        # the motion LoRA is off too: on a DiT it sits on the same layers as the spatial one
        with temporal_layers_bypassed(denoiser), lora_disabled(denoiser, MOTION):
            pred = state.family.predict(
                denoiser, objective.noisy(frames[:, :, one], frame_noise[:, :, one], t), t, text
            )
            losses["spatial"] = objective.loss(pred, objective.target(frames[:, :, one], frame_noise[:, :, one], t), t)
            if backward is not None:
                backward(losses["spatial"], inputs=state.params[SPATIAL])
        if float(torch.rand((1,), generator=generator)) < state.config.train.spatial_skip_probability:
            spatial_off = lora_disabled(denoiser, SPATIAL)
    anchor = int(torch.randint(num_frames, (1,), generator=generator))
    tracked: contextlib.AbstractContextManager[dict[str, torch.Tensor]] = (
        middle_block_features(denoiser, latents.shape) if state.tracks is not None else contextlib.nullcontext({})
    )
    with spatial_off, tracked as features:
        conditions = {k.removeprefix(CONDITION): v for k, v in batch.items() if k.startswith(CONDITION)}
        pred = state.family.predict(denoiser, noisy, t, text, conditions or None)
        if state.config.train.loss == "across-frames" and num_frames > 1:
            temporal = objective.loss(across_frames(pred), across_frames(target), t)
        else:
            temporal = objective.loss(pred, target, t)
        if state.method.debiased_loss and num_frames > 1:
            temporal = temporal + debiased_loss(pred, target, anchor)
        if "value" in features:  # DeT: the features move with the reference's tracks
            temporal = temporal + state.method.tracking_weight * tracking_loss(features["value"], batch["tracks"])
        losses["temporal"] = temporal
        if backward is not None:
            backward(temporal, inputs=state.params[MOTION])
    return losses


@contextlib.contextmanager
def middle_block_features(denoiser: Denoiser, latent_shape):
    """Yields a dict whose "value", after a forward, is the middle block's output as (batch, channels, frames,
    h, w) on the token grid: the features DeT's tracking loss reads."""
    blocks = transformer_blocks(denoiser, "")
    block = denoiser.get_submodule(blocks[len(blocks) // 2])
    grid = token_grid(denoiser, latent_shape)
    kept: dict[str, torch.Tensor] = {}

    def keep(module, args, out):
        kept["value"] = out.unflatten(1, grid).permute(0, 4, 1, 2, 3)

    handle = block.register_forward_hook(keep)
    try:
        yield kept
    finally:
        handle.remove()


CONDITION = "condition."  # a batch's keys for the family's conditions (`TrainingState.conditions`)


def sample_batch(state: TrainingState, generator: torch.Generator, device) -> dict[str, torch.Tensor]:
    shard = state.clip_indices or list(range(state.latents.shape[0]))
    idx = torch.tensor(shard)[torch.randint(len(shard), (state.config.train.batch_size,), generator=generator)]
    latents = state.latents[idx].to(device)
    batch = {
        "latents": latents,
        "text": state.text[idx].to(device),
        "noise": torch.randn(latents.shape, generator=generator).to(device),
        "timesteps": state.objective.draw_timesteps(latents.shape[0], generator).to(device),
    }
    batch["frame_latents"], batch["frame_noise"] = batch["latents"], batch["noise"]
    if state.tracks is not None:
        batch["tracks"] = state.tracks[idx].to(device)
    for name, condition in state.conditions.items():
        batch[CONDITION + name] = condition[idx].to(device)
    if state.frame_latents is not None and state.frame_latents is not state.latents:  # one-frame clips of their own
        batch["frame_latents"] = state.frame_latents[idx].to(device)
        batch["frame_noise"] = torch.randn(batch["frame_latents"].shape, generator=generator).to(device)
    return batch


# --- the loop ----------------------------------------------------------------------------------


def lora_record(state: TrainingState, step: int) -> LoraRecord:
    """What the LoRA folder records (save_lora_folder adds the peft config)."""
    config = state.config
    highway = config.appearance_highway
    default = state.method.highway and state.family.supports_highway
    enabled = default if highway.enabled is None else highway.enabled
    return LoraRecord(
        family=state.family.name,
        method=state.method.name,
        base_model=config.model,
        motionsep_version=__version__,
        targets={"temporal": list(state.method.temporal_targets), "spatial": list(state.method.spatial_targets)},
        lora_layers={"temporal": len(state.targets["temporal"]), "spatial": len(state.targets["spatial"])},
        appearance_highway=replace(highway, enabled=enabled),
        pli_tau=config.pli_tau,
        steps=step,
        num_frames=config.data.frames,
        size=list(config.data.size),
        heads=state.heads,
        parts=list(state.parts),
        expert=config.expert if experts_of(state.pipe) else None,
        train_config=config.to_dict(),
    )


def check_output_dir(path: Path, overwrite: bool, resume: bool) -> None:
    if not (overwrite or resume):
        refuse_nonempty(path, "pass --resume to continue it, --overwrite to replace it, or choose another output_dir")


RESULT_NAMES = ("checkpoints", "spatial", METADATA_NAME, WEIGHTS_NAME, "train_log.csv")  # what a run writes
REPLACED = ".replaced"  # where --overwrite keeps the earlier run until the new one has a checkpoint


class Replacement:
    """--overwrite without loss: the earlier run's results (and nothing else the folder holds) move aside once the
    new run has passed its checks, come back if it fails before its first complete checkpoint, and are deleted
    once it has one."""

    def __init__(self, out: Path):
        self.aside: Path | None = out / REPLACED
        self.out = out
        shutil.rmtree(self.aside, ignore_errors=True)  # left by a run killed mid-way, whose own results are here
        for name in RESULT_NAMES:
            if (out / name).exists():
                self.aside.mkdir(parents=True, exist_ok=True)
                (out / name).rename(self.aside / name)

    def restore(self) -> None:
        if self.aside is not None and self.aside.is_dir():
            for name in RESULT_NAMES:
                _remove(self.out / name)
                if (self.aside / name).exists():
                    (self.aside / name).rename(self.out / name)
            self.aside.rmdir()
        self.aside = None

    def commit(self) -> None:
        if self.aside is not None:
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _flat(config: dict, prefix: str = "") -> dict[str, Any]:
    """A nested config as one level of scalars ("train.learning_rate"), as trackers take hyperparameters."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def _comparable(config: dict) -> dict:
    """The parts of a config that must not change when a run is resumed (steps may grow)."""
    config = json.loads(json.dumps(config))
    for key in ("steps", "checkpoint_every", "validation", "log_with"):
        config["train"].pop(key, None)
    return config


def resume_from(out: Path, config: TrainConfig, state: TrainingState, optimizer, generator, rank: int = 0) -> int:
    """Load the newest complete checkpoint in `out`; returns its step (0 when there is none)."""
    for folder, step in complete_checkpoints(out / "checkpoints"):
        try:
            saved = json.loads((folder / METADATA_NAME).read_text(encoding="utf-8"))["train_config"]
        except (OSError, ValueError, KeyError) as exc:
            warnings.warn(f"checkpoint {folder} is damaged ({exc}); trying the one before it", stacklevel=2)
            continue
        if _comparable(saved) != _comparable(config.to_dict()):
            raise MotionsepError(
                f"cannot resume '{out}': its config differs from this one (only train.steps may change); use "
                "another output_dir"
            )
        try:
            for name, sub in ((MOTION, folder), (SPATIAL, folder / "spatial")):
                if name in state.lora_configs:
                    set_lora_weights(state.denoiser, read_lora_weights(sub / WEIGHTS_NAME), name, sub)
            for part in state.parts.values():
                part.restore(folder)
            load_training_state(folder / "training_state", optimizer, generator, rank)
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError, MotionsepError) as exc:
            # a truncated optimizer file, an empty RNG file: the next older checkpoint is complete
            warnings.warn(f"checkpoint {folder} is damaged ({exc}); trying the one before it", stacklevel=2)
            continue
        return step
    return 0


def train(
    config: TrainConfig,
    overwrite: bool = False,
    progress: bool = True,
    pipe=None,
    family=None,
    resume: bool = False,
    trackers: list | None = None,
) -> Path:
    """Train a motion LoRA as `config` says; returns the output folder (a loadable LoRA folder).

    Every `train.checkpoint_every` steps a complete checkpoint is written (LoRA, optimizer moments,
    RNG states); `resume=True` continues from the newest one and ends with the LoRA an
    uninterrupted run would have given. `overwrite=True` replaces an earlier run only once this one has
    passed its checks and written its first checkpoint (`Replacement`). Losses and the learning rate go to
    accelerate's trackers: train.log_with names them (tensorboard, wandb, ...), `trackers` adds tracker objects.
    """
    if config.expert == "both":
        return train_each_expert(config, overwrite, progress, resume, trackers)
    out = Path(config.output_dir)
    check_output_dir(out, overwrite, resume)
    accelerator = make_accelerator(config, trackers)
    set_seed(config.train.seed)  # LoRA init and dropout
    # the base at the weight dtype from the start (a model in fp32 first would need twice the memory)
    dtype = torch.float32
    if accelerator.mixed_precision != "no" and accelerator.device.type == "cuda":
        dtype = torch.float16 if accelerator.mixed_precision == "fp16" else torch.bfloat16
    state = prepare(config, pipe, family, accelerator.device, dtype)  # the data and the model pass their checks
    config = state.config  # `auto` method and loss made the family's own
    groups = [{"params": p} for p in state.params.values()]
    optimizer = torch.optim.AdamW(groups, lr=config.train.learning_rate, weight_decay=config.train.weight_decay)
    generator = torch.Generator().manual_seed(config.train.seed + accelerator.process_index)
    rank, processes = accelerator.process_index, accelerator.num_processes
    if processes > 1 and state.latents.shape[0] >= processes:  # each process its own clips (and its own noise)
        state.clip_indices = list(range(rank, state.latents.shape[0], processes))
    first = 1 + (resume_from(out, config, state, optimizer, generator, rank) if resume else 0)
    out.mkdir(parents=True, exist_ok=True)
    if config.train.log_with or trackers:
        accelerator.init_trackers("motionsep", config=_flat(config.to_dict()))
    replacement = Replacement(out) if overwrite and not resume and accelerator.is_main_process else None
    try:
        run_steps(accelerator, state, accelerator.prepare(optimizer), generator, first, progress, replacement)
    except BaseException:
        if replacement is not None:
            replacement.restore()  # no checkpoint of the new run: the earlier one comes back as it was
        raise
    save(accelerator, state, out, config.train.steps)
    accelerator.end_training()
    if replacement is not None:
        replacement.commit()
    if state.highway is not None:
        state.highway.remove()
    return out


def train_each_expert(config: TrainConfig, overwrite: bool, progress: bool, resume: bool, trackers) -> Path:
    """`expert: both` (Wan 2.2 A14B): the high-noise expert's LoRA, then the low-noise one's, each a run of its own
    over its own timesteps (OUTPUT_DIR/high_noise, OUTPUT_DIR/low_noise; each resumes on its own). One expert is
    on the device at a time, which a card that holds one 14B expert needs (ai-toolkit alternates both in one run,
    holding both). `generate --lora OUTPUT_DIR` loads each into its expert; `export` writes both files."""
    if Path(resolve_model(config.model)).exists() and expert_boundary(config.model) is None:
        raise MotionsepError(
            "expert 'both' trains the two experts of a model that has them (Wan 2.2 A14B's transformer and "
            "transformer_2); this model has one denoiser: leave expert at high"
        )
    out = Path(config.output_dir)
    for expert, folder in EXPERT_FOLDERS.items():
        one = replace(config, expert=expert, output_dir=str(out / folder))
        train(one, overwrite=overwrite, progress=progress, resume=resume, trackers=trackers)
    return out


def make_accelerator(config: TrainConfig, trackers: list | None) -> Accelerator:
    """The run's Accelerator: precision, gradient accumulation, trackers (logs in output_dir)."""
    accelerator = Accelerator(
        mixed_precision=config.train.mixed_precision,
        gradient_accumulation_steps=config.train.gradient_accumulation_steps,
        log_with=[*config.train.log_with, *(trackers or [])] or None,
        project_dir=config.output_dir,
    )
    if accelerator.distributed_type.name in ("FSDP", "DEEPSPEED"):
        raise MotionsepError(
            f"{accelerator.distributed_type.name} launches are not supported yet: motionsep averages the LoRA "
            "gradients itself and does not shard the model; launch with --multi_gpu (or torchrun) instead"
        )
    return accelerator


def run_steps(
    accelerator: Accelerator,
    state: TrainingState,
    optimizer,
    generator,
    first: int,
    progress: bool,
    replacement: Replacement | None,
) -> None:
    """Steps `first` to train.steps: an optimizer step each (`optimizer_step`), the log and the trackers;
    checkpoints and validation samples."""
    config = state.config
    out = Path(config.output_dir)
    state.denoiser.train()
    scheduler = learning_rate_schedule(optimizer, config, first)
    columns = ["step", "loss", *(["spatial"] if state.method.dual_path else []), "temporal"]
    log = TrainingLog(out / "train_log.csv", columns, keep_until=first - 1) if accelerator.is_main_process else None
    validation = config.train.validation
    sampler = ValidationSampler(state) if validation.prompts else None
    bar = tqdm(
        range(first, config.train.steps + 1),
        desc=f"train {state.method.name}",
        initial=first - 1,
        total=config.train.steps,
        disable=not (progress and accelerator.is_main_process),
    )
    for step in bar:
        means, names = optimizer_step(accelerator, state, optimizer, scheduler, generator, step)
        total = float(means.sum())
        bar.set_postfix(loss=f"{total:.4f}")
        if log is not None:
            log.write([step, f"{total:.6f}", *(f"{float(v):.6f}" for v in means)])
        lr = scheduler.get_last_lr()[0]
        accelerator.log({"loss": total, "learning_rate": lr, **dict(zip(names, means.tolist()))}, step=step)
        samples = is_validation_step(validation, step, config.train.steps)
        every = config.train.checkpoint_every
        if (every and (step % every == 0 or step == config.train.steps)) or samples:
            checkpoint(accelerator, state, optimizer, generator, step, sampler if samples else None)
            if not progress and accelerator.is_main_process:  # no bar: one line a checkpoint says it is alive
                print(f"step {step}/{config.train.steps}: loss {total:.4f}, checkpoint saved", flush=True)
            if replacement is not None:
                replacement.commit()  # the new run has a complete checkpoint: the earlier one can go
    if log is not None:
        log.close()


def optimizer_step(accelerator: Accelerator, state: TrainingState, optimizer, scheduler, generator, step: int):
    """One optimizer step: train.gradient_accumulation_steps batches (accelerate's backward divides each loss by
    their number), gradients averaged over processes and clipped to train.max_grad_norm, the step, the learning
    rate schedule. Returns the losses (mean over batches and processes) and their names."""
    trainable = [p for group in state.params.values() for p in group]
    summed: dict[str, torch.Tensor] = {}
    for _ in range(state.config.train.gradient_accumulation_steps):
        batch = sample_batch(state, generator, accelerator.device)
        with accelerator.autocast():
            losses = step_losses(state, batch, generator, backward=accelerator.backward)
        for k, v in losses.items():
            summed[k] = summed.get(k, 0) + v.detach().float() / state.config.train.gradient_accumulation_steps
    if accelerator.num_processes > 1:
        average_gradients(accelerator, trainable)
    names = sorted(summed)
    # the mean over processes (each saw its own clips and noise), the same number in every process
    means = accelerator.reduce(torch.stack([summed[k] for k in names]), "mean")
    total = float(means.sum())
    if not math.isfinite(total):  # before the step: the weights a checkpoint would save stay good
        kept = latest_checkpoint(Path(state.config.output_dir) / "checkpoints")
        where = f"the last good checkpoint is {kept[0]}" if kept else "no checkpoint was written yet"
        raise MotionsepError(
            f"loss became {total} at step {step}; {where}: lower train.learning_rate or use mixed_precision: no"
        )
    if state.config.train.max_grad_norm > 0:
        accelerator.clip_grad_norm_(trainable, state.config.train.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return means, names


def learning_rate_schedule(optimizer, config: TrainConfig, first: int):
    """diffusers' `get_scheduler` for train.lr_scheduler and train.lr_warmup_steps over train.steps, advanced to
    the step a resumed run continues from (the schedule is a function of the step alone)."""
    from diffusers.optimization import get_scheduler

    for group in optimizer.param_groups:  # a resumed optimizer holds the last step's rate, not the base one
        group["lr"] = group.get("initial_lr", group["lr"])
    scheduler = get_scheduler(
        config.train.lr_scheduler,
        optimizer,
        num_warmup_steps=config.train.lr_warmup_steps,
        num_training_steps=config.train.steps,
    )
    with warnings.catch_warnings():  # stepping ahead without optimizer steps is the point here
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before"))
        for _ in range(first - 1):
            scheduler.step()
    return scheduler


def checkpoint(accelerator: Accelerator, state: TrainingState, optimizer, generator, step: int, sampler) -> None:
    """A complete checkpoint of `step` (LoRA, then every process's RNG streams, then the optimizer and the
    marker), and validation samples from it when `sampler` is given, as `motionsep generate` would make them."""
    folder = Path(state.config.output_dir) / "checkpoints" / f"step-{step:06d}"
    save(accelerator, state, folder, step)
    save_rng_state(folder / "training_state", generator, accelerator.process_index)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_training_state(folder / "training_state", optimizer, generator, step)  # complete: last
        if sampler is not None:
            sampler.sample(step, folder)
    accelerator.wait_for_everyone()


def average_gradients(accelerator: Accelerator, params: list[torch.nn.Parameter]) -> None:
    """What DistributedDataParallel does, by hand: every LoRA gradient becomes its mean over the processes.

    DDP's hooks expect one backward pass per forward over every trainable parameter; the dual-path presets
    run two forwards and two partial backward passes a step (each path into its own LoRA), which DDP
    refuses. The LoRA is small: one all-reduce of all its gradients at once costs little.
    """
    grads = [p.grad for p in params if p.grad is not None]
    flat = accelerator.reduce(torch.cat([g.flatten() for g in grads]), "mean")
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


class TrainingLog:
    """train_log.csv: one row a step, flushed at once; on resume the rows past the checkpoint are dropped."""

    def __init__(self, path: Path, header: list[str], keep_until: int = 0):
        rows = []
        if keep_until and path.is_file():
            rows = [r for r in csv.reader(path.open()) if r and r[0].isdigit() and int(r[0]) <= keep_until]
        self.file = path.open("w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerow(header + ["seconds"])
        self.writer.writerows(rows)
        self.started = time.time() - (float(rows[-1][-1]) if rows else 0.0)

    def write(self, row: list) -> None:
        self.writer.writerow(row + [f"{time.time() - self.started:.2f}"])
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def save(accelerator: Accelerator, state: TrainingState, folder: Path, step: int) -> None:
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if state.parts:  # before the LoRA folder's record, which save_lora_folder writes last
            folder.mkdir(parents=True, exist_ok=True)
            save_parts(state.parts, folder)
        save_lora_folder(state.denoiser, folder, lora_record(state, step), state.lora_configs)
