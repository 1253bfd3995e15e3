"""Video decoding for the data stage: PyAV decode, resampling by timestamps, short-side resize + center crop.

One entry point, :func:`load_frames`, turns a video file or a folder of frames into uint8 RGB frames
``[N, R, R, 3]`` at the target fps. Everything that can go wrong with an input raises :class:`VideoError`
whose ``reason`` is a sentence a person can act on (and whose ``kind`` groups it in the summary).

Resampling picks, for every output time ``t_k = t_0 + k / fps``, the source frame whose presentation interval
``[pts_i, pts_{i+1})`` contains ``t_k`` (exact rational arithmetic, so 30 -> 25 fps picks frames 0, 1, 2, 3, 4,
6, 7, ... and never drifts). This is right for variable-frame-rate sources too, because it only looks at
timestamps. Only the picked frames are scaled.

Scaling happens on the decoder's frame with ``VideoFrame.reformat`` (libswscale, straight from any pixel format
-- gray, yuv444, 10-bit -- to rgb24), which is 2.5-4x faster than converting full frames to arrays and resizing
them afterwards. Downscaling uses area averaging (antialiased); upscaling bicubic. The short side becomes
``R`` and the centre ``R x R`` is kept. Rotation metadata (display matrix) is honoured; since the crop is a
centred square, rotating the cropped square is the same as cropping the rotated frame.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from vqvideo.errors import NO_RESULT, UserError

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".flv", ".wmv", ".gif",
                    ".ts", ".mts", ".3gp", ".ogv"}
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg"}

# A video whose decoded duration falls short of the duration its header declares by more than this is cut off.
_TRUNCATION_TOLERANCE = 0.9


class VideoError(UserError):
    """An input that cannot give clips. ``kind`` is a short category, ``reason`` the human-readable sentence."""

    exit_code = NO_RESULT

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def frame_folder_images(folder: Path) -> list[Path]:
    """The images of a frame folder in natural order (frame2.png before frame10.png)."""
    images = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and is_image_file(p)]
    return sorted(images, key=_natural_key)


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _av_message(e: Exception) -> str:
    """FFmpeg's message without the errno and the file name PyAV appends."""
    msg = getattr(e, "strerror", None) or str(e)
    return str(msg).strip().rstrip(".")


# ------------------------------------------------------------------------------------------------ scaling
def scaled_size(width: float, height: float, resolution: int) -> tuple[int, int]:
    """Size ``(w, h)`` whose short side is ``resolution`` and whose aspect is ``width / height``."""
    scale = resolution / min(width, height)
    return max(resolution, round(width * scale)), max(resolution, round(height * scale))


class FrameScaler:
    """Scale decoded frames to ``[R, R, 3]`` uint8: short side to R (antialiased), centre crop, rotation."""

    def __init__(self, resolution: int):
        self.resolution = resolution

    def __call__(self, frame: av.VideoFrame, sample_aspect: Fraction | None = None, rotation: int = 0) -> np.ndarray:
        r = self.resolution
        display_w = frame.width * (float(sample_aspect) if sample_aspect else 1.0)
        w, h = scaled_size(display_w, frame.height, r)
        down = w <= frame.width and h <= frame.height
        interpolation = "AREA" if down else "BICUBIC"
        rgb = frame.reformat(width=w, height=h, format="rgb24", interpolation=interpolation).to_ndarray()
        x0, y0 = (w - r) // 2, (h - r) // 2
        out = rgb[y0:y0 + r, x0:x0 + r]
        k = round(rotation / 90) % 4  # display matrix angle is counterclockwise, like np.rot90
        if k:
            out = np.rot90(out, k)
        return np.ascontiguousarray(out)


# ------------------------------------------------------------------------------------------------ resampling
def resample(timed_frames: Iterator[tuple[Fraction, Fraction | None, object]], fps: Fraction,
             max_frames: int | None = None) -> Iterator[tuple[int, object]]:
    """Pick frames at ``t_k = t_0 + k / fps`` from ``(time, duration, frame)`` in presentation order.

    Yields ``(k, frame)`` for every output index k (a source frame is yielded several times when upsampling and
    skipped when downsampling). A frame's interval ends where the next frame starts; the last one's ends after
    its own ``duration`` (None: the previous gap). Frames whose time does not increase are dropped.
    """
    k = 0
    t0 = prev_t = prev = prev_dur = None
    last_gap = None
    for t, dur, frame in timed_frames:
        if prev is None:
            t0, prev_t, prev, prev_dur = t, t, frame, dur
            continue
        if t <= prev_t:
            continue
        while t0 + k / fps < t:  # every output time before t falls in prev's interval [prev_t, t)
            yield k, prev
            k += 1
            if max_frames is not None and k >= max_frames:
                return
        last_gap = t - prev_t
        prev_t, prev, prev_dur = t, frame, dur
    if prev is None:
        return
    end = prev_t + (prev_dur or last_gap or 1 / fps)
    while t0 + k / fps < end:
        yield k, prev
        k += 1
        if max_frames is not None and k >= max_frames:
            return


