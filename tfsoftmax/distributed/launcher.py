"""Scale-out on keras-tuner's own distributed mode: one chief oracle and N workers on this machine.

keras-tuner takes each process's role from the environment. The launcher tells the chief how many workers
it started, so the first worker to ask takes only its share (`lease`). The chief hands a dead worker's
trials on, so the launcher starts a dead worker again with its id, which gets its trials back at once;
it stops them all when the chief fails or is done, on Ctrl-C, or on a worker's config error.
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

from tfsoftmax.config.loader import load_config
from tfsoftmax.errors import CONFIG_ERROR, INTERRUPTED, RUNTIME_ERROR, TfsoftmaxError

TUNER_ID, ORACLE_IP, ORACLE_PORT = "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"
WORKERS = "TFSOFTMAX_SWEEP_WORKERS"  # how many workers the launcher started, for the chief's fair shares
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


def expected_workers() -> int:
    """The workers a launcher started beside this chief; 0 for a chief started by hand, which learns its
    workers as they ask."""
    count = os.environ.get(WORKERS, "")
    return int(count) if count.isdigit() else 0


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


def _ended(code: int) -> str:
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"stopped with exit code {code}"


def launch(sweep_args: Sequence[str], workers: int) -> list[str]:
    """Run a chief and `workers` workers of `tfsoftmax sweep <sweep_args>` (the resolved config's file first)
    until the chief is done. A worker that dies is started again with its id, up to the config's
    `sweep.max_retries` times each, and continues its trial from the last finished epoch (the chief hands
    it back); past that the others go on without it.

    Returns:
        The tuner ids of the workers that ran.

    Raises:
        TfsoftmaxError: the chief failed or died, a worker met a config error, every worker is gone (all
            others are stopped), or Ctrl-C.
    """
    restarts = load_config(sweep_args[0]).sweep.max_retries  # what the chief and the workers read too
    port = free_port()
    oracle = f"127.0.0.1:{port}"
    command = [sys.executable, "-m", "tfsoftmax", "sweep", *sweep_args, "--oracle", oracle]

    def start(role: str, tuner_id: str) -> subprocess.Popen:
        env = {**os.environ, TUNER_ID: tuner_id, WORKERS: str(workers)}
        # Own process groups: the launcher alone decides when they stop, and can stop their children too.
        return subprocess.Popen([*command, "--role", role], env=env, start_new_session=True)

    chief = start("chief", "chief")
    live = {f"worker{i}": start("worker", f"worker{i}") for i in range(workers)}
    pool, restarted = [chief, *live.values()], dict.fromkeys(live, 0)
    try:
        while chief.poll() is None:
            for name, p in list(live.items()):
                code = p.poll()
                if code is None:
                    continue
                del live[name]
                if code in (CONFIG_ERROR, INTERRUPTED) or (code and restarted[name] >= restarts and not live):
                    _stop(pool)
                    raise TfsoftmaxError(
                        f"sweep: {name} {_ended(code)}; stopped the others; run the same command again to resume",
                        RUNTIME_ERROR,
                    )
                if code and restarted[name] < restarts:
                    restarted[name] += 1
                    print(
                        f"sweep: {name} {_ended(code)}; started it again ({restarted[name]} of {restarts}, "
                        "sweep.max_retries): its trial continues from its last finished epoch",
                        file=sys.stderr,
                        flush=True,
                    )
                    live[name] = start("worker", name)
                    pool.append(live[name])
                elif code:
                    print(f"sweep: {name} {_ended(code)}; the other workers go on", file=sys.stderr, flush=True)
            time.sleep(0.5)
        if chief.returncode != 0:
            _stop(pool)
            raise TfsoftmaxError(
                f"sweep: the chief {_ended(chief.returncode)}; stopped the workers; "
                "run the same command again to resume",
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
    return list(restarted)
