"""The evaluation stage (``vqvideo evaluate``): FVD, FVD*, 2-fold cross-validation, brackets, quality.

Inputs (all under ``cfg.results``), in the sample-shard layout (``videos`` uint8 ``[N, 16, H, W, 3]``, ``clip``
int64 manifest row, ``sample`` index per clip):

- ``samples/shard-*.h5``: our samples; ``baselines/copy_last/shard-*.h5``: the copy-last baseline;
- ``latents/{split}/recon-*.h5``: VQ-VAE reconstructions of the evaluation split (``videos``, ``clip``);
- ``data/manifest.csv`` + ``data/shards/*.h5`` (``clips``): the real clips.

``fvd_{R}.json`` (one per R in ``evaluation.resolutions``): FVD of the samples against the real clips of the
same conditioning clips, over ``evaluation.folds`` disjoint folds of conditioning clips (seeded), with each
fold's value, their mean (``value``) and std; FVD* (samples against the reconstructions of the same clips);
the copy-last baseline and the reconstructions against the real clips as brackets. Videos larger than R are
first area-downscaled to RxR (the paper's 64x64 comparison downsamples its 256x256 videos), then resized to
the I3D input with TF1 bilinear. I3D features of every set are cached under ``evaluation/features/``, keyed by
the content of the videos, the frames used, R and the I3D weights.

``quality.json``: per-frame PSNR and SSIM of the predicted frames against the ground truth (mean over
samples, and best of K samples per clip), next to the copy-last baseline; diversity = mean pairwise
1 - SSIM between samples of the same conditioning clip.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from vqvideo.data.datasets import read_manifest
from vqvideo.data.shards import atomic_write_text, list_shards
from vqvideo.metrics import fvd as F
from vqvideo.metrics.i3d import MIN_FRAMES, load_i3d, weights_info

RESIZE_VERSION = "area-to-R,tf1-bilinear-224,x*2/255-1"  # part of the feature cache key


# ------------------------------------------------------------------------------------------- video sets
@dataclass
class VideoSet:
    """Videos spread over shards: ``(path, dataset, positions)`` per shard plus the clip id of each video."""

    name: str
    parts: list[tuple[Path, str, np.ndarray]]
    clip: np.ndarray  # [N] manifest row per video, in part order
    sample: np.ndarray  # [N] sample index per clip

    def __len__(self) -> int:
        return len(self.clip)

    def subset(self, keep_clips) -> "VideoSet":
        """The videos whose conditioning clip is in ``keep_clips``."""
        keep = set(int(c) for c in keep_clips)
        parts, clips, samples, offset = [], [], [], 0
        for path, ds, pos in self.parts:
            mask = np.array([int(c) in keep for c in self.clip[offset:offset + len(pos)]], bool)
            if mask.any():
                parts.append((path, ds, pos[mask]))
            clips.append(self.clip[offset:offset + len(pos)][mask])
            samples.append(self.sample[offset:offset + len(pos)][mask])
            offset += len(pos)
        return VideoSet(self.name, parts, np.concatenate(clips) if clips else np.zeros(0, np.int64),
                        np.concatenate(samples) if samples else np.zeros(0, np.int64))

    def batches(self, size: int = 16):
        """uint8 arrays ``[n, T, H, W, 3]`` in set order."""
        for path, ds, pos in self.parts:
            with h5py.File(path, "r") as f:
                for start in range(0, len(pos), size):
                    idx = pos[start:start + size]
                    yield f[ds][np.sort(idx)][np.argsort(np.argsort(idx))]


def read_video_set(name: str, folder: Path, pattern: str) -> VideoSet | None:
    """The shards ``folder/pattern`` (``videos``, ``clip`` and optional ``sample``); None if there are none."""
    shards = list_shards(folder, pattern)
    if not shards:
        return None
    parts, clips, samples = [], [], []
    for path in shards:
        with h5py.File(path, "r") as f:
            n = f["videos"].shape[0]
            if n == 0:
                continue
            clip = f["clip"][()].astype(np.int64)
            sample = f["sample"][()].astype(np.int64) if "sample" in f else np.zeros(n, np.int64)
        parts.append((path, "videos", np.arange(n)))
        clips.append(clip)
        samples.append(sample)
    if not parts:
        return None
    return VideoSet(name, parts, np.concatenate(clips), np.concatenate(samples))


class ClipReader:
    """Real clips by id (manifest row), the manifest read once (Kinetics has ~400k rows)."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.rows = read_manifest(self.data_dir)

    def __call__(self, clip_ids) -> np.ndarray:
        """uint8 ``[n, T, H, W, 3]`` in the order of ``clip_ids``."""
        by_shard: dict[str, list[tuple[int, int]]] = {}
        for pos, clip in enumerate(clip_ids):
            row = self.rows[int(clip)]
            by_shard.setdefault(row["shard"], []).append((pos, int(row["index"])))
        out = None
        for shard, items in by_shard.items():
            with h5py.File(self.data_dir / "shards" / shard, "r") as f:
                clips = f["clips"]
                if out is None:
                    out = np.empty((len(clip_ids), *clips.shape[1:]), np.uint8)
                for pos, index in items:
                    out[pos] = clips[index]
        return out


