"""The one base class of errors that mean bad input or an unmet precondition, not a bug.

``vqvideo`` prints such an error as one line naming the command, without a traceback, and exits with the
error's ``exit_code``. Each stage subclasses it for its own errors.
"""


class UserError(Exception):
    exit_code = 2
