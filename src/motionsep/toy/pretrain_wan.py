"""Pretraining the Wan-family shapes-world model from scratch: a causal video VAE, then DiT + text encoder.

The result is an ordinary ``WanPipeline`` folder made of Wan's classes (``WanTransformer3DModel``,
``AutoencoderKLWan``, ``UMT5EncoderModel``, ``FlowMatchEulerDiscreteScheduler``), with a whole-word
tokenizer for the world's vocabulary, so it loads through the same loader as any Wan model.

Shapes, scaled to the world (32x32 pixels, 9 frames, 1 + 4k as Wan wants):

* VAE: causal in time like Wan's, 4x down in space and 2x in time (``temperal_downsample=[False, True]``):
  9 frames -> 5 latent frames of 8x8x8 (the first frame alone, then pairs, as Wan's first frame then
  fours). WanPipeline reads the factors from the VAE config (``scale_factor_temporal=2``,
  ``scale_factor_spatial=4``); a temporal factor of 1 is not possible there (it rounds every frame
  count up by one). Its latents are normalised by per-channel mean and std measured after training
  (``latents_mean``, ``latents_std``), as Wan's are.
* DiT: patch (1, 2, 2), so a clip is 5 x 4 x 4 = 80 tokens; 4 blocks of 4 heads x 32.
* Flow matching with Wan's 480p shift (3.0); the loss is the velocity MSE plus the motion weight on what
  changes across frames (``pretrain.motion_weighted_loss``, shared with the other embedded models).

A DiT has no layer that is temporal alone, so its motion can only come from the attention across frames
(the probe measures it). Data and noise of step N depend only on (seed, N): a resumed run sees what an
uninterrupted one would.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import atomic_write_text
from ..errors import MotionsepError
from ..families import WAN
from ..losses import FlowMatchingObjective
from ..models import dtype_argument, resolve_model, weights_fingerprint
from ..word_tokenizer import build_tokenizer
from .pretrain import (
    NARROW_LOOK,
    DenoiserPart,
    _log,
    _log_device,
    _state,
    clip_batch,
    ema_prefix,
    motion_weighted_loss,
    read_record,
    save_half,
    schedule,
    train_denoiser,
    train_vae_stage,
    warmup,
    write_model_card,
)
from .world import SIZE, vocabulary

# 1 + 4k frames, as Wan's causal VAE wants; 17 show the 9-frame clip's motion at twice the frame rate
# (world.frame_rate), so each latent frame holds one position, not a double exposure of two
WAN_FRAMES = 17
LATENT_CHANNELS = 8
FLOW_SHIFT = 3.0
TEXT_TOKENS = WAN.text_tokens  # what WanPipeline samples with: training conditions on the text exactly as sampling


@dataclass
class WanPretrainConfig:
    out: str = "toy-pretrain-wan"
    family: str = "wan"  # recorded in the run's config.json, so `toy export` knows the run
    seed: int = 0
    frames: int = WAN_FRAMES
    # (1, 1, 1): a token a latent pixel, 8x8 tokens a frame. At (1, 2, 2) (4x4 tokens, 9 frames, the first
    # toy-wan) a LoRA trained on 16 looks carried zigzag to new looks in 33% of generations (issue 25)
    patch: tuple[int, int, int] = (1, 1, 1)
    # a WanPipeline folder or embedded name (toy-wan) whose VAE, text encoder and transformer blocks start the
    # run (a patch size of its own is converted: `warm_start`); None: from scratch
    init_from: str | None = None
    init_fingerprint: str = ""  # of init_from's weights, so a resume refuses a model that changed meanwhile
    vae_lr: float = 1e-3
    vae_steps: int = 6000  # at 3,000 the evaluator read the shape from only 16 of 24 VAE round trips
    vae_batch: int = 4  # clips of `frames`
    # the DiT's steps: the shipped model's recipe; at 12,000 shape
    # accuracy was 56%, at 20,000 87% (README)
    denoiser_steps: int = 25000
    denoiser_batch: int = 16
    lr: float = 3e-4
    # the learning rate falls linearly to zero over the last `cooldown_steps` transformer steps (0: constant;
    # None: the last fifth, 5,000 of the recipe's 25,000); it depends on the step alone, so a resume follows it
    cooldown_steps: int | None = None
    checkpoint_every: int = 250
    caption_dropout: float = 0.1
    motion_loss_weight: float = 3.0  # toy/pretrain.py says why
    narrow_steps: int = 800  # the curriculum of toy/pretrain.py: one look first, so motion words are learned
    ema_decay: float = 0.999
    device: str = "cpu"  # "cuda" trains on a GPU; data and noise are still drawn on the CPU, as on any device


def build_wan_models(seed: int, patch: tuple[int, int, int] = WanPretrainConfig.patch):
    """(tokenizer, text encoder, VAE, transformer, scheduler) of the world's size, randomly initialised."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    tokenizer = build_tokenizer(vocabulary(), max_length=32)
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer),
            d_model=64,
            d_kv=16,
            d_ff=128,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=16,
            pad_token_id=tokenizer.pad_token_id,
            decoder_start_token_id=0,
        )
    )
    vae = AutoencoderKLWan(
        base_dim=24,  # 1.4 M parameters; 32 trains 1.8x slower here, 16 may blur the 10-px shapes
        z_dim=LATENT_CHANNELS,
        dim_mult=[1, 2, 2],
        num_res_blocks=1,
        temperal_downsample=[False, True],
        latents_mean=[0.0] * LATENT_CHANNELS,
        latents_std=[1.0] * LATENT_CHANNELS,
        scale_factor_temporal=2,
        scale_factor_spatial=4,
    )
    transformer = WanTransformer3DModel(
        patch_size=tuple(patch),
        num_attention_heads=4,
        attention_head_dim=32,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        text_dim=64,
        freq_dim=64,
        ffn_dim=512,
        num_layers=4,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=64,
    )
    return tokenizer, text_encoder, vae, transformer, FlowMatchEulerDiscreteScheduler(shift=FLOW_SHIFT)


