"""Training checkpoints in safetensors (never pickle), written atomically.

A checkpoint folder holds the LoRA folder of that step plus training_state/: the optimizer's
moments, the RNG states (data order, noise, dropout) and state.json, written last, which marks
the checkpoint complete; a folder without it (a kill mid-write) is ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def readable_as_other_files(path: str | os.PathLike) -> None:
    """Give a file the permissions a file written with open() gets (0644 under the usual umask): safetensors
    creates its files 0600, which would hide a LoRA from the other users of a shared machine."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def atomic_save_file(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp))
    readable_as_other_files(tmp)
    os.replace(tmp, path)


def save_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    """Tensors as '<param index>.<key>' in safetensors; scalars and hyperparameters in a JSON sidecar."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value) and value.dim() > 0:
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = float(value)
    atomic_save_file(tensors, path)
    atomic_write_text(
        path.with_suffix(".json"), json.dumps({"scalars": scalars, "param_groups": state["param_groups"]})
    )


def load_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    tensors = load_file(str(path))
    side = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for name, value in side["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = torch.tensor(value)
    optimizer.load_state_dict({"state": state, "param_groups": side["param_groups"]})


def _rng_file(folder: Path, rank: int) -> Path:
    return folder / ("rng.safetensors" if rank == 0 else f"rng-{rank}.safetensors")


def save_rng_state(folder: Path, generator: torch.Generator, rank: int = 0) -> None:
    """One process's RNG streams (data and noise; dropout's global torch stream); each process writes its own."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save_file({"generator": generator.get_state(), "torch": torch.get_rng_state()}, _rng_file(folder, rank))


def save_training_state(folder: Path, optimizer: torch.optim.Optimizer, generator: torch.Generator, step: int) -> None:
    """The main process's part, written last: optimizer moments (the same in every process), its RNG streams,
    and state.json, which marks the checkpoint complete."""
    folder.mkdir(parents=True, exist_ok=True)
    save_optimizer(optimizer, folder / "optimizer.safetensors")
    save_rng_state(folder, generator, 0)
    atomic_write_text(folder / "state.json", json.dumps({"step": step}))


def load_training_state(
    folder: Path, optimizer: torch.optim.Optimizer, generator: torch.Generator, rank: int = 0
) -> int:
    load_optimizer(optimizer, folder / "optimizer.safetensors")
    rng = load_file(str(_rng_file(folder, rank)))
    generator.set_state(rng["generator"])
    torch.set_rng_state(rng["torch"])
    return json.loads((folder / "state.json").read_text(encoding="utf-8"))["step"]


def complete_checkpoints(folder: Path) -> list[tuple[Path, int]]:
    """The complete checkpoints under `folder` (step-NNNNNN/ with a readable training_state/state.json), newest
    first; a folder whose marker is missing or unreadable (a kill mid-write, a damaged disk) is left out."""
    found = []
    for candidate in folder.glob("step-*") if folder.is_dir() else []:
        try:
            step = json.loads((candidate / "training_state" / "state.json").read_text(encoding="utf-8"))["step"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.append((candidate, int(step)))
    return sorted(found, key=lambda c: -c[1])


def latest_checkpoint(folder: Path) -> tuple[Path, int] | None:
    """The newest complete checkpoint under `folder` (step-NNNNNN/ with training_state/state.json)."""
    found = complete_checkpoints(folder)
    return found[0] if found else None
