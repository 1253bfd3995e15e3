"""The priors' predictability baselines: repeat share and the copy-previous model, against hand computations."""

import numpy as np
import pytest

from vqvideo.data.latents import LatentDataset
from vqvideo.data.shards import write_shard
from vqvideo.train.priors import code_counts, copy_previous_baseline, modelled_and_previous

K = 4


def _write(folder, split, top, cond_top):
    n = len(top)
    write_shard(folder / split / "shard-00000.h5",
                {"top": np.asarray(top, np.int16), "cond_top": np.asarray(cond_top, np.int16),
                 "bottom": np.zeros((n, 8, 2, 2), np.int16), "cond_bottom": np.zeros((n, 2, 2, 2), np.int16),
                 "clip": np.arange(n, dtype=np.int64)})


def test_previous_codes_use_the_conditioning_codes_encoded_alone(tmp_path):
    # one clip, a 1x1 top grid: top = [9, 1, 1, 2] but cond_top (frames 1-4 alone) = [1]
    _write(tmp_path, "train", [[[[3]], [[1]], [[1]], [[2]]]], [[[[1]]]])
    x, prev = modelled_and_previous(LatentDataset(tmp_path, "train").shards[0], "top")
    assert x.ravel().tolist() == [1, 1, 2] and prev.ravel().tolist() == [1, 1, 1]


def test_copy_previous_baseline_matches_a_hand_computation(tmp_path):
    rng = np.random.default_rng(0)
    top = rng.integers(0, K, (20, 4, 2, 2))
    top[:, 2] = top[:, 1]                                       # timestep 2 always repeats
    cond = top[:, :1].copy()
    cond[::2] = (cond[::2] + 1) % K                             # half of the conditioning codes differ
    _write(tmp_path, "train", top, cond)
    _write(tmp_path, "val", top[:10], cond[:10])
    train, val = LatentDataset(tmp_path, "train"), LatentDataset(tmp_path, "val")
    counts = code_counts(train, "top", K)
    out = copy_previous_baseline(train, val, "top", counts)

    seq = np.concatenate([cond, top[:, 1:]], 1)
    x, prev = seq[:, 1:], seq[:, :-1]
    assert out["repeat_share_train"] == pytest.approx((x == prev).mean())
    assert out["cond_match_val"] == pytest.approx((cond[:10] == top[:10, :1]).mean())
    u = (counts + 1.0) / (counts.sum() + K)

    def bits(p, xs, ps):
        q = p * (xs == ps) + (1 - p) * u[xs]
        return -np.log2(q).mean()

    grid = np.linspace(0.001, 0.999, 999)
    best = grid[np.argmin([bits(p, x, prev) for p in grid])]
    assert out["copy_previous_p"] == pytest.approx(best, abs=2e-3)
    xv, pv = x[:10], prev[:10]
    assert out["copy_previous_bits_per_latent"] == pytest.approx(bits(out["copy_previous_p"], xv, pv), rel=1e-6)
    # repeats are common here, so copying beats the unigram
    unigram_bits = -np.log2(u[xv]).mean()
    assert out["copy_previous_bits_per_latent"] < unigram_bits
