"""Pretraining the AnimateDiff-family shapes-world model: motion modules on the embedded model's image weights.

AnimateDiff was made by taking a pretrained image model (SD1.5), adding motion modules (attention
across frames with sinusoidal frame positions, ``MotionAdapter``) and training only those on video.
The shapes world does the same: the embedded ModelScope-family model's spatial weights go unchanged
into a ``UNet2DConditionModel`` of the same shape (its temporal layers are dropped), a fresh
``MotionAdapter`` is added with ``UNetMotionModel.from_unet2d``, and

1. for ``motion_steps`` steps only the motion modules train, spatial weights frozen (AnimateDiff's recipe);
2. then the spatial weights train too, at ``spatial_lr``: they had leaned on the temporal convolutions
   that are gone (measured on a prototype: motion-module training alone left colour at 67%, shape 83%).

The text encoder, tokenizer, VAE and scheduler are the embedded model's, frozen. With no temporal
convolution left, the model's only path across frames is the motion modules' attention, which is
the property this world exists for (``motionsep probe`` measures it). The result is an ordinary
``AnimateDiffPipeline`` folder. Data and noise of step N depend only on (seed, N), so a resumed run
sees what an uninterrupted one would.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import atomic_write_text
from .pretrain import (
    DenoiserPart,
    _state,
    base_pipeline,
    clip_batch,
    denoising_step_loss,
    ema_prefix,
    read_record,
    save_half,
    token_ids,
    train_denoiser,
    warmup,
    write_model_card,
)
from .world import FRAMES, SIZE

MOTION_MODULES = "motion_modules"


@dataclass
class AnimateDiffPretrainConfig:
    out: str = "toy-pretrain-animatediff"
    base: str = "toy"  # the model whose spatial weights, VAE, text encoder and scheduler are reused
    seed: int = 0
    motion_steps: int = 1250  # motion modules only, spatial weights frozen
    denoiser_steps: int = 2500  # in all; after motion_steps the spatial weights train too
    denoiser_batch: int = 16
    lr: float = 3e-4  # motion modules
    spatial_lr: float = 5e-5  # spatial weights, once they train: a nudge, not a relearning
    motion_heads: int = 4
    checkpoint_every: int = 250
    caption_dropout: float = 0.1
    motion_loss_weight: float = 3.0  # as the ModelScope-family pretraining (toy/pretrain.py says why)
    ema_decay: float = 0.999


def build_motion_unet(base_unet, motion_heads: int = 4):
    """A UNetMotionModel holding `base_unet`'s (a UNet3DConditionModel's) spatial weights and fresh motion modules."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    c = base_unet.config
    image_unet: Any = UNet2DConditionModel(
        sample_size=c.sample_size,
        in_channels=c.in_channels,
        out_channels=c.out_channels,
        layers_per_block=c.layers_per_block,
        norm_num_groups=c.norm_num_groups,
        down_block_types=tuple(b.replace("3D", "2D") for b in c.down_block_types),
        up_block_types=tuple(b.replace("3D", "2D") for b in c.up_block_types),
        block_out_channels=tuple(c.block_out_channels),
        attention_head_dim=c.attention_head_dim,
        cross_attention_dim=c.cross_attention_dim,
        use_linear_projection=True,  # UNet3D's spatial transformers project with Linear layers
    )
    result = image_unet.load_state_dict(base_unet.state_dict(), strict=False)
    if result.missing_keys:  # every image weight must come from the base model; only temporal ones are left out
        raise RuntimeError(f"spatial weights missing from the base UNet: {result.missing_keys[:5]}")
    adapter = MotionAdapter(
        block_out_channels=tuple(c.block_out_channels),
        motion_layers_per_block=c.layers_per_block,
        motion_norm_num_groups=c.norm_num_groups,
        motion_num_attention_heads=motion_heads,
        motion_max_seq_length=32,
    )
    return UNetMotionModel.from_unet2d(image_unet, adapter)


def _split_params(unet) -> tuple[list, list]:
    motion = [p for n, p in unet.named_parameters() if MOTION_MODULES in n]
    spatial = [p for n, p in unet.named_parameters() if MOTION_MODULES not in n]
    return motion, spatial