def real_clips(data_dir: Path, clip_ids) -> "RealClips":
    return RealClips(ClipReader(data_dir), np.asarray(sorted(set(int(c) for c in clip_ids)), np.int64))


@dataclass
class RealClips:
    """The real clips ``clip`` (manifest rows), read through the data stage's manifest."""

    reader: ClipReader
    clip: np.ndarray
    name: str = "real"

    def __len__(self) -> int:
        return len(self.clip)

    def batches(self, size: int = 16):
        for start in range(0, len(self.clip), size):
            yield self.reader(self.clip[start:start + size])


# ------------------------------------------------------------------------------------------- features
def frame_slice(frames: str, cond_frames: int) -> slice:
    """``all``: the whole 16-frame video (conditioning included, as DVD-GAN-FP/TrIVD-GAN-FP evaluate);
    ``predicted``: only the frames after the conditioning ones."""
    return slice(None) if frames == "all" else slice(cond_frames, None)


def _features(videos, resolution: int, frames: slice, cache: Path, weights_sha: str, get_model, device,
              batch_size: int) -> np.ndarray:
    """I3D logits ``[N, 400]`` of a video set, cached by content (two passes: hash, then compute on a miss)."""
    h = hashlib.sha256(f"{RESIZE_VERSION}|{resolution}|{frames}|{weights_sha}".encode())
    n_videos = 0
    for batch in videos.batches():
        h.update(np.ascontiguousarray(batch).tobytes())
        h.update(str(batch.shape).encode())
        n_videos += len(batch)
    path = cache / f"{videos.name}-{h.hexdigest()[:20]}.npz"
    if path.is_file():
        with np.load(path) as z:
            feats = z["features"]
        if len(feats) == n_videos:
            print(f"  {videos.name}: {n_videos} videos, features from the cache ({path.name})")
            return feats
    print(f"  {videos.name}: {n_videos} videos through I3D")
    model = get_model()
    feats = []
    bar = tqdm(total=n_videos, desc=f"I3D {videos.name}", unit="video", mininterval=5)
    for batch in videos.batches():
        batch = batch[:, frames]
        size = batch.shape[2]
        if resolution > min(batch.shape[2:4]):
            raise ValueError(f"{videos.name}: evaluation resolution {resolution} exceeds the videos' size "
                             f"{batch.shape[2]}x{batch.shape[3]}")
        feats.append(F.i3d_logits(batch, batch_size=batch_size, device=device, model=model, progress=False,
                                  resolution=resolution if resolution != size else None))
        bar.update(len(batch))
    bar.close()
    feats = np.concatenate(feats).astype(np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, features=feats)
    tmp.replace(path)
    return feats


# ------------------------------------------------------------------------------------------- folds
def assign_folds(clip_ids, folds: int, seed: int) -> list[np.ndarray]:
    """Split the unique conditioning clips into ``folds`` disjoint, near-equal, seeded random groups."""
    unique = np.unique(np.asarray(clip_ids, np.int64))
    if folds > len(unique):
        raise ValueError(f"{folds} folds asked for, but only {len(unique)} conditioning clips")
    perm = np.random.default_rng(seed).permutation(unique)
    return [np.sort(part) for part in np.array_split(perm, folds)]


