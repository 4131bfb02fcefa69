"""The LoRA folder's ``motionsep.json``: one typed record, written by training and read by generation.

It says what the LoRA is (family, method, targets), how it was trained (base model, steps, the whole
training config) and how to sample it by default (Appearance Highway settings, PLI tau, frames and
size). ``format`` is its version: a file of an unknown version is refused with a clear message
instead of being half-read.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import HighwaySettings
from .errors import MotionsepError

FORMAT = "motionsep-lora/1"
METADATA_NAME = "motionsep.json"
# `expert: both` (Wan 2.2 A14B): one LoRA folder an expert, inside the run's folder, named as the Wan 2.2 trainers
# and ComfyUI's nodes name them
EXPERT_FOLDERS = {"high": "high_noise", "low": "low_noise"}


def expert_pair(folder: str | Path) -> list[Path] | None:
    """The two LoRA folders of an `expert: both` run's folder (high noise first); None for any other folder."""
    folders = [Path(folder) / name for name in EXPERT_FOLDERS.values()]
    return folders if all((f / METADATA_NAME).is_file() for f in folders) else None


@dataclass
class LoraRecord:
    family: str
    method: str
    base_model: str
    motionsep_version: str
    targets: dict[str, list[str]]  # {"temporal": [...], "spatial": [...]}: the preset's target names
    lora_layers: dict[str, int]  # how many layers each path's LoRA has
    appearance_highway: HighwaySettings
    pli_tau: int | None  # the generation default; None: PLI off
    steps: int
    num_frames: int
    size: list[int]  # height, width of the training clips
    # the heads of each self-attention the LoRA changes (Method.head_fraction); None: every head
    heads: dict[str, list[int]] | None = None
    parts: list[str] = field(default_factory=list)  # parts.PARTS saved beside the LoRA, by name
    # of a model with two experts (Wan 2.2 A14B): the one the LoRA belongs on, "high" or "low"; None: one denoiser
    expert: str | None = None
    lora_config: dict[str, Any] = field(default_factory=dict)  # peft LoraConfig of the motion LoRA
    train_config: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, default=str)

    @classmethod
    def from_json(cls, text: str, where: Path, families: tuple[str, ...]) -> LoraRecord:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MotionsepError(f"'{where}' is corrupt ({exc}): retrain or restore the LoRA folder") from None
        version = data.get("format") if isinstance(data, dict) else None
        if isinstance(version, str) and version.startswith("motionsep-lora/") and version != FORMAT:
            raise MotionsepError(
                f"'{where}' is format {version}, which this motionsep ({FORMAT}) does not read: upgrade motionsep"
            )
        if version != FORMAT or data.get("family") not in families:
            raise MotionsepError(f"'{where}' is not a {FORMAT} file: retrain or restore the LoRA folder")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(n for n in names if n not in data and _required(cls, n))
        if missing:
            raise MotionsepError(f"'{where}' lacks {', '.join(missing)}: retrain or restore the LoRA folder")
        values = {k: v for k, v in data.items() if k in names}
        values["appearance_highway"] = HighwaySettings(**data["appearance_highway"])
        return cls(**values)


def _required(cls, name: str) -> bool:
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
