"""Echo videos (AVI, MP4, MOV) read with OpenCV; colour overlay videos and GIFs written.

Frames are uint8 (T, H, W) grayscale, frame 0 first: colour frames are converted with the
ITU-R 601 luma weights (0.299 R + 0.587 G + 0.114 B), as echoseg converts colour images. The
frame count and size the container declares are checked against ``echoseg.data.limits`` before
frames are decoded, and again while decoding when the declared count is missing or too low.
Every failure to read raises DataError with one line naming the file; writers replace their
file atomically and raise WriteError (``<file>: cannot write (<reason>)``).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from echoseg.atomic import WriteError, atomic_write, atomic_write_named
from echoseg.data.limits import check_size
from echoseg.data.names import VIDEO_EXTENSIONS, split_extension
from echoseg.data.regular import require_regular_file
from echoseg.errors import DataError

# FFmpeg and OpenCV print their own complaints about a bad file on stderr; our errors are one
# line. FFmpeg's level is read when the first capture opens; levels the user chose are kept.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
if "OPENCV_LOG_LEVEL" not in os.environ:
    cv2.utils.logging.setLogLevel(min(cv2.utils.logging.getLogLevel(),
                                      cv2.utils.logging.LOG_LEVEL_ERROR))

WRITE_CODECS = {".avi": "MJPG", ".mp4": "mp4v", ".mov": "mp4v"}  # what the headless build writes
DEFAULT_FPS = 25.0  # frames per second written when the caller knows none
MAX_FPS = 1000.0  # a declared rate above this (or <= 0, NaN) is treated as unknown
_UNREADABLE = "not a video file, truncated, or an unsupported codec"


@dataclass(frozen=True, eq=False)
class Video:
    """Decoded frames (T, H, W) uint8 and the frame rate in frames per second (None when the
    file declares none or an implausible one)."""

    frames: np.ndarray
    fps: float | None

    @property
    def frame_time_ms(self) -> float | None:
        """Time between frames in milliseconds, or None when the rate is unknown."""
        return None if self.fps is None else 1000.0 / self.fps


def is_video_file(path: Path | str) -> bool:
    """True when the file has a video extension echoseg reads (.avi, .mp4, .mov)."""
    return split_extension(path)[1] in VIDEO_EXTENSIONS


def read_video(path: Path | str) -> Video:
    """Decode every frame of an AVI/MP4/MOV file to grayscale uint8 (T, H, W).

    Raises DataError naming the file when it is missing, not a regular file, not a readable
    video, declares a size over the limits, has no frames, frames of changing size, or fewer
    frames than its container declares (truncated).
    """
    path = Path(path)
    _check_file(path)
    with _Capture(path) as cap:
        count, size, fps = _declared(path, cap)
        frames, n = _decode(path, cap, size, count, keep=lambda _: True)
    _require_complete(path, n, count)
    return Video(np.stack([frames[i] for i in range(n)]), fps)


def read_video_header(path: Path | str) -> tuple[tuple[int, int, int], float | None]:
    """(T, H, W) and frames per second (or None) from the container, without decoding frames.

    When the container does not record its frame count, frames are counted by reading through
    the file (still checked against the limits). Raises DataError as :func:`read_video` does
    for a missing, unreadable, frameless or too large file.
    """
    path = Path(path)
    _check_file(path)
    with _Capture(path) as cap:
        count, size, fps = _declared(path, cap)
        if count == 0:
            count = _decode(path, cap, size, 0, keep=lambda _: False)[1]
            if count == 0:
                raise DataError(f"{path}: cannot read video (no frames)")
    return (count, *size), fps


def read_video_frames(path: Path | str, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """Frames ``indices`` (0-based) of a video as grayscale uint8 (H, W) arrays, by index.

    Decodes from the start up to the last wanted frame only. Raises DataError naming the file
    when it cannot be read (as :func:`read_video`) or a wanted frame is beyond its end.
    """
    path = Path(path)
    wanted = sorted({int(i) for i in indices})
    if wanted and wanted[0] < 0:
        raise ValueError(f"frame indices must be >= 0, got {wanted[0]}")
    _check_file(path)
    if not wanted:
        return {}
    last = wanted[-1]
    with _Capture(path) as cap:
        count, size, _ = _declared(path, cap)
        if count and last >= count:
            raise DataError(f"{path}: frame {last} is beyond the video's {count} frames "
                            "(frames count from 0)")
        keep = set(wanted)
        frames, n = _decode(path, cap, size, count, keep=keep.__contains__, stop=last + 1)
    if n <= last:
        _require_complete(path, n, count)
        raise DataError(f"{path}: frame {last} is beyond the video's {n} frames "
                        "(frames count from 0)")
    return frames


def overlay_frames(frames: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """RGB uint8 (T, H, W, 3): each frame with LV, MYO and LA blended in the colours of
    echoseg's figures. Takes (T, H, W) frames and label maps 0..3 of the same shape ((H, W)
    arrays count as one frame). Every frame is shown on one gray scale, 0..255 for uint8 frames
    and the sequence's finite range otherwise, so brightness does not flicker between frames."""
    from echoseg.evaluation.figures import overlay  # matplotlib: only when writing

    frames, labels = np.asarray(frames), np.asarray(labels)
    if frames.ndim == 2:
        frames, labels = frames[None], labels[None] if labels.ndim == 2 else labels
    if frames.ndim != 3 or frames.shape != labels.shape or frames.shape[0] == 0:
        raise ValueError(f"expected frames and labels of one (T, H, W) shape, got {frames.shape} "
                         f"and {labels.shape}")
    if frames.dtype == np.uint8:
        low, high = 0.0, 255.0
    else:
        finite = frames[np.isfinite(frames)] if frames.dtype.kind == "f" else frames
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    # overlay() scales each image by its own range: an extra row holding the common range
    # (blended as background, then dropped) makes that range the same for every frame
    extra = np.full((1, frames.shape[2]), low)
    extra[0, -1] = high
    background = np.zeros((1, frames.shape[2]), labels.dtype)
    out = np.empty((*frames.shape, 3), np.uint8)
    for t in range(frames.shape[0]):
        image = np.concatenate([frames[t].astype(np.float64), extra])
        rgb = overlay(image, np.concatenate([labels[t], background]))[:-1]
        out[t] = np.rint(rgb * 255)
    return out


