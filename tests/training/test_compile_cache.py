"""The compilation cache's folder and its size: what `compile_cache` decides before TensorFlow reads its flags.
Whether TensorFlow writes and loads the programs, across processes, is tested in `test_packed_fit.py`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tfsoftmax.training import compile_cache


def _entries(folder: Path, sizes: list[int]) -> list[Path]:
    """Cache entries named as TensorFlow names them, written oldest first (one second apart)."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i, size in enumerate(sizes):
        entry = folder / f"xla_compile_cache__{i:04d}"
        entry.write_bytes(b"x" * size)
        os.utime(entry, (1_700_000_000 + i, 1_700_000_000 + i))
        made.append(entry)
    return made


def test_trim_removes_the_oldest_entries_until_the_rest_fit(tmp_path: Path) -> None:
    entries = _entries(tmp_path, [100, 100, 100, 100, 100])
    other = tmp_path / "notes.txt"
    other.write_text("not an entry")
    assert compile_cache.trim(tmp_path, 250) == 3
    assert [e.exists() for e in entries] == [False, False, False, True, True]
    assert other.exists()
    assert compile_cache.trim(tmp_path, 250) == 0  # already within the limit


def test_enable_trims_this_machine_s_folder_and_gives_it_to_tensorflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path))
    monkeypatch.delenv(compile_cache.XLA_FLAGS_ENV, raising=False)
    monkeypatch.setattr(compile_cache, "MAX_BYTES", 1000)
    folder = tmp_path / compile_cache.machine_key("9.9")
    entries = _entries(folder, [600, 600, 600])
    assert compile_cache.enable("9.9") == folder
    assert [e.exists() for e in entries] == [False, False, True]
    assert os.environ[compile_cache.XLA_FLAGS_ENV] == f"{compile_cache.FLAG}{folder}"


def test_enable_leaves_a_folder_already_chosen_and_off_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(compile_cache.XLA_FLAGS_ENV, f"{compile_cache.FLAG}{tmp_path / 'chosen'}")
    assert compile_cache.enable("9.9") == tmp_path / "chosen"
    monkeypatch.delenv(compile_cache.XLA_FLAGS_ENV)
    monkeypatch.setenv(compile_cache.ENV, "off")
    assert compile_cache.enable("9.9") is None
    assert compile_cache.XLA_FLAGS_ENV not in os.environ
