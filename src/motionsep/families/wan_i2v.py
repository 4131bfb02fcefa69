"""Wan image-to-video: ``WanImageToVideoPipeline``, the same ``WanTransformer3DModel`` as text-to-video over 36
input channels: the 16 noisy latent channels, then a 4-channel mask of the frames given (the first) and the 16
channels of the encoded condition video (the first frame, then black frames). Wan 2.1 I2V 14B also reads the
first frame through a CLIP image encoder (the penultimate layer's 257 tokens, an extra key/value projection in
every cross-attention); Wan 2.2 I2V A14B has two experts (boundary 0.9) and no image encoder.

Training conditions each reference clip on its own first frame, as the pipeline conditions a video on the user's
image; the loss covers every latent frame, as the pipeline denoises them all. A text-to-video Wan LoRA loads into
this transformer as it is: its layers are all here (diffusers fills a missing image key/value layer with zeros)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import MotionsepError
from .wan import WAN, WanFamily

# CLIP ViT-H/14 at 224 x 224, Wan 2.1 I2V's image encoder: the class token and 16 x 16 patches
IMAGE_TOKENS = 257
# its vision tower as transformers' CLIPVisionModel (width 1280, 32 layers, MLP 5120): counted on the meta device
IMAGE_ENCODER_PARAMETERS = 630_766_080


@dataclass(frozen=True)
class WanImageToVideoFamily(WanFamily):
    def takes_image(self) -> bool:
        return True

    def image_encoder_parameters(self, denoiser) -> int:
        return IMAGE_ENCODER_PARAMETERS if denoiser.config.image_dim is not None else 0  # Wan 2.2 I2V has none

    def encode_conditions(self, pipe, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the pipeline conditions a video on, from the clip's first frame (frames (F, 3, H, W) in [-1, 1]):
        `image_condition` (mask and encoded condition video, (4 + C, latent frames, h, w)) as `prepare_latents`
        makes it, and `image_embeds` (tokens, width) as `encode_image` does where the model has an image encoder."""
        if getattr(pipe.config, "expand_timesteps", False):
            raise MotionsepError(
                "this image-to-video pipeline gives the first frame its own timestep (Wan 2.2 TI2V-5B's "
                "expand_timesteps), which training does not do yet: train on its text-to-video WanPipeline; its LoRA "
                "then moves images in this pipeline (generate --image)"
            )
        video = torch.cat([frames[:1], torch.zeros_like(frames[1:])])  # the image, then black frames
        latent = self.encode_video(pipe.vae, video)
        per_latent = self.frames_per_latent(pipe)
        mask = torch.zeros((per_latent, *latent.shape[1:]), dtype=latent.dtype, device=latent.device)
        mask[:, 0] = 1  # the first latent frame stands for the given frame alone: all its mask channels are set
        out = {"image_condition": torch.cat([mask, latent])}
        if getattr(pipe, "image_encoder", None) is not None:
            first = ((frames[0].permute(1, 2, 0).float().cpu().numpy() + 1) * 127.5).round().clip(0, 255)
            image = _pil(first.astype(np.uint8))
            out["image_embeds"] = pipe.encode_image(image, frames.device)[0]
        return out

    def predict(
        self,
        denoiser,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        text: torch.Tensor,
        conditions: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The transformer on the noisy latents joined to the first-frame condition, as the pipeline calls it.
        Without `conditions` (the probe, the memory trace, the noise prior) the model is told no frame is given:
        zero mask and condition, and zero image tokens where it reads an image."""
        conditions = conditions or _no_frame_given(denoiser, latents)
        joined = torch.cat([latents, conditions["image_condition"].to(latents)], dim=1)
        image = conditions.get("image_embeds")
        return denoiser(
            joined,
            timesteps,
            encoder_hidden_states=text,
            encoder_hidden_states_image=None if image is None else image.to(text),
        ).sample


def _no_frame_given(denoiser, latents: torch.Tensor) -> dict[str, torch.Tensor]:
    batch, _, frames, h, w = latents.shape
    extra = int(denoiser.config.in_channels) - latents.shape[1]
    out = {"image_condition": latents.new_zeros((batch, extra, frames, h, w))}
    if denoiser.config.image_dim is not None:
        out["image_embeds"] = latents.new_zeros((batch, IMAGE_TOKENS, int(denoiser.config.image_dim)))
    return out


def _pil(array: np.ndarray):
    from PIL import Image

    return Image.fromarray(array)


WAN_I2V = WanImageToVideoFamily(
    **{
        **{f: getattr(WAN, f) for f in WAN.__dataclass_fields__},
        "name": "wan-i2v",
        "pipeline_class": "WanImageToVideoPipeline",
    }
)
