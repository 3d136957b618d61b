"""Scale-out on keras-tuner's own distributed mode: one chief oracle and N workers on this machine.

keras-tuner takes each process's role from the environment. Two of its behaviours shape this launcher: a
chief waits forever for a worker that died mid-trial, and workers wait up to an hour per call for a chief
that died. So the launcher watches every process and stops them all as soon as one fails, on Ctrl-C, or
when the chief is done.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from tfsoftmax.errors import CONFIG_ERROR, INTERRUPTED, RUNTIME_ERROR, TfsoftmaxError

TUNER_ID, ORACLE_IP, ORACLE_PORT = "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"
WORKER_GRACE_S = 60.0  # after the chief finishes, workers get this long to see "no more trials" and exit


def parse_oracle(address: str) -> tuple[str, int]:
    """HOST:PORT of the chief oracle."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TfsoftmaxError(f"--oracle: got '{address}'; allowed: HOST:PORT, e.g. 127.0.0.1:8000", CONFIG_ERROR)
    return host, int(port)


def set_role(role: str, oracle: str) -> str:
    """Put this process in keras-tuner's distributed mode; returns its tuner id."""
    host, port = parse_oracle(oracle)
    own = os.environ.get(TUNER_ID) or f"worker-{socket.gethostname()}-{os.getpid()}"
    tuner_id = "chief" if role == "chief" else own
    if role == "worker" and "chief" in tuner_id:
        raise TfsoftmaxError(f"${TUNER_ID}: a worker's id must not contain 'chief', got '{tuner_id}'", CONFIG_ERROR)
    os.environ.update({TUNER_ID: tuner_id, ORACLE_IP: host, ORACLE_PORT: str(port)})
    return tuner_id


def free_port() -> int:
    """A port no process listens on now; gRPC's SO_REUSEPORT would let a stale chief share a fixed one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(processes: Sequence[subprocess.Popen], grace_s: float = 10.0) -> None:
    """SIGTERM every live process group, then SIGKILL what is left after `grace_s`."""
    for p in processes:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it may end between poll and kill
                os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in processes:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def launch(sweep_args: Sequence[str], workers: int) -> list[str]:
    """Run a chief and `workers` workers of `tfsoftmax sweep <sweep_args>` until the chief is done.

    Returns:
        The tuner ids of the workers that ran.

    Raises:
        TfsoftmaxError: a process failed or died (all others are stopped), or Ctrl-C.
    """
    port = free_port()
    oracle = f"127.0.0.1:{port}"
    command = [sys.executable, "-m", "tfsoftmax", "sweep", *sweep_args, "--oracle", oracle]

    def start(role: str, tuner_id: str) -> subprocess.Popen:
        env = {**os.environ, TUNER_ID: tuner_id}
        # Own process groups: the launcher alone decides when they stop, and can stop their children too.
        return subprocess.Popen([*command, "--role", role], env=env, start_new_session=True)

    chief = start("chief", "chief")
    names = {chief.pid: "chief"}
    pool = [chief]
    for i in range(workers):
        p = start("worker", f"worker{i}")
        names[p.pid] = f"worker{i}"
        pool.append(p)
    try:
        while chief.poll() is None:
            for p in pool[1:]:
                code = p.poll()
                if code is not None and code != 0:
                    _stop(pool)
                    raise TfsoftmaxError(
                        f"sweep: {names[p.pid]} stopped with exit code {code}; stopped the "
                        "others; run the same command again to resume",
                        RUNTIME_ERROR,
                    )
            time.sleep(0.5)
        if chief.returncode != 0:
            _stop(pool)
            raise TfsoftmaxError(
                f"sweep: the chief stopped with exit code {chief.returncode}; stopped the "
                "workers; run the same command again to resume",
                RUNTIME_ERROR,
            )
        deadline = time.monotonic() + WORKER_GRACE_S
        while any(p.poll() is None for p in pool[1:]) and time.monotonic() < deadline:
            time.sleep(0.5)
        _stop(pool)
    except KeyboardInterrupt:
        _stop(pool)
        raise TfsoftmaxError(
            "sweep interrupted; all processes stopped; run the same command again to resume", INTERRUPTED
        ) from None
    return [names[p.pid] for p in pool[1:]]
