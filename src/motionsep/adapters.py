"""LoRA on the denoiser (UNet or DiT) through peft: add, switch, scale, save, load.

A motion LoRA folder is what diffusers expects plus one JSON file:

    pytorch_lora_weights.safetensors   denoiser.-prefixed peft keys (lora_A / lora_B), LoraConfig in the header
    motionsep.json                     method, targets, Appearance Highway / PLI defaults, training config
    spatial/pytorch_lora_weights.safetensors   dual-path methods only; not used at inference

AnimateDiff and Wan folders load with ``AnimateDiffPipeline.load_lora_weights`` / ``WanPipeline.load_lora_weights``
(Wan keys are 'transformer.'-prefixed); ModelScope/ZeroScope folders with peft's ``inject_adapter_in_model`` +
``set_peft_model_state_dict`` (docs/usage.md, the LoRA folder).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors import SafetensorError
from safetensors.torch import load_file

from .checkpoint import readable_as_other_files
from .errors import MotionsepError
from .models import FAMILIES, Denoiser, family_of
from .record import METADATA_NAME, LoraRecord

MOTION = "motion"  # adapter name of the motion (temporal) LoRA
SPATIAL = "spatial"  # adapter name of the dual-path methods' spatial LoRA
WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def make_lora_config(module_names: list[str], rank: int, alpha: float | None, dropout: float) -> LoraConfig:
    return LoraConfig(
        r=rank,
        lora_alpha=rank if alpha is None else alpha,  # type: ignore[arg-type]  # peft accepts floats
        lora_dropout=dropout,
        target_modules=list(module_names),
        init_lora_weights=True,  # B = 0: a fresh LoRA leaves the model unchanged
    )


def add_lora(denoiser: Denoiser, config: LoraConfig, adapter_name: str) -> None:
    """Inject one adapter with peft, keeping every adapter already there active.

    peft makes the newest adapter the only active one on *every* LoRA layer, which would silently
    switch off a motion LoRA when a spatial one is added on other layers; re-activate them all.
    """
    try:
        with warnings.catch_warnings():  # several adapters in one model is what we want here
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            inject_adapter_in_model(config, denoiser, adapter_name=adapter_name)
    except ValueError as exc:
        raise MotionsepError(f"cannot add LoRA '{adapter_name}': {str(exc).splitlines()[0]}") from None
    names = sorted({name for layer in lora_layers(denoiser) for name in layer.lora_A})
    for layer in lora_layers(denoiser):
        layer.set_adapter(names)


def lora_layers(denoiser: Denoiser, adapter_name: str | None = None) -> list[Any]:
    """peft's LoRA layers (typed Any: BaseTunerLayer declares none of the LoRA attributes they carry)."""
    return [
        m
        for m in denoiser.modules()
        if isinstance(m, BaseTunerLayer) and (adapter_name is None or adapter_name in getattr(m, "lora_A", {}))
    ]


def lora_parameters(denoiser: Denoiser, adapter_name: str) -> list[torch.nn.Parameter]:
    params = []
    for layer in lora_layers(denoiser, adapter_name):
        params += list(layer.lora_A[adapter_name].parameters()) + list(layer.lora_B[adapter_name].parameters())
    return params


def set_lora_enabled(denoiser: Denoiser, enabled: bool, adapter_name: str | None = None) -> None:
    """Switch one adapter (every adapter when `adapter_name` is None) on or off, leaving the others on the same
    layers as they are (a DiT's motion and spatial LoRAs share layers) and which parameters are trainable."""
    for layer in lora_layers(denoiser, adapter_name):
        flags = [p.requires_grad for p in layer.parameters()]
        if adapter_name is None:
            layer.enable_adapters(enabled)
        else:
            active = [] if layer.disable_adapters else [a for a in layer.active_adapters if a != adapter_name]
            active = sorted(active + [adapter_name]) if enabled else active
            if active:
                layer.enable_adapters(True)
                layer.set_adapter(active)
            else:
                layer.enable_adapters(False)
        for p, flag in zip(layer.parameters(), flags):  # peft flips requires_grad on switching; keep ours
            p.requires_grad_(flag)


class FusedLora:
    """An adapter folded into its base weights for sampling: W + delta computed once per layer.

    peft's own merge/unmerge adds and subtracts the delta, which leaves rounding error in W after a
    round trip; here both weight tensors are kept and swapped, so switching (PLI) is exact both ways.
    The peft layers stay in the model with the adapter switched off, so they add no LoRA matmuls.
    """

    def __init__(self, denoiser: Denoiser, adapter_names: str | list[str] = MOTION):
        names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        self.layers = []
        with torch.no_grad():
            for layer in lora_layers(denoiser):
                mine = [n for n in names if n in layer.lora_A]
                if not mine:
                    continue
                plain = layer.get_base_layer().weight.data
                merged = plain + sum(layer.get_delta_weight(n) for n in mine).to(plain.dtype)
                self.layers.append((layer.get_base_layer(), plain, merged))
        for name in names:
            set_lora_enabled(denoiser, False, name)
        self.set(True)

    def set(self, on: bool) -> None:
        for base, plain, merged in self.layers:
            base.weight.data = merged if on else plain


