"""Packed trials against standalone runs: sweep CONFIG (packed, in a child process), then train every trial's
saved config as a standalone run in this process, and report the largest differences in final validation
accuracy and in test accuracy (the trial's saved model against the run's), which packing keeps within
REPRODUCE_BOUND. Trials whose validation accuracy still swings at the end are reported apart.

    python benchmarks/reproduce.py [CONFIG] [--out logs/bench_reproduce.json]

CONFIG defaults to the example sweep, experiments/fashion_mnist_sweep.toml (a few minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tfsoftmax.bench.process import run_child
from tfsoftmax.config.loader import load_config, override, require_space
from tfsoftmax.rundir import layout as rundir

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "experiments" / "fashion_mnist_sweep.toml"
DEFAULT_OUT = ROOT / "logs" / "bench_reproduce.json"
REPRODUCE_BOUND = 1e-3
SWING_EPOCHS, SETTLED_SWING = 3, 0.01


def reproduce(config_path: str, report: Callable[[str], None]) -> dict[str, Any]:
    """Every trial of the sweep of `config_path` against a standalone run of its saved config."""
    import keras

    from tfsoftmax import data as data_lib
    from tfsoftmax.training import train

    with tempfile.TemporaryDirectory(prefix="tfsoftmax-reproduce-") as tmp:
        report(f"reproduce: sweep {config_path} ...")
        sweep = [sys.executable, "-m", "tfsoftmax", "sweep", config_path, "--set", f"logging.root={json.dumps(tmp)}"]
        swept = run_child(sweep, "sweep")
        trials = sorted(p.parent for p in Path(tmp).glob(f"*/*/{rundir.EXECUTION}0/{rundir.RECORD}"))
        rows = []
        for i, trial in enumerate(trials):
            report(f"reproduce: standalone run of trial {trial.parent.name} ({i + 1}/{len(trials)}) ...")
            record = rundir.read_record(trial)
            config = override(load_config(trial / rundir.CONFIG), {"logging.root": str(Path(tmp) / "runs")})
            with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):  # its epoch lines
                run = train.run(config)
            splits = data_lib.split(data_lib.load_dataset(config.data), config.data)
            model = keras.saving.load_model(trial / rundir.MODEL)
            test = model.evaluate(data_lib.eval_batches(*splits.test), verbose=0, return_dict=True)["accuracy"]
            rows.append(
                {
                    "trial": trial.parent.name,
                    "status": record["status"],
                    "packed_with": len((record.get("packed") or {}).get("trials", [])),
                    "val_accuracy": [record["history"]["val_accuracy"][-1], run.history["val_accuracy"][-1]],
                    "test_accuracy": [float(test), run.test["accuracy"]],
                    "swing": swing(record["history"]["val_accuracy"]),
                }
            )
    return summarize(rows, swept.wall_s, config_path)


def summarize(rows: list[dict[str, Any]], sweep_wall_s: float, config_path: str) -> dict[str, Any]:
    """The largest differences over the completed trials, and over the settled ones alone."""
    done = [r for r in rows if r["status"] == "completed"]
    if not done:
        raise SystemExit(f"reproduce: no trial of {config_path} completed; nothing to compare")
    settled = [r for r in done if r["swing"] <= SETTLED_SWING]
    worst = {
        group: {
            k: max((abs(a - b) for a, b in (r[k] for r in rs)), default=0.0) for k in ("val_accuracy", "test_accuracy")
        }
        for group, rs in (("all", done), ("settled", settled))
    }
    return {
        "sweep_wall_s": sweep_wall_s,
        "trials": rows,
        "settled": len(settled),
        "max_difference": worst,
        "bound": REPRODUCE_BOUND,
    }


def swing(values: list[float]) -> float:
    """How far a trial's validation accuracy moved over its last SWING_EPOCHS epochs: SGD at too high a
    learning rate jumps around the optimum, and float rounding then decides where its last epoch lands."""
    last = values[-SWING_EPOCHS:]
    return max(last) - min(last)


def format_reproduce(result: dict[str, Any]) -> str:
    """The largest differences against the bound, for all trials and for the settled ones."""
    bound, lines = result["bound"], []
    for group, label in (("all", f"all {len(result['trials'])} trials"), ("settled", f"{result['settled']} settled")):
        worst = result["max_difference"][group]
        met = all(v <= bound for v in worst.values())
        lines.append(
            f"{label}: largest difference in final validation accuracy {worst['val_accuracy']:.5f}, in test "
            f"accuracy {worst['test_accuracy']:.5f} (bound {bound}: {'met' if met else 'NOT met'})"
        )
    return "\n".join(
        [
            f"{len(result['trials'])} trials swept in {result['sweep_wall_s']:.1f} s, each against a standalone run "
            f"of its saved config; settled: validation accuracy moved at most {SETTLED_SWING} over the last "
            f"{SWING_EPOCHS} epochs",
            *lines,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Parse, measure, print the result, write the JSON; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "config", nargs="?", default=str(DEFAULT_CONFIG), help="experiment TOML file with a sweep space"
    )
    parser.add_argument("--out", metavar="FILE", default=str(DEFAULT_OUT), help="JSON results")
    args = parser.parse_args(argv)
    require_space(load_config(args.config), args.config)  # a bad file fails here, not in the sweep's child
    from tfsoftmax.bench.report import machine
    from tfsoftmax.files import write_json

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = {"config": args.config, "machine": machine(), "reproduce": reproduce(args.config, progress)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    print(format_reproduce(result["reproduce"]))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