def pretrain_animatediff(config: AnimateDiffPretrainConfig) -> Path:
    """Run (or resume) the motion-module pretraining in `config.out`; returns the exported pipeline folder.

    AnimateDiff's part in the one loop: fresh motion modules train on the base's frozen spatial weights for
    `motion_steps`, then the spatial weights join at `spatial_lr`, warming up again."""
    from diffusers import DDPMScheduler

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(asdict(config), indent=2))
    state = _state(out)
    base = base_pipeline(config.base)
    torch.manual_seed(config.seed)
    unet = build_motion_unet(base.unet, config.motion_heads)
    motion_params, spatial_params = _split_params(unet)
    noise_scheduler = DDPMScheduler.from_config(base.scheduler.config)
    tokenizer, text_encoder, vae = base.tokenizer, base.text_encoder, base.vae
    text_encoder.requires_grad_(False)
    vae.requires_grad_(False)

    @torch.no_grad()
    def text_of(captions: list[str], frames: int) -> torch.Tensor:  # UNetMotionModel wants the text per frame
        return text_encoder(token_ids(tokenizer, captions))[0].repeat_interleave(frames, dim=0)

    def loss(step: int) -> torch.Tensor:
        x, captions = clip_batch(config.seed, step, config.denoiser_batch)
        return denoising_step_loss(config, unet, noise_scheduler, vae, text_of, x, captions, step)

    def before_step(step: int) -> dict:
        for p in spatial_params:
            p.requires_grad_(step > config.motion_steps)  # frozen params get no grad, and AdamW skips them
        return {"spatial": "on" if step > config.motion_steps else "frozen"}

    def rates(step: int, warmup_from: int) -> list[float]:  # the spatial weights warm up when they join
        ramp = warmup(step, warmup_from)
        return [config.lr * ramp, config.spatial_lr * min(ramp, max(0.0, warmup(step, config.motion_steps)))]

    part = DenoiserPart(
        label="pretrain motion modules",
        modules={"unet": unet},
        groups=[{"params": motion_params, "lr": config.lr}, {"params": spatial_params, "lr": config.spatial_lr}],
        loss=loss,
        rates=rates,
        stage=lambda step: "motion+spatial" if step > config.motion_steps else "motion",
        before_step=before_step,
    )
    train_denoiser(config, part, out, state)
    return export_animatediff(out, out / "pipeline")


def is_animatediff_run(run: str | Path) -> bool:
    config = Path(run) / "config.json"
    return config.is_file() and "motion_steps" in json.loads(config.read_text())


def export_animatediff(
    run: str | Path, dest: str | Path, quality: dict | None = None, probe: dict | None = None, ema: bool = True
) -> Path:
    """Ship the newest checkpoint of a run as an AnimateDiffPipeline folder (fp16) with a model card."""
    import platform

    from diffusers import AnimateDiffPipeline, UNetMotionModel

    run, dest = Path(run), Path(dest)
    state = _state(run)
    config = read_record(run / "config.json")
    base = base_pipeline(config["base"])
    prefix = ema_prefix(run, "unet", ema)
    unet = UNetMotionModel.from_pretrained(str(run / "denoiser_stage" / f"{prefix}unet"))
    parts = {"vae": base.vae, "text_encoder": base.text_encoder, "tokenizer": base.tokenizer}
    save_half(AnimateDiffPipeline(**parts, unet=unet, motion_adapter=None, scheduler=base.scheduler), dest)
    motion, spatial = _split_params(unet)
    recipe = (
        "motion_steps",
        "denoiser_steps",
        "denoiser_batch",
        "lr",
        "spatial_lr",
        "motion_heads",
        "motion_loss_weight",
    )
    card = {
        "what": "shapes-world text-to-video model of the AnimateDiff family (AnimateDiffPipeline, UNetMotionModel): "
        "the embedded ModelScope-family model's spatial weights, VAE and text encoder, with motion modules trained "
        "for this world",
        "command": f"motionsep toy pretrain --family animatediff --out {run} --steps {config['denoiser_steps']}",
        "clip_frames": FRAMES,  # what the model samples at by default (generate, toy.protocol)
        "size": [SIZE, SIZE],
        "recipe": {k: config[k] for k in (*recipe, "caption_dropout")},
        "denoiser_steps": state["denoiser_step"],
        "wall_time_hours": {"unet": round(state["seconds"] / 3600, 2)},
        "machine": f"{platform.machine()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}",
    }
    # parameter counts of the two halves: motion modules and the spatial weights they sit in
    halves = {"motion_modules": torch.nn.ParameterList(motion), "spatial": torch.nn.ParameterList(spatial)}
    return write_model_card(dest, run, card, prefix, halves, quality, probe)
