"""`motionsep bench cost`: what each method costs to train and to sample, against MotionDirector.

Training: trainable parameters, LoRA file size, seconds per step and peak memory, each method in a
fresh process (so one method's memory cannot hide in another's peak), on the embedded model and on
the real ModelScope/ZeroScope UNet config with random weights at a reduced size; on request also on
the Wan 2.1 1.3B transformer config (a DiT, flow matching), where the ratios are to `full-lora`, the
LoRA its users would otherwise train. A step is
motionsep's own training step (``train.step_losses`` + AdamW) on cached latents, as in training.
Peak memory: on a GPU, torch's peak allocation; on the CPU, the process's peak resident memory
above what it held once the model was built (Linux VmHWM).

Sampling: the plain base pipeline against the same pipeline with a tap LoRA, Appearance Highway
and PLI, with the LoRA fused into the weights (adapters.FusedLora) and unfused.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..errors import MotionsepError, closest, refuse_existing
from ..models import Denoiser, has_highway
from .report import BASE_AGAIN, FUSED_GENERATION, machine_line, write_json

COST_METHODS = ("motiondirector", "temporal-lora", "tap-official", "tap")
COST_MODELS = ("toy", "zeroscope")
WAN_COST_MODEL = "wan-1.3b"
TOY_WAN = "toy-wan"  # the embedded Wan-family model
ALL_COST_MODELS = (*COST_MODELS, TOY_WAN, WAN_COST_MODEL)
WAN_COST_METHODS = ("full-lora", "motiondirector", "temporal-lora", "tap")
# the model each is built from: an embedded model, or a shipped config with random weights
COST_MODEL_SOURCES = {
    "toy": "toy",
    "zeroscope": "zeroscope-config",
    TOY_WAN: TOY_WAN,
    WAN_COST_MODEL: "wan-1.3b-config",
}


def cost_model_has_highway(model: str) -> bool:
    return has_highway(COST_MODEL_SOURCES[model])


def baseline_of(model: str) -> str:
    """The method a model's ratios are taken to: MotionDirector on the U-Nets, the trainers' full LoRA on a DiT."""
    return "motiondirector" if cost_model_has_highway(model) else "full-lora"


@dataclass(frozen=True)
class CostTargets:
    """What the report checks: tap's step time and peak memory as ratios to MotionDirector's, and generation
    with the fused tap LoRA + AH + PLI as a ratio to the base pipeline."""

    step_ratio: float = 0.6
    memory_ratio: float = 0.85
    generation_ratio: float = 1.02


COST_TARGETS = CostTargets()


@dataclass
class CostSettings:
    models: tuple[str, ...] = COST_MODELS
    methods: tuple[str, ...] = COST_METHODS
    rank: int = 32  # the release's and MotionDirector's rank
    frames: int = 8
    toy_size: int = 32  # pixels; latents are size / 4 on the embedded model
    zeroscope_latent: int = 8  # latent side for the ZeroScope UNet (8 = 64x64 px: reduced to fit a CPU)
    batch: int = 1
    warmup_steps: int = 2
    toy_steps: int = 20
    zeroscope_steps: int = 3
    device: str = "cpu"
    dtype: str = "float32"  # "float16"/"bfloat16" on a GPU (base weights; LoRA stays fp32)
    gradient_checkpointing: bool = False
    fp8_base: bool = False  # the frozen base stored in float8 (train.memory.fp8_base), computed at `dtype`
    generation_videos: int = 4
    generation_repeats: int = 3
    zeroscope_generation_calls: int = 4
    # Wan 1.3B: pixel size and frames (1 + 4k) of the clip whose latents a step trains on; reduced to fit a CPU,
    # the real size on a GPU: --wan-size 480 832 --wan-frames 33
    wan_size: tuple[int, int] = (64, 112)
    wan_frames: int = 9
    wan_steps: int = 2

    @classmethod
    def quick(cls) -> CostSettings:
        return cls(models=("toy",), toy_steps=3, warmup_steps=1, generation_videos=1, generation_repeats=1)

    def check(self) -> None:
        for m in self.methods:
            if m not in COST_METHODS:
                raise MotionsepError(f"unknown method '{m}'{closest(m, COST_METHODS)}")
        for m in self.models:
            if m not in ALL_COST_MODELS:
                raise MotionsepError(f"unknown cost model '{m}'{closest(m, ALL_COST_MODELS)}")
        if (self.wan_frames - 1) % 4 or any(side % 16 for side in self.wan_size):
            raise MotionsepError(
                "Wan clips are 1 + 4k frames with sides divisible by 16, e.g. --wan-size 480 832 --wan-frames 33"
            )


# --- building the denoiser ------------------------------------------------------------------------


def _random_init(denoiser: Denoiser, seed: int = 0) -> None:
    """Fan-in scaled random weights, unit norms, zero biases: cheap, and activations stay finite."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in denoiser.named_parameters():
            if p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
            elif name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()


