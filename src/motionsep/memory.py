"""The peak memory a training run will need, predicted from configs alone (`motionsep inspect --frames --size`),
so a user knows whether a model fits their card before downloading it.

Training runs in two phases (train.cache_inputs). First the text encoder and the VAE sit on the device to cache
the latents and captions. Then the denoiser sits there and trains. The peak is the larger of the two:

- caching: the text encoder's published parameter count (`Family.text_encoder_parameters`) at the weight dtype,
  and an image-to-video model's image encoder (`Family.image_encoder_parameters`); the VAE's own activations are
  not counted;
- training: the frozen denoiser's weights at the weight dtype (fp32 where the model keeps modules in fp32, float8
  where `train.memory.fp8_base` stores them), 16 bytes a trainable parameter (fp32 weight, gradient and AdamW's two
  moments), and the activations autograd keeps for the backward pass.

The activations are traced, not guessed: the real denoiser class runs forward on PyTorch's meta device at the real
latent size (nothing is allocated), and every tensor autograd saves is counted once by its storage. Attention is
counted as a GPU's flash attention keeps it (query, key, value, output and one float per query and head), not as
the meta device's reference attention, which keeps the whole attention map. With gradient checkpointing, each
checkpointed unit (`Family.checkpoint_units`) keeps only its input, and one unit at a time keeps everything while
it recomputes. Transient buffers, the allocator's slack and the CUDA context are left out; a GPU run measures how
far the prediction is off (docs/usage.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from .families.base import Family

TRAINABLE_BYTES = 16  # a trainable fp32 parameter: itself, its gradient and AdamW's two moments
WEIGHT_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
WEIGHT_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class MemoryPlan:
    """How the frozen base is held: the weight dtype (train.mixed_precision on a GPU), float8 storage
    (train.memory.fp8_base) and gradient checkpointing (train.gradient_checkpointing)."""

    precision: str = "bf16"
    fp8_base: bool = False
    gradient_checkpointing: bool = False
    fp8_text_encoder: bool = False


class _FlashAttention(torch.autograd.Function):
    """What flash attention keeps for its backward pass: query, key, value, output and a float per query and head."""

    @staticmethod
    def forward(ctx, query, key, value):
        out = torch.empty(query.shape[:-1] + value.shape[-1:], dtype=query.dtype, device=query.device)
        log_sum_exp = torch.empty(query.shape[:-1], dtype=torch.float32, device=query.device)
        ctx.save_for_backward(query, key, value, out, log_sum_exp)
        return out

    @staticmethod
    def backward(ctx, grad):
        query, key, value, _, _ = ctx.saved_tensors
        return torch.zeros_like(query), torch.zeros_like(key), torch.zeros_like(value)


class _AsFlashAttention(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            names = ("query", "key", "value")
            return _FlashAttention.apply(*(args[i] if i < len(args) else kwargs[n] for i, n in enumerate(names)))
        return func(*args, **kwargs)


def as_trained(denoiser, plan: MemoryPlan, trainable: list[str]) -> None:
    """The meta denoiser as training computes with it: at the weight dtype with the model's fp32 modules kept (as
    diffusers' from_pretrained keeps them), and `trainable` weights requiring grad (where a LoRA makes autograd keep
    the layer's input). Float8 storage is left to `predict_training_memory`: it changes what the weights hold, not
    what the layers compute."""
    keep = getattr(denoiser, "_keep_in_fp32_modules", None) or []
    denoiser.to(device="meta", dtype=WEIGHT_DTYPES[plan.precision])  # buffers too (accelerate's empty init keeps them)
    for name, module in denoiser.named_modules():
        if any(k in name.split(".") for k in keep):
            module.to(torch.float32)
    denoiser.requires_grad_(False)
    for name in trainable:
        denoiser.get_submodule(name).weight.requires_grad_(True)


@contextlib.contextmanager
def _units_tracked(denoiser, units: list[str]) -> Iterator[dict[str, Any]]:
    """Which checkpointed unit is running (`current`), and the bytes of each unit's input (`inputs`)."""
    state: dict[str, Any] = {"current": None, "inputs": {}}
    handles = []
    for name in units:

        def enter(module, args, kwargs, _name=name):
            state["current"] = _name
            first = args[0] if args else next(iter(kwargs.values()))
            state["inputs"][_name] = first.numel() * first.element_size()

        def leave(module, args, output):
            state["current"] = None

        module = denoiser.get_submodule(name)
        handles += [module.register_forward_pre_hook(enter, with_kwargs=True), module.register_forward_hook(leave)]
    try:
        yield state
    finally:
        for handle in handles:
            handle.remove()


