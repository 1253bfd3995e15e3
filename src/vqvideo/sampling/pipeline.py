"""Predict 12 frames from 4: top prior, then the bottom prior timestep by timestep, then the VQ-VAE decoder.

For each conditioning clip of a latent shard of the evaluation split, the conditioning latents (the first 4
frames encoded alone: ``cond_top [1, h, w]``, ``cond_bottom [2, H, W]``) condition the top prior, which samples
the 3 predicted top timesteps; the bottom prior then samples bottom timesteps 2..7 in order, each conditioned
on the 4 top timesteps and its predecessors; the decoder turns ``top [4, h, w]`` and ``bottom [8, H, W]`` into
16 frames, the first 4 of which are the conditioning frames' reconstructions.

Sample shard ``i`` (``results/samples/shard-{i:05d}.h5``) follows latent shard ``i``: ``videos`` uint8
``[N, 16, H, W, 3]`` (rounded), ``top``, ``bottom`` int16, ``clip`` int64 (manifest row), ``sample`` int64
(index per clip); attrs ``seed``, ``temperature``, ``method`` and the checkpoints' hashes. With
``sampling.true_top_diagnostic`` it also holds ``true_top_videos`` (one per clip, sample 0), ``true_top_bottom``,
``true_top_clip`` and ``true_top_sample``: the clip's true top codes (timestep 0 from the conditioning frames
alone) decoded with bottom codes sampled given them, so that quality.json can tell the top prior's share of
the error from the bottom prior's.

Resuming: every batch is written atomically to ``.parts/shard-{i:05d}/batch-{b:05d}.h5`` as soon as it is
sampled, with its own generator seeded from (seed, shard, batch), so a killed job redoes at most one batch
and the finished shard is the same as an uninterrupted run's; the parts are gathered into the shard
(atomically) and removed at the end.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from vqvideo.runtime.device import choose_device
from vqvideo.config import Config
from vqvideo.errors import NO_RESULT, MissingInput, UserError
from vqvideo.data.shards import list_shards, read_shard, write_shard
from vqvideo.runtime.files import sha256_file
from vqvideo.sampling.clips import SamplingError, load_frames, selected_groups


class PredictError(UserError):
    """A video ``vqvideo predict`` cannot predict from (too short), or an output it cannot write."""

    exit_code = NO_RESULT  # as predict's other refusals (an unreadable video, missing checkpoints)


# --------------------------------------------------------------------------------------------- models
def resolve_device(name: str) -> torch.device:
    """The sampling device; on a GPU, TF32 is switched off so that both samplers compute in float32 (the naive
    one's whole-grid convolutions and the incremental one's matrix products then agree to rounding error)."""
    device = choose_device(name)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return device


def file_hash(path: str | Path) -> str:
    """Short sha256 of a file (which checkpoint made a sample shard)."""
    return sha256_file(path)[:12]


def checkpoint_paths(cfg: Config) -> dict[str, Path]:
    """The layout's checkpoints: ``{"vqvae", "top_prior", "bottom_prior"}``."""
    layout = cfg.layout
    return {"vqvae": layout.vqvae_checkpoint, "top_prior": layout.prior_checkpoint("top"),
            "bottom_prior": layout.prior_checkpoint("bottom")}


class Models:
    """The VQ-VAE and both priors, in eval mode on ``device``, with their checkpoints' hashes.

    ``checkpoints``: ``{"vqvae", "top_prior", "bottom_prior"}`` paths (default: the layout's; None entries too)."""

    def __init__(self, cfg: Config, device: torch.device, checkpoints: dict[str, Path | None] | None = None):
        from vqvideo.models.bottom_prior import BottomPrior
        from vqvideo.models.top_prior import TopPrior
        from vqvideo.models.vqvae import VQVAE
        from vqvideo.runtime.checkpoint import load_model

        paths = {k: Path((checkpoints or {}).get(k) or v) for k, v in checkpoint_paths(cfg).items()}
        for name, path in paths.items():
            if not path.is_file():
                raise MissingInput(f"{name} checkpoint not found: {path} (train it first)")
        self.vqvae, _ = load_model(paths["vqvae"], lambda c: VQVAE(**c), map_location=device)
        self.top, _ = load_model(paths["top_prior"], lambda c: TopPrior(**c), map_location=device)
        self.bottom, _ = load_model(paths["bottom_prior"], lambda c: BottomPrior(**c), map_location=device)
        self.hashes = {f"{name}_hash": file_hash(path) for name, path in paths.items()}
        self.device = device