def _select(feats: np.ndarray, clip: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return feats[np.isin(clip, keep)]


def _fvd_over_folds(fake: np.ndarray, fake_clip: np.ndarray, real: np.ndarray, real_clip: np.ndarray,
                    folds: list[np.ndarray]) -> dict:
    """FVD of ``fake`` vs ``real`` per fold (videos of the fold's conditioning clips), mean, std, and on all."""
    values, sizes = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # rank deficiency is reported in the JSON instead
        for keep in folds:
            a, b = _select(fake, fake_clip, keep), _select(real, real_clip, keep)
            values.append(F.frechet_distance(a, b))
            sizes.append([len(a), len(b)])
        everything = F.frechet_distance(fake, real)
    return {"value": float(np.mean(values)), "std": float(np.std(values)), "folds": values,
            "fold_sizes": sizes, "all": everything,
            "rank_deficient": any(F.is_rank_deficient(min(s)) for s in sizes)}


# ------------------------------------------------------------------------------------------- stage
def _paths(cfg) -> dict[str, Path]:
    res, split = cfg.results_dir, cfg.evaluation.split
    return {"samples": res / "samples", "copy_last": res / "baselines" / "copy_last",
            "recon": res / "latents" / split, "data": res / "data", "cache": res / "evaluation" / "features"}


def _setup(cfg):
    ev = cfg.evaluation
    if ev.threads:
        torch.set_num_threads(ev.threads)
    device = F.default_device() if ev.device == "auto" else torch.device(ev.device)
    return device


def evaluate_fvd(cfg, resolution: int) -> dict:
    """Compute ``fvd_{resolution}.json`` (see the module docstring); return its content."""
    ev, paths = cfg.evaluation, _paths(cfg)
    device = _setup(cfg)
    samples = read_video_set("samples", paths["samples"], "shard-*.h5")
    if samples is None:
        raise FileNotFoundError(f"no sample shards in {paths['samples']} (run vqvideo sample first)")
    sets = {"samples": samples,
            "copy_last": read_video_set("copy_last", paths["copy_last"], "shard-*.h5"),
            "recon": read_video_set("recon", paths["recon"], "recon-*.h5")}
    clips = np.unique(samples.clip)
    # every set is restricted to the conditioning clips that were sampled
    sets = {k: (v.subset(clips) if v is not None else None) for k, v in sets.items()}
    real = real_clips(paths["data"], clips)
    frames = frame_slice(ev.frames, cfg.sampling.cond_frames)
    n_frames = len(range(cfg.data.frames)[frames])
    if n_frames < MIN_FRAMES:
        raise ValueError(f"evaluation.frames={ev.frames!r} leaves {n_frames} frames; I3D needs {MIN_FRAMES}")
    weights = weights_info()
    models = []

    def get_model():  # loaded only when some set is not in the feature cache
        if not models:
            models.append(load_i3d(device))
        return models[0]

    print(f"FVD at {resolution}x{resolution}: {len(samples)} samples of {len(clips)} clips, "
          f"frames={ev.frames} ({n_frames}), device {device}")
    feats = {name: _features(s, resolution, frames, paths["cache"], weights["sha256"], get_model, device,
                             ev.batch_size) for name, s in {**sets, "real": real}.items() if s is not None}
    if len(clips) < 2:
        raise ValueError(f"FVD needs at least 2 conditioning clips with samples, found {len(clips)}")
    n_folds = ev.folds
    if len(clips) < 2 * n_folds:  # a covariance needs 2 videos per fold: fewer folds than asked (noted in the JSON)
        n_folds = len(clips) // 2
        warnings.warn(f"only {len(clips)} conditioning clips: {n_folds} fold(s) instead of {ev.folds}")
    folds = assign_folds(clips, n_folds, ev.seed)
    clip_of = {name: (s.clip if s is not None else None) for name, s in {**sets, "real": real}.items()}

    def versus(fake: str, ref: str):
        if fake not in feats or ref not in feats:
            return None
        return _fvd_over_folds(feats[fake], clip_of[fake], feats[ref], clip_of[ref], folds)

    main = versus("samples", "real")
    out = {
        "metric": "FVD",
        "resolution": resolution,
        "value": main["value"],
        "std": main["std"],
        "folds": main["folds"],
        "fvd": main,
        "fvd_star": versus("samples", "recon"),
        "baselines": {"copy_last": versus("copy_last", "real"), "reconstructions": versus("recon", "real")},
        "n_videos": {"samples": len(samples), "real": len(real), "clips": int(len(clips)),
                     "samples_per_clip": float(len(samples) / max(len(clips), 1)),
                     **{k: (len(v) if v is not None else 0) for k, v in sets.items() if k != "samples"}},
        "rank_deficient": main["rank_deficient"],
        "protocol": {
            "split": ev.split, "folds": n_folds, "folds_asked": ev.folds, "fold_seed": ev.seed, "frames": ev.frames,
            "n_frames": n_frames, "cond_frames": cfg.sampling.cond_frames,
            "fold_clips": [len(f) for f in folds],
            "resize": f"area to {resolution}x{resolution} when larger, then TF1 bilinear (no half-pixel "
                      "centres) to 224x224, x*2/255-1",
            "std": "population std (ddof=0) of the fold values",
        },
        "config_hash": cfg.hash,
        "weights": weights,
    }
    missing = [k for k in ("copy_last", "recon") if sets[k] is None]
    if missing:
        out["missing"] = missing
    atomic_write_text(cfg.results_dir / f"fvd_{resolution}.json", json.dumps(out, indent=2) + "\n")
    return out


# ------------------------------------------------------------------------------------------- quality
PSNR_CAP = 100.0  # identical frames have infinite PSNR; capped so means stay finite


def per_frame_scores(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PSNR and SSIM per frame ``[N, T]`` of uint8 videos ``[N, T, H, W, 3]``."""
    from vqvideo.metrics.quality import psnr, ssim

    n, t = pred.shape[:2]
    a = torch.from_numpy(np.ascontiguousarray(pred)).reshape(n * t, 1, *pred.shape[2:])
    b = torch.from_numpy(np.ascontiguousarray(truth)).reshape(n * t, 1, *truth.shape[2:])
    p = psnr(a, b).clamp(max=PSNR_CAP).reshape(n, t).numpy()
    s = ssim(a, b).reshape(n, t).numpy()
    return p, s


def _scores(videos: VideoSet, reader: ClipReader, cond: int) -> dict:
    """Per-frame PSNR/SSIM of the predicted frames of every video against its real clip."""
    psnrs, ssims, clips = [], [], []
    offset = 0
    for batch in videos.batches():
        clip = videos.clip[offset:offset + len(batch)]
        offset += len(batch)
        truth = reader(clip)
        p, s = per_frame_scores(batch[:, cond:], truth[:, cond:])
        psnrs.append(p), ssims.append(s), clips.append(clip)
    p, s, clip = np.concatenate(psnrs), np.concatenate(ssims), np.concatenate(clips)
    best_p = [p[clip == c].mean(1).max() for c in np.unique(clip)]
    best_s = [s[clip == c].mean(1).max() for c in np.unique(clip)]
    return {"psnr": float(p.mean()), "ssim": float(s.mean()),
            "psnr_per_frame": p.mean(0).tolist(), "ssim_per_frame": s.mean(0).tolist(),
            "best_of_k_psnr": float(np.mean(best_p)), "best_of_k_ssim": float(np.mean(best_s)),
            "n_videos": int(len(p)), "n_clips": int(len(best_p))}


def _diversity(videos: VideoSet, cond: int) -> dict | None:
    """Mean pairwise 1 - SSIM (predicted frames) between samples of the same conditioning clip."""
    from vqvideo.metrics.quality import ssim

    by_clip: dict[int, list[np.ndarray]] = {}
    offset = 0
    for batch in videos.batches():
        for c, v in zip(videos.clip[offset:offset + len(batch)], batch):
            by_clip.setdefault(int(c), []).append(v[cond:])
        offset += len(batch)
    values = []
    for group in by_clip.values():
        for i in range(len(group)):
            for j in range(i + 1, len(group)):
                a, b = torch.from_numpy(group[i])[None], torch.from_numpy(group[j])[None]
                values.append(1.0 - float(ssim(a, b)[0]))
    if not values:
        return None
    return {"mean_pairwise_1_minus_ssim": float(np.mean(values)), "pairs": len(values)}


def evaluate_quality(cfg) -> dict:
    """Compute ``quality.json`` (see the module docstring); return its content."""
    paths, cond = _paths(cfg), cfg.sampling.cond_frames
    _setup(cfg)
    samples = read_video_set("samples", paths["samples"], "shard-*.h5")
    if samples is None:
        raise FileNotFoundError(f"no sample shards in {paths['samples']} (run vqvideo sample first)")
    copy_last = read_video_set("copy_last", paths["copy_last"], "shard-*.h5")
    reader = ClipReader(paths["data"])
    out = {
        "predicted_frames": [cond + 1, cfg.data.frames],  # 1-based, inclusive (5..16 in the paper's setting)
        "samples": _scores(samples, reader, cond),
        "copy_last": (_scores(copy_last.subset(np.unique(samples.clip)), reader, cond)
                      if copy_last is not None else None),
        "diversity": _diversity(samples, cond),
        "psnr_cap_db": PSNR_CAP,
        "ssim": "Wang et al. 2004, 11x11 Gaussian (sigma 1.5), per frame and channel, valid window",
        "config_hash": cfg.hash,
    }
    atomic_write_text(cfg.results_dir / "quality.json", json.dumps(out, indent=2) + "\n")
    return out


def evaluate(cfg, resolution: int | None = None, quality: bool = False) -> None:
    """``vqvideo evaluate``: FVD at ``resolution`` (all of ``evaluation.resolutions`` and quality when
    neither is given), and/or quality.json."""
    if resolution is None and not quality:
        for r in cfg.evaluation.resolutions:
            evaluate_fvd(cfg, r)
        evaluate_quality(cfg)
        return
    if resolution is not None:
        res = evaluate_fvd(cfg, resolution)
        print(f"FVD({resolution}) = {res['value']:.2f} ± {res['std']:.2f} (folds {res['folds']})")
    if quality:
        evaluate_quality(cfg)


# ------------------------------------------------------------------------------------------- one pair
def load_videos(path: str | Path) -> np.ndarray:
    """uint8 videos from a ``.npz`` (its only array, or ``videos``), an HDF5 shard or a folder of shards
    (dataset ``videos`` or ``clips``)."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path) as z:
            name = "videos" if "videos" in z.files else (z.files[0] if len(z.files) == 1 else None)
            if name is None:
                raise ValueError(f"{path}: several arrays and none named 'videos'")
            return z[name]
    shards = list_shards(path) if path.is_dir() else [path]
    if not shards:
        raise FileNotFoundError(f"no .h5 shards in {path}")
    out = []
    for shard in shards:
        with h5py.File(shard, "r") as f:
            name = "videos" if "videos" in f else "clips" if "clips" in f else None
            if name is None:
                raise ValueError(f"{shard}: no dataset 'videos' or 'clips'")
            out.append(f[name][()])
    return np.concatenate(out)


def fvd_pair(real: str | Path, fake: str | Path, resolution: int | None = None, batch_size: int = 8,
             device: str = "auto") -> dict:
    """``vqvideo fvd``: FVD between two video files/folders; returns a JSON-able dict."""
    dev = F.default_device() if device == "auto" else torch.device(device)
    a, b = load_videos(real), load_videos(fake)
    if a.shape[1:] != b.shape[1:]:
        raise F.FVDInputError(f"the two sets differ in shape: {list(a.shape[1:])} vs {list(b.shape[1:])}")
    if resolution is not None and resolution > min(a.shape[2:4]):
        raise ValueError(f"resolution {resolution} exceeds the videos' size {a.shape[2]}x{a.shape[3]}")
    model = load_i3d(dev)
    kw = {"batch_size": batch_size, "device": dev, "model": model,
          "resolution": resolution if resolution not in (None, a.shape[2]) else None}
    fa, fb = F.i3d_logits(a, **kw), F.i3d_logits(b, **kw)
    value = F.frechet_distance(fa, fb)
    return {"fvd": value, "n_real": len(a), "n_fake": len(b), "frames": int(a.shape[1]),
            "resolution": resolution, "rank_deficient": F.is_rank_deficient(min(len(a), len(b))),
            "real": str(real), "fake": str(fake), "weights": weights_info()}
