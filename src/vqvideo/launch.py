"""Run a training command so that it survives a cluster's time limit and spans nodes: ``python -m vqvideo.launch``.

    python -m vqvideo.launch --resume results/vqvae/checkpoint.pt --runtime 1440 --margin 10 -- \\
        torchrun --standalone --nproc-per-node=8 -m vqvideo.cli train-vqvae --configfile config/config.yaml

    # several nodes: one `vqvideo.launch node` per node under srun, each starting one torchrun
    python -m vqvideo.launch --resume results/priors/top/checkpoint.pt --runtime 1440 --margin 10 -- \\
        srun --nodes=4 --ntasks=4 --ntasks-per-node=1 --cpus-per-task=32 --kill-on-bad-exit=1 \\
        python -m vqvideo.launch node --nproc-per-node=8 -- -m vqvideo.cli train-prior --level top ...

The training harness checkpoints and exits with code 75 on SIGTERM/SIGUSR1, and resumes from its checkpoint
when run again. Under SLURM + Snakemake this wrapper (on the job's first node) sees to the rest:

* Signals from SLURM (the time limit's SIGTERM, ``--signal=USR1@...``) reach every process of the job step,
  including the Snakemake process that runs the rule, which dies of them at once; on clusters with
  proctrack/cgroup the step's other processes are then killed before the checkpoint is written. So the
  wrapper stops the command itself, ``margin`` minutes before the job's end (read from ``squeue``, else
  ``runtime`` minutes after the start): SIGTERM to the command's process group (torchrun and srun forward it
  to the training processes on every node), SIGKILL only if it is still running ``kill_after`` seconds later.
* Snakemake deletes the outputs of a failed job, and the harness's checkpoint is the training rule's
  output. So when the command fails, the wrapper moves the checkpoint aside (``<checkpoint>.resume``) before
  exiting with the command's code, and moves it back before the next attempt starts (Snakemake's
  ``--retries``, or the next invocation). A training that finishes leaves the checkpoint in place.
* torchrun and srun report their own exit codes, not the training's 75. When a stop was asked for (a signal
  reached this wrapper or any node's ``vqvideo.launch node``, or the deadline passed) and a new checkpoint was
  written after it, the attempt was preempted cleanly: the wrapper exits with 75.
* With ``--requeue``, a clean stop under SLURM puts the job back in the queue (``scontrol requeue``): SLURM
  runs the same job (same job id) again once its nodes are free, and the training
  resumes there. The job's own exit code is not the training's 75: the Snakemake executor plugin's job
  script runs Snakemake, which exits 1 for any failed rule, so SLURM alone (``RequeueExit=75``) cannot tell
  a preemption from a failure. Where requeueing is refused (a cluster with ``JobRequeue=0`` and no
  ``--requeue``), the wrapper exits 75 and Snakemake's ``--retries`` submit the job anew.
* Nodes report to a folder beside the checkpoint (``.<checkpoint>.nodes/<node>.json``: started, when its
  training processes started, exit code, the stop signal it got). When the command fails otherwise, the
  wrapper names the node to blame: the node that failed first (its torchrun exited by itself, not stopped by
  a signal), or, when the rendezvous timed out (the first to fail had waited the whole ``--rdzv-timeout``
  without starting its processes), the nodes that never joined it; and the nodes that never reported.

``vqvideo.launch node`` runs on each node (under srun): it starts ``torchrun`` with ``SLURM_NNODES`` nodes
and the c10d rendezvous on the first node of the step (``SLURM_STEP_NODELIST``) at a port derived from the job
id, waiting at most ``--rdzv-timeout`` seconds for the other nodes, forwards SIGTERM/SIGUSR1 to it as SIGTERM
(torchrun passes it to its training processes and waits ``--kill-after`` seconds for their checkpoint), and
writes its node's report.

Without SLURM (no ``SLURM_JOB_ID``) the command runs with no deadline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from vqvideo.runtime.files import atomic_path

PREEMPTED_EXIT_CODE = 75  # the harness's code: checkpoint written, rerun to resume
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
RDZV_BASE_PORT = 29400  # torchrun's default c10d port; a job uses RDZV_BASE_PORT + job id % 1000


def resume_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".resume")


def nodes_dir(checkpoint: Path) -> Path:
    """Where the nodes of one attempt report (on the shared file system, beside the checkpoint)."""
    return checkpoint.with_name(f".{checkpoint.name}.nodes")


def restore(checkpoint: Path) -> bool:
    """Put a checkpoint set aside by a failed attempt back in place; True if one was restored."""
    aside = resume_path(checkpoint)
    if aside.exists() and not checkpoint.exists():
        os.replace(aside, checkpoint)
        return True
    aside.unlink(missing_ok=True)  # a newer checkpoint is in place; the old one is stale
    return False


def set_aside(checkpoint: Path) -> bool:
    """Move the checkpoint of a failed attempt out of Snakemake's reach; True if there was one."""
    if checkpoint.exists():
        os.replace(checkpoint, resume_path(checkpoint))
        return True
    return False


