"""Video files: AVI (MJPG) and MP4 (mp4v) written here with OpenCV, read back through echoseg."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from echoseg.atomic import WriteError
from echoseg.errors import DataError
from echoseg.io.video import (
    read_video,
    read_video_frames,
    read_video_header,
    write_overlay_gif,
    write_overlay_video,
)

T, H, W, FPS = 12, 48, 64, 30.0
# BGR colours and their ITU-R 601 luma: 0.299 R + 0.587 G + 0.114 B
COLOURS = [((0, 0, 255), 76.2), ((0, 255, 0), 149.7), ((255, 0, 0), 29.1), ((90, 90, 90), 90.0)]


def _frames_bgr() -> np.ndarray:
    """T colour frames: a constant colour each (cycling COLOURS), with a white square moving."""
    frames = np.zeros((T, H, W, 3), np.uint8)
    for t in range(T):
        frames[t] = COLOURS[t % len(COLOURS)][0]
        frames[t, 8:24, 4 + 3 * t:20 + 3 * t] = 255
    return frames


def _write(path, codec: str, frames: np.ndarray, fps: float = FPS):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps,
                             (frames.shape[2], frames.shape[1]), True)
    if not writer.isOpened():
        pytest.skip(f"this OpenCV build cannot write {codec} video")
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(params=[("avi", "MJPG"), ("mp4", "mp4v"), ("mov", "mp4v")],
                ids=["avi-mjpg", "mp4-mp4v", "mov-mp4v"])
def video_file(request, tmp_path):
    ext, codec = request.param
    return _write(tmp_path / f"clip.{ext}", codec, _frames_bgr())


def test_round_trip_shape_fps_and_gray_values(video_file):
    video = read_video(video_file)
    assert video.frames.shape == (T, H, W) and video.frames.dtype == np.uint8
    assert video.fps == pytest.approx(FPS)
    assert video.frame_time_ms == pytest.approx(1000 / FPS)
    for t in range(T):
        background = video.frames[t, 32:, :].astype(float)  # the constant colour, as luma
        assert background.mean() == pytest.approx(COLOURS[t % len(COLOURS)][1], abs=4)
        square = video.frames[t, 11:21, 7 + 3 * t:17 + 3 * t].astype(float)
        assert square.mean() > 235  # white stays white, where the square moved to


def test_header_and_selected_frames_match_full_decode(video_file):
    full = read_video(video_file).frames
    shape, fps = read_video_header(video_file)
    assert shape == (T, H, W) and fps == pytest.approx(FPS)
    picked = read_video_frames(video_file, [7, 2, 7])
    assert sorted(picked) == [2, 7]
    for index, frame in picked.items():
        np.testing.assert_array_equal(frame, full[index])
    with pytest.raises(DataError, match=rf"{video_file.name}: frame {T} is beyond"):
        read_video_frames(video_file, [T])


def test_gray_video_stays_gray(tmp_path):
    ramp = np.tile(np.linspace(0, 255, W).astype(np.uint8), (T, H, 1))
    path = _write(tmp_path / "gray.avi", "MJPG", np.repeat(ramp[..., None], 3, axis=3))
    frames = read_video(path).frames
    assert np.abs(frames.astype(int) - ramp).mean() < 2


def test_truncated_file_is_one_line_error(tmp_path):
    path = _write(tmp_path / "clip.avi", "MJPG", _frames_bgr())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as err:
        read_video(path)
    message = str(err.value)
    assert message.startswith(f"{path}: cannot read video (") and "\n" not in message
    assert "truncated" in message or "not a video" in message


@pytest.mark.parametrize("content, reason", [
    (b"this is not a video" * 50, "not a video file"),
    (b"", "not a video file"),
])
def test_non_video_files(tmp_path, content, reason):
    path = tmp_path / "fake.avi"
    path.write_bytes(content)
    for read in (read_video, read_video_header):
        with pytest.raises(DataError, match=rf"^{path}: cannot read video \({reason}"):
            read(path)


def test_missing_folder_and_extension_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing.avi: cannot read video \(file not found\)"):
        read_video(tmp_path / "missing.avi")
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    with pytest.raises(DataError, match=r"a folder, not a file"):
        read_video_header(folder)
    other = tmp_path / "clip.mkv"
    other.write_bytes(b"x")
    with pytest.raises(DataError, match=r"unsupported extension '.mkv'"):
        read_video(other)


def test_declared_size_checked_against_limits(tmp_path, monkeypatch):
    path = _write(tmp_path / "clip.avi", "MJPG", _frames_bgr())
    monkeypatch.setenv("ECHOSEG_MAX_FRAMES", str(T - 1))
    with pytest.raises(DataError, match=rf"too many frames \({T}; at most {T - 1}"):
        read_video(path)
    monkeypatch.setenv("ECHOSEG_MAX_FRAMES", "2048")
    monkeypatch.setenv("ECHOSEG_MAX_SIDE", str(W - 1))
    with pytest.raises(DataError, match="image too large"):
        read_video_header(path)


def _labels(shape) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    labels[:, 10:30, 10:30] = 1  # LV: red
    labels[:, 10:30, 34:46] = 3  # LA: blue
    return labels


@pytest.mark.parametrize("name", ["overlay.avi", "overlay.mp4"])
def test_overlay_video_round_trip(tmp_path, name):
    gray = np.full((T, H - 1, W - 1), 100, np.uint8)  # odd sizes: the codecs need even ones
    out = write_overlay_video(tmp_path / name, gray, _labels(gray.shape), fps=15)
    assert out == tmp_path / name
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary left
    shape, fps = read_video_header(out)
    assert shape == (T, H, W) and fps == pytest.approx(15)
    capture = cv2.VideoCapture(str(out))
    ok, bgr = capture.read()
    capture.release()
    assert ok
    lv, la = bgr[14:26, 14:26].mean(axis=(0, 1)), bgr[14:26, 37:43].mean(axis=(0, 1))
    assert lv[2] > lv[0] + 60 and lv[2] > lv[1] + 60  # red
    assert la[0] > la[2] + 60  # blue
    assert np.abs(bgr[36:, 50:].astype(float) - 100).mean() < 4  # gray kept on its 0..255 scale


def test_overlay_gif(tmp_path):
    gray = np.tile(np.arange(T, dtype=np.uint8)[:, None, None] * 20, (1, H, W))
    out = write_overlay_gif(tmp_path / "overlay.gif", gray, _labels(gray.shape), fps=10)
    with Image.open(out) as im:
        assert im.format == "GIF" and im.size == (W, H)
        assert im.n_frames == T
        assert im.info["duration"] == 100
        rgb = np.asarray(im.convert("RGB"))
    assert rgb[20, 20, 0] > rgb[20, 20, 1] + 60  # LV red


def test_overlay_errors_leave_nothing(tmp_path):
    gray = np.zeros((2, 8, 8), np.uint8)
    with pytest.raises(WriteError, match=r"overlay.mkv: cannot write \(unsupported video"):
        write_overlay_video(tmp_path / "overlay.mkv", gray, gray)
    with pytest.raises(ValueError, match="one \\(T, H, W\\) shape"):
        write_overlay_gif(tmp_path / "overlay.gif", gray, gray[:1])
    assert list(tmp_path.iterdir()) == []
