"""Pretraining the shapes-world text-to-video model from scratch: VAE, then UNet + text encoder.

The result is an ordinary ``TextToVideoSDPipeline`` folder made of ZeroScope's classes
(UNet3DConditionModel, AutoencoderKL, CLIPTextModel + CLIPTokenizer, DDIMScheduler), so it loads
through exactly the code path of any other model. Clips are rendered on the fly from pretraining
motions only; held-out motions never appear. Every stage checkpoints and resumes: the data and
noise of step N depend only on (seed, N), so a resumed run sees what an uninterrupted one would.
"""

from __future__ import annotations

import copy
import functools
import json
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checkpoint import atomic_write_text, load_optimizer, save_optimizer
from ..losses import DenoisingObjective, across_frames
from ..word_tokenizer import build_tokenizer
from .world import FRAMES, PRETRAIN_MOTIONS, SIZE, caption, random_scene, render, vocabulary

WINDOW_RATE = 0.3  # unnamed attribute priors of the training data
LARGE_RATE = 0.5


@dataclass
class PretrainConfig:
    out: str = "pretrain-run"
    seed: int = 0
    vae_steps: int = 6000
    vae_batch: int = 32
    denoiser_steps: int = 16000
    denoiser_batch: int = 16
    lr: float = 3e-4
    checkpoint_every: int = 500
    caption_dropout: float = 0.1
    # Extra weight on the part of the loss that changes across frames (prediction and target minus their
    # mean over frames), like MotionDirector's appearance-debiased temporal loss: appearance is most of the
    # plain loss, and a model that learns it first then places the object by reading the faint trajectory
    # left in the noisy input, never the direction words (two runs, 8,750 and 1,750 steps).
    motion_loss_weight: float = 3.0
    # Curriculum: the first `narrow_steps` UNet steps see one look only (NARROW_LOOK, every motion), so
    # that the motion words are learned before appearance takes the gradient; then the whole world.
    # Measured: direction read from text by step 500, and kept (15 of 16 directions right) 450 steps into
    # the whole world; without it, no run read a direction word.
    narrow_steps: int = 800
    # Exponential moving average of the UNet and text encoder weights (diffusers' EMAModel), saved beside
    # the raw weights and shipped by `toy export`: at a constant learning rate the raw weights jitter from
    # step to step, and the fine detail of this world (a 10-px square against a 10-px circle) is what that
    # jitter blurs first. 0 turns it off.
    ema_decay: float = 0.999
    # Start from this ModelScope-family pipeline (its VAE kept, the VAE stage skipped) instead of from scratch.
    base: str | None = None
    # False: every TemporalConvLayer is held at identity (its last convolution zeroed and frozen), so the
    # temporal transformers are the model's only path across frames, as motion modules are in AnimateDiff.
    temporal_convs: bool = True
    # > 0: add this weight times the mean square of every TemporalConvLayer's residual (its output minus its
    # input) to the loss, so the convolutions are pushed to do as little as they can (enough to tell the
    # frames apart, which UNet3D's position-free temporal attention cannot do alone) and the temporal
    # attention is left to carry the motion.
    temporal_conv_penalty: float = 0.0
    device: str = "cpu"


NARROW_LOOK = {"shape": "circle", "colour": "red", "background": "plain"}


def sample_scene(rng: random.Random, look: dict | None = None):
    return random_scene(
        rng,
        motions=PRETRAIN_MOTIONS,
        **(look or {}),
        size="large" if rng.random() < LARGE_RATE else "small",
        window="window" if rng.random() < WINDOW_RATE else "none",
    )


def clip_batch(
    seed: int, step: int, batch: int, look: dict | None = None, frames: int = FRAMES
) -> tuple[torch.Tensor, list[str]]:
    """Rendered clips in [-1, 1], (batch, 3, frames, H, W), and their captions: a function of (seed, step).

    `look` pins named appearance attributes (the curriculum's first phase); unnamed ones keep their rates.
    """
    rng = random.Random(seed * 1_000_003 + step)
    scenes = [sample_scene(rng, look) for _ in range(batch)]
    videos = np.stack([render(s, frames) for s in scenes])  # (B, F, H, W, 3)
    captions = [caption(s, rng) for s in scenes]
    x = torch.from_numpy(videos).float().permute(0, 4, 1, 2, 3) / 127.5 - 1
    return x, captions