def slurm_seconds_left(job_id: str | None) -> float | None:
    """Seconds until the SLURM job's end time (``squeue -o %e``), or None when unknown."""
    if not job_id:
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%e"], capture_output=True, text=True,
                             timeout=30).stdout.strip()
        end = dt.datetime.fromisoformat(out.splitlines()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    return (end - dt.datetime.now()).total_seconds()


def deadline_seconds(runtime_min: float | None, margin_min: float, env=os.environ) -> float | None:
    """Seconds from now until the command must be stopped; None: no deadline (not under SLURM)."""
    job_id = env.get("SLURM_JOB_ID")
    if not job_id:
        return None
    left = slurm_seconds_left(job_id)
    if left is None and runtime_min is not None:
        left = runtime_min * 60
    if left is None:
        return None
    return max(left - margin_min * 60, 0.0)


def _stamp(path: Path) -> tuple | None:
    """What tells one version of a file from another: (inode, mtime, size), None if absent."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _read_reports(folder: Path | None) -> list[dict]:
    if folder is None or not folder.is_dir():
        return []
    reports = []
    for p in sorted(folder.glob("*.json")):
        try:
            reports.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            pass  # a node killed while writing: it counts as not reporting
    return sorted(reports, key=lambda r: r.get("node_id", 0))


def describe_failure(reports: list[dict], expected: int | None, names: list[str] | None = None) -> str | None:
    """A sentence naming the node(s) to blame, from the nodes' reports; None when there is nothing to say.

    ``names``: the job's hosts in node-id order (to name the nodes that never reported), if known.
    """
    if not reports and not expected:
        return None
    failed = sorted((r for r in reports if _failed_by_itself(r)), key=lambda r: r.get("ended", 0))
    got = {r.get("node_id") for r in reports}
    missing = [_name(i, expected, names) for i in range(expected or 0) if i not in got]
    parts = []
    if failed and _waited_out_the_rendezvous(failed[0], reports):
        # c10d: the nodes that joined give up together at the join timeout; a node that never joined does not
        # notice, so it is the one still running (then stopped by srun), or the one that never reported
        first = failed[0]
        absent = [f"node {r['node']} (node {r['node_id']} of {r['nodes']})" for r in reports
                  if not _failed_by_itself(r)] + missing
        if absent:
            parts.append(f"the rendezvous timed out: {', '.join(absent)} never joined it (node {first['node']} "
                         f"waited {first['rdzv_timeout']:.0f} s for every node, then its torchrun exited with "
                         f"code {first['rc']} {_when(first)})")
            return "; ".join(parts)
    if failed:
        first = failed[0]
        parts.append(f"node {first['node']} (node {first['node_id']} of {first['nodes']}) failed first: its "
                     f"torchrun exited with code {first['rc']} {_when(first)}")
        if len(failed) > 1:
            parts.append("then " + ", ".join(f"node {r['node']} (code {r['rc']})" for r in failed[1:]))
    if missing:
        parts.append(f"{', '.join(missing)} never reported (the launcher did not start there, or hung before "
                     f"the rendezvous)")
    return "; ".join(parts) or None


def _failed_by_itself(report: dict) -> bool:
    """Its torchrun exited with an error, not stopped by a signal to the node's launcher."""
    return report.get("rc") not in (0, None) and not report.get("signal")


def _waited_out_the_rendezvous(first: dict, reports: list[dict]) -> bool:
    """Whether the first node to fail gave up waiting at the rendezvous: no node started its training
    processes, and it failed no sooner than the rendezvous timeout after it started."""
    timeout = first.get("rdzv_timeout")
    if timeout is None or first.get("started") is None or first.get("ended") is None:
        return False
    return all(r.get("workers") is None for r in reports) and first["ended"] - first["started"] >= timeout


def _name(node_id: int, nodes: int | None, names: list[str] | None) -> str:
    if names and node_id < len(names):
        return f"node {names[node_id]} (node {node_id} of {nodes})"
    return f"node {node_id} of {nodes}"


def _when(report: dict) -> str:
    if report.get("started") is None or report.get("ended") is None:
        return ""
    return f"{report['ended'] - report['started']:.0f} s after it started"


def run(cmd: list[str], checkpoint: Path | None, deadline: float | None, kill_after: float = 120,
        nodes: int | None = None, requeue: bool = False) -> int:
    """Run ``cmd`` in its own process group; stop it at ``deadline`` seconds; return its exit code.

    ``nodes``: how many ``vqvideo.launch node`` reports to expect (a multi-node command), for the failure message.
    ``requeue``: after a clean stop under SLURM, requeue the job (see ``requeue_job``).
    """
    if checkpoint is not None and restore(checkpoint):
        print(f"vqvideo.launch: resuming from {checkpoint}", file=sys.stderr, flush=True)
    before = _stamp(checkpoint) if checkpoint is not None else None
    reports = nodes_dir(checkpoint) if checkpoint is not None else None
    env = dict(os.environ)
    if reports is not None:
        shutil.rmtree(reports, ignore_errors=True)
        reports.mkdir(parents=True, exist_ok=True)
        env["VQVIDEO_LAUNCH_NODES_DIR"] = str(reports)
    proc = subprocess.Popen(cmd, start_new_session=True, env=env)
    stop_asked = []

    def forward(signum, _frame):  # a signal for us is meant for the training
        stop_asked.append(signum)
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    for s in STOP_SIGNALS:
        signal.signal(s, forward)
    start = time.monotonic()
    stopped_at = None
    while True:
        try:
            rc = proc.wait(timeout=1.0)
            break
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic() - start
        if deadline is not None and stopped_at is None and now >= deadline:
            print(f"vqvideo.launch: the job's time is nearly up; stopping the training (SIGTERM) so that it "
                  f"checkpoints", file=sys.stderr, flush=True)
            forward(signal.SIGTERM, None)
            stopped_at = now
        elif stopped_at is not None and now - stopped_at > kill_after:
            forward(signal.SIGKILL, None)
    if rc < 0:  # killed by a signal: report it the way a shell would
        rc = 128 - rc
    node_reports = _read_reports(reports)
    if reports is not None:
        shutil.rmtree(reports, ignore_errors=True)
    rc = _outcome(rc, checkpoint, before, stop_asked, node_reports, nodes)
    if rc != 0 and checkpoint is not None and set_aside(checkpoint):
        print(f"vqvideo.launch: exit code {rc}; checkpoint kept as {resume_path(checkpoint)}, the next attempt "
              f"resumes from it", file=sys.stderr, flush=True)
    if rc == PREEMPTED_EXIT_CODE and requeue and requeue_job():
        await_stop()  # last: SLURM ends this job's processes (this one too) as it requeues it
    return rc


def await_stop(limit: float = 300.0) -> None:
    """Wait for the signal with which SLURM ends a requeued job's processes, at most ``limit`` seconds.

    Exiting at once would let the Snakemake that runs the rule in the job handle the rule's failure just as
    SLURM's SIGTERM reaches it, and its handler takes the lock that this handling holds: it hangs for ever, and
    with proctrack/linuxproc it outlives the job. While this process runs, that Snakemake only waits.
    """
    got = []
    previous = {s: signal.signal(s, lambda signum, _frame: got.append(signum)) for s in STOP_SIGNALS}
    end = time.monotonic() + limit
    while not got and time.monotonic() < end:
        time.sleep(0.2)
    for s, handler in previous.items():
        signal.signal(s, handler)


def requeue_job(env=os.environ) -> bool:
    """Put this SLURM job back in the queue (``scontrol requeue``); True if SLURM took it.

    SLURM then stops the job's processes, keeps its id and runs it again once
    nodes are free, no sooner than the cluster's credential lifetime (``AuthInfo=cred_expire``, 120 s by
    default) later. The Snakemake executor plugin sees the same job pending, then running: no new submission.
    """
    job_id = env.get("SLURM_JOB_ID")
    if not job_id:
        return False
    try:
        out = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=60)
        err = out.stderr.strip() if out.returncode else None
    except (OSError, subprocess.SubprocessError) as e:
        err = str(e)
    if err is not None:
        print(f"vqvideo.launch: scontrol requeue {job_id} failed ({err}); exiting with {PREEMPTED_EXIT_CODE} for "
              f"the workflow to submit the training again", file=sys.stderr, flush=True)
        return False
    print(f"vqvideo.launch: requeued SLURM job {job_id} (scontrol requeue): it runs again with the same id and "
          f"resumes from the checkpoint", file=sys.stderr, flush=True)
    return True


