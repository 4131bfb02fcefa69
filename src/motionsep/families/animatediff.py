"""AnimateDiff: SD1.5 + ``MotionAdapter`` as ``UNetMotionModel`` in ``AnimateDiffPipeline``.

Temporal layers: every ``motion_modules.*`` (``AnimateDiffTransformer3D``); the UNet wants the text once per
frame. Exported LoRAs take the original AnimateDiff MotionLoRA layout that ComfyUI-AnimateDiff-Evolved loads (its
"motion LoRA" input): ``down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.
attention_blocks.0.processor.to_q_lora.down.weight`` / ``.up.weight``. That loader adds ``up @ down`` with no
alpha, so peft's scale (alpha / r) is folded into ``up``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import MotionsepError
from .base import Family, Pathway
from .layouts import lora_pairs, rename

_MOTION_MODULE = r".*\.motion_modules\.\d+\.transformer_blocks\.\d+"
# (pattern, replacement) pairs taking a diffusers module name to ComfyUI's, and the table back
_TO_COMFYUI = (
    (r"\.motion_modules\.(\d+)\.transformer_blocks\.", r".motion_modules.\1.temporal_transformer.transformer_blocks."),
    (r"\.attn1\.", ".attention_blocks.0.processor."),
    (r"\.attn2\.", ".attention_blocks.1.processor."),
    (r"\.to_out\.0$", ".to_out"),
)
_FROM_COMFYUI = (
    (r"\.temporal_transformer\.transformer_blocks\.", ".transformer_blocks."),
    (r"\.attention_blocks\.0\.processor\.", ".attn1."),
    (r"\.attention_blocks\.1\.processor\.", ".attn2."),
    (r"\.to_out$", ".to_out.0"),
)


@dataclass(frozen=True)
class AnimateDiffFamily(Family):
    def to_comfyui(self, weights: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
        out = {}
        pairs = lora_pairs(weights, "unet.")
        spatial = [m for m in pairs if ".motion_modules." not in m]
        if spatial:
            raise MotionsepError(
                f"this LoRA also adapts image layers ('{spatial[0]}', a full-lora), which an AnimateDiff-Evolved "
                "motion LoRA cannot hold: export a motion-module preset (tap, motiondirector, temporal-lora)"
            )
        for module, (a, b) in pairs.items():
            name = rename("." + module, _TO_COMFYUI)[1:]
            out[f"{name}_lora.down.weight"] = a.contiguous()
            out[f"{name}_lora.up.weight"] = (b * (alpha / a.shape[0])).contiguous()  # the loader has no alpha
        return out

    def from_comfyui(self, comfy: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
        out = {}
        for key in comfy:
            if key.endswith("_lora.down.weight"):
                module = rename("." + key[: -len("_lora.down.weight")], _FROM_COMFYUI)[1:]
                a, up = comfy[key], comfy[key.replace(".down.", ".up.")]
                out[f"unet.{module}.lora_A.weight"] = a
                out[f"unet.{module}.lora_B.weight"] = up / (alpha / a.shape[0])
        return out


ANIMATEDIFF = AnimateDiffFamily(
    name="animatediff",
    denoiser_class="UNetMotionModel",
    pipeline_class="AnimateDiffPipeline",
    temporal_transformer_class="AnimateDiffTransformer3D",
    attention_down_block="CrossAttnDownBlockMotion",
    temporal_in_block="motion_modules",
    text_per_frame=True,
    pathways=(
        Pathway(
            "motion-module attention",
            _MOTION_MODULE + r"\.attn[12]",
            "zero",
            "attn1 and attn2 of every motion module",
            adapted_by_tap=True,
        ),
        Pathway(
            "motion-module feed-forward", _MOTION_MODULE + r"\.ff", "zero", "the feed-forward of every motion module"
        ),
    ),
    temporal_layer_classes=("AnimateDiffTransformer3D",),
    text_encoder_parameters=123_060_480,  # SD 1.5's CLIP ViT-L/14 text encoder
    text_encoder_unscaled_parameters=37_963_776,
)
