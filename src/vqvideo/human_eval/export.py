"""Export blind side-by-side pairs for the human evaluation (paper §5.2, Table 1).

Two sample sets (folders of ``shard-*.h5`` with ``videos`` uint8 ``[N, T, H, W, 3]``, ``clip`` and ``sample``)
are paired on the conditioning clips they share. ``OUT/page/`` gets everything the raters get; ``OUT/key.csv``
(outside it) says which model is on which side::

    OUT/key.csv                 pair_id,left_model,right_model,clip
    OUT/page/index.html         the rating page, pairs embedded as JSON (works from file://)
    OUT/page/app.js, style.css
    OUT/page/pairs.csv          pair_id,left_video,right_video
    OUT/page/media/<id>.mp4     one MP4 and one GIF per side per pair, <id> random hex
    OUT/page/media/<id>.gif

Blinding: file ids are random and drawn independently of the sides; media bytes depend only on the pixels
(vqvideo.viz writes no names, paths or dates, only the encoder's version, the same in every file; x264 gives
the same bytes for the same frames from 64 pixels wide up, while narrower frames vary slightly from run to
run); media files are written in the order of their ids and all get the same mtime, so neither listing order
nor timestamps follow the models. File sizes follow the content, which the rater sees anyway. Everything is seeded
(``human_eval.seed``) so an export can be rebuilt; the seed therefore determines the sides: keep it from
the raters.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from vqvideo.data.shards import list_shards
from vqvideo.errors import UserError
from vqvideo.runtime.files import atomic_write_text
from vqvideo.viz import save_gif, save_mp4

PAGE_FILES = ("index.html", "app.js", "style.css")
PAIRS_PLACEHOLDER = "__PAIRS_JSON__"
MP4_CRF = 12  # near-lossless: keeps the nearest-upscaled pixel blocks sharp
MEDIA_MTIME = 946684800  # 2000-01-01: one fixed timestamp for every media file, so mtimes say nothing


class ExportError(UserError, ValueError):
    """Sample sets that cannot be paired (no shards, no common clip, bad arrays)."""


@dataclass
class Pair:
    pair_id: str
    clip: int
    left_model: str
    right_model: str
    left_video: str   # anonymous media id (file stem under page/media/)
    right_video: str


# ------------------------------------------------------------------------------------------ reading
def index_samples(folder: str | Path) -> dict[int, tuple[Path, int]]:
    """Map each conditioning clip id to (shard, row) of its lowest-numbered sample in ``folder``."""
    folder = Path(folder)
    shards = list_shards(folder, "shard-*.h5")
    if not shards:
        raise ExportError(f"no shard-*.h5 in {folder}")
    best: dict[int, tuple[int, Path, int]] = {}
    for shard in shards:
        with h5py.File(shard, "r") as f:
            for name in ("videos", "clip", "sample"):
                if name not in f:
                    raise ExportError(f"{shard}: dataset '{name}' missing (sample shard layout)")
            clips, samples = f["clip"][()], f["sample"][()]
            if not (len(clips) == len(samples) == f["videos"].shape[0]):
                raise ExportError(f"{shard}: 'videos', 'clip' and 'sample' differ in length")
        for row, (clip, sample) in enumerate(zip(clips.tolist(), samples.tolist())):
            if clip not in best or sample < best[clip][0]:
                best[clip] = (sample, shard, row)
    return {clip: (shard, row) for clip, (_, shard, row) in best.items()}


def read_video(shard: Path, row: int) -> np.ndarray:
    """One video ``[T, H, W, 3]`` uint8 from a sample shard."""
    with h5py.File(shard, "r") as f:
        video = f["videos"][row]
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise ExportError(f"{shard}: videos must be uint8 [N, T, H, W, 3], got {video.dtype} {video.shape}")
    return video


def display_frames(video: np.ndarray, resolution: int | None, upscale: int) -> np.ndarray:
    """``[T, H, W, 3]`` -> ``[T, R*u, R*u, 3]``: area resize to ``resolution`` (if given), then nearest ``upscale``."""
    if resolution is not None and video.shape[1:3] != (resolution, resolution):
        video = np.stack([np.asarray(Image.fromarray(f).resize((resolution, resolution), Image.BOX))
                          for f in video])
    if upscale > 1:  # exact nearest neighbour: every pixel becomes an upscale x upscale block
        video = video.repeat(upscale, axis=1).repeat(upscale, axis=2)
    return np.ascontiguousarray(video)


# ------------------------------------------------------------------------------------------ export
def plan_pairs(clips_a: list[int], clips_b: list[int], n_pairs: int, seed: int,
               name_a: str, name_b: str) -> list[Pair]:
    """Choose ``n_pairs`` shared clips, a side per pair and anonymous ids, all from ``seed``.

    Sides and ids come from separate random streams, so an id says nothing about its side. Model A is on the
    left in n // 2 or n // 2 + 1 of the n pairs.
    """
    common = sorted(set(clips_a) & set(clips_b))
    if not common:
        raise ExportError("the two sample sets share no conditioning clip")
    n = min(n_pairs, len(common))
    rng_pick = np.random.default_rng([seed, 0])
    rng_side = np.random.default_rng([seed, 1])
    rng_ids = np.random.default_rng([seed, 2])
    chosen = rng_pick.choice(np.asarray(common), size=n, replace=False).tolist()
    ids: set[str] = set()
    while len(ids) < 2 * n:
        ids.add(rng_ids.bytes(8).hex())
    ids_list = sorted(ids)
    rng_ids.shuffle(ids_list)
    # balanced sides: A is on the left in half of the pairs (the odd one out by a coin), in random order, so a
    # rater's side bias cannot favour either model and no run of same-side pairs hints at the key
    n_left = n // 2 + (n % 2 if rng_side.random() < 0.5 else 0)
    a_lefts = np.arange(n) < n_left
    rng_side.shuffle(a_lefts)
    pairs = []
    for i, (clip, a_left) in enumerate(zip(chosen, a_lefts.tolist())):
        left, right = (name_a, name_b) if a_left else (name_b, name_a)
        pairs.append(Pair(f"p{i + 1:03d}", int(clip), left, right, ids_list[2 * i], ids_list[2 * i + 1]))
    return pairs


def _csv(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def page_html(template: str, pairs: list[Pair], title: str = "Which video looks more realistic?") -> str:
    """The page with the pairs embedded as JSON that cannot close its <script> element."""
    payload = {
        "export_id": hashlib.sha256(
            json.dumps([[p.pair_id, p.left_video, p.right_video] for p in pairs]).encode()).hexdigest()[:16],
        "title": title,
        "pairs": [{"id": p.pair_id, "left": p.left_video, "right": p.right_video} for p in pairs],
    }
    # JSON inside <script type="application/json">: escape <, > and & so no value can end the element
    text = json.dumps(payload).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    if template.count(PAIRS_PLACEHOLDER) != 1:
        raise ExportError("page template must hold the pairs placeholder exactly once")
    return template.replace(PAIRS_PLACEHOLDER, text).replace("__TITLE__", html.escape(title))


def _replace_dir(tmp: Path, final: Path) -> None:
    """Swap a finished folder into place (the old one is renamed away first, then removed).

    Not runtime.files.atomic_path, which swaps one file: a folder cannot be renamed over a non-empty one, so the
    old page moves aside first (a reader may find no page for that instant, never a half-written one)."""
    old = final.with_name(f".{final.name}.old.{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def export_pairs(a: str | Path, b: str | Path, out: str | Path, n_pairs: int = 30, seed: int = 0,
                 name_a: str = "ours", name_b: str = "copy_last", resolution: int | None = 64,
                 upscale: int = 4, fps: float = 25.0, ratings_dir: str = "ratings", force: bool = False,
                 progress: bool = True) -> list[Pair]:
    """Write ``out/page/`` and ``out/key.csv`` for up to ``n_pairs`` clips present in both ``a`` and ``b``.

    Refuses (unless ``force``) when ``out/<ratings_dir>/`` already holds ratings: a new export would change
    the videos behind the pair ids those ratings refer to.
    """
    from tqdm import tqdm

    if name_a == name_b:
        raise ExportError(f"the two models need different names, got '{name_a}' twice")
    out = Path(out)
    collected = sorted((out / ratings_dir).glob("*.csv"))
    if collected and not force:
        raise ExportError(f"{out / ratings_dir} already holds ratings of this export ({len(collected)} files); "
                          "re-exporting would change the videos behind their pair ids: move them away first "
                          "(or pass --force)")
    index_a, index_b = index_samples(a), index_samples(b)
    pairs = plan_pairs(list(index_a), list(index_b), n_pairs, seed, name_a, name_b)
    if len(pairs) < n_pairs:
        print(f"export-pairs: only {len(pairs)} clips are in both sample sets; exporting {len(pairs)} pairs")

    # every media file: (id, model, clip); written in id order so creation order says nothing
    jobs = []
    for p in pairs:
        jobs.append((p.left_video, p.left_model, p.clip))
        jobs.append((p.right_video, p.right_model, p.clip))
    jobs.sort()
    sources = {name_a: index_a, name_b: index_b}

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".page.tmp.{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        (tmp / "media").mkdir(parents=True)
        shapes = set()
        for vid, model, clip in tqdm(jobs, desc="export-pairs", disable=not progress):
            frames = display_frames(read_video(*sources[model][clip]), resolution, upscale)
            shapes.add(frames.shape)
            save_mp4(frames, tmp / "media" / f"{vid}.mp4", fps=fps, crf=MP4_CRF)
            save_gif(frames, tmp / "media" / f"{vid}.gif", fps=fps)
        if len(shapes) > 1:
            raise ExportError(f"videos differ in shape {sorted(shapes)}; set human_eval.resolution")
        for f in sorted((tmp / "media").iterdir()):
            os.utime(f, (MEDIA_MTIME, MEDIA_MTIME))
        page_src = resources.files("vqvideo.human_eval") / "page"
        for name in PAGE_FILES:
            text = (page_src / name).read_text(encoding="utf-8")
            if name == "index.html":
                text = page_html(text, pairs)
            (tmp / name).write_text(text, encoding="utf-8")
        (tmp / "pairs.csv").write_text(
            _csv(["pair_id", "left_video", "right_video"], [[p.pair_id, p.left_video, p.right_video] for p in pairs]),
            encoding="utf-8")
        _replace_dir(tmp, out / "page")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    # the clip column (row of the clip manifest) lets the analyst look a pair up; it is never shown to raters
    atomic_write_text(out / "key.csv", _csv(["pair_id", "left_model", "right_model", "clip"],
                                            [[p.pair_id, p.left_model, p.right_model, p.clip] for p in pairs]))
    return pairs
