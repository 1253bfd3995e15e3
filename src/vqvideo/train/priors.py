"""The prior training stage (``vqvideo train-prior --level top|bottom``): fit on cached latents, then evaluate.

Both priors train on the latent shards only (no video decoding), with the shared harness (teacher forcing,
cross-entropy). What each models, and from what, is what sampling will have (see the model modules):

- top: ``x = top[:, 1:]`` (the predicted top timesteps) given ``cond_top``, ``cond_bottom`` (the 4
  conditioning frames encoded alone);
- bottom: bottom timesteps ``first..Tb-1`` given ``cat(cond_top, top[:, 1:])`` and past bottom timesteps of
  ``cat(cond_bottom, bottom[:, first:])``; each step trains ``slices_per_clip`` random timesteps per clip.

``corrupt_inputs`` (ours, 0 in the paper config): in training a share of the codes the model *reads* is
replaced by random codes while the targets stay clean. Sampling feeds a prior its own samples, mistakes
included; a prior trained only on true codes trusts them too much (exposure bias), and one mistake in a raster
row spreads along it.

Outputs in ``out_dir`` (``results/priors/{level}``): ``checkpoint.pt``, ``log.jsonl`` and ``loss.png`` (from
the harness), ``bits.png`` (train and validation bits per latent) and ``metrics.json``: validation negative
log-likelihood in bits per latent over the whole validation split, the unigram baseline (the cross-entropy
of the validation codes under the training codes' empirical distribution, add-one smoothed so that a code
unseen in training costs finite bits), the relative improvement ``1 - nll / unigram``, and the "copy the
previous timestep's code" baseline with the share of codes that repeat (:func:`copy_previous_baseline`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from vqvideo.models.bottom_prior import BottomPrior
from vqvideo.models.top_prior import TopPrior

LEVELS = ("top", "bottom")
LN2 = math.log(2.0)


def build_prior(level: str, model_config: dict):
    """The prior a checkpoint's ``model_config`` describes: ``load_model(path, lambda c: build_prior(level, c))``
    (``TopPrior(**c)`` / ``BottomPrior(**c)`` work too)."""
    return {"top": TopPrior, "bottom": BottomPrior}[level](**model_config)


def prior_model_config(cfg, level: str, item: dict) -> dict:
    """Constructor arguments of the ``level`` prior: the config section's model keys, the codebook size of the
    VQ-VAE and the shapes of one latent item (so shapes live in the latents, nowhere else)."""
    section = cfg.top_prior if level == "top" else cfg.bottom_prior
    conf = {"codebook_size": int(cfg.vqvae.model.codebook_size), **dataclasses.asdict(section.model)}
    if level == "top":
        t, h, w = item["top"].shape
        conf["shape"] = [t - item["cond_top"].shape[0], h, w]
    else:
        tb, h, w = item["bottom"].shape
        conf.update(shape=[h, w], timesteps=tb, first=int(item["cond_bottom"].shape[0]))
    return conf


IN_MEMORY_MB = 2048  # latent sets up to this size (the demo's) are read into memory once: no per-item HDF5 reads


class InMemoryLatents(Dataset):
    """The items of a LatentDataset (same keys, dtypes and order), all held in memory.

    A small latent set is read shard by shard once; an item is then a few tensor views, so the training loop
    never waits on HDF5. ``shards`` is kept (the unigram baseline reads it).
    """

    def __init__(self, dataset):
        from vqvideo.data.latents import FIELDS
        from vqvideo.data.shards import read_shard

        self.shards = dataset.shards
        parts = [read_shard(path, [*FIELDS, "clip"])[0] for path in self.shards]
        self.arrays = {k: torch.from_numpy(np.concatenate([p[k] for p in parts])) for k in (*FIELDS, "clip")}

    def __len__(self) -> int:
        return len(self.arrays["clip"])

    def __getitem__(self, i: int) -> dict:
        return {k: v[i].long() for k, v in self.arrays.items()}


def latent_set(latents_dir, split: str):
    """LatentDataset of ``split``; in memory (:class:`InMemoryLatents`) when it is at most IN_MEMORY_MB."""
    from vqvideo.data.latents import LatentDataset

    dataset = LatentDataset(latents_dir, split)
    item_bytes = sum(v.numel() * 2 for k, v in dataset[0].items() if k != "clip") + 8  # int16 codes on disk
    return InMemoryLatents(dataset) if len(dataset) * item_bytes <= IN_MEMORY_MB * 2**20 else dataset


# --------------------------------------------------------------------------------------------- losses
def corrupt_codes(codes: torch.Tensor, share: float, codebook_size: int, keep: int = 0) -> torch.Tensor:
    """codes [B, T, ...] long -> a copy in which each position of timesteps ``keep``.. is, with probability
    ``share``, replaced by a uniformly random code (the conditioning timesteps before ``keep`` stay as given)."""
    if share <= 0:
        return codes
    hit = torch.rand(codes.shape, device=codes.device) < share
    hit[:, :keep] = False
    return torch.where(hit, torch.randint_like(codes, codebook_size), codes)


def top_loss_fn(corrupt_inputs: float = 0.0):
    """Harness loss of the top prior: mean cross-entropy (nats) over the predicted top codes. The model reads
    them with a ``corrupt_inputs`` share replaced by random codes (:func:`corrupt_codes`); the targets are clean."""

    def loss_fn(model, batch: dict):
        x, cond_top, cond_bottom = TopPrior.split(batch)
        k = getattr(model, "module", model).codebook_size
        loss = F.cross_entropy(model(corrupt_codes(x, corrupt_inputs, k), cond_top, cond_bottom).float(), x)
        return loss, {"bits": loss.detach() / LN2}

    return loss_fn


def random_steps(batch_size: int, first: int, timesteps: int, count: int, device) -> torch.Tensor:
    """[B, count] distinct random timesteps in first..timesteps-1 per clip (all of them, in order, if count
    covers them)."""
    n = timesteps - first
    if count >= n:
        return torch.arange(first, timesteps, device=device).expand(batch_size, n)
    return torch.rand(batch_size, n, device=device).argsort(1)[:, :count] + first


def bottom_loss_fn(slices_per_clip: int, corrupt_inputs: float = 0.0):
    """Harness loss of the bottom prior: mean cross-entropy over ``slices_per_clip`` random timesteps per clip.
    The model reads the predicted bottom timesteps (the current one, its past window and the copy source) with
    a ``corrupt_inputs`` share replaced by random codes (:func:`corrupt_codes`); the targets are clean."""

    def loss_fn(model, batch: dict):
        bottom, top = BottomPrior.split(batch)
        prior = getattr(model, "module", model)
        steps = random_steps(bottom.shape[0], prior.first, prior.timesteps, slices_per_clip, bottom.device)
        inputs = corrupt_codes(bottom, corrupt_inputs, prior.codebook_size, keep=prior.first)
        logits = model(inputs, top, steps)                           # [B, S, K, H, W]
        loss = F.cross_entropy(logits.float().transpose(1, 2), BottomPrior.targets(bottom, steps))
        return loss, {"bits": loss.detach() / LN2}

    return loss_fn


# --------------------------------------------------------------------------------------------- evaluation
def _to(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def nll_bits(prior, dataset, batch_size: int) -> tuple[float, int]:
    """Mean negative log-likelihood in bits per modelled latent over ``dataset`` (all predicted timesteps),
    and the number of latents. Teacher forcing: exactly the factorisation sampling uses."""
    was_training = prior.training
    prior.eval()
    device = next(prior.parameters()).device
    total, count = 0.0, 0
    for batch in DataLoader(dataset, batch_size=batch_size, num_workers=0):
        batch = _to(batch, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            if prior.level == "top":
                x, ct, cb = TopPrior.split(batch)
                logits, target = prior(x, ct, cb), x
            else:
                bottom, top = BottomPrior.split(batch)
                steps = random_steps(bottom.shape[0], prior.first, prior.timesteps, prior.timesteps, device)
                logits = prior(bottom, top, steps).transpose(1, 2)
                target = BottomPrior.targets(bottom, steps)
        total += float(F.cross_entropy(logits.float(), target, reduction="sum"))
        count += target.numel()
    prior.train(was_training)
    return total / max(count, 1) / LN2, count


def code_counts(dataset, level: str, codebook_size: int) -> np.ndarray:
    """Histogram [K] of the modelled codes of ``level`` (top timesteps 1.., bottom timesteps first..) over a
    LatentDataset, read shard by shard."""
    counts = np.zeros(codebook_size, dtype=np.int64)
    for path in dataset.shards:
        with h5py.File(path, "r") as f:
            skip = f["cond_top" if level == "top" else "cond_bottom"].shape[1]
            codes = f[level][:, skip:]
        if codes.size and (codes.min() < 0 or codes.max() >= codebook_size):
            raise ValueError(f"{path} holds {level} codes in [{codes.min()}, {codes.max()}], outside the "
                             f"codebook of {codebook_size} (vqvae.model.codebook_size)")
        counts += np.bincount(codes.astype(np.int64).ravel(), minlength=codebook_size)
    return counts


def unigram_baseline(train_counts: np.ndarray, val_counts: np.ndarray) -> dict:
    """Bits per latent of the validation codes under the training codes' add-one smoothed unigram
    distribution, and the entropy of the (unsmoothed) training distribution."""
    p = (train_counts + 1.0) / (train_counts.sum() + len(train_counts))
    q = train_counts / max(train_counts.sum(), 1)
    return {"unigram_bits_per_latent": float(-(val_counts * np.log2(p)).sum() / max(val_counts.sum(), 1)),
            "train_code_entropy_bits": float(-(q[q > 0] * np.log2(q[q > 0])).sum())}


def modelled_and_previous(path, level: str) -> tuple[np.ndarray, np.ndarray]:
    """The modelled codes of ``level`` in one latent shard and, for each, the code at the same position one
    timestep earlier in the sequence the prior sees: ``cat(cond, full[:, Tc:])`` (the conditioning timesteps
    encoded alone, as sampling has them). Both ``[N, T - Tc, h, w]`` int64."""
    with h5py.File(path, "r") as f:
        cond = f["cond_top" if level == "top" else "cond_bottom"][:].astype(np.int64)
        full = f[level][:].astype(np.int64)
    seq = np.concatenate([cond, full[:, cond.shape[1]:]], 1)
    return seq[:, cond.shape[1]:], seq[:, cond.shape[1] - 1:-1]


def _repeat_stats(dataset, level: str, unigram: np.ndarray) -> dict:
    """Sufficient statistics of the copy-previous model over a dataset: repeats, total, and the unigram
    probabilities of the repeated and of the other codes."""
    rep_u, other_u, cond_same, cond_total = [], [], 0, 0
    for path in dataset.shards:
        x, prev = modelled_and_previous(path, level)
        same = x == prev
        rep_u.append(unigram[x[same]])
        other_u.append(unigram[x[~same]])
        with h5py.File(path, "r") as f:
            cond = f["cond_top" if level == "top" else "cond_bottom"][:]
            first = f[level][:, :cond.shape[1]]
        cond_same += int((cond == first).sum())
        cond_total += cond.size
    rep_u, other_u = np.concatenate(rep_u), np.concatenate(other_u)
    return {"rep_u": rep_u, "other_u": other_u, "n": len(rep_u) + len(other_u),
            "cond_match": cond_same / max(cond_total, 1)}


def _copy_bits(stats: dict, p: float) -> float:
    """Bits per latent of ``q(c) = p [c == prev] + (1 - p) u(c)``."""
    ll = np.log2(p + (1 - p) * stats["rep_u"]).sum() + np.log2((1 - p) * stats["other_u"]).sum()
    return float(-ll / max(stats["n"], 1))


def copy_previous_baseline(train_set, val_set, level: str, train_counts: np.ndarray) -> dict:
    """The "copy the previous timestep's code" baseline: each modelled code is predicted by the smoothed model
    ``q(c) = p [c == previous code at that position] + (1 - p) u(c)``, ``u`` the add-one smoothed training
    unigram; ``p`` maximises the training likelihood. Also the share of codes equal to the previous
    timestep's (train and val) and the share of conditioning codes (encoded alone) equal to the full clip's."""
    from scipy.optimize import minimize_scalar

    unigram = (train_counts + 1.0) / (train_counts.sum() + len(train_counts))
    train, val = _repeat_stats(train_set, level, unigram), _repeat_stats(val_set, level, unigram)
    fit = minimize_scalar(lambda p: _copy_bits(train, p), bounds=(0.0, 1.0 - 1e-9), method="bounded",
                          options={"xatol": 1e-6})
    p = float(fit.x)
    return {
        "repeat_share_train": len(train["rep_u"]) / max(train["n"], 1),
        "repeat_share_val": len(val["rep_u"]) / max(val["n"], 1),
        "cond_match_val": val["cond_match"],
        "copy_previous_p": p,
        "copy_previous_bits_per_latent": _copy_bits(val, p),
        "copy_previous_definition": "q(c) = p [c == the code at the same position one timestep earlier, "
                                    "conditioning timesteps as encoded alone] + (1 - p) u(c), u the add-one "
                                    "smoothed training unigram, p fitted by maximum likelihood on the training "
                                    "codes; bits per latent of the validation codes",
        "repeat_share_definition": "share of the modelled codes equal to the previous timestep's code at the same "
                                   "position; cond_match: share of the conditioning codes (frames encoded alone) "
                                   "equal to the full clip's codes at those timesteps",
    }


# --------------------------------------------------------------------------------------------- stage
def train_prior(cfg, level: str, latents_dir: str | Path, out_dir: str | Path) -> dict:
    """Train the ``level`` prior of ``cfg`` on ``latents_dir``/train; validate on ``cfg.evaluation.split``;
    write the outputs (module docstring) and return the metrics."""
    from vqvideo.runtime import distributed as dist
    from vqvideo.train.harness import fit

    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    out_dir = Path(out_dir)
    section = cfg.top_prior if level == "top" else cfg.bottom_prior
    tcfg = section.train
    train_set = latent_set(latents_dir, "train")
    val_set = latent_set(latents_dir, cfg.evaluation.split)
    model_config = prior_model_config(cfg, level, train_set[0])
    # the periodic validation: the first eval_batches batches; the final one: the whole split
    eval_batch = max(1, min(tcfg.batch_size, 32))
    val_subset = Subset(val_set, range(min(len(val_set), tcfg.eval_batches * eval_batch)))

    def evaluate(model):
        return {"bits": nll_bits(model, val_subset, eval_batch)[0]}

    k = model_config["codebook_size"]
    # the baseline first: it reads every code once, and refuses codes outside the codebook before training
    train_counts = code_counts(train_set, level, k)
    baseline = unigram_baseline(train_counts, code_counts(val_set, level, k))
    baseline.update(copy_previous_baseline(train_set, val_set, level, train_counts))
    torch.manual_seed(cfg.seed)  # the initial weights
    model = build_prior(level, model_config)
    loss_fn = (top_loss_fn(section.corrupt_inputs) if level == "top"
               else bottom_loss_fn(section.slices_per_clip, section.corrupt_inputs))
    t0 = time.perf_counter()
    model = fit(model, loss_fn, train_set, tcfg, out_dir, model_config, evaluate=evaluate, seed=cfg.seed,
                kind=f"{level}_prior")
    train_seconds = time.perf_counter() - t0
    if not dist.is_main():
        return {}
    bits, tokens = nll_bits(model, val_set, eval_batch)
    metrics = {
        "level": level,
        "split": cfg.evaluation.split,
        "val_bits_per_latent": bits,
        **baseline,
        "relative_improvement": 1.0 - bits / baseline["unigram_bits_per_latent"],
        "relative_improvement_over_copy_previous": 1.0 - bits / baseline["copy_previous_bits_per_latent"],
        "val_latents": tokens,
        "val_clips": len(val_set),
        "train_clips": len(train_set),
        "parameters": sum(p.numel() for p in model.parameters()),
        "model": model.describe(),
        "steps": tcfg.steps,
        "batch_size": tcfg.batch_size,
        "train_seconds_this_run": round(train_seconds, 1),
    }
    _write_outputs(out_dir, metrics, level)
    return metrics


def _write_outputs(out_dir: Path, metrics: dict, level: str) -> None:
    from vqvideo.runtime.files import atomic_write_text
    from vqvideo.viz import plot_curves

    log = out_dir / "log.jsonl"
    if log.exists():
        plot_curves(log, out_dir / "bits.png", ["bits"], title=f"{level} prior: bits per latent (train, val)")
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
