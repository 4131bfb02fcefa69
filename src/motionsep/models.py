"""Base models: find a pipeline, tell its family, and name its temporal and spatial modules.

Three families are supported, told apart by the denoiser's class:

* ``modelscope``: ModelScope T2V and ZeroScope, ``UNet3DConditionModel`` in ``TextToVideoSDPipeline``.
  Temporal layers: ``transformer_in`` and every ``temp_attentions.*`` (``TransformerTemporalModel``).
* ``animatediff``: SD1.5 + ``MotionAdapter`` as ``UNetMotionModel`` in ``AnimateDiffPipeline``.
  Temporal layers: every ``motion_modules.*`` (``AnimateDiffTransformer3D``).
* ``wan``: Wan 2.1 / 2.2 text-to-video, ``WanTransformer3DModel`` (a DiT) in ``WanPipeline``. No layer is
  temporal alone: every block's self-attention (``blocks.*.attn1``) mixes space and time, its 3D RoPE giving
  query and key the frame positions; ``attn2`` is cross-attention to the text.

Nothing here downloads anything unless the user passes a hub id.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import MotionsepError

# The denoiser of a supported family (UNet3DConditionModel, UNetMotionModel, WanTransformer3DModel). Typed as
# Any: its blocks are reached through nn.Module's dynamic attributes, which a checker reads as "Tensor | Module".
Denoiser = Any


@dataclass(frozen=True)
class Pathway:
    """One temporal pathway of a family, for `motionsep probe`: the UNet modules whose names fully match
    `pattern`, switched off by `action` ("zero": the module's output becomes zeros, which removes a residual
    branch such as an attention; "identity": the module returns its input)."""

    name: str
    pattern: str
    action: str
    summary: str
    adapted_by_tap: bool = False  # the pathway TAP's LoRA reshapes: TAP has a lever where motion needs it


_TEMPORAL_ATTENTION = r"(transformer_in|.*\.temp_attentions\.\d+)\.transformer_blocks\.\d+\.attn[12]"
_MOTION_MODULE = r".*\.motion_modules\.\d+\.transformer_blocks\.\d+"
MODELSCOPE_PATHWAYS = (
    Pathway(
        "temporal attention",
        _TEMPORAL_ATTENTION,
        "zero",
        "attn1 and attn2 of every temporal transformer (transformer_in included)",
        adapted_by_tap=True,
    ),
    Pathway("temporal convolutions", r".*\.temp_convs\.\d+", "identity", "every TemporalConvLayer"),
    Pathway("transformer_in", r"transformer_in", "identity", "the temporal transformer after conv_in"),
)
ANIMATEDIFF_PATHWAYS = (
    Pathway(
        "motion-module attention",
        _MOTION_MODULE + r"\.attn[12]",
        "zero",
        "attn1 and attn2 of every motion module",
        adapted_by_tap=True,
    ),
    Pathway("motion-module feed-forward", _MOTION_MODULE + r"\.ff", "zero", "the feed-forward of every motion module"),
)
# A DiT has no temporal layer to switch off: its self-attention is restricted to the tokens of each token's own
# frame ("same_frame"), which leaves everything within a frame and removes every path across frames.
WAN_PATHWAYS = (
    Pathway(
        "cross-frame attention",
        r"blocks\.\d+\.attn1",
        "same_frame",
        "self-attention of every block restricted to its own frame",
        adapted_by_tap=True,
    ),
)


@dataclass(frozen=True)
class Family:
    """Everything motionsep needs to know about a base-model family, in one place."""

    name: str
    denoiser_class: str  # the class of the pipeline's denoiser (a UNet or a DiT)
    pipeline_class: str
    temporal_transformer_class: str  # the class of its temporal transformers (where temporal LoRA goes)
    attention_down_block: str  # the down block whose layer skips the Appearance Highway reroutes
    temporal_in_block: str  # attribute of a down block holding its temporal layers
    text_per_frame: bool  # the UNet wants encoder_hidden_states repeated per frame (AnimateDiff)
    pathways: tuple[Pathway, ...]  # its temporal pathways, each of which the probe switches off
    # a temporal layer between conv_in and the first skip (ModelScope's transformer_in), which the
    # highway's first_skip_from_conv_in option bypasses; None: the first skip is conv_in's output already
    first_temporal_layer: str | None = None
    # the Appearance Highway reroutes U-Net skip connections; a family without them (a DiT) cannot have it
    supports_highway: bool = True
    denoiser: str = "unet"  # the pipeline attribute holding it, which is also its LoRA keys' prefix
    spatial_transformer_class: str = "Transformer2DModel"  # where spatial (appearance) LoRA goes
    blocks_attribute: str = "transformer_blocks"  # a transformer's list of blocks
    # the attentions of a temporal transformer's block that temporal LoRA targets: both are temporal
    # self-attentions in the U-Net families; in a DiT only attn1 (attn2 reads the text)
    temporal_attentions: tuple[str, ...] = ("attn1", "attn2")
    feed_forward: str = "ff"  # a block's feed-forward attribute
    # the VAE encodes whole clips, causally in time (1 + 4k frames), and normalises latents by per-channel
    # mean and std (Wan); False: frame by frame, scaled by scaling_factor
    video_vae: bool = False
    native_size: tuple[int, int] | None = None  # (height, width) to sample at; None: the UNet's sample_size
    # the length the pipeline pads prompts to when it samples (WanPipeline.__call__: 512, Wan's text_len, while
    # its encode_prompt defaults to 226); training encodes captions to the same length, so a LoRA learns with
    # the text conditioning it is sampled with. None: the pipeline has one length (CLIP's 77).
    text_tokens: int | None = None

    def unet_text(self, text: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Text embeddings shaped as this family's UNet expects them for `num_frames` frames."""
        return text.repeat_interleave(num_frames, dim=0) if self.text_per_frame else text

    @property
    def is_dit(self) -> bool:
        return self.denoiser == "transformer"

    # --- behaviour: what the rest asks of a family. The U-Nets' here; a family that differs overrides it. ---

    def encode_video(self, vae, frames: torch.Tensor, one_frame_clips: bool = False) -> torch.Tensor:
        """Latents of one clip, frames (F, 3, H, W) in [-1, 1] -> (C, latent frames, h, w): SD's VAE encodes each
        frame alone, scaled by `scaling_factor` (`one_frame_clips` changes nothing: every frame is one already)."""
        return (vae.encode(frames).latent_dist.mode() * vae.config.scaling_factor).permute(1, 0, 2, 3)

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

    def valid_frames(self, frames: int) -> int:
        """The largest frame count up to `frames` the VAE decodes (a frame-by-frame VAE: any)."""
        return frames

    def check_frames(self, frames: int) -> None:
        """A one-line error for a frame count the VAE cannot decode (a frame-by-frame VAE decodes any)."""

    def position_reach(self, pipe) -> int | None:
        """The largest side in pixels the denoiser can place (None: no limit)."""
        return None

    def sampling_arguments(self) -> dict[str, Any]:
        """Arguments the pipeline's __call__ needs beyond the common ones."""
        return {}

    def timestep_range(self, pipe) -> tuple[int, int] | None:
        """The training timesteps the denoiser serves, when it serves only some (None: all)."""
        return None

    def training_scheduler(self) -> Any:
        """A scheduler of the family's training objective, for a denoiser built from a config alone (the probe
        and the cost bench on an architecture): DDPM's."""
        from diffusers import DDPMScheduler

        return DDPMScheduler()

    def text_width(self, denoiser) -> int:
        """The width of the text embeddings the denoiser reads."""
        return int(denoiser.config.cross_attention_dim)

    def all_temporal_off(self) -> list[str] | None:
        """The pathways that make up every temporal path (the probe's floor, MotionDirector's spatial path);
        None: every temporal layer is bypassed as an identity instead (a U-Net has temporal layers of its own)."""
        return None

    @property
    def loss_name(self) -> str:
        return "mse"


