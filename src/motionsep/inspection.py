"""What a method would train and where the highway would act, read from configs alone.

The denoiser (UNet or DiT) is built on PyTorch's meta device from its config.json: no weights are read
or allocated, so a 14B-parameter model answers in seconds.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict
from typing import Any

from .config import AUTO
from .highway import HighwaySettings, hook_points
from .memory import MemoryPlan, latent_shape, predict_training_memory
from .methods import lora_parameter_count, lora_targets, resolve_method
from .models import (
    build_denoiser_from_config,
    expert_boundary,
    family_of_model,
    load_denoiser_config,
    spatial_transformers,
    temporal_transformers,
)


def _highway_summary(denoiser, family, preset, highway_blocks: str | list[int]) -> dict[str, Any]:
    """Where the Appearance Highway would hook in, or why the family has none."""
    if not family.supports_highway:
        return {"on_by_default": False, "unavailable": f"the {family.name} family is a DiT: it has no U-Net skips"}
    return {
        "on_by_default": preset.highway,
        "blocks": highway_blocks,
        "hook_points": hook_points(denoiser, HighwaySettings(blocks=highway_blocks)),
    }


def inspect_model(
    model: str,
    method: str = AUTO,
    targets: list[str] | None = None,
    rank: int = 32,
    highway_blocks: str | list[int] = "deepest",
    clip: tuple[int, tuple[int, int]] | None = None,
    plan: MemoryPlan | None = None,
) -> dict[str, Any]:
    """What `method` trains on `model` and where the highway acts; with `clip` ((frames, (height, width))) the
    predicted peak memory of training on such clips under `plan` (memory.py)."""
    config = load_denoiser_config(model)
    family = family_of_model(model)  # its pipeline tells apart families that share a denoiser class
    preset = resolve_method(family.default_method if method == AUTO else method, targets)
    denoiser = build_denoiser_from_config(config)
    layers = lora_targets(denoiser, preset)
    paths = _lora_paths(denoiser, preset, layers, rank)
    extras = _method_extras(denoiser, family, preset)
    highway = _highway_summary(denoiser, family, preset, highway_blocks)
    trainable = sum(p["parameters"] for p in paths.values()) + sum(
        p["parameters"] for p in extras.get("parts", {}).values()
    )
    if clip is not None:
        extras["memory"] = _memory(model, config, family, clip, plan or MemoryPlan(), layers["temporal"], trainable)
    return {
        "model": model,
        "family": family.name,
        "denoiser_class": family.denoiser_class,
        "denoiser_parameters": sum(p.numel() for p in denoiser.parameters()),
        "method": preset.name,
        "summary": preset.summary,
        "rank": rank,
        # the objective follows the scheduler, which a config alone does not name: every Wan model is flow-matching
        "loss": family.loss_name
        + (" + appearance-debiased" if preset.debiased_loss else "")
        + (f" + tracking (weight {preset.tracking_weight:g})" if preset.tracking_weight else ""),
        "forwards_per_step": 2 if preset.dual_path else 1,
        "paths": paths,
        "trainable_parameters": trainable,
        **extras,
        "appearance_highway": highway,
        "expert_boundary": expert_boundary(model),
    }


def _lora_paths(denoiser, preset, layers: dict[str, list[str]], rank: int) -> dict[str, dict[str, Any]]:
    """Each path's LoRA: its targets, layers, the transformers and blocks they sit in, its parameters."""
    temporal = temporal_transformers(denoiser)
    paths: dict[str, dict[str, Any]] = {
        "temporal": {
            "targets": list(preset.temporal_targets),
            "transformers": len(
                set(temporal) | (set(spatial_transformers(denoiser)) if preset.joint_spatial_targets else set())
            ),
            "blocks": _blocks(layers["temporal"]),
            "layers": layers["temporal"],
            "parameters": lora_parameter_count(denoiser, layers["temporal"], rank),
            "used_at_inference": True,
        }
    }
    if preset.dual_path:
        paths["spatial"] = {
            "targets": list(preset.spatial_targets),
            "transformers": len(spatial_transformers(denoiser)),
            "blocks": _blocks(layers["spatial"]),
            "layers": layers["spatial"],
            "parameters": lora_parameter_count(denoiser, layers["spatial"], rank),
            "used_at_inference": False,
        }
    return paths


def _memory(
    model: str, config: dict, family, clip, plan: MemoryPlan, lora_layers: list[str], trainable: int
) -> dict[str, Any]:
    """The memory prediction on a fresh meta denoiser (the prediction changes the one it is given)."""
    frames, size = clip
    denoiser = build_denoiser_from_config(config)
    shape = latent_shape(denoiser, model, family, config, frames, size)
    text = (1, family.text_tokens, family.text_width(denoiser))
    parts = predict_training_memory(denoiser, family, plan, lora_layers, trainable, shape, text)
    return {"frames": frames, "size": list(size), "latent_shape": list(shape), "plan": asdict(plan), **parts}