def _fraction(x: float) -> Fraction:
    return Fraction(str(x)).limit_denominator(1_000_000)


# ------------------------------------------------------------------------------------------------ decoding
def load_frames(path: str | Path, fps: float, resolution: int, max_frames: int | None = None,
                frame_folder_fps: float = 25.0) -> np.ndarray:
    """Frames of a video file or frame folder at ``fps``, scaled: uint8 ``[N, R, R, 3]``.

    ``max_frames`` stops decoding once that many output frames exist. Raises :class:`VideoError`.
    """
    path = Path(path)
    if path.is_dir():
        return _load_frame_folder(path, fps, resolution, max_frames, frame_folder_fps)
    return _load_video_file(path, fps, resolution, max_frames)


def _check_file(path: Path) -> None:
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as e:
        raise VideoError("unreadable", f"cannot read the file ({e.strerror or e})") from None
    if size == 0:
        raise VideoError("empty", "empty file (0 bytes)")


def _open(path: Path):
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.InvalidDataError as e:
        with open(path, "rb") as fh:
            head = fh.read(12)
        if head[4:8] == b"ftyp":
            raise VideoError("truncated", "truncated or incomplete MP4: the index ('moov' atom) is missing, so the "
                                          "download or write was probably cut off") from None
        raise VideoError("not-media", f"not a readable video or media file (FFmpeg: {_av_message(e)})") from None
    except av.error.FFmpegError as e:
        raise VideoError("unreadable", f"FFmpeg cannot open the file ({_av_message(e)})") from None


def _video_stream(container, path: Path):
    if not container.streams.video:
        audio = len(container.streams.audio)
        what = f"audio only: {audio} audio stream{'s' if audio != 1 else ''}" if audio else "no streams at all"
        raise VideoError("no-video", f"no video stream ({what})")
    stream = container.streams.video[0]
    try:
        ctx = stream.codec_context
    except av.error.FFmpegError:
        ctx = None
    if ctx is None or ctx.codec is None:
        tag = _codec_tag(stream)
        raise VideoError("unsupported-codec", f"unsupported codec: this FFmpeg build has no decoder for the video "
                                              f"stream{f' (codec tag {tag!r})' if tag else ''}")
    return stream


def _codec_tag(stream) -> str:
    try:
        return str(stream.codec_tag or "")
    except Exception:
        return ""


def _declared_duration(stream, container) -> Fraction | None:
    """The video stream's duration from the headers; the container's only when the video is its one stream
    (an audio track may run longer than the video)."""
    if stream.duration and stream.time_base:
        return stream.duration * stream.time_base
    if container.duration and len(container.streams) == 1:
        return Fraction(container.duration, av.time_base)
    return None


def _load_video_file(path: Path, fps: float, resolution: int, max_frames: int | None) -> np.ndarray:
    _check_file(path)
    scaler = FrameScaler(resolution)
    out_fps = _fraction(fps)
    try:
        container = _open(path)
    except av.error.DecoderNotFoundError:
        raise VideoError("unsupported-codec", "unsupported codec: this FFmpeg build has no decoder for it") from None
    with container:
        try:
            stream = _video_stream(container, path)
        except av.error.DecoderNotFoundError:
            tag = _codec_tag(container.streams.video[0])
            raise VideoError("unsupported-codec", "unsupported codec: this FFmpeg build has no decoder for the "
                                                  f"video stream{f' (codec tag {tag!r})' if tag else ''}") from None
        stream.thread_type = "AUTO"  # frame + slice threads; H.264 frame threading stays bit-exact
        time_base = stream.time_base or Fraction(1, av.time_base)
        rate = Fraction(stream.average_rate or stream.guessed_rate or out_fps)
        declared = _declared_duration(stream, container)
        sar = stream.sample_aspect_ratio if stream.sample_aspect_ratio else None
        seen = {"n": 0, "first": None, "last": None, "dur": None}

        def timed():
            for i, frame in enumerate(container.decode(stream)):
                pts = frame.pts if frame.pts is not None else frame.dts
                t = pts * time_base if pts is not None else Fraction(i) / rate
                dur = frame.duration * time_base if frame.duration else None
                seen["n"] += 1
                seen["first"] = t if seen["first"] is None else seen["first"]
                seen["last"], seen["dur"] = t, dur
                yield t, dur, frame

        out: list[np.ndarray] = []
        rotation = None
        last_frame = last_rgb = None
        try:
            for _, frame in resample(timed(), out_fps, max_frames):
                if frame is not last_frame:  # a frame repeated by upsampling is scaled once
                    if rotation is None:
                        rotation = frame.rotation or _metadata_rotation(stream)
                    last_frame, last_rgb = frame, scaler(frame, sar, rotation)
                out.append(last_rgb)
        except av.error.FFmpegError as e:
            t = float(seen["last"] or 0)
            raise VideoError("corrupt", f"corrupt video data near {t:.2f} s (FFmpeg: {_av_message(e)})") from None
        if seen["n"] == 0:
            if declared:
                raise VideoError("truncated", "truncated: no frame could be decoded although the header declares "
                                              f"{float(declared):.2f} s of video")
            raise VideoError("corrupt", "no frame could be decoded from the video stream")
        stopped_early = max_frames is not None and len(out) >= max_frames
        if declared and not stopped_early:
            got = seen["last"] - seen["first"] + (seen["dur"] or 1 / rate)
            if got < _TRUNCATION_TOLERANCE * declared:
                raise VideoError("truncated", f"truncated: only {float(got):.2f} s of the {float(declared):.2f} s "
                                              "the header declares could be decoded")
        return np.stack(out) if out else np.zeros((0, resolution, resolution, 3), np.uint8)


