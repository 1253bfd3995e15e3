"""vqvideo.launch: stop a training before the time limit, keep its checkpoint from Snakemake's cleanup."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from vqvideo import launch

# a stand-in for the training command (the launcher wraps any command): see stand_in_trainer.py
TRAINER = (Path(__file__).parent / "stand_in_trainer.py").read_text()


@contextlib.contextmanager
def _sigterm_blocked():
    """SIGTERM blocked here, so in the commands launch.run starts meanwhile: a stop that comes before a command
    has set its handler (a busy machine) waits for it; the commands unblock it once they have."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _run(tmp_path, env, steps, margin_min, runtime_min):
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)
    ckpt = tmp_path / "checkpoint.pt"
    cmd = [sys.executable, "-m", "vqvideo.launch", "--resume", str(ckpt), "--runtime", str(runtime_min),
           "--margin", str(margin_min), "--", sys.executable, str(script), str(ckpt), str(steps)]
    with _sigterm_blocked():  # the deadline may come before the stand-in trainer is up (it unblocks it)
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300), ckpt


def test_stops_before_the_limit_and_resumes(tmp_path):
    env = dict(os.environ, SLURM_JOB_ID="999999999")  # no such job: squeue cannot tell, --runtime is used
    env.pop("SLURM_CONF", None)
    # runtime 0.03 min = 1.8 s, margin 0.01 min = 0.6 s: stopped ~1.2 s after the start (~24 steps of 0.05 s
    # on an idle machine; on a busy one the trainer may start late: at least 1 step) of 1000 (50 s at least)
    proc, ckpt = _run(tmp_path, env, 1000, 0.01, 0.03)
    assert proc.returncode == 75, proc.stderr
    assert "stopping the training" in proc.stderr
    # the checkpoint of the failed attempt is out of Snakemake's reach ...
    assert not ckpt.exists()
    first = int(launch.resume_path(ckpt).read_text())
    assert 0 < first < 1000
    # ... and the next attempt (no deadline now) continues from it to the end
    env.pop("SLURM_JOB_ID")
    proc, ckpt = _run(tmp_path, env, first + 10, 0.01, 0.03)
    assert proc.returncode == 0, proc.stderr
    assert "resuming from" in proc.stderr
    assert int(ckpt.read_text()) == first + 10
    assert not launch.resume_path(ckpt).exists()


@pytest.mark.slow
def test_no_deadline_without_slurm():
    assert launch.deadline_seconds(60, 10, env={}) is None
    assert launch.deadline_seconds(60, 10, env={"SLURM_JOB_ID": "999999999", "PATH": ""}) == 3000