def build_denoiser(model: str, device: str, dtype: torch.dtype) -> Any:  # a diffusers ModelMixin
    from diffusers import UNet3DConditionModel

    from ..models import (
        build_denoiser_from_config,
        dtype_argument,
        family_of_model,
        load_denoiser_config,
        resolve_model,
    )

    if model == "toy":
        denoiser = UNet3DConditionModel.from_pretrained(resolve_model("toy"), subfolder="unet")
    elif model == TOY_WAN:
        import diffusers

        family = family_of_model(model)
        denoiser_class = getattr(diffusers, family.denoiser_class)
        denoiser = denoiser_class.from_pretrained(
            resolve_model(model), subfolder=family.denoiser, **dtype_argument(torch.float32)
        )
    else:
        denoiser = build_denoiser_from_config(load_denoiser_config(COST_MODEL_SOURCES[model]), device="meta")
        denoiser = denoiser.to_empty(device="cpu")
        _random_init(denoiser)
    denoiser = denoiser.to(device=device)
    return denoiser if dtype == torch.float32 else denoiser.to(dtype=dtype)


def _latent_shape(model: str, denoiser, settings: CostSettings) -> tuple[int, ...]:
    if model == TOY_WAN:  # the world's clips (its card's length) through its causal VAE: 2x in time, 4x in space
        from ..models import resolve_model
        from ..toy.protocol import world_frames

        vae = json.loads((Path(resolve_model(model)) / "vae" / "config.json").read_text())
        frames = 1 + (world_frames(model) - 1) // vae["scale_factor_temporal"]
        side = settings.toy_size // vae["scale_factor_spatial"]
        return (settings.batch, denoiser.config.in_channels, frames, side, side)
    if model == WAN_COST_MODEL:  # Wan's VAE: 4x in time (causal, 1 + 4k frames), 8x in space
        height, width = settings.wan_size
        return (
            settings.batch,
            denoiser.config.in_channels,
            1 + (settings.wan_frames - 1) // 4,
            height // 8,
            width // 8,
        )
    side = settings.toy_size // 4 if model == "toy" else settings.zeroscope_latent
    return (settings.batch, denoiser.config.in_channels, settings.frames, side, side)


