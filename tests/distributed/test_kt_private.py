"""The adapter of keras-tuner's private API: pack slots, the grid's walk, the best-epoch checkpoint, atomic
state files, and the chief's service with leases, fair shares and the sweep's token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import keras_tuner
import pytest
from keras_tuner.src import protos

from tfsoftmax.distributed import token
from tfsoftmax.distributed.launcher import free_port
from tfsoftmax.distributed.lease import Leases
from tfsoftmax.sweeps import kt_private


class Context:
    """What a gRPC call's context offers the chief's service: the caller's id, and refusing the call."""

    def __init__(self, tuner_id: str) -> None:
        self.tuner_id = tuner_id

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((kt_private.TUNER_KEY, kt_private.owner(self.tuner_id)),)

    def abort(self, code: object, details: str) -> None:
        raise PermissionError(details)


def _oracle(tmp_path: Path, trials: int, kind: type = keras_tuner.oracles.RandomSearchOracle) -> Any:
    space = keras_tuner.HyperParameters()
    space.Float("x", 0.0, 1.0) if kind is not kt_private.GridOracle else space.Choice("x", [0.1, 0.2, 0.3])
    oracle = kind(objective="val_accuracy", max_trials=trials, hyperparameters=space, seed=1)
    oracle._set_project_dir(str(tmp_path), "tuner")
    return oracle


def _chief(oracle: Any, trials: int, expected: int = 0) -> tuple[kt_private.LeasingServicer, list[float]]:
    now = [0.0]
    leases = Leases(lease_s=20, max_retries=2, expected=expected, clock=lambda: now[0])
    return kt_private.LeasingServicer(oracle, leases, trials), now


def _ask(chief: kt_private.LeasingServicer, tuner_id: str) -> Any:
    from keras_tuner.src.engine.trial import Trial

    request = protos.get_service().CreateTrialRequest(tuner_id=tuner_id)
    return Trial.from_proto(chief.CreateTrial(request, Context(tuner_id)).trial)


def _pack(chief: kt_private.LeasingServicer, worker: str, slots: int) -> list[str]:
    """Ask slot after slot as a packed worker does, stopping at the first refusal."""
    got = []
    for k in range(slots):
        trial = _ask(chief, kt_private.slot_id(worker, k))
        if trial.status != "RUNNING":
            break
        got.append(trial.trial_id)
    return got


def _end(chief: kt_private.LeasingServicer, oracle: Any, worker: str, trial_id: str) -> None:
    oracle.update_trial(trial_id, {"val_accuracy": 0.5})
    trial = oracle.trials[trial_id]
    trial.status = "COMPLETED"
    chief.EndTrial(protos.get_service().EndTrialRequest(trial=trial.to_proto()), Context(worker))


def test_a_slot_id_names_its_worker_and_slot() -> None:
    assert kt_private.slot_id("w0", 0) == "w0"
    assert [kt_private.owner(kt_private.slot_id("w0", k)) for k in (0, 3)] == ["w0", "w0"]
    assert [kt_private.slot(kt_private.slot_id("worker-a-1", k)) for k in (0, 1, 15)] == [0, 1, 15]


def test_a_bayesian_first_round_stops_at_its_initial_points(tmp_path: Path) -> None:
    space = keras_tuner.HyperParameters()
    space.Float("x", 0.0, 1.0)
    space.Int("y", 1, 4)
    bayes = keras_tuner.oracles.BayesianOptimizationOracle(
        objective="val_accuracy", max_trials=20, hyperparameters=space
    )
    assert kt_private.round_size(bayes, 16) == 6  # keras-tuner's default: three per hyperparameter
    assert kt_private.round_size(_oracle(tmp_path, 20), 16) == 16
    client = type("Client", (), {})()  # a distributed worker's oracle holds no trials: the chief limits
    assert kt_private.round_size(client, 16) == 16