def build_models(seed: int):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = build_tokenizer(vocabulary(), max_length=32)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=64,
            intermediate_size=128,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=32,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        sample_size=SIZE,
        layers_per_block=1,
        norm_num_groups=16,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 64),
    )  # 4x down: 32x32 frames -> 8x8x8 latents
    unet = UNet3DConditionModel(
        sample_size=SIZE // 4,
        in_channels=8,
        out_channels=8,
        layers_per_block=1,
        norm_num_groups=16,
        down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=(32, 64, 128),
        attention_head_dim=8,
        cross_attention_dim=64,
    )
    # v-prediction on a zero-terminal-SNR schedule (diffusers' rescale_betas_zero_snr), not SD's epsilon on
    # scaled_linear: with epsilon the loss weights a wrong layout at high noise by the SNR, almost nothing,
    # and at 8x8x8 latents scaled_linear leaves the object visible at t=999, so a model trained that way
    # took its motion from the seed and ignored the caption (measured: 4% motion accuracy at 3,500 steps).
    scheduler = DDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        set_alpha_to_one=False,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        timestep_spacing="trailing",  # sampling starts at t=999, the pure-noise end
    )
    return tokenizer, text_encoder, vae, unet, scheduler


def hold_temporal_convs_at_identity(unet) -> int:
    """Zero and freeze the last convolution of every TemporalConvLayer, which then returns its input
    (diffusers adds it to the identity); returns how many layers were held."""
    layers = [m for m in unet.modules() if type(m).__name__ == "TemporalConvLayer"]
    for layer in layers:
        last = layer.conv4[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.zero_()
        layer.requires_grad_(False)
    return len(layers)


class TemporalConvResiduals:
    """Forward hooks that keep the mean square of every TemporalConvLayer's residual of the last forward."""

    def __init__(self, unet):
        self.values: list[torch.Tensor] = []
        layers = [m for m in unet.modules() if type(m).__name__ == "TemporalConvLayer"]
        self._handles = [layer.register_forward_hook(self._keep) for layer in layers]

    def _keep(self, module, args, output):
        self.values.append((output - args[0]).pow(2).mean())

    def take(self) -> torch.Tensor:
        """The mean over layers since the last call (and forget them)."""
        value = torch.stack(self.values).mean()
        self.values = []
        return value


def _log(out: Path, record: dict) -> None:
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def read_log(run: Path) -> list[dict]:
    """The run's log records (losses, events), oldest first; none for a run that has not logged yet."""
    log = run / "log.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


# A run recorded before the denoiser's stage had its family-neutral name (a U-Net's or a DiT's alike).
LEGACY_NAMES = {"unet_step": "denoiser_step", "unet_steps": "denoiser_steps", "unet_batch": "denoiser_batch"}


def read_record(path: Path) -> dict:
    """A run's JSON record (config.json, state.json) with the names of today's runs."""
    return {LEGACY_NAMES.get(k, k): v for k, v in json.loads(path.read_text()).items()}


def _state(out: Path) -> dict:
    path = out / "state.json"
    if (out / "unet_stage").is_dir() and not (out / "denoiser_stage").exists():
        (out / "unet_stage").rename(out / "denoiser_stage")  # a run recorded under the old name
    state = {"vae_step": 0, "denoiser_step": 0, "seconds": 0.0, "vae_seconds": 0.0}  # seconds: the denoiser's
    return {**state, **read_record(path)} if path.is_file() else state


def _maybe_load_optimizer(optimizer, path: Path) -> bool:
    """Optimizer moments are not committed with the weights (too large); without them AdamW restarts."""
    if path.is_file():
        load_optimizer(optimizer, path)
        return True
    return False


def _save_stage(out: Path, name: str, modules: dict, optimizer, state: dict) -> None:
    """Modules (save_pretrained, safetensors) and optimizer into out/<name>.tmp, then swapped in."""
    tmp = out / f"{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for key, module in modules.items():
        module.save_pretrained(str(tmp / key))
    save_optimizer(optimizer, tmp / "optimizer.safetensors")
    final = out / name
    old = out / f"{name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    atomic_write_text(out / "state.json", json.dumps(state))


def train_vae_stage(config, vae, out: Path, state: dict, desc: str, batch_of, finish, lr: float = 1e-3) -> None:
    """The VAE stage of every from-scratch embedded model: MSE + L1 + a light KL on `batch_of(step)` (pixels in
    [-1, 1]), checkpointed and resumed; `finish(vae)` sets the latent normalisation, saved with the final weights
    in one swap. A VAE that starts from trained weights fine-tunes at a lower `lr`."""
    if state["vae_step"] >= config.vae_steps:
        return  # done in an earlier run, normalisation included
    device = config.device
    vae.to(device)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr)
    if state["vae_step"] > 0:
        vae.load_state_dict(type(vae).from_pretrained(str(out / "vae_stage" / "vae")).state_dict())
        _maybe_load_optimizer(optimizer, out / "vae_stage" / "optimizer.safetensors")
    vae.train()
    _log_device(out, "vae", state["vae_step"], device)
    started = time.time() - state["vae_seconds"]
    bar = tqdm(
        range(state["vae_step"] + 1, config.vae_steps + 1),
        desc=desc,
        initial=state["vae_step"],
        total=config.vae_steps,
    )
    for step in bar:
        x = batch_of(step).to(device)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=_step_generator(config.seed, step))).sample
        # L1 on top of MSE keeps edges sharp: shapes must survive the 4x latent (corners, cross arms)
        loss = F.mse_loss(recon, x) + F.l1_loss(recon, x) + 1e-6 * posterior.kl().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % config.checkpoint_every == 0 or step == config.vae_steps:
            if step == config.vae_steps:
                finish(vae)
            state.update(vae_step=step, vae_seconds=time.time() - started)
            _log(out, {"stage": "vae", "step": step, "loss": loss.item(), "seconds": state["vae_seconds"]})
            _save_stage(out, "vae_stage", {"vae": vae}, optimizer, state)