def _text(denoiser, batch: int, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if "text_dim" in denoiser.config:  # Wan: UMT5 embeddings, 512 tokens
        return torch.randn(batch, 512, denoiser.config.text_dim, generator=g).to(device)
    tokens = 77 if denoiser.config.cross_attention_dim >= 768 else 32  # CLIP's 77 on real models, the toy encoder's 32
    return torch.randn(batch, tokens, denoiser.config.cross_attention_dim, generator=g).to(device)


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak(device: str) -> int:
    """Start a peak measurement; returns the baseline in bytes."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM to the current RSS
    return _rss_kb("VmRSS") * 1024


def _peak(device: str) -> int:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    return _rss_kb("VmHWM") * 1024


# --- training cost ------------------------------------------------------------------------------


def measure_training(model: str, method_name: str, settings: dict) -> dict:
    """One method's training cost; meant to run in a fresh process (see `training_costs`)."""
    import diffusers.utils.logging

    from ..adapters import MOTION

    diffusers.utils.logging.set_verbosity_error()  # a fresh process: the CLI's quieting does not reach it
    s = CostSettings(**settings)
    state = _cost_state(model, method_name, s)
    steps = {"toy": s.toy_steps, TOY_WAN: s.toy_steps, "zeroscope": s.zeroscope_steps}.get(model, s.wan_steps)
    times, peak = _timed_steps(state, s, steps)
    sizes = _saved_sizes(state, s.device)
    return {
        "model": model,
        "method": method_name,
        "lora_layers": {k: len(v) for k, v in state.targets.items()},
        "trainable_parameters": sum(p.numel() for group in state.params.values() for p in group),
        "motion_lora_parameters": sum(p.numel() for p in state.params[MOTION]),
        "motion_lora_bytes": sizes[MOTION],
        "saved_bytes": sum(sizes.values()),
        "seconds_per_step": statistics.median(times),
        "step_times": [round(t, 4) for t in times],
        "peak_memory_bytes": peak,
        "predicted_memory_bytes": _predicted_above_model(model, state, s),
        "frozen_parameters": sum(p.numel() for p in state.denoiser.parameters() if not p.requires_grad),
        "model_bytes": sum(p.numel() * p.element_size() for p in state.denoiser.parameters() if not p.requires_grad),
        "latents": list(state.latents.shape),
    }


def _predicted_above_model(model: str, state, s: CostSettings) -> int:
    """What `motionsep inspect --frames --size` predicts for the measured part of the peak, above the loaded model
    and LoRA: the activations, and the LoRA's gradients and AdamW moments (12 bytes a trainable parameter)."""
    from ..memory import MemoryPlan, predict_training_memory
    from ..models import build_denoiser_from_config, family_of, load_denoiser_config

    meta = build_denoiser_from_config(load_denoiser_config(COST_MODEL_SOURCES[model]))
    precision = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}[s.dtype]
    plan = MemoryPlan(precision, fp8_base=s.fp8_base, gradient_checkpointing=s.gradient_checkpointing)
    trainable = sum(p.numel() for group in state.params.values() for p in group)
    latents, text = tuple(state.latents.shape), tuple(state.text.shape)
    parts = predict_training_memory(meta, family_of(meta), plan, state.targets["temporal"], 0, latents, text)
    return parts["activations"] + 12 * trainable


def _cost_state(model: str, method_name: str, s: CostSettings):
    """A training state on a random-weight denoiser alone (no VAE, no text encoder: random latents and text)."""
    from ..config import LoraSettings, TrainConfig
    from ..losses import objective_for
    from ..methods import resolve_method
    from ..models import family_of
    from ..train import TrainingState, attach_method_lora, enable_gradient_checkpointing

    torch.manual_seed(0)
    denoiser = build_denoiser(model, s.device, getattr(torch, s.dtype))
    if s.fp8_base:  # as train.prepare: before the LoRA exists, so only the frozen base is stored in float8
        denoiser.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=getattr(torch, s.dtype))
    method = resolve_method(method_name)
    targets, lora_configs, params = attach_method_lora(denoiser, method, LoraSettings(rank=s.rank, dropout=0.0))
    for group in params.values():
        for p in group:
            p.data = p.data.float()  # LoRA weights train in fp32 whatever the base dtype
            torch.nn.init.normal_(p, std=0.01)  # non-zero B, so the LoRA path costs what it will cost
    if s.gradient_checkpointing:
        enable_gradient_checkpointing(denoiser)
    latents = torch.randn(_latent_shape(model, denoiser, s), generator=torch.Generator().manual_seed(0))
    family = family_of(denoiser)
    scheduler = family.training_scheduler()
    config = TrainConfig(method=method_name)
    config.train.batch_size = s.batch
    text = _text(denoiser, s.batch, "cpu")
    objective = objective_for(scheduler)
    state = TrainingState(config, method, family, None, denoiser, latents, text, lora_configs, targets, objective)
    state.params = params
    return state


def _timed_steps(state, s: CostSettings, steps: int) -> tuple[list[float], int]:
    """Seconds of each optimizer step after the warm-up ones, and the peak memory above the model's."""
    from ..train import sample_batch, step_losses

    dtype = getattr(torch, s.dtype)
    g = torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW([{"params": p} for p in state.params.values()], lr=1e-4)
    state.denoiser.train()
    baseline = _reset_peak(s.device)
    times = []
    autocast = torch.autocast(device_type=s.device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32)
    for step in range(s.warmup_steps + steps):
        started = time.perf_counter()
        batch = sample_batch(state, g, s.device)
        with autocast:
            step_losses(state, batch, g, backward=lambda loss, inputs: loss.backward(inputs=inputs))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if s.device.startswith("cuda"):
            torch.cuda.synchronize()
        if step >= s.warmup_steps:
            times.append(time.perf_counter() - started)
    return times, _peak(s.device) - baseline


