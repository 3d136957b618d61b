"""Only this sweep's workers get in: a chief started with `--role chief` refuses every gRPC call without its
token, and nothing a refused caller sends reaches the oracle."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from tfsoftmax.config.loader import load_config
from tfsoftmax.distributed import token
from tfsoftmax.distributed.launcher import free_port
from tfsoftmax.sweeps import tune

from conftest import child_env, tfsoftmax_command
from sweep_helpers import processes_mentioning, sweep_file


@pytest.mark.slow
def test_a_client_without_the_sweeps_token_is_refused_and_the_oracle_is_unchanged(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    from keras_tuner.src import protos

    from tfsoftmax.sweeps import kt_private

    path = sweep_file(write_config, '"train.lr" = { values = [0.1, 0.2] }', trials=2, algorithm="grid")
    sweep = tune.sweep_dir(load_config(path))
    port = free_port()
    chief = subprocess.Popen(
        tfsoftmax_command("sweep", str(path), "--role", "chief", "--oracle", f"127.0.0.1:{port}"),
        env={**child_env(), "KERASTUNER_TUNER_ID": "chief"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (sweep / token.FILE).is_file():
            assert chief.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        assert (sweep / token.FILE).stat().st_mode & 0o777 == 0o600
        secret = (sweep / token.FILE).read_text()
        with token.published(tmp_path / "another_sweep") as another:
            assert another != secret
        stub = protos.get_service_grpc().OracleStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        service = protos.get_service()
        state = (sweep / "tuner" / "oracle.json").read_bytes()
        calls = [
            ("CreateTrial", service.CreateTrialRequest(tuner_id="intruder")),
            ("UpdateTrial", service.UpdateTrialRequest(trial_id="0", metrics={"val_accuracy": 1.0}, step=0)),
            ("GetSpace", service.GetSpaceRequest()),
        ]
        for metadata in ((), ((kt_private.TOKEN_KEY, another),)):
            for name, request in calls:
                with pytest.raises(grpc.RpcError) as info:
                    getattr(stub, name)(request, metadata=metadata, wait_for_ready=True, timeout=30)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
        assert (sweep / "tuner" / "oracle.json").read_bytes() == state
        assert list((sweep / "tuner").glob("trial_*")) == []
        # The sweep's own token gets the first trial: the refused calls took none.
        own = ((kt_private.TOKEN_KEY, secret), (kt_private.TUNER_KEY, "w0"))
        trial = stub.CreateTrial(service.CreateTrialRequest(tuner_id="w0"), metadata=own, timeout=30).trial
        assert trial.trial_id == "0"
        chief.send_signal(signal.SIGINT)
        assert chief.wait(timeout=60) == 130
        assert not (sweep / token.FILE).exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(chief.pid, signal.SIGKILL)
        chief.wait()
    assert processes_mentioning(str(tmp_path)) == []