def write_overlay_video(path: Path | str, frames: np.ndarray, labels: np.ndarray,
                        fps: float | None = None) -> Path:
    """Write the colour overlay (see :func:`overlay_frames`) of a sequence as a video.

    The codec follows the extension: MJPG for .avi, MPEG-4 part 2 (mp4v) for .mp4/.mov, at
    ``fps`` frames per second (``DEFAULT_FPS`` when None). Both codecs need even sizes: an odd
    height or width gets its last row or column repeated. Written atomically and read back;
    returns the path. Raises WriteError naming the file for another extension or when OpenCV
    cannot write or the file does not read back with every frame.
    """
    path = Path(path)
    codec = WRITE_CODECS.get(split_extension(path)[1])
    if codec is None:
        raise WriteError(path, f"unsupported video extension '{split_extension(path)[1]}' "
                               f"(use {', '.join(WRITE_CODECS)})")
    rgb = overlay_frames(frames, labels)
    height, width = rgb.shape[1:3]
    if height % 2 or width % 2:
        rgb = np.pad(rgb, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        height, width = rgb.shape[1:3]

    def write(staged: Path) -> None:
        writer = cv2.VideoWriter(str(staged), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*codec),
                                 _rate(fps), (width, height), True)
        try:
            if not writer.isOpened():
                raise WriteError(path, f"OpenCV cannot write {codec} video here")
            for frame in rgb:
                writer.write(np.ascontiguousarray(frame[..., ::-1]))  # OpenCV takes BGR
        finally:
            writer.release()

    def verify(staged: Path) -> None:
        shape = read_video_header(staged)[0]
        if shape != rgb.shape[:3]:
            raise DataError(f"{staged}: holds {'x'.join(map(str, shape))} frames x pixels, "
                            f"not {'x'.join(map(str, rgb.shape[:3]))}")

    return atomic_write_named(path, write, verify)