def _log_device(out: Path, stage: str, step: int, device: str) -> None:
    """An event in the run's log: where the stage runs from `step` on (a run may move between machines)."""
    where = torch.cuda.get_device_name(device) if str(device).startswith("cuda") else "CPU"
    _log(out, {"event": f"{stage} stage from step {step} on {device} ({where}, torch {torch.__version__})"})


def train_vae(config: PretrainConfig, vae, out: Path, state: dict) -> None:
    """The 2D VAE trains on single frames."""

    def frames(step: int) -> torch.Tensor:
        x, _ = clip_batch(config.seed + 7, step, max(1, config.vae_batch // FRAMES))
        return x.permute(0, 2, 1, 3, 4).reshape(-1, 3, SIZE, SIZE)

    train_vae_stage(config, vae, out, state, "pretrain vae", frames, lambda v: set_latent_scale(v, config.seed))


def set_latent_scale(vae, seed: int) -> None:
    """The latent scale that makes latents unit-variance, as SD's 0.18215 does for its VAE."""
    with torch.no_grad():
        x, _ = clip_batch(seed + 99, 0, 32)
        z = vae.encode(x.permute(0, 2, 1, 3, 4).reshape(-1, 3, SIZE, SIZE)).latent_dist.mode()
    vae.register_to_config(scaling_factor=float(1.0 / z.std()))


def _step_generator(seed: int, step: int) -> torch.Generator:
    """The torch draws of one training step (posterior samples, noise, timesteps): a function of (seed, step)."""
    return torch.Generator().manual_seed(seed * 7_000_003 + step)


def encode_clips(vae, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    b, c, f, h, w = x.shape
    with torch.no_grad():
        z = (
            vae.encode(x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)).latent_dist.sample(generator)
            * vae.config.scaling_factor
        )
    return z.reshape(b, f, *z.shape[1:]).permute(0, 2, 1, 3, 4)


def token_ids(tokenizer, captions: list[str]) -> torch.Tensor:
    return tokenizer(
        captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


def motion_weighted_loss(config, unet, objective, encode, text_of, x: torch.Tensor, captions: list[str], step: int):
    """One pretraining step's loss, shared by every embedded model: the objective's loss (MSE on the diffusion
    target, or flow matching's velocity) plus `config.motion_loss_weight` times the MSE of what changes across
    frames.

    Caption dropout, posterior sample (`encode(x, generator)`), noise and timesteps are drawn from the step's
    generator in this order, so a resumed run sees what an uninterrupted one would. `text_of(captions, frames)`
    gives the denoiser's text conditioning (the families shape it differently).
    """
    g = _step_generator(config.seed, step)
    captions = ["" if torch.rand((1,), generator=g).item() < config.caption_dropout else c for c in captions]
    latents = encode(x, g)
    # drawn on the CPU from the step's generator, then moved: the same numbers on any device
    noise = torch.randn(latents.shape, generator=g).to(latents.device)
    t = objective.draw_timesteps(latents.shape[0], g).to(latents.device)
    text = text_of(captions, latents.shape[2])
    pred = unet(objective.noisy(latents, noise, t), t, encoder_hidden_states=text).sample
    target = objective.target(latents, noise, t)
    return objective.loss(pred, target, t) + config.motion_loss_weight * F.mse_loss(
        across_frames(pred), across_frames(target)
    )


def denoising_step_loss(config, unet, noise_scheduler, vae, text_of, x: torch.Tensor, captions: list[str], step: int):
    """`motion_weighted_loss` for the DDPM-family embedded models, their VAE encoding frame by frame."""
    objective = DenoisingObjective(noise_scheduler)
    return motion_weighted_loss(
        config, unet, objective, lambda clips, g: encode_clips(vae, clips, g), text_of, x, captions, step
    )


@functools.cache  # built once per setting: learning_rate asks for it every step
def schedule(name: str, **settings) -> Callable[[int], float]:
    """diffusers' learning-rate schedule `name` (get_scheduler) as its factor for a step: a pure function of the
    step, so a resumed run sets the same rates with no scheduler state to save."""
    from diffusers.optimization import get_scheduler

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)  # the factor is all that is read
    return get_scheduler(name, optimizer, **settings).lr_lambdas[0]


WARMUP = schedule("constant_with_warmup", num_warmup_steps=200)


def warmup(step: int, warmup_from: int) -> float:
    """The rate's factor in the 200 steps after `warmup_from`: the start, or a resume without optimizer moments
    (AdamW restarting from empty moments warms up again)."""
    return WARMUP(step - warmup_from)


@dataclass
class DenoiserPart:
    """One family's part in the one pretraining loop (`train_denoiser`): what trains, its loss and its rates.

    `modules` are trained, saved, resumed and averaged (EMA) by name under the run's `denoiser_stage` folder; `groups`
    are AdamW's parameter groups; `loss(step)` draws the step's batch and returns its loss; `rates(step,
    warmup_from)` gives each group's learning rate; `before_step(step)` may change what trains and returns extra
    progress-bar fields; `stage(step)` names the log's stage.
    """

    label: str
    modules: dict[str, torch.nn.Module]
    groups: list[dict]
    loss: Callable[[int], torch.Tensor]
    rates: Callable[[int, int], list[float]]
    stage: Callable[[int], str]
    before_step: Callable[[int], dict] = lambda step: {}


def train_denoiser(config, part: DenoiserPart, out: Path, state: dict) -> None:
    """The one denoiser-pretraining loop of every embedded model, resumable from its last checkpoint: the loss,
    gradients clipped to norm 1, the family's rates, AdamW, the moving average, a checkpoint every
    `config.checkpoint_every` steps."""
    params = [p for m in part.modules.values() for p in m.parameters()]
    optimizer = torch.optim.AdamW(part.groups, weight_decay=1e-2)
    warmup_from = _resume_denoiser(part.modules, optimizer, out / "denoiser_stage", state)
    ema, copies = _start_ema(config, part.modules, out, state) if config.ema_decay else (None, {})
    for module in part.modules.values():
        module.train()
    started = time.time() - state["seconds"]
    first = state["denoiser_step"] + 1
    bar = tqdm(range(first, config.denoiser_steps + 1), desc=part.label, initial=first - 1, total=config.denoiser_steps)
    losses: list[float] = []
    for step in bar:
        extra = part.before_step(step)
        loss = part.loss(step)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], 1.0)
        for group, rate in zip(optimizer.param_groups, part.rates(step, warmup_from), strict=True):
            group["lr"] = rate
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(params)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", **extra)
        if step % config.checkpoint_every == 0 or step == config.denoiser_steps:
            state.update(denoiser_step=step, seconds=time.time() - started)
            loss_since = float(np.mean(losses[-config.checkpoint_every :]))
            _log(out, {"stage": part.stage(step), "step": step, "loss": loss_since, "seconds": state["seconds"]})
            if ema is not None:
                ema.copy_to([p for m in copies.values() for p in m.parameters()])
            saved = {**part.modules, **{f"ema_{name}": m for name, m in copies.items()}}
            _save_stage(out, "denoiser_stage", saved, optimizer, state)


