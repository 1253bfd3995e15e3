"""Latent encoding (``vqvideo encode``): one data shard of clips -> one latent shard of codes.

Output layout (paper sizes; the demo's are smaller), one row per clip in the data shard's order:

    top          int16 [N, 4, 32, 32]   full 16-frame clip encoded together (what the priors predict)
    bottom       int16 [N, 8, 64, 64]
    cond_top     int16 [N, 1, 32, 32]   the first ``sampling.cond_frames`` (4) frames encoded ALONE, so that
    cond_bottom  int16 [N, 2, 64, 64]   the conditioning codes never see the frames the priors must predict
    clip         int64 [N]              row of the clip in ``manifest.csv`` (the clip's id)
    mirrored     bool  [N]              the clip was flipped left-right before encoding
    reversed     bool  [N]              the clip was played backwards before encoding
    attrs        checkpoint_sha256, config_hash, cond_frames, predicted_latents, mirrored, reversed

With ``mirror`` (``vqvideo encode --mirror``; the train split when ``encode.mirror_train``) every clip is encoded
twice, as it is and flipped left-right, in rows 0..N-1 and N..2N-1: the priors, which are data-limited on small
datasets, get twice the clips. Mirrored footage is still footage (motion is symmetric left-right), whereas a flip
of the codes themselves would not be: codes are not mirror-equivariant. ``reverse`` (``--reverse``,
``encode.reverse_train``) likewise adds every clip played backwards, its conditioning frames re-encoded from the
reversed clip; with both, the rows are plain, mirrored, reversed, mirrored and reversed, N each.

For the evaluation split a second shard ``recon-*.h5`` holds the reconstructions in the sample-shard layout
(``videos`` uint8 ``[N, 16, H, W, 3]``, rounded to the nearest level, and ``clip``) for FVD*.

Resumable: a finished output whose attrs name the same checkpoint and the same number of clips is kept.
Atomic: shards are written with :func:`vqvideo.data.shards.write_shard`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from vqvideo.errors import UserError
from vqvideo.runtime.device import choose_device
from vqvideo.data.shards import read_shard, write_shard
from vqvideo.models.vqvae import VQVAE, output_to_video, video_to_input
from vqvideo.runtime.files import sha256_file


def clip_ids(manifest: str | Path, shard: str | Path, n: int) -> np.ndarray:
    """Manifest rows (clip ids) of the ``n`` clips of ``shard``, in the shard's order.

    The manifest's ``shard`` column may name the shard by file name, path or stem; ``index`` is the row
    inside the shard.
    """
    shard = Path(shard)
    names = {shard.name, shard.stem, str(shard)}
    ids = np.full(n, -1, dtype=np.int64)
    with open(manifest, newline="") as fh:
        for row_id, row in enumerate(csv.DictReader(fh)):
            value = row["shard"]
            if value in names or Path(value).name == shard.name or Path(value).stem == shard.stem:
                index = int(row["index"])
                if 0 <= index < n:
                    ids[index] = row_id
    if (ids < 0).any():
        raise ValueError(f"{manifest} lists only {(ids >= 0).sum()} of the {n} clips of {shard}")
    return ids


def _device(name: str) -> torch.device:
    return choose_device(name)


def _done(path: Path | None, sha: str, n: int, name: str, mirrored: bool = False, reversed_: bool = False) -> bool:
    if path is None:
        return True
    if not path.exists():
        return False
    try:
        with h5py.File(path, "r") as f:
            return (f.attrs.get("checkpoint_sha256") == sha and f[name].shape[0] == n
                    and bool(f.attrs.get("mirrored", False)) == mirrored
                    and bool(f.attrs.get("reversed", False)) == reversed_)
    except (OSError, KeyError):
        return False


class TransformedClips:
    """uint8 clips ``[N, T, H, W, 3]`` (numpy or h5py dataset), read flipped left-right and/or played backwards."""

    def __init__(self, clips, mirror: bool, reverse: bool):
        self.clips, self.mirror, self.reverse = clips, mirror, reverse

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index) -> np.ndarray:
        x = np.asarray(self.clips[index])
        if self.mirror:
            x = x[..., ::-1, :]
        if self.reverse:
            x = x[..., ::-1, :, :, :]
        return np.ascontiguousarray(x)


@torch.inference_mode()
def encode_clips(model: VQVAE, clips: np.ndarray, cond_frames: int, batch_size: int, device: torch.device,
                 with_recon: bool = False, desc: str = "encode") -> dict[str, np.ndarray]:
    """Codes (and optionally reconstructions) of uint8 clips ``[N, T, H, W, 3]`` (numpy or h5py dataset)."""
    out: dict[str, list] = {"top": [], "bottom": [], "cond_top": [], "cond_bottom": []}
    if with_recon:
        out["videos"] = []
    for lo in tqdm(range(0, len(clips), batch_size), desc=desc, unit="batch"):
        x = video_to_input(torch.from_numpy(np.asarray(clips[lo:lo + batch_size])).to(device))
        top, bottom = model.encode_codes(x)
        cond_top, cond_bottom = model.encode_codes(x[:, :, :cond_frames])
        for key, value in (("top", top), ("bottom", bottom), ("cond_top", cond_top), ("cond_bottom", cond_bottom)):
            out[key].append(value.to(torch.int16).cpu().numpy())
        if with_recon:
            out["videos"].append(output_to_video(model.decode_codes(top, bottom)).cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def encode_shard(cfg, checkpoint: str | Path, shard: str | Path, out: str | Path, recon: str | Path | None = None,
                 manifest: str | Path | None = None, mirror: bool = False, reverse: bool = False) -> Path:
    """Encode the data shard ``shard`` into the latent shard ``out`` (and reconstructions into ``recon``);
    ``mirror`` / ``reverse``: also every clip flipped left-right / played backwards (not with ``recon``: the
    evaluation split is never augmented)."""
    from vqvideo.runtime.checkpoint import load_model
    from vqvideo.train.vqvae import build_vqvae

    shard, out = Path(shard), Path(out)
    recon = Path(recon) if recon else None
    if (mirror or reverse) and recon is not None:
        raise UserError("--mirror and --reverse are for training shards; the evaluation split (--recon) is never "
                        "mirrored or reversed")
    manifest = Path(manifest) if manifest else shard.parent.parent / "manifest.csv"
    sha = sha256_file(checkpoint)
    with h5py.File(shard, "r") as f:
        n = int(f["clips"].shape[0])
    views = [(m, r) for r in (False, True) for m in (False, True) if (mirror or not m) and (reverse or not r)]
    if _done(out, sha, n * len(views), "top", mirror, reverse) and _done(recon, sha, n, "videos"):
        print(f"{out} is up to date")
        return out
    if cfg.encode.threads > 0:
        torch.set_num_threads(cfg.encode.threads)
    device = _device(cfg.encode.device)
    model, _ = load_model(checkpoint, build_vqvae)
    model.to(device).eval()
    ids = clip_ids(manifest, shard, n)
    with h5py.File(shard, "r") as f:
        parts = []
        for m, r in views:
            desc = " ".join([shard.name] + ["mirrored"] * m + ["reversed"] * r)
            clips = TransformedClips(f["clips"], m, r) if m or r else f["clips"]
            parts.append(encode_clips(model, clips, cfg.sampling.cond_frames, cfg.encode.batch_size, device,
                                      with_recon=recon is not None, desc=desc))
    codes = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    ids = np.tile(ids, len(views))
    mirrored, reversed_ = (np.repeat([v[i] for v in views], n) for i in (0, 1))
    attrs = {"checkpoint_sha256": sha, "config_hash": cfg.hash, "cond_frames": cfg.sampling.cond_frames,
             "predicted_latents": cfg.encode.predicted_latents, "data_shard": shard.name, "mirrored": mirror,
             "reversed": reverse}
    if recon is not None:
        write_shard(recon, {"videos": codes.pop("videos"), "clip": ids}, attrs)
    write_shard(out, {**codes, "clip": ids, "mirrored": mirrored, "reversed": reversed_}, attrs)
    return out


def read_latents(path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of one latent shard (small helper for tests and tools)."""
    return read_shard(path)[0]