def _nearest_1_plus_4k(frames: int) -> int:
    """The frame count of the form 1 + 4k nearest to `frames`, to suggest in an error."""
    return 4 * round((frames - 1) / 4) + 1


@dataclass(frozen=True)
class DiTFamily(Family):
    """A DiT with a causal video VAE (Wan): clips encoded whole and normalised per channel, 1 + 4k frames,
    sides a multiple of the VAE's factor times the patch, prompts padded to the length the pipeline samples
    with, a rotary position table of limited reach."""

    def encode_video(self, vae, frames: torch.Tensor, one_frame_clips: bool = False) -> torch.Tensor:
        """The clip at once (with `one_frame_clips` each frame as a clip of its own: one latent frame each),
        normalised by the VAE's per-channel latents_mean and latents_std as the pipeline decodes them."""
        video = frames.permute(1, 0, 2, 3)[None]  # (1, C, F, H, W)
        parts = [video[:, :, i : i + 1] for i in range(video.shape[2])] if one_frame_clips else [video]
        latent = torch.cat([vae.encode(part).latent_dist.mode() for part in parts], dim=2)[0]
        mean = torch.tensor(vae.config.latents_mean, device=latent.device).view(-1, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std, device=latent.device).view(-1, 1, 1, 1)
        return (latent - mean) / std

    def encode_text(self, pipe, captions: list[str], device) -> torch.Tensor:
        embeds, _ = pipe.encode_prompt(
            captions, do_classifier_free_guidance=False, max_sequence_length=self.text_tokens, device=device
        )
        return embeds

    def check_clip_shape(self, pipe, frames: int, size: tuple[int, int] | list[int]) -> None:
        """1 + 4k frames (AutoencoderKLWan encodes the first frame, then chunks of four, whatever its temporal
        factor), sides a multiple of its spatial factor times the DiT's patch side."""
        if self.valid_frames(frames) != frames:
            raise MotionsepError(
                f"data.frames is {frames}, but Wan's causal VAE encodes 1 + 4k frames (17, 33, 49, 81, ...): "
                f"set data.frames to {_nearest_1_plus_4k(frames)}"
            )
        multiple = self.size_multiple(pipe)
        if any(side % multiple for side in size):
            raise MotionsepError(
                f"data.size is {list(size)}: this model needs both sides divisible by {multiple} (its VAE's "
                f"spatial factor {pipe.vae_scale_factor_spatial} times its patch side), e.g. "
                f"{[max(multiple, multiple * round(v / multiple)) for v in size]}"
            )

    def native_sampling(self, pipe) -> tuple[int, list[int]]:
        return 17, list(self.native_size or (480, 832))  # 1 + 4k frames for the causal VAE

    def size_multiple(self, pipe) -> int:
        return int(pipe.vae_scale_factor_spatial * denoiser_of(pipe).config.patch_size[1])

    def valid_frames(self, frames: int) -> int:
        return 4 * ((frames - 1) // 4) + 1  # 1 + 4k

    def check_frames(self, frames: int) -> None:
        if self.valid_frames(frames) != frames:
            raise MotionsepError(
                f"{frames} frames: Wan's causal VAE decodes 1 + 4k frames (17, 33, 49, 81, ...); "
                f"pass --frames {_nearest_1_plus_4k(frames)}"
            )

    def position_reach(self, pipe) -> int | None:
        """The rotary position table covers rope_max_seq_len patches a side."""
        config = denoiser_of(pipe).config
        if "rope_max_seq_len" not in config:
            return None
        return int(config.rope_max_seq_len * config.patch_size[1] * pipe.vae_scale_factor_spatial)

    def sampling_arguments(self) -> dict[str, Any]:
        return {"max_sequence_length": self.text_tokens} if self.text_tokens else {}

    def timestep_range(self, pipe) -> tuple[int, int] | None:
        """Wan 2.2 A14B: `transformer`, the denoiser motionsep trains, is the high-noise expert ("overall
        layout"), which WanPipeline runs for t >= boundary_ratio x 1000 (0.875 T2V); `transformer_2`, the
        low-noise expert, refines detail below it. A motion LoRA belongs on the high-noise expert over its own
        timesteps: that is Phased LoRA Integration built into the model (a high-noise LoRA trained over the full
        range "fried" results: diffusion-pipe #372)."""
        ratio = getattr(getattr(pipe, "config", None), "boundary_ratio", None)
        if getattr(pipe, "transformer_2", None) is None or ratio is None:
            return None
        total = int(pipe.scheduler.config.num_train_timesteps)
        return round(ratio * total), total

    def training_scheduler(self) -> Any:
        """Flow matching with Wan's 480p shift."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler(shift=3.0)

    def text_width(self, denoiser) -> int:
        return int(denoiser.config.text_dim)

    def all_temporal_off(self) -> list[str] | None:
        return [p.name for p in self.pathways]  # no layer is temporal alone: every cross-frame path at once

    @property
    def loss_name(self) -> str:
        return "flow-matching velocity mse"


MODELSCOPE = Family(
    name="modelscope",
    denoiser_class="UNet3DConditionModel",
    pipeline_class="TextToVideoSDPipeline",
    temporal_transformer_class="TransformerTemporalModel",
    attention_down_block="CrossAttnDownBlock3D",
    temporal_in_block="temp_attentions",
    text_per_frame=False,
    pathways=MODELSCOPE_PATHWAYS,
    first_temporal_layer="transformer_in",
)
ANIMATEDIFF = Family(
    name="animatediff",
    denoiser_class="UNetMotionModel",
    pipeline_class="AnimateDiffPipeline",
    temporal_transformer_class="AnimateDiffTransformer3D",
    attention_down_block="CrossAttnDownBlockMotion",
    temporal_in_block="motion_modules",
    text_per_frame=True,
    pathways=ANIMATEDIFF_PATHWAYS,
)
WAN = DiTFamily(
    name="wan",
    denoiser_class="WanTransformer3DModel",
    pipeline_class="WanPipeline",
    temporal_transformer_class="WanTransformer3DModel",  # the whole DiT: every block's attn1 is spatio-temporal
    attention_down_block="",
    temporal_in_block="",
    text_per_frame=False,
    pathways=WAN_PATHWAYS,
    supports_highway=False,
    denoiser="transformer",
    spatial_transformer_class="WanTransformer3DModel",
    blocks_attribute="blocks",
    temporal_attentions=("attn1",),
    feed_forward="ffn",
    video_vae=True,
    native_size=(480, 832),
    text_tokens=512,
)
FAMILIES = {f.name: f for f in (MODELSCOPE, ANIMATEDIFF, WAN)}
_BY_DENOISER_CLASS = {f.denoiser_class: f for f in FAMILIES.values()}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def family_of_denoiser_class(class_name: str, has_motion_adapter: bool = False) -> Family:
    if class_name == "UNet2DConditionModel" and has_motion_adapter:
        return ANIMATEDIFF
    if class_name not in _BY_DENOISER_CLASS:
        supported = ", ".join(f"{f.denoiser_class} ({f.name})" for f in FAMILIES.values())
        hint = (
            "; an SD1.5 pipeline is AnimateDiff with a MotionAdapter: pass --motion-adapter FOLDER (in a config: "
            "motion_adapter)"
            if class_name == "UNet2DConditionModel"
            else ""
        )
        raise MotionsepError(f"unsupported model: its denoiser is {class_name}; motionsep supports {supported}{hint}")
    return _BY_DENOISER_CLASS[class_name]


def family_of_model(model: str) -> Family:
    """The family of a pipeline folder, hub id or name motionsep knows, read from its denoiser's config alone."""
    return family_of_denoiser_class(load_unet_config(model).get("_class_name", ""))


def is_dit_model(model: str) -> bool:
    """Whether `model` (a pipeline folder, hub id or name motionsep knows) is a DiT: what decides a bench's
    baseline, rows and a demo's methods."""
    return family_of_model(model).is_dit


def family_of(unet: Denoiser) -> Family:
    return family_of_denoiser_class(type(unet).__name__)


def token_grid(denoiser: Denoiser, latent_shape) -> tuple[int, int, int]:
    """(frames, height, width) of a DiT's tokens for latents of `latent_shape` (batch, channels, frames, h, w): the
    latent grid divided by the patch."""
    frames, height, width = (n // p for n, p in zip(latent_shape[2:], denoiser.config.patch_size))
    return frames, height, width


def frame_of_token(denoiser: Denoiser, latent_shape, device=None) -> torch.Tensor:
    """The latent frame of each of a DiT's tokens, which are frame-major (patchified (frames, height, width)
    flattened)."""
    frames, height, width = token_grid(denoiser, latent_shape)
    return torch.arange(frames, device=device).repeat_interleave(height * width)


def model_card(model: str) -> dict[str, Any]:
    """A local model folder's model_card.json (an embedded model's says how it was made and what it samples at:
    clip_frames, size); {} for a folder without one, a hub id or no name."""
    if not model:
        return {}
    card = Path(resolve_model(model)) / "model_card.json"
    return json.loads(card.read_text(encoding="utf-8")) if card.is_file() else {}


def denoiser_of(pipe) -> Denoiser:
    """The pipeline's denoiser: `pipe.unet` or, for a DiT family, `pipe.transformer`."""
    return pipe.unet if getattr(pipe, "unet", None) is not None else pipe.transformer


# Published denoiser configs, shipped so `inspect`, `probe` and `bench cost` can build the real architectures
# (random weights) with nothing downloaded: the ModelScope/ZeroScope UNet (REFERENCE.md) and the transformers of
# Wan-AI/Wan2.1-T2V-1.3B-Diffusers and Wan-AI/Wan2.1-T2V-14B-Diffusers.
_CONFIGS = Path(__file__).parent / "configs"
ZEROSCOPE_UNET_CONFIG = _CONFIGS / "zeroscope_unet_config.json"
SHIPPED_CONFIGS = {
    "zeroscope-config": ZEROSCOPE_UNET_CONFIG,
    "wan-1.3b-config": _CONFIGS / "wan2.1_t2v_1.3b_transformer_config.json",
    "wan-14b-config": _CONFIGS / "wan2.1_t2v_14b_transformer_config.json",
}


# The shapes-world models shipped in the package (data folders under toy/, built by `motionsep toy pretrain`),
# by the name --model takes, with the family each is of.
_TOY_DATA = Path(__file__).parent / "toy"
EMBEDDED_MODELS = {
    "toy": ("modelscope", _TOY_DATA / "model"),
    "toy-animatediff": ("animatediff", _TOY_DATA / "model_animatediff"),
    "toy-wan": ("wan", _TOY_DATA / "model_wan"),
}
_EMBEDDED_NAMES = ", ".join(f"'{name}'" for name in EMBEDDED_MODELS)


def embedded_model_path(name: str = "toy") -> Path:
    """The shipped shapes-world pipeline folder of `name` (`--model toy`, `toy-animatediff` or `toy-wan`)."""
    family, folder = EMBEDDED_MODELS[name]
    if not (folder / "model_index.json").is_file():
        raise MotionsepError(
            f"the embedded model '{name}' is not in this installation yet: "
            f"build it with `motionsep toy pretrain --family {family}`"
        )
    return folder


def resolve_model(model: str) -> str:
    """Map the names motionsep knows ('toy', 'toy-animatediff', 'zeroscope-config', 'wan-1.3b-config', ...) to
    paths; others as given."""
    if model in EMBEDDED_MODELS:
        return str(embedded_model_path(model))
    if model in SHIPPED_CONFIGS:
        return str(SHIPPED_CONFIGS[model])
    return model


def weights_fingerprint(model: str) -> str:
    """A short hash of a local model folder's weight files: what saved results depend on beyond the model's
    name (a resumed benchmark refuses pieces made with other weights). Files over 256 MB are hashed by name
    and size only, so a real checkpoint costs no minutes; a hub id is its own fingerprint."""
    path = Path(resolve_model(model))
    if not path.is_dir():
        return model
    digest = hashlib.sha256()
    for file in sorted(path.rglob("*.safetensors")):
        size = file.stat().st_size
        digest.update(f"{file.relative_to(path).as_posix()}:{size}".encode())
        if size <= 256 << 20:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _is_local(model: str) -> bool:
    return Path(model).exists() or not _HUB_ID.match(model)


def load_unet_config(model: str) -> dict[str, Any]:
    """The denoiser's config.json as a dict (the UNet's, or a DiT's transformer's), without loading any weights.

    `model` may be a pipeline folder, a UNet or transformer folder, a config.json file, or a hub id.
    """
    model = resolve_model(model)
    if _is_local(model):
        path = Path(model)
        candidates = (
            [path]
            if path.is_file()
            else [path / "unet" / "config.json", path / "transformer" / "config.json", path / "config.json"]
        )
        for candidate in candidates:
            if candidate.is_file():
                try:
                    return json.loads(candidate.read_text(encoding="utf-8"))
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise MotionsepError(f"'{candidate}' is not valid JSON: {exc}") from None
        if not path.exists():
            raise MotionsepError(
                f"model '{model}' not found: give a diffusers pipeline folder, a hub id or {_EMBEDDED_NAMES}"
            )
        raise MotionsepError(
            f"'{model}' is not a diffusers pipeline folder: it has no unet/config.json or transformer/config.json"
        )
    from huggingface_hub import hf_hub_download

    index = json.loads(Path(hf_hub_download(model, "model_index.json")).read_text())
    sub = "unet" if "unet" in index else "transformer"
    return json.loads(Path(hf_hub_download(model, f"{sub}/config.json")).read_text())


def build_unet_from_config(config: dict[str, Any], device: str = "meta") -> torch.nn.Module:
    """Instantiate the denoiser class a config names; on the meta device it allocates no memory."""
    import diffusers
    from accelerate import init_empty_weights

    family = family_of_denoiser_class(config.get("_class_name", "unknown"))
    cls = getattr(diffusers, family.denoiser_class)
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    if device == "meta":
        with init_empty_weights():
            return cls.from_config(config)
    return cls.from_config(config)


def dtype_argument(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """The dtype keyword of diffusers' from_pretrained: `dtype` where diffusers has renamed it (it warns on every
    `torch_dtype` since), `torch_dtype` in the releases before the rename (the declared floor among them)."""
    from diffusers.utils import deprecation_utils

    renamed = hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE")
    return {"dtype" if renamed else "torch_dtype": dtype}


def load_pipeline(
    model: str,
    motion_adapter: str | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
):
    """Load a supported diffusers pipeline from a local folder or hub id; returns (pipeline, family)."""
    import diffusers
    from diffusers import DiffusionPipeline

    model = resolve_model(model)
    local = _is_local(model)
    if local:
        path = Path(model)
        if not path.is_dir():
            raise MotionsepError(
                f"model '{model}' not found: give a diffusers pipeline folder, a hub id or {_EMBEDDED_NAMES}"
            )
        if not (path / "model_index.json").is_file():
            raise MotionsepError(f"'{model}' is not a diffusers pipeline folder: it has no model_index.json")
        index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
        denoiser_class = load_unet_config(model).get("_class_name", "unknown")
        family = family_of_denoiser_class(denoiser_class, has_motion_adapter=motion_adapter is not None)
        pipeline_class = index.get("_class_name")
        if motion_adapter is None and pipeline_class not in (None, family.pipeline_class):
            raise MotionsepError(
                f"'{model}' holds a {pipeline_class} with a {denoiser_class}; motionsep's {family.name} family reads "
                f"{family.pipeline_class} folders: save the parts as a {family.pipeline_class}"
            )
    kwargs: dict[str, Any] = dtype_argument(dtype)
    if motion_adapter is not None:
        kwargs["motion_adapter"] = diffusers.MotionAdapter.from_pretrained(motion_adapter, **dtype_argument(dtype))
        pipe_cls: Any = diffusers.AnimateDiffPipeline
    else:
        pipe_cls = DiffusionPipeline
    try:
        pipe = pipe_cls.from_pretrained(model, **kwargs)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise MotionsepError(f"cannot load pipeline '{model}': {str(exc).splitlines()[0]}") from None
    family = family_of(denoiser_of(pipe))
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe, family


# --- module maps -------------------------------------------------------------------------------


def _class_name(module: torch.nn.Module) -> str:
    return type(module).__name__


def temporal_transformers(unet: Denoiser) -> list[str]:
    """Names of every temporal transformer.

    ModelScope: transformer_in and temp_attentions; AnimateDiff: the motion modules; a DiT: the whole model
    (its name is the empty string)."""
    cls = family_of(unet).temporal_transformer_class
    return [n for n, m in unet.named_modules() if _class_name(m) == cls]


def spatial_transformers(unet: Denoiser) -> list[str]:
    """Names of every spatial transformer (a DiT: the whole model)."""
    cls = family_of(unet).spatial_transformer_class
    return [n for n, m in unet.named_modules() if _class_name(m) == cls]


def transformer_blocks(unet: Denoiser, transformer: str) -> list[str]:
    """Module names of the blocks of the transformer named `transformer` ("" for the model itself)."""
    attribute = family_of(unet).blocks_attribute
    module = unet.get_submodule(transformer)
    prefix = f"{transformer}.{attribute}" if transformer else attribute
    return [f"{prefix}.{i}" for i in range(len(getattr(module, attribute)))]


def attention_down_blocks(unet: Denoiser) -> list[int]:
    """Indices of the down blocks that have spatial attention (the Appearance Highway's candidates)."""
    family = family_of(unet)
    return [i for i, b in enumerate(unet.down_blocks) if _class_name(b) == family.attention_down_block]


class _Bypass:
    """Forward hooks that make modules return their input (a residual block with a zero residual)."""

    def __init__(self, modules: list[torch.nn.Module]):
        self._handles = [m.register_forward_hook(self._identity, with_kwargs=True) for m in modules]

    @staticmethod
    def _identity(module, args, kwargs, output):
        hidden_states = args[0] if args else kwargs["hidden_states"]
        if isinstance(output, torch.Tensor):
            return hidden_states
        if isinstance(output, tuple):
            return (hidden_states,) + tuple(output[1:])
        return type(output)(sample=hidden_states)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


class temporal_layers_bypassed:
    """Context manager: the UNet acts as a per-frame image model (MotionDirector's spatial path).

    Every temporal transformer and, for ModelScope, every temporal convolution passes its input
    through unchanged, so a single frame sees only spatial layers.
    """

    def __init__(self, unet: Denoiser):
        family = family_of(unet)
        names = () if family.is_dit else ("TemporalConvLayer", family.temporal_transformer_class)
        self.modules = [m for m in unet.modules() if _class_name(m) in names]

    def __enter__(self):
        self._bypass = _Bypass(self.modules)
        return self

    def __exit__(self, *exc):
        self._bypass.remove()