def _resume_denoiser(modules: dict, optimizer, stage: Path, state: dict) -> int:
    """Load the stage's weights and optimizer moments of a resumed run; returns the step the warm-up starts
    from (0, or the resumed step when the moments were not kept)."""
    if state["denoiser_step"] == 0:
        return 0
    for name, module in modules.items():
        module.load_state_dict(type(module).from_pretrained(str(stage / name)).state_dict())
    return 0 if _maybe_load_optimizer(optimizer, stage / "optimizer.safetensors") else state["denoiser_step"]


def _start_ema(config, modules: dict, out: Path, state: dict):
    """The moving average of the weights as (EMAModel, its copies by name), resumed from the stage if there."""
    from diffusers.training_utils import EMAModel

    stage = out / "denoiser_stage"
    copies = {name: copy.deepcopy(m) for name, m in modules.items()}  # on the modules' device
    if all((stage / f"ema_{name}").is_dir() for name in modules):
        for name, m in copies.items():
            m.load_state_dict(type(m).from_pretrained(str(stage / f"ema_{name}")).state_dict())
    elif state["denoiser_step"] > 0:
        event = f"EMA of the weights (decay {config.ema_decay}) starts at step {state['denoiser_step']}"
        _log(out, {"event": event})
    ema = EMAModel([p for m in copies.values() for p in m.parameters()], decay=config.ema_decay)
    # Count EMAModel's steps from the training step, not from when the average started: its warm-up,
    # decay = (1 + n) / (10 + n), is meant for the start of training, and its step count is not saved here.
    ema.optimization_step = state["denoiser_step"]
    return ema, copies


