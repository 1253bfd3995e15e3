"""Sampling: the copy-last baseline, the incremental sampler against the naive one, the sampling pipeline."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import yaml

from vqvideo.cli import main
from vqvideo.data.shards import list_shards, read_shard, write_shard
from vqvideo.sampling.baseline import copy_last


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
            rows.append({"shard": name, "index": k, "source": f"v{len(rows)}.mp4", "start_s": 0.0,
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


def test_copy_last_holds_the_last_conditioning_frame():
    clips = np.random.default_rng(0).integers(0, 256, size=(2, 16, 4, 4, 3), dtype=np.uint8)
    videos = copy_last(clips, 4)
    assert videos.dtype == np.uint8 and videos.shape == clips.shape
    assert np.array_equal(videos[:, :4], clips[:, :4])
    assert all(np.array_equal(videos[:, t], clips[:, 3]) for t in range(4, 16))


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


def test_copy_last_shards_stay_numbered_like_the_data_shards(tmp_path):
    _make_clip_data(tmp_path / "results")
    assert main(["sample", "--method", "copy-last", "--max-clips", "2", "--configfile", str(_config(tmp_path))]) == 0
    shards = list_shards(tmp_path / "results" / "baselines" / "copy_last")
    (first, _), (second, _) = read_shard(shards[0]), read_shard(shards[1])
    assert first["clip"].tolist() == [3, 4]
    assert second["videos"].shape == (0, 16, 16, 16, 3)  # val-00001 lies beyond max_clips: an empty shard
