"""`motionsep export --format comfyui`: a motion LoRA in the key layout ComfyUI's loaders read.

Each family says its layout (`Family.to_comfyui`, in its file under families/): AnimateDiff's is the original
MotionLoRA layout of ComfyUI-AnimateDiff-Evolved, Wan's ComfyUI's native Wan layout; ModelScope / ZeroScope and
CogVideoX have no ComfyUI loader, so there is nothing to export to. Every key maps one-to-one, and `to_diffusers`
turns an exported file back into the tensors it came from.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from .adapters import WEIGHTS_NAME, read_lora_record, read_lora_weights
from .checkpoint import readable_as_other_files
from .errors import MotionsepError, refuse_existing
from .families import FAMILIES
from .record import expert_pair

COMFYUI_FAMILIES = ("animatediff", "wan")  # the families whose `to_comfyui` has a ComfyUI loader to serve


def to_comfyui(weights: dict[str, torch.Tensor], family: str, alpha: float) -> dict[str, torch.Tensor]:
    """A diffusers-format motion LoRA (peft keys, `alpha`) in ComfyUI's layout for `family`."""
    return FAMILIES[family].to_comfyui(weights, alpha)


def to_diffusers(comfy: dict[str, torch.Tensor], family: str, alpha: float) -> dict[str, torch.Tensor]:
    """The inverse of `to_comfyui`: ComfyUI layout back to diffusers' peft keys."""
    return FAMILIES[family].from_comfyui(comfy, alpha)


def export_loras(
    folder: str | os.PathLike, out: str | os.PathLike, fmt: str = "comfyui", overwrite: bool = False
) -> list[Path]:
    """`export_lora` of a LoRA folder, or of both LoRAs of an `expert: both` run's folder (a file an expert)."""
    pair = expert_pair(Path(folder))
    if pair is None:
        return [export_lora(folder, out, fmt, overwrite)]
    names = [_named_for_expert(Path(out), f"{expert}_noise") for expert in ("high", "low")]
    refuse_existing(names, overwrite)  # both checked before either is written
    return [export_lora(one, name, fmt, overwrite) for one, name in zip(pair, names)]


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
    metadata = {"format": f"comfyui-{record.family}", "motionsep_method": record.method}
    if record.expert is not None:  # Wan 2.2 A14B: ComfyUI loads each expert's LoRA on its own model node
        metadata["expert"] = f"{record.expert}_noise"
        out = _named_for_expert(out, metadata["expert"])
    refuse_existing([out], overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(comfy, str(out), metadata=metadata)
    readable_as_other_files(out)
    return out


def _named_for_expert(out: Path, expert: str) -> Path:
    """`out` with the expert in its name (`motion_high_noise.safetensors`), as the Wan 2.2 trainers (ai-toolkit,
    musubi-tuner) name the files users load on ComfyUI's high- and low-noise model nodes; kept if it says so."""
    if out.stem.endswith(("_high_noise", "_low_noise")):
        if not out.stem.endswith(expert):
            raise MotionsepError(f"--out '{out}' names the other expert: this LoRA belongs on the {expert} expert")
        return out
    return out.with_name(f"{out.stem}_{expert}{out.suffix}")
