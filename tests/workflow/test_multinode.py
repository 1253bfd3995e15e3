"""Trainings that span nodes: the same training on any layout, and the smoke trainings on a real two-node SLURM.

Layouts (no SLURM; slow): `nodes` torchrun agents on this machine, each with `procs` training processes, meet at
one c10d rendezvous the way `vqvideo.launch node` makes them meet on a cluster (launch.torchrun_command): 1 x 4,
2 x 2 and 4 x 1 give the same losses up to float reduction order (tolerance below); a SIGTERM to one node's
torchrun stops every rank at the same step with one checkpoint, which resumes on another layout (2 nodes x 2
-> 3 nodes x 1) and ends where the uninterrupted training ends.

Two nodes (marker multinode): the smoke trainings through `snakemake --profile tests/profiles/slurm-ci` (the
cluster profile as the CI's SLURM needs it) with resources.<training>.nodes = 2 on node1 and node2 of
.ci/slurm-up.sh (network namespaces), in one invocation. The VQ-VAE training is stopped in the middle by
SIGTERM to the processes of the job on node2 only; it checkpoints and requeues its job, which SLURM runs again
(same job id, one submission) and which resumes and finishes; the two priors train on two nodes too. Then the
VQ-VAE rule's shell line (as Snakemake ran it) runs twice more under salloc on the same nodes, with no workflow
around it (both runs end before any training step): node2's torchrun exits at start-up, and the run fails
naming node2; node2's torchrun hangs before the rendezvous, node1 gives up after the rendezvous timeout, and
the run fails naming node2 as the node that never joined; each time the checkpoint stays as it was (sha256).
All in one copy of the repository, one fixture, so the data is made once (locally) and each job runs only as
often as the behaviours need.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
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
# over 8 steps of a tiny model that stays far below this
LOSS_RTOL = 1e-5
TRAIN = {"batch_size": 12, "steps": 8, "lr": 0.01, "log_every": 1, "checkpoint_every": 100, "num_workers": 0,
         "threads": 1}


def _free_ports(n: int = 1) -> list[int]:
    """n distinct free ports (held open together while chosen: trainings started side by side need their own)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _agents(out: Path, nodes: int, procs: int, train: dict, sleep: float = 0.0,
            port: int | None = None) -> list[subprocess.Popen]:
    """`nodes` torchrun agents (the per-node commands of a multi-node job) training harness_job.py into out/."""
    port, rdzv_id = port or _free_ports()[0], f"layout-{nodes}x{procs}-{time.monotonic_ns()}"
    job = json.dumps({"out": str(out), "train": train, "sleep": sleep})
    # as vqvideo.launch node does: torchrun's default 30 s for its processes to end after SIGTERM is too short
    # for the checkpoint on a busy machine (it then kills them, and reports -9 instead of the training's 75)
    env = dict(os.environ, OMP_NUM_THREADS="1", TORCH_ELASTIC_SHUTDOWN_TIMEOUT="300")
    cmd = launch.torchrun_command(nodes, procs, "127.0.0.1", port, rdzv_id, 120, [str(JOB), job])
    out.parent.mkdir(parents=True, exist_ok=True)
    agents = []
    for i in range(nodes):  # output to files, not pipes: agents run side by side and nobody reads a pipe early
        with open(out.parent / f"{out.name}.agent{i}.{time.monotonic_ns()}.txt", "w+") as text:
            agents.append(subprocess.Popen(cmd, env=env, stdout=text, stderr=subprocess.STDOUT,
                                           start_new_session=True))
            agents[-1].text = Path(text.name)
    return agents


def _wait(agents: list[subprocess.Popen], timeout: float = 1200) -> list[tuple[int, str]]:
    return [(a.wait(timeout=timeout), a.text.read_text()) for a in agents]


def _losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())
            if r["split"] == "train"}


