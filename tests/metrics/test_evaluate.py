"""vqvideo evaluate / vqvideo fvd on shards written here in the contract layout (real HDF5, the real I3D).

Small on purpose: 4 conditioning clips of 16 frames at 32x32, 2 samples each; `frames: predicted` (12 frames)
keeps the I3D work at ~20 videos.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from vqvideo.cli import main
from vqvideo.config import load_config
from vqvideo.data.shards import write_shard
from vqvideo.metrics import evaluate as ev

N_CLIPS, T, S = 4, 16, 32


def _clips(rng) -> np.ndarray:
    """Moving gradients with a little noise: [N, T, S, S, 3] uint8."""
    t, y, x = np.meshgrid(np.arange(T), np.arange(S), np.arange(S), indexing="ij")
    out = []
    for i in range(N_CLIPS):
        base = np.stack([(x * 8 + t * (i + 1) * 3) % 256, (y * 8 - t * 5 * i) % 256,
                         np.full_like(x, 60 * i)], -1).astype(np.float64)
        out.append(np.clip(base + rng.normal(0, 5, base.shape), 0, 255).round().astype(np.uint8))
    return np.stack(out)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    res = root / "results"
    rng = np.random.default_rng(0)
    clips = _clips(rng)
    # data stage: 2 train clips first, so the evaluation clips are manifest rows 2..5 in shard val-00000.h5
    write_shard(res / "data" / "shards" / "train-00000.h5", {"clips": clips[:2]})
    write_shard(res / "data" / "shards" / "val-00000.h5", {"clips": clips})
    with open(res / "data" / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["shard", "index", "source", "start_s", "label", "split"])
        for i in range(2):
            w.writerow(["train-00000.h5", i, f"t{i}.mp4", 0.0, "a", "train"])
        for i in range(N_CLIPS):
            w.writerow(["val-00000.h5", i, f"v{i}.mp4", 0.0, "a", "val"])
    ids = np.arange(2, 2 + N_CLIPS)
    # samples: 2 per clip, the real clip with its predicted frames perturbed
    videos = np.repeat(clips, 2, axis=0).astype(np.int16)
    videos[:, 4:] += rng.integers(-40, 40, videos[:, 4:].shape, dtype=np.int16)
    # the true-top diagnostic: one per clip, closer to the truth than the samples
    true_top = clips.astype(np.int16)
    true_top[:, 4:] += rng.integers(-10, 10, true_top[:, 4:].shape, dtype=np.int16)
    write_shard(res / "samples" / "shard-00000.h5",
                {"videos": np.clip(videos, 0, 255).astype(np.uint8), "clip": np.repeat(ids, 2),
                 "sample": np.tile([0, 1], N_CLIPS), "true_top_videos": np.clip(true_top, 0, 255).astype(np.uint8),
                 "true_top_clip": ids, "true_top_sample": np.zeros(N_CLIPS, np.int64)})
    copy = clips.copy()
    copy[:, 4:] = clips[:, 3:4]
    write_shard(res / "baselines" / "copy_last" / "shard-00000.h5",
                {"videos": copy, "clip": ids, "sample": np.zeros(N_CLIPS, np.int64)})
    # reconstructions equal to the real clips: the reconstruction bracket must be ~0 and FVD* = FVD
    write_shard(res / "latents" / "val" / "recon-00000.h5", {"videos": clips, "clip": ids})
    cfg = {"results": str(res), "evaluation": {"resolutions": [32], "folds": 2, "frames": "predicted",
                                               "batch_size": 4}}
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    return root


@pytest.mark.slow
def test_evaluate_writes_fvd_and_quality(results, capsys):
    cfgfile = results / "cfg.yaml"
    assert main(["evaluate", "--configfile", str(cfgfile), "--resolution", "32", "--quality"]) == 0
    out = json.loads((results / "results" / "fvd_32.json").read_text())
    assert out["resolution"] == 32 and len(out["folds"]) == 2
    assert out["value"] == pytest.approx(np.mean(out["folds"]))
    assert out["std"] == pytest.approx(np.std(out["folds"]))
    assert out["n_videos"]["samples"] == 8 and out["n_videos"]["real"] == 4
    assert out["fvd"]["fold_sizes"] == [[4, 2], [4, 2]]
    assert out["rank_deficient"] is True
    assert out["protocol"]["frames"] == "predicted" and out["protocol"]["n_frames"] == 12
    assert len(out["weights"]["sha256"]) == 64 and out["config_hash"]
    recon = out["baselines"]["reconstructions"]
    assert abs(recon["fvd"]["value"]) < 1e-3 * out["value"]
    np.testing.assert_allclose(out["fvd_star"]["folds"], out["folds"], rtol=1e-9)
    assert out["value"] > 0 and out["baselines"]["copy_last"]["fvd"]["value"] > 0
    # KVD beside FVD, in the same structure, on the same features
    kvd = out["kvd"]
    assert len(kvd["folds"]) == 2 and kvd["value"] == pytest.approx(np.mean(kvd["folds"]))
    assert kvd["fold_sizes"] == out["fvd"]["fold_sizes"]
    np.testing.assert_allclose(out["kvd_star"]["folds"], kvd["folds"], rtol=1e-9)  # reconstructions = real
    assert recon["kvd"]["value"] < 0 < kvd["value"]  # identical sets: unbiased MMD^2 slightly below 0
    assert out["baselines"]["copy_last"]["kvd"]["value"] > 0
    # reconstructions equal to the real clips rank best on both metrics
    assert out["sanity"]["kvd"]["ranking"][0] == "reconstructions" and out["sanity"]["ok"] is True
    assert out["sanity"]["fvd"]["reconstructions_best"] is True and out["sanity"]["warnings"] == []

    q = json.loads((results / "results" / "quality.json").read_text())
    assert q["predicted_frames"] == [5, 16]
    assert len(q["samples"]["psnr_per_frame"]) == 12 and len(q["copy_last"]["ssim_per_frame"]) == 12
    assert len(q["samples"]["best_of_k_psnr_per_frame"]) == 12 and q["samples"]["k"] == 2
    assert q["samples"]["best_of_k_psnr"] >= q["samples"]["psnr"] - 1e-9
    assert q["samples"]["n_clips"] == 4 and q["copy_last"]["n_videos"] == 4
    assert q["diversity"]["pairs"] == 4 and q["diversity"]["mean_pairwise_1_minus_ssim"] > 0
    assert q["reconstructions"]["psnr"] == 100.0 and q["reconstructions"]["ssim"] == pytest.approx(1.0)
    diag = q["diagnostics"]
    assert diag["true_top_sampled_bottom"]["n_videos"] == 4
    assert diag["true_top_sampled_bottom"]["psnr"] > diag["full_samples"]["psnr"] == q["samples"]["psnr"]
    assert "mean MSE" in q["aggregation"]["psnr"]
    png = results / "results" / "quality_per_frame.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a second run takes every feature set from the content-keyed cache
    capsys.readouterr()
    assert main(["evaluate", "--configfile", str(cfgfile), "--resolution", "32"]) == 0
    log = capsys.readouterr().out
    assert log.count("from the cache") == 4 and "through I3D" not in log
    again = json.loads((results / "results" / "fvd_32.json").read_text())
    assert again["folds"] == out["folds"]

    # 3 folds of 4 clips would leave a fold with one video: fewer folds, said in the JSON (features cached)
    raw = yaml.safe_load(cfgfile.read_text())
    raw["evaluation"]["folds"] = 3
    (results / "cfg3.yaml").write_text(yaml.safe_dump(raw))
    with pytest.warns(UserWarning, match="fold"):
        assert main(["evaluate", "--configfile", str(results / "cfg3.yaml"), "--resolution", "32"]) == 0
    three = json.loads((results / "results" / "fvd_32.json").read_text())
    assert three["protocol"]["folds"] == 2 and three["protocol"]["folds_asked"] == 3


def test_folds_are_disjoint_seeded_and_cover_all():
    clips = np.repeat(np.arange(10, 21), 3)
    folds = ev.assign_folds(clips, 2, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(10, 21))
    assert not set(folds[0]) & set(folds[1])
    assert [f.tolist() for f in folds] == [f.tolist() for f in ev.assign_folds(clips, 2, seed=0)]
    assert [f.tolist() for f in folds] != [f.tolist() for f in ev.assign_folds(clips, 2, seed=1)]
    with pytest.raises(ValueError, match="folds"):
        ev.assign_folds([1, 2], 3, seed=0)


@pytest.mark.slow
def test_fvd_cli_on_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 9, 16, 16, 3), dtype=np.uint8)
    b = (a // 2).astype(np.uint8)
    np.savez(tmp_path / "a.npz", videos=a)
    np.savez(tmp_path / "b.npz", b)
    out = tmp_path / "fvd.json"
    with pytest.warns(UserWarning, match="rank-deficient"):
        assert main(["fvd", "--real", str(tmp_path / "a.npz"), "--fake", str(tmp_path / "b.npz"),
                     "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["fvd"] > 0 and res["n_real"] == 2 and res["rank_deficient"] is True
    assert np.isfinite(res["kvd"]) and "KVD = " in capsys.readouterr().out
    np.savez(tmp_path / "c.npz", videos=a[:, :, :8])
    assert main(["fvd", "--real", str(tmp_path / "a.npz"), "--fake", str(tmp_path / "c.npz")]) == 2
    assert "differ in shape" in capsys.readouterr().err


def test_config_section_round_trips():
    cfg = load_config(None, {"evaluation.frames": "predicted", "evaluation.folds": 3})
    assert cfg.evaluation.frames == "predicted" and cfg.evaluation.folds == 3 and cfg.evaluation.seed == 0


def test_sanity_warns_when_reconstructions_do_not_rank_best():
    def entry(v):
        return {"value": v, "rank_deficient": True}

    comp = {"fvd": {"samples": entry(1970.0), "copy_last": entry(338.0), "reconstructions": entry(2401.0)},
            "kvd": {"samples": entry(3.0), "copy_last": entry(1.0), "reconstructions": entry(0.5)}}
    with pytest.warns(UserWarning, match="FVD does not rank the reconstructions best"):
        out = ev.sanity(comp)
    assert out["fvd"]["ranking"] == ["copy_last", "samples", "reconstructions"]
    assert out["fvd"]["reconstructions_best"] is False and out["kvd"]["reconstructions_best"] is True
    assert out["ok"] is False and any("biased" in w for w in out["warnings"])
    comp["fvd"]["reconstructions"] = None  # a missing set: no verdict, no warning
    assert ev.sanity(comp)["fvd"]["reconstructions_best"] is None and ev.sanity(comp)["ok"] is True


def test_psnr_of_the_mean_mse_is_not_dominated_by_one_identical_frame():
    # 2 videos x 12 frames at MSE 100 (28.13 dB), one frame of one video identical to the truth (MSE 0)
    mse = np.full((2, 12), 100.0)
    mse[0, 3] = 0.0
    scores = ev.FrameScores(mse, np.full((2, 12), 0.5), np.array([7, 8]))
    out = ev.summarize(scores)
    base = 10 * np.log10(255.0 ** 2 / 100.0)
    assert out["identical_frames"] == 1
    assert out["psnr_capped_mean"] == pytest.approx((23 * base + 100.0) / 24)  # the former mean: +3 dB from one frame
    assert out["psnr"] == pytest.approx((11 * base + 10 * np.log10(255.0 ** 2 / 50.0)) / 12)  # +0.25 dB
    assert out["psnr_per_frame"][3] == pytest.approx(10 * np.log10(255.0 ** 2 / 50.0))


def test_best_of_k_takes_each_clips_best_sample():
    mse = np.array([[50.0, 50.0], [10.0, 110.0], [200.0, 200.0], [300.0, 300.0]])  # clip 1: samples 0, 1; clip 2: 2, 3
    ssim = np.array([[0.2, 0.2], [0.9, 0.1], [0.3, 0.3], [0.1, 0.1]])
    out = ev.summarize(ev.FrameScores(mse, ssim, np.array([1, 1, 2, 2])), best_of_k=True)
    assert out["k"] == 2 and out["n_clips"] == 2
    # PSNR: clip 1's lowest mean MSE is its sample 0 (50 < 60), clip 2's its sample 0 (row 2); SSIM: rows 1, 2
    assert out["best_of_k_psnr_per_frame"] == pytest.approx(list(ev.psnr_of_mse([(50 + 200) / 2, (50 + 200) / 2])))
    assert out["best_of_k_ssim"] == pytest.approx(np.mean([0.5, 0.5, 0.3, 0.3]))  # sample 1 (0.5) and sample 2 (0.3)


def test_best_of_k_curve_takes_the_best_of_each_clips_first_k_samples():
    """k = 1, 2 and K = 3 (not a power of two): best of the first k samples of each clip, clips in any order."""
    mse = np.array([[100.0] * 2, [30.0] * 2, [60.0] * 2, [90.0] * 2, [20.0] * 2, [10.0] * 2])
    ssim = np.array([[0.1] * 2, [0.6] * 2, [0.3] * 2, [0.2] * 2, [0.5] * 2, [0.4] * 2])
    out = ev.summarize(ev.FrameScores(mse, ssim, np.array([1, 2, 1, 2, 1, 2])), best_of_k=True)
    curve = out["best_of_k_curve"]
    assert curve["k"] == [1, 2, 3]
    assert curve["psnr"] == pytest.approx([float(ev.psnr_of_mse(m)) for m in ((100 + 30) / 2, (60 + 30) / 2,
                                                                                (20 + 10) / 2)])
    assert curve["ssim"] == pytest.approx([(0.1 + 0.6) / 2, (0.3 + 0.6) / 2, (0.5 + 0.6) / 2])
    assert curve["psnr"][-1] == pytest.approx(out["best_of_k_psnr"])