def _outcome(rc: int, checkpoint: Path | None, before, stop_asked: list, reports: list[dict],
             nodes: int | None) -> int:
    """The attempt's exit code: 75 for a clean stop that checkpointed, else the command's, with a message."""
    if rc == 0 or rc == PREEMPTED_EXIT_CODE:
        return rc
    by = (["the launcher"] if stop_asked else []) + [f"node {r['node']}" for r in reports if r.get("signal")]
    new_checkpoint = checkpoint is not None and _stamp(checkpoint) not in (None, before)
    if by and new_checkpoint:
        print(f"vqvideo.launch: the training was stopped (a signal to {', '.join(by)}) and wrote {checkpoint}; "
              f"the command exited with {rc}: exiting with {PREEMPTED_EXIT_CODE}, rerun to resume",
              file=sys.stderr, flush=True)
        return PREEMPTED_EXIT_CODE
    why = describe_failure(reports, nodes, _job_hosts())
    if why:
        kept = f"; the last complete checkpoint {checkpoint} is kept" if checkpoint is not None and \
            checkpoint.exists() else ""
        print(f"vqvideo.launch: the training failed (exit code {rc}): {why}{kept}", file=sys.stderr, flush=True)
    return rc


# --------------------------------------------------------------------------------------------- one node
def rendezvous_port(job_id: str | None) -> int:
    """The c10d port of a job: distinct for jobs that share their first node (up to 1000 at once)."""
    return RDZV_BASE_PORT + (int(job_id) % 1000 if job_id and job_id.isdigit() else 0)


