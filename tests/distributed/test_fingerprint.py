"""The chief's published sweep, against which a worker checks its own before it trains."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tfsoftmax.config.loader import load_config, override
from tfsoftmax.distributed import fingerprint
from tfsoftmax.errors import TfsoftmaxError

from sweep_helpers import sweep_file


@pytest.fixture
def config(write_config: Callable[..., Path]) -> object:
    return load_config(sweep_file(write_config, '"train.lr" = { values = [0.1, 0.2] }', trials=2, algorithm="grid"))


def test_what_each_machine_may_set_for_itself_is_left_out(config: object) -> None:
    resolved = fingerprint.resolved(config)
    assert not fingerprint.LOCAL_KEYS & resolved.keys()
    assert resolved["sweep.seed"] == 0 and resolved["sweep.max_trials"] == 2 and "sweep.pack" in resolved
    assert json.loads(json.dumps(resolved)) == resolved  # what the file holds, compared as read back
    lease = override(config, {"sweep.lease_s": 5.0, "sweep.max_retries": 0, "sweep.chief_timeout_s": 9.0})
    assert fingerprint.resolved(lease) == resolved


def test_the_published_sweep_is_removed_even_when_the_chief_fails(config: object, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), fingerprint.published(config, tmp_path / "sweep"):
        assert json.loads((tmp_path / "sweep" / fingerprint.FILE).read_text()) == fingerprint.resolved(config)
        raise RuntimeError
    assert not (tmp_path / "sweep" / fingerprint.FILE).exists()


def test_a_worker_waits_for_a_chief_that_publishes_late(config: object, tmp_path: Path) -> None:
    published = threading.Event()

    def chief() -> None:
        time.sleep(0.6)
        with fingerprint.published(config, tmp_path):
            published.set()
            time.sleep(2.0)

    thread = threading.Thread(target=chief)
    thread.start()
    try:
        fingerprint.check(config, tmp_path, 10.0)
        assert published.is_set()
    finally:
        thread.join()


def test_a_damaged_chief_file_is_read_again_until_the_wait_ends(config: object, tmp_path: Path) -> None:
    (tmp_path / fingerprint.FILE).write_text('{"sweep.se')  # a chief mid-write on a file system without rename
    with pytest.raises(TfsoftmaxError, match="no chief's sweep in .* after 0.2 s") as info:
        fingerprint.check(config, tmp_path, 0.2)
    assert info.value.exit_code == 1
