"""One training loop for the VQ-VAE and both priors: AdamW, warmup, clipping, bf16 AMP, DDP, exact resume.

A model plugs in with a loss function; everything else (data order, devices, checkpoints, logs) lives here
(tests/train/test_harness.py runs this example)::

    from pathlib import Path

    import torch
    from vqvideo.config import TrainConfig   # the CLI passes cfg.vqvae.train, cfg.top_prior.train, ...
    from vqvideo.runtime.checkpoint import load_model
    from vqvideo.train.harness import fit

    class Tiny(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.net = torch.nn.Linear(width, 1)

        def forward(self, x):                # [B, width] -> [B]
            return self.net(x).squeeze(-1)

    def loss_fn(model, batch):               # batch: what the DataLoader yields, already on the device
        x, y = batch
        pred = model(x)                      # once per step, through model(...): see the contract below
        loss = torch.nn.functional.mse_loss(pred, y)
        return loss, {"mae": (pred - y).abs().mean().detach()}   # scalar metrics: floats or 0-d tensors

    model_config = {"width": 8}              # plain values: stored in the checkpoint, rebuilds the model
    torch.manual_seed(0)                     # the initial weights
    x = torch.randn(256, 8)
    data = torch.utils.data.TensorDataset(x, x @ torch.randn(8))
    cfg = TrainConfig(batch_size=32, steps=200, lr=1e-2, log_every=20, num_workers=0)
    model = fit(Tiny(**model_config), loss_fn, data, cfg, out_dir=Path("results/tiny"),
                model_config=model_config, kind="tiny")   # run again: returns at once (complete checkpoint)
    model, ckpt = load_model("results/tiny/checkpoint.pt", lambda c: Tiny(**c))
    assert ckpt["step"] == 200

Contract for models and loss functions
- ``loss_fn`` must call ``model(...)`` (``forward``) once per step: under DDP ``model`` is the
  DistributedDataParallel wrapper and only its forward prepares the gradient all-reduce. Reach other
  attributes through ``getattr(model, "module", model)``. The loss is a mean over the (per-rank) batch, so
  that averaging gradients over ranks equals one process with the global batch.
- Every parameter gets a gradient each step (DDP runs with ``find_unused_parameters=False``).
- Buffers are broadcast from rank 0 once at the start and never in forward: buffers updated in forward
  (EMA codebooks) are kept equal by the model, which all-reduces its own statistics with
  :mod:`vqvideo.runtime.distributed`, in training mode only.
- ``evaluate(model)`` runs on rank 0 only, in ``eval()`` mode under ``no_grad`` with a forked RNG (so it does
  not change the training random stream); it must not call collectives.
- Datasets return the same item for the same index (random augmentation, if any, seeded from the index):
  then the data order, and so the whole run, is a function of the seed and the global batch size.

Data order: an infinite stream of indices, epoch ``e`` being a permutation of ``range(len(train_set))``
drawn from ``(seed, e)``. Step ``s`` consumes stream positions ``[p, p + B)`` (B = global batch); rank ``r``
of ``W`` takes ``[p + r*B/W, p + (r+1)*B/W)``, so W processes see exactly the samples one process sees.
With ``cfg.accum_steps = A`` a step is A global micro-batches of B/A, each sharded the same way, with one
optimiser step (and one gradient all-reduce) after the last. The stream position is saved in the checkpoint
and resuming continues from it.

Resume: when ``out_dir/checkpoint.pt`` exists, fit() continues from it (model, optimiser, step, every rank's
RNG, data position) and drops log lines written after it, so the losses equal those of an uninterrupted run;
a complete checkpoint (step >= cfg.steps) is loaded and returned without training; one made with another
``model_config`` or ``kind`` is refused. ``cfg.steps`` may be raised to train further.

Preemption (SLURM): SIGTERM or SIGUSR1 sets a flag; at the end of the current step every rank agrees to
stop, a checkpoint is written, and the process exits with :data:`PREEMPTED_EXIT_CODE` (75) and a message on
stderr; rerunning the same command resumes. DataLoader workers ignore both signals (SLURM signals every
process of the step) and are stopped by fit(). Under ``torchrun`` the agent forwards SIGTERM to the ranks,
waits 30 s for them, and exits with its own code (1). On a cluster run trainings under
``python -m vqvideo.launch``, which stops them before the time limit and keeps the checkpoint for the retry.

Log (``out_dir/log.jsonl``, rank 0): ``{"step", "split": "train", "loss", <metrics>, "grad_norm", "sec_per_step",
"data_wait" (share of step time spent waiting for the DataLoader), "lr", "samples", "max_mem_gb" (CUDA)}``,
means over the ``cfg.log_every`` steps since the last line and over ranks; ``{"step", "split": "val", ...}``
from ``evaluate``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import math
import numbers
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from vqvideo import errors
from vqvideo.runtime import distributed as dist
from vqvideo.runtime.checkpoint import load_checkpoint, rng_state, save_checkpoint, seed_everything, set_rng_state

PREEMPTED_EXIT_CODE = errors.PREEMPTED  # 75, EX_TEMPFAIL: "try again"; the checkpoint is written, rerun to resume
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(SystemExit):
    """Raised by :func:`fit` after checkpointing on SIGTERM/SIGUSR1; exits the process with code 75."""

    def __init__(self, step: int):
        super().__init__(PREEMPTED_EXIT_CODE)
        self.step = step


def fit(model: nn.Module,
        loss_fn: Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, float]]],
        train_set: Dataset,
        cfg,
        out_dir: Path,
        model_config: dict,
        evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
        seed: int = 0,
        collate_fn=None,
        kind: str = "model",
        data_config: dict | None = None,
        ) -> nn.Module:
    """Train ``model`` for ``cfg.steps`` optimiser steps (resuming ``out_dir/checkpoint.pt``); return it unwrapped.

    Writes ``out_dir/checkpoint.pt`` (every ``cfg.checkpoint_every`` steps, at the end, on preemption),
    ``out_dir/log.jsonl`` (train records every ``cfg.log_every`` steps, val records from ``evaluate``) and
    ``out_dir/loss.png``. ``cfg`` is a :class:`vqvideo.config.TrainConfig`. ``data_config`` (plain values, e.g.
    the frame rate and resolution of the training clips) is stored in the checkpoint as ``data_config``, so that
    a checkpoint also says what data it was trained on.
    """
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "checkpoint.pt"
    device = _setup(cfg)

    model.to(device).train()
    opt = _optimizer(model, cfg, device)
    start, position = _resume(ckpt_path, model, opt, kind, model_config, seed, len(train_set))
    if start >= cfg.steps:
        return model
    run = _Run(model, opt, cfg, ckpt_path, model_config, kind, seed, len(train_set), data_config)
    ddp = _wrap(model, device)
    loader = _loader(train_set, IndexStream(len(train_set), seed), position, cfg, collate_fn, device, seed)

    log = _Log(out_dir / "log.jsonl", start)
    window = _Window()
    bar = tqdm(total=cfg.steps, initial=start, desc=kind, disable=not dist.is_main(), dynamic_ncols=True,
               mininterval=0.1 if sys.stderr.isatty() else 30)  # a batch job's log: a line every 30 s
    with _StopFlag() as stop_flag, _workers(loader) as batches:
        for step in range(start, cfg.steps):
            t0 = time.perf_counter()
            lr = _set_lr(opt, cfg, step)
            loss, metrics, t_data = _train_step(ddp, loss_fn, batches, opt, cfg, device)
            window.add(loss, metrics, t_data)
            done, position = step + 1, position + cfg.batch_size
            if done % cfg.log_every == 0 or done == cfg.steps:
                record = window.flush(device, time.perf_counter() - t0)
                log.write({"step": done, "split": "train", **record, "lr": lr, "samples": position})
                bar.set_postfix(loss=f"{record['loss']:.4g}", refresh=False)
            else:
                window.tick(time.perf_counter() - t0)
            bar.update()
            if evaluate is not None and dist.is_main() and (done % cfg.eval_every == 0 or done == cfg.steps):
                log.write({"step": done, "split": "val", **_evaluate(evaluate, model, device)})
            stop = dist.any_flag(stop_flag.signum is not None, device) and done < cfg.steps
            if done % cfg.checkpoint_every == 0 or done == cfg.steps or stop:
                run.checkpoint(done, position)
            if stop:
                bar.close()
                raise _preempted(kind, stop_flag.name(), done, ckpt_path)
    bar.close()
    if dist.is_main():
        from vqvideo.viz import plot_curves

        plot_curves(out_dir / "log.jsonl", out_dir / "loss.png", keys=["loss"], title=kind, logy=True)
    return model


# --------------------------------------------------------------------------------------------- data order
class IndexStream:
    """Infinite seeded sample order: position ``p`` is ``perm_e[p % n]`` with ``e = p // n``.

    ``perm_e`` is a permutation of ``range(n)`` drawn from numpy's generator seeded with ``(seed, e)``.
    """

    def __init__(self, n: int, seed: int):
        if n < 1:
            raise ValueError("the training set is empty")
        self.n, self.seed = n, seed
        self._epoch, self._perm = -1, None

    def __getitem__(self, p: int) -> int:
        epoch = p // self.n
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return int(self._perm[p % self.n])


class RankBatches(Sampler):
    """Batch sampler: this rank's slice of every global batch of the stream, from ``start`` on (forever)."""

    def __init__(self, stream: IndexStream, start: int, global_batch: int, rank: int, world: int):
        self.stream, self.start, self.global_batch = stream, start, global_batch
        self.local = global_batch // world
        self.offset = rank * self.local

    def __iter__(self):
        p = self.start
        while True:
            lo = p + self.offset
            yield [self.stream[q] for q in range(lo, lo + self.local)]
            p += self.global_batch


