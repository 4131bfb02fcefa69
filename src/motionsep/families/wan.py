"""Wan 2.1 / 2.2 text-to-video: ``WanTransformer3DModel`` (a DiT) in ``WanPipeline``.

No layer is temporal alone: every block's self-attention (``blocks.*.attn1``) mixes space and time, its 3D RoPE
giving query and key the frame positions; ``attn2`` is cross-attention to the text. The causal VAE normalises
latents by per-channel mean and std; training is flow matching. Exported LoRAs take ComfyUI's native Wan layout
(the original Wan module names, which diffusers also reads): ``diffusion_model.blocks.0.self_attn.q.lora_A.weight``
/ ``.lora_B.weight`` with ``.alpha``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .base import DiTFamily, Pathway
from .layouts import lora_pairs, rename

_TO_COMFYUI = (
    (r"\.attn1\.", ".self_attn."),
    (r"\.attn2\.", ".cross_attn."),
    (r"\.to_q$", ".q"),
    (r"\.to_k$", ".k"),
    (r"\.to_v$", ".v"),
    (r"\.to_out\.0$", ".o"),
    (r"\.ffn\.net\.0\.proj$", ".ffn.0"),
    (r"\.ffn\.net\.2$", ".ffn.2"),
)
_FROM_COMFYUI = (
    (r"\.self_attn\.", ".attn1."),
    (r"\.cross_attn\.", ".attn2."),
    (r"\.q$", ".to_q"),
    (r"\.k$", ".to_k"),
    (r"\.v$", ".to_v"),
    (r"\.o$", ".to_out.0"),
    (r"\.ffn\.0$", ".ffn.net.0.proj"),
    (r"\.ffn\.2$", ".ffn.net.2"),
)


@dataclass(frozen=True)
class WanFamily(DiTFamily):
    # Measured on the Wan world (docs/benchmarks/toy-wan, 2026-12-02): no LoRA confined to q/k (tap, tap-heads,
    # tap-offsets) nor DeT's side branch carries a learned motion to a new look; full-lora does once the clips'
    # looks vary (data.augment: new-scenes: 51%, 67% with 7 copies), and the across-frames loss adds motion
    # (51% -> 57%) and removes the static leak (the window's rise +45 -> -19 points without augmentation)
    default_method: str = "full-lora"
    default_loss: str = "across-frames"

    def encode_video(self, vae, frames: torch.Tensor, one_frame_clips: bool = False) -> torch.Tensor:
        """The clip at once (with `one_frame_clips` each frame as a clip of its own: one latent frame each),
        normalised by the VAE's per-channel latents_mean and latents_std as the pipeline decodes them."""
        video = frames.permute(1, 0, 2, 3)[None]  # (1, C, F, H, W)
        parts = [video[:, :, i : i + 1] for i in range(video.shape[2])] if one_frame_clips else [video]
        latent = torch.cat([vae.encode(part).latent_dist.mode() for part in parts], dim=2)[0]
        mean = torch.tensor(vae.config.latents_mean, device=latent.device).view(-1, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std, device=latent.device).view(-1, 1, 1, 1)
        return (latent - mean) / std

    def position_reach(self, pipe) -> int | None:
        """The rotary position table covers rope_max_seq_len patches a side."""
        config = pipe.transformer.config
        if "rope_max_seq_len" not in config:
            return None
        return int(config.rope_max_seq_len * config.patch_size[1] * pipe.vae_scale_factor_spatial)

    def timestep_range(self, pipe, expert: str = "high") -> tuple[float, float] | None:
        """Wan 2.2 A14B: `transformer`, the denoiser motionsep trains, is the high-noise expert ("overall
        layout"), which WanPipeline runs for t >= boundary_ratio x 1000 (0.875 T2V); `transformer_2`, the
        low-noise expert, refines detail below it. A motion LoRA belongs on the high-noise expert over its own
        timesteps: that is Phased LoRA Integration built into the model (a high-noise LoRA trained over the full
        range "fried" results: diffusion-pipe #372)."""
        ratio = getattr(getattr(pipe, "config", None), "boundary_ratio", None)
        if getattr(pipe, "transformer_2", None) is None or ratio is None:
            return None
        boundary = ratio * int(pipe.scheduler.config.num_train_timesteps)
        return (boundary, math.inf) if expert == "high" else (0.0, boundary)  # as WanPipeline: t >= boundary, high

    def training_scheduler(self) -> Any:
        """Flow matching with Wan's 480p shift."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler(shift=3.0)

    def text_width(self, denoiser) -> int:
        return int(denoiser.config.text_dim)

    def to_comfyui(self, weights: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
        out = {}
        for module, (a, b) in lora_pairs(weights, "transformer.").items():
            name = "diffusion_model." + rename("." + module, _TO_COMFYUI)[1:]
            out[f"{name}.lora_A.weight"] = a.contiguous()
            out[f"{name}.lora_B.weight"] = b.contiguous()
            out[f"{name}.alpha"] = torch.tensor(float(alpha))
        return out

    def from_comfyui(self, comfy: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
        out = {}
        for key in comfy:
            if key.endswith(".lora_A.weight"):
                module = rename("." + key[len("diffusion_model.") : -len(".lora_A.weight")], _FROM_COMFYUI)[1:]
                out[f"transformer.{module}.lora_A.weight"] = comfy[key]
                out[f"transformer.{module}.lora_B.weight"] = comfy[key.replace(".lora_A.", ".lora_B.")]
        return out

    @property
    def loss_name(self) -> str:
        return "flow-matching velocity mse"


# A DiT has no temporal layer to switch off: its self-attention is restricted to the tokens of each token's own
# frame ("same_frame"), which leaves everything within a frame and removes every path across frames.
WAN = WanFamily(
    name="wan",
    denoiser_class="WanTransformer3DModel",
    pipeline_class="WanPipeline",
    temporal_transformer_class="WanTransformer3DModel",  # the whole DiT: every block's attn1 is spatio-temporal
    spatial_transformer_class="WanTransformer3DModel",
    pathways=(
        Pathway(
            "cross-frame attention",
            r"blocks\.\d+\.attn1",
            "same_frame",
            "self-attention of every block restricted to its own frame",
            adapted_by_tap=True,
        ),
    ),
    feed_forward="ffn",
    native_size=(480, 832),
    text_tokens=512,  # WanPipeline.__call__ pads to Wan's text_len, while its encode_prompt defaults to 226
    text_encoder_parameters=5_680_910_336,  # the UMT5-XXL encoder (11.4 GB in bf16)
    text_encoder_unscaled_parameters=2_056_781_824,
)