def sample_latents(models: Models, cond_top: torch.Tensor, cond_bottom: torch.Tensor, temperature: float,
                   generator: torch.Generator, method: str = "incremental",
                   on_tokens=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Conditioning codes ``cond_top [B, 1, h, w]``, ``cond_bottom [B, 2, H, W]`` -> ``top [B, 4, h, w]``,
    ``bottom [B, 8, H, W]`` (long), whose first timesteps are the conditioning codes.

    ``on_tokens(k)`` (incremental only): called as the positions of the batch are generated, ``k`` = positions
    generated so far in this batch (top grid, then the bottom timesteps)."""
    if method == "naive":
        from vqvideo.sampling import naive as sampler
    elif method == "incremental":
        from vqvideo.sampling import incremental as sampler
    else:
        raise ValueError(f"unknown sampling method {method!r}")
    cond_top, cond_bottom = cond_top.long(), cond_bottom.long()
    if method == "incremental" and on_tokens is not None:
        n_top = math.prod(models.top.shape)
        top = sampler.sample_top(models.top, (cond_top, cond_bottom), temperature, generator, on_token=on_tokens)
        bottom = sampler.sample_bottom(models.bottom, top, cond_bottom, temperature, generator,
                                       on_token=lambda k: on_tokens(n_top + k))
    else:
        top = sampler.sample_top(models.top, (cond_top, cond_bottom), temperature, generator)
        bottom = sampler.sample_bottom(models.bottom, top, cond_bottom, temperature, generator)
    return top, bottom


@torch.no_grad()
def decode_videos(vqvae, top: torch.Tensor, bottom: torch.Tensor, chunk: int = 8) -> np.ndarray:
    """Codes -> uint8 videos ``[B, T, H, W, 3]`` (rounded to the nearest level, clamped), ``chunk`` videos at
    a time (the decoder's activations at 256x256x16 are large)."""
    from vqvideo.models.vqvae import output_to_video

    return np.concatenate([output_to_video(vqvae.decode_codes(top[i:i + chunk], bottom[i:i + chunk])).cpu().numpy()
                           for i in range(0, len(top), chunk)])


@torch.no_grad()
def encode_conditioning(vqvae, frames: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 conditioning frames ``[B, 4, H, W, 3]`` encoded alone -> ``cond_top [B, 1, h, w]``,
    ``cond_bottom [B, 2, H', W']``."""
    from vqvideo.models.vqvae import video_to_input

    return vqvae.encode_codes(video_to_input(torch.from_numpy(np.ascontiguousarray(frames)).to(device)))


def batch_seed(seed: int, shard: int, batch: int, stream: str = "sample") -> int:
    """The generator seed of one batch: independent of which batches ran before (resumable, parallel).
    ``stream``: ``sample`` (the samples) or ``true-top`` (the diagnostic's bottom codes)."""
    digest = hashlib.sha256(f"vqvideo-{stream}:{seed}:{shard}:{batch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def tokens_per_video(top_shape, bottom_shape, cond_top: int = 1, cond_bottom: int = 2) -> int:
    """Tokens one video samples: the predicted top and bottom timesteps."""
    t, h, w = top_shape
    tb, hb, wb = bottom_shape
    return (t - cond_top) * h * w + (tb - cond_bottom) * hb * wb


# --------------------------------------------------------------------------------------------- shards
@dataclass(frozen=True)
class ShardPaths:
    """What sampling one shard reads and writes: the ``sample`` rule's ``{input}`` and ``{output}``."""

    latents: Path  # latent shard of the evaluation split
    data: Path  # data folder: manifest.csv (the clips' rows) and shards/ (their frames)
    out: Path  # sample shard
    gif: Path  # grid
    mp4: Path

    @classmethod
    def of(cls, cfg: Config, shard: int) -> "ShardPaths":
        """The layout's paths of shard ``shard``."""
        layout = cfg.layout
        return cls(layout.latent_shard(cfg.evaluation.split, shard), layout.data, layout.sample_shard(shard),
                   layout.sample_grid(shard, "gif"), layout.sample_grid(shard, "mp4"))


def latent_shard_numbers(cfg: Config) -> list[int]:
    folder = cfg.layout.latents / cfg.evaluation.split
    return [int(p.stem.rsplit("-", 1)[1]) for p in list_shards(folder, "shard-*.h5")]


@dataclass
class Plan:
    """What one sample shard holds: the kept clips' conditioning codes and the (clip, sample) of each video."""

    rows: list[dict]  # manifest rows of the kept clips
    cond_top: np.ndarray  # [n, 1, h, w]
    cond_bottom: np.ndarray  # [n, 2, H, W]
    true_top: np.ndarray  # [n, 4, h, w] the full clip's top codes, timestep 0 replaced by cond_top
    clips: np.ndarray  # [N] manifest row of each video (N = n * samples_per_clip)
    samples: np.ndarray  # [N] sample index per clip
    index: np.ndarray  # [N] row of cond_* for each video
    attrs: dict


def _conditioning(cfg: Config, paths: ShardPaths, models: Models):
    """Kept clips of latent shard ``paths.latents``: (manifest rows, cond_top, cond_bottom, top) as numpy arrays."""
    kept = {row["clip"]: row for rows in selected_groups(cfg, paths.data).values() for row in rows}
    with h5py.File(paths.latents, "r") as f:
        clip_ids = f["clip"][()].astype(np.int64)
        take = np.array([i for i, c in enumerate(clip_ids) if int(c) in kept], dtype=np.int64)
        rows = [kept[int(clip_ids[i])] for i in take]
        top = f["top"][()][take] if len(take) else f["top"][:0]
        if "cond_top" in f and "cond_bottom" in f:
            cond_top = f["cond_top"][()][take] if len(take) else f["cond_top"][:0]
            cond_bottom = f["cond_bottom"][()][take] if len(take) else f["cond_bottom"][:0]
            return rows, cond_top, cond_bottom, top
    # latents without conditioning codes: encode the first frames alone, as the latent stage does
    tops, bottoms = [], []
    for start in range(0, len(rows), cfg.sampling.batch_size):
        frames = load_frames(paths.data, rows[start:start + cfg.sampling.batch_size])
        ct, cb = encode_conditioning(models.vqvae, frames[:, :cfg.sampling.cond_frames], models.device)
        tops.append(ct.cpu().numpy())
        bottoms.append(cb.cpu().numpy())
    return rows, np.concatenate(tops), np.concatenate(bottoms), top


def plan_shard(cfg: Config, paths: ShardPaths, models: Models) -> Plan:
    s = cfg.sampling
    rows, cond_top, cond_bottom, top = _conditioning(cfg, paths, models)
    true_top = np.concatenate([cond_top, top[:, cond_top.shape[1]:]], axis=1).astype(cond_top.dtype)
    n = s.samples_per_clip
    attrs = {"seed": s.seed, "temperature": s.temperature, "method": s.method, "batch_size": s.batch_size,
             "cond_frames": s.cond_frames, "true_top": bool(s.true_top_diagnostic), **models.hashes}
    return Plan(rows, cond_top, cond_bottom, true_top,
                clips=np.repeat(np.array([r["clip"] for r in rows], dtype=np.int64), n),
                samples=np.tile(np.arange(n, dtype=np.int64), len(rows)),
                index=np.repeat(np.arange(len(rows)), n), attrs=attrs)


def _part_ok(path: Path, clips: np.ndarray, samples: np.ndarray, attrs: dict) -> bool:
    """A part file written by an earlier run with the same settings for the same (clip, sample) pairs."""
    try:
        arrays, got = read_shard(path, ["clip", "sample"])
    except (OSError, KeyError):
        return False
    same = all(str(got.get(k)) == str(v) for k, v in attrs.items())
    return same and np.array_equal(arrays["clip"], clips) and np.array_equal(arrays["sample"], samples)


class Progress:
    """tqdm over the shard's videos with tokens/s and videos/s (all videos of a batch count), at most once a
    second while a batch is generated."""

    def __init__(self, total: int, tokens: int, shard: int):
        self.bar = tqdm(total=total, unit="video", desc=f"sample shard {shard}", dynamic_ncols=True)
        self.tokens, self.started, self.last = tokens, time.perf_counter(), 0.0
        self.elapsed, self.done = 0.0, 0

    def during(self, batch_n: int):
        """The ``on_tokens`` callback of the batch being sampled (``k`` positions of each of its videos)."""
        done_before = self.done * self.tokens

        def show(k: int) -> None:
            now = time.perf_counter()
            if now - self.last >= 1.0:
                self.last = now
                rate = (done_before + k * batch_n) / max(now - self.started, 1e-9)
                self.bar.set_postfix({"tokens/s": f"{rate:.0f}", "videos/s": f"{rate / self.tokens:.3f}"},
                                     refresh=True)
        return show

    def batch_done(self, n: int, seconds: float) -> None:
        self.elapsed += seconds
        self.done += n
        self.bar.update(n)
        self.bar.set_postfix({"tokens/s": f"{self.done * self.tokens / self.elapsed:.0f}",
                              "videos/s": f"{self.done / self.elapsed:.3f}"})


def _true_top_videos(models: Models, plan: Plan, sl: slice, temperature: float, generator) -> dict:
    """The diagnostic of a batch: for its videos of sample 0, bottom codes sampled given the TRUE top codes,
    decoded (``true_top_videos`` uint8 ``[n, T, H, W, 3]``, ``true_top_clip``, ``true_top_sample``)."""
    from vqvideo.sampling import incremental, naive

    first = np.flatnonzero(plan.samples[sl] == 0)
    out = {"true_top_clip": plan.clips[sl][first], "true_top_sample": plan.samples[sl][first]}
    if len(first) == 0:
        return {"true_top_videos": None, **out}
    rows = plan.index[sl][first]
    sampler = naive if plan.attrs["method"] == "naive" else incremental
    top = torch.from_numpy(plan.true_top[rows]).long().to(models.device)
    cb = torch.from_numpy(plan.cond_bottom[rows]).long().to(models.device)
    bottom = sampler.sample_bottom(models.bottom, top, cb, temperature, generator)
    return {"true_top_videos": decode_videos(models.vqvae, top, bottom),
            "true_top_bottom": bottom.cpu().numpy().astype(np.int16), **out}


def _sample_batch(cfg: Config, models: Models, plan: Plan, shard: int, b: int, sl: slice, on_tokens) -> dict:
    """Sample the videos ``sl`` of the plan (batch ``b``): their codes and videos (and the diagnostic's)."""
    s = cfg.sampling
    generator = torch.Generator(device=models.device).manual_seed(batch_seed(s.seed, shard, b))
    ct = torch.from_numpy(plan.cond_top[plan.index[sl]]).to(models.device)
    cb = torch.from_numpy(plan.cond_bottom[plan.index[sl]]).to(models.device)
    top, bottom = sample_latents(models, ct, cb, s.temperature, generator, s.method, on_tokens=on_tokens)
    arrays = {"videos": decode_videos(models.vqvae, top, bottom), "top": top.cpu().numpy().astype(np.int16),
              "bottom": bottom.cpu().numpy().astype(np.int16), "clip": plan.clips[sl], "sample": plan.samples[sl]}
    if s.true_top_diagnostic:
        diag_gen = torch.Generator(device=models.device).manual_seed(batch_seed(s.seed, shard, b, "true-top"))
        diag = _true_top_videos(models, plan, sl, s.temperature, diag_gen)
        if diag["true_top_videos"] is None:
            diag.update(true_top_videos=arrays["videos"][:0], true_top_bottom=arrays["bottom"][:0])
        arrays.update(diag)
    return arrays


def _gather(parts_dir: Path, n_batches: int, names: list[str], empty: dict) -> dict:
    """The parts in batch order: exactly the shard's videos, each once."""
    gathered = {k: [] for k in names}
    for b in range(n_batches):
        arrays, _ = read_shard(parts_dir / f"batch-{b:05d}.h5", names)
        for k in names:
            gathered[k].append(arrays[k])
    return {k: np.concatenate(v) if v else empty[k] for k, v in gathered.items()}


def _empty_arrays(cfg: Config, top_shape, bottom_shape) -> dict:
    res, frames = cfg.data.resolution, cfg.data.frames
    videos = np.zeros((0, frames, res, res, 3), np.uint8)
    return {"videos": videos, "top": np.zeros((0, *top_shape), np.int16),
            "bottom": np.zeros((0, *bottom_shape), np.int16), "clip": np.zeros(0, np.int64),
            "sample": np.zeros(0, np.int64), "true_top_videos": videos,
            "true_top_bottom": np.zeros((0, *bottom_shape), np.int16), "true_top_clip": np.zeros(0, np.int64),
            "true_top_sample": np.zeros(0, np.int64)}


def sample_shard(cfg: Config, shard: int, models: Models, paths: ShardPaths | None = None) -> Path:
    """Sample every kept clip of latent shard ``shard`` ``samples_per_clip`` times; write the sample shard.
    ``paths``: what it reads and writes (default: the layout's, :meth:`ShardPaths.of`).

    With ``sampling.true_top_diagnostic``, the shard also holds, for sample 0 of each clip, the video decoded
    from the clip's TRUE top codes and bottom codes sampled given them (``true_top_videos``, ``true_top_bottom``,
    ``true_top_clip``, ``true_top_sample``): quality.json's diagnostic that splits the blame between the priors.
    """
    s = cfg.sampling
    paths = paths or ShardPaths.of(cfg, shard)
    out = paths.out
    parts_dir = out.parent / ".parts" / out.stem
    plan = plan_shard(cfg, paths, models)
    top_shape, bottom_shape = _latent_shapes(models.vqvae, cfg.data.frames, cfg.data.resolution)
    tokens = tokens_per_video(top_shape, bottom_shape, plan.cond_top.shape[1], plan.cond_bottom.shape[1])
    starts = list(range(0, len(plan.clips), s.batch_size))
    progress = Progress(len(plan.clips), tokens, shard)
    for b, start in enumerate(starts):
        sl = slice(start, start + s.batch_size)
        part = parts_dir / f"batch-{b:05d}.h5"
        if part.exists() and _part_ok(part, plan.clips[sl], plan.samples[sl], plan.attrs):
            progress.bar.update(len(plan.clips[sl]))
            continue
        t0 = time.perf_counter()
        arrays = _sample_batch(cfg, models, plan, shard, b, sl, progress.during(len(plan.clips[sl])))
        write_shard(part, arrays, plan.attrs)
        progress.batch_done(len(arrays["videos"]), time.perf_counter() - t0)
    progress.bar.close()

    names = ["videos", "top", "bottom", "clip", "sample"]
    if s.true_top_diagnostic:
        names += ["true_top_videos", "true_top_bottom", "true_top_clip", "true_top_sample"]
    arrays = _gather(parts_dir, len(starts), names, _empty_arrays(cfg, top_shape, bottom_shape))
    write_grid(cfg, paths, plan.rows, arrays)
    write_shard(out, arrays, {**plan.attrs, "config_hash": cfg.hash, "tokens_per_video": tokens,
                              "sampling_seconds": progress.elapsed})  # this run's batches (resumed ones excluded)
    shutil.rmtree(parts_dir, ignore_errors=True)
    try:
        parts_dir.parent.rmdir()  # .parts/, once no shard of this folder is in progress
    except OSError:
        pass
    return out


def _latent_shapes(vqvae, frames: int, resolution: int):
    shapes = vqvae.latent_shapes(frames, resolution, resolution)
    return tuple(shapes["top"]), tuple(shapes["bottom"])


def write_grid(cfg: Config, paths: ShardPaths, rows: list[dict], arrays: dict) -> list[Path]:
    """``paths.gif`` and ``paths.mp4``: one row per clip: conditioning | ground truth | its samples.

    The conditioning column shows the real conditioning frames, then grey where the model predicts.
    """
    from vqvideo.viz import save_gif, save_mp4, video_grid

    s = cfg.sampling
    n = min(s.grid_clips, len(rows))
    res, frames = cfg.data.resolution, cfg.data.frames
    if n == 0:  # an empty shard (all its clips beyond max_clips) still gets its (blank) grid
        grid = np.full((frames, res, res, 3), 128, np.uint8)
    else:
        real = load_frames(paths.data, rows[:n])
        cond = real.copy()
        cond[:, s.cond_frames:] = 128
        grid_rows = []
        for k, row in enumerate(rows[:n]):
            mine = arrays["videos"][arrays["clip"] == row["clip"]]
            grid_rows.append(np.concatenate([cond[k:k + 1], real[k:k + 1], mine]))
        grid = video_grid(grid_rows)
    return [save_gif(grid, paths.gif, fps=s.fps), save_mp4(grid, paths.mp4, fps=s.fps)]


def run_sampling(cfg: Config, shard: int | None = None, paths: ShardPaths | None = None,
                 checkpoints: dict[str, Path | None] | None = None) -> list[Path]:
    """Sample shard ``shard`` of the evaluation split (every latent shard when None); return the shards.

    ``paths`` (only with ``shard``) and ``checkpoints`` (see :class:`Models`) default to the layout's."""
    if cfg.sampling.threads:
        torch.set_num_threads(cfg.sampling.threads)
    if paths is not None and shard is None:
        raise SamplingError("explicit shard paths need a shard number")
    device = resolve_device(cfg.sampling.device)
    shards = latent_shard_numbers(cfg) if shard is None else [shard]
    if not shards:
        raise MissingInput(f"no latent shards in {cfg.layout.latents / cfg.evaluation.split}")
    models = Models(cfg, device, checkpoints)
    written = []
    for i in shards:
        p = paths or ShardPaths.of(cfg, i)
        written.append(p.out if p.out.exists() else sample_shard(cfg, i, models, p))
    return written


# --------------------------------------------------------------------------------------------- predict
def predict_video(cfg: Config, video: str | Path, out: str | Path, start_s: float = 0.0) -> Path:
    """Predict 12 frames after the first 4 (from ``start_s``) of any video; write them beside the real ones.

    The video (any size and frame rate) is decoded, resampled to ``data.fps`` and cropped to
    ``data.resolution`` as the data stage does; it needs ``sampling.cond_frames`` (4) frames from ``start_s``.
    The output (MP4, or GIF by suffix) is a labelled grid, left to right: ``conditioning`` (the 4 input frames,
    then the last one held), ``real`` (the video's own 16 frames, "no frame" where it ends sooner), then
    ``sample 1..K`` (4 reconstructed conditioning frames + 12 predicted), each frame numbered underneath.
    Nothing is written when the video is too short.
    """
    from vqvideo.data.video import load_frames as decode
    from vqvideo.viz import enlarge, labelled_grid, save_gif, save_mp4, text_tile

    s, d = cfg.sampling, cfg.data
    out = Path(out)
    if out.suffix.lower() not in (".gif", ".mp4"):
        raise PredictError(f"--out {out}: name an .mp4 or .gif file")
    if s.threads:
        torch.set_num_threads(s.threads)
    skip = int(round(start_s * d.fps))
    frames = decode(video, d.fps, d.resolution, max_frames=skip + d.frames, frame_folder_fps=d.frame_folder_fps)
    frames = frames[skip:]
    if len(frames) < s.cond_frames:
        raise PredictError(f"{video}: only {len(frames)} frames from {start_s:g} s at {d.fps:g} fps; "
                           f"{s.cond_frames} are needed")
    device = resolve_device(s.device)
    models = Models(cfg, device)
    cond_top, cond_bottom = encode_conditioning(models.vqvae, frames[None, :s.cond_frames], device)
    k = s.samples_per_clip
    generator = torch.Generator(device=device).manual_seed(batch_seed(s.seed, -1, 0))
    top, bottom = sample_latents(models, cond_top.repeat(k, 1, 1, 1), cond_bottom.repeat(k, 1, 1, 1),
                                 s.temperature, generator, s.method)
    predicted = decode_videos(models.vqvae, top, bottom)  # [K, T, R, R, 3]
    t, r = predicted.shape[1], d.resolution
    scale = max(1, 128 // r)  # 64x64 clips drawn at 128x128 so that the labels fit
    frames, predicted = enlarge(frames, scale), enlarge(predicted, scale)
    missing = text_tile("no frame", r * scale, r * scale)
    real = np.stack([frames[i] if i < len(frames) else missing for i in range(t)])
    held = np.stack([frames[min(i, s.cond_frames - 1)] for i in range(t)])
    columns = [("conditioning", held), ("real", real)] + [(f"sample {i + 1}", v) for i, v in enumerate(predicted)]
    labels = [f"frame {i + 1} of {t} ({'input' if i < s.cond_frames else 'predicted'})" for i in range(t)]
    grid = labelled_grid(columns, labels)
    return save_gif(grid, out, fps=s.fps) if out.suffix.lower() == ".gif" else save_mp4(grid, out, fps=s.fps)
