"""Download Kinetics-600 as the CVD Foundation hosts it, into the layout ``prepare-data`` reads.

The CVDF copy (github.com/cvdfoundation/kinetics-dataset, ``k600_downloader.sh``) publishes, per split, a text
file of ``.tar.gz`` URLs (``k600_{split}_path.txt``) and one annotation file per split
(``label,youtube_id,time_start,time_end,split``; the split column says ``validate`` for val). Each tarball
holds videos named ``{youtube_id}_{start:06d}_{end:06d}.mp4`` (the CVDF extractor unpacks them, flat, into
``k600/{split}/``). We write::

    OUT/{split}/{label}/{youtube_id}_{start:06d}_{end:06d}.mp4   (label from the annotations; flat if unknown)
    OUT/annotations/{split}.csv                                 (the annotation files, as CSV)
    ARCHIVES/{split}/*.tar.gz                                    (kept only with keep_archives)
    ARCHIVES/complete.json                                       (what was done; the rule's output)

so that ``prepare-data`` finds every video from the annotation CSVs (``data.annotations``) or, without them,
from the folders (split, then label).

Robustness: downloads resume (HTTP ``Range`` on the ``.part`` file; a server that ignores it restarts from 0),
at most ``parallel`` at once; the size must equal the server's ``Content-Length``; every archive is read through
(gzip CRC and tar headers) and its members checked before anything is extracted: a member with an absolute path,
a ``..`` component, a link or a device makes the archive refused. A refused or corrupt archive is reported and
deleted (the next run downloads it again), never extracted. Each extracted archive leaves a marker so a rerun
skips it.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from tqdm import tqdm

from vqvideo.errors import NO_RESULT, UserError
from vqvideo.runtime.files import atomic_path

CHUNK = 1 << 20


class DownloadError(UserError, RuntimeError):
    """A file that could not be fetched completely (after retries) or failed its checks."""

    exit_code = NO_RESULT


@dataclass
class Report:
    """What one run did: archives extracted, skipped (done before), failed (with the reason)."""

    extracted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    videos: int = 0


# --------------------------------------------------------------------------------------------- fetching
def fetch_text(url: str, timeout: float = 60) -> str:
    """The body of ``url`` (or of a local file path) as text."""
    scheme = urlparse(url).scheme
    if scheme not in ("http", "https", "ftp"):
        return Path(urlparse(url).path if scheme == "file" else url).read_text()
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode("utf-8")


def download(url: str, dest: Path, timeout: float = 60, retries: int = 3, backoff: float = 1.0) -> Path:
    """Fetch ``url`` to ``dest``, resuming ``dest.part`` with an HTTP Range request; check the size.

    Raises :class:`DownloadError` when the file is still incomplete after ``retries`` further attempts.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # not runtime.files.atomic_path: that removes its temporary file on an error, and this one must outlive a
    # failed attempt (and the process) so that the next one resumes it
    part = dest.with_name(dest.name + ".part")
    last = None
    for attempt in range(retries + 1):
        try:
            _download_once(url, part, timeout)
            os.replace(part, dest)
            return dest
        except (OSError, urllib.error.URLError, DownloadError) as e:  # incomplete: try again from where we are
            last = e
            if attempt < retries:
                time.sleep(backoff * (attempt + 1))
    raise DownloadError(f"{url}: {last}")


def _download_once(url: str, part: Path, timeout: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to fetch: the .part is complete, or longer than the file
            total = _remote_size(url, timeout)
            if total == have:
                return
            part.unlink()
            raise DownloadError(f"local part has {have} bytes, the server {total}; starting again")
        raise
    with resp:
        if resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range", ""))
            if start != have:
                raise DownloadError(f"server resumed at byte {start}, not {have}")
            mode = "ab"
        else:  # 200: the server sent the whole file
            start, total, mode = 0, _int(resp.headers.get("Content-Length")), "wb"
        with open(part, mode) as fh:
            while True:
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                fh.write(chunk)
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(f"got {size} of {total} bytes")


def _remote_size(url: str, timeout: float) -> int | None:
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout) as r:
        return _int(r.headers.get("Content-Length"))


def _content_range(value: str) -> tuple[int, int | None]:
    # "bytes 100-999/1000"
    try:
        unit, rest = value.split(" ", 1)
        span, total = rest.split("/")
        return int(span.split("-")[0]), (None if total == "*" else int(total))
    except ValueError:
        raise DownloadError(f"bad Content-Range {value!r}") from None


def _int(value) -> int | None:
    return int(value) if value not in (None, "") else None


# --------------------------------------------------------------------------------------------- archives
def check_archive(path: Path) -> list[tarfile.TarInfo]:
    """Read the whole archive (gzip CRC, tar headers) and return its regular-file members.

    Raises :class:`DownloadError` for a corrupt archive or an unsafe member (absolute path, ``..``, a link or
    a device): such an archive is never extracted.
    """
    files = []
    try:
        with gzip.open(path, "rb") as gz:  # the whole stream: tarfile stops at the end-of-archive blocks,
            while gz.read(CHUNK):          # before the gzip trailer, so only this checks the CRC and length
                pass
        with tarfile.open(path, "r:gz") as tar:
            for m in tar:
                name = PurePosixPath(m.name)
                if name.is_absolute() or ".." in name.parts:
                    raise DownloadError(f"{path.name}: unsafe member path {m.name!r}")
                if m.issym() or m.islnk() or m.isdev() or m.isfifo():
                    raise DownloadError(f"{path.name}: refusing link/device member {m.name!r}")
                if m.isfile():
                    tar.extractfile(m).read()  # reading through checks the data and, at the end, the CRC
                    files.append(m)
    except (tarfile.TarError, OSError, EOFError, ValueError, zlib.error) as e:
        raise DownloadError(f"{path.name}: corrupt archive ({e})") from None
    return files