def _metadata_rotation(stream) -> int:
    """Rotation from the old-style 'rotate' stream tag (clockwise degrees) as a counterclockwise angle."""
    try:
        return -int(float(stream.metadata.get("rotate", 0)))
    except (TypeError, ValueError):
        return 0


def _load_frame_folder(folder: Path, fps: float, resolution: int, max_frames: int | None,
                       source_fps: float) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    images = frame_folder_images(folder)
    if not images:
        raise VideoError("no-video", "folder holds no PNG or JPEG frames")
    src = _fraction(source_fps)
    out_fps = _fraction(fps)
    scaler = FrameScaler(resolution)
    timed = ((Fraction(i) / src, 1 / src, i) for i in range(len(images)))
    picked = [i for _, i in resample(timed, out_fps, max_frames)]
    out = np.empty((len(picked), resolution, resolution, 3), np.uint8)
    last_i = last_rgb = None
    for j, i in enumerate(picked):
        if i != last_i:
            try:
                with Image.open(images[i]) as im:
                    frame = av.VideoFrame.from_ndarray(np.asarray(im.convert("RGB")), format="rgb24")
            except (OSError, UnidentifiedImageError, ValueError) as e:
                raise VideoError("corrupt", f"frame {images[i].name} cannot be read ({e})") from None
            last_i, last_rgb = i, scaler(frame)
        out[j] = last_rgb
    return out


def probe_duration(path: str | Path, frame_folder_fps: float = 25.0) -> float:
    """Declared duration in seconds (0.0 when unknown or unreadable); cheap: reads headers only."""
    path = Path(path)
    try:
        if path.is_dir():
            return len(frame_folder_images(path)) / frame_folder_fps
        if path.stat().st_size == 0:
            return 0.0
        with av.open(str(path), metadata_errors="ignore") as c:
            if not c.streams.video:
                return 0.0
            d = _declared_duration(c.streams.video[0], c) or Fraction(c.duration or 0, av.time_base)
            return float(d)
    except (OSError, av.error.FFmpegError, ValueError):
        return 0.0


def clip_starts(n_frames: int, frames: int, stride: int, max_clips: int | None = None) -> list[int]:
    """Start indices of the clips of ``frames`` frames, ``stride`` apart, that fit in ``n_frames``."""
    starts = list(range(0, n_frames - frames + 1, stride)) if n_frames >= frames else []
    return starts[:max_clips] if max_clips is not None else starts


def frames_needed(frames: int, stride: int, max_clips: int | None) -> int | None:
    """Output frames that hold ``max_clips`` clips (None: all)."""
    return None if max_clips is None else (max_clips - 1) * stride + frames


def estimate_clips(duration_s: float, fps: float, frames: int, stride: int, max_clips: int | None) -> int:
    n = math.floor(duration_s * fps + 1e-6)
    return len(clip_starts(n, frames, stride, max_clips))


__all__ = ["VideoError", "load_frames", "resample", "FrameScaler", "scaled_size", "probe_duration", "clip_starts",
           "frames_needed", "estimate_clips", "is_video_file", "is_image_file", "frame_folder_images",
           "VIDEO_EXTENSIONS", "IMAGE_EXTENSIONS"]