def test_the_grid_oracle_proposes_a_whole_round_before_any_trial_ends(tmp_path: Path) -> None:
    oracle = _oracle(tmp_path, 3, kt_private.GridOracle)
    values = [oracle.create_trial(kt_private.slot_id("w0", k)).hyperparameters.values["x"] for k in range(3)]
    assert values == [0.1, 0.2, 0.3]


def test_a_reloaded_grid_walks_on_from_its_trials(tmp_path: Path) -> None:
    oracle = _oracle(tmp_path, 3, kt_private.GridOracle)
    for k in range(2):
        trial = oracle.create_trial(f"w{k}")
        oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    oracle.save()
    again = _oracle(tmp_path, 3, kt_private.GridOracle)
    again.reload()
    kt_private.restore_grid_order(again)
    assert again.create_trial("w9").hyperparameters.values["x"] == 0.3


def test_the_best_epoch_checkpoint_remembers_the_epochs_before_a_resume(tmp_path: Path) -> None:
    from keras_tuner.src.engine.tuner_utils import SaveBestEpoch

    callback = SaveBestEpoch(keras_tuner.Objective("val_accuracy", "max"), str(tmp_path / "best.weights.h5"))
    kt_private.keep_best_epoch([callback], {"val_accuracy": [0.5, 0.8, 0.7]})
    assert callback.best_value == 0.8


def test_state_files_are_written_whole_by_rename(tmp_path: Path) -> None:
    from keras_tuner.src import utils as kt_utils

    kt_utils.save_json(str(tmp_path / "oracle.json"), {"a": 1})
    assert (tmp_path / "oracle.json").read_text() == '{"a": 1}' and [p.name for p in tmp_path.iterdir()] == [
        "oracle.json"
    ]


def test_launched_workers_each_get_their_share_and_a_refused_slot_creates_nothing(tmp_path: Path) -> None:
    oracle = _oracle(tmp_path, 8)
    chief, _ = _chief(oracle, 8, expected=2)
    first = _pack(chief, "w0", 16)
    assert len(first) == 4 and len(oracle.trials) == 4  # the refused fifth slot proposed nothing
    second = _pack(chief, "w1", 16)
    assert len(second) == 4 and not set(first) & set(second)
    for trial_id in first:
        _end(chief, oracle, "w0", trial_id)
    assert _ask(chief, "w0").status == "IDLE"  # w1 still holds trials that may come back
    for trial_id in second:
        _end(chief, oracle, "w1", trial_id)
    assert _ask(chief, "w0").status == "STOPPED" and _ask(chief, "w1").status == "STOPPED"
    assert chief.done()


def test_workers_started_by_hand_are_learned_when_they_join(tmp_path: Path) -> None:
    oracle = _oracle(tmp_path, 6)
    chief, now = _chief(oracle, 6)
    for worker in ("w0", "w1"):  # each says it has joined before it loads its data
        chief.GetSpace(protos.get_service().GetSpaceRequest(), Context(worker))
    assert len(_pack(chief, "w0", 16)) == 3
    now[0] = 25.0
    chief.GetSpace(protos.get_service().GetSpaceRequest(), Context("w0"))  # w0's heartbeat; w1 went silent
    now[0] = 30.0
    assert len(_pack(chief, "w2", 16)) == 3  # a late joiner takes what is left
    assert len(oracle.ongoing_trials) == 6


def test_a_bayesian_chief_proposes_no_more_at_random_than_its_initial_points(tmp_path: Path) -> None:
    space = keras_tuner.HyperParameters()
    space.Float("x", 0.0, 1.0)
    oracle = keras_tuner.oracles.BayesianOptimizationOracle(
        objective="val_accuracy", max_trials=10, hyperparameters=space, num_initial_points=3, seed=1
    )
    oracle._set_project_dir(str(tmp_path), "tuner")
    chief, _ = _chief(oracle, 10, expected=2)
    first, second = _pack(chief, "w0", 16), _pack(chief, "w1", 16)
    assert (len(first), len(second)) == (2, 1)  # the first round, its three initial points, shared
    for trial_id in first:
        _end(chief, oracle, "w0", trial_id)
    assert _pack(chief, "w0", 16) == []  # one more now would be random too: it waits for w1's score
    _end(chief, oracle, "w1", second[0])
    assert len(_pack(chief, "w1", 16)) == 4  # the model proposes; w1's share of the seven left


