"""Point tracks of a clip by optical flow, and DeT's tracking loss along them.

Tracks: Shi-Tomasi corners of the first frame followed through the clip with pyramidal Lucas-Kanade optical flow
in each colour channel (points lost on the way are dropped). Motion fidelity scores generated clips with them;
DeT's tracking loss supervises a DiT's features to stay the same along the reference clip's tracks (DeT tracks
points with CoTracker3; optical flow here, so the tracks exist for any clip a user films, not only for the shapes
world, whose renderer knows its ground truth).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

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
        p1, status, _ = cv2.calcOpticalFlowPyrLK(  # type: ignore[call-overload,unused-ignore]  # nextPts=None: typed since OpenCV 5
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


def _travel(tracks: np.ndarray) -> np.ndarray:
    """How far each track moves over the clip, in pixels: (tracks,)."""
    return np.linalg.norm(np.diff(tracks, axis=1), axis=-1).sum(-1)


def moving_tracks(tracks: np.ndarray) -> np.ndarray:
    """The tracks that travel at least MOVING_PX pixels over the clip."""
    if len(tracks) == 0:
        return tracks
    return tracks[_travel(tracks) >= MOVING_PX]


def reference_tracks(frames: np.ndarray, max_tracks: int = 64) -> np.ndarray:
    """The `max_tracks` tracks of a uint8 clip (F, H, W, 3) that travel farthest, of those that move at all
    (every track if none does): the loss is about motion, and a still background would only ask the features to
    stay still. (tracks, frames, 2) as (x, y) in pixels."""
    tracks = point_tracks(frames)
    if len(tracks) == 0:
        height, width = frames.shape[1:3]
        return np.array([[[width / 2, height / 2]] * len(frames)], np.float32)  # no texture: the centre stays
    travel = _travel(tracks)
    order = np.argsort(-travel, kind="stable")
    if (travel >= MOVING_PX).any():
        order = order[travel[order] >= MOVING_PX]
    return tracks[order[:max_tracks]]


def latent_tracks(tracks: np.ndarray, size: tuple[int, int], latent_frames: int, per_latent: int, count: int):
    """Tracks in the denoiser's grid: for latent frame i, the position in frame min(i x per_latent, F - 1) (a
    causal video VAE's latent frame i > 0 ends with that frame), as grid_sample coordinates in [-1, 1];
    repeated to `count` tracks so clips stack. (count, latent frames, 2) float32."""
    frames = tracks.shape[1]
    index = [min(i * per_latent, frames - 1) for i in range(latent_frames)]
    picked = tracks[:, index] / np.array([size[1], size[0]], np.float32) * 2 - 1
    repeats = -(-count // len(picked))
    return torch.from_numpy(np.tile(picked, (repeats, 1, 1))[:count].astype(np.float32))


def tracking_loss(features: torch.Tensor, tracks: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity of features at consecutive points of each track, averaged: zero when the features
    move with the tracks. features (B, C, T, h, w); tracks (B, N, T, 2) in [-1, 1]."""
    steps = features.shape[2]
    sampled = [
        F.grid_sample(features[:, :, t], tracks[:, :, t][:, :, None], align_corners=False)[..., 0]  # (B, C, N)
        for t in range(steps)
    ]
    along = torch.stack(sampled, dim=-1)  # (B, C, N, T)
    cosine = F.cosine_similarity(along[..., 1:], along[..., :-1], dim=1, eps=1e-6)
    return (1 - cosine).mean()
