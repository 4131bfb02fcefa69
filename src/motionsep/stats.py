"""Shares and means with their 95% intervals, for every report motionsep writes."""

from __future__ import annotations

import math

import numpy as np


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