def write_overlay_gif(path: Path | str, frames: np.ndarray, labels: np.ndarray,
                      fps: float | None = None) -> Path:
    """Write the colour overlay of a sequence as a looping GIF (Pillow) at ``fps`` frames per
    second (``DEFAULT_FPS`` when None; GIF stores delays in 10 ms steps), atomically; returns
    the path. Raises WriteError naming the file when it cannot be written."""
    rgb = overlay_frames(frames, labels)
    images = [Image.fromarray(frame) for frame in rgb]
    delay = max(10, round(100 / _rate(fps)) * 10)  # milliseconds, a multiple of 10

    def write(f) -> None:
        buffer = io.BytesIO()
        images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                       duration=delay, loop=0)
        f.write(buffer.getvalue())

    def verify(staged: Path) -> None:
        with Image.open(staged) as im:
            if im.format != "GIF":
                raise DataError(f"{staged}: not a GIF")
            im.seek(getattr(im, "n_frames", 1) - 1)
            im.load()

    return atomic_write(path, write, verify)


class _Capture:
    """A cv2.VideoCapture opened with FFmpeg, released on exit; DataError when it cannot open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        except cv2.error:
            self.cap = None
        if self.cap is None or not self.cap.isOpened():
            if self.cap is not None:
                self.cap.release()
            raise DataError(f"{path}: cannot read video ({_UNREADABLE})")

    def __enter__(self) -> cv2.VideoCapture:
        return self.cap

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.cap.release()
        if isinstance(exc, cv2.error):
            raise DataError(f"{self.path}: cannot read video ({_UNREADABLE})") from None
        return False


def _check_file(path: Path) -> None:
    """DataError unless ``path`` is a regular file with a video extension (nothing is opened,
    so a FIFO never blocks)."""
    require_regular_file(path, "video")
    ext = split_extension(path)[1]
    if ext not in VIDEO_EXTENSIONS:
        raise DataError(f"{path}: cannot read video (unsupported extension '{ext}'; "
                        f"use {', '.join(VIDEO_EXTENSIONS)})")


def _declared(path: Path, cap: cv2.VideoCapture) -> tuple[int, tuple[int, int], float | None]:
    """(frame count or 0 when unknown, (H, W), fps or None) from the container, size-checked."""
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    count = int(count) if math.isfinite(count) and 0 < count < 2**62 else 0
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    check_size(path, height, width, max(count, 1))
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = float(fps) if math.isfinite(fps) and 0 < fps <= MAX_FPS else None
    return count, (height, width), fps


def _decode(path: Path, cap: cv2.VideoCapture, size: tuple[int, int], count: int,
            keep: Callable[[int], bool], stop: int | None = None) -> tuple[dict, int]:
    """Read frames 0..stop-1 (all when None): the gray (H, W) frames ``keep`` selects, by index,
    and how many frames were read. Frames past the declared ``count`` are checked against the
    limits as they come."""
    frames: dict[int, np.ndarray] = {}
    n = 0
    while stop is None or n < stop:
        if n >= count:
            check_size(path, size[0], size[1], n + 1)
        if keep(n):
            ok, frame = cap.read()
            if ok:
                frames[n] = _gray(path, frame, size, n)
        else:
            ok = cap.grab()
        if not ok:
            break
        n += 1
    return frames, n


def _gray(path: Path, frame: np.ndarray, size: tuple[int, int], index: int) -> np.ndarray:
    """One decoded frame (gray, BGR or BGRA) as uint8 (H, W) gray of the declared size."""
    if frame.shape[:2] != size:
        raise DataError(f"{path}: cannot read video (frame {index} is {frame.shape[0]}x"
                        f"{frame.shape[1]}, the video {size[0]}x{size[1]})")
    if frame.dtype != np.uint8:
        raise DataError(f"{path}: cannot read video (unsupported pixel type {frame.dtype})")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    elif frame.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        frame = cv2.cvtColor(frame, code)  # 0.299 R + 0.587 G + 0.114 B, rounded
    return np.ascontiguousarray(frame)


def _require_complete(path: Path, n: int, count: int) -> None:
    if n == 0:
        raise DataError(f"{path}: cannot read video (no frames)")
    if count and n < count:
        raise DataError(f"{path}: cannot read video (truncated: decoded {n} of the {count} "
                        "frames its header declares)")


def _rate(fps: float | None) -> float:
    """A frame rate a writer accepts: ``fps`` when positive and finite, else DEFAULT_FPS."""
    if fps is None or not math.isfinite(fps) or fps <= 0:
        return DEFAULT_FPS
    return float(fps)
