"""The VQ-VAE training stage (``vqvideo train-vqvae``): fit, then evaluate and draw.

Outputs in ``out_dir`` (``results/vqvae``): ``checkpoint.pt`` and ``log.jsonl`` (from the harness),
``metrics.json`` (validation PSNR/SSIM, PSNR with the bottom level masked, codebook usage per level, bit
rate), ``loss.png``, ``psnr.png``, ``usage.png`` and reconstruction grids ``recon.png`` / ``recon.gif``
(each row one validation clip: original | reconstruction | bottom level masked).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from vqvideo.data.params import Params
from vqvideo.metrics.quality import bits_ratio, latent_bits, psnr, raw_bits, ssim
from vqvideo.models.quantizer import code_usage
from vqvideo.models.vqvae import VQVAE, output_to_video, video_to_input


def build_vqvae(model_config: dict) -> VQVAE:
    """The model a checkpoint's ``model_config`` describes (``load_model(path, build_vqvae)``)."""
    return VQVAE(**model_config)


def data_settings(data_cfg, train_set) -> dict:
    """The data settings a checkpoint records (``data_config``), what `vqvideo reconstruct` needs to cut clips as
    the model saw them: ``cfg.data``'s clip settings (:class:`vqvideo.data.params.Params`), with ``frames``,
    ``fps`` and ``resolution`` as the training shards' attributes say (prepare-data may have been run with other
    flags than this config)."""
    settings = {f.name: getattr(data_cfg, f.name) for f in dataclasses.fields(Params)}
    if len(train_set):
        import h5py

        with h5py.File(train_set.data_dir / "shards" / train_set._items[0][0], "r") as f:
            settings.update({k: f.attrs[k].item() for k in ("frames", "fps", "resolution") if k in f.attrs})
    return settings


def random_crop(clips: torch.Tensor, size: int) -> torch.Tensor:
    """A random ``size x size`` window of each clip ``[B, T, H, W, C]`` (the same window in every frame) ->
    ``[B, T, size, size, C]``. Offsets come from torch's global RNG, which checkpoints save and restore."""
    b, _, h, w, _ = clips.shape
    ys = torch.randint(0, h - size + 1, (b,)).tolist()
    xs = torch.randint(0, w - size + 1, (b,)).tolist()
    return torch.stack([clip[:, y:y + size, x:x + size] for clip, y, x in zip(clips, ys, xs)])


def augment(clips: torch.Tensor, flip: bool = False, reverse: bool = False) -> torch.Tensor:
    """Each clip ``[B, T, H, W, C]`` mirrored left-right (``flip``) and/or played backwards (``reverse``), each
    with probability 1/2 per clip: views of the same footage that the training clips do not hold. The draws
    come from torch's global RNG (saved in checkpoints); nothing is drawn for an option that is off."""
    for on, dim in ((flip, 3), (reverse, 1)):
        if on:
            pick = torch.rand(len(clips)) < 0.5
            clips = torch.where(pick.view(-1, 1, 1, 1, 1).to(clips.device), clips.flip(dim), clips)
    return clips


def vqvae_loss(model, clips: torch.Tensor, crop: int | None = None, flip: bool = False, reverse: bool = False):
    """Harness loss: uint8 clips ``[B, T, H, W, 3]`` on the device -> (loss, metrics).

    ``crop``: train on a random ``crop x crop`` window of each clip. The model is convolutional, so it learns
    the same weights from windows as from whole frames, at ``(crop / H)^2`` of the cost of a step.
    ``flip``, ``reverse``: :func:`augment` (after the window is cut).
    """
    if crop is not None and crop < min(clips.shape[2:4]):
        clips = random_crop(clips, crop)
    clips = augment(clips, flip, reverse)
    _, out = model(video_to_input(clips))
    loss = out.pop("loss")
    return loss, {k: (v.detach() if torch.is_tensor(v) else v) for k, v in out.items()}


