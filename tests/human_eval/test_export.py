"""export-pairs: pairs only for shared clips, seeded sides, media that match the key, and a page that reveals
nothing about which model made which video (names, paths, metadata, file order, timestamps)."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from vqvideo.cli import main
from vqvideo.data.shards import write_shard
from vqvideo.human_eval.export import ExportError, display_frames, export_pairs, plan_pairs

T, S = 16, 16  # frames, size of the test videos (small: every test here runs in a second or two)
UP = 4          # display upscale: x264 output is reproducible from 64 pixels wide up, not below


def video(clip: int, model: int) -> np.ndarray:
    """A distinct, few-colour video per (clip, model), so a GIF holds it exactly."""
    v = np.zeros((T, S, S, 3), np.uint8)
    for t in range(T):
        x = (clip + (t if model == 0 else 0)) % (S - 4)
        v[t, 4:10, x:x + 4] = (200, 30 * (clip % 8), 100 * model)
    return v


def sample_set(folder: Path, clips: list[int], model: int, shards: int = 2, extra_samples: bool = False) -> Path:
    """Sample shards in the contract's layout; with ``extra_samples`` each clip also has a sample 1 (noise)."""
    rows = [(c, 0, video(c, model)) for c in clips]
    if extra_samples:
        rng = np.random.default_rng(5)
        rows = [(c, 1, rng.integers(0, 255, (T, S, S, 3), dtype=np.uint8)) for c in clips] + rows
    for i in range(shards):
        part = rows[i::shards]
        write_shard(folder / f"shard-{i:05d}.h5", {"videos": np.stack([r[2] for r in part]),
                                                    "clip": np.array([r[0] for r in part], np.int64),
                                                    "sample": np.array([r[1] for r in part], np.int64)})
    return folder


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def gif_frames(path: Path, frame_ms: int = 100) -> np.ndarray:
    """Frames of a GIF at ``frame_ms`` each (Pillow merges repeated frames into one longer frame)."""
    with Image.open(path) as im:
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames += [np.asarray(im.convert("RGB"))] * round(im.info["duration"] / frame_ms)
    return np.stack(frames)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def sets(tmp_path):
    a = sample_set(tmp_path / "a_samples", list(range(0, 12)), model=0, extra_samples=True)
    b = sample_set(tmp_path / "b_baseline", list(range(4, 16)), model=1)
    return a, b


def test_pairs_media_and_key_agree(sets, tmp_path):
    a, b = sets
    out = tmp_path / "he"
    pairs = export_pairs(a, b, out, n_pairs=6, seed=0, name_a="ours", name_b="copy_last", resolution=None,
                         upscale=UP, fps=10, progress=False)
    key, shown = read_csv(out / "key.csv"), read_csv(out / "page" / "pairs.csv")
    assert list(key[0]) == ["pair_id", "left_model", "right_model", "clip"]
    assert list(shown[0]) == ["pair_id", "left_video", "right_video"]
    assert [k["pair_id"] for k in key] == [s["pair_id"] for s in shown] == [p.pair_id for p in pairs]
    assert len(key) == 6 and all(4 <= int(k["clip"]) < 12 for k in key)   # only clips in both sets
    assert len({k["clip"] for k in key}) == 6
    for name in ("index.html", "app.js", "style.css"):
        assert (out / "page" / name).is_file()
    assert not (out / "page" / "key.csv").exists()
    media = sorted(p.name for p in (out / "page" / "media").iterdir())
    assert len(media) == 6 * 2 * 2

    for k, s in zip(key, shown):
        for side in ("left", "right"):
            model = 0 if k[f"{side}_model"] == "ours" else 1
            expected = video(int(k["clip"]), model).repeat(UP, 1).repeat(UP, 2)   # nearest, sample 0 only
            np.testing.assert_array_equal(gif_frames(out / "page" / "media" / f"{s[side + '_video']}.gif"), expected)
            with av.open(str(out / "page" / "media" / f"{s[side + '_video']}.mp4")) as c:
                decoded = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
            assert decoded.shape == expected.shape
            assert np.abs(decoded.astype(int) - expected).mean() < 6   # H.264 at crf 12: close to the pixels


