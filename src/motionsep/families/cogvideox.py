"""CogVideoX 2B / 5B text-to-video: ``CogVideoXTransformer3DModel`` (a DiT) in ``CogVideoXPipeline``.

The base of DeT and MotionInversion, where the field's MTBench numbers are reported. Every block's ``attn1`` is
3D full attention over the text tokens joined to the video tokens (there is no ``attn2``), with learned or
sinusoidal positions (2B) or 3D RoPE (5B). Latents enter the DiT frames-first, (batch, frames, channels, h, w),
scaled by the VAE's `scaling_factor`; training is v-prediction on a zero-terminal-SNR DDIM schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .base import DiTFamily


def rotary_embedding(denoiser, latent_shape, device) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The 3D RoPE table CogVideoXPipeline gives a RoPE model (5B) for latents of `latent_shape` (batch, channels,
    frames, h, w), from diffusers' own helpers as `_prepare_rotary_positional_embeddings` builds it (CogVideoX
    1.0: crops of the base grid); None for a model with positional embeddings instead (2B)."""
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

    config = denoiser.config
    if not config.use_rotary_positional_embeddings:
        return None
    p = config.patch_size
    grid = (latent_shape[3] // p, latent_shape[4] // p)
    crops = get_resize_crop_region_for_grid(grid, config.sample_width // p, config.sample_height // p)
    cos, sin = get_3d_rotary_pos_embed(
        embed_dim=config.attention_head_dim,
        crops_coords=crops,
        grid_size=grid,
        temporal_size=latent_shape[2],
        device=device,
    )
    return cos, sin


@dataclass(frozen=True)
class CogVideoXFamily(DiTFamily):
    def predict(self, denoiser, latents: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor, conditions=None):
        out = denoiser(
            hidden_states=latents.transpose(1, 2),  # frames first, as the pipeline calls it
            encoder_hidden_states=text,
            timestep=timesteps,
            image_rotary_emb=rotary_embedding(denoiser, latents.shape, latents.device),
        ).sample
        return out.transpose(1, 2)

    def encode_video(self, vae, frames: torch.Tensor, one_frame_clips: bool = False) -> torch.Tensor:
        """The clip at once (with `one_frame_clips` each frame as a clip of its own), scaled by the VAE's
        scaling_factor as the pipeline decodes it."""
        video = frames.permute(1, 0, 2, 3)[None]  # (1, C, F, H, W)
        parts = [video[:, :, i : i + 1] for i in range(video.shape[2])] if one_frame_clips else [video]
        latent = torch.cat([vae.encode(part).latent_dist.mode() for part in parts], dim=2)[0]
        return latent * vae.config.scaling_factor

    def text_length(self, pipe) -> int:
        """The DiT's own text length (226): its positions cover that many text tokens."""
        return int(pipe.transformer.config.max_text_seq_length)

    def patch_side(self, denoiser) -> int:
        return int(denoiser.config.patch_size)

    def native_sampling(self, pipe) -> tuple[int, list[int]]:
        """The size the DiT was trained at (49 frames of 480x720 for 2B and 5B), from its own config."""
        config, factor = pipe.transformer.config, pipe.vae_scale_factor_spatial
        return int(config.sample_frames), [config.sample_height * factor, config.sample_width * factor]

    def training_scheduler(self) -> Any:
        """CogVideoX-5B's: v-prediction, zero terminal SNR, trailing timesteps."""
        from diffusers import CogVideoXDDIMScheduler

        return CogVideoXDDIMScheduler(
            beta_schedule="scaled_linear",
            clip_sample=False,
            prediction_type="v_prediction",
            rescale_betas_zero_snr=True,
            timestep_spacing="trailing",
        )

    def text_width(self, denoiser) -> int:
        return int(denoiser.config.text_embed_dim)

    @property
    def loss_name(self) -> str:
        return "v-prediction mse"


# No probe pathway yet: restricting the joint attention to one frame must keep the text tokens, which the
# probe's same-frame mask does not; `probe` and `tap-heads` say so instead of guessing.
COGVIDEOX = CogVideoXFamily(
    name="cogvideox",
    denoiser_class="CogVideoXTransformer3DModel",
    pipeline_class="CogVideoXPipeline",
    temporal_transformer_class="CogVideoXTransformer3DModel",  # the whole DiT: every block's attn1 is 3D
    spatial_transformer_class="CogVideoXTransformer3DModel",
    pathways=(),
    blocks_attribute="transformer_blocks",
    native_size=(480, 720),
    text_tokens=226,
    text_encoder_parameters=4_762_310_656,  # the T5-XXL encoder (transformers' T5EncoderModel of google/t5-v1_1-xxl)
    text_encoder_unscaled_parameters=1_138_229_248,
)
