"""Helpers for running code as a reader does: cells executed in a real Jupyter kernel (ipykernel, through nbclient)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import nbformat

from conftest import ROOT

KERNEL_TIMEOUT_S = 600  # per cell: the real-data notebook's sweep is its longest


def kernel_env(**changes: str) -> dict[str, str]:
    """This checkout's package for the kernel, with nothing that quiets TensorFlow already (the notebook
    support has to) or makes it verbose; and not told it runs under pytest, where ipykernel leaves
    descriptors 1 and 2 alone rather than show what is written there in the cell, as Jupyter does."""
    dropped = ("TF_CPP_MIN_LOG_LEVEL", "TFSOFTMAX_VERBOSE", "PYTEST_CURRENT_TEST")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return {**env, **changes}


def execute(
    notebook: nbformat.NotebookNode, cwd: Path, env: dict[str, str], allow_errors: bool = False
) -> nbformat.NotebookNode:
    """Execute every cell of `notebook` in a fresh python3 kernel started in `cwd`; returns it with outputs."""
    from nbclient import NotebookClient

    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=KERNEL_TIMEOUT_S,
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute(env=env, cwd=str(cwd))
    return notebook


def cells(sources: Sequence[str]) -> nbformat.NotebookNode:
    """A notebook of these code cells."""
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def output_text(output: nbformat.NotebookNode) -> str:
    """Everything a cell's output shows as text: streams, plain and HTML data, an error and its traceback."""
    if output.output_type == "stream":
        return output.text
    if output.output_type == "error":
        return "\n".join([output.ename, output.evalue, *output.traceback])
    data = output.get("data", {})
    return "\n".join(str(data.get(kind, "")) for kind in ("text/plain", "text/html"))
