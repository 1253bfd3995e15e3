"""The evaluation stage (``vqvideo evaluate``): FVD, KVD, FVD*, 2-fold cross-validation, brackets, quality.

Inputs (all under ``cfg.results``), in the sample-shard layout (``videos`` uint8 ``[N, 16, H, W, 3]``, ``clip``
int64 manifest row, ``sample`` index per clip):

- ``samples/shard-*.h5``: our samples; ``baselines/copy_last/shard-*.h5``: the copy-last baseline;
- ``latents/{split}/recon-*.h5``: VQ-VAE reconstructions of the evaluation split (``videos``, ``clip``);
- ``data/manifest.csv`` + ``data/shards/*.h5`` (``clips``): the real clips.

``fvd_{R}.json`` (one per R in ``evaluation.resolutions``): FVD and KVD (:mod:`vqvideo.metrics.kvd`) of the
samples against the real clips of the same conditioning clips, over ``evaluation.folds`` disjoint folds of
conditioning clips (seeded). Each entry (``fvd``, ``kvd``, ``fvd_star``, ``kvd_star``, ``baselines.copy_last.fvd``,
``baselines.copy_last.kvd``, ``baselines.reconstructions.fvd``, ``baselines.reconstructions.kvd``) holds each
fold's value (``folds``), their mean (``value``), std, ``fold_sizes`` and the value on all videos (``all``).
FVD*/KVD*: samples against the reconstructions of the same clips; the copy-last baseline and the reconstructions
against the real clips are the brackets. ``sanity``: whether the reconstructions rank best on each metric (a
warning when not). Top-level ``value``/``std``/``folds`` repeat ``fvd``'s (the paper's figure). Videos larger
than R are first area-downscaled to RxR (the paper's 64x64 comparison downsamples its 256x256 videos), then
resized to the I3D input with TF1 bilinear. I3D features of every set are cached under ``evaluation/features/``,
keyed by the content of the videos, the frames used, R and the I3D weights.

``quality.json``: PSNR and SSIM of the predicted frames against the ground truth, per frame and averaged
(``AGGREGATION`` says how: PSNR of the mean MSE per frame, so that one identical frame cannot dominate), for the
samples (mean, and best of K samples per clip), the copy-last baseline and the reconstructions; ``diagnostics``:
the sample shards' true-top videos (true top codes, sampled bottom codes) next to the full samples; diversity =
mean pairwise 1 - SSIM between samples of the same conditioning clip. ``quality_per_frame.png`` draws the curves.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from vqvideo.runtime.device import choose_device
from vqvideo.runtime.files import atomic_path, atomic_write_text
from vqvideo.data.datasets import ClipReader
from vqvideo.data.shards import list_shards
from vqvideo.metrics import fvd as F
from vqvideo.metrics.i3d import MIN_FRAMES, load_i3d, weights_info
from vqvideo.metrics.kvd import kernel_distance

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


TRUE_TOP_PREFIX = "true_top_"  # sample shards' diagnostic videos: true top codes, sampled bottom codes


def read_video_set(name: str, shards: list[Path], prefix: str = "") -> VideoSet | None:
    """The videos of ``shards`` (datasets ``{prefix}videos``, ``{prefix}clip`` and optional ``{prefix}sample``);
    None if there are none."""
    if not shards:
        return None
    parts, clips, samples = [], [], []
    for path in shards:
        with h5py.File(path, "r") as f:
            if f"{prefix}videos" not in f:
                continue
            n = f[f"{prefix}videos"].shape[0]
            if n == 0:
                continue
            clip = f[f"{prefix}clip"][()].astype(np.int64)
            sample = f[f"{prefix}sample"][()].astype(np.int64) if f"{prefix}sample" in f else np.zeros(n, np.int64)
        parts.append((path, f"{prefix}videos", np.arange(n)))
        clips.append(clip)
        samples.append(sample)
    if not parts:
        return None
    return VideoSet(name, parts, np.concatenate(clips), np.concatenate(samples))


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
    # through a file handle: np.savez given a name not ending in .npz would append .npz to the temporary name
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, features=feats)
    return feats


# ------------------------------------------------------------------------------------------- folds
def assign_folds(clip_ids, folds: int, seed: int) -> list[np.ndarray]:
    """Split the unique conditioning clips into ``folds`` disjoint, near-equal, seeded random groups."""
    unique = np.unique(np.asarray(clip_ids, np.int64))
    if folds > len(unique):
        raise ValueError(f"{folds} folds asked for, but only {len(unique)} conditioning clips")
    perm = np.random.default_rng(seed).permutation(unique)
    return [np.sort(part) for part in np.array_split(perm, folds)]


def _choose_folds(clips: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """The folds of conditioning clips; fewer than asked when a fold would hold < 2 clips (warned, and the
    JSON's ``protocol.folds`` says how many)."""
    if len(clips) < 2:
        raise ValueError(f"FVD needs at least 2 conditioning clips with samples, found {len(clips)}")
    n_folds = folds
    if len(clips) < 2 * folds:  # a covariance needs 2 videos per fold
        n_folds = len(clips) // 2
        warnings.warn(f"only {len(clips)} conditioning clips: {n_folds} fold(s) instead of {folds}")
    return assign_folds(clips, n_folds, seed)


def _select(feats: np.ndarray, clip: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return feats[np.isin(clip, keep)]


DISTANCES = {"fvd": F.frechet_distance, "kvd": kernel_distance}


def _over_folds(distance, fake: np.ndarray, fake_clip: np.ndarray, real: np.ndarray, real_clip: np.ndarray,
                folds: list[np.ndarray]) -> dict:
    """``distance`` (FVD or KVD) of ``fake`` vs ``real`` per fold (the videos of the fold's conditioning clips),
    their mean (``value``) and population std, and on all videos at once (``all``)."""
    values, sizes = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # rank deficiency is reported in the JSON instead
        for keep in folds:
            a, b = _select(fake, fake_clip, keep), _select(real, real_clip, keep)
            values.append(distance(a, b))
            sizes.append([len(a), len(b)])
        everything = distance(fake, real)
    return {"value": float(np.mean(values)), "std": float(np.std(values)), "folds": values,
            "fold_sizes": sizes, "all": everything,
            "rank_deficient": any(F.is_rank_deficient(min(s)) for s in sizes)}


def _comparisons(feats: dict, clip_of: dict, folds: list[np.ndarray]) -> dict:
    """FVD and KVD of every comparison the JSON reports: ``{metric: {comparison: entry or None}}``.

    Comparisons: ``samples`` (vs the real clips), ``star`` (samples vs the reconstructions: FVD*, KVD*),
    ``copy_last`` and ``reconstructions`` (vs the real clips; the brackets)."""
    pairs = {"samples": ("samples", "real"), "star": ("samples", "recon"),
             "copy_last": ("copy_last", "real"), "reconstructions": ("recon", "real")}
    out = {}
    for metric, distance in DISTANCES.items():
        out[metric] = {name: (_over_folds(distance, feats[fake], clip_of[fake], feats[ref], clip_of[ref], folds)
                              if fake in feats and ref in feats else None)
                       for name, (fake, ref) in pairs.items()}
    return out


def sanity(comparisons: dict) -> dict:
    """Do the VQ-VAE's reconstructions rank best (lowest, over the folds' mean) on KVD, and on FVD?

    They must: a predictor's samples decode through the same VQ-VAE, so they cannot be closer to the real clips
    than its reconstructions unless the metric cannot tell. ``{metric: {ranking, values, reconstructions_best}}``
    plus ``warnings`` (also issued as Python warnings, which go to stderr); ``reconstructions_best`` is None
    when a set is missing."""
    out, notes = {}, []
    for metric, entries in comparisons.items():
        values = {name: entries[name]["value"] for name in ("reconstructions", "samples", "copy_last")
                  if entries.get(name) is not None}
        ranking = sorted(values, key=values.get)
        best = (ranking[0] == "reconstructions") if len(values) == 3 else None
        out[metric] = {"ranking": ranking, "values": values, "reconstructions_best": best}
        if best is False:
            notes.append(f"{metric.upper()} does not rank the reconstructions best: "
                         + " < ".join(f"{n} {values[n]:.4g}" for n in ranking))
    if notes and (comparisons["fvd"].get("samples") or {}).get("rank_deficient"):
        notes.append("FVD at fewer than 401 videos per fold is biased (rank-deficient covariances); KVD is not")
    if notes:
        warnings.warn("evaluation sanity: " + "; ".join(notes), UserWarning, stacklevel=2)
    return {**out, "ok": not any(v["reconstructions_best"] is False for v in out.values()), "warnings": notes}


# ------------------------------------------------------------------------------------------- stage
@dataclass(frozen=True)
class EvalPaths:
    """What the evaluation reads: the fvd and quality rules' ``{input}`` (defaults: :meth:`of` the layout)."""

    samples: list[Path]  # sample shards
    copy_last: list[Path]  # copy-last shards
    recon: list[Path]  # the evaluation split's reconstructions
    data: Path  # data folder: manifest.csv and shards/ (the real clips)
    cache: Path  # I3D feature cache

    @classmethod
    def of(cls, cfg) -> "EvalPaths":
        layout = cfg.layout
        return cls(list_shards(layout.samples, "shard-*.h5"), list_shards(layout.copy_last, "shard-*.h5"),
                   list_shards(layout.latents / cfg.evaluation.split, "recon-*.h5"), layout.data,
                   layout.feature_cache)


def _setup(cfg):
    ev = cfg.evaluation
    if ev.threads:
        torch.set_num_threads(ev.threads)
    device = choose_device(ev.device)
    return device


def _samples(paths: EvalPaths) -> VideoSet:
    samples = read_video_set("samples", paths.samples)
    if samples is None:
        raise FileNotFoundError(f"no sample videos in {', '.join(map(str, paths.samples)) or 'no shards'} "
                                "(run vqvideo sample first)")
    return samples


def _video_sets(paths: EvalPaths) -> dict:
    """samples, copy_last, recon (None where absent) restricted to the sampled conditioning clips, and their
    real clips: ``{name: VideoSet | RealClips | None}``."""
    samples = _samples(paths)
    clips = np.unique(samples.clip)
    others = {"copy_last": read_video_set("copy_last", paths.copy_last),
              "recon": read_video_set("recon", paths.recon)}
    return {"samples": samples, **{k: (v.subset(clips) if v is not None else None) for k, v in others.items()},
            "real": real_clips(paths.data, clips)}


def _predicted_frames(cfg) -> tuple[slice, int]:
    """The frames I3D sees (``evaluation.frames``) and how many they are; I3D needs ``MIN_FRAMES``."""
    ev = cfg.evaluation
    frames = frame_slice(ev.frames, cfg.sampling.cond_frames)
    n_frames = len(range(cfg.data.frames)[frames])
    if n_frames < MIN_FRAMES:
        raise ValueError(f"evaluation.frames={ev.frames!r} leaves {n_frames} frames; I3D needs {MIN_FRAMES}")
    return frames, n_frames


def _all_features(sets: dict, resolution: int, frames: slice, cache: Path, device, batch_size: int) -> dict:
    """I3D logits of every present set (the model is loaded only if some set misses the cache)."""
    weights_sha, models = weights_info()["sha256"], []

    def get_model():
        if not models:
            models.append(load_i3d(device))
        return models[0]

    return {name: _features(s, resolution, frames, cache, weights_sha, get_model, device, batch_size)
            for name, s in sets.items() if s is not None}


def evaluate_fvd(cfg, resolution: int, paths: EvalPaths | None = None, out_path: Path | None = None) -> dict:
    """Compute ``fvd_{resolution}.json`` (see the module docstring; written to ``out_path``, default: the
    layout's) from ``paths`` (default: the layout's); return its content."""
    ev, paths = cfg.evaluation, paths or EvalPaths.of(cfg)
    device = _setup(cfg)
    sets = _video_sets(paths)
    clips = np.unique(sets["samples"].clip)
    frames, n_frames = _predicted_frames(cfg)
    print(f"FVD/KVD at {resolution}x{resolution}: {len(sets['samples'])} samples of {len(clips)} clips, "
          f"frames={ev.frames} ({n_frames}), device {device}")
    t0 = time.perf_counter()
    feats = _all_features(sets, resolution, frames, paths.cache, device, ev.batch_size)
    seconds = time.perf_counter() - t0
    folds = _choose_folds(clips, ev.folds, ev.seed)
    clip_of = {name: s.clip for name, s in sets.items() if s is not None}
    comp = _comparisons(feats, clip_of, folds)
    out = _fvd_json(cfg, resolution, sets, comp, folds, n_frames)
    out["seconds"] = {"features": seconds}
    atomic_write_text(out_path or cfg.layout.fvd(resolution), json.dumps(out, indent=2) + "\n")
    return out


def _fvd_json(cfg, resolution: int, sets: dict, comp: dict, folds: list, n_frames: int) -> dict:
    ev, samples = cfg.evaluation, sets["samples"]
    main_fvd, n_clips = comp["fvd"]["samples"], len(sets["real"])
    out = {
        "metric": "FVD",
        "resolution": resolution,
        "value": main_fvd["value"],  # FVD of the samples (the paper's figure), as fvd.value
        "std": main_fvd["std"],
        "folds": main_fvd["folds"],
        "fvd": main_fvd,
        "kvd": comp["kvd"]["samples"],
        "fvd_star": comp["fvd"]["star"],
        "kvd_star": comp["kvd"]["star"],
        "baselines": {name: {"fvd": comp["fvd"][name], "kvd": comp["kvd"][name]}
                      for name in ("copy_last", "reconstructions")},
        "sanity": sanity(comp),
        "n_videos": {"samples": len(samples), "real": n_clips, "clips": n_clips,
                     "samples_per_clip": float(len(samples) / max(n_clips, 1)),
                     **{k: (len(sets[k]) if sets[k] is not None else 0) for k in ("copy_last", "recon")}},
        "rank_deficient": main_fvd["rank_deficient"],
        "protocol": {
            "split": ev.split, "folds": len(folds), "folds_asked": ev.folds, "fold_seed": ev.seed,
            "frames": ev.frames, "n_frames": n_frames, "cond_frames": cfg.sampling.cond_frames,
            "fold_clips": [len(f) for f in folds],
            "resize": f"area to {resolution}x{resolution} when larger, then TF1 bilinear (no half-pixel "
                      "centres) to 224x224, x*2/255-1",
            "std": "population std (ddof=0) of the fold values",
            "kvd": "unbiased MMD^2 of the I3D logits, kernel k(x, y) = (x.y / 400 + 1)^3 (Unterthiner et al. 2018)",
        },
        "config_hash": cfg.hash,
        "weights": weights_info(),
    }
    missing = [k for k in ("copy_last", "recon") if sets[k] is None]
    if missing:
        out["missing"] = missing
    return out


# ------------------------------------------------------------------------------------------- quality
PSNR_CAP = 100.0  # identical frames have infinite PSNR; capped so means stay finite

AGGREGATION = {
    "psnr": "per predicted frame t, PSNR of the mean MSE over videos (10 log10(255^2 / mean_v MSE[v, t])); "
            "psnr = the mean of that curve over t. A frame identical to the truth adds MSE 0 to a mean instead of "
            "a capped 100 dB (the 12-fps demo sources repeat frames after resampling to 25 fps)",
    "psnr_capped_mean": "the former aggregation, for comparison: the mean over videos and frames of per-frame "
                        "PSNR capped at psnr_cap_db",
    "ssim": "mean over videos and frames of per-frame SSIM",
    "best_of_k": "per conditioning clip, the sample with the lowest MSE over the predicted frames (for PSNR) and "
                 "the one with the highest mean SSIM (for SSIM), then aggregated as above",
    "best_of_k_curve": "best of k for k = 1, 2, 4, ... up to K, from each clip's first k samples",
}


def frame_errors(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MSE (0-255 scale) and SSIM per frame ``[N, T]`` of uint8 videos ``[N, T, H, W, 3]``."""
    from vqvideo.metrics.quality import ssim

    n, t = pred.shape[:2]
    a = torch.from_numpy(np.ascontiguousarray(pred)).reshape(n * t, 1, *pred.shape[2:])
    b = torch.from_numpy(np.ascontiguousarray(truth)).reshape(n * t, 1, *truth.shape[2:])
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(1).reshape(n, t).numpy()
    return mse, ssim(a, b).reshape(n, t).numpy()


def psnr_of_mse(mse: np.ndarray) -> np.ndarray:
    """PSNR in dB of MSEs on the 0-255 scale, capped at ``PSNR_CAP`` (MSE 0 would be +inf)."""
    with np.errstate(divide="ignore"):
        return np.minimum(10 * np.log10(255.0 ** 2 / np.asarray(mse, np.float64)), PSNR_CAP)


@dataclass
class FrameScores:
    """Per-video, per-predicted-frame errors of one video set against the real clips."""

    mse: np.ndarray  # [N, T'] 0-255 scale
    ssim: np.ndarray  # [N, T']
    clip: np.ndarray  # [N]

    def best_of_k(self, k: int | None = None) -> tuple["FrameScores", "FrameScores"]:
        """Per clip, its sample with the lowest mean MSE, and its sample with the highest mean SSIM, among its
        first ``k`` samples (all when None): any k of the independent samples are a draw of best of k."""
        by_mse, by_ssim = [], []
        for c in np.unique(self.clip):
            rows = np.flatnonzero(self.clip == c)[:k]
            by_mse.append(rows[np.argmin(self.mse[rows].mean(1))])
            by_ssim.append(rows[np.argmax(self.ssim[rows].mean(1))])
        return self._take(by_mse), self._take(by_ssim)

    def _take(self, rows) -> "FrameScores":
        rows = np.asarray(rows, np.int64)
        return FrameScores(self.mse[rows], self.ssim[rows], self.clip[rows])


def frame_scores(videos, reader: ClipReader, cond: int) -> FrameScores:
    """MSE and SSIM of the predicted frames of every video of a set against its real clip."""
    mses, ssims, clips, offset = [], [], [], 0
    for batch in videos.batches():
        clip = videos.clip[offset:offset + len(batch)]
        offset += len(batch)
        mse, ssim = frame_errors(batch[:, cond:], reader(clip)[:, cond:])
        mses.append(mse), ssims.append(ssim), clips.append(clip)
    return FrameScores(np.concatenate(mses), np.concatenate(ssims), np.concatenate(clips))


def _curves(psnr_from: FrameScores, ssim_from: FrameScores | None = None) -> dict:
    """PSNR (from the mean MSE per frame) and SSIM curves and their means; see ``AGGREGATION``."""
    ssim_from = ssim_from if ssim_from is not None else psnr_from
    psnr_curve = psnr_of_mse(psnr_from.mse.mean(0))
    ssim_curve = ssim_from.ssim.mean(0)
    return {"psnr": float(psnr_curve.mean()), "ssim": float(ssim_curve.mean()),
            "psnr_per_frame": psnr_curve.tolist(), "ssim_per_frame": ssim_curve.tolist()}


def summarize(scores: FrameScores, best_of_k: bool = False) -> dict:
    """quality.json's entry for one set: curves, means, the former capped mean, and (for samples) best of K."""
    out = {**_curves(scores),
           "psnr_capped_mean": float(psnr_of_mse(scores.mse).mean()),
           "identical_frames": int((scores.mse == 0).sum()),
           "n_videos": int(len(scores.clip)), "n_clips": int(len(np.unique(scores.clip)))}
    if best_of_k:
        best = _curves(*scores.best_of_k())
        out.update({f"best_of_k_{k}": v for k, v in best.items()})
        out["k"] = float(len(scores.clip) / max(out["n_clips"], 1))
        ks = sorted({2 ** i for i in range(int(np.log2(max(out["k"], 1))) + 1)} | {int(out["k"])})
        curves = [_curves(*scores.best_of_k(k)) for k in ks]
        out["best_of_k_curve"] = {"k": ks, "psnr": [c["psnr"] for c in curves], "ssim": [c["ssim"] for c in curves]}
    return out


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


def _quality_sets(paths: EvalPaths) -> dict:
    """samples; copy_last, reconstructions and the true-top diagnostic (None where absent), restricted to the
    sampled conditioning clips."""
    samples = _samples(paths)
    clips = np.unique(samples.clip)
    others = {"copy_last": read_video_set("copy_last", paths.copy_last),
              "reconstructions": read_video_set("recon", paths.recon),
              "true_top": read_video_set("true_top", paths.samples, prefix=TRUE_TOP_PREFIX)}
    return {"samples": samples, **{k: (v.subset(clips) if v is not None else None) for k, v in others.items()}}


def _diagnostics(true_top: dict | None, samples: dict) -> dict:
    """Split the blame: decoding the TRUE top codes with SAMPLED bottom codes, next to the full samples."""
    return {
        "what": "true_top_sampled_bottom: the encoder's top codes of the real clip (timestep 0 from the "
                "conditioning frames alone, as sampling has it), bottom codes sampled by the bottom prior given "
                "them, decoded. Near the reconstructions: the top prior is to blame; near the full samples: "
                "the bottom prior",
        "true_top_sampled_bottom": true_top,
        "full_samples": {k: samples[k] for k in ("psnr", "ssim", "psnr_per_frame", "ssim_per_frame")},
    }


def evaluate_quality(cfg, paths: EvalPaths | None = None, out_path: Path | None = None,
                     plot_path: Path | None = None) -> dict:
    """Compute ``quality.json`` (written to ``out_path``) and its per-frame curves (``plot_path``; defaults: the
    layout's) from ``paths`` (default: the layout's); see the module docstring; return the JSON's content."""
    paths, cond = paths or EvalPaths.of(cfg), cfg.sampling.cond_frames
    _setup(cfg)
    t0 = time.perf_counter()
    sets = _quality_sets(paths)
    reader = ClipReader(paths.data)
    scores = {name: (frame_scores(s, reader, cond) if s is not None else None) for name, s in sets.items()}
    entries = {name: (summarize(sc, best_of_k=name == "samples") if sc is not None else None)
               for name, sc in scores.items()}
    out = {
        "predicted_frames": [cond + 1, cfg.data.frames],  # 1-based, inclusive (5..16 in the paper's setting)
        "samples": entries["samples"],
        "copy_last": entries["copy_last"],
        "reconstructions": entries["reconstructions"],
        "diagnostics": _diagnostics(entries["true_top"], entries["samples"]),
        "diversity": _diversity(sets["samples"], cond),
        "aggregation": AGGREGATION,
        "psnr_cap_db": PSNR_CAP,
        "ssim": "Wang et al. 2004, 11x11 Gaussian (sigma 1.5), per frame and channel, valid window",
        "config_hash": cfg.hash,
    }
    out["seconds"] = time.perf_counter() - t0
    from vqvideo.viz import plot_per_frame

    plot_per_frame(out, plot_path or cfg.layout.quality_per_frame)
    atomic_write_text(out_path or cfg.layout.quality, json.dumps(out, indent=2) + "\n")
    return out


def evaluate(cfg, resolution: int | None = None, quality: bool = False, paths: EvalPaths | None = None,
             out_path: Path | None = None, plot_path: Path | None = None) -> None:
    """``vqvideo evaluate``: FVD at ``resolution`` (all of ``evaluation.resolutions`` and quality when
    neither is given), and/or quality.json (and its curves, ``plot_path``). ``out_path`` (one output only),
    ``plot_path`` and ``paths`` default to the layout's."""
    if out_path is not None and (resolution is not None) == quality:
        raise ValueError("one output path is for one output: --resolution R or --quality")
    if resolution is None and not quality:
        for r in cfg.evaluation.resolutions:
            evaluate_fvd(cfg, r, paths)
        evaluate_quality(cfg, paths)
        return
    if resolution is not None:
        res = evaluate_fvd(cfg, resolution, paths, out_path)
        print(f"FVD({resolution}) = {res['value']:.2f} ± {res['std']:.2f} (folds {res['folds']}); "
              f"KVD({resolution}) = {res['kvd']['value']:.4g} ± {res['kvd']['std']:.2g}")
    if quality:
        evaluate_quality(cfg, paths, out_path, plot_path)


# ------------------------------------------------------------------------------------------- one pair
def load_videos(path: str | Path) -> np.ndarray:
    """uint8 videos from a ``.npz`` (its only array, or ``videos``), an HDF5 shard or a folder of shards
    (dataset ``videos`` or ``clips``)."""
    path = Path(path)
    if not path.exists():
        raise F.FVDInputError(f"{path}: no such file or folder")
    if path.suffix == ".npz":
        with np.load(path) as z:
            name = "videos" if "videos" in z.files else (z.files[0] if len(z.files) == 1 else None)
            if name is None:
                raise F.FVDInputError(f"{path}: several arrays and none named 'videos'")
            return z[name]
    shards = list_shards(path) if path.is_dir() else [path]
    if not shards:
        raise F.FVDInputError(f"no .h5 shards in {path}")
    out = []
    for shard in shards:
        with h5py.File(shard, "r") as f:
            name = "videos" if "videos" in f else "clips" if "clips" in f else None
            if name is None:
                raise F.FVDInputError(f"{shard}: no dataset 'videos' or 'clips'")
            out.append(f[name][()])
    return np.concatenate(out)


def fvd_pair(real: str | Path, fake: str | Path, resolution: int | None = None, batch_size: int = 8,
             device: str = "auto") -> dict:
    """``vqvideo fvd``: FVD between two video files/folders; returns a JSON-able dict."""
    dev = choose_device(device)
    a, b = load_videos(real), load_videos(fake)
    if a.shape[1:] != b.shape[1:]:
        raise F.FVDInputError(f"the two sets differ in shape: {list(a.shape[1:])} vs {list(b.shape[1:])}")
    if resolution is not None and resolution > min(a.shape[2:4]):
        raise F.FVDInputError(f"resolution {resolution} exceeds the videos' size {a.shape[2]}x{a.shape[3]}")
    model = load_i3d(dev)
    kw = {"batch_size": batch_size, "device": dev, "model": model,
          "resolution": resolution if resolution not in (None, a.shape[2]) else None}
    fa, fb = F.i3d_logits(a, **kw), F.i3d_logits(b, **kw)
    return {"fvd": F.frechet_distance(fa, fb), "kvd": kernel_distance(fa, fb),
            "n_real": len(a), "n_fake": len(b), "frames": int(a.shape[1]),
            "resolution": resolution, "rank_deficient": F.is_rank_deficient(min(len(a), len(b))),
            "real": str(real), "fake": str(fake), "weights": weights_info()}
