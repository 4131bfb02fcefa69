"""Motion fidelity against reference clips from point tracks (OpenCV: `tracks.point_tracks`), scored as DMT does.

Score (DMT, "Diffusion Motion
Transfer"): for each moving generated track, the best match among the reference's moving tracks by
the mean cosine of their per-frame displacement vectors, averaged over generated tracks. 1 means
every generated track moves in step with some reference track; 0 means no relation; negative means
opposite motion. Clips of different lengths are compared on a common normalised time axis.
"""

from __future__ import annotations

import numpy as np

from .tracks import moving_tracks, point_tracks


def _displacements(tracks: np.ndarray, steps: int) -> np.ndarray:
    """Per-step displacement vectors on a normalised time axis: (tracks, steps, 2)."""
    t = np.linspace(0, tracks.shape[1] - 1, steps + 1)
    resampled = np.stack(
        [np.stack([np.interp(t, np.arange(tracks.shape[1]), tr[:, k]) for k in (0, 1)], -1) for tr in tracks]
    )
    return np.diff(resampled, axis=1)


def motion_fidelity(generated: np.ndarray, reference: np.ndarray) -> float:
    """DMT motion fidelity of a generated clip against one reference clip (frames as uint8 RGB)."""
    gen, ref = moving_tracks(point_tracks(generated)), moving_tracks(point_tracks(reference))
    if len(ref) == 0 or len(gen) == 0:
        return 0.0  # nothing moves in one of them: no motion is matched
    steps = min(generated.shape[0], reference.shape[0]) - 1
    g, r = _displacements(gen, steps), _displacements(ref, steps)
    g = g / np.maximum(np.linalg.norm(g, axis=-1, keepdims=True), 1e-6)
    r = r / np.maximum(np.linalg.norm(r, axis=-1, keepdims=True), 1e-6)
    cos = np.einsum("gtk,rtk->grt", g, r).mean(-1)  # (generated tracks, reference tracks)
    return float(cos.max(axis=1).mean())