def _saved_sizes(state, device: str) -> dict[str, int]:
    """Bytes of each saved LoRA file (fp16 from a GPU run, fp32 from the CPU)."""
    from safetensors.torch import save_file

    from ..adapters import MOTION, SPATIAL, lora_state_dict

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in (MOTION, SPATIAL):
            if name in state.lora_configs:
                path = Path(tmp) / f"{name}.safetensors"
                weights = lora_state_dict(state.denoiser, name)
                save_file({k: v.detach().to(dtype).contiguous() for k, v in weights.items()}, str(path))
                sizes[name] = path.stat().st_size
    return sizes


def training_costs(settings: CostSettings, progress: bool = True) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")
    rows = []
    jobs = [
        (m, meth)
        for m in settings.models
        for meth in (settings.methods if cost_model_has_highway(m) else WAN_COST_METHODS)
    ]
    for model, method in tqdm(jobs, desc="training cost", disable=not progress):
        with ctx.Pool(1) as pool:  # a fresh process per measurement: peaks do not mix
            rows.append(pool.apply(measure_training, (model, method, asdict(settings))))
    for row in rows:
        baseline = baseline_of(row["model"])
        ref = next((r for r in rows if r["model"] == row["model"] and r["method"] == baseline), None)
        if ref:
            row[f"ratio_to_{baseline.replace('-', '_')}"] = {
                k: round(row[k] / ref[k], 3) if ref[k] else None
                for k in (
                    "trainable_parameters",
                    "motion_lora_bytes",
                    "saved_bytes",
                    "seconds_per_step",
                    "peak_memory_bytes",
                )
            }
    return rows


# --- generation cost ----------------------------------------------------------------------------


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first-call allocations and kernel selection are not sampling cost
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def toy_lora(folder: Path) -> Path:
    """A real tap LoRA on the embedded model (a few steps: its cost, not its quality, is measured here)."""
    from ..toy.reference import toy_training_config, write_reference_clips
    from ..train import train

    write_reference_clips(folder / "reference", "zigzag", count=2, overwrite=True)
    config = toy_training_config(
        folder / "reference" / "clips", folder / "lora", steps=3, rank=32, batch_size=1, checkpoint_every=0
    )
    return train(config, overwrite=True, progress=False)


def toy_generation_cost(settings: CostSettings) -> dict:
    """Seconds per batch of videos on the embedded pipeline: plain vs tap LoRA + AH + PLI (fused, unfused)."""
    from ..generate import MotionPipeline
    from ..toy.protocol import TOY_SAMPLING

    prompts = ["a blue circle moving in a zigzag on a plain background"] * settings.generation_videos
    seeds = list(range(settings.generation_videos))
    with tempfile.TemporaryDirectory() as tmp:
        lora = toy_lora(Path(tmp))
        pipelines = {
            "base": MotionPipeline.from_pretrained("toy"),
            FUSED_GENERATION: MotionPipeline.from_pretrained(
                "toy", lora=str(lora), highway=True, pli_tau=333, fuse_lora=True
            ),
            "tap + AH + PLI, LoRA unfused": MotionPipeline.from_pretrained(
                "toy", lora=str(lora), highway=True, pli_tau=333
            ),
            "tap, LoRA unfused": MotionPipeline.from_pretrained("toy", lora=str(lora), highway=False, pli_tau=-1),
        }
        pipelines[BASE_AGAIN] = pipelines["base"]
        seconds = {
            name: _median_seconds(lambda p=p: p.videos(prompts, seeds, TOY_SAMPLING), settings.generation_repeats)
            for name, p in pipelines.items()
        }
    return {
        "what": f"{settings.generation_videos} videos, 8 frames 32x32, {TOY_SAMPLING.steps} DDIM steps, guidance "
        f"{TOY_SAMPLING.guidance}; median of {settings.generation_repeats}",
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "ratio_to_base": {k: round(v / seconds["base"], 3) for k, v in seconds.items()},
    }