def _train(out: Path, nodes: int, procs: int, train: dict = TRAIN) -> dict[int, float]:
    for rc, text in _wait(_agents(out, nodes, procs, train)):
        assert rc == 0, text[-3000:]
    return _losses(out)


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """The three layouts trained at the same time (each its own rendezvous): their start-ups overlap."""
    root = tmp_path_factory.mktemp("layouts")
    shapes = ((1, 4), (2, 2), (4, 1))
    started = {(n, p): _agents(root / f"{n}x{p}", n, p, TRAIN, port=port)
               for (n, p), port in zip(shapes, _free_ports(len(shapes)))}
    for layout, agents in started.items():
        for rc, text in _wait(agents, timeout=1800):  # generous: a busy 2-core machine took 10 min
            assert rc == 0, (layout, text[-3000:])
    return {layout: _losses(root / f"{layout[0]}x{layout[1]}") for layout in started}


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
    agents = _agents(out, 2, 2, TRAIN, sleep=0.5)
    log = out / "log.jsonl"
    deadline = time.monotonic() + 1200
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
VQVAE_STEPS = 16  # long enough to be stopped in the middle (after step 4)
RDZV_TIMEOUT = 10  # seconds node1 waits at the rendezvous for node2's torchrun that hangs
# the test's stand-in for torchrun (first on PATH): on node2, once per flag file, it fails at start-up after
# noting the checkpoint's sha256, or hangs before the rendezvous (exec: no child process, like a stuck
# torchrun); otherwise it is torchrun
SHIM = """#!/bin/sh
if [ "$SLURMD_NODENAME" = node2 ] && rm "{fail}" 2>/dev/null; then
  sha256sum "{ckpt}" > "{sha}"
  echo "test shim: torchrun on $SLURMD_NODENAME fails at start-up" >&2
  exit 3
fi
if [ "$SLURMD_NODENAME" = node2 ] && rm "{hang}" 2>/dev/null; then
  echo "test shim: torchrun on $SLURMD_NODENAME hangs before the rendezvous" >&2
  exec sleep 100000
fi
exec "{torchrun}" "$@"
"""


def _cluster_config(repo: Path) -> str:
    """The smoke config on partition multi, every training on 2 nodes, the data in one shard per split (one
    encode job each)."""
    cfg = yaml.safe_load((repo / "config" / "smoke.yaml").read_text())
    cfg["data"]["shard_size"] = 64
    cfg["vqvae"]["train"].update(steps=VQVAE_STEPS, log_every=2, checkpoint_every=100, eval_every=VQVAE_STEPS)
    res = cfg.setdefault("resources", {})
    res["default"] = {"mem_mb": 1000, "runtime": 30}
    for rule in TRAININGS:  # per node: 1 process, 1 CPU, 1 (fake) GPU
        res[rule] = {"nodes": 2, "tasks": 1, "gpus": 1, "cpus_per_task": 1, "mem_mb": 2000, "runtime": 30}
    cfg["slurm"] = {"partition": "multi", "rendezvous_timeout": 120}
    (repo / "config" / "multinode.yaml").write_text(yaml.safe_dump(cfg))
    return "config/multinode.yaml"


