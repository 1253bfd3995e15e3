"""Run a training command so that it survives a cluster's time limit: ``python -m vqvideo.launch``.

    python -m vqvideo.launch --resume results/vqvae/checkpoint.pt --runtime 1440 --margin 10 -- \\
        torchrun --standalone --nproc-per-node=8 -m vqvideo.cli train-vqvae --configfile config/config.yaml

The training harness checkpoints and exits with code 75 on SIGTERM/SIGUSR1, and resumes from its checkpoint
when run again. Two things stand in the way under SLURM + Snakemake, and this wrapper handles both:

* Signals from SLURM (the time limit's SIGTERM, ``--signal=USR1@...``) reach every process of the job step,
  including the Snakemake process that runs the rule, which dies of them at once; on clusters with
  proctrack/cgroup the step's other processes are then killed before the checkpoint is written. So the
  wrapper stops the command itself, ``margin`` minutes before the job's end (read from ``squeue``, else
  ``runtime`` minutes after the start): SIGTERM to the command's process group (torchrun forwards it to its
  workers and waits for them), SIGKILL only if it is still running ``kill_after`` seconds later.
* Snakemake deletes the outputs of a failed job, and the harness's checkpoint is the training rule's
  output. So when the command fails, the wrapper moves the checkpoint aside (``<checkpoint>.resume``) before
  exiting with the command's code, and moves it back before the next attempt starts (Snakemake's
  ``--retries``, or the next invocation). A training that finishes leaves the checkpoint in place.

Without SLURM (no ``SLURM_JOB_ID``) the command runs with no deadline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def resume_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".resume")


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


def run(cmd: list[str], checkpoint: Path | None, deadline: float | None, kill_after: float = 120) -> int:
    """Run ``cmd`` in its own process group; stop it at ``deadline`` seconds; return its exit code."""
    if checkpoint is not None and restore(checkpoint):
        print(f"vqvideo.launch: resuming from {checkpoint}", file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd, start_new_session=True)

    def forward(signum, _frame):  # a signal for us is meant for the training
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
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
    if rc != 0 and checkpoint is not None and set_aside(checkpoint):
        print(f"vqvideo.launch: exit code {rc}; checkpoint kept as {resume_path(checkpoint)}, the next attempt "
              f"resumes from it", file=sys.stderr, flush=True)
    return rc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vqvideo.launch", description=__doc__.splitlines()[0])
    p.add_argument("--resume", type=Path, default=None, help="the checkpoint the command writes and resumes from")
    p.add_argument("--runtime", type=float, default=None, help="the job's time limit in minutes (if squeue cannot tell)")
    p.add_argument("--margin", type=float, default=10, help="minutes before the limit at which to stop the command")
    p.add_argument("--kill-after", type=float, default=120, help="seconds between SIGTERM and SIGKILL")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command")
    args = p.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        p.error("no command given")
    return run(cmd, args.resume, deadline_seconds(args.runtime, args.margin), args.kill_after)


if __name__ == "__main__":
    sys.exit(main())