def _setup(cfg) -> torch.device:
    """Join the process group (under torchrun), check the batch split, set threads and CUDA kernels."""
    device = dist.setup()
    if cfg.batch_size % (dist.world_size() * cfg.accum_steps):
        raise ValueError(f"train.batch_size={cfg.batch_size} is the global batch and must be divisible by the "
                         f"number of processes ({dist.world_size()}) times train.accum_steps ({cfg.accum_steps})")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":  # fixed shapes: let cuDNN pick its fastest kernels; TF32 where fp32 remains
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def _ignore_stop_signals(_worker_id: int) -> None:
    # SLURM signals every process of the job, DataLoader workers included; a worker killed by SIGTERM
    # would crash the main process before it can checkpoint. Workers exit when the main process does.
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def _loader(train_set, stream, position, cfg, collate_fn, device, seed) -> DataLoader:
    return DataLoader(
        train_set,
        # accumulation splits each global batch into accum_steps global micro-batches, each sharded over the
        # ranks like a batch: the same samples meet in each all-reduce (EMA statistics) as in one process
        batch_sampler=RankBatches(stream, position, cfg.batch_size // cfg.accum_steps, dist.rank(), dist.world_size()),
        num_workers=cfg.num_workers,
        collate_fn=collate_fn,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.num_workers > 0,
        worker_init_fn=_ignore_stop_signals if cfg.num_workers > 0 else None,
        # its own generator, so that starting the workers does not draw from the global RNG (exact resume)
        generator=torch.Generator().manual_seed(seed),
    )


@contextlib.contextmanager
def _workers(loader: DataLoader):
    """Iterate ``loader`` and stop its workers on the way out (return, preemption or error).

    Workers ignore SIGTERM (see :func:`_ignore_stop_signals`), so they must be told to exit rather than left
    for the interpreter's exit, which would terminate them with SIGTERM and wait forever.
    """
    batches = iter(loader)
    try:
        yield batches
    finally:
        shutdown = getattr(batches, "_shutdown_workers", None)  # the public way is garbage collection
        if shutdown is not None:
            shutdown()


def _to_device(batch, device: torch.device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


# --------------------------------------------------------------------------------------------- optimisation
def _optimizer(model: nn.Module, cfg, device: torch.device) -> torch.optim.AdamW:
    # weight decay on matrices and filters only, not on biases, norms' gains or 1-d embeddings (nanoGPT)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=device.type == "cuda")


def learning_rate(cfg, step: int) -> float:
    """Linear warmup over ``cfg.warmup_steps`` steps, then ``cfg.lr`` held (``lr_schedule: constant``) or
    lowered along a half cosine to ``cfg.min_lr`` at ``cfg.steps`` (``cosine``, as nanoGPT)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant" or cfg.steps <= cfg.warmup_steps:
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup_steps) / (cfg.steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def _set_lr(opt: torch.optim.Optimizer, cfg, step: int) -> float:
    lr = learning_rate(cfg, step)
    for group in opt.param_groups:
        group["lr"] = lr
    return lr


def _wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP without buffer broadcasts in forward: models all-reduce their own buffer statistics (EMA codebooks)."""
    if not dist.is_distributed():
        return model
    ddp = nn.parallel.DistributedDataParallel
    if "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters:  # torch >= 2.13
        no_sync = {"forward_sync_buffers": False}  # buffers still synced once at init
    else:
        for buffer in model.buffers():  # broadcast_buffers=False syncs no buffer, not even at init
            dist.broadcast(buffer, src=0)
        no_sync = {"broadcast_buffers": False}
    return ddp(model, device_ids=[device.index] if device.type == "cuda" else None, **no_sync)


def _train_step(model, loss_fn, batches, opt, cfg, device) -> tuple[torch.Tensor, dict, float]:
    """One optimiser step over ``cfg.accum_steps`` micro-batches; returns (loss, metrics, seconds waiting for data).

    The loss and metrics are means over the micro-batches (of equal size, so the gradient is the full batch's).
    """
    n = cfg.accum_steps
    opt.zero_grad(set_to_none=True)
    losses, metrics, t_data = [], [], 0.0
    for i in range(n):
        t = time.perf_counter()
        batch = _to_device(next(batches), device)
        t_data += time.perf_counter() - t
        last = i == n - 1  # DDP all-reduces the gradients during the last micro-batch's backward only
        with contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda"):
                loss, m = loss_fn(model, batch)
            (loss / n if n > 1 else loss).backward()
        losses.append(loss.detach())
        metrics.append(m)
    loss, metrics = (losses[0], metrics[0]) if n == 1 else _mean(losses, metrics, device)
    if cfg.grad_clip > 0:
        metrics = {**metrics, "grad_norm": nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)}
    opt.step()
    return loss, metrics, t_data


def _mean(losses: list[torch.Tensor], metrics: list[dict], device) -> tuple[torch.Tensor, dict]:
    def mean(values):
        return torch.stack([torch.as_tensor(v, dtype=torch.float32, device=device) for v in values]).mean()

    return mean(losses), {k: mean([m[k] for m in metrics]) for k in metrics[0]}


def _evaluate(evaluate, model: nn.Module, device: torch.device) -> dict:
    model.eval()
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.no_grad(), torch.random.fork_rng(devices=cuda):
        metrics = evaluate(model)
    model.train()
    # numbers become floats for the JSON log; other JSON values (lists, strings) pass through
    return {k: float(v) if isinstance(v, numbers.Number) or torch.is_tensor(v) else v for k, v in metrics.items()}


# --------------------------------------------------------------------------------------------- checkpoints
@dataclasses.dataclass
class _Run:
    """What a checkpoint of this run holds besides the step and the data position."""

    model: nn.Module
    opt: torch.optim.Optimizer
    cfg: Any
    path: Path
    model_config: dict
    kind: str
    seed: int
    n: int
    data_config: dict | None = None

    def checkpoint(self, step: int, position: int) -> None:
        rngs = dist.all_gather_object(rng_state())  # collective: every rank takes part
        if dist.is_main():
            save_checkpoint(self.path, {
                "kind": self.kind,
                "model": self.model.state_dict(),
                "model_config": _plain(self.model_config),
                "train_config": _plain(dataclasses.asdict(self.cfg)),
                "step": step,
                "optimizer": self.opt.state_dict(),
                "rng": rngs,
                "data": {"seed": self.seed, "position": position, "n": self.n},
                "world_size": dist.world_size(),
                **({"data_config": _plain(self.data_config)} if self.data_config is not None else {}),
            })
        dist.barrier()  # nobody exits (e.g. on preemption) before rank 0 has finished writing


def _resume(path: Path, model: nn.Module, opt, kind: str, model_config: dict, seed: int, n: int) -> tuple[int, int]:
    """Load ``path`` into model and optimiser if it exists; return ``(step, data position)``."""
    if not path.exists():
        seed_everything(_rank_seed(seed, 0))
        return 0, 0
    ckpt = load_checkpoint(path)
    if ckpt.get("kind") != kind:
        raise ValueError(f"{path} holds a {ckpt.get('kind')!r} checkpoint, not {kind!r}")
    if _plain(ckpt["model_config"]) != _plain(model_config):
        raise ValueError(f"{path} was trained with another model config; delete it (or use another results "
                         f"folder) to start afresh.\n  checkpoint: {ckpt['model_config']}\n  now:        {model_config}")
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    step, data = int(ckpt["step"]), ckpt["data"]
    if len(ckpt["rng"]) == dist.world_size():
        set_rng_state(ckpt["rng"][dist.rank()])
    else:  # another number of processes: still deterministic, but not the stream of the first run
        seed_everything(_rank_seed(seed, step))
    if (data["seed"], data["n"]) != (seed, n) and dist.is_main():
        print(f"warning: resuming {path} with another seed or training set size; the data order changes",
              file=sys.stderr)
    return step, int(data["position"])


def _rank_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, dist.rank(), step]).generate_state(1)[0])


