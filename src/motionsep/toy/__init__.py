"""The shapes world: a synthetic video world where every attribute is known, and its small model.

world.py     the renderer and captions         evaluate.py, metrics.py   the ground-truth evaluator, scores
protocol.py  sampling settings and looks       reference.py              reference clips and their config
pretrain.py, pretrain_animatediff.py            training the embedded models
quality.py, probing.py, validate.py             base-model quality, the probe's evaluator, the evaluator's check
model/, model_animatediff/                      the shipped pipelines (`--model toy`, `--model toy-animatediff`)
"""

from __future__ import annotations

from ..models import embedded_model_path

__all__ = ["embedded_model_path"]