def first_node(nodelist: str) -> str:
    """The first host of a SLURM node list (``node[1-2]`` -> ``node1``), via ``scontrol show hostnames``."""
    out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    if not out:
        raise RuntimeError(f"scontrol show hostnames {nodelist!r} printed nothing")
    return out[0]


def _job_hosts(env=os.environ) -> list[str] | None:
    """The job's hosts in SLURM_NODEID order (to name a node that never reported), None when unknown."""
    nodelist = env.get("SLURM_JOB_NODELIST")
    if not nodelist:
        return None
    try:
        return subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                              timeout=60, check=True).stdout.split() or None
    except (OSError, subprocess.SubprocessError):
        return None


def torchrun_command(nnodes: int, nproc_per_node: int, head: str, port: int, rdzv_id: str,
                     rdzv_timeout: float, args: list[str]) -> list[str]:
    """One node's torchrun: ``nnodes`` agents meet at the c10d rendezvous ``head:port`` (hosted by ``head``)."""
    return ["torchrun", f"--nnodes={nnodes}", f"--nproc-per-node={nproc_per_node}", "--rdzv-backend=c10d",
            f"--rdzv-endpoint={head}:{port}", f"--rdzv-id={rdzv_id}",
            f"--rdzv-conf=join_timeout={int(rdzv_timeout)}", "--max-restarts=0", *args]


