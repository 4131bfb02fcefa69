"""Scores of generated shapes-world videos: motion, appearance and appearance leakage.

Leakage on a *named* attribute (shape, colour, background) is the share of generations that show
the reference clips' value although the prompt asked for another. Leakage on an *unnamed*
attribute (size, window) is the share showing the reference's value minus the share the base
model shows for the same prompts and seeds: the rise over the model's own prior. Every share comes
with a 95% interval (Wilson for shares, a normal interval on paired differences for rises).
"""

from __future__ import annotations

from typing import Any

from ..stats import mean_ci, paired_rise, share, wilson
from .evaluate import trajectory_error
from .world import UNNAMED, Scene, offsets

NAMED = ("shape", "colour", "background")
__all__ = ["NAMED", "mean_ci", "paired_rise", "score", "share", "wilson"]


def score(
    predictions: list[dict],
    prompts: list[Scene],
    reference: dict,
    base_predictions: list[dict] | None = None,
) -> dict:
    """The one scoring of shapes-world generations (demo, benchmarks): prediction i answers prompt i,
    whose motion is the target; `reference` holds the reference clips' attribute values."""
    result: dict[str, Any] = {
        "generations": len(predictions),
        "motion_accuracy": share([p["motion"] == s.motion for p, s in zip(predictions, prompts)]),
        "trajectory_error": mean_ci(
            [
                trajectory_error(p["trajectory"], offsets(s.motion, len(p["trajectory"])))
                for p, s in zip(predictions, prompts)
            ]
        ),
        "appearance_accuracy": {a: share([p[a] == getattr(s, a) for p, s in zip(predictions, prompts)]) for a in NAMED},
        "leakage": {a: share([p[a] == reference[a] for p in predictions]) for a in NAMED},
    }
    result["appearance_accuracy"]["all"] = share(
        [all(p[a] == getattr(s, a) for a in NAMED) for p, s in zip(predictions, prompts)]
    )
    for attribute in UNNAMED:
        flags = [p[attribute] == reference[attribute] for p in predictions]
        entry = {"share": share(flags)}
        if base_predictions is not None:
            base = [p[attribute] == reference[attribute] for p in base_predictions]
            entry["base_share"] = share(base)
            entry["rise"] = paired_rise(flags, base)
        result["leakage"][attribute] = entry
    return result
