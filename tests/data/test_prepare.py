"""The data stage end to end on real files: shards + manifest, determinism, bad inputs, annotations, resume."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vqvideo.cli import main as cli_main
from vqvideo.data.datasets import ClipDataset, load_clips, read_manifest
from vqvideo.data.params import Params
from vqvideo.data.prepare import prepare_data
from vqvideo.data.shards import list_shards
from vqvideo.data.video import load_frames
from video_helpers import index_frame, read_index, write_audio_only, write_index_video, write_video

CLIPS = Params(frames=8, fps=25, resolution=32, stride=8)
SETTINGS = dict(shard_size=4)


def moving_frames(n, w=64, h=48, seed=0):
    rng = np.random.default_rng(seed)
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[:] = rng.integers(0, 255, 3)
    for i in range(n):
        x = (5 + 3 * i) % (w - 10)
        frames[i, 10:20, x:x + 10] = rng.integers(0, 255, 3)
    return frames


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    write_video(root / "train" / "walking" / "a.mp4", moving_frames(40, seed=1))  # 1.6 s at 25 fps
    write_video(root / "train" / "walking" / "b 30fps.mp4", moving_frames(60, 96, 64, seed=2), fps=30)
    write_video(root / "train" / "Ünïcode clip.MP4", moving_frames(20, seed=3))
    write_index_video(root / "val" / "idx60.mp4", 60, fps=60)  # 1 s at 60 fps
    write_video(root / "top level.mp4", moving_frames(16, seed=4))  # directly under DIR: --split
    return root


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def all_clips(out):
    return np.concatenate([h5py.File(p, "r")["clips"][()] for p in list_shards(out / "shards")])


def test_manifest_matches_shards(videos, tmp_path):
    out = tmp_path / "out"
    assert prepare_data(videos, out, CLIPS, **SETTINGS, workers=1) == 0
    rows = read_manifest(out)
    by_source = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(r)
    assert sorted(by_source) == ["top level.mp4", "train/walking/a.mp4", "train/walking/b 30fps.mp4",
                                 "train/Ünïcode clip.MP4", "val/idx60.mp4"]
    # clips per video: floor(duration * 25) frames, clips of 8 every 8 frames
    assert {k: len(v) for k, v in by_source.items()} == {
        "train/walking/a.mp4": 5, "train/walking/b 30fps.mp4": 6, "train/Ünïcode clip.MP4": 2,
        "val/idx60.mp4": 3, "top level.mp4": 2}
    assert {r["split"] for r in by_source["top level.mp4"]} == {"train"}
    assert {r["label"] for r in by_source["train/walking/a.mp4"]} == {"walking"}
    assert [r["start_s"] for r in by_source["train/walking/a.mp4"]] == [0.0, 0.32, 0.64, 0.96, 1.28]
    # every row points at its own clip; shards hold exactly the manifest's rows, split by split
    shards = list_shards(out / "shards")
    assert {p.name for p in shards} == {r["shard"] for r in rows}
    for p in shards:
        with h5py.File(p, "r") as f:
            mine = [r for r in rows if r["shard"] == p.name]
            assert f["clips"].shape == (len(mine), 8, 32, 32, 3) and f["clips"].dtype == np.uint8
            assert f["clips"].chunks == (1, 8, 32, 32, 3)
            assert [r["index"] for r in mine] == list(range(len(mine)))
            assert f.attrs["split"] == p.name.split("-")[0] == mine[0]["split"]
            assert (f.attrs["fps"], f.attrs["frames"], f.attrs["resolution"]) == (25, 8, 32)
    assert all(len(read_csv(out / "manifest.csv")) == len(rows) for _ in [0])
    # the 60 fps index video: clip 1 starts at output frame 8 = 0.32 s = source frame 19.2 -> 19
    val = [r["clip"] for r in rows if r["source"] == "val/idx60.mp4"]
    clips = load_clips(out, val)
    assert [read_index(f) for f in clips[1]] == [k * 60 // 25 for k in range(8, 16)]
    # clip content is the decoded video at the clip's start
    r = by_source["train/walking/b 30fps.mp4"][2]
    frames = load_frames(videos / r["source"], 25, 32)
    np.testing.assert_array_equal(load_clips(out, [r["clip"]])[0], frames[16:24])
    assert read_csv(out / "rejects.csv") == []


def test_deterministic_and_parallel_gives_the_same_bytes(videos, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert prepare_data(videos, a, CLIPS, **SETTINGS, workers=1) == 0
    assert prepare_data(videos, b, CLIPS, **SETTINGS, workers=2) == 0
    assert (a / "manifest.csv").read_bytes() == (b / "manifest.csv").read_bytes()
    assert [p.name for p in list_shards(a / "shards")] == [p.name for p in list_shards(b / "shards")]
    np.testing.assert_array_equal(all_clips(a), all_clips(b))


def test_bad_inputs_are_rejected_with_reasons(videos, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(videos / "train" / "walking", bad / "train" / "ok")
    good = (bad / "train" / "ok" / "a.mp4").read_bytes()
    (bad / "train" / "zero.mp4").touch()
    (bad / "train" / "random.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (bad / "train" / "truncated.mp4").write_bytes(good[: len(good) // 2])  # index (moov) at the end: cut off
    write_audio_only(bad / "train" / "audio.mp4")
    write_video(bad / "train" / "short.mp4", moving_frames(5))
    # a codec this FFmpeg cannot decode: rename H.264's sample entry
    (bad / "train" / "codec.mp4").write_bytes(good.replace(b"avc1", b"zzzz"))
    os.symlink(bad / "nowhere.mp4", bad / "train" / "unreadable.mp4")
    (bad / "train" / "notes.txt").write_text("not a video")
    assert prepare_data(bad, tmp_path / "out", CLIPS, **SETTINGS) == 0  # bad inputs are never fatal
    reasons = {r["source"]: r["reason"] for r in read_csv(tmp_path / "out" / "rejects.csv")}
    expected = {"train/zero.mp4": "empty file (0 bytes)",
                "train/random.mp4": "not a readable video",
                "train/truncated.mp4": "truncated",
                "train/audio.mp4": "no video stream (audio only",
                "train/short.mp4": "too short: 5 frames at 25 fps",
                "train/codec.mp4": "unsupported codec",
                "train/unreadable.mp4": "cannot read the file",
                "train/notes.txt": "not a video file (extension .txt)"}
    assert set(reasons) == set(expected)
    for source, reason in expected.items():
        assert reason in reasons[source], (source, reasons[source])
    assert {r["source"] for r in read_manifest(tmp_path / "out")} == {"train/ok/a.mp4", "train/ok/b 30fps.mp4"}


def test_every_input_failing_exits_nonzero(tmp_path, capsys):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "empty.mp4").touch()
    assert prepare_data(tmp_path / "v", tmp_path / "out", CLIPS, **SETTINGS) == 1
    assert "rejected 1 inputs" in capsys.readouterr().out
    assert read_csv(tmp_path / "out" / "rejects.csv")[0]["reason"] == "empty file (0 bytes)"


def test_truncated_faststart_mp4(tmp_path):
    src = write_video(tmp_path / "v.mp4", moving_frames(50))
    fast = tmp_path / "fast.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-c", "copy", "-movflags", "+faststart", str(fast)],
                   check=True) if shutil.which("ffmpeg") else pytest.skip("needs ffmpeg")
    data = fast.read_bytes()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cut.mp4").write_bytes(data[: len(data) // 2])
    prepare_data(tmp_path / "in", tmp_path / "out", CLIPS, **SETTINGS)
    assert "truncated" in read_csv(tmp_path / "out" / "rejects.csv")[0]["reason"]


def test_kinetics_annotations(tmp_path):
    root = tmp_path / "k600"
    write_video(root / "train" / "dancing" / "abc_000010_000020.mp4", moving_frames(20))
    write_video(root / "val" / "dancing" / "xyz_000000_000010.mp4", moving_frames(20, seed=5))
    write_video(root / "train" / "dancing" / "unlisted_000000_000010.mp4", moving_frames(20))
    csv_path = tmp_path / "k600.csv"
    csv_path.write_text("label,youtube_id,time_start,time_end,split\n"
                        "dancing,abc,10,20,train\n"
                        "dancing,xyz,0,10,validate\n"
                        "dancing,gone,0,10,train\n")
    assert prepare_data(root, tmp_path / "out", CLIPS, **SETTINGS, annotations=csv_path) == 0
    rows = read_manifest(tmp_path / "out")
    assert {(r["source"], r["split"], r["label"]) for r in rows} == {
        ("train/dancing/abc_000010_000020.mp4", "train", "dancing"),
        ("val/dancing/xyz_000000_000010.mp4", "val", "dancing")}
    (reject,) = read_csv(tmp_path / "out" / "rejects.csv")
    assert reject["source"] == "train/dancing/gone_000000_000010.mp4" and "no such video" in reject["reason"]


def test_frame_folders(tmp_path):
    from PIL import Image

    for name in ["traj_0", "traj_1"]:
        folder = tmp_path / "bair" / name
        folder.mkdir(parents=True)
        for i in range(12):
            Image.fromarray(index_frame(i)).save(folder / f"{i}.png")
    assert prepare_data(tmp_path / "bair", tmp_path / "out", Params(8, 25, 32, 8, frame_folder_fps=10), **SETTINGS) == 0
    rows = read_manifest(tmp_path / "out")
    assert [r["source"] for r in rows] == ["traj_0"] * 3 + ["traj_1"] * 3  # 1.2 s at 10 fps -> 30 frames
    clip = load_clips(tmp_path / "out", [1])[0]
    assert [read_index(f) for f in clip] == [k * 10 // 25 for k in range(8, 16)]


def test_dataset_with_workers_and_load_clips(videos, tmp_path):
    out = tmp_path / "out"
    prepare_data(videos, out, CLIPS, **SETTINGS)
    ds = ClipDataset(out, "train")
    assert len(ds) == 15 and ds[0].dtype == torch.uint8 and ds[0].shape == (8, 32, 32, 3)
    loader = DataLoader(ds, batch_size=4, num_workers=2)
    batches = torch.cat(list(loader))
    np.testing.assert_array_equal(batches.numpy(), load_clips(out, ds.clip_ids))
    reversed_ids = ds.clip_ids[::-1]
    np.testing.assert_array_equal(load_clips(out, reversed_ids), batches.numpy()[::-1])


@pytest.mark.slow
def test_killed_run_resumes(tmp_path):
    root = tmp_path / "videos"
    for i in range(6):
        write_video(root / f"v{i}.mp4", moving_frames(50, 320, 240, seed=i))
    clip = dict(frames=8, fps=25, resolution=32, stride=8, max_clips_per_video=6)
    reference = tmp_path / "reference"
    prepare_data(root, reference, Params(**clip), shard_size=6)
    out = tmp_path / "out"
    code = (f"import sys; from vqvideo.data.params import Params; from vqvideo.data.prepare import prepare_data; "
            f"sys.exit(prepare_data({str(root)!r}, {str(out)!r}, Params(**{clip!r}), shard_size=6))")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    first = out / "shards" / "train-00000.h5"
    deadline = time.time() + 60
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = list_shards(out / "shards")
    assert 1 <= len(done) < 6, "the run should have been killed part way"
    assert not (out / "manifest.csv").exists()
    stamp = first.stat().st_mtime_ns, first.stat().st_ino
    assert prepare_data(root, out, Params(**clip), shard_size=6) == 0
    assert (first.stat().st_mtime_ns, first.stat().st_ino) == stamp  # not redone
    assert (out / "manifest.csv").read_bytes() == (reference / "manifest.csv").read_bytes()
    np.testing.assert_array_equal(all_clips(out), all_clips(reference))
    assert not [p for p in (out / "shards").iterdir() if p.name.startswith(".")]  # no temporary file left


def test_cli_flags_override_config(videos, tmp_path):
    smoke = Path(__file__).resolve().parents[2] / "config" / "smoke.yaml"
    rc = cli_main(["prepare-data", "--configfile", str(smoke), "--videos", str(videos / "val"),
                   "--out", str(tmp_path / "out"), "--frames", "4", "--fps", "10", "--resolution", "16",
                   "--split", "test", "--workers", "1"])
    assert rc == 0
    rows = read_manifest(tmp_path / "out")
    assert {r["split"] for r in rows} == {"test"} and len(rows) >= 1
    assert load_clips(tmp_path / "out", [0]).shape == (1, 4, 16, 16, 3)