def _plain(obj):
    """JSON-like copy (tuples become lists) for comparing and storing configs."""
    return json.loads(json.dumps(obj))


# --------------------------------------------------------------------------------------------- signals, logs
class _StopFlag:
    """Remembers the first SIGTERM/SIGUSR1 instead of dying, so the step can finish and be checkpointed."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def _handle(self, signum, _frame):
        self.signum = self.signum or signum

    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "-"

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self._previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def _preempted(kind: str, signal_name: str, step: int, path: Path) -> Preempted:
    if dist.is_main():
        print(f"[{kind}] stopped by {signal_name} after step {step}; checkpoint written to {path}; exiting with "
              f"code {PREEMPTED_EXIT_CODE}. Run the same command to resume.", file=sys.stderr, flush=True)
    return Preempted(step)


class _Window:
    """Sums of loss and metrics over the steps since the last log line (kept on the device: no sync per step)."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.steps, self.data_s, self.step_s = 0, 0.0, 0.0

    def add(self, loss: torch.Tensor, metrics: dict, data_s: float) -> None:
        for key, value in {"loss": loss, **metrics}.items():
            value = torch.as_tensor(value, dtype=torch.float32, device=loss.device).detach()
            if value.numel() != 1:
                raise ValueError(f"metric {key!r} has shape {list(value.shape)}: loss_fn returns scalar metrics")
            value = value.reshape(())
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.steps += 1
        self.data_s += data_s

    def tick(self, step_s: float) -> None:
        self.step_s += step_s

    def flush(self, device: torch.device, step_s: float) -> dict:
        """Means over the window and over ranks (a collective); resets the window."""
        keys = sorted(self.sums, key=lambda k: (k != "loss", k))
        values = dist.all_reduce_mean(torch.stack([self.sums[k] for k in keys]).to(device) / self.steps).tolist()
        self.step_s += step_s  # measured after the sync above, so GPU time is counted
        record = dict(zip(keys, values))
        if not np.isfinite(record["loss"]):
            raise FloatingPointError(f"training loss is {record['loss']}; the last checkpoint is kept")
        record["sec_per_step"] = self.step_s / self.steps
        record["data_wait"] = self.data_s / max(self.step_s, 1e-12)
        if device.type == "cuda":
            record["max_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        self.__init__()
        return record


class _Log:
    """Appends JSON lines (rank 0). On resume, records after the checkpoint's step are dropped first."""

    def __init__(self, path: Path, start: int):
        self.path = path
        if not dist.is_main():
            return
        from vqvideo.runtime.files import atomic_write_text
        from vqvideo.viz import read_log

        kept = [r for r in read_log(path) if r.get("step", 0) <= start] if start > 0 and path.exists() else []
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict) -> None:
        if dist.is_main():
            with open(self.path, "a") as fh:
                fh.write(json.dumps(record) + "\n")
