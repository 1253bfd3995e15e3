"""The evaluation clips: spread over every source video, non-overlapping clips first."""

from __future__ import annotations

import csv

from vqvideo.sampling.clips import evaluation_clips, evaluation_groups, spread_order


def _rows(videos: dict[str, int], stride_s: float = 0.32) -> list[dict]:
    """``{source: n_clips}`` -> manifest-like rows, clips every ``stride_s`` seconds (half a 0.64 s clip)."""
    rows = []
    for source, n in videos.items():
        for k in range(n):
            rows.append({"clip": len(rows), "source": source, "start_s": round(k * stride_s, 2)})
    return rows


def test_every_video_gives_a_clip_before_any_gives_two():
    rows = _rows({"a.mp4": 6, "b.mp4": 6, "c.mp4": 2})
    order = spread_order(rows, 0.64)
    assert {r["source"] for r in order[:3]} == {"a.mp4", "b.mp4", "c.mp4"}
    assert sorted(r["clip"] for r in order) == list(range(14))  # each clip once


def test_non_overlapping_clips_come_first():
    rows = _rows({"a.mp4": 6})  # starts 0, .32, .64, .96, 1.28, 1.6 s; clips of .64 s
    assert [r["start_s"] for r in spread_order(rows, 0.64)] == [0.0, 0.64, 1.28, 0.32, 0.96, 1.6]
    # without a clip length, time order
    assert [r["start_s"] for r in spread_order(rows, None)] == [0.0, 0.32, 0.64, 0.96, 1.28, 1.6]


def test_the_order_of_videos_does_not_follow_the_manifest():
    rows = _rows({f"label{i:02d}/v.mp4": 1 for i in range(40)})
    first = [r["clip"] for r in spread_order(rows, 0.64)[:20]]
    assert first != list(range(20)) and max(first) >= 20  # not the first 20 (Kinetics lists by label)


def test_evaluation_groups_keep_every_shard_and_manifest_order(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with open(data / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["shard", "index", "source", "start_s", "label", "split"])
        w.writerow(["train-00000.h5", 0, "t.mp4", 0.0, "", "train"])
        for k in range(4):
            w.writerow(["val-00000.h5", k, "a.mp4", 0.32 * k, "", "val"])
        for k in range(2):
            w.writerow(["val-00001.h5", k, "b.mp4", 0.32 * k, "", "val"])
    # 3 clips: a@0 and b@0 (round 1), then the second clip of the video first in the fixed order: a@0.64 (a's
    # next non-overlapping one) or b@0.32; never a@0.32, which overlaps a@0
    kept = [r["clip"] for r in evaluation_clips(data, "val", 3, 0.64)]
    assert kept == sorted(kept) and {1, 5} <= set(kept) and len(kept) == 3
    assert 2 not in kept and kept[2] in (3, 6)
    groups = evaluation_groups(data, "val", 1, 0.64)
    assert sorted(groups) == [0, 1] and sum(len(g) for g in groups.values()) == 1  # an empty shard is kept
    assert len(evaluation_clips(data, "val", None, 0.64)) == 6
