"""The data stage: a folder of videos -> fixed-size uint8 clips in HDF5 shards, a manifest and a list of rejects.

Output (``OUT``):

- ``shards/{split}-{i:05d}.h5``: dataset ``clips`` uint8 ``[N, T, H, W, 3]`` chunked ``(1, T, H, W, 3)``; attrs
  ``fps``, ``frames``, ``resolution``, ``split`` and ``plan`` (a hash of the inputs that made the shard).
- ``manifest.csv``: ``shard,index,source,start_s,label,split``, one row per clip over all splits, in shard order.
  A clip's id everywhere in the pipeline is its 0-based row number here. ``source`` is relative to the videos
  folder; ``start_s`` is the clip's start in seconds from the video's first frame.
- ``rejects.csv``: ``source,reason`` for every input that gave no clip.
- ``.prepare/``: one small JSON per shard (its manifest rows and rejects) so that a rerun can skip it.

How it runs: inputs are listed and sorted, split into shards *before* decoding (a deterministic plan: a shard is
a run of consecutive videos of one split, about ``shard_size`` clips), then decoded in parallel processes in plan
order. A shard is written (atomically) as soon as its videos are done. A rerun skips every shard whose file and
record exist with the same plan hash, so a killed run resumes where it stopped and never exposes a half-written
shard. The same inputs and settings always give byte-identical clips.

:func:`cut_clips` (one video -> its clips, with the settings :class:`vqvideo.data.params.Params`) is the part that any other reader of
videos, e.g. ``vqvideo reconstruct``, shares with this stage.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing as mp
import os
import re
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vqvideo.data.params import Params
from vqvideo.data.shards import list_shards, write_shard
from vqvideo.data.video import (VideoError, clip_starts, estimate_clips, frames_needed, is_image_file,
                                is_video_file, load_frames, probe_duration)
from vqvideo.runtime.files import atomic_write_text

MANIFEST_COLUMNS = ["shard", "index", "source", "start_s", "label", "split"]
REJECT_COLUMNS = ["source", "reason"]
PLAN_VERSION = 1  # bump when the decoding changes what a shard holds, so old shards are not reused
SPLIT_ALIASES = {"validate": "val", "validation": "val"}  # Kinetics' CSVs say "validate"; we call it "val"
_SHARD_NAME = re.compile(r"^(?P<split>.+)-(?P<index>\d{5})\.h5$")


@dataclass(frozen=True)
class Source:
    """One input video (a file or a folder of frames)."""

    path: str  # absolute
    rel: str  # relative to the videos folder, POSIX separators: what the manifest shows
    split: str
    label: str = ""


# --------------------------------------------------------------------------------------------- discovery
def discover(videos: Path, default_split: str = "train", annotations: str | Path | None = None
             ) -> tuple[list[Source], list[tuple[str, str]]]:
    """Inputs under ``videos`` (sorted by split, then path) and ``(source, reason)`` for stray files."""
    if annotations:
        return _discover_annotations(videos, Path(annotations))
    sources, rejects = [], []
    for folder, dirs, files in os.walk(videos, followlinks=True):  # split folders are often symlinks
        folder_path = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files = sorted(f for f in files if not f.startswith("."))
        rel_folder = folder_path.relative_to(videos)
        if any(is_image_file(Path(f)) for f in files):  # a folder of frames is one video
            sources.append(_source(videos, folder_path, default_split))
            dirs[:] = []
            files = [f for f in files if not is_image_file(Path(f))]
        for name in files:
            path = folder_path / name
            rel = (rel_folder / name).as_posix()
            if is_video_file(path):
                sources.append(_source(videos, path, default_split))
            else:
                ext = path.suffix or "(none)"
                rejects.append((rel, f"not a video file (extension {ext}); only "
                                     "video files and folders of PNG/JPEG frames are read"))
    sources.sort(key=lambda s: (s.split, s.rel))
    return sources, rejects


def _source(videos: Path, path: Path, default_split: str) -> Source:
    parts = path.relative_to(videos).parts
    if len(parts) <= 1:  # a file (or folder of frames) directly under the videos folder
        return Source(str(path.resolve()), Path(*parts).as_posix() if parts else ".", default_split, "")
    # {split}/{label}/.../file: the first level names the split, the second (if any) the label
    split = SPLIT_ALIASES.get(parts[0], parts[0])
    label = parts[1] if len(parts) >= 3 else ""
    return Source(str(path.resolve()), Path(*parts).as_posix(), split, label)


def _discover_annotations(videos: Path, annotations: Path) -> tuple[list[Source], list[tuple[str, str]]]:
    """Kinetics annotation CSVs: ``label,youtube_id,time_start,time_end,split`` (label absent for test)."""
    files = sorted(annotations.glob("*.csv")) if annotations.is_dir() else [annotations]
    if not files or not all(f.is_file() for f in files):
        raise FileNotFoundError(f"annotation CSV not found: {annotations}")
    sources, rejects, seen = [], [], set()
    for csv_path in files:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                try:
                    yid, start, end = row["youtube_id"], int(float(row["time_start"])), int(float(row["time_end"]))
                    split_raw = row.get("split") or csv_path.stem
                except (KeyError, TypeError, ValueError):
                    rejects.append((f"{csv_path.name}:{row}", "annotation row without youtube_id/time_start/"
                                                             "time_end"))
                    continue
                label = row.get("label") or ""
                stem = f"{yid}_{start:06d}_{end:06d}"
                path = _find_annotated(videos, split_raw, label, stem)
                split = SPLIT_ALIASES.get(split_raw, split_raw)
                if path is None:
                    rel = Path(split_raw, label, stem + ".mp4").as_posix()
                    if rel not in seen:
                        seen.add(rel)
                        rejects.append((rel, f"listed in {csv_path.name} but no such video under {videos}"))
                    continue
                rel = path.relative_to(videos).as_posix()
                if rel in seen:
                    continue
                seen.add(rel)
                sources.append(Source(str(path.resolve()), rel, split, label))
    sources.sort(key=lambda s: (s.split, s.rel))
    return sources, rejects


def _find_annotated(videos: Path, split: str, label: str, stem: str) -> Path | None:
    split_dirs = [split] + [a for a, b in SPLIT_ALIASES.items() if b == split] + [SPLIT_ALIASES.get(split, split)]
    for split_dir in dict.fromkeys(split_dirs):
        for folder in ([videos / split_dir / label] if label else []) + [videos / split_dir]:
            for ext in (".mp4", ".mkv", ".webm", ".avi", ".mov"):
                if (folder / (stem + ext)).is_file():
                    return folder / (stem + ext)
    return None


# --------------------------------------------------------------------------------------------- planning
@dataclass
class Group:
    """One shard's worth of consecutive videos of one split."""

    split: str
    index: int
    sources: list[Source]
    key: str = ""

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:05d}"