def test_a_restarted_worker_gives_back_the_slots_it_no_longer_asks_for(tmp_path: Path) -> None:
    oracle = _oracle(tmp_path, 4)
    chief, _ = _chief(oracle, 4)
    held = _pack(chief, "w0", 4)
    assert len(held) == 4
    got = _pack(chief, "w0", 1)  # restarted with a pack of one: its other three go back to the queue
    assert len(got) == 1 and len(oracle._retry_queue) == 3 and len(oracle.ongoing_trials) == 1
    assert len(_pack(chief, "w1", 4)) == 2  # its share of the four unfinished, with w0 alive
    assert sorted([t.trial_id for t in oracle.ongoing_trials.values()] + oracle._retry_queue) == sorted(held)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str, str, Any]]:
    """A chief's service on a free port, with the token published in `tmp_path`."""
    port = free_port()
    for name, value in {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(port)}.items():
        monkeypatch.setenv(name, value)
    oracle = _oracle(tmp_path / "chief", 2)
    with token.published(tmp_path / "sweep") as secret:
        server, servicer = kt_private.start(oracle, Leases(lease_s=20, max_retries=2, expected=0), 2, secret)
        try:
            yield oracle, f"127.0.0.1:{port}", secret, servicer
        finally:
            server.stop(grace=None)


def test_a_call_without_the_sweeps_token_is_refused_and_changes_nothing(served: tuple[Any, str, str, Any]) -> None:
    oracle, address, secret, _ = served
    stub = protos.get_service_grpc().OracleStub(grpc.insecure_channel(address))
    request = protos.get_service().CreateTrialRequest(tuner_id="w0")
    for metadata in ((), ((kt_private.TOKEN_KEY, "0" * 64),), ((kt_private.TOKEN_KEY, secret[:-1]),)):
        with pytest.raises(grpc.RpcError) as info:
            stub.CreateTrial(request, metadata=metadata, timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert oracle.trials == {} and oracle.ongoing_trials == {} and oracle.tuner_ids == set()
    trial = stub.CreateTrial(request, metadata=((kt_private.TOKEN_KEY, secret),), timeout=10).trial
    assert trial.trial_id == "0" and list(oracle.ongoing_trials) == ["w0"]


def test_a_worker_with_a_stale_token_reads_it_again_and_one_without_is_refused_in_one_line(
    served: tuple[Any, str, str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "w0")
    sweep = tmp_path / "sweep"
    assert (sweep / token.FILE).stat().st_mode & 0o777 == 0o600
    secret = (sweep / token.FILE).read_text()
    (sweep / token.FILE).write_text("stale")
    client = kt_private.LeasedClient(served[0], 5.0, sweep)
    (sweep / token.FILE).write_text(secret)  # the chief was restarted since the worker read it
    assert client.create_trial("w0").trial_id == "0"
    with pytest.raises(kt_private.ChiefUnreachable, match="refused this worker: it holds no token") as info:
        kt_private.announce(5.0, 20.0, tmp_path / "elsewhere")
    assert info.value.exit_code == 1 and "\n" not in str(info.value)
    assert list(served[0].ongoing_trials) == ["w0"]


def test_a_joined_worker_reports_from_a_thread_until_it_ends(
    served: tuple[Any, str, str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setenv("KERASTUNER_TUNER_ID", "w5")
    seen = served[3].leases.seen
    heartbeat = kt_private.announce(5.0, 0.4, tmp_path / "sweep")  # a report every 0.1 s
    joined = seen["w5"]
    time.sleep(0.5)
    assert seen["w5"] > joined
    heartbeat.close()
    time.sleep(0.3)
    last = seen["w5"]
    time.sleep(0.3)
    assert seen["w5"] == last