def test_sides_are_seeded_and_mixed(sets, tmp_path):
    a, b = sets
    run = lambda seed, out: export_pairs(a, b, tmp_path / out, n_pairs=8, seed=seed, resolution=None, upscale=UP,
                                         fps=10, progress=False)
    p1, p2, p3 = run(1, "x"), run(1, "y"), run(2, "z")
    assert p1 == p2
    assert tree(tmp_path / "x" / "page") == tree(tmp_path / "y" / "page")
    assert [p.left_model for p in p1] != [p.left_model for p in p3] or [p.clip for p in p1] != [p.clip for p in p3]
    for pairs in (p1, p3):   # balanced: model A on the left in half of the pairs
        assert [p.left_model for p in pairs].count("ours") == 4
    for n in (1, 5, 7):
        lefts = [p.left_model for p in plan_pairs(list(range(20)), list(range(20)), n, 0, "ours", "other")]
        assert lefts.count("ours") in (n // 2, n // 2 + 1)


def test_page_reveals_nothing_about_the_key(sets, tmp_path):
    """The same samples under other model names and other folders give a byte-identical page/."""
    a, b = sets
    a2, b2 = tmp_path / "zzz_folder_one", tmp_path / "qqq_folder_two"
    os.rename(a, a2)
    os.rename(b, b2)
    kw = dict(n_pairs=8, seed=4, resolution=None, upscale=UP, fps=10, progress=False)
    export_pairs(a2, b2, tmp_path / "e1", name_a="alphamodel", name_b="betamodel", **kw)
    os.rename(a2, a)
    os.rename(b2, b)
    export_pairs(a, b, tmp_path / "e2", name_a="ours", name_b="copy_last", **kw)
    page1, page2 = tree(tmp_path / "e1" / "page"), tree(tmp_path / "e2" / "page")
    assert page1 == page2   # names, folders and run time leave no trace: file names, contents, metadata
    for data in page1.values():
        for secret in (b"alphamodel", b"betamodel", b"zzz_folder", b"qqq_folder", b"a_samples", b"b_baseline",
                       b"copy_last", str(tmp_path).encode()):
            assert secret not in data
    key = read_csv(tmp_path / "e2" / "key.csv")
    assert {k["left_model"] for k in key} == {"ours", "copy_last"}   # so the invariance above is not vacuous

    media = sorted((tmp_path / "e2" / "page" / "media").iterdir())
    assert len({p.stat().st_mtime for p in media}) == 1   # timestamps do not follow the writing order
    # ids say nothing about the side: which side sorts first varies between pairs
    shown = read_csv(tmp_path / "e2" / "page" / "pairs.csv")
    assert {s["left_video"] < s["right_video"] for s in shown} == {True, False}
    # ... and says nothing about the model: our video's id sorts first in some pairs and last in others
    ours_first = {(s["left_video"] < s["right_video"]) == (k["left_model"] == "ours") for k, s in zip(key, shown)}
    assert ours_first == {True, False}
    assert all(re.fullmatch(r"[0-9a-f]{16}", s[side]) for s in shown for side in ("left_video", "right_video"))


def test_rerun_replaces_the_page_atomically(sets, tmp_path):
    a, b = sets
    out = tmp_path / "he"
    export_pairs(a, b, out, n_pairs=3, seed=0, resolution=None, upscale=1, fps=10, progress=False)
    old = set(os.listdir(out / "page" / "media"))
    export_pairs(a, b, out, n_pairs=2, seed=9, resolution=None, upscale=1, fps=10, progress=False)
    new = set(os.listdir(out / "page" / "media"))
    assert len(new) == 8 and not (old & new)   # no stale media from the previous export
    assert sorted(os.listdir(out)) == ["key.csv", "page"]   # no temporary folders or files left
    assert len(read_csv(out / "key.csv")) == 2
    # once ratings are collected, a new export would change the videos behind their pair ids: refused
    (out / "ratings").mkdir()
    (out / "ratings" / "r1.csv").write_text("rater_id,pair_id,choice\nr1,p001,left\n")
    with pytest.raises(ExportError, match="already holds ratings"):
        export_pairs(a, b, out, n_pairs=2, seed=5, resolution=None, upscale=1, fps=10, progress=False)
    assert set(os.listdir(out / "page" / "media")) == new
    export_pairs(a, b, out, n_pairs=2, seed=5, resolution=None, upscale=1, fps=10, progress=False, force=True)
    assert set(os.listdir(out / "page" / "media")) != new


def test_refusals(tmp_path):
    a = sample_set(tmp_path / "a", [0, 1], model=0, shards=1)
    b = sample_set(tmp_path / "b", [2, 3], model=1, shards=1)
    with pytest.raises(ExportError, match="share no conditioning clip"):
        export_pairs(a, b, tmp_path / "o", progress=False)
    with pytest.raises(ExportError, match="no shard"):
        export_pairs(a, tmp_path / "empty", tmp_path / "o", progress=False)
    with pytest.raises(ExportError, match="different names"):
        export_pairs(a, a, tmp_path / "o", name_a="x", name_b="x", progress=False)
    write_shard(tmp_path / "c" / "shard-00000.h5", {"videos": np.zeros((1, T, S, S, 3), np.uint8),
                                                     "clip": np.zeros(1, np.int64)})
    with pytest.raises(ExportError, match="'sample' missing"):
        export_pairs(a, tmp_path / "c", tmp_path / "o", progress=False)
    assert not (tmp_path / "o" / "page").exists() and not (tmp_path / "o" / "key.csv").exists()


def test_display_frames_area_then_nearest():
    v = np.zeros((2, 8, 8, 3), np.uint8)
    v[:, :4, :4] = 255
    out = display_frames(v, resolution=4, upscale=3)
    assert out.shape == (2, 12, 12, 3)
    assert (out[:, :6, :6] == 255).all() and (out[:, 6:, :] == 0).all()
    assert display_frames(v, None, 1).shape == v.shape


def test_cli_export_pairs(sets, tmp_path, capsys):
    a, b = sets
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"results: {tmp_path / 'res'}\nhuman_eval: {{n_pairs: 5, resolution: 8, upscale: 2}}\n")
    rc = main(["export-pairs", "--configfile", str(cfg), "--a", str(a), "--b", str(b), "--n-pairs", "3",
               "--name-a", "mine", "--seed", "7"])
    assert rc == 0
    key = read_csv(tmp_path / "res" / "human_eval" / "key.csv")
    key_bytes = (tmp_path / "res" / "human_eval" / "key.csv").read_bytes()
    assert len(key) == 3 and {k["left_model"] for k in key} | {k["right_model"] for k in key} == {"mine", "copy_last"}
    gif = next((tmp_path / "res" / "human_eval" / "page" / "media").glob("*.gif"))
    assert gif_frames(gif, frame_ms=40).shape == (T, 16, 16, 3)   # resized to 8, shown at x2, data.fps 25
    assert main(["export-pairs", "--configfile", str(cfg), "--a", str(a), "--b", str(tmp_path / "nope")]) == 2
    assert "no shard" in capsys.readouterr().err
    assert (tmp_path / "res" / "human_eval" / "key.csv").read_bytes() == key_bytes  # the failed export left it alone
