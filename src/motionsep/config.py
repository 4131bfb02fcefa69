"""Training configuration as plain data: nested dataclasses read from YAML.

Every key is checked: an unknown key or a value of the wrong type is a MotionsepError that names
the closest valid key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import MotionsepError, closest


@dataclass
class NewScenes:
    """`data.augment: new-scenes`: copies of the clips in scenes the base model draws itself. `phrase` is the words
    of the captions that name the clips' scene; each copy replaces them by one of `prompts`, has the base model
    draw that caption, and paints the clip's object (found by the colour its caption names) over it."""

    phrase: str = ""  # e.g. "on a checker background"
    prompts: list[str] = field(default_factory=list)  # e.g. ["on a plain background", "on a stripes background"]
    steps: int = 30  # sampling steps and guidance of the drawn scenes
    guidance: float = 12.0
    # each copy's object scaled about its centre in every frame by a factor drawn from [low, high]: its size is
    # look, not motion (the path of its centre stays the clip's); [1, 1] keeps the clip's size
    object_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    # new objects as well as new scenes: `subject` is the captions' word for the clips' object (e.g. "square");
    # each copy names one of `subjects` instead, and the object the base model draws for it, cut from one of its
    # frames, is moved along the clip object's path (its centre, frame by frame). Empty: the clip's own object
    subject: str = ""
    subjects: list[str] = field(default_factory=list)
    # looks no copy may show, each the words a copy's caption may not hold all of (e.g. ["blue", "circle"]): keep
    # the looks of validation prompts out of training, so validation shows what leaks
    avoid: list[list[str]] = field(default_factory=list)


@dataclass
class DataConfig:
    path: str = ""  # one video file or a folder of clips
    caption: str | None = None  # None: a same-name .txt beside each clip
    frames: int = 16
    stride: int = 1
    size: list[int] = field(default_factory=lambda: [384, 384])  # height, width
    # appearance augmentation: this many recoloured copies of every clip train beside it (colour jitter alone:
    # flips and crops would change the motion); `jitter` is its strength, 0-1 (hue turned by up to jitter x 180
    # degrees, brightness, contrast and saturation scaled by up to 1 +- jitter / 2)
    augment_copies: int = 0
    jitter: float = 0.5
    # how the copies differ: recolour (one random colour map, the caption kept), swap-colours (the caption's first
    # colour word turned into another colour, in the pixels near it and in the words, so the caption stays true;
    # recolour where the caption names no colour), swap-scene (swap-colours, and the rest of the scene recoloured
    # by one random map, its patterns kept), new-scenes (swap-colours over scenes the base model draws: new_scenes)
    # or recompose (the moving foreground and the static background
    # recoloured apart, the background often replaced, the foreground grown or shrunk; the caption kept)
    augment: str = "recolour"
    # swap-colours, swap-scene: the colour words they read and write, name: [r, g, b]; empty: English's basic
    # colour terms
    colour_words: dict[str, list[int]] = field(default_factory=dict)
    new_scenes: NewScenes = field(default_factory=NewScenes)
    # cyclic motions filmed from any point: each clip's window of `frames` starts where its motion (optical flow)
    # best matches the first clip's, so every clip shows the cycle from the same phase (needs clips longer
    # than `frames`); false: every clip from its first frame, with a warning when their motions are out of phase
    align_phase: bool = False


@dataclass
class LoraSettings:  # not peft's LoraConfig: what the user sets, turned into peft configs per path by train.py
    targets: list[str] | None = None  # temporal targets; None: the method's own
    rank: int = 32
    alpha: float | None = None  # None: equal to rank (scale 1, as MotionDirector and the release)
    dropout: float = 0.1


HIGHWAY_BLOCK_CHOICES = ("deepest", "all")
HIGHWAY_SCALE = 1.1  # beta on the rerouted skips: the authors' release


