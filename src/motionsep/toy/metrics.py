"""Scores of generated shapes-world videos: motion, appearance and appearance leakage.

Leakage on a *named* attribute (shape, colour, background) is the share of generations that show
the reference clips' value although the prompt asked for another. Leakage on an *unnamed*
attribute (size, window) is the share showing the reference's value minus the share the base
model shows for the same prompts and seeds: the rise over the model's own prior. Every share comes
with a 95% interval (Wilson for shares, a normal interval on paired differences for rises).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .evaluate import trajectory_error
from .world import UNNAMED, Scene, offsets

NAMED = ("shape", "colour", "background")


def wilson(hits: int, n: int, z: float = 1.96) -> list[float]:
    if n == 0:
        return [0.0, 1.0]
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def share(flags: list[bool]) -> dict:
    n = len(flags)
    hits = int(sum(flags))
    return {"value": round(hits / n, 4) if n else 0.0, "ci95": wilson(hits, n), "n": n}


def paired_rise(flags: list[bool], base_flags: list[bool]) -> dict:
    """Mean of (flag - base flag) over paired generations, with a normal 95% interval."""
    d = np.asarray(flags, float) - np.asarray(base_flags, float)
    n = len(d)
    mean = float(d.mean()) if n else 0.0
    half = 1.96 * float(d.std(ddof=1)) / math.sqrt(n) if n > 1 else 1.0
    return {"value": round(mean, 4), "ci95": [round(mean - half, 4), round(mean + half, 4)], "n": n}


def mean_ci(values: list[float], digits: int = 3) -> dict:
    """Mean with a normal 95% interval (nan half-width for a single value)."""
    v = np.asarray(values, float)
    mean = float(v.mean())
    half = 1.96 * float(v.std(ddof=1)) / math.sqrt(len(v)) if len(v) > 1 else float("nan")
    return {"value": round(mean, digits), "ci95": [round(mean - half, digits), round(mean + half, digits)], "n": len(v)}


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
            [trajectory_error(p["trajectory"], offsets(s.motion)) for p, s in zip(predictions, prompts)]
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