@contextlib.contextmanager
def lora_disabled(denoiser: Denoiser, adapter_name: str | None = None) -> Iterator[None]:
    set_lora_enabled(denoiser, False, adapter_name)
    try:
        yield
    finally:
        set_lora_enabled(denoiser, True, adapter_name)


def set_lora_scale(denoiser: Denoiser, scale: float, adapter_name: str = MOTION) -> None:
    """Multiply the adapter's alpha/r scaling by `scale` (the --lora-scale of generation)."""
    for layer in lora_layers(denoiser, adapter_name):
        layer.set_scale(adapter_name, scale)


def lora_state_dict(denoiser: Denoiser, adapter_name: str) -> dict[str, torch.Tensor]:
    """peft keys without the adapter name: '<module>.lora_A.weight', contiguous and on the CPU."""
    state = get_peft_model_state_dict(denoiser, adapter_name=adapter_name)
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def _write_weights(folder: Path, state: dict[str, torch.Tensor], config: LoraConfig, family) -> None:
    """diffusers' own writer for the family's pipeline: keys prefixed 'unet.' or 'transformer.'."""
    import diffusers

    pipeline_cls = getattr(diffusers, family.pipeline_class)
    metadata = config.to_dict()
    metadata["target_modules"] = sorted(metadata["target_modules"])
    pipeline_cls.save_lora_weights(
        str(folder),
        weight_name=WEIGHTS_NAME,
        **{f"{family.denoiser}_lora_layers": state, f"{family.denoiser}_lora_adapter_metadata": metadata},
    )


