"""train-vqvae (vqvideo.train.vqvae): what a run records in its checkpoint."""

import numpy as np
import pytest

SMALL = dict(hidden=8, res_hidden=4, res_layers=1, codebook_size=16, codebook_dim=4)


@pytest.mark.slow  # ~10 s of CPU: a whole train-vqvae run (training, evaluation, plots)
def test_train_vqvae_records_the_data_settings_in_its_checkpoint(tmp_path, one_thread):
    """`vqvideo reconstruct` cuts clips as the model saw them: the checkpoint says how (the shards' fps,
    frames and resolution; the config's stride)."""
    import csv

    import yaml

    from vqvideo.cli import main
    from vqvideo.data.shards import write_shard
    from vqvideo.runtime.checkpoint import load_checkpoint

    data = tmp_path / "data"
    clips = np.random.default_rng(0).integers(0, 256, (2, 8, 16, 16, 3), dtype=np.uint8)
    rows = []
    for split in ("train", "val"):
        write_shard(data / "shards" / f"{split}-00000.h5", {"clips": clips},
                    {"fps": 12.5, "frames": 8, "resolution": 16})
        rows += [[f"{split}-00000.h5", i, f"{split}.mp4", 0.0, "", split] for i in range(2)]
    with open(data / "manifest.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["shard", "index", "source", "start_s", "label", "split"], *rows])
    cfgfile = tmp_path / "c.yaml"
    cfgfile.write_text(yaml.safe_dump({
        "data": {"frames": 8, "resolution": 32, "stride": 3},  # resolution: the shards' 16 wins
        "vqvae": {"model": SMALL, "train": {"batch_size": 2, "steps": 2, "eval_every": 100, "log_every": 1,
                                             "num_workers": 0, "threads": 1}}}))
    assert main(["train-vqvae", "--configfile", str(cfgfile), "--data", str(data), "--out",
                 str(tmp_path / "vqvae")]) == 0
    recorded = load_checkpoint(tmp_path / "vqvae" / "checkpoint.pt")["data_config"]
    assert recorded == {"frames": 8, "fps": 12.5, "resolution": 16, "stride": 3, "max_clips_per_video": None,
                        "frame_folder_fps": 25}


def test_augment_mirrors_and_reverses_whole_clips_and_is_off_by_default():
    """Each clip comes back as itself, mirrored left-right or played backwards (never a mix within a clip), both
    occur, and with the options off nothing changes and torch's RNG is untouched (old runs stay step-for-step)."""
    import torch

    from vqvideo.train.vqvae import augment

    clips = torch.randint(0, 256, (64, 4, 8, 8, 3), dtype=torch.uint8)
    state = torch.get_rng_state()
    assert torch.equal(augment(clips), clips)
    assert torch.equal(torch.get_rng_state(), state)
    for kwargs, dim in (({"flip": True}, 3), ({"reverse": True}, 1)):
        out = augment(clips, **kwargs)
        same = [torch.equal(o, c) for o, c in zip(out, clips)]
        turned = [torch.equal(o, c.flip(dim - 1)) for o, c in zip(out, clips)]
        assert all(s or t for s, t in zip(same, turned))
        assert 10 < sum(turned) < 54  # about half, not none or all
    both = augment(clips, flip=True, reverse=True)
    assert any(torch.equal(o, c.flip(0).flip(2)) for o, c in zip(both, clips))