def traced_activations(denoiser, family: Family, latent_shape: tuple[int, ...], text_shape: tuple[int, ...]):
    """Bytes autograd keeps for the backward pass of one training forward on the meta denoiser: (everything, per
    checkpointed unit, each unit's input). Parameters are not activations and are left out."""
    parameters = {p.untyped_storage()._cdata for p in denoiser.parameters()}
    units = family.checkpoint_units(denoiser)
    kept: dict[int, tuple[int, str | None]] = {}
    dtype = next(p.dtype for p in denoiser.parameters() if p.dtype != torch.float8_e4m3fn)
    with _units_tracked(denoiser, units) as where:

        def pack(tensor):
            key = tensor.untyped_storage()._cdata
            # a weight cast up from float8 for its layer is the parameter itself, cast back after the layer runs
            if not isinstance(tensor, torch.nn.Parameter) and key not in parameters and key not in kept:
                kept[key] = (tensor.untyped_storage().nbytes(), where["current"])
            return tensor

        latents = torch.zeros(latent_shape, device="meta", dtype=dtype)
        text = torch.zeros(text_shape, device="meta", dtype=dtype)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), _AsFlashAttention():
            family.predict(denoiser, latents, torch.full((latent_shape[0],), 500.0, device="meta"), text)
    per_unit = {u: sum(b for b, w in kept.values() if w == u) for u in units}
    return sum(b for b, _ in kept.values()), per_unit, where["inputs"]


def predict_training_memory(
    denoiser,
    family: Family,
    plan: MemoryPlan,
    trainable: list[str],
    trainable_parameters: int,
    latent_shape,
    text_shape,
) -> dict[str, int]:
    """Bytes of each part of the peak, and the peak (and whether the caching counts an image encoder): see the
    module's docstring. `denoiser` is a meta model built
    from its config (models.build_denoiser_from_config); it is changed (dtype, grads) and should be thrown away."""
    as_trained(denoiser, plan, trainable)
    everything, per_unit, inputs = traced_activations(denoiser, family, latent_shape, text_shape)
    if plan.fp8_base:
        # the trace stays at the compute dtype: on the meta device the casting hooks drop a trainable weight's
        # grad flag, and whether a layer's upcast weight outlives its forward is a GPU measurement (docs/usage.md)
        compute = WEIGHT_DTYPES[plan.precision]
        denoiser.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute)
    weights = sum(p.numel() * p.element_size() for p in denoiser.parameters())
    activations = everything
    if plan.gradient_checkpointing and per_unit:
        activations = everything - sum(per_unit.values()) + sum(inputs.values()) + max(per_unit.values())
    unscaled = family.text_encoder_unscaled_parameters  # left at the weight dtype by float8 storage
    per_parameter = 1 if plan.fp8_text_encoder else WEIGHT_BYTES[plan.precision]
    caching = unscaled * WEIGHT_BYTES[plan.precision] + (family.text_encoder_parameters - unscaled) * per_parameter
    image_encoder = family.image_encoder_parameters(denoiser)
    caching += image_encoder * WEIGHT_BYTES[plan.precision]  # never stored in float8
    training = weights + trainable_parameters * TRAINABLE_BYTES + activations
    return {
        "weights": weights,
        "trainable_state": trainable_parameters * TRAINABLE_BYTES,
        "activations": activations,
        "training": training,
        "caching": caching,
        "image_encoder": image_encoder > 0,
        "peak": max(training, caching),
    }


def vae_factors(model: str, family: Family, denoiser_config: dict[str, Any]) -> tuple[int, int]:
    """(temporal, spatial) factors of the model's VAE: a shipped denoiser config's `_vae_factors`, the VAE's own
    config where the model is a pipeline folder, else the family's published VAE."""
    import json
    from pathlib import Path

    from .models import resolve_model

    shipped = denoiser_config.get("_vae_factors")
    if shipped:
        return int(shipped[0]), int(shipped[1])
    config_file = Path(resolve_model(model)) / "vae" / "config.json"
    if not config_file.is_file():
        return family.vae_factors
    config = json.loads(config_file.read_text(encoding="utf-8"))
    temporal = config.get("scale_factor_temporal") or config.get("temporal_compression_ratio")
    spatial = config.get("scale_factor_spatial") or 2 ** (len(config.get("block_out_channels", [0] * 4)) - 1)
    return int(temporal or family.vae_factors[0]), int(spatial)


def latent_shape(
    denoiser, model: str, family: Family, denoiser_config: dict[str, Any], frames: int, size: tuple[int, int]
) -> tuple[int, ...]:
    """(1, channels, latent frames, height, width) of one clip of `frames` at `size` (height, width)."""
    temporal, spatial = vae_factors(model, family, denoiser_config)
    channels = int(denoiser.config.in_channels)  # the built model's: a config may leave it to the class default
    return (1, channels, (frames - 1) // temporal + 1, size[0] // spatial, size[1] // spatial)