def save_lora_folder(
    denoiser: Denoiser,
    folder: str | os.PathLike,
    record: LoraRecord,
    configs: dict[str, LoraConfig],
) -> Path:
    """Write the motion LoRA (and the spatial LoRA, if any) into `folder`.

    Files are written into a temporary folder beside it and renamed into place one by one, with
    motionsep.json last: a kill mid-write never leaves a truncated file under a final name.
    """
    folder = Path(folder)
    family = family_of(denoiser)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".saving-", dir=folder))
    try:
        lora_config: dict = {}  # none: a method whose motion lives in parts alone (parts.py)
        if MOTION in configs:
            _write_weights(tmp, lora_state_dict(denoiser, MOTION), configs[MOTION], family)
            lora_config = {k: v for k, v in configs[MOTION].to_dict().items() if k in _LORA_CONFIG_KEYS}
            lora_config["target_modules"] = sorted(configs[MOTION].target_modules or ())
        if SPATIAL in configs:
            (tmp / "spatial").mkdir()
            _write_weights(tmp / "spatial", lora_state_dict(denoiser, SPATIAL), configs[SPATIAL], family)
        record = dataclasses.replace(record, family=family.name, lora_config=lora_config)
        (tmp / METADATA_NAME).write_text(record.to_json(), encoding="utf-8")
        for name in (f"spatial/{WEIGHTS_NAME}", WEIGHTS_NAME, METADATA_NAME):
            if (tmp / name).is_file():
                (folder / name).parent.mkdir(exist_ok=True)
                readable_as_other_files(tmp / name)
                os.replace(tmp / name, folder / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


_LORA_CONFIG_KEYS = ("r", "lora_alpha", "lora_dropout", "target_modules", "bias")


def read_lora_record(folder: str | os.PathLike) -> LoraRecord:
    folder = Path(folder)
    if not folder.is_dir():
        raise MotionsepError(f"LoRA folder '{folder}' does not exist")
    meta_path = folder / METADATA_NAME
    if not meta_path.is_file():
        raise MotionsepError(
            f"'{folder}' has no {METADATA_NAME}: it is not a motionsep LoRA (load other LoRAs with diffusers' "
            "load_lora_weights)"
        )
    try:
        text = meta_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MotionsepError(f"'{meta_path}' is corrupt ({exc}): retrain or restore the LoRA folder") from None
    return LoraRecord.from_json(text, meta_path, tuple(FAMILIES))


def read_lora_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors LoRA file; pickles are never opened, so nothing in a weight file executes."""
    path = Path(path)
    if not path.is_file():
        pickles = [p.name for p in path.parent.glob("*") if p.suffix in PICKLE_SUFFIXES]
        if pickles:
            raise MotionsepError(
                f"'{path.parent}' holds only pickled weights ({pickles[0]}), which can run code when loaded: "
                "motionsep reads safetensors only; convert them with safetensors.torch.save_file"
            )
        raise MotionsepError(f"LoRA weights '{path}' are missing: retrain or restore the LoRA folder")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise MotionsepError(
            f"LoRA weights '{path}' are corrupt or not safetensors ({exc}): retrain or restore them"
        ) from None


def set_lora_weights(denoiser: Denoiser, weights: dict[str, torch.Tensor], adapter_name: str, source: Path) -> None:
    """Put saved diffusers-format weights ('unet.' or 'transformer.'-prefixed peft keys) into an injected adapter."""
    prefix = family_of(denoiser).denoiser + "."
    state = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
    if not state:
        raise MotionsepError(
            f"LoRA weights in '{source}' hold no '{prefix}' keys: not a LoRA for this model's {prefix[:-1]}"
        )
    result = set_peft_model_state_dict(denoiser, state, adapter_name=adapter_name)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise MotionsepError(f"LoRA '{source}' does not fit this UNet: unexpected key '{unexpected[0]}'")


def load_appearance_lora(pipe, denoiser: Denoiser, path: str | os.PathLike, adapter_name: str) -> None:
    """Add a LoRA made by another trainer (an image or appearance LoRA in diffusers format) as `adapter_name`,
    keeping every adapter already there active.

    Where the denoiser has diffusers' PEFT integration (AnimateDiff's UNetMotionModel, Wan), through the
    pipeline's own `load_lora_weights`, which also reads kohya-style SD1.5 files; otherwise (ModelScope's
    UNet3DConditionModel has none) peft-format keys are injected with peft, the config read from the keys.
    """
    path = Path(path)
    file = path / WEIGHTS_NAME if path.is_dir() else path
    weights = read_lora_weights(file)  # before touching the model: a bad file changes nothing
    if hasattr(denoiser, "load_lora_adapter") and hasattr(pipe, "load_lora_weights"):
        try:
            with warnings.catch_warnings():  # several adapters in one model is what we want here
                warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
                pipe.load_lora_weights(str(file), adapter_name=adapter_name)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise MotionsepError(f"LoRA '{path}' does not fit this model: {str(exc).splitlines()[0]}") from None
        if not lora_layers(denoiser, adapter_name) and not _loaded_into_text_encoder(pipe, adapter_name):
            # diffusers skips keys it does not recognise: a LoRA of another family would change nothing
            first = next(iter(weights), "no keys")
            raise MotionsepError(
                f"LoRA '{path}' changes nothing in this {family_of(denoiser).name} model: none of its keys (e.g. "
                f"'{first}') names a layer of it; was it made for another model family?"
            )
        names = sorted({name for layer in lora_layers(denoiser) for name in layer.lora_A})
        for layer in lora_layers(denoiser):  # diffusers activates the new adapter alone; keep the motion LoRAs on
            layer.set_adapter(names)
        denoiser.requires_grad_(False)
    else:
        prefix = family_of(denoiser).denoiser + "."
        keys = [k[len(prefix) :] for k in weights if k.startswith(prefix) and ".lora_A." in k]
        if not keys:
            raise MotionsepError(
                f"LoRA '{path}' holds no '{prefix}'-prefixed peft keys (lora_A / lora_B): convert it to the diffusers "
                "format first"
            )
        modules = sorted({k.split(".lora_A.")[0] for k in keys})
        rank = int(weights[prefix + keys[0]].shape[0])
        add_lora(denoiser, make_lora_config(modules, rank, None, 0.0), adapter_name)
        set_lora_weights(denoiser, weights, adapter_name, path)
    denoiser.train(denoiser.training)


def _loaded_into_text_encoder(pipe, adapter_name: str) -> bool:
    encoder = getattr(pipe, "text_encoder", None)
    return encoder is not None and adapter_name in (getattr(encoder, "peft_config", None) or {})


def load_motion_lora(denoiser: Denoiser, folder: str | os.PathLike, adapter_name: str = MOTION) -> LoraRecord:
    """Load a motionsep LoRA folder onto `denoiser` with peft; returns its record."""
    folder = Path(folder)
    meta = read_lora_record(folder)
    family = family_of(denoiser)
    if meta.family != family.name:
        raise MotionsepError(
            f"LoRA '{folder}' was trained for the {meta.family} family but the model is {family.name} "
            f"({family.denoiser_class}): use a base model of the family it was trained on"
        )
    if not meta.lora_config:  # a method whose motion lives in parts alone: nothing to inject
        return meta
    weights = read_lora_weights(folder / WEIGHTS_NAME)  # before injecting: a bad file changes nothing
    add_lora(denoiser, LoraConfig(**meta.lora_config), adapter_name)
    set_lora_weights(denoiser, weights, adapter_name, folder)
    # peft creates the new layers (their dropout included) in training mode: follow the UNet's mode,
    # or an eval-mode pipeline would sample with LoRA dropout on
    denoiser.train(denoiser.training)
    return meta
