"""encode, sample and predict on clips made from real footage (bikes.mp4 640x272, carphone 176x144 at 29.97
fps): tiny models, the point is the code paths on real video."""

from __future__ import annotations

import av
import numpy as np
import pytest
import yaml

from vqvideo.cli import main
from vqvideo.data.shards import list_shards, read_shard

from tiny_models import VQ, save_tiny_checkpoints

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]  # prepare + encode + sample: ~15 s of CPU


def test_encode_sample_and_predict_on_real_footage(footage, tmp_path):
    results = tmp_path / "results"
    videos = tmp_path / "videos" / "val"
    videos.mkdir(parents=True)
    for name, path in footage.items():
        (videos / name).symlink_to(path)
    cfgfile = tmp_path / "c.yaml"
    cfgfile.write_text(yaml.safe_dump({
        "results": str(results), "data": {"videos": str(tmp_path / "videos"), "resolution": 32, "stride": 16},
        "vqvae": {"model": VQ}, "evaluation": {"split": "val"},
        "sampling": {"batch_size": 4, "samples_per_clip": 2, "max_clips": 4, "grid_clips": 2, "device": "cpu",
                     "threads": 1}}))
    assert main(["prepare-data", "--configfile", str(cfgfile), "--workers", "1"]) == 0
    save_tiny_checkpoints(results, 32)
    shards = list_shards(results / "data" / "shards")
    for shard in shards:
        assert main(["encode", "--configfile", str(cfgfile), "--shard", str(shard), "--out",
                     str(results / "latents" / "val" / f"shard-{shard.stem.rsplit('-', 1)[1]}.h5")]) == 0
    latents, _ = read_shard(results / "latents" / "val" / "shard-00000.h5")
    assert latents["top"].shape[1:] == (4, 4, 4) and latents["bottom"].shape[1:] == (8, 8, 8)
    assert len(latents["clip"]) == 21  # 15 clips of bikes, 6 of carphone (29.97 -> 25 fps)
    assert main(["sample", "--configfile", str(cfgfile)]) == 0
    samples, _ = read_shard(list_shards(results / "samples")[0])
    assert samples["videos"].shape == (8, 16, 32, 32, 3)  # max_clips 4, 2 samples each
    for name in footage:  # any size and frame rate
        out = tmp_path / f"{name}.pred.mp4"
        assert main(["predict", "--configfile", str(cfgfile), "--video", str(footage[name]), "--out", str(out),
                     "--samples", "2"]) == 0
        with av.open(str(out)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert len(frames) == 16 and frames[0].shape == (16 + 128 + 16, 4 * 128 + 3 * 2, 3)
        assert np.std(frames[0][16:144, 130:258]) > 10  # the real column holds footage, not grey
