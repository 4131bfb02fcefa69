"""Base models: find a pipeline, tell its family, and name its temporal and spatial modules.

The families (``families/``, one file each: ModelScope/ZeroScope, AnimateDiff, Wan, CogVideoX) are told apart
by the denoiser's class.

Nothing here downloads anything unless the user passes a hub id.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch

from .errors import MotionsepError
from .families import FAMILIES, Family
from .families.animatediff import ANIMATEDIFF

# The denoiser of a supported family (UNet3DConditionModel, UNetMotionModel, WanTransformer3DModel). Typed as
# Any: its blocks are reached through nn.Module's dynamic attributes, which a checker reads as "Tensor | Module".
Denoiser = Any


# Wan's text-to-video and image-to-video pipelines share their transformer class: a denoiser alone names the first
# family listed with it (text-to-video), its pipeline's class tells them apart
_BY_DENOISER_CLASS: dict[str, Family] = {}
for _family in FAMILIES.values():
    _BY_DENOISER_CLASS.setdefault(_family.denoiser_class, _family)
_BY_PIPELINE_CLASS = {f.pipeline_class: f for f in FAMILIES.values()}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def family_of_denoiser_class(
    class_name: str, has_motion_adapter: bool = False, pipeline_class: str | None = None
) -> Family:
    """The family of a denoiser class, told apart by its pipeline's class where two families share one."""
    if class_name == "UNet2DConditionModel" and has_motion_adapter:
        return ANIMATEDIFF
    by_pipeline = _BY_PIPELINE_CLASS.get(pipeline_class or "")
    if by_pipeline is not None and by_pipeline.denoiser_class == class_name:
        return by_pipeline
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
    """The family of a pipeline folder, hub id or name motionsep knows, read from its denoiser's config and its
    pipeline's class (a folder's model_index.json, a shipped config's `_pipeline_class`)."""
    config = load_denoiser_config(model)
    path = Path(resolve_model(model))
    index = path / "model_index.json"
    pipeline_class = config.get("_pipeline_class")
    if index.is_file():
        pipeline_class = json.loads(index.read_text(encoding="utf-8")).get("_class_name")
    return family_of_denoiser_class(config.get("_class_name", ""), pipeline_class=pipeline_class)


def expert_boundary(model: str) -> float | None:
    """Where a model with two experts (Wan 2.2 A14B) switches from the high-noise one to the low-noise one, as a
    share of the training timesteps: a pipeline folder's `boundary_ratio` beside a `transformer_2`, or a shipped
    config's `_boundary_ratio`; None for a model with one denoiser (or a hub id, whose index is not read here)."""
    path = Path(resolve_model(model))
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8")).get("_boundary_ratio")
    index = path / "model_index.json"
    if not index.is_file():
        return None
    data = json.loads(index.read_text(encoding="utf-8"))
    two = isinstance(data.get("transformer_2"), list) and data["transformer_2"][0] is not None
    return data.get("boundary_ratio") if two else None


def has_highway(model: str) -> bool:
    """Whether `model` (a pipeline folder, hub id or name motionsep knows) has the U-Net skips the Appearance
    Highway reroutes: what decides a bench's baseline, rows and a demo's methods (without them, the LoRA on every
    layer that a DiT's trainers train is the baseline)."""
    return family_of_model(model).supports_highway


def family_of(denoiser: Denoiser) -> Family:
    return family_of_denoiser_class(type(denoiser).__name__)


def family_of_pipe(pipe) -> Family:
    return family_of_denoiser_class(type(denoiser_of(pipe)).__name__, pipeline_class=type(pipe).__name__)


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


def denoiser_of(pipe, expert: str | None = None) -> Denoiser:
    """The pipeline's denoiser: `pipe.unet` or, for a DiT family, `pipe.transformer`; of a model with two experts
    (Wan 2.2 A14B) the high-noise one, or with `expert="low"` the low-noise one (`pipe.transformer_2`)."""
    if expert == "low":
        if getattr(pipe, "transformer_2", None) is None:
            raise MotionsepError(
                "expert 'low' names the low-noise expert of a model with two (Wan 2.2 A14B's transformer_2); this "
                "model has one denoiser: set expert to high"
            )
        return pipe.transformer_2
    return pipe.unet if getattr(pipe, "unet", None) is not None else pipe.transformer


def experts_of(pipe) -> bool:
    """Whether the pipeline has two experts switched by timestep (Wan 2.2 A14B: `transformer`, `transformer_2`)."""
    return getattr(pipe, "transformer_2", None) is not None


