"""The package's exception type: every error a user can act on is a TfsoftmaxError (`tuners.SearchStopped`,
one of them, also tells keras-tuner to end the search). Nothing here imports TensorFlow or keras-tuner."""

from __future__ import annotations

CONFIG_ERROR = 2
"""Exit code for anything wrong in a config file, an override or an argument (argparse uses 2 too)."""

RUNTIME_ERROR = 1
"""Exit code for expected failures while working: missing data files, a diverged run."""

INTERRUPTED = 130
"""Exit code for Ctrl-C or SIGTERM, as the shell reports a process ended by SIGINT."""


class TfsoftmaxError(Exception):
    """An error the user can act on; `cli.main` prints it on one line and exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int, resumable: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        # True where the run's record and checkpoint are intact and it can go on once the cause is gone
        # (a full disk, a write limit, Ctrl-C): the message then says how to resume.
        self.resumable = resumable or exit_code == INTERRUPTED