def zeroscope_generation_cost(settings: CostSettings) -> dict:
    """UNet calls of a sampling loop on the ZeroScope architecture: plain vs tap LoRA + AH + PLI (fused / unfused)."""
    from ..adapters import FusedLora
    from ..config import LoraSettings
    from ..highway import AppearanceHighway, HighwaySettings
    from ..methods import resolve_method
    from ..pli import PhasedLora
    from ..train import attach_method_lora

    dtype = getattr(torch, settings.dtype)
    denoiser = build_denoiser("zeroscope", settings.device, dtype).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn((2, *_latent_shape("zeroscope", denoiser, settings)[1:]), generator=g).to(
        settings.device, dtype
    )  # CFG batch
    text = _text(denoiser, 2, settings.device).to(dtype)
    n = settings.zeroscope_generation_calls
    timesteps = [999 - i * (1000 // n) for i in range(n)]  # half above tau = 500, half below

    @torch.no_grad()
    def loop():
        for t in timesteps:
            denoiser(x, torch.tensor([t], device=settings.device), encoder_hidden_states=text)
        if settings.device.startswith("cuda"):
            torch.cuda.synchronize()

    seconds = {"base": _median_seconds(loop, settings.generation_repeats)}
    attach_method_lora(denoiser, resolve_method("tap"), LoraSettings(rank=settings.rank, dropout=0.0))
    denoiser.requires_grad_(False)  # B starts at zero: the fused delta is zero, the unfused path still pays its matmuls
    highway = AppearanceHighway(denoiser, HighwaySettings(), enabled=True)
    pli = PhasedLora(denoiser, 500)
    seconds["tap + AH + PLI, LoRA unfused"] = _median_seconds(loop, settings.generation_repeats)
    pli.remove()
    fused = FusedLora(denoiser)
    pli = PhasedLora(denoiser, 500, fused=fused)
    seconds[FUSED_GENERATION] = _median_seconds(loop, settings.generation_repeats)
    pli.remove()
    highway.remove()
    del denoiser, fused, highway, pli
    # a fresh base: the run-to-run noise of the ratios
    denoiser = build_denoiser("zeroscope", settings.device, dtype).eval()
    seconds[BASE_AGAIN] = _median_seconds(loop, settings.generation_repeats)
    return {
        "what": f"{n} UNet calls (CFG batch 2, {settings.frames} frames, "
        f"{settings.zeroscope_latent}x{settings.zeroscope_latent} latents, {settings.dtype}); median of "
        f"{settings.generation_repeats}",
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "ratio_to_base": {k: round(v / seconds["base"], 3) for k, v in seconds.items()},
    }


def run_cost_bench(
    out: str | Path,
    settings: CostSettings | None = None,
    overwrite: bool = False,
    progress: bool = True,
    command: str = "motionsep bench cost",
) -> dict:
    from .report import cost_report

    settings = settings or CostSettings()
    settings.check()
    out = Path(out)
    refuse_existing([out / "cost.json", out / "cost.md"], overwrite)
    started = time.time()
    result: dict[str, Any] = {
        "command": command,
        "settings": asdict(settings),
        "machine": machine_line(),
        "date": time.strftime("%Y-%m-%d"),
        "targets": asdict(COST_TARGETS),
    }
    result["training"] = training_costs(settings, progress)
    generation = {}
    if "toy" in settings.models:
        generation["toy"] = toy_generation_cost(settings)
    if "zeroscope" in settings.models:
        generation["zeroscope"] = zeroscope_generation_cost(settings)
    result["generation"] = generation
    result["wall_seconds"] = round(time.time() - started, 1)
    write_json(out / "cost.json", result)
    (out / "cost.md").write_text(cost_report(result), encoding="utf-8")
    return result


def format_cost_summary(r: dict, out: Path) -> str:
    """What `motionsep bench cost` prints at the end: one line per model and method, then generation."""
    lines = [f"\ncost benchmark in {r['wall_seconds'] / 60:.1f} min"]
    for row in r["training"]:
        baseline = baseline_of(row["model"])
        ratio = row.get(f"ratio_to_{baseline.replace('-', '_')}", {})
        short = "MD" if baseline == "motiondirector" else baseline
        lines.append(
            f"  {row['model']:9s} {row['method']:15s} {row['trainable_parameters'] / 1e6:8.3f} M params  "
            f"{row['seconds_per_step']:.3f} s/step ({ratio.get('seconds_per_step', 0):.2f}x {short})  "
            f"peak {row['peak_memory_bytes'] / 2**20:.0f} MB ({ratio.get('peak_memory_bytes', 0):.2f}x {short})"
        )
    for model, g in r["generation"].items():
        lines.append(f"  generation ({model}): " + ", ".join(f"{k} {v:.3f}x" for k, v in g["ratio_to_base"].items()))
    lines.append(f"  report  {out / 'cost.md'}\n  data    {out / 'cost.json'}")
    return "\n".join(lines)