# Published denoiser configs, shipped so `inspect`, `probe` and `bench cost` can build the real architectures
# (random weights) with nothing downloaded: the ModelScope/ZeroScope UNet (REFERENCE.md) and the transformers of
# Wan-AI/Wan2.1-T2V-1.3B-Diffusers, Wan-AI/Wan2.1-T2V-14B-Diffusers, Wan-AI/Wan2.2-T2V-A14B-Diffusers (each of its two
# experts; `_boundary_ratio` says where they switch), Wan-AI/Wan2.2-TI2V-5B-Diffusers, the image-to-video
# Wan-AI/Wan2.1-I2V-14B-480P-Diffusers and Wan-AI/Wan2.2-I2V-A14B-Diffusers (`_pipeline_class` names their pipeline:
# they share the text-to-video transformer class), THUDM/CogVideoX-2b and
# THUDM/CogVideoX-5b (the 5B differs from the 2B in 48 heads, 42 blocks and 3D RoPE).
_CONFIGS = Path(__file__).parent / "configs"
ZEROSCOPE_UNET_CONFIG = _CONFIGS / "zeroscope_unet_config.json"
SHIPPED_CONFIGS = {
    "zeroscope-config": ZEROSCOPE_UNET_CONFIG,
    "wan-1.3b-config": _CONFIGS / "wan2.1_t2v_1.3b_transformer_config.json",
    "wan-14b-config": _CONFIGS / "wan2.1_t2v_14b_transformer_config.json",
    "wan2.2-a14b-config": _CONFIGS / "wan2.2_t2v_a14b_transformer_config.json",
    "wan2.2-ti2v-5b-config": _CONFIGS / "wan2.2_ti2v_5b_transformer_config.json",
    "wan-i2v-14b-config": _CONFIGS / "wan2.1_i2v_14b_transformer_config.json",
    "wan2.2-i2v-a14b-config": _CONFIGS / "wan2.2_i2v_a14b_transformer_config.json",
    "cogvideox-2b-config": _CONFIGS / "cogvideox_2b_transformer_config.json",
    "cogvideox-5b-config": _CONFIGS / "cogvideox_5b_transformer_config.json",
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


def load_denoiser_config(model: str) -> dict[str, Any]:
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


def build_denoiser_from_config(config: dict[str, Any], device: str = "meta") -> torch.nn.Module:
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
        denoiser_class = load_denoiser_config(model).get("_class_name", "unknown")
        pipeline_class = index.get("_class_name")
        family = family_of_denoiser_class(denoiser_class, motion_adapter is not None, pipeline_class)
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
    family = family_of_pipe(pipe)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe, family


# --- module maps -------------------------------------------------------------------------------


def _class_name(module: torch.nn.Module) -> str:
    return type(module).__name__


def temporal_transformers(denoiser: Denoiser) -> list[str]:
    """Names of every temporal transformer.

    ModelScope: transformer_in and temp_attentions; AnimateDiff: the motion modules; a DiT: the whole model
    (its name is the empty string)."""
    cls = family_of(denoiser).temporal_transformer_class
    return [n for n, m in denoiser.named_modules() if _class_name(m) == cls]


def spatial_transformers(denoiser: Denoiser) -> list[str]:
    """Names of every spatial transformer (a DiT: the whole model)."""
    cls = family_of(denoiser).spatial_transformer_class
    return [n for n, m in denoiser.named_modules() if _class_name(m) == cls]


def transformer_blocks(denoiser: Denoiser, transformer: str) -> list[str]:
    """Module names of the blocks of the transformer named `transformer` ("" for the model itself)."""
    attribute = family_of(denoiser).blocks_attribute
    module = denoiser.get_submodule(transformer)
    prefix = f"{transformer}.{attribute}" if transformer else attribute
    return [f"{prefix}.{i}" for i in range(len(getattr(module, attribute)))]


def attention_down_blocks(denoiser: Denoiser) -> list[int]:
    """Indices of the down blocks that have spatial attention (the Appearance Highway's candidates)."""
    family = family_of(denoiser)
    return [i for i, b in enumerate(denoiser.down_blocks) if _class_name(b) == family.attention_down_block]


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

    def __init__(self, denoiser: Denoiser):
        names = family_of(denoiser).temporal_layer_classes
        self.modules = [m for m in denoiser.modules() if _class_name(m) in names]

    def __enter__(self):
        self._bypass = _Bypass(self.modules)
        return self

    def __exit__(self, *exc):
        self._bypass.remove()
