"""`motionsep export --format comfyui`: a motion LoRA in the key layout ComfyUI's loaders read.

* **AnimateDiff** -> the original AnimateDiff MotionLoRA layout that ComfyUI-AnimateDiff-Evolved loads
  (its "motion LoRA" input): ``down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.
  attention_blocks.0.processor.to_q_lora.down.weight`` / ``.up.weight``. That loader adds ``up @ down``
  with no alpha, so peft's scale (alpha / r) is folded into ``up``.
* **Wan** -> ComfyUI's native Wan layout (the original Wan module names, which diffusers also reads):
  ``diffusion_model.blocks.0.self_attn.q.lora_A.weight`` / ``.lora_B.weight`` with ``.alpha``.
* **ModelScope / ZeroScope**: ComfyUI has no loader for these models, so there is nothing to export to.

Every key maps one-to-one, and `to_diffusers` turns an exported file back into the tensors it came from.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from safetensors.torch import save_file

from .adapters import WEIGHTS_NAME, read_lora_record, read_lora_weights
from .checkpoint import readable_as_other_files
from .errors import MotionsepError, refuse_existing

COMFYUI_FAMILIES = ("animatediff", "wan")

# (pattern, replacement) pairs taking a diffusers module name to ComfyUI's, and the table back
_ANIMATEDIFF = (
    (r"\.motion_modules\.(\d+)\.transformer_blocks\.", r".motion_modules.\1.temporal_transformer.transformer_blocks."),
    (r"\.attn1\.", ".attention_blocks.0.processor."),
    (r"\.attn2\.", ".attention_blocks.1.processor."),
    (r"\.to_out\.0$", ".to_out"),
)
_ANIMATEDIFF_BACK = (
    (r"\.temporal_transformer\.transformer_blocks\.", ".transformer_blocks."),
    (r"\.attention_blocks\.0\.processor\.", ".attn1."),
    (r"\.attention_blocks\.1\.processor\.", ".attn2."),
    (r"\.to_out$", ".to_out.0"),
)
_WAN = (
    (r"\.attn1\.", ".self_attn."),
    (r"\.attn2\.", ".cross_attn."),
    (r"\.to_q$", ".q"),
    (r"\.to_k$", ".k"),
    (r"\.to_v$", ".v"),
    (r"\.to_out\.0$", ".o"),
    (r"\.ffn\.net\.0\.proj$", ".ffn.0"),
    (r"\.ffn\.net\.2$", ".ffn.2"),
)
_WAN_BACK = (
    (r"\.self_attn\.", ".attn1."),
    (r"\.cross_attn\.", ".attn2."),
    (r"\.q$", ".to_q"),
    (r"\.k$", ".to_k"),
    (r"\.v$", ".to_v"),
    (r"\.o$", ".to_out.0"),
    (r"\.ffn\.0$", ".ffn.net.0.proj"),
    (r"\.ffn\.2$", ".ffn.net.2"),
)


def _module_pairs(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{module name: (lora_A, lora_B)} of a diffusers-format file."""
    out = {}
    for key in weights:
        if key.endswith(".lora_A.weight"):
            module = key[len(prefix) : -len(".lora_A.weight")]
            out[module] = (weights[key], weights[key.replace(".lora_A.", ".lora_B.")])
    return out


def _rename(name: str, rules) -> str:
    for pattern, replacement in rules:
        name = re.sub(pattern, replacement, name)
    return name


def to_comfyui(weights: dict[str, torch.Tensor], family: str, alpha: float) -> dict[str, torch.Tensor]:
    """A diffusers-format motion LoRA (peft keys, `alpha`) in ComfyUI's layout for `family`."""
    if family == "animatediff":
        out = {}
        pairs = _module_pairs(weights, "unet.")
        spatial = [m for m in pairs if ".motion_modules." not in m]
        if spatial:
            raise MotionsepError(
                f"this LoRA also adapts image layers ('{spatial[0]}', a full-lora), which an AnimateDiff-Evolved "
                "motion LoRA cannot hold: export a motion-module preset (tap, motiondirector, temporal-lora)"
            )
        for module, (a, b) in pairs.items():
            name = _rename("." + module, _ANIMATEDIFF)[1:]
            out[f"{name}_lora.down.weight"] = a.contiguous()
            out[f"{name}_lora.up.weight"] = (b * (alpha / a.shape[0])).contiguous()  # the loader has no alpha
        return out
    if family == "wan":
        out = {}
        for module, (a, b) in _module_pairs(weights, "transformer.").items():
            name = "diffusion_model." + _rename("." + module, _WAN)[1:]
            out[f"{name}.lora_A.weight"] = a.contiguous()
            out[f"{name}.lora_B.weight"] = b.contiguous()
            out[f"{name}.alpha"] = torch.tensor(float(alpha))
        return out
    raise MotionsepError(
        f"ComfyUI has no loader for {family} models (ModelScope / ZeroScope); --format comfyui exports "
        f"{' and '.join(COMFYUI_FAMILIES)} LoRAs"
    )


def to_diffusers(comfy: dict[str, torch.Tensor], family: str, alpha: float) -> dict[str, torch.Tensor]:
    """The inverse of `to_comfyui`: ComfyUI layout back to diffusers' peft keys."""
    out = {}
    if family == "animatediff":
        for key in comfy:
            if key.endswith("_lora.down.weight"):
                name = "." + key[: -len("_lora.down.weight")]
                module = _rename(name, _ANIMATEDIFF_BACK)[1:]
                a, up = comfy[key], comfy[key.replace(".down.", ".up.")]
                out[f"unet.{module}.lora_A.weight"] = a
                out[f"unet.{module}.lora_B.weight"] = up / (alpha / a.shape[0])
        return out
    for key in comfy:
        if key.endswith(".lora_A.weight"):
            name = "." + key[len("diffusion_model.") : -len(".lora_A.weight")]
            module = _rename(name, _WAN_BACK)[1:]
            out[f"transformer.{module}.lora_A.weight"] = comfy[key]
            out[f"transformer.{module}.lora_B.weight"] = comfy[key.replace(".lora_A.", ".lora_B.")]
    return out


def export_lora(
    folder: str | os.PathLike, out: str | os.PathLike, fmt: str = "comfyui", overwrite: bool = False
) -> Path:
    """Write the motion LoRA of a motionsep folder as one ComfyUI-layout safetensors file."""
    if fmt != "comfyui":
        raise MotionsepError(f"unknown export format '{fmt}': the one format is comfyui")
    folder, out = Path(folder), Path(out)
    record = read_lora_record(folder)
    if not record.lora_config:
        raise MotionsepError(
            f"'{folder}' holds no LoRA ({record.method} keeps its motion in {', '.join(record.parts)}): ComfyUI's "
            "LoRA layout cannot carry it"
        )
    comfy = to_comfyui(read_lora_weights(folder / WEIGHTS_NAME), record.family, record.lora_config["lora_alpha"])
    if out.suffix != ".safetensors":
        raise MotionsepError(f"--out '{out}' must be a .safetensors file")
    refuse_existing([out], overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": f"comfyui-{record.family}", "motionsep_method": record.method}
    save_file(comfy, str(out), metadata=metadata)
    readable_as_other_files(out)
    return out
