"""Decoding and encoding video: PyAV for MP4, Pillow for GIF and contact sheets.

Frames are uint8 arrays shaped (frames, height, width, 3), RGB. PyAV is imported where a video is read or written,
not with the package: work that touches no video file (a cost bench on a GPU machine that lacks PyAV's 37 MB wheel)
runs without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .errors import MotionsepError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".gif", ".m4v")


def _fit_size(width: int, height: int, size: tuple[int, int]) -> tuple[int, int]:
    """Scale (width, height) so that it covers `size` (h, w) with the aspect ratio kept."""
    target_h, target_w = size
    scale = max(target_w / width, target_h / height)
    return max(target_w, round(width * scale)), max(target_h, round(height * scale))


def _center_crop(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    top = (frame.shape[0] - h) // 2
    left = (frame.shape[1] - w) // 2
    return frame[top : top + h, left : left + w]


def read_video(
    path: str | os.PathLike,
    num_frames: int | None = None,
    stride: int = 1,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Decode `num_frames` frames, every `stride`-th, resized to cover `size` and centre-cropped.

    Frames are scaled while decoding, so a 4K clip never sits in memory at full size.
    Raises MotionsepError for a missing, unreadable or too-short clip.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise MotionsepError(f"video '{path}' does not exist: check the path")
    if stride < 1:
        raise MotionsepError(f"frame stride must be at least 1, got {stride}")
    needed = None if num_frames is None else (num_frames - 1) * stride + 1
    frames: list[np.ndarray] = []
    decoded = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MotionsepError(f"'{path}' holds no video stream: give a video file")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if needed is not None and decoded >= needed:
                    break  # enough frames; the rest of the clip is never decoded
                if decoded % stride == 0:
                    if size is None:
                        rgb = frame.to_ndarray(format="rgb24")
                    else:
                        width, height = _fit_size(frame.width, frame.height, size)
                        rgb = _center_crop(frame.to_ndarray(format="rgb24", width=width, height=height), size)
                    frames.append(rgb)
                decoded += 1
    except MotionsepError:
        raise
    except av.error.EOFError:
        if not frames:  # a container with a video stream but not one frame in it
            raise MotionsepError(f"video '{path}' has no frames: re-encode it or remove it") from None
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MotionsepError(
            f"cannot decode video '{path}': {exc.__class__.__name__}: {exc}; re-encode it or remove it"
        ) from None
    if not frames:
        raise MotionsepError(f"video '{path}' has no frames: re-encode it or remove it")
    if num_frames is not None and len(frames) < num_frames:
        raise MotionsepError(
            f"clip '{path}' has {decoded} frames but {num_frames} frames at stride {stride} need {needed}: "
            f"lower data.frames or data.stride, or use a longer clip"
        )
    return np.stack(frames[:num_frames] if num_frames else frames)


def _even(frames: np.ndarray) -> np.ndarray:
    """H.264 with yuv420p needs even sides: repeat the last row/column where one is odd."""
    pad_h = frames.shape[1] % 2
    pad_w = frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frames


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: int = 8) -> Path:
    """Write uint8 RGB frames as an H.264 MP4 (yuv420p, plays everywhere)."""
    import av

    path = Path(path)
    frames = _even(np.asarray(frames, dtype=np.uint8))
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "medium"}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_gif(frames: np.ndarray, path: str | os.PathLike, fps: int = 8, min_side: int = 128) -> Path:
    """Write an endlessly looping GIF, upscaled (nearest) so tiny videos are visible."""
    path = Path(path)
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    scale = max(1, -(-min_side // min(images[0].size)))
    if scale > 1:
        images = [im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST) for im in images]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return path


def contact_sheet(rows: list[tuple[str, np.ndarray]], path: str | os.PathLike, cell: int = 96) -> Path:
    """One PNG: a labelled row of frames per video, frames left to right, each cell `cell` px high."""
    path = Path(path)
    label_h = 14
    ncols = max(len(frames) for _, frames in rows)
    h0, w0 = rows[0][1].shape[1:3]
    cell_w = max(1, round(cell * w0 / h0))
    sheet = Image.new("RGB", (ncols * cell_w, len(rows) * (cell + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, frames) in enumerate(rows):
        y = r * (cell + label_h)
        draw.text((2, y + 1), label[:160], fill="black")
        for c, frame in enumerate(frames):
            image = Image.fromarray(np.asarray(frame, dtype=np.uint8)).resize((cell_w, cell), Image.Resampling.NEAREST)
            sheet.paste(image, (c * cell_w, y + label_h))
    sheet.save(path)
    return path