def plan_shards(sources: list[Source], params: Params, shard_size: int, estimates: list[int] | None = None
                ) -> list[Group]:
    """Split ``sources`` (sorted) into groups of about ``shard_size`` clips, per split.

    With ``max_clips_per_video`` set, a group is ``shard_size // max_clips`` videos (never more clips than
    ``shard_size``); otherwise ``estimates`` (clips per video, from declared durations) fill groups greedily.
    """
    groups: list[Group] = []
    current: Group | None = None
    filled = 0
    for i, src in enumerate(sources):
        est = params.max_clips_per_video if params.max_clips_per_video else (estimates[i] if estimates else 1)
        if current is None or current.split != src.split or (filled + est > shard_size and current.sources):
            index = groups[-1].index + 1 if groups and groups[-1].split == src.split else 0
            current = Group(src.split, index, [])
            groups.append(current)
            filled = 0
        current.sources.append(src)
        filled += est
    for g in groups:
        g.key = _group_key(g, params)
    return groups


def _group_key(group: Group, params: Params) -> str:
    """Hash of everything that decides a shard's content: settings and each input's name, size and mtime."""
    items = []
    for s in group.sources:
        try:
            st = os.stat(s.path)
            stamp = [st.st_size, st.st_mtime_ns]
            if os.path.isdir(s.path):
                stamp = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(Path(s.path).iterdir())]
        except OSError:
            stamp = None
        items.append([s.rel, s.split, s.label, stamp])
    blob = json.dumps([PLAN_VERSION, asdict(params), group.name, items], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------- workers
def cut_clips(path: str | Path, p: Params) -> tuple[np.ndarray, list[int]]:
    """Decode one input and cut it into clips as the data stage does: ``(clips [n, T, R, R, 3] uint8, start
    frames)``. Raises :class:`VideoError` (e.g. ``too-short``) for an input that gives no clip."""
    frames = load_frames(path, p.fps, p.resolution, frames_needed(p.frames, p.stride, p.max_clips_per_video),
                         frame_folder_fps=p.frame_folder_fps)
    starts = clip_starts(len(frames), p.frames, p.stride, p.max_clips_per_video)
    if not starts:
        need = p.frames / p.fps
        raise VideoError("too-short", f"too short: {len(frames)} frames at {p.fps:g} fps "
                                      f"({len(frames) / p.fps:.2f} s); one clip needs {p.frames} frames "
                                      f"({need:.2f} s)")
    return np.stack([frames[s:s + p.frames] for s in starts]), starts


def process_video(path: str | Path, p: Params) -> tuple[np.ndarray | None, list[int], str | None, str | None]:
    """:func:`cut_clips` that never raises: ``(clips or None, start frames, reject kind, reason)``."""
    try:
        clips, starts = cut_clips(path, p)
        return clips, starts, None, None
    except VideoError as e:
        return None, [], e.kind, e.reason
    except Exception as e:  # never let one input kill the run
        return None, [], "error", f"unexpected error while reading: {type(e).__name__}: {e}"


def _process_task(task: tuple[str, Params]):
    return process_video(*task)


def _probe(task: tuple[str, Params]) -> int:
    path, p = task
    return estimate_clips(probe_duration(path, p.frame_folder_fps), p.fps, p.frames, p.stride,
                          p.max_clips_per_video)


def _map(fn, tasks: list, workers: int, desc: str, unit: str):
    """Ordered map over ``tasks`` with ``workers`` processes (inline when 1) and a progress bar."""
    bar = tqdm(total=len(tasks), desc=desc, unit=unit, file=sys.stderr, disable=not tasks)
    try:
        if workers <= 1 or len(tasks) <= 1:
            for t in tasks:
                yield fn(t)
                bar.update()
            return
        # spawn: FFmpeg's threads and fork do not mix; the workers import only numpy/av
        with mp.get_context("spawn").Pool(min(workers, len(tasks))) as pool:
            for result in pool.imap(fn, tasks, chunksize=1):
                yield result
                bar.update()
    finally:
        bar.close()


# --------------------------------------------------------------------------------------------- the stage
def _done(group: Group, out: Path) -> dict | None:
    """The group's record if its shard is finished and was made from the same inputs and settings."""
    record_path = out / ".prepare" / f"{group.name}.json"
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("key") != group.key:
        return None
    if record["rows"]:
        import h5py

        shard = out / "shards" / f"{group.name}.h5"
        try:
            with h5py.File(shard, "r") as f:
                if f.attrs.get("plan") != group.key or f["clips"].shape[0] != len(record["rows"]):
                    return None
        except (OSError, KeyError):
            return None
    return record


def _finish_group(group: Group, results: list, params: Params, out: Path) -> dict:
    """Write the group's shard (if it has clips) and its record; return the record."""
    rows, rejects, clips = [], [], []
    for src, (c, starts, kind, reason) in zip(group.sources, results):
        if c is None:
            rejects.append([src.rel, reason, kind])
            continue
        for s in starts:
            rows.append([f"{group.name}.h5", len(rows), src.rel, round(s / params.fps, 6), src.label, src.split])
        clips.append(c)
    # the record first: a shard that is visible is then always complete *and* known to a rerun
    record = {"key": group.key, "rows": rows, "rejects": rejects}
    atomic_write_text(out / ".prepare" / f"{group.name}.json", json.dumps(record))
    if clips:
        write_shard(out / "shards" / f"{group.name}.h5", {"clips": np.concatenate(clips)},
                    {"fps": params.fps, "frames": params.frames, "resolution": params.resolution,
                     "split": group.split, "plan": group.key})
    return record


def _csv(header: list[str], rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def prepare_data(videos: str | Path, out: str | Path, clips: Params = Params(), *, shard_size: int = 512,
                 workers: int = 1, default_split: str = "train", annotations: str | Path | None = None) -> int:
    """Run the data stage (see the module docstring). Returns the exit status: 1 when no input gave a clip."""
    videos, out = Path(videos), Path(out)
    if not videos.is_dir():
        print(f"prepare-data: videos folder not found: {videos}", file=sys.stderr)
        return 1
    params = Params.of(clips)
    sources, stray = discover(videos, default_split, annotations)
    stray_rejects = [[rel, reason, "not-video" if "not a video" in reason else "missing"] for rel, reason in stray]
    groups = plan_shards(sources, params, shard_size, _estimates(sources, params, workers))
    records = _make_shards(groups, params, out, workers)
    rows = [r for g in groups for r in records[g.name]["rows"]]
    rejects = sorted(stray_rejects + [r for g in groups for r in records[g.name]["rejects"]])
    atomic_write_text(out / "rejects.csv", _csv(REJECT_COLUMNS, [r[:2] for r in rejects]))
    atomic_write_text(out / "manifest.csv", _csv(MANIFEST_COLUMNS, rows))
    _report(rows, rejects, len(sources) + len(stray_rejects), len({g.name for g in groups if records[g.name]["rows"]}),
            videos, out)
    return 0 if rows else 1


def _estimates(sources: list[Source], params: Params, workers: int) -> list[int] | None:
    """Clips per input from declared durations, to plan shards (not needed with ``max_clips_per_video``)."""
    if params.max_clips_per_video is not None or not sources:
        return None
    # headers only (milliseconds a video): processes pay off only for many inputs
    return list(_map(_probe, [(s.path, params) for s in sources], workers if len(sources) > 500 else 1,
                     "probing", "video"))


def _make_shards(groups: list[Group], params: Params, out: Path, workers: int) -> dict[str, dict]:
    """Decode the groups whose shard is not done yet, write their shards; drop what this plan does not make.
    Returns every group's record ``{"key", "rows", "rejects"}`` by name."""
    (out / "shards").mkdir(parents=True, exist_ok=True)
    for tmp in (out / "shards").glob(".*.tmp"):  # a killed run's temporary shard
        tmp.unlink(missing_ok=True)
    records = {g.name: r for g in groups if (r := _done(g, out)) is not None}
    if records:
        print(f"prepare-data: {len(records)} of {len(groups)} shards already done, skipping them", file=sys.stderr)
    todo = [g for g in groups if g.name not in records]
    results = _map(_process_task, [(s.path, params) for g in todo for s in g.sources], workers, "decoding", "video")
    for g in todo:
        records[g.name] = _finish_group(g, [next(results) for _ in g.sources], params, out)
    results.close()  # ends the worker pool
    _drop_stale(out, {g.name for g in groups if records[g.name]["rows"]}, {g.name for g in groups})
    return records


def _drop_stale(out: Path, shards: set[str], planned: set[str]) -> None:
    """Remove shards and records this plan does not make (e.g. left from a run with other settings)."""
    for shard in list_shards(out / "shards"):
        if _SHARD_NAME.match(shard.name) and shard.stem not in shards:
            shard.unlink()
    for record_file in (out / ".prepare").glob("*.json") if (out / ".prepare").exists() else []:
        if record_file.stem not in planned:
            record_file.unlink()


def _report(rows: list, rejects: list, n_inputs: int, n_shards: int, videos: Path, out: Path) -> None:
    """What the stage made and what it rejected (the first ten reasons), on stdout; no clip at all on stderr."""
    used = len({(r[5], r[2]) for r in rows})
    per_split = Counter(r[5] for r in rows)
    print(f"prepare-data: {len(rows)} clips ({', '.join(f'{k}: {v}' for k, v in sorted(per_split.items())) or 'none'})"
          f" from {used} of {n_inputs} inputs into {n_shards} shards in {out / 'shards'}")
    if rejects:
        kinds = Counter(r[2] for r in rejects)
        print(f"prepare-data: rejected {len(rejects)} inputs "
              f"({', '.join(f'{k}: {v}' for k, v in sorted(kinds.items()))}); reasons in {out / 'rejects.csv'}")
        for rel, reason, _ in rejects[:10]:
            print(f"  {rel}: {reason}")
        if len(rejects) > 10:
            print(f"  ... and {len(rejects) - 10} more")
    if not rows:
        print("prepare-data: no input gave a clip" + (f" (no videos found in {videos})" if not n_inputs else ""),
              file=sys.stderr)
