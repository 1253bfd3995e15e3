"""The one base class of errors that mean bad input or an unmet precondition, not a bug, and the exit codes.

``vqvideo`` prints such an error as one line naming the command, without a traceback, and exits with the
error's ``exit_code``. Each stage subclasses it for its own errors. Any other exception is a bug: it ends
with its traceback (exit code 1, Python's own). The exit codes of every ``vqvideo`` command:

    0   done
    1   an input gave nothing to work on: no clip in the videos, a missing checkpoint or shard (run the stage
        before), a video too short to predict from, a download that failed its checks (NO_RESULT)
    2   bad input: an invalid config, command-line arguments or input file (BAD_INPUT, UserError's default)
    75  a training was preempted (SIGTERM/SIGUSR1) after writing its checkpoint: rerun to resume (PREEMPTED)
"""

OK = 0
NO_RESULT = 1
BAD_INPUT = 2
PREEMPTED = 75  # EX_TEMPFAIL: "try again"


class UserError(Exception):
    exit_code = BAD_INPUT


class MissingInput(UserError, FileNotFoundError):
    """An input a stage needs is not there (yet): a checkpoint, a shard, a manifest."""

    exit_code = NO_RESULT
