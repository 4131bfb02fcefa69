"""The shapes world: a synthetic video world where every attribute is known, and its small model.

world.py     the renderer and captions      evaluate.py   the ground-truth evaluator
pretrain.py  training the embedded base model from scratch
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MotionsepError

MODEL_DIR = Path(__file__).parent / "model"


def embedded_model_path() -> Path:
    """The shipped shapes-world pipeline folder (`--model toy`)."""
    if not (MODEL_DIR / "model_index.json").is_file():
        raise MotionsepError(
            "the embedded shapes-world model is not in this installation yet: build it with `motionsep toy pretrain`"
        )
    return MODEL_DIR