def encode_latents(vae, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Clips in [-1, 1] (B, 3, F, H, W) -> normalised latents (B, C, 1 + (F-1)/2, h, w); sampled with `generator`."""
    dist = vae.encode(x).latent_dist
    z = dist.sample(generator=generator) if generator is not None else dist.mode()
    mean = torch.tensor(vae.config.latents_mean, device=z.device).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, device=z.device).view(1, -1, 1, 1, 1)
    return (z - mean) / std


def train_vae(config: WanPretrainConfig, vae, out: Path, state: dict) -> None:
    """The causal video VAE trains on whole 9-frame clips."""

    def clips(step: int) -> torch.Tensor:
        return clip_batch(config.seed + 7, step, config.vae_batch, frames=config.frames)[0]

    def finish(v) -> None:
        set_latent_statistics(v, config.seed, config.frames)

    train_vae_stage(config, vae, out, state, "pretrain wan vae", clips, finish, lr=config.vae_lr)


@torch.no_grad()
def set_latent_statistics(vae, seed: int, frames: int = WAN_FRAMES) -> None:
    """Per-channel mean and std of the latents of 64 rendered clips, into the VAE config (Wan's normalisation)."""
    x, _ = clip_batch(seed + 11, 0, 64, frames=frames)
    z = vae.encode(x.to(vae.device)).latent_dist.mode()
    vae.register_to_config(latents_mean=z.mean(dim=(0, 2, 3, 4)).tolist(), latents_std=z.std(dim=(0, 2, 3, 4)).tolist())


def _pipeline(models) -> Any:
    from diffusers import WanPipeline

    tokenizer, text_encoder, vae, transformer, scheduler = models
    return WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )


def train_transformer(config: WanPretrainConfig, models, out: Path, state: dict) -> None:
    """Wan's part: the transformer and the text encoder train on `device`, the clips encoded by the frozen VAE."""
    _, text_encoder, vae, transformer, scheduler = models
    device = config.device
    for module in (text_encoder, vae, transformer):
        module.to(device)
    vae.eval().requires_grad_(False)
    objective = FlowMatchingObjective(scheduler)
    pipe = _pipeline(models)
    _log_device(out, "transformer", state["denoiser_step"], device)
    if cooldown := cooldown_of(config):
        first = config.denoiser_steps - cooldown
        span = f"transformer steps {first}-{config.denoiser_steps}"
        _log(out, {"event": f"learning rate {config.lr:g} cools down linearly to 0 over {span} (constant before)"})

    def text_of(captions: list[str], frames: int) -> torch.Tensor:  # with gradients into the text encoder
        return text_embeddings(pipe, captions, device)

    def loss(step: int) -> torch.Tensor:
        look = NARROW_LOOK if step <= config.narrow_steps else None
        x, captions = clip_batch(config.seed, step, config.denoiser_batch, look, frames=config.frames)
        encode = lambda clips, g: _no_grad_encode(vae, clips, g)  # noqa: E731 (inside, with the step's generator)
        return motion_weighted_loss(config, transformer, objective, encode, text_of, x.to(device), captions, step)

    params = list(transformer.parameters()) + list(text_encoder.parameters())
    part = DenoiserPart(
        label="pretrain wan transformer",
        modules={"transformer": transformer, "text_encoder": text_encoder},
        groups=[{"params": params, "lr": config.lr}],
        loss=loss,
        rates=lambda step, warmup_from: [learning_rate(config, step, warmup_from)],
        stage=lambda step: "transformer",
    )
    train_denoiser(config, part, out, state)


def learning_rate(config: WanPretrainConfig, step: int, warmup_from: int = 0) -> float:
    """Warm-up over 200 steps (from the start, or from a resume without optimizer moments), then constant,
    then the cool-down: linear to zero over the last `cooldown_steps`, which lets the weights settle."""
    steps = cooldown_of(config)
    into = step - (config.denoiser_steps - steps + 1)  # steps into the cool-down: its last one still moves weights
    cooldown = schedule("linear", num_warmup_steps=0, num_training_steps=steps)(into) if steps and into >= 0 else 1.0
    return config.lr * warmup(step, warmup_from) * cooldown


def cooldown_of(config: WanPretrainConfig) -> int:
    """The cool-down's length in steps: as given, or the last fifth of the transformer's steps."""
    return config.denoiser_steps // 5 if config.cooldown_steps is None else config.cooldown_steps


def text_embeddings(pipe, captions: list[str], device) -> torch.Tensor:
    """The prompt embeddings WanPipeline samples with (`encode_prompt` at TEXT_TOKENS), computed cheaply.

    WanPipeline runs UMT5 on the padded prompt with an attention mask, keeps each prompt's own tokens and
    pads them with zeros to the length asked for; so encoding at the tokenizer's length (every caption of
    the world fits) and padding with zeros gives the same tensor, without UMT5 attending over 512 positions
    (3x the whole step's time here).
    """
    embeds, _ = pipe.encode_prompt(
        captions,
        do_classifier_free_guidance=False,
        max_sequence_length=pipe.tokenizer.model_max_length,
        device=device,
    )
    return torch.nn.functional.pad(embeds, (0, 0, 0, TEXT_TOKENS - embeds.shape[1]))


@torch.no_grad()
def _no_grad_encode(vae, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return encode_latents(vae, x, generator)


def pretrain_wan(config: WanPretrainConfig) -> Path:
    """Run (or resume) both stages in `config.out`; returns the exported pipeline folder."""
    from diffusers import AutoencoderKLWan

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    state = _state(out)
    models = build_wan_models(config.seed, config.patch)
    if config.init_from:
        _check_init(config, out, state)
        warm_start(models, resolve_model(config.init_from))
    atomic_write_text(out / "config.json", json.dumps(asdict(config), indent=2))
    train_vae(config, models[2], out, state)
    vae = AutoencoderKLWan.from_pretrained(str(out / "vae_stage" / "vae"))
    models = (*models[:2], vae, *models[3:])
    train_transformer(config, models, out, state)
    if state["denoiser_step"] == 0:  # no transformer step yet: ship the initial weights, card-less
        return save_wan_pipeline(models, out / "pipeline")
    return export_wan(out, out / "pipeline")


def _check_init(config: WanPretrainConfig, out: Path, state: dict) -> None:
    """Record init_from's fingerprint; a resume that still starts from it (no transformer step saved yet)
    refuses weights that changed since, which would give another run than the one begun."""
    config.init_fingerprint = weights_fingerprint(str(config.init_from))
    recorded = json.loads((out / "config.json").read_text()).get("init_fingerprint") if state["vae_step"] else None
    if recorded and recorded != config.init_fingerprint and state["denoiser_step"] == 0:
        raise MotionsepError(
            f"--init-from {config.init_from}: its weights changed since {out} began; resume with the model it "
            "began from, or start a new --out"
        )


@torch.no_grad()
def warm_start(models, init: str) -> None:
    """Start the run's models from a trained Wan-family world model: VAE, text encoder and the transformer's
    blocks as they are. A transformer of another patch size gets its patch embedding summed over the old patch
    (a region of one latent value embeds as before) and its output projection averaged over the old patch's
    positions (each new token predicts what the old patch predicted on average)."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5EncoderModel

    _, text_encoder, vae, transformer, _ = models
    text_encoder.load_state_dict(UMT5EncoderModel.from_pretrained(init, subfolder="text_encoder").state_dict())
    vae.load_state_dict(AutoencoderKLWan.from_pretrained(init, subfolder="vae").state_dict())
    old = WanTransformer3DModel.from_pretrained(init, subfolder="transformer", **dtype_argument(torch.float32))
    weights = old.state_dict()
    new_patch, old_patch = tuple(transformer.config.patch_size), tuple(old.config.patch_size)
    if new_patch != old_patch:
        if new_patch != (1, 1, 1):
            raise MotionsepError(f"warm start from patch {old_patch} to {new_patch}: only (1, 1, 1) is converted")
        weights["patch_embedding.weight"] = weights["patch_embedding.weight"].sum(dim=(2, 3, 4), keepdim=True)
        cells = int(np.prod(old_patch))
        out_w, out_b = weights["proj_out.weight"], weights["proj_out.bias"]  # rows ordered (p_t, p_h, p_w, C)
        weights["proj_out.weight"] = out_w.view(cells, -1, out_w.shape[1]).mean(0)
        weights["proj_out.bias"] = out_b.view(cells, -1).mean(0)
    transformer.load_state_dict(weights)


def save_wan_pipeline(models, dest: Path) -> Path:
    """The models as a WanPipeline folder with fp16 weights (small to ship), then back to fp32 in memory."""
    return save_half(_pipeline(models), dest)


def is_wan_run(run: str | Path) -> bool:
    config = Path(run) / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("family") == "wan"


def export_wan(
    run: str | Path, dest: str | Path, quality: dict | None = None, probe: dict | None = None, ema: bool = True
) -> Path:
    """Ship the newest checkpoint of a run as a WanPipeline folder (fp16 weights) with a model card."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5EncoderModel

    run, dest = Path(run), Path(dest)
    state = _state(run)
    config = read_record(run / "config.json")
    tokenizer, _, _, _, scheduler = build_wan_models(config["seed"])
    stage = run / "denoiser_stage"
    prefix = ema_prefix(run, "transformer", ema)
    models = (
        tokenizer,
        UMT5EncoderModel.from_pretrained(str(stage / f"{prefix}text_encoder")),
        AutoencoderKLWan.from_pretrained(str(run / "vae_stage" / "vae")),
        WanTransformer3DModel.from_pretrained(str(stage / f"{prefix}transformer")),
        scheduler,
    )
    save_wan_pipeline(models, dest)
    # the cool-down the run followed: a run recorded before the option existed trained at a constant rate
    cooldown = cooldown_of(WanPretrainConfig(**{**config, "cooldown_steps": config.get("cooldown_steps", 0)}))
    card = {
        "what": "shapes-world text-to-video model of the Wan family (WanPipeline: WanTransformer3DModel, "
        "AutoencoderKLWan, UMT5EncoderModel, flow matching), "
        + (f"started from {config['init_from']}" if config.get("init_from") else "trained from scratch"),
        "command": f"motionsep toy pretrain --family wan --out {run} --steps {config['denoiser_steps']} "
        f"--vae-steps {config['vae_steps']} --cooldown-steps {cooldown}"
        + (
            f" --init-from {config['init_from']} --batch {config['denoiser_batch']} --vae-lr {config['vae_lr']:g}"
            if config.get("init_from")
            else ""
        ),
        # the world's clip length for this model (toy.protocol.world_frames reads it): a run recorded before
        # the option existed rendered 9 frames
        "clip_frames": config.get("frames", 9),
        "size": [SIZE, SIZE],
        "recipe": {
            **{k: config[k] for k in ("denoiser_batch", "lr", "motion_loss_weight", "caption_dropout", "narrow_steps")},
            "cooldown_steps": cooldown,
            "init_from": config.get("init_from"),
            "patch": config.get("patch", [1, 2, 2]),
        },
        "vae_steps": state["vae_step"],
        "transformer_steps": state["denoiser_step"],
        "wall_time_hours": {  # summed over the machines it ran on
            "vae": round(state["vae_seconds"] / 3600, 2),
            "transformer": round(state["seconds"] / 3600, 2),
        },
        "exported_on": f"{platform.machine()}, torch {torch.__version__}",
    }
    modules = {"transformer": models[3], "vae": models[2], "text_encoder": models[1]}
    return write_model_card(dest, run, card, prefix, modules, quality, probe)