def run_node(nproc_per_node: int, args: list[str], rdzv_timeout: float, kill_after: float,
             env=os.environ) -> int:
    """This node's part of a multi-node training (under srun); returns torchrun's exit code."""
    node = env.get("SLURMD_NODENAME") or socket.gethostname()
    node_id, nnodes = int(env.get("SLURM_NODEID", "0")), int(env.get("SLURM_NNODES", "1"))
    job_id = env.get("SLURM_JOB_ID", "0")
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST")
    head = first_node(nodelist) if nodelist else node
    # workers: when torchrun started this node's training processes, i.e. when the rendezvous completed
    report = {"node": node, "node_id": node_id, "nodes": nnodes, "started": time.time(), "workers": None,
              "rc": None, "signal": None, "ended": None, "rdzv_timeout": rdzv_timeout}
    folder = env.get("VQVIDEO_LAUNCH_NODES_DIR")
    _report(folder, report)
    cmd = torchrun_command(nnodes, nproc_per_node, head, rendezvous_port(job_id), job_id, rdzv_timeout, args)
    child_env = dict(env, TORCH_ELASTIC_SHUTDOWN_TIMEOUT=str(int(kill_after)))  # time to write the checkpoint
    print(f"vqvideo.launch node: {node} (node {node_id} of {nnodes}) starts {' '.join(cmd[:7])} ...",
          file=sys.stderr, flush=True)
    # torchrun in its own session, SIGUSR1 ignored: SLURM's --signal=USR1 reaches every process of the step,
    # and torchrun (not handling USR1) would die of it; its training processes set their own handlers
    proc = subprocess.Popen(cmd, env=child_env, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGUSR1, signal.SIG_IGN))

    def forward(signum, _frame):
        report["signal"] = report["signal"] or signal.Signals(signum).name
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    for s in STOP_SIGNALS:
        signal.signal(s, forward)
    while True:
        try:
            rc = proc.wait(timeout=1.0)
            break
        except subprocess.TimeoutExpired:
            pass
        if report["workers"] is None and _has_children(proc.pid):
            report["workers"] = time.time()
            _report(folder, report)
    rc = 128 - rc if rc < 0 else rc
    report.update(rc=rc, ended=time.time())
    _report(folder, report)
    if rc != 0:
        why = f"stopped by {report['signal']}" if report["signal"] else "failed"
        print(f"vqvideo.launch node: {node} (node {node_id} of {nnodes}): torchrun {why}, exit code {rc}",
              file=sys.stderr, flush=True)
    return rc


def _has_children(pid: int) -> bool:
    """Whether process ``pid`` has a child: torchrun starts its training processes only once every node has
    joined its rendezvous, and has no other children."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])  # after "pid (comm)": state, ppid, ...
        except (OSError, ValueError, IndexError):
            continue  # a process that ended while we looked
        if ppid == pid:
            return True
    return False


def _report(folder: str | None, report: dict) -> None:
    if not folder:
        return
    with atomic_path(Path(folder) / f"{report['node']}.json") as tmp:
        tmp.write_text(json.dumps(report))


# --------------------------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["node"]:
        return _main_node(argv[1:])
    p = argparse.ArgumentParser(prog="python -m vqvideo.launch", description=__doc__.splitlines()[0])
    p.add_argument("--resume", type=Path, default=None, help="the checkpoint the command writes and resumes from")
    p.add_argument("--runtime", type=float, default=None, help="the job's time limit in minutes (if squeue cannot tell)")
    p.add_argument("--margin", type=float, default=10, help="minutes before the limit at which to stop the command")
    p.add_argument("--kill-after", type=float, default=120, help="seconds between SIGTERM and SIGKILL")
    p.add_argument("--nodes", type=int, default=None, help="nodes of a multi-node command (for its failure message)")
    p.add_argument("--requeue", action="store_true",
                   help="after a clean stop under SLURM, requeue the job (scontrol requeue) to resume it")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command")
    args = p.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        p.error("no command given")
    return run(cmd, args.resume, deadline_seconds(args.runtime, args.margin), args.kill_after, args.nodes,
               args.requeue)


def _main_node(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m vqvideo.launch node",
                                description="one node's torchrun of a multi-node training (run under srun)")
    p.add_argument("--nproc-per-node", type=int, required=True, help="training processes on this node")
    p.add_argument("--rdzv-timeout", type=float, default=600, help="seconds to wait for every node to join")
    p.add_argument("--kill-after", type=float, default=120, help="seconds torchrun waits for its processes on SIGTERM")
    p.add_argument("args", nargs=argparse.REMAINDER, help="-- then torchrun's training arguments (-m vqvideo.cli ...)")
    args = p.parse_args(argv)
    rest = args.args[1:] if args.args[:1] == ["--"] else args.args
    if not rest:
        p.error("no training command given")
    return run_node(args.nproc_per_node, rest, args.rdzv_timeout, args.kill_after)


if __name__ == "__main__":
    sys.exit(main())
