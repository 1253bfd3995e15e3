"""Trainings that span nodes: the same training on any layout, and the smoke trainings on a real two-node SLURM.

Layouts (no SLURM; slow): `nodes` torchrun agents on this machine, each with `procs` training processes, meet at
one c10d rendezvous the way `vqvideo.launch node` makes them meet on a cluster (launch.torchrun_command): 1 x 4,
2 x 2 and 4 x 1 give the same losses up to float reduction order (tolerance below); a SIGTERM to one node's
torchrun stops every rank at the same step with one checkpoint, which resumes on another layout (2 nodes x 2
-> 3 nodes x 1) and ends where the uninterrupted training ends.

Two nodes (marker multinode): the smoke trainings through `snakemake --profile tests/profiles/slurm-ci` (the
cluster profile as the CI's SLURM needs it) with resources.<training>.nodes = 2 on node1 and node2 of
.ci/slurm-up.sh (network namespaces). The VQ-VAE training is stopped in the middle by SIGTERM to the processes
of the job on node2 only; Snakemake resubmits it; in the resubmitted job node2's torchrun exits at start-up,
the job fails naming node2, and the checkpoint stays as it was (sha256). A second invocation resumes it, and
the two priors train on two nodes too.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from repo_copy import copy_repo

from vqvideo import launch

ROOT = Path(__file__).resolve().parents[2]
JOB = Path(__file__).resolve().parents[1] / "harness_job.py"
# float sums in another order (gloo's all-reduce over another arrangement of ranks) differ in the last bits;
# over 12 steps of a tiny model that stays far below this
LOSS_RTOL = 1e-5
TRAIN = {"batch_size": 12, "steps": 12, "lr": 0.01, "log_every": 1, "checkpoint_every": 100, "num_workers": 0,
         "threads": 1}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _agents(out: Path, nodes: int, procs: int, train: dict, sleep: float = 0.0) -> list[subprocess.Popen]:
    """`nodes` torchrun agents (the per-node commands of a multi-node job) training harness_job.py into out/."""
    port, rdzv_id = _free_port(), f"layout-{nodes}x{procs}-{time.monotonic_ns()}"
    job = json.dumps({"out": str(out), "train": train, "sleep": sleep})
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = launch.torchrun_command(nodes, procs, "127.0.0.1", port, rdzv_id, 120, [str(JOB), job])
    return [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True) for _ in range(nodes)]


def _wait(agents: list[subprocess.Popen], timeout: float = 300) -> list[tuple[int, str]]:
    return [(a.wait(timeout=timeout), a.stdout.read()) for a in agents]


def _losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())
            if r["split"] == "train"}


def _train(out: Path, nodes: int, procs: int, train: dict = TRAIN) -> dict[int, float]:
    for rc, text in _wait(_agents(out, nodes, procs, train)):
        assert rc == 0, text[-3000:]
    return _losses(out)


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    return {(n, p): _train(root / f"{n}x{p}", n, p) for n, p in ((1, 4), (2, 2), (4, 1))}


@pytest.mark.slow
def test_same_losses_on_every_layout(layouts):
    ref = layouts[(1, 4)]
    assert sorted(ref) == list(range(1, TRAIN["steps"] + 1))
    for layout, losses in layouts.items():
        assert losses.keys() == ref.keys(), layout
        for step in ref:
            assert losses[step] == pytest.approx(ref[step], rel=LOSS_RTOL), (layout, step)
    assert ref[TRAIN["steps"]] < ref[1]  # it trains


@pytest.mark.slow
def test_sigterm_on_one_node_stops_every_rank_and_resumes_on_other_nodes(layouts, tmp_path):
    out = tmp_path / "run"
    agents = _agents(out, 2, 2, TRAIN, sleep=0.3)
    log = out / "log.jsonl"
    deadline = time.monotonic() + 240
    while not (log.exists() and len(log.read_text().splitlines()) >= 3):  # a few steps done
        assert time.monotonic() < deadline and all(a.poll() is None for a in agents), _wait(agents, 5)
        time.sleep(0.1)
    os.kill(agents[1].pid, signal.SIGTERM)  # the second node's torchrun, which passes it to its processes
    results = _wait(agents)
    text = "\n".join(t for _, t in results)
    assert all(rc != 0 for rc, _ in results), text[-3000:]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    stopped = ckpt["step"]
    assert 3 <= stopped < TRAIN["steps"], text[-3000:]
    assert ckpt["world_size"] == 4
    # every rank stopped after the same step: rank 0 said so once, and the log ends there
    assert len(re.findall(rf"stopped by \S+ after step {stopped};", text)) == 1, text[-3000:]
    assert max(_losses(out)) == stopped
    assert "exitcode  : 75" in text or "exitcode: 75" in text, text[-3000:]  # the training's code, per torchrun
    # the 2-node checkpoint resumes on 3 nodes x 1 process and ends where the uninterrupted training ends
    losses = _train(out, 3, 1)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["world_size"] == 3
    ref = layouts[(1, 4)]
    assert losses.keys() == ref.keys()
    for step in ref:
        assert losses[step] == pytest.approx(ref[step], rel=LOSS_RTOL), step


@pytest.mark.slow
def test_a_batch_that_does_not_split_over_the_nodes_is_refused_before_any_job(tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["resources"]["train_bottom_prior"]["nodes"] = 8  # 8 nodes x 8 processes: more than the batch of 32
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    run = subprocess.run(["snakemake", "-n", "--configfile", str(tmp_path / "bad.yaml")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "config key 'bottom_prior.train.batch_size' = 32: the global batch must divide by " \
           "resources.train_bottom_prior.nodes x tasks x bottom_prior.train.accum_steps = 8 x 8 x 1 = 64" in \
        run.stdout + run.stderr


# --------------------------------------------------------------------------------------------- two SLURM nodes
def _two_nodes_up() -> str | None:
    """None when partition `multi` has two nodes that take jobs (.ci/slurm-up.sh), else why not."""
    if not shutil.which("sbatch"):
        return "no SLURM client commands (apt-get install slurm-wlm; .ci/slurm-up.sh)"
    try:
        out = subprocess.run(["sinfo", "-h", "-N", "-p", "multi", "-o", "%N %t"], capture_output=True, text=True,
                             timeout=10).stdout.split("\n")
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"sinfo failed: {e}"
    up = [line.split()[0] for line in out if line.split()[1:2] and line.split()[1] in ("idle", "mix", "alloc")]
    return None if len(up) >= 2 else f"partition multi has no two nodes up ({out}); start them with .ci/slurm-up.sh"


PROFILE = "tests/profiles/slurm-ci"
TRAININGS = ("train_vqvae", "train_top_prior", "train_bottom_prior")
VQVAE_STEPS = 40  # long enough to be stopped in the middle (after step 4)
# torchrun on node2 exits at start-up once (while FLAG exists), after noting the checkpoint's sha256
SHIM = """#!/bin/sh
if [ "$SLURMD_NODENAME" = node2 ] && rm "{flag}" 2>/dev/null; then
  sha256sum "{ckpt}" > "{sha}"
  echo "test shim: torchrun on $SLURMD_NODENAME fails at start-up" >&2
  exit 3
