"""vqvideo encode: latent shards from real HDF5 data shards and a real checkpoint; LatentDataset."""

import csv
import os

import h5py
import numpy as np
import pytest
import torch

from vqvideo.cli import main
from vqvideo.data.latents import LatentDataset
from vqvideo.data.shards import write_shard
from vqvideo.models.vqvae import VQVAE, output_to_video, video_to_input
from vqvideo.runtime.checkpoint import save_checkpoint

MODEL = dict(hidden=8, res_hidden=4, res_layers=1, codebook_size=32, codebook_dim=4, codebook_init="data")


def _clips(rng, n):
    """Smooth moving blobs (so that codes vary in space and time), uint8 [n, 16, 32, 32, 3]."""
    t, y, x = np.meshgrid(np.arange(16), np.arange(32), np.arange(32), indexing="ij")
    out = []
    for _ in range(n):
        cy, cx, v, c = rng.uniform(8, 24), rng.uniform(8, 24), rng.uniform(-1, 1), rng.uniform(50, 250, 3)
        blob = np.exp(-((y - cy - v * t) ** 2 + (x - cx) ** 2) / 30.0)
        out.append((blob[..., None] * c + 5).clip(0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("enc")
    rng = np.random.default_rng(0)
    data = root / "data"
    train, val = _clips(rng, 3), _clips(rng, 4)
    # clip 1 of val-00000 equals clip 0 in its first 4 frames, and differs after them
    val[1] = val[0]
    val[1, 4:] = 255 - val[1, 4:]
    write_shard(data / "shards" / "train-00000.h5", {"clips": train})
    write_shard(data / "shards" / "val-00000.h5", {"clips": val})
    with open(data / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["shard", "index", "source", "start_s", "label", "split"])
        for i in range(3):
            w.writerow(["train-00000.h5", i, f"t{i}.mp4", 0.0, "a", "train"])
        for i in range(4):
            w.writerow(["val-00000.h5", i, f"v{i}.mp4", 0.0, "b", "val"])
    torch.manual_seed(0)
    model = VQVAE(**MODEL).train()
    model(video_to_input(torch.from_numpy(np.concatenate([train, val]))))  # seed the codebooks from data
    model.eval()
    ckpt = root / "vqvae" / "checkpoint.pt"
    save_checkpoint(ckpt, {"kind": "vqvae", "model": model.state_dict(), "model_config": MODEL, "step": 1})
    cfgfile = root / "c.yaml"
    cfgfile.write_text("encode: {batch_size: 3}\nsampling: {cond_frames: 4}\n")
    out = root / "latents" / "val" / "shard-00000.h5"
    recon = root / "latents" / "val" / "recon-00000.h5"
    rc = main(["encode", "--configfile", str(cfgfile), "--checkpoint", str(ckpt), "--shard",
               str(data / "shards" / "val-00000.h5"), "--out", str(out), "--recon", str(recon)])
    assert rc == 0
    rc = main(["encode", "--configfile", str(cfgfile), "--checkpoint", str(ckpt), "--shard",
               str(data / "shards" / "train-00000.h5"), "--out", str(root / "latents" / "train" / "shard-00000.h5")])
    assert rc == 0
    return dict(root=root, model=model, val=val, out=out, recon=recon, ckpt=ckpt, cfgfile=cfgfile, data=data)


def test_latent_shard_layout(setup):
    with h5py.File(setup["out"], "r") as f:
        assert f["top"].shape == (4, 4, 4, 4) and f["top"].dtype == np.int16
        assert f["bottom"].shape == (4, 8, 8, 8) and f["bottom"].dtype == np.int16
        assert f["cond_top"].shape == (4, 1, 4, 4) and f["cond_bottom"].shape == (4, 2, 8, 8)
        assert f["clip"][()].tolist() == [3, 4, 5, 6]  # manifest rows of the val clips
        assert len(f.attrs["checkpoint_sha256"]) == 64
        assert len(np.unique(f["bottom"][()])) > 3  # codes vary: the tests below can fail


def test_decoding_the_latents_gives_the_models_reconstruction(setup):
    model, val = setup["model"], setup["val"]
    with h5py.File(setup["out"], "r") as f:
        top, bottom = torch.from_numpy(f["top"][()]), torch.from_numpy(f["bottom"][()])
    with h5py.File(setup["recon"], "r") as f:
        videos, clip = f["videos"][()], f["clip"][()]
    assert videos.shape == (4, 16, 32, 32, 3) and videos.dtype == np.uint8 and clip.tolist() == [3, 4, 5, 6]
    with torch.no_grad():
        expected = output_to_video(model.reconstruct(video_to_input(torch.from_numpy(val))))
        decoded = output_to_video(model.decode_codes(top, bottom))
    assert torch.equal(decoded, expected)
    assert np.array_equal(videos, expected.numpy())


def test_conditioning_latents_ignore_frames_4_to_15(setup):
    with h5py.File(setup["out"], "r") as f:
        d = {k: f[k][()] for k in ("top", "bottom", "cond_top", "cond_bottom")}
    # clips 0 and 1 share frames 0-3 only: the full-clip codes differ, the conditioning codes do not
    assert not np.array_equal(d["top"][0], d["top"][1]) or not np.array_equal(d["bottom"][0], d["bottom"][1])
    assert not np.array_equal(d["bottom"][0, :2], d["bottom"][1, :2])  # full-clip encoding sees the future
    assert np.array_equal(d["cond_top"][0], d["cond_top"][1])
    assert np.array_equal(d["cond_bottom"][0], d["cond_bottom"][1])


def test_encode_is_resumable(setup):
    before = os.stat(setup["out"]).st_mtime_ns
    rc = main(["encode", "--configfile", str(setup["cfgfile"]), "--checkpoint", str(setup["ckpt"]), "--shard",
               str(setup["data"] / "shards" / "val-00000.h5"), "--out", str(setup["out"]), "--recon",
               str(setup["recon"])])
    assert rc == 0 and os.stat(setup["out"]).st_mtime_ns == before
    assert not [p for p in setup["out"].parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_latent_dataset(setup):
    ds = LatentDataset(setup["root"] / "latents", "val")
    assert len(ds) == 4
    item = ds[2]
    assert item["top"].shape == (4, 4, 4) and item["bottom"].shape == (8, 8, 8)
    assert item["cond_top"].shape == (1, 4, 4) and item["cond_bottom"].shape == (2, 8, 8)
    assert item["top"].dtype == torch.int64 and int(item["clip"]) == 5
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    assert batches[1]["clip"].tolist() == [5, 6] and batches[0]["bottom"].shape == (2, 8, 8, 8)
    assert len(LatentDataset(setup["root"] / "latents", "train")) == 3



def test_mirror_encodes_every_clip_twice_as_it_is_and_flipped(setup, capsys):
    """--mirror: rows 0..N-1 are the plain codes, N..2N-1 the codes of the clips flipped left-right (not the
    plain codes flipped: codes are not mirror-equivariant); a rerun keeps the shard; --recon refuses it."""
    root, model = setup["root"], setup["model"]
    shard = setup["data"] / "shards" / "train-00000.h5"
    plain, out = root / "latents" / "train" / "shard-00000.h5", root / "mirrored" / "shard-00000.h5"
    args = ["encode", "--configfile", str(setup["cfgfile"]), "--checkpoint", str(setup["ckpt"]), "--shard", str(shard),
            "--out", str(out), "--mirror"]
    assert main(args) == 0
    with h5py.File(plain, "r") as f:
        want = {k: f[k][()] for k in ("top", "bottom", "cond_top", "cond_bottom", "clip")}
    with h5py.File(shard, "r") as f:
        clips = f["clips"][()]
    with torch.no_grad():
        top, bottom = model.encode_codes(video_to_input(torch.from_numpy(clips[:, :, :, ::-1].copy())))
    with h5py.File(out, "r") as f:
        got = {k: f[k][()] for k in ("top", "bottom", "cond_top", "cond_bottom", "clip", "mirrored")}
        assert bool(f.attrs["mirrored"])
    n = len(clips)
    for k in ("top", "bottom", "cond_top", "cond_bottom"):
        assert got[k].shape[0] == 2 * n and np.array_equal(got[k][:n], want[k])
    assert np.array_equal(got["top"][n:], top.numpy()) and np.array_equal(got["bottom"][n:], bottom.numpy())
    assert not np.array_equal(got["bottom"][n:], want["bottom"][..., ::-1])
    assert got["clip"].tolist() == want["clip"].tolist() * 2 and got["mirrored"].tolist() == [False] * n + [True] * n
    assert len(LatentDataset(root / "mirrored" / "..", "mirrored")) == 2 * n

    stamp = os.stat(out).st_mtime_ns
    assert main(args) == 0
    assert os.stat(out).st_mtime_ns == stamp  # finished: kept
    assert main(args[:-1]) == 0  # without --mirror the shard is not what was asked: re-encoded, N rows
    with h5py.File(out, "r") as f:
        assert f["top"].shape[0] == n and not bool(f.attrs["mirrored"])

    recon = root / "mirrored" / "recon-00000.h5"
    assert main(args + ["--recon", str(recon)]) != 0
    assert "never mirrored" in capsys.readouterr().err and not recon.exists()


def test_reverse_with_mirror_encodes_four_views_each_from_its_own_frames(setup):
    """--mirror --reverse: rows plain, mirrored, reversed, mirrored+reversed (N each), each view's codes and
    conditioning codes those of its own transformed clip (a reversed clip's conditioning frames are the
    original's last frames, played backwards); a shard encoded with --mirror alone is not taken for it."""
    root, model = setup["root"], setup["model"]
    shard = setup["data"] / "shards" / "train-00000.h5"
    out = root / "reversed" / "shard-00000.h5"
    args = ["encode", "--configfile", str(setup["cfgfile"]), "--checkpoint", str(setup["ckpt"]), "--shard", str(shard),
            "--out", str(out), "--mirror"]
    assert main(args) == 0
    assert main(args + ["--reverse"]) == 0
    with h5py.File(shard, "r") as f:
        clips = f["clips"][()]
    n = len(clips)
    views = [clips, clips[:, :, :, ::-1], clips[:, ::-1], clips[:, ::-1, :, ::-1]]
    with h5py.File(out, "r") as f:
        got = {k: f[k][()] for k in ("top", "bottom", "cond_top", "cond_bottom", "clip", "mirrored", "reversed")}
        assert bool(f.attrs["mirrored"]) and bool(f.attrs["reversed"])
    for i, view in enumerate(views):
        x = video_to_input(torch.from_numpy(view.copy()))
        with torch.no_grad():
            top, bottom = model.encode_codes(x)
            cond_top, _ = model.encode_codes(x[:, :, :4])
        rows = slice(i * n, (i + 1) * n)
        assert np.array_equal(got["top"][rows], top.numpy()) and np.array_equal(got["bottom"][rows], bottom.numpy())
        assert np.array_equal(got["cond_top"][rows], cond_top.numpy())
    assert got["mirrored"].tolist() == ([False] * n + [True] * n) * 2
    assert got["reversed"].tolist() == [False] * 2 * n + [True] * 2 * n
    assert got["clip"].tolist() == got["clip"][:n].tolist() * 4