@dataclass
class HighwaySettings:
    """The Appearance Highway, one type for the config section, the LoRA folder's record and the hooks."""

    enabled: bool | None = None  # None: the method's default
    blocks: str | list[int] = "deepest"  # "deepest", "all" or indices of down blocks
    scale: float = HIGHWAY_SCALE
    during_training: bool = False
    first_skip_from_conv_in: bool = False  # ModelScope: take the very first skip before transformer_in

    def check(self, where: str = "appearance_highway.blocks") -> None:
        if isinstance(self.blocks, str) and self.blocks not in HIGHWAY_BLOCK_CHOICES:
            raise MotionsepError(
                f"{where} must be 'deepest', 'all' or a list of indices{closest(self.blocks, HIGHWAY_BLOCK_CHOICES)}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ValidationConfig:
    """Samples during training (`train.validation`): videos for these prompts and seeds every `every` steps and
    at the end, made exactly as `motionsep generate` makes them from the checkpoint of that step."""

    prompts: list[str] = field(default_factory=list)  # empty: no validation samples
    seeds: list[int] = field(default_factory=lambda: [0])
    every: int = 0  # 0: at the end only
    steps: int = 30  # sampling steps and guidance, as `generate --steps --guidance`
    guidance: float = 12.0
    num_frames: int | None = None  # None: the training clips' length and size
    height: int | None = None
    width: int | None = None
    # an image-to-video model's first frame for every sample; None: the first training clip's first frame
    image: str | None = None


@dataclass
class MemoryConfig:
    """How the frozen base is held while the LoRA trains (what fits a card: docs/usage.md)."""

    # the frozen base's weights stored in float8 (e4m3) and cast up layer by layer as they compute (diffusers'
    # enable_layerwise_casting); the LoRA stays fp32
    fp8_base: bool = False
    # the text encoder's linear layers stored in float8 while it caches the captions (Wan's UMT5-XXL: 11.4 GB in
    # bf16, 6.7 GB so); the captions' embeddings then differ a little from full precision, as musubi-tuner's fp8_t5
    fp8_text_encoder: bool = False


@dataclass
class OptimConfig:
    steps: int = 300
    learning_rate: float = 5e-4
    weight_decay: float = 1e-2
    batch_size: int = 1
    seed: int = 0
    gradient_checkpointing: bool = False
    mixed_precision: str = "no"  # "no", "fp16" or "bf16"
    checkpoint_every: int = 100
    spatial_skip_probability: float = 0.2  # dual-path methods: temporal steps without the spatial LoRA
    # the motion LoRA's loss: "standard" (the model's objective on every frame) or "across-frames" (the same on
    # prediction and target minus their mean over frames: what every frame shares, the static look, then gives
    # no gradient; after VMC's motion distillation on frame residuals); "auto": the family's default (Wan:
    # across-frames, the U-Nets and CogVideoX: standard)
    loss: str = "auto"
    gradient_accumulation_steps: int = 1  # batches a step; the effective batch is batch_size times this
    max_grad_norm: float = 0.0  # clip the LoRA gradients' norm to this (0: no clipping, the release's choice)
    lr_scheduler: str = "constant"  # diffusers.optimization.get_scheduler: constant, linear, cosine, ...
    lr_warmup_steps: int = 0
    log_with: list[str] = field(default_factory=list)  # accelerate trackers: tensorboard, wandb, ... (installed)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)


@dataclass
class TrainConfig:
    model: str = ""
    motion_adapter: str | None = None  # AnimateDiff: a MotionAdapter folder when `model` is an SD1.5 pipeline
    method: str = "auto"  # a preset of methods.METHODS; "auto": the family's default (Wan: full-lora, else tap)
    output_dir: str = "runs/motion-lora"
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    appearance_highway: HighwaySettings = field(default_factory=HighwaySettings)
    pli_tau: int | None = None  # stored as the generation default; None: PLI off
    # a model with two experts (Wan 2.2 A14B): the one the motion LoRA trains on, over its own timesteps: "high"
    # (`transformer`, t >= the boundary: it lays out the video, where motion is decided) or "low"
    # (`transformer_2`, below it: detail); one expert a run, as diffusion-pipe trains and kohya advises; "both":
    # the high-noise expert's LoRA, then the low-noise one's, in OUTPUT_DIR/high_noise and OUTPUT_DIR/low_noise
    expert: str = "high"
    train: OptimConfig = field(default_factory=OptimConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(hint) or (Any, Any)
        return isinstance(value, dict) and all(_type_ok(k, key) and _type_ok(v, item) for k, v in value.items())
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _accepts_float(hint: Any) -> bool:
    return hint is float or (
        typing.get_origin(hint) in (typing.Union, types.UnionType) and float in typing.get_args(hint)
    )


def _yaml11_number(value: Any, hint: Any) -> Any:
    """A float written as `1e-3` or `5e-4`: YAML 1.1 (PyYAML) reads an exponent without a dot as a string, though
    every other YAML reader and Python take it as a number."""
    if isinstance(value, str) and _accepts_float(hint):
        try:
            return float(value.strip())
        except ValueError:
            return value
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise MotionsepError(f"config section '{where or 'top level'}' must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise MotionsepError(f"unknown config key '{full}'{closest(str(key), names)}")
        hint = hints[key]
        value = _yaml11_number(value, hint)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, full)
        elif not _type_ok(value, hint):
            want = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
            raise MotionsepError(f"config key '{full}' must be {want}, got {value!r}")
        else:
            kwargs[key] = float(value) if hint is float and isinstance(value, int) else value
    return cls(**kwargs)


def set_dotted(data: dict, assignment: str) -> None:
    """Apply one `--set key.sub=value` override; the value is parsed as YAML (numbers, lists, null)."""
    if "=" not in assignment:
        raise MotionsepError(f"--set needs key=value, got '{assignment}'")
    key, raw = assignment.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise MotionsepError(f"--set {key}: '{part}' is not a section")
    node[parts[-1]] = value


def config_from_dict(data: dict, overrides: Sequence[str] = ()) -> TrainConfig:
    data = dict(data or {})
    for assignment in overrides:
        set_dotted(data, assignment)
    config = _build(TrainConfig, data, "")
    validate(config)
    return config


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise MotionsepError(f"config file '{path}' does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise MotionsepError(f"config '{path}' is not valid YAML{at}: {problem}") from None
    return config_from_dict(data, overrides)


def _check_schedule(train: OptimConfig) -> None:
    from diffusers.optimization import SchedulerType

    names = [t.value for t in SchedulerType]
    if train.lr_scheduler not in names:
        raise MotionsepError(
            f"train.lr_scheduler '{train.lr_scheduler}' is unknown{closest(train.lr_scheduler, names)}"
        )
    if train.gradient_accumulation_steps < 1 or train.lr_warmup_steps < 0 or not train.max_grad_norm >= 0:
        raise MotionsepError(
            "train.gradient_accumulation_steps must be at least 1, train.lr_warmup_steps and train.max_grad_norm 0 or "
            "more"
        )


EXPERTS = ("high", "low", "both")
AUGMENTATIONS = ("recolour", "swap-colours", "swap-scene", "new-scenes", "recompose")
LOSSES = ("standard", "across-frames")
AUTO = "auto"  # `method` and `train.loss`: the family's default (Family.default_method, .default_loss)


def _check_augmentation(data: DataConfig) -> None:
    if data.augment not in AUGMENTATIONS:
        raise MotionsepError(f"data.augment '{data.augment}' is unknown{closest(data.augment, AUGMENTATIONS)}")
    for word, rgb in data.colour_words.items():
        if not (isinstance(rgb, list) and len(rgb) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in rgb)):
            raise MotionsepError(f"data.colour_words.{word} must be [r, g, b] of integers 0-255, got {rgb}")
    if len(data.colour_words) == 1:
        raise MotionsepError("data.colour_words names one colour: give at least two (or none for the basic terms)")
    scenes = data.new_scenes
    if data.augment == "new-scenes" and data.augment_copies and not (scenes.phrase and scenes.prompts):
        raise MotionsepError(
            "data.augment is new-scenes: set data.new_scenes.phrase (the captions' words for their scene) and "
            "data.new_scenes.prompts (words for other scenes)"
        )
    scale = scenes.object_scale
    if not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 4):
        raise MotionsepError(f"data.new_scenes.object_scale must be [low, high] with 0 < low <= high <= 4, got {scale}")
    if bool(scenes.subject) != bool([s for s in scenes.subjects if s != scenes.subject]):
        raise MotionsepError(
            "data.new_scenes: set both subject (the captions' word for the clips' object) and subjects (other "
            "objects' words), or neither"
        )


def validate(config: TrainConfig) -> None:
    """Checks that need more than types. Method and target names are checked by methods.resolve_method when
    training starts (the config is plain data and knows no presets)."""

    if not config.model:
        raise MotionsepError("config needs 'model': a diffusers pipeline folder, a hub id, or 'toy'")
    if not config.data.path:
        raise MotionsepError("config needs 'data.path': a video file or a folder of clips")
    if config.data.frames < 1 or config.data.stride < 1:
        raise MotionsepError("data.frames and data.stride must be at least 1")
    if config.data.augment_copies < 0 or not 0 <= config.data.jitter <= 1:
        raise MotionsepError("data.augment_copies must be 0 or more and data.jitter in [0, 1]")
    _check_augmentation(config.data)
    if config.expert not in EXPERTS:
        raise MotionsepError(f"expert '{config.expert}' is unknown{closest(config.expert, EXPERTS)}")
    if len(config.data.size) != 2 or min(config.data.size) < 8:
        raise MotionsepError(f"data.size must be [height, width] of at least 8 pixels, got {config.data.size}")
    if config.lora.rank < 1:
        raise MotionsepError(f"lora.rank must be at least 1, got {config.lora.rank}")
    if not 0 <= config.lora.dropout < 1:
        raise MotionsepError(f"lora.dropout must be in [0, 1), got {config.lora.dropout}")
    if config.train.mixed_precision not in ("no", "fp16", "bf16"):
        raise MotionsepError(
            "train.mixed_precision must be no, fp16 or "
            f"bf16{closest(config.train.mixed_precision, ['no', 'fp16', 'bf16'])}"
        )
    if config.train.steps < 1 or config.train.batch_size < 1:
        raise MotionsepError("train.steps and train.batch_size must be at least 1")
    _check_schedule(config.train)
    if config.train.loss not in (*LOSSES, AUTO):
        raise MotionsepError(f"train.loss '{config.train.loss}' is unknown{closest(config.train.loss, LOSSES)}")
    for key in ("learning_rate", "weight_decay"):
        value = getattr(config.train, key)
        if not math.isfinite(value) or value < 0 or (key == "learning_rate" and value == 0):
            least = "above 0, e.g. 5e-4" if key == "learning_rate" else "0 or more, e.g. 1e-2"
            raise MotionsepError(f"train.{key} must be a finite number {least}; got {value}")
    validation = config.train.validation
    if validation.prompts and (not validation.seeds or validation.every < 0 or validation.steps < 1):
        raise MotionsepError("train.validation needs at least one seed, every >= 0 (0: at the end only) and steps >= 1")
    if any(not p.strip() for p in validation.prompts):
        raise MotionsepError("train.validation.prompts holds an empty prompt: describe each video to sample")
    config.appearance_highway.check()