fi
exec "{torchrun}" "$@"
"""


def _cluster_config(repo: Path) -> str:
    cfg = yaml.safe_load((repo / "config" / "smoke.yaml").read_text())
    cfg["vqvae"]["train"].update(steps=VQVAE_STEPS, log_every=2, checkpoint_every=20, eval_every=VQVAE_STEPS)
    res = cfg.setdefault("resources", {})
    res["default"] = {"mem_mb": 1000, "runtime": 30}
    for rule in TRAININGS:  # per node: 1 process, 1 CPU, 1 (fake) GPU
        res[rule] = {"nodes": 2, "tasks": 1, "gpus": 1, "cpus_per_task": 1, "mem_mb": 2000, "runtime": 30}
    cfg["slurm"] = {"partition": "multi", "rendezvous_timeout": 120}
    (repo / "config" / "multinode.yaml").write_text(yaml.safe_dump(cfg))
    return "config/multinode.yaml"


def _node2_pids() -> list[int]:
    """The training's processes on node2 (launcher, torchrun, training process): what slurmstepd signals there."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
            cmd = (proc / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if b"SLURMD_NODENAME=node2" in env and (b"vqvideo" in cmd or b"torchrun" in cmd):
            pids.append(int(proc.name))
    return pids


def _stop_on_node2(log: Path, flag: Path, done: threading.Event, sent: list) -> None:
    """Once the VQ-VAE has logged a few steps, SIGTERM its processes on node2 (and arm the start-up failure)."""
    while not done.is_set():
        lines = log.read_text().splitlines() if log.exists() else []
        if len([x for x in lines if '"train"' in x]) >= 2:
            pids = _node2_pids()
            if pids:
                flag.touch()
                for pid in pids:
                    os.kill(pid, signal.SIGTERM)
                sent.extend(pids)
                return
        time.sleep(0.2)


def _snakemake(repo: Path, env: dict, *args) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    run = subprocess.run(["snakemake", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    return run, time.monotonic() - t0


def _submissions(log: str, rule: str) -> list[str]:
    return re.findall(rf"\nrule {rule}:.*?Job \d+ has been submitted with SLURM jobid (\d+)", log, re.S)


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    why = _two_nodes_up()
    if why:
        pytest.skip(why)
    repo = copy_repo(tmp_path_factory.mktemp("multinode"))
    cfg = _cluster_config(repo)
    bin_dir, flag = repo / "shim", repo / "fail-node2-once"
    ckpt, sha = repo / "results" / "vqvae" / "checkpoint.pt", repo / "sha-at-failure.txt"
    bin_dir.mkdir()
    (bin_dir / "torchrun").write_text(SHIM.format(flag=flag, ckpt=ckpt, sha=sha, torchrun=shutil.which("torchrun")))
    (bin_dir / "torchrun").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", GLOO_SOCKET_IFNAME="vq0", OMP_NUM_THREADS="1")
    times = {}
    # the data locally (not a training); then the trainings on the cluster
    data, times["data (local)"] = _snakemake(repo, env, "results/data/manifest.csv", "--cores", "2",
                                             "--configfile", cfg)
    assert data.returncode == 0, data.stderr[-3000:]
    done, sent = threading.Event(), []
    watcher = threading.Thread(target=_stop_on_node2, args=(repo / "results" / "vqvae" / "log.jsonl", flag, done,
                                                            sent), daemon=True)
    watcher.start()
    first, times["vqvae: stopped, resubmitted, node2 fails"] = _snakemake(
        repo, env, "results/vqvae/metrics.json", "--profile", PROFILE, "--configfile", cfg, "--retries", "1")
    done.set()
    aside = launch.resume_path(ckpt)
    sha_after = hashlib.sha256(aside.read_bytes()).hexdigest() if aside.exists() else None
    step_after = torch.load(aside, weights_only=True)["step"] if aside.exists() else None
    second, times["trainings: vqvae resumed, both priors"] = _snakemake(
        repo, env, *[f"results/{t}/metrics.json" for t in ("vqvae", "priors/top", "priors/bottom")],
        "--profile", PROFILE, "--configfile", cfg, "--retries", "1")
    print("\n" + "\n".join(f"{k}: {v:.0f} s" for k, v in times.items()))
    return {"repo": repo, "first": first, "second": second, "sent": sent, "sha": sha, "sha_after": sha_after,
            "step_after": step_after}


@pytest.mark.slurm
@pytest.mark.multinode
def test_sigterm_on_node2_stops_checkpoints_and_is_resubmitted(two_nodes):
    first = two_nodes["first"]
    log = first.stdout + first.stderr
    assert two_nodes["sent"], log[-3000:]
    assert len(_submissions(log, "train_vqvae")) == 2, log[-5000:]  # the stopped job and its resubmission
    # attempt 1: every rank stopped after the same step, one checkpoint, exit 75
    assert re.search(r"stopped by \S+ after step \d+; checkpoint written", log), log[-5000:]
    assert "vqvideo.launch: the training was stopped (a signal to node node2)" in log, log[-5000:]
    assert "exiting with 75" in log, log[-5000:]


@pytest.mark.slurm
@pytest.mark.multinode
def test_node2_failing_at_start_up_is_named_and_the_checkpoint_kept(two_nodes):
    first = two_nodes["first"]
    log = first.stdout + first.stderr
    assert first.returncode != 0  # the resubmitted job failed: node2's torchrun exited at start-up
    assert "test shim: torchrun on node2 fails at start-up" in log, log[-5000:]
    assert re.search(r"vqvideo.launch: the training failed \(exit code \d+\): node node2 \(node 1 of 2\) failed "
                     r"first: its torchrun exited with code 3", log), log[-5000:]
    # the checkpoint node2 saw at its start-up is the one kept for the next attempt, byte for byte
    sha_at_failure = two_nodes["sha"].read_text().split()[0]
    assert two_nodes["sha_after"] == sha_at_failure
    assert 0 < two_nodes["step_after"] < VQVAE_STEPS


@pytest.mark.slurm
@pytest.mark.multinode
def test_trainings_resume_and_finish_on_two_nodes(two_nodes):
    second, repo = two_nodes["second"], two_nodes["repo"]
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-5000:]
    for rule in TRAININGS:
        assert len(_submissions(log, rule)) == 1, (rule, log[-5000:])
    records = [json.loads(x) for x in (repo / "results" / "vqvae" / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["split"] == "train"]
    assert steps == list(range(2, VQVAE_STEPS + 1, 2)), steps  # resumed at the kept step: no gap, no repeat
    for out in ("vqvae", "priors/top", "priors/bottom"):
        ckpt = torch.load(repo / "results" / out / "checkpoint.pt", weights_only=True)
        assert ckpt["world_size"] == 2, out  # 2 nodes x 1 process
    job = _submissions(log, "train_top_prior")[0]
    shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    if shown:  # slurmctld forgets finished jobs after MinJobAge (300 s)
        assert "NumNodes=2" in shown and "gres:gpu:1" in shown, shown
