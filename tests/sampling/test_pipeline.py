"""The sampling pipeline (``vqvideo sample`` and ``predict``) and the copy-last baseline it writes; the samplers' own
tests are in test_incremental.py."""

from __future__ import annotations

import csv
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch
import yaml

from vqvideo.cli import main
from vqvideo.data.shards import list_shards, read_shard, write_shard

from tiny_models import VQ, save_tiny_checkpoints


pytestmark = pytest.mark.usefixtures("one_thread")


def _make_clip_data(results, shards=((("train", 3)), ("val", 3), ("val", 2)), size=16, seed=0):
    """Clip shards and a manifest in the data stage's layout; returns the clips by clip id."""
    rng = np.random.default_rng(seed)
    rows, clips, counters = [], [], {}
    for split, n in shards:
        i = counters.get(split, 0)
        counters[split] = i + 1
        name = f"{split}-{i:05d}.h5"
        data = rng.integers(0, 256, size=(n, 16, size, size, 3), dtype=np.uint8)
        write_shard(results / "data" / "shards" / name, {"clips": data})
        for k in range(n):
            # one source video per split, its 16-frame clips back to back (0.64 s at 25 fps): the spread-out
            # selection of evaluation clips then takes them in manifest order
            start = 0.64 * sum(r["split"] == split for r in rows)
            rows.append({"shard": name, "index": k, "source": f"{split}.mp4", "start_s": round(start, 2),
                         "label": "x", "split": split})
            clips.append(data[k])
    with open(results / "data" / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["shard", "index", "source", "start_s", "label", "split"])
        w.writeheader()
        w.writerows(rows)
    return np.stack(clips)


def _config(tmp_path, **sampling):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"results": str(tmp_path / "results"), "evaluation": {"split": "val"},
                                    "sampling": sampling}))
    return path


def test_copy_last_command_writes_sample_shard_layout(tmp_path):
    results = tmp_path / "results"
    clips = _make_clip_data(results)
    cfg = _config(tmp_path, max_clips=4)
    assert main(["sample", "--method", "copy-last", "--configfile", str(cfg)]) == 0
    shards = list_shards(results / "baselines" / "copy_last")
    assert [p.name for p in shards] == ["shard-00000.h5", "shard-00001.h5"]
    data = [read_shard(p) for p in shards]
    ids = np.concatenate([d["clip"] for d, _ in data])
    assert ids.tolist() == [3, 4, 5, 6]  # the first 4 val clips (rows 3..7 are val), manifest order
    for arrays, attrs in data:
        assert arrays["videos"].dtype == np.uint8 and arrays["videos"].shape[1:] == (16, 16, 16, 3)
        assert arrays["clip"].dtype == np.int64 and arrays["sample"].dtype == np.int64
        assert attrs["method"] == "copy-last" and "seed" in attrs and "temperature" in attrs
        for video, clip in zip(arrays["videos"], arrays["clip"]):
            assert np.array_equal(video[:4], clips[clip][:4])
            assert np.array_equal(video[15], clips[clip][3])
    # one shard alone, as the Snakemake job runs it; an existing shard is kept, not rewritten
    with h5py.File(shards[1], "r") as f:
        before = f["videos"][()]
    assert main(["sample", "--method", "copy-last", "--shard", "1", "--configfile", str(cfg)]) == 0
    assert np.array_equal(read_shard(shards[1])[0]["videos"], before)


def test_copy_last_reads_and_writes_the_paths_it_is_given(tmp_path):
    """As the rule runs it: the manifest and the output named, nothing read from or written to the layout."""
    clips = _make_clip_data(tmp_path / "elsewhere")
    out = tmp_path / "out" / "copy-1.h5"
    assert main(["sample", "--method", "copy-last", "--shard", "1", "--configfile", str(_config(tmp_path)),
                 "--manifest", str(tmp_path / "elsewhere" / "data" / "manifest.csv"), "--out", str(out)]) == 0
    arrays, _ = read_shard(out)
    assert arrays["clip"].tolist() == [6, 7] and np.array_equal(arrays["videos"][:, :4], clips[[6, 7], :4])
    assert not (tmp_path / "results").exists()


def test_sample_without_latents_or_checkpoints_says_so(tmp_path, capsys):
    _make_clip_data(tmp_path / "results")
    assert main(["sample", "--configfile", str(_config(tmp_path))]) == 1
    assert "no latent shards" in capsys.readouterr().err


def test_copy_last_shards_stay_numbered_like_the_data_shards(tmp_path):
    _make_clip_data(tmp_path / "results")
    assert main(["sample", "--method", "copy-last", "--max-clips", "2", "--configfile", str(_config(tmp_path))]) == 0
    shards = list_shards(tmp_path / "results" / "baselines" / "copy_last")
    (first, _), (second, _) = read_shard(shards[0]), read_shard(shards[1])
    assert first["clip"].tolist() == [3, 4]
    assert second["videos"].shape == (0, 16, 16, 16, 3)  # val-00001 lies beyond max_clips: an empty shard


