"""A stand-in for a training command, run as a script by the launcher tests (tests/test_launch.py,
tests/workflow/test_slurm.py): `python stand_in_trainer.py CKPT STEPS`. It follows the harness's preemption protocol
without its cost: resumes from CKPT (a step count), and on SIGTERM/SIGUSR1 writes CKPT and exits with 75."""
import pathlib
import signal
import sys
import time

ckpt = pathlib.Path(sys.argv[1])
step = int(ckpt.read_text()) if ckpt.exists() else 0
print("start at step", step, flush=True)
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
signal.signal(signal.SIGUSR1, lambda *a: stop.append(1))
# a stop sent before the handlers were set is taken now: a launcher started with these signals blocked (the
# launch tests do, so that a deadline that comes before this interpreter is up does not kill it) passes the mask on
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGUSR1})
while step < int(sys.argv[2]):
    time.sleep(0.05)
    step += 1
    if stop:
        ckpt.write_text(str(step))
        sys.exit(75)
ckpt.write_text(str(step))