@torch.no_grad()
def evaluate_vqvae(model: VQVAE, clips, batch_size: int, keep: int = 0,
                   cond_frames: int | None = None) -> tuple[dict, list[np.ndarray]]:
    """Reconstruction quality and code usage of ``model`` over a dataset of uint8 clips ``[T, H, W, 3]``.

    Returns ``(metrics, grid)``: metrics are means over the clips of per-clip PSNR/SSIM (full and with the
    bottom level masked), usage/perplexity of each codebook over all the clips' codes, ``repeat_{level}`` (the
    share of codes at timestep >= 1 equal to the previous timestep's code at the same position: what a prior
    gets for free) and, with ``cond_frames``, ``cond_match_{level}`` (the share of the first ``cond_frames``
    frames' codes, encoded alone as sampling encodes them, equal to the full clip's); ``grid`` holds the first
    ``keep`` clips as ``[original, reconstruction, masked]`` uint8 arrays ``[T, H, W, 3]``.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums = {"psnr": 0.0, "ssim": 0.0, "psnr_masked": 0.0, "ssim_masked": 0.0}
    counts = {"top": torch.zeros(model.quant_top.num_codes, device=device),
              "bottom": torch.zeros(model.quant_bottom.num_codes, device=device)}
    n, grid = 0, []
    agree = {k: [0, 0] for k in ("repeat_top", "repeat_bottom", "cond_match_top", "cond_match_bottom")}
    for batch in DataLoader(clips, batch_size=batch_size, num_workers=0):
        batch = torch.as_tensor(batch).to(device)
        x = video_to_input(batch)
        top, bottom = model.encode_codes(x)
        pairs = {"repeat_top": (top[:, 1:], top[:, :-1]), "repeat_bottom": (bottom[:, 1:], bottom[:, :-1])}
        if cond_frames:
            cond_top, cond_bottom = model.encode_codes(x[:, :, :cond_frames])
            pairs.update(cond_match_top=(cond_top, top[:, :cond_top.shape[1]]),
                         cond_match_bottom=(cond_bottom, bottom[:, :cond_bottom.shape[1]]))
        for key, (a, b) in pairs.items():
            agree[key][0] += int((a == b).sum())
            agree[key][1] += a.numel()
        rec = output_to_video(model.decode_codes(top, bottom))
        masked = output_to_video(model.decode_codes(top, None))
        for name, codes in (("top", top), ("bottom", bottom)):
            counts[name] += torch.bincount(codes.flatten(), minlength=counts[name].numel()).to(counts[name].dtype)
        sums["psnr"] += float(psnr(rec, batch).clamp(max=100).sum())  # identical clips would give +inf
        sums["ssim"] += float(ssim(rec, batch).sum())
        sums["psnr_masked"] += float(psnr(masked, batch).clamp(max=100).sum())
        sums["ssim_masked"] += float(ssim(masked, batch).sum())
        for i in range(min(keep - len(grid), len(batch))):
            grid.append([batch[i].cpu().numpy(), rec[i].cpu().numpy(), masked[i].cpu().numpy()])
        n += len(batch)
    model.train(was_training)
    metrics = {k: v / max(n, 1) for k, v in sums.items()}
    metrics.update({k: same / total for k, (same, total) in agree.items() if total})
    for name, c in counts.items():
        metrics.update({f"{k}_{name}": v for k, v in code_usage(c).items()})
    metrics["clips"] = n
    return metrics, grid


def train_vqvae(cfg, data_dir: str | Path, out_dir: str | Path, eval_clips: int = 1024) -> dict:
    """Train the VQ-VAE of ``cfg.vqvae`` on ``data_dir``'s train split; write the outputs; return the metrics.

    Validation uses ``cfg.evaluation.split`` (periodic evaluation: the first ``eval_batches * batch_size``
    clips, for speed; the final metrics: up to ``eval_clips`` clips spread evenly over the split, since
    neighbouring clips often come from one video).
    """
    from vqvideo.data.datasets import ClipDataset
    from vqvideo.runtime import distributed as dist
    from vqvideo.train.harness import fit

    out_dir = Path(out_dir)
    tcfg = cfg.vqvae.train
    model_config = dataclasses.asdict(cfg.vqvae.model)
    train_set = ClipDataset(data_dir, "train")
    val_set = ClipDataset(data_dir, cfg.evaluation.split)
    val_subset = Subset(val_set, range(min(len(val_set), tcfg.eval_batches * tcfg.batch_size)))
    eval_batch = max(1, min(tcfg.batch_size, 16))

    def evaluate(model):
        return evaluate_vqvae(model, val_subset, eval_batch, cond_frames=cfg.sampling.cond_frames)[0]

    torch.manual_seed(cfg.seed)  # the initial weights
    model = build_vqvae(model_config)
    t0 = time.perf_counter()
    loss_fn = functools.partial(vqvae_loss, crop=cfg.vqvae.crop, flip=cfg.vqvae.flip, reverse=cfg.vqvae.reverse)
    model = fit(model, loss_fn, train_set, tcfg, out_dir, model_config, evaluate=evaluate, seed=cfg.seed,
                kind="vqvae", data_config=data_settings(cfg.data, train_set))
    train_seconds = time.perf_counter() - t0
    if not dist.is_main():
        return {}
    metrics, _ = evaluate_vqvae(model, Subset(val_set, _spread(len(val_set), eval_clips)), eval_batch,
                                cond_frames=cfg.sampling.cond_frames)
    spread = _spread(len(val_set), 4)
    _, grid = evaluate_vqvae(model, Subset(val_set, spread), eval_batch, keep=len(spread))
    frames, height, width = val_set[0].shape[:3] if len(val_set) else (cfg.data.frames, cfg.data.resolution,
                                                                         cfg.data.resolution)
    shapes = model.latent_shapes(frames, height, width)
    k = model.quant_top.num_codes
    metrics.update({
        "latent_shapes": shapes,
        "codebook_size": k,
        "latent_bits": latent_bits(shapes, k),
        "raw_bits": raw_bits(frames, height, width),
        "bits_ratio": bits_ratio(shapes, k, frames, height, width),
        "restarts_top": int(model.quant_top.restarts),
        "restarts_bottom": int(model.quant_bottom.restarts),
        "steps": tcfg.steps,
        "train_seconds_this_run": round(train_seconds, 1),
        "train_clips": len(train_set),
        "split": cfg.evaluation.split,
    })
    metrics["warnings"] = codebook_warnings(metrics)
    for warning in metrics["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    _write_outputs(out_dir, metrics, grid)
    return metrics


def codebook_warnings(metrics: dict, min_usage: float = 0.25) -> list[str]:
    """Plain-words warnings for a level whose codebook is mostly unused: the failure that a good overall PSNR
    hides when the decoder learns to ignore the top level and the bottom carries everything."""
    warnings = []
    for level in ("top", "bottom"):
        usage = metrics[f"usage_{level}"]
        if usage < min_usage:
            warnings.append(f"the {level} codebook uses {usage:.0%} of its codes on the validation clips "
                            f"(perplexity {metrics[f'perplexity_{level}']:.1f}); PSNR with the bottom level masked is "
                            f"{metrics['psnr_masked']:.1f} dB. The {level} level carries little: try a higher "
                            f"vqvae.model.bottom_mask_rate, more clips per batch or whole frames (vqvae.crop: null)")
    return warnings


def _spread(n: int, k: int) -> list[int]:
    """Up to ``k`` indices spread evenly over ``range(n)``."""
    return sorted(set(np.linspace(0, n - 1, min(k, n)).astype(int).tolist())) if n else []


def _write_outputs(out_dir: Path, metrics: dict, grid: list) -> None:
    from vqvideo.runtime.files import atomic_write_text
    from vqvideo.viz import plot_curves, save_gif, save_png, video_grid

    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    log = out_dir / "log.jsonl"
    if log.exists():
        plot_curves(log, out_dir / "loss.png", ["loss", "recon_loss", "commit_top", "commit_bottom"],
                    title="VQ-VAE losses", logy=True)
        plot_curves(log, out_dir / "psnr.png", ["psnr", "psnr_masked", "ssim"], title="VQ-VAE validation")
        plot_curves(log, out_dir / "usage.png", ["usage_top", "usage_bottom", "perplexity_top", "perplexity_bottom"],
                    title="codebook usage")
    if grid:
        video = video_grid([np.stack(row) for row in grid])  # one clip per row: original | recon | masked
        save_png(video, out_dir / "recon.png")
        save_gif(video, out_dir / "recon.gif", fps=8)