def _method_extras(denoiser, family, preset) -> dict[str, Any]:
    """What a method trains besides LoRAs (its parts, built on the meta model and counted; offsets counted for one
    latent frame) and the heads it is confined to (chosen at training, from the reference clips)."""
    from .heads import cross_frame_attentions
    from .parts import PARTS

    extras: dict[str, Any] = {}
    if preset.parts:
        extras["parts"] = {}
        for name in preset.parts:
            part = PARTS[name](denoiser, family, frames=1)
            count = sum(p.numel() for p in part.parameters())
            part.remove()
            extras["parts"][name] = {"parameters": count, "per_latent_frame": name == "frame_offsets"}
    if preset.head_fraction is not None:
        attentions = cross_frame_attentions(denoiser, family)
        heads = denoiser.get_submodule(attentions[0]).heads
        chosen = math.ceil(preset.head_fraction * heads)
        extras["heads"] = (
            f"chosen at training: in each of {len(attentions)} self-attentions, the {chosen} of {heads} heads with "
            "the highest cross-frame share on your clips (recorded in motionsep.json)"
        )
    return extras


def _blocks(layers: list[str]) -> int:
    """How many transformer blocks the layers sit in."""
    return len({re.sub(r"\.(attn\d|ff|ffn)\..*$", "", name) for name in layers})


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"model      {report['model']}  ({report['denoiser_class']}, {report['family']}, "
        f"{report['denoiser_parameters'] / 1e6:,.1f} M parameters)",
        f"method     {report['method']}: {report['summary']}",
        f"loss       {report['loss']}; {report['forwards_per_step']} forward(s) per step; rank {report['rank']}",
        "",
    ]
    for name, path in report["paths"].items():
        use = "kept at inference" if path["used_at_inference"] else "training only, dropped at inference"
        lines.append(
            f"{name} LoRA  targets {'+'.join(path['targets'])}: {len(path['layers'])} layers in "
            f"{path['blocks']} blocks of {path['transformers']} transformer(s), {path['parameters'] / 1e6:.2f} M "
            f"parameters ({use})"
        )
        lines += [f"    {layer}" for layer in path["layers"]]
    for name, part in report.get("parts", {}).items():
        unit = " a latent frame" if part["per_latent_frame"] else ""
        lines.append(f"part  {name}: {part['parameters'] / 1e6:.3f} M parameters{unit} (saved beside the LoRA)")
    if "heads" in report:
        lines.append(f"heads  {report['heads']}")
    lines.append(f"\ntrainable parameters  {report['trainable_parameters'] / 1e6:.2f} M")
    if report.get("expert_boundary") is not None:
        t = round(report["expert_boundary"] * 1000)
        lines.append(
            f"experts    two of the size above (high noise: t >= {t} of 1000, low noise: below); the LoRA trains one "
            f"a run over its own timesteps (expert: high, the default, or low)"
        )
    if "memory" in report:
        lines += _memory_lines(report["memory"])
    ah = report["appearance_highway"]
    if "unavailable" in ah:
        lines.append(f"\nAppearance Highway: not available ({ah['unavailable']})")
        return "\n".join(lines)
    lines.append(
        f"\nAppearance Highway (blocks={ah['blocks']}, on by default for this method: "
        f"{'yes' if ah['on_by_default'] else 'no'}): {len(ah['hook_points'])} skips rerouted"
    )
    lines += [
        f"    {p['skip']}: from {p['from']} instead of {p['instead_of']} ({p['channels']} ch, x{p['scale']})"
        for p in ah["hook_points"]
    ]
    return "\n".join(lines)


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def _memory_lines(memory: dict[str, Any]) -> list[str]:
    plan = memory["plan"]
    how = [
        plan["precision"],
        *(["fp8 base"] if plan["fp8_base"] else []),
        *(["checkpointing"] if plan["gradient_checkpointing"] else []),
        *(["fp8 text encoder"] if plan["fp8_text_encoder"] else []),
    ]
    _, _, frames, height, width = memory["latent_shape"]
    return [
        f"\nmemory     predicted peak {_gb(memory['peak'])}: {memory['size'][0]}x{memory['size'][1]}, "
        f"{memory['frames']} frames (latents {frames} x {height} x {width}), batch 1, {', '.join(how)}",
        f"    training  {_gb(memory['training'])}: frozen weights {_gb(memory['weights'])} + LoRA, gradients and "
        f"AdamW {_gb(memory['trainable_state'])} + activations {_gb(memory['activations'])} "
        "(traced on the meta device)",
        f"    caching   {_gb(memory['caching'])}: the text encoder{' and the image encoder' * memory['image_encoder']}"
        ", before the denoiser moves to the device "
        "(the VAE's own activations not counted)",
    ]
