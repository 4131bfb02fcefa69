"""Motion fidelity against reference clips from point tracks (OpenCV), scored as DMT does.

Tracks: Shi-Tomasi corners of the first frame followed through the clip with pyramidal
Lucas-Kanade optical flow (points lost on the way are dropped). Score (DMT, "Diffusion Motion
Transfer"): for each moving generated track, the best match among the reference's moving tracks by
the mean cosine of their per-frame displacement vectors, averaged over generated tracks. 1 means
every generated track moves in step with some reference track; 0 means no relation; negative means
opposite motion. Clips of different lengths are compared on a common normalised time axis.
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_SIDE = 128  # small frames are upscaled so corners and flow have pixels to work with
MOVING_PX = 0.5  # a track must travel at least this far (in original pixels) to count


def _channels(frames: np.ndarray) -> tuple[list[np.ndarray], float]:
    """Each colour channel as a contrast-stretched 8-bit clip, upscaled so the short side is MIN_SIDE.

    Channels, not luminance: a red object on a brown background can have the background's gray
    level, and flow needs gradients.
    """
    h, w = frames.shape[1:3]
    scale = max(1.0, MIN_SIDE / min(h, w))
    size = (round(w * scale), round(h * scale))
    big = np.stack([cv2.resize(np.ascontiguousarray(f), size, interpolation=cv2.INTER_CUBIC) for f in frames]).astype(
        np.float32
    )
    out = []
    for c in range(3):
        lo, hi = float(big[..., c].min()), float(big[..., c].max())
        if hi - lo >= 8:  # a flat channel has nothing to track
            out.append(((big[..., c] - lo) * (255.0 / (hi - lo))).round().astype(np.uint8))
    return out, scale


def _track_clip(clip: np.ndarray, max_points: int) -> np.ndarray:
    points = cv2.goodFeaturesToTrack(clip[0], maxCorners=max_points, qualityLevel=0.01, minDistance=3)
    if points is None:
        return np.zeros((0, len(clip), 2), np.float32)
    track = [points.reshape(-1, 2)]
    alive = np.ones(len(points), bool)
    for prev, nxt in zip(clip, clip[1:]):
        p1, status, _ = cv2.calcOpticalFlowPyrLK(  # type: ignore[call-overload]  # nextPts=None is documented
            prev, nxt, track[-1].reshape(-1, 1, 2).astype(np.float32), None, winSize=(21, 21), maxLevel=3
        )
        alive &= status.reshape(-1).astype(bool)
        track.append(p1.reshape(-1, 2))
    return np.stack(track, axis=1)[alive]


def point_tracks(frames: np.ndarray, max_points: int = 200) -> np.ndarray:
    """(tracks, frames, 2) positions in original pixels of points followed through the whole clip,
    tracked in each colour channel."""
    channels, scale = _channels(np.asarray(frames))
    tracks = [_track_clip(c, max_points) for c in channels]
    tracks = [t for t in tracks if len(t)]
    if not tracks:
        return np.zeros((0, len(frames), 2), np.float32)
    return (np.concatenate(tracks) / scale).astype(np.float32)


def _displacements(tracks: np.ndarray, steps: int) -> np.ndarray:
    """Per-step displacement vectors on a normalised time axis: (tracks, steps, 2)."""
    t = np.linspace(0, tracks.shape[1] - 1, steps + 1)
    resampled = np.stack(
        [np.stack([np.interp(t, np.arange(tracks.shape[1]), tr[:, k]) for k in (0, 1)], -1) for tr in tracks]
    )
    return np.diff(resampled, axis=1)


def _moving(tracks: np.ndarray) -> np.ndarray:
    if len(tracks) == 0:
        return tracks
    travel = np.linalg.norm(np.diff(tracks, axis=1), axis=-1).sum(-1)
    return tracks[travel >= MOVING_PX]


def motion_fidelity(generated: np.ndarray, reference: np.ndarray) -> float:
    """DMT motion fidelity of a generated clip against one reference clip (frames as uint8 RGB)."""
    gen, ref = _moving(point_tracks(generated)), _moving(point_tracks(reference))
    if len(ref) == 0 or len(gen) == 0:
        return 0.0  # nothing moves in one of them: no motion is matched
    steps = min(generated.shape[0], reference.shape[0]) - 1
    g, r = _displacements(gen, steps), _displacements(ref, steps)
    g = g / np.maximum(np.linalg.norm(g, axis=-1, keepdims=True), 1e-6)
    r = r / np.maximum(np.linalg.norm(r, axis=-1, keepdims=True), 1e-6)
    cos = np.einsum("gtk,rtk->grt", g, r).mean(-1)  # (generated tracks, reference tracks)
    return float(cos.max(axis=1).mean())
