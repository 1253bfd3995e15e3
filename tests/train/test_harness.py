"""The training harness with a tiny real model: learning, exact resume, preemption, DDP equivalence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from harness_job import TinyNet, dataset, run
from vqvideo.runtime.checkpoint import load_checkpoint, load_model
from vqvideo.train.harness import PREEMPTED_EXIT_CODE, IndexStream, RankBatches, learning_rate

JOB = Path(__file__).parents[1] / "harness_job.py"
BASE = dict(batch_size=8, lr=1e-2, log_every=1, checkpoint_every=4, eval_every=1000, num_workers=0, threads=1,
            warmup_steps=0, grad_clip=1.0)


@pytest.fixture(autouse=True)
def cpu_only(request, monkeypatch):
    """The exactness tests run on the CPU (also on a GPU machine, where TF32 and atomics would blur them)."""
    if "cuda" not in request.node.name:
        monkeypatch.setenv("VQVIDEO_DEVICE", "cpu")


def train_log(out: Path) -> list[dict]:
    return [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if r["split"] == "train"]


def losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in train_log(out)}


def params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same(a: dict, b: dict, exact: bool = True):
    assert a.keys() == b.keys()
    for k in a:
        assert (torch.equal(a[k], b[k]) if exact else torch.allclose(a[k], b[k], atol=1e-6)), k


def test_index_stream_shards_global_batches_across_ranks():
    stream = IndexStream(10, seed=3)
    assert sorted(stream[p] for p in range(10)) == list(range(10))  # an epoch is a permutation
    assert [stream[p] for p in range(10)] != [stream[p] for p in range(10, 20)]  # reshuffled each epoch
    one = iter(RankBatches(stream, 4, 6, rank=0, world=1))
    two = [iter(RankBatches(stream, 4, 6, rank=r, world=2)) for r in range(2)]
    for _ in range(5):  # crosses epoch boundaries
        assert next(one) == next(two[0]) + next(two[1])


def test_learning_rate_warms_up_then_holds_or_follows_a_cosine():
    from vqvideo.config import TrainConfig

    const = TrainConfig(lr=1e-3, steps=100, warmup_steps=10)
    assert [learning_rate(const, s) for s in (0, 9, 10, 99)] == pytest.approx([1e-4, 1e-3, 1e-3, 1e-3])
    cos = TrainConfig(lr=1e-3, steps=110, warmup_steps=10, lr_schedule="cosine", min_lr=1e-4)
    assert learning_rate(cos, 9) == pytest.approx(1e-3) and learning_rate(cos, 10) == pytest.approx(1e-3)
    assert learning_rate(cos, 60) == pytest.approx(0.55e-3)           # half way: the mean of lr and min_lr
    assert learning_rate(cos, 110) == pytest.approx(1e-4)
    lrs = [learning_rate(cos, s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_tiny_model_learns_and_checkpoint_describes_itself(tmp_path):
    cfg = {**BASE, "steps": 120, "warmup_steps": 10, "log_every": 10}
    run(tmp_path, cfg, model={"width": 16})
    log = train_log(tmp_path)
    assert log[-1]["loss"] < 0.3 * log[0]["loss"]
    assert log[0]["lr"] == pytest.approx(1e-2 * 10 / 10) and log[0]["step"] == 10
    assert {"mae", "grad_norm", "sec_per_step", "data_wait", "samples"} <= log[0].keys()
    assert 0 <= log[0]["data_wait"] <= 1
    assert (tmp_path / "loss.png").stat().st_size > 1000
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")  # weights_only=True
    assert ckpt["step"] == 120 and ckpt["kind"] == "tiny" and ckpt["model_config"] == {"width": 16}
    assert ckpt["data"] == {"seed": 0, "position": 120 * 8, "n": 96}
    assert ckpt["train_config"]["steps"] == 120 and set(ckpt["rng"][0]) == {"torch", "cuda", "numpy", "python"}
    model, _ = load_model(tmp_path / "checkpoint.pt", lambda c: TinyNet(**c))
    assert not model.training
    # a complete checkpoint: fit returns it without training (the log is untouched)
    before = (tmp_path / "log.jsonl").read_text()
    again = run(tmp_path, cfg, model={"width": 16})
    assert_same(params(again), params(model))
    assert (tmp_path / "log.jsonl").read_text() == before
    with pytest.raises(ValueError, match="another model config"):
        run(tmp_path, {**cfg, "steps": 130}, model={"width": 8})


def test_resume_after_crash_is_bit_identical(tmp_path):
    cfg = {**BASE, "steps": 10}
    model = {"dropout": 0.2}  # dropout draws from the global RNG: its state must be restored too
    straight = params(run(tmp_path / "a", cfg, model))
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "b", cfg, model, crash_at=7)  # checkpoint at step 4, log written up to step 6
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 4
    resumed = params(run(tmp_path / "b", cfg, model))
    assert_same(straight, resumed)
    assert [r["step"] for r in train_log(tmp_path / "b")] == list(range(1, 11))  # steps 5, 6 logged once
    assert losses(tmp_path / "a") == losses(tmp_path / "b")


def test_evaluation_is_logged_and_leaves_the_training_stream_alone(tmp_path):
    cfg = {**BASE, "steps": 9, "eval_every": 4}
    model = {"dropout": 0.3}
    data = dataset()

    def evaluate(net):
        assert not net.training and not torch.is_grad_enabled()
        torch.rand(100)  # an evaluation that draws random numbers (e.g. sampling) ...
        return {"mse": torch.nn.functional.mse_loss(net(data.tensors[0]), data.tensors[1]), "n": 96}

    with_eval = params(run(tmp_path / "a", cfg, model, evaluate=evaluate))
    assert_same(with_eval, params(run(tmp_path / "b", cfg, model)))  # ... does not change the training
    val = [r for r in map(json.loads, (tmp_path / "a" / "log.jsonl").read_text().splitlines()) if r["split"] == "val"]
    assert [r["step"] for r in val] == [4, 8, 9] and all(isinstance(r["mse"], float) and r["n"] == 96 for r in val)


def test_gradient_accumulation_equals_the_full_batch(tmp_path):
    cfg = {**BASE, "steps": 6, "batch_size": 8}
    full = params(run(tmp_path / "full", cfg))
    accum = params(run(tmp_path / "accum", {**cfg, "accum_steps": 4}))  # micro-batches of 2
    full.pop("input_mean"), accum.pop("input_mean")  # a statistic per forward: 4 updates per step, not 1
    assert_same(full, accum, exact=False)
    assert all(abs(a - b) < 1e-6 for a, b in zip(losses(tmp_path / "full").values(),
                                                   losses(tmp_path / "accum").values()))
    with pytest.raises(ValueError, match="divisible"):
        run(tmp_path / "bad", {**cfg, "accum_steps": 3})


@pytest.mark.slow
def test_sigterm_checkpoints_exits_and_resumes_exactly(tmp_path):
    out = tmp_path / "job"
    cfg = {**BASE, "steps": 10_000, "checkpoint_every": 10_000, "num_workers": 2}  # workers must survive SIGTERM
    proc = subprocess.Popen([sys.executable, str(JOB), json.dumps({"out": str(out), "train": cfg, "sleep": 0.02})],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not ((out / "log.jsonl").exists() and len((out / "log.jsonl").read_text().splitlines()) >= 5):
        assert proc.poll() is None and time.time() < deadline, "the job ended or stalled before training"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == PREEMPTED_EXIT_CODE, stderr
    assert "SIGTERM" in stderr and "resume" in stderr
    k = load_checkpoint(out / "checkpoint.pt")["step"]
    assert 5 <= k < 10_000
    # rerun to k + 3 steps: it resumes from k; compare with an uninterrupted in-process run
    resumed = params(run(out, {**cfg, "steps": k + 3}))
    straight = params(run(tmp_path / "straight", {**cfg, "steps": k + 3, "num_workers": 0}))
    assert_same(straight, resumed)
    assert losses(out) == losses(tmp_path / "straight")


@pytest.mark.slow
def test_sigusr1_preempts_too(tmp_path):
    cfg = {**BASE, "steps": 10_000, "checkpoint_every": 10_000}
    proc = subprocess.Popen([sys.executable, str(JOB), json.dumps({"out": str(tmp_path), "train": cfg, "sleep": 0.02})],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (tmp_path / "log.jsonl").exists() or not (tmp_path / "log.jsonl").read_text():
        assert proc.poll() is None and time.time() < deadline, "the job ended or stalled before training"
        time.sleep(0.1)
    proc.send_signal(signal.SIGUSR1)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == PREEMPTED_EXIT_CODE and "SIGUSR1" in stderr, stderr
    assert 1 <= load_checkpoint(tmp_path / "checkpoint.pt")["step"] < 10_000


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process(tmp_path):
    cfg = {**BASE, "steps": 6, "batch_size": 8}
    single = params(run(tmp_path / "one", cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(JOB),
           json.dumps({"out": str(tmp_path / "two"), "train": cfg})]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / "two" / f"params_rank{r}.pt", weights_only=True) for r in range(2)]
    assert_same(ranks[0], ranks[1])  # replicas never diverge, buffers (updated in forward) included
    assert_same(single, ranks[0], exact=False)
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert one.keys() == two.keys() and all(abs(one[s] - two[s]) < 1e-5 for s in one)
    assert load_checkpoint(tmp_path / "two" / "checkpoint.pt")["world_size"] == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_bf16_training_learns_and_loads_on_cpu(tmp_path):
    cfg = {**BASE, "steps": 120, "log_every": 20, "amp": True, "num_workers": 2}
    net = run(tmp_path, cfg, model={"width": 64})
    assert next(net.parameters()).device.type == "cuda"
    log = train_log(tmp_path)
    assert log[-1]["loss"] < 0.3 * log[0]["loss"] and log[-1]["max_mem_gb"] > 0
    model, _ = load_model(tmp_path / "checkpoint.pt", lambda c: TinyNet(**c))  # map_location="cpu"
    assert next(model.parameters()).device.type == "cpu"
    resumed = run(tmp_path, {**cfg, "steps": 130}, model={"width": 64})  # resume on the GPU
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 130 and resumed is not None


@pytest.mark.slow
def test_module_docstring_example_runs(tmp_path, monkeypatch):
    import re

    import vqvideo.train.harness as harness

    code = re.search(r"::\n\n(.*?)\n\n(?=\S)", harness.__doc__, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(textwrap.dedent(code), "harness-docstring", "exec"), {})
    assert (tmp_path / "results" / "tiny" / "loss.png").exists()
