"""The shapes world: a synthetic video world where every attribute is known, and its small model.

world.py     the renderer and captions      evaluate.py   the ground-truth evaluator
pretrain.py  training the embedded base model from scratch
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MotionsepError

MODEL_DIR = Path(__file__).parent / "model"
MODEL_DIRS = {"toy": MODEL_DIR, "toy-animatediff": Path(__file__).parent / "model_animatediff"}


def embedded_model_path(name: str = "toy") -> Path:
    """The shipped shapes-world pipeline folder (`--model toy` or `--model toy-animatediff`)."""
    folder = MODEL_DIRS[name]
    if not (folder / "model_index.json").is_file():
        family = "animatediff" if name == "toy-animatediff" else "modelscope"
        raise MotionsepError(
            f"the embedded model '{name}' is not in this installation yet: build it with `motionsep toy pretrain --family {family}`"
        )
    return folder