def train_unet(config: PretrainConfig, models, out: Path, state: dict) -> None:
    """ModelScope's part: the UNet and the text encoder train together from the scratch-built (or base) weights."""
    from diffusers import DDPMScheduler

    tokenizer, text_encoder, vae, unet, scheduler = models
    vae.eval().requires_grad_(False)
    if not config.temporal_convs:
        hold_temporal_convs_at_identity(unet)  # frozen params get no grad; AdamW and its weight decay skip them
    noise_scheduler = DDPMScheduler.from_config(scheduler.config)
    residuals = TemporalConvResiduals(unet) if config.temporal_conv_penalty else None

    def text_of(captions: list[str], frames: int) -> torch.Tensor:  # trained with the UNet; one text per clip
        return text_encoder(token_ids(tokenizer, captions))[0]

    def loss(step: int) -> torch.Tensor:
        look = NARROW_LOOK if step <= config.narrow_steps else None
        x, captions = clip_batch(config.seed, step, config.denoiser_batch, look)
        value = denoising_step_loss(config, unet, noise_scheduler, vae, text_of, x, captions, step)
        return value if residuals is None else value + config.temporal_conv_penalty * residuals.take()

    params = list(unet.parameters()) + list(text_encoder.parameters())
    part = DenoiserPart(
        label="pretrain unet",
        modules={"unet": unet, "text_encoder": text_encoder},
        groups=[{"params": params, "lr": config.lr}],
        loss=loss,
        rates=lambda step, warmup_from: [config.lr * warmup(step, warmup_from)],
        stage=lambda step: "unet",
    )
    train_denoiser(config, part, out, state)


def save_half(pipe, folder: Path) -> Path:
    """Write `pipe` as a plain pipeline folder with fp16 weights (small to ship), then back to fp32 in memory."""
    pipe.to(dtype=torch.float16)
    shutil.rmtree(folder, ignore_errors=True)
    pipe.save_pretrained(str(folder))
    pipe.to(dtype=torch.float32)
    return folder


def ema_prefix(run: Path, name: str, ema: bool) -> str:
    """'ema_' where the run saved the moving average of module `name` (and it is wanted), '' for the raw weights."""
    return "ema_" if ema and (run / "denoiser_stage" / f"ema_{name}").is_dir() else ""


def write_model_card(dest: Path, run: Path, card: dict, prefix: str, modules: dict, quality, probe) -> Path:
    """The exported model's card: the family's `card` plus what every embedded model records (which weights,
    what changed during training, parameter counts, the quality and probe reports)."""
    config = read_record(run / "config.json")
    decay = config.get("ema_decay")
    card = {
        **card,
        "weights": f"exponential moving average, decay {decay}" if prefix else "raw (last optimizer step)",
        # where each stage ran (a run may move between a GPU and the CPU), and what changed on the way
        "changes_during_training": [r for r in read_log(run) if "event" in r],
        "parameters_millions": {k: round(sum(p.numel() for p in m.parameters()) / 1e6, 2) for k, m in modules.items()},
        "quality": quality,
        "probe": probe,
    }
    (dest / "model_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return dest


def export_pipeline(models, folder: Path) -> Path:
    """Write the trained model as a plain TextToVideoSDPipeline folder (fp16 weights to stay small)."""
    from diffusers import TextToVideoSDPipeline

    tokenizer, text_encoder, vae, unet, scheduler = models
    return save_half(
        TextToVideoSDPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler),
        folder,
    )


