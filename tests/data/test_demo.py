"""Demo videos: real, deterministic H.264 files with varied frame rates and sizes, that the data stage reads."""

import av
import numpy as np
import pytest

from vqvideo.cli import main as cli_main
from vqvideo.data.datasets import load_clips, read_manifest
from vqvideo.data.params import Params
from vqvideo.data.prepare import prepare_data


@pytest.mark.slow
def test_make_demo_data_is_deterministic_and_varied(tmp_path):
    for name, workers in (("a", "1"), ("b", "2")):  # the same bytes from one process as from two side by side
        assert cli_main(["make-demo-data", "--out", str(tmp_path / name), "--n-videos", "6", "--seed", "3",
                         "--workers", workers]) == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.mp4"))
    assert [f.parts[0] for f in files] == ["train"] * 5 + ["val"]
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    info = set()
    for f in files:
        with av.open(str(tmp_path / "a" / f)) as c:
            s = c.streams.video[0]
            assert s.codec_context.name == "h264"
            info.add((int(s.average_rate), s.width, s.height))
    assert {fps for fps, _, _ in info} == {12, 25, 30, 60}
    assert any(w != h for _, w, h in info) and all(min(w, h) >= 64 for _, w, h in info)
    other_seed = tmp_path / "c"
    cli_main(["make-demo-data", "--out", str(other_seed), "--n-videos", "6", "--seed", "4"])
    assert (other_seed / files[0]).read_bytes() != (tmp_path / "a" / files[0]).read_bytes()


def test_demo_videos_give_moving_clips(tmp_path):
    cli_main(["make-demo-data", "--out", str(tmp_path / "v"), "--n-videos", "4"])
    assert prepare_data(tmp_path / "v", tmp_path / "out", Params(frames=16, fps=25, resolution=64, stride=16)) == 0
    rows = read_manifest(tmp_path / "out")
    assert {r["split"] for r in rows} == {"train", "val"}
    clips = load_clips(tmp_path / "out", list(range(len(rows)))).astype(np.float32)
    motion = np.abs(np.diff(clips, axis=1)).mean(axis=(1, 2, 3, 4))
    assert (motion > 0.5).all()  # every clip moves