def extract(path: Path, split_dir: Path, labels: dict[str, str]) -> int:
    """Extract the checked archive's video files into ``split_dir/{label}/{name}`` (flat when unlabelled)."""
    members = check_archive(path)
    n = 0
    with tarfile.open(path, "r:gz") as tar:
        for m in members:
            name = PurePosixPath(m.name).name
            if name.startswith("."):
                continue
            label = labels.get(Path(name).stem, "")
            target = split_dir / label / name if label else split_dir / name
            with atomic_path(target) as tmp, tar.extractfile(m) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
            n += 1
    return n


# --------------------------------------------------------------------------------------------- annotations
def annotations_to_csv(text: str, split: str) -> str:
    """The annotation file as CSV ``label,youtube_id,time_start,time_end,split``.

    The CVDF serves CSVs (some named ``.txt``); a list of video paths (``[label/]{id}_{start}_{end}.mp4``) is
    converted.
    """
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    if "youtube_id" in first:
        return text if text.endswith("\n") else text + "\n"
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
    for line in text.splitlines():
        p = PurePosixPath(line.strip())
        if not line.strip():
            continue
        yid, start, end = _parse_stem(p.stem)
        w.writerow([p.parent.name if len(p.parts) > 1 else "", yid, start, end, split])
    return out.getvalue()


def _parse_stem(stem: str) -> tuple[str, int, int]:
    # youtube ids may contain "_": split the two numbers off the end
    yid, start, end = stem.rsplit("_", 2)
    return yid, int(start), int(end)


def labels_from_csv(path: Path) -> dict[str, str]:
    """``{youtube_id}_{start:06d}_{end:06d}`` -> label, from one annotation CSV (rows without a label left out)."""
    labels = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                stem = f"{row['youtube_id']}_{int(float(row['time_start'])):06d}_{int(float(row['time_end'])):06d}"
            except (KeyError, TypeError, ValueError):
                continue
            if row.get("label"):
                labels[stem] = row["label"].strip().replace("/", "_")
    return labels


# --------------------------------------------------------------------------------------------- the stage
def download_kinetics600(out: str | Path, archives: str | Path, splits: list[str], path_lists: dict[str, str],
                         annotations: dict[str, str], parallel: int = 4, keep_archives: bool = False,
                         retries: int = 3, timeout: float = 60) -> Report:
    """Fetch the annotation files and every archive of ``splits`` and extract them into ``out`` (see module doc).

    Writes ``archives/complete.json`` (the report) only when nothing failed; raises :class:`DownloadError`
    naming every failed archive otherwise (rerun to retry them: finished ones are skipped).
    """
    out, archives = Path(out), Path(archives)
    report = Report()
    jobs = []
    for split in splits:
        labels = {}
        if split in annotations and annotations[split]:
            csv_path = out / "annotations" / f"{split}.csv"
            with atomic_path(csv_path) as tmp:
                tmp.write_text(annotations_to_csv(fetch_text(annotations[split], timeout), split))
            labels = labels_from_csv(csv_path)
        urls = [u.strip() for u in fetch_text(path_lists[split], timeout).splitlines() if u.strip()]
        jobs += [(split, u, labels) for u in urls]

    def one(split: str, url: str, labels: dict[str, str]) -> tuple[str, int | None]:
        name = PurePosixPath(urlparse(url).path).name
        tarball = archives / split / name
        done = archives / split / f".{name}.extracted"
        if done.exists():
            return "skipped", None
        download(url, tarball, timeout=timeout, retries=retries)
        try:
            n = extract(tarball, out / split, labels)
        except DownloadError:
            tarball.unlink(missing_ok=True)  # corrupt or unsafe: fetch it again next time, never extract it
            raise
        done.write_text(json.dumps({"url": url, "videos": n}) + "\n")
        if not keep_archives:
            tarball.unlink(missing_ok=True)
        return "extracted", n

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = {pool.submit(one, *job): job for job in jobs}
        for fut in tqdm(as_completed(futures), total=len(futures), desc="kinetics600 archives", unit="archive"):
            split, url, _ = futures[fut]
            try:
                status, n = fut.result()
            except Exception as e:  # noqa: BLE001 - every failure is reported, the others go on
                report.failed[url] = str(e)
                continue
            (report.extracted if status == "extracted" else report.skipped).append(url)
            report.videos += n or 0
    if report.failed:
        lines = "\n  ".join(f"{u}: {why}" for u, why in sorted(report.failed.items()))
        raise DownloadError(f"{len(report.failed)} of {len(jobs)} archives failed (rerun to retry them):\n  {lines}")
    with atomic_path(archives / "complete.json") as tmp:
        tmp.write_text(json.dumps({"splits": splits, "archives": len(jobs), "extracted": len(report.extracted),
                                   "skipped": len(report.skipped), "videos_extracted": report.videos},
                                  indent=1) + "\n")
    return report