def test_failure_without_checkpoint_passes_the_code_through(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    rc = launch.run([sys.executable, "-c", "import sys; sys.exit(3)"], ckpt, None)
    assert rc == 3 and not launch.resume_path(ckpt).exists()


# torchrun's way: on SIGTERM the training checkpoints, but the launcher above it exits with its own code (1)
MASKED = """import pathlib, signal, sys, time
ckpt = pathlib.Path(sys.argv[1])
def stop(*_):
    ckpt.write_text("stopped")
    sys.exit(1)
signal.signal(signal.SIGTERM, stop)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
time.sleep(60)
"""


@pytest.mark.slow
def test_a_stop_that_checkpoints_exits_75_whatever_the_command_says(tmp_path):
    (tmp_path / "masked.py").write_text(MASKED)
    ckpt = tmp_path / "checkpoint.pt"
    with _sigterm_blocked():
        rc = launch.run([sys.executable, str(tmp_path / "masked.py"), str(ckpt)], ckpt, deadline=1.0)
    assert rc == launch.PREEMPTED_EXIT_CODE
    assert launch.resume_path(ckpt).read_text() == "stopped"


@pytest.mark.slow
def test_a_stop_without_a_new_checkpoint_keeps_the_code(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    with _sigterm_blocked():
        rc = launch.run([sys.executable, "-c", "import signal, sys, time; "
                         "signal.signal(signal.SIGTERM, lambda *a: sys.exit(1)); "
                         "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM}); time.sleep(60)"],
                        ckpt, deadline=1.0)
    assert rc == 1 and not launch.resume_path(ckpt).exists()


def test_the_failure_message_names_the_node_that_failed_first():
    reports = [{"node": "node1", "node_id": 0, "nodes": 3, "rc": 1, "signal": "SIGTERM", "started": 0, "ended": 9},
               {"node": "node2", "node_id": 1, "nodes": 3, "rc": 3, "signal": None, "started": 0, "ended": 2}]
    why = launch.describe_failure(reports, expected=3)
    assert why.startswith("node node2 (node 1 of 3) failed first: its torchrun exited with code 3")
    assert "node 2 of 3 never reported" in why
    assert "node node3 (node 2 of 3) never reported" in launch.describe_failure(reports, 3, ["a", "b", "node3"])
    assert launch.describe_failure([], expected=None) is None


def _report(node_id, rc, signal=None, ended=None, workers=None):
    return {"node": f"node{node_id + 1}", "node_id": node_id, "nodes": 3, "rc": rc, "signal": signal,
            "started": 100.0, "ended": ended, "workers": workers, "rdzv_timeout": 30}


def test_a_rendezvous_timeout_names_the_nodes_that_never_joined():
    # node1 and node3 joined and gave up after the 30 s timeout; node2 hung before joining and was then stopped
    # by srun (its report: a signal); a timeout is no failure of node1, though its torchrun exited first
    reports = [_report(0, 1, ended=135.0), _report(1, 143, "SIGTERM", ended=136.0), _report(2, 1, ended=135.5)]
    why = launch.describe_failure(reports, expected=3)
    assert why.startswith("the rendezvous timed out: node node2 (node 1 of 3) never joined it (node node1 waited "
                          "30 s for every node, then its torchrun exited with code 1 35 s after it started)"), why
    # a node that never reported never joined either; a hung node still running (no end) did not join
    why = launch.describe_failure([_report(0, 1, ended=135.0), _report(1, None)], 3, ["node1", "node2", "node3"])
    assert why.startswith("the rendezvous timed out: node node2 (node 1 of 3), node node3 (node 2 of 3) never "
                          "joined it"), why


def test_a_failure_before_the_timeout_or_after_the_rendezvous_is_no_rendezvous_timeout():
    # node2 failed at start-up, sooner than the timeout: it is to blame, not node1 that waited for it
    early = [_report(0, 143, "SIGTERM", ended=106.0), _report(1, 3, ended=105.0)]
    assert launch.describe_failure(early, 2).startswith("node node2 (node 1 of 3) failed first")
    # node1 failed late in the training (its processes had started): node1 is to blame
    late = [_report(0, 1, ended=900.0, workers=120.0), _report(1, 143, "SIGTERM", ended=901.0, workers=121.0)]
    assert launch.describe_failure(late, 2).startswith("node node1 (node 0 of 3) failed first")


def test_has_children_tells_a_process_with_children():
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                               "subprocess.Popen(['sleep', '30']); sys.stdout.write('x'); sys.stdout.flush(); "
                               "time.sleep(30)"], stdout=subprocess.PIPE)
    leaf = subprocess.Popen(["sleep", "30"])
    try:
        assert parent.stdout.read(1) == b"x"  # its child is started
        assert launch._has_children(parent.pid)
        assert not launch._has_children(leaf.pid)
    finally:
        for p in (parent, leaf):
            p.kill()
            p.wait()


def test_requeue_needs_a_slurm_job():
    assert launch.requeue_job(env={}) is False


def test_after_a_requeue_the_launcher_waits_for_slurms_signal():
    before = signal.getsignal(signal.SIGTERM)
    t0 = time.monotonic()
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    launch.await_stop(limit=30)
    assert time.monotonic() - t0 < 10  # the signal ended the wait, not the limit
    assert signal.getsignal(signal.SIGTERM) is before  # the handlers are given back
    t0 = time.monotonic()
    launch.await_stop(limit=0.5)  # no signal: the limit ends it
    assert 0.5 <= time.monotonic() - t0 < 10


def test_torchrun_command_meets_at_the_first_node():
    cmd = launch.torchrun_command(2, 8, "node1", launch.rendezvous_port("12345"), "12345", 600, ["-m", "x"])
    assert cmd[:3] == ["torchrun", "--nnodes=2", "--nproc-per-node=8"]
    assert "--rdzv-backend=c10d" in cmd and "--rdzv-endpoint=node1:29745" in cmd and cmd[-2:] == ["-m", "x"]