def pretrain(config: PretrainConfig) -> Path:
    """Run (or resume) both stages in `config.out`; returns the exported pipeline folder."""
    from diffusers import AutoencoderKL

    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(asdict(config), indent=2))
    state = _state(out)
    models = build_models(config.seed)
    if config.base:
        base = base_pipeline(config.base)
        if state["denoiser_step"] == 0:
            models[3].load_state_dict(base.unet.state_dict())
            models[1].load_state_dict(base.text_encoder.state_dict())
        vae = base.vae
    else:
        train_vae(config, models[2], out, state)
        vae = AutoencoderKL.from_pretrained(str(out / "vae_stage" / "vae"))
    models = (*models[:2], vae, *models[3:])
    train_unet(config, models, out, state)
    if state["denoiser_step"] == 0:  # denoiser_steps=0: no UNet checkpoint yet, ship the initial weights
        return export_pipeline(models, out / "pipeline")
    return export_from_run(out, out / "pipeline")


def base_pipeline(base: str):
    """The ModelScope-family shapes-world model a run starts from (fp32, as load_pipeline gives it)."""
    from ..models import load_pipeline

    pipe, family = load_pipeline(base)
    if family.name != "modelscope":
        raise ValueError(f"a shapes-world run can only start from a ModelScope-family model, got {family.name}")
    return pipe


def export_from_run(
    run: str | Path, dest: str | Path, quality: dict | None = None, ema: bool = True, probe: dict | None = None
) -> Path:
    """Ship the newest checkpoint of a pretraining run as a pipeline folder with a model card.

    The EMA weights when the run has them (and `ema`), the raw weights otherwise.
    """
    import platform

    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextModel

    run, dest = Path(run), Path(dest)
    state = _state(run)
    config = read_record(run / "config.json")
    tokenizer, _, _, _, scheduler = build_models(config["seed"])
    if config.get("base"):
        vae = base_pipeline(config["base"]).vae
    else:
        vae = AutoencoderKL.from_pretrained(str(run / "vae_stage" / "vae"))
    prefix = ema_prefix(run, "unet", ema)
    unet = UNet3DConditionModel.from_pretrained(str(run / "denoiser_stage" / f"{prefix}unet"))
    text_encoder = CLIPTextModel.from_pretrained(str(run / "denoiser_stage" / f"{prefix}text_encoder"))
    export_pipeline((tokenizer, text_encoder, vae, unet, scheduler), dest)
    base = f" --base {config['base']}" if config.get("base") else ""
    held, flags = "", ""
    if not config.get("temporal_convs", True):
        held, flags = ", every TemporalConvLayer held at identity", " --no-temporal-convs"
    if penalty := config.get("temporal_conv_penalty"):
        held += f", temporal convolutions' residuals penalised (weight {penalty})"
        flags += f" --temporal-conv-penalty {penalty}"
    card = {
        "what": "shapes-world text-to-video model (TextToVideoSDPipeline of ZeroScope's classes), "
        + (f"fine-tuned from {config['base']}" if base else "trained from scratch")
        + held,
        "command": f"motionsep toy pretrain --out {run} --steps {config['denoiser_steps']} --vae-steps "
        f"{config['vae_steps']}{base}{flags}",
        "clip_frames": FRAMES,  # what the model samples at by default (generate, toy.protocol)
        "size": [SIZE, SIZE],
        "vae_steps": state["vae_step"],
        "denoiser_steps": state["denoiser_step"],
        "denoiser_batch": config["denoiser_batch"],
        "wall_time_hours": {"vae": round(state["vae_seconds"] / 3600, 2), "unet": round(state["seconds"] / 3600, 2)},
        "machine": f"{platform.machine()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}",
    }
    modules = {"unet": unet, "vae": vae, "text_encoder": text_encoder}
    return write_model_card(dest, run, card, prefix, modules, quality, probe)
