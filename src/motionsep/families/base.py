"""What motionsep asks of a base-model family, and the answers most families share.

A family is one object: the pipeline and denoiser classes it reads, where temporal LoRA goes, and behaviour
(encode clips and text, call the denoiser, valid frames and sizes, sampling, the training timesteps, export
layouts). `Family` answers as the U-Nets do (ModelScope, AnimateDiff); `DiTFamily` as a DiT with a causal video
VAE does (Wan); a family that differs overrides what differs, in its own file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import MotionsepError


@dataclass(frozen=True)
class Pathway:
    """One temporal pathway of a family, for `motionsep probe`: the denoiser's modules whose names fully match
    `pattern`, switched off by `action` ("zero": the module's output becomes zeros, which removes a residual
    branch such as an attention; "identity": the module returns its input; "same_frame": a DiT's self-attention
    restricted to each token's own frame)."""

    name: str
    pattern: str
    action: str
    summary: str
    adapted_by_tap: bool = False  # the pathway TAP's LoRA reshapes: TAP has a lever where motion needs it


@dataclass(frozen=True)
class Family:
    """Everything motionsep needs to know about a base-model family, in one place."""

    name: str
    denoiser_class: str  # the class of the pipeline's denoiser (a UNet or a DiT)
    pipeline_class: str
    temporal_transformer_class: str  # the class of its temporal transformers (where temporal LoRA goes)
    pathways: tuple[Pathway, ...]  # its temporal pathways, each of which the probe switches off
    # the U-Net's down blocks with spatial attention, whose layer skips the Appearance Highway reroutes, and the
    # attribute of such a block holding its temporal layers; "": no U-Net skips (a DiT), so no highway
    attention_down_block: str = ""
    temporal_in_block: str = ""
    text_per_frame: bool = False  # the denoiser wants encoder_hidden_states repeated per frame (AnimateDiff)
    # a temporal layer between conv_in and the first skip (ModelScope's transformer_in), which the
    # highway's first_skip_from_conv_in option bypasses; None: the first skip is conv_in's output already
    first_temporal_layer: str | None = None
    denoiser: str = "unet"  # the pipeline attribute holding it, which is also its LoRA keys' prefix
    spatial_transformer_class: str = "Transformer2DModel"  # where spatial (appearance) LoRA goes
    blocks_attribute: str = "transformer_blocks"  # a transformer's list of blocks
    # the attentions of a temporal transformer's block that temporal LoRA targets: both are temporal
    # self-attentions in the U-Net families; in a DiT only attn1 (attn2 reads the text)
    temporal_attentions: tuple[str, ...] = ("attn1", "attn2")
    feed_forward: str = "ff"  # a block's feed-forward attribute
    # classes of the layers that make up every temporal path, which MotionDirector's spatial path bypasses as
    # identities (a U-Net's temporal transformers and convolutions); a DiT has none: every attention mixes frames
    temporal_layer_classes: tuple[str, ...] = ()
    # for a memory prediction from configs alone (memory.py): the published text encoder's parameter count, the
    # published VAE's (temporal, spatial) factors and the prompt length the pipeline encodes
    text_encoder_parameters: int = 0
    # its parameters that float8 storage leaves at the weight dtype: the token embedding and T5's `wo` (which T5
    # keeps at its own dtype: train.memory.fp8_text_encoder skips it)
    text_encoder_unscaled_parameters: int = 0
    vae_factors: tuple[int, int] = (1, 8)
    text_tokens: int = 77
    # what a run trains when its config says `auto` (`method`, `train.loss`): the choice the family's evidence
    # supports (docs/results.md); the U-Nets: the paper's TAP on the model's objective
    default_method: str = "tap"
    default_loss: str = "standard"

    @property
    def supports_highway(self) -> bool:
        """The Appearance Highway reroutes U-Net skip connections: a family without them cannot have it."""
        return bool(self.attention_down_block)

    def denoiser_of(self, pipe) -> Any:
        return getattr(pipe, self.denoiser)

    # --- behaviour: what the rest asks of a family. The U-Nets' here; a family that differs overrides it. ---

    def predict(
        self,
        denoiser,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        text: torch.Tensor,
        conditions: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The denoiser's prediction for latents (batch, channels, frames, h, w), in the same layout: the one call
        training, the probe, the heads, the noise prior and the cost bench make. `conditions`: a batch of what
        `encode_conditions` gives (an image-to-video model's first frame); a text-to-video model has none."""
        frames = latents.shape[2]
        text = text.repeat_interleave(frames, dim=0) if self.text_per_frame else text
        return denoiser(latents, timesteps, encoder_hidden_states=text).sample

    def encode_video(self, vae, frames: torch.Tensor, one_frame_clips: bool = False) -> torch.Tensor:
        """Latents of one clip, frames (F, 3, H, W) in [-1, 1] -> (C, latent frames, h, w): SD's VAE encodes each
        frame alone, scaled by `scaling_factor` (`one_frame_clips` changes nothing: every frame is one already)."""
        return (vae.encode(frames).latent_dist.mode() * vae.config.scaling_factor).permute(1, 0, 2, 3)

    def takes_image(self) -> bool:
        """Whether videos start from a given first frame (an image-to-video model): `generate --image`."""
        return False

    def image_encoder_parameters(self, denoiser) -> int:
        """The published parameter count of the image encoder that caches beside the text encoder (memory.py) for a
        model whose denoiser reads its tokens; 0: none."""
        return 0

    def encode_conditions(self, pipe, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the denoiser is conditioned on besides text, from one clip's frames (F, 3, H, W) in [-1, 1],
        computed once like its latents; a text-to-video model: nothing."""
        return {}

    def encodes_frames_alone(self) -> bool:
        """Whether a clip's latents are its frames' latents (a frame-by-frame VAE): then MotionDirector's
        single-frame path reuses them instead of encoding each frame as a clip of its own."""
        return True

    def encode_text(self, pipe, captions: list[str], device) -> torch.Tensor:
        """Prompt embeddings as the pipeline samples with them."""
        embeds, _ = pipe.encode_prompt(captions, device, 1, False)
        return embeds

    def check_clip_shape(self, pipe, frames: int, size: tuple[int, int] | list[int]) -> None:
        """One-line errors for training clips the VAE and denoiser cannot take (a frame-by-frame VAE takes any)."""

    def native_sampling(self, pipe) -> tuple[int, list[int]]:
        """(frames, [height, width]) the model samples at when asked for nothing else."""
        side = pipe.unet.config.sample_size * pipe.vae_scale_factor
        return 16, [side, side]

    def size_multiple(self, pipe) -> int:
        """What height and width must be multiples of: the VAE's spatial factor."""
        return int(pipe.vae_scale_factor)

    def frames_per_latent(self, pipe) -> int:
        """Frames one latent frame stands for: the VAE's temporal factor (1: a frame-by-frame VAE)."""
        return int(getattr(pipe, "vae_scale_factor_temporal", 1))

    def valid_frames(self, pipe, frames: int) -> int:
        """The largest frame count up to `frames` the VAE decodes (a frame-by-frame VAE: any)."""
        return frames

    def check_frames(self, pipe, frames: int) -> None:
        """A one-line error for a frame count the VAE cannot decode (a frame-by-frame VAE decodes any)."""

    def position_reach(self, pipe) -> int | None:
        """The largest side in pixels the denoiser can place (None: no limit)."""
        return None

    def sampling_arguments(self, pipe) -> dict[str, Any]:
        """Arguments the pipeline's __call__ needs beyond the common ones."""
        return {}

    def timestep_range(self, pipe, expert: str = "high") -> tuple[float, float] | None:
        """The training timesteps [low, high) the denoiser (of a model with two experts: `expert`'s) serves, when
        it serves only some (None: all)."""
        return None

    def training_scheduler(self) -> Any:
        """A scheduler of the family's training objective, for a denoiser built from a config alone (the probe
        and the cost bench on an architecture): DDPM's."""
        from diffusers import DDPMScheduler

        return DDPMScheduler()

    def text_width(self, denoiser) -> int:
        """The width of the text embeddings the denoiser reads."""
        return int(denoiser.config.cross_attention_dim)

    def checkpoint_units(self, denoiser) -> list[str]:
        """The modules gradient checkpointing recomputes one at a time: the U-Net's blocks (train's
        enable_gradient_checkpointing); a DiT's transformer blocks."""
        names = ["transformer_in", "mid_block"]
        names += [f"{kind}.{i}" for kind in ("down_blocks", "up_blocks") for i in range(len(getattr(denoiser, kind)))]
        return [n for n in names if getattr(denoiser, n.split(".")[0], None) is not None]

    def all_temporal_off(self) -> list[str] | None:
        """The pathways that make up every temporal path (the probe's floor, MotionDirector's spatial path);
        None: every temporal layer is bypassed as an identity instead (a U-Net has temporal layers of its own)."""
        return None

    def to_comfyui(self, weights: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
        """A diffusers-format motion LoRA (peft keys, `alpha`) in the key layout ComfyUI's loader of this family
        reads (`motionsep export --format comfyui`)."""
        raise MotionsepError(
            f"ComfyUI has no loader for {self.name} models; --format comfyui exports AnimateDiff and Wan LoRAs"
        )

    def from_comfyui(self, comfy: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
        """The inverse of `to_comfyui`: ComfyUI's layout back to diffusers' peft keys."""
        raise MotionsepError(f"ComfyUI has no loader for {self.name} models")

    @property
    def loss_name(self) -> str:
        return "mse"


def nearest_valid(frames: int, factor: int) -> int:
    """The frame count of the form 1 + factor x k nearest to `frames` (at least 1), to suggest in an error."""
    return max(1, factor * round((frames - 1) / factor) + 1)


def _frame_rule(factor: int) -> str:
    """How a causal VAE of temporal factor `factor` counts frames, with examples: '1 + 4k frames (17, 33, ...)'."""
    examples = ", ".join(str(1 + factor * k) for k in (1, 2, 3, 4))
    return f"1 + {factor}k frames ({examples}, ...)"


@dataclass(frozen=True)
class DiTFamily(Family):
    """A DiT with a causal video VAE: clips encoded whole, 1 + 4k frames, sides a multiple of the VAE's factor
    times the patch, prompts padded to the length the pipeline samples with (`text_tokens`)."""

    denoiser: str = "transformer"
    blocks_attribute: str = "blocks"
    temporal_attentions: tuple[str, ...] = ("attn1",)
    text_per_frame: bool = False
    native_size: tuple[int, int] = (480, 832)  # (height, width) to sample at
    vae_factors: tuple[int, int] = (4, 8)
    # the length the pipeline pads prompts to when it samples; training encodes captions to the same length, so a
    # LoRA learns with the text conditioning it is sampled with
    text_tokens: int = 512

    def encodes_frames_alone(self) -> bool:
        return False  # a causal VAE's first latent frame is one frame, the others four: a frame needs a clip

    def checkpoint_units(self, denoiser) -> list[str]:
        return [f"{self.blocks_attribute}.{i}" for i in range(len(getattr(denoiser, self.blocks_attribute)))]

    def text_length(self, pipe) -> int:
        return self.text_tokens

    def encode_text(self, pipe, captions: list[str], device) -> torch.Tensor:
        embeds, _ = pipe.encode_prompt(
            captions, do_classifier_free_guidance=False, max_sequence_length=self.text_length(pipe), device=device
        )
        return embeds

    def patch_side(self, denoiser) -> int:
        return int(denoiser.config.patch_size[1])

    def check_clip_shape(self, pipe, frames: int, size: tuple[int, int] | list[int]) -> None:
        """1 + fk frames (the causal VAE encodes the first frame, then chunks of its temporal factor f: 4 for Wan and
        CogVideoX), sides a multiple of its spatial factor times the DiT's patch side."""
        if self.valid_frames(pipe, frames) != frames:
            factor = self.frames_per_latent(pipe)
            raise MotionsepError(
                f"data.frames is {frames}, but {self.name}'s causal VAE encodes {_frame_rule(factor)}: "
                f"set data.frames to {nearest_valid(frames, factor)}"
            )
        multiple = self.size_multiple(pipe)
        if any(side % multiple for side in size):
            raise MotionsepError(
                f"data.size is {list(size)}: this model needs both sides divisible by {multiple} (its VAE's "
                f"spatial factor {pipe.vae_scale_factor_spatial} times its patch side), e.g. "
                f"{[max(multiple, multiple * round(v / multiple)) for v in size]}"
            )

    def native_sampling(self, pipe) -> tuple[int, list[int]]:
        return self.valid_frames(pipe, 17), list(self.native_size)  # 17: 1 + 4k for Wan's and CogVideoX's VAE

    def size_multiple(self, pipe) -> int:
        return int(pipe.vae_scale_factor_spatial * self.patch_side(self.denoiser_of(pipe)))

    def valid_frames(self, pipe, frames: int) -> int:
        factor = self.frames_per_latent(pipe)
        return max(1, factor * ((frames - 1) // factor) + 1)  # 1 + fk

    def check_frames(self, pipe, frames: int) -> None:
        if self.valid_frames(pipe, frames) != frames:
            factor = self.frames_per_latent(pipe)
            raise MotionsepError(
                f"{frames} frames: {self.name}'s causal VAE decodes {_frame_rule(factor)}; "
                f"pass --frames {nearest_valid(frames, factor)}"
            )

    def sampling_arguments(self, pipe) -> dict[str, Any]:
        return {"max_sequence_length": self.text_length(pipe)}

    def all_temporal_off(self) -> list[str] | None:
        return [p.name for p in self.pathways]  # no layer is temporal alone: every cross-frame path at once