def _node2_pids() -> dict[int, str]:
    """The training's processes on node2 (launcher, torchrun, training process), what slurmstepd signals
    there, with their SLURM job ids."""
    pids = {}
    for proc in Path("/proc").iterdir():
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
            cmd = (proc / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if b"SLURMD_NODENAME=node2" in env and (b"vqvideo" in cmd or b"torchrun" in cmd):
            job = next((e.split(b"=", 1)[1].decode() for e in env if e.startswith(b"SLURM_JOB_ID=")), "")
            pids[int(proc.name)] = job
    return pids


def _job_pids(job: str, wait: float = 60) -> list[int]:
    """The processes of SLURM job ``job`` still alive ``wait`` seconds (at most) after it ended."""
    deadline = time.monotonic() + wait
    while True:
        pids = []
        for proc in Path("/proc").iterdir():
            try:
                if f"SLURM_JOB_ID={job}".encode() in (proc / "environ").read_bytes().split(b"\0") and \
                        (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    pids.append(int(proc.name))
            except (OSError, ValueError, IndexError):
                continue
        if not pids or time.monotonic() > deadline:
            return pids
        time.sleep(1)


def _squeue_state(job: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job, "-o", "%T %r"], capture_output=True, text=True,
                          timeout=30).stdout.strip()


def _stop_on_node2(repo: Path, done: threading.Event, seen: dict) -> None:
    """Once the VQ-VAE has logged a few steps, SIGTERM its processes on node2; then keep the rule's log of the
    stopped run (the requeued run starts a new one) and what squeue says of the job until it runs again."""
    log, rule_log = repo / "results" / "vqvae" / "log.jsonl", repo / "results" / "logs" / "train_vqvae.log"
    while not done.is_set():
        if not seen.get("sent"):
            lines = log.read_text().splitlines() if log.exists() else []
            pids = _node2_pids() if len([x for x in lines if '"train"' in x]) >= 2 else {}
            if pids:
                for pid in pids:
                    os.kill(pid, signal.SIGTERM)
                seen.update(sent=sorted(pids), job=next(iter(pids.values())))
        elif not _ran_again(seen.get("states", [])):
            text = rule_log.read_text() if rule_log.exists() else ""
            if "requeued SLURM job" in text:
                seen["stopped_log"] = text
            seen.setdefault("states", []).append(_squeue_state(seen["job"]))
        time.sleep(0.5)


def _ran_again(states: list[str]) -> bool:
    """Whether squeue showed the job pending and then running again (the requeued run has started)."""
    pending = next((i for i, s in enumerate(states) if s.startswith("PENDING")), None)
    return pending is not None and any(s.startswith("RUNNING") for s in states[pending:])


def _snakemake(repo: Path, env: dict, *args) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    run = subprocess.run(["snakemake", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=1800)
    return run, time.monotonic() - t0


def _salloc(repo: Path, env: dict, command: str) -> tuple[subprocess.CompletedProcess, float]:
    """``command`` (a rule's shell line) on two nodes of partition multi, run as the job's first node would,
    here: salloc's shell on this machine, whose srun starts the steps on node1 and node2."""
    t0 = time.monotonic()
    run = subprocess.run(["salloc", "--partition=multi", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1",
                          "--cpus-per-task=1", "--gres=gpu:1", "--mem=2000", "--time=30", "sh", "-c", command],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    return run, time.monotonic() - t0


def _submissions(log: str, rule: str) -> list[str]:
    return re.findall(rf"\nrule {rule}:.*?Job \d+ has been submitted with SLURM jobid (\d+)", log, re.S)


def _shell_command(log: str, rule: str) -> str:
    """The shell line Snakemake ran for ``rule`` (printshellcmds)."""
    found = re.findall(rf"\nrule {rule}:.*?\nShell command: (.*?)\n", log, re.S)
    assert len(found) == 1, log[-5000:]
    return found[0]


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """One invocation of the cluster profile, then the VQ-VAE's rule command twice more on node1 and node2:

    1. every training on two nodes: the VQ-VAE, stopped by SIGTERM on node2 in the middle, checkpoints and
       requeues its job, which SLURM runs again (same job id) and which resumes and finishes; both priors;
    2. the VQ-VAE's shell line (as Snakemake ran it in 1) under salloc, node2's torchrun failing at start-up;
    3. the same, node2's torchrun hanging before the rendezvous, with a rendezvous timeout of RDZV_TIMEOUT s.
    The failures need no workflow around them (they end before any training step), so 2 and 3 skip
    Snakemake's start-up and the plugin's polling.
    """
    why = _two_nodes_up()
    if why:
        pytest.skip(why)
    repo = copy_repo(tmp_path_factory.mktemp("multinode"))
    cfg = _cluster_config(repo)
    bin_dir, fail, hang = repo / "shim", repo / "fail-node2-once", repo / "hang-node2-once"
    ckpt, sha = repo / "results" / "vqvae" / "checkpoint.pt", repo / "sha-at-failure.txt"
    aside = launch.resume_path(ckpt)
    bin_dir.mkdir()
    (bin_dir / "torchrun").write_text(SHIM.format(fail=fail, hang=hang, ckpt=ckpt, sha=sha,
                                                  torchrun=shutil.which("torchrun")))
    (bin_dir / "torchrun").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", GLOO_SOCKET_IFNAME="vq0", OMP_NUM_THREADS="1")
    times, out = {}, {"repo": repo, "sha": sha}
    # the data locally (not a training); then the trainings on the cluster
    data, times["data (local)"] = _snakemake(repo, env, "results/data/manifest.csv", "--cores", "2",
                                             "--configfile", cfg)
    assert data.returncode == 0, data.stderr[-3000:]
    # 1. no --retries: a second run of the VQ-VAE's job can only be SLURM's requeue
    done, seen = threading.Event(), {}
    watcher = threading.Thread(target=_stop_on_node2, args=(repo, done, seen), daemon=True)
    watcher.start()
    out["trainings"], times["1. trainings: vqvae stopped, requeued, resumed; both priors"] = _snakemake(
        repo, env, *[f"results/{t}/metrics.json" for t in ("vqvae", "priors/top", "priors/bottom")],
        "--profile", PROFILE, "--configfile", cfg)
    done.set()
    watcher.join()
    out["seen"] = seen
    if seen.get("job"):  # before slurmctld forgets the job (MinJobAge)
        out["job"] = subprocess.run(["scontrol", "show", "job", seen["job"]], capture_output=True,
                                    text=True).stdout
        out["leftovers"] = _job_pids(seen["job"])
        for pid in out["leftovers"]:  # not left to the next tests
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    log = out["trainings"].stdout + out["trainings"].stderr
    assert out["trainings"].returncode == 0, log[-5000:]
    rule_log = repo / "results" / "logs" / "train_vqvae.log"
    out["resumed_log"] = rule_log.read_text()  # the requeued run's
    out["steps"] = [r["step"] for r in map(json.loads, (repo / "results" / "vqvae" / "log.jsonl").read_text()
                                           .splitlines()) if r["split"] == "train"]
    out["world_sizes"] = {t: torch.load(repo / "results" / t / "checkpoint.pt", weights_only=True)["world_size"]
                          for t in ("vqvae", "priors/top", "priors/bottom")}
    job = _submissions(log, "train_top_prior")
    out["top_job"] = subprocess.run(["scontrol", "show", "job", job[0]], capture_output=True,
                                    text=True).stdout if job else ""
    # 2. and 3.: the rule's command again, its checkpoint complete
    command = _shell_command(log, "train_vqvae")
    out["sha_before"] = _sha256(ckpt)
    fail.touch()
    out["failure"], times["2. vqvae's command: node2 fails at start-up"] = _salloc(repo, env, command)
    out["failure_log"] = rule_log.read_text()
    out["sha_after_failure"] = _sha256(aside)
    hang.touch()
    assert command.count(" --rdzv-timeout=120 ") == 1, command
    out["rdzv"], out["rdzv_seconds"] = _salloc(
        repo, env, command.replace(" --rdzv-timeout=120 ", f" --rdzv-timeout={RDZV_TIMEOUT} "))
    times["3. vqvae's command: node2 hangs, rendezvous timeout"] = out["rdzv_seconds"]
    out["rdzv_log"] = rule_log.read_text()
    out["sha_after_rdzv"] = _sha256(aside)
    print("\n" + "\n".join(f"{k}: {v:.0f} s" for k, v in times.items()))
    return out


@pytest.mark.slurm
@pytest.mark.multinode
def test_sigterm_on_node2_stops_checkpoints_requeues_and_resumes_the_job(two_nodes):
    run, seen = two_nodes["trainings"], two_nodes["seen"]
    log = run.stdout + run.stderr
    assert seen.get("sent"), log[-3000:]
    # one submission: the second run is SLURM's requeue of the same job, not Snakemake's
    assert _submissions(log, "train_vqvae") == [seen["job"]], log[-5000:]
    stopped = seen.get("stopped_log", "")
    # the stopped run: every rank stopped after the same step, rank 0 wrote one checkpoint, exit 75, requeued
    assert len(re.findall(r"stopped by \S+ after step \d+; checkpoint written", stopped)) == 1, stopped[-5000:]
    # (node1 may be listed too: srun --kill-on-bad-exit stops it once node2's torchrun has exited)
    assert re.search(r"vqvideo.launch: the training was stopped \(a signal to [^)]*node node2\)", stopped), \
        stopped[-5000:]
    assert "exiting with 75" in stopped, stopped[-5000:]
    assert f"requeued SLURM job {seen['job']} (scontrol requeue)" in stopped, stopped[-5000:]
    # what SLURM saw: the job back in the queue (pending until its credential expired), then run again
    assert any(s.startswith("PENDING") for s in seen["states"]), seen["states"]
    assert "Restarts=1" in two_nodes["job"] and "Requeue=1" in two_nodes["job"], two_nodes["job"]
    assert not two_nodes["leftovers"], two_nodes["leftovers"]  # no process of the job outlived it
    # the requeued run restored the checkpoint and resumed at the kept step: no gap, no repeat
    resumed = two_nodes["resumed_log"]
    assert "vqvideo.launch: resuming from results/vqvae/checkpoint.pt" in resumed, resumed[-5000:]
    assert two_nodes["steps"] == list(range(2, VQVAE_STEPS + 1, 2)), two_nodes["steps"]


@pytest.mark.slurm
@pytest.mark.multinode
def test_trainings_finish_on_two_nodes(two_nodes):
    log = two_nodes["trainings"].stdout + two_nodes["trainings"].stderr
    for rule in TRAININGS:
        assert len(_submissions(log, rule)) == 1, (rule, log[-5000:])
    assert two_nodes["world_sizes"] == {"vqvae": 2, "priors/top": 2, "priors/bottom": 2}  # 2 nodes x 1 process
    shown = two_nodes["top_job"]
    if shown:  # slurmctld forgets finished jobs after MinJobAge (300 s)
        assert "NumNodes=2" in shown and "gres:gpu:1" in shown, shown


@pytest.mark.slurm
@pytest.mark.multinode
def test_node2_failing_at_start_up_is_named_and_the_checkpoint_kept(two_nodes):
    run, log = two_nodes["failure"], two_nodes["failure_log"]
    assert run.returncode != 0, run.stderr[-3000:]
    assert "test shim: torchrun on node2 fails at start-up" in log, log[-5000:]
    assert re.search(r"vqvideo.launch: the training failed \(exit code \d+\): node node2 \(node 1 of 2\) failed "
                     r"first: its torchrun exited with code 3", log), log[-5000:]
    # the checkpoint node2 saw at its start-up is the one kept for the next attempt, byte for byte
    assert two_nodes["sha_after_failure"] == two_nodes["sha"].read_text().split()[0] == two_nodes["sha_before"]


@pytest.mark.slurm
@pytest.mark.multinode
def test_a_rendezvous_timeout_names_the_node_that_never_joined(two_nodes):
    run, log = two_nodes["rdzv"], two_nodes["rdzv_log"]
    assert run.returncode != 0, run.stderr[-3000:]
    assert "test shim: torchrun on node2 hangs before the rendezvous" in log, log[-5000:]
    assert re.search(rf"vqvideo.launch: the training failed \(exit code \d+\): the rendezvous timed out: node "
                     rf"node2 \(node 1 of 2\) never joined it \(node node1 waited {RDZV_TIMEOUT} s for every node",
                     log), log[-5000:]
    assert two_nodes["sha_after_rdzv"] == two_nodes["sha_after_failure"]  # the checkpoint is kept as it was
    # bounded: the job ended by itself (the timeout), not at its 30-minute limit
    assert two_nodes["rdzv_seconds"] < 600, two_nodes["rdzv_seconds"]
