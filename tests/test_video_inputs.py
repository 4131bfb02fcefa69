"""Clips in every shape a user may bring: read correctly or refused with one clear line."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest

from motionsep.data import find_clips
from motionsep.errors import MotionsepError
from motionsep.video import read_video, write_mp4


def encode(path, frames: np.ndarray, codec: str, pix_fmt: str, in_fmt: str = "rgb24", pts=None):
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=8)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        stream.time_base = fractions.Fraction(1, 1000)
        for i, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format=in_fmt)
            video_frame.pts = pts[i] if pts is not None else i * 125
            video_frame.time_base = stream.time_base
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def gradient(n: int, h: int, w: int, channels: int = 3) -> np.ndarray:
    frames = np.zeros((n, h, w, channels), np.uint8)
    for i in range(n):
        frames[i, ..., 0] = (np.arange(w) * 255 // max(1, w - 1))[None, :]
        frames[i, ..., 1] = i * 20
        if channels == 4:
            frames[i, ..., 3] = 128
    return frames


def test_portrait_clip_is_resized_and_center_cropped(tmp_path):
    path = write_mp4(gradient(9, 64, 32), tmp_path / "portrait.mp4")
    frames = read_video(path, 8, 1, (16, 16))
    assert frames.shape == (8, 16, 16, 3)
    assert frames[0, :, 0, 0].mean() < frames[0, :, -1, 0].mean()  # left-to-right gradient kept


def test_one_pixel_clip(tmp_path):
    path = encode(tmp_path / "dot.mkv", np.full((4, 1, 1, 3), 200, np.uint8), "ffv1", "bgr0")
    frames = read_video(path, 4, 1, (8, 8))
    assert frames.shape == (4, 8, 8, 3) and abs(int(frames.mean()) - 200) <= 2


def test_4k_clip_is_downscaled_while_decoding(tmp_path):
    path = encode(tmp_path / "uhd.mp4", gradient(3, 2160, 3840), "libx264", "yuv420p")
    frames = read_video(path, 3, 1, (32, 48))
    assert frames.shape == (3, 32, 48, 3)


def test_grayscale_and_alpha_clips(tmp_path):
    gray = encode(tmp_path / "gray.mkv", gradient(4, 16, 16)[..., :1].copy(), "ffv1", "gray", in_fmt="gray")
    assert read_video(gray, 4, 1, (16, 16)).shape == (4, 16, 16, 3)
    alpha = encode(tmp_path / "alpha.mov", gradient(4, 16, 16, 4), "png", "rgba", in_fmt="rgba")
    assert read_video(alpha, 4, 1, (16, 16)).shape == (4, 16, 16, 3)


def test_variable_frame_rate_clip_reads_every_frame(tmp_path):
    pts = [0, 40, 200, 230, 500, 900, 950, 1300]
    path = encode(tmp_path / "vfr.mkv", gradient(8, 16, 16), "ffv1", "bgr0", pts=pts)
    frames = read_video(path, 8, 1, (16, 16))
    assert [int(f[..., 1].mean()) for f in frames] == [i * 20 for i in range(8)]


def test_spaces_and_non_ascii_in_paths(tmp_path):
    folder = tmp_path / "clips für Ünïcode 動き"
    folder.mkdir()
    path = write_mp4(gradient(8, 16, 16), folder / "my clip é.mp4")
    assert find_clips(folder) == [path]
    assert read_video(path, 8).shape[0] == 8


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_files_are_refused(tmp_path, damage):
    path = write_mp4(gradient(12, 32, 32), tmp_path / "clip.mp4")
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 3], "garbage": b"\x00\x01nope" * 500, "empty": b""}[damage])
    with pytest.raises(MotionsepError) as info:
        read_video(path, 8)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_zero_frame_video(tmp_path):
    path = tmp_path / "none.mkv"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("ffv1", rate=8)
        stream.width = stream.height = 16
        stream.pix_fmt = "bgr0"
        container.start_encoding()  # header written, no frame follows
    with pytest.raises(MotionsepError, match="has no frames"):
        read_video(path, 8)


def test_folder_without_videos(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(MotionsepError, match="holds no videos"):
        find_clips(tmp_path)