# --------------------------------------------------------------------------------------------- pipeline
def _make_trained_results(tmp_path, **sampling):
    """16x16 clips, a tiny VQ-VAE, its latent shards (encoded by the encode stage) and two tiny priors."""
    from vqvideo.config import load_config
    from vqvideo.encode import encode_shard

    results = tmp_path / "results"
    clips = _make_clip_data(results, shards=(("val", 3), ("val", 2)), size=16)
    save_tiny_checkpoints(results, 16, prior_scale=2.0)
    raw = {"results": str(results), "data": {"resolution": 16, "frames": 16}, "vqvae": {"model": VQ},
           "evaluation": {"split": "val"}, "sampling": {"batch_size": 2, "samples_per_clip": 2, "grid_clips": 2,
                                                         "device": "cpu", "threads": 1, **sampling}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    for i in range(2):
        encode_shard(cfg, results / "vqvae" / "checkpoint.pt", results / "data" / "shards" / f"val-{i:05d}.h5",
                     results / "latents" / "val" / f"shard-{i:05d}.h5")
    return path, clips


@pytest.mark.slow
def test_sample_writes_videos_of_the_conditioning_clips(tmp_path):
    from vqvideo.models.vqvae import VQVAE, output_to_video, video_to_input

    cfgfile, clips = _make_trained_results(tmp_path, max_clips=4)
    results = tmp_path / "results"
    assert main(["sample", "--configfile", str(cfgfile)]) == 0
    shards = list_shards(results / "samples")
    assert [p.name for p in shards] == ["shard-00000.h5", "shard-00001.h5"]
    arrays, attrs = read_shard(shards[0])
    n = 3 * 2  # 3 clips of val-00000 (max_clips 4 leaves 1 of val-00001), 2 samples each
    assert arrays["videos"].shape == (n, 16, 16, 16, 3) and arrays["videos"].dtype == np.uint8
    assert arrays["top"].shape == (n, 4, 2, 2) and arrays["bottom"].shape == (n, 8, 4, 4)
    assert arrays["top"].dtype == arrays["bottom"].dtype == np.int16
    assert arrays["clip"].tolist() == [0, 0, 1, 1, 2, 2] and arrays["sample"].tolist() == [0, 1] * 3
    assert arrays["clip"].dtype == arrays["sample"].dtype == np.int64
    assert attrs["seed"] == 0 and attrs["temperature"] == 1.0 and attrs["top_prior_hash"]
    assert read_shard(shards[1])[0]["clip"].tolist() == [3, 3]
    # the conditioning codes are those of the real first 4 frames encoded alone, and the videos are the
    # decoder's output for the stored codes: frames 0-3 are the conditioning frames' reconstruction
    vqvae = VQVAE(**VQ).eval()
    vqvae.load_state_dict(torch.load(results / "vqvae" / "checkpoint.pt", weights_only=True)["model"])
    top, bottom = (torch.from_numpy(arrays[k]).long() for k in ("top", "bottom"))
    cond_top, cond_bottom = vqvae.encode_codes(video_to_input(torch.from_numpy(clips[arrays["clip"]][:, :4])))
    assert torch.equal(top[:, :1], cond_top) and torch.equal(bottom[:, :2], cond_bottom)
    assert np.array_equal(arrays["videos"], output_to_video(vqvae.decode_codes(top, bottom)).numpy())
    # the diagnostic: sample 0 of each clip again, from the TRUE top codes (timestep 0 from the conditioning
    # frames alone) with bottom codes sampled given them
    assert arrays["true_top_clip"].tolist() == [0, 1, 2] and arrays["true_top_sample"].tolist() == [0, 0, 0]
    with h5py.File(results / "latents" / "val" / "shard-00000.h5", "r") as f:
        true_top = torch.from_numpy(np.concatenate([f["cond_top"][()], f["top"][()][:, 1:]], axis=1)[:3]).long()
    diag_bottom = torch.from_numpy(arrays["true_top_bottom"]).long()
    assert torch.equal(diag_bottom[:, :2], cond_bottom[::2])
    assert np.array_equal(arrays["true_top_videos"], output_to_video(vqvae.decode_codes(true_top, diag_bottom)).numpy())
    assert read_shard(shards[1])[0]["true_top_clip"].tolist() == [3]
    assert not np.array_equal(arrays["videos"][0], arrays["videos"][1])  # two samples of one clip differ
    for ext in ("gif", "mp4"):
        assert (results / "samples" / f"grid-00000.{ext}").stat().st_size > 0
    assert not (results / "samples" / ".parts").exists()
    # the same seed gives the same videos; the naive sampler gives the same as the incremental one
    again = tmp_path / "again"
    shutil.copytree(results, again / "results", ignore=shutil.ignore_patterns("samples"))
    cfg2 = again / "config.yaml"
    cfg2.write_text(cfgfile.read_text().replace(str(results), str(again / "results")))
    assert main(["sample", "--configfile", str(cfg2), "--shard", "0", "--method", "naive"]) == 0
    assert np.array_equal(read_shard(again / "results" / "samples" / "shard-00000.h5")[0]["videos"], arrays["videos"])


@pytest.mark.slow
def test_killed_sampling_job_resumes_without_duplicates_or_losses(tmp_path):
    cfgfile, _ = _make_trained_results(tmp_path, max_clips=3, samples_per_clip=4)  # 12 videos, 6 batches
    results = tmp_path / "results"
    parts = results / "samples" / ".parts" / "shard-00000"
    cmd = [sys.executable, "-m", "vqvideo.cli", "sample", "--configfile", str(cfgfile), "--shard", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 900  # generous: on a busy 2-core machine the sampler's start-up alone took minutes
    while time.time() < deadline and len(list(parts.glob("batch-*.h5"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    out = results / "samples" / "shard-00000.h5"
    done = sorted(parts.glob("batch-*.h5"))
    assert not out.exists() and 2 <= len(done) < 6, "the job was not killed mid-shard"
    assert main(["sample", "--configfile", str(cfgfile), "--shard", "0"]) == 0
    arrays, _ = read_shard(out)
    assert arrays["clip"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert arrays["sample"].tolist() == [0, 1, 2, 3] * 3
    # the result is an uninterrupted run's
    fresh = tmp_path / "fresh"
    shutil.copytree(results, fresh / "results", ignore=shutil.ignore_patterns("samples"))
    cfg2 = fresh / "config.yaml"
    cfg2.write_text(cfgfile.read_text().replace(str(results), str(fresh / "results")))
    assert main(["sample", "--configfile", str(cfg2), "--shard", "0"]) == 0
    whole, _ = read_shard(fresh / "results" / "samples" / "shard-00000.h5")
    for key in ("videos", "top", "bottom", "clip", "sample", "true_top_videos", "true_top_bottom", "true_top_clip"):
        assert np.array_equal(arrays[key], whole[key]), key


def test_predict_writes_a_labelled_grid_of_conditioning_truth_and_samples(tmp_path, capsys):
    import av

    from video_helpers import write_video

    cfgfile, clips = _make_trained_results(tmp_path)
    video = tmp_path / "in.mp4"
    write_video(video, list(clips[0]) + list(clips[1]), fps=25)  # 32 frames at the data stage's fps
    out = tmp_path / "out.mp4"
    assert main(["predict", "--video", str(video), "--out", str(out), "--samples", "2",
                 "--configfile", str(cfgfile)]) == 0
    with av.open(str(out)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(float)
    # conditioning | real | sample 1 | sample 2, 16x16 tiles drawn 8x (128 px), 2-pixel gaps, a 16-pixel band
    # of labels above and one below
    assert frames.shape == (16, 16 + 128 + 16, 4 * 128 + 3 * 2, 3)
    tile = lambda col, t: frames[t, 16:144, col * 130:col * 130 + 128]  # noqa: E731
    assert frames[:, :16].min() < 100 and frames[:, 144:].min() < 100  # text in both bands
    assert not np.allclose(frames[4, 144:], frames[5, 144:], atol=30)  # each frame has its own number
    assert all(np.abs(tile(0, t) - tile(0, 3)).mean() < 3 for t in range(4, 16))  # the last input held
    assert np.abs(tile(1, 10) - tile(1, 3)).mean() > 20  # the truth goes on
    for t in (0, 3):  # the input frames are in both the conditioning and the real column
        assert np.abs(tile(0, t) - tile(1, t)).mean() < 3
    # a 6-frame video is enough: the truth column says where the video ends
    six = tmp_path / "six.gif"
    write_video(tmp_path / "six.mp4", list(clips[0][:6]), fps=25)
    assert main(["predict", "--video", str(tmp_path / "six.mp4"), "--out", str(six), "--configfile",
                 str(cfgfile)]) == 0
    from PIL import Image, ImageSequence

    with Image.open(six) as im:
        gif = [np.asarray(f.convert("RGB"), dtype=float) for f in ImageSequence.Iterator(im)]
    assert len(gif) == 16
    no_frame = gif[6][16:144, 130:258]
    assert abs(np.median(no_frame) - 128) < 2 and no_frame.max() > 200  # grey with white text
    # a video shorter than the conditioning frames is refused with a sentence, and nothing is written
    short = tmp_path / "short.mp4"
    write_video(short, list(clips[0][:3]), fps=25)
    capsys.readouterr()
    assert main(["predict", "--video", str(short), "--out", str(tmp_path / "x.gif"), "--configfile", str(cfgfile)]) == 1
    err = capsys.readouterr().err
    assert "only 3 frames" in err and "4 are needed" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.gif").exists() and not list(tmp_path.glob(".x.*"))
