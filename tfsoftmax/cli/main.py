"""Command line: thin subcommands over the notebook API. Only `config` and `errors` are imported here at
the top, so `--help` and config errors answer without loading TensorFlow."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from tfsoftmax.config import Config, LoggingConfig
from tfsoftmax.config.loader import load_config, require_space
from tfsoftmax.config.tomlio import printable
from tfsoftmax.errors import CONFIG_ERROR, INTERRUPTED, TfsoftmaxError


def _config(args: argparse.Namespace) -> Config:
    overrides = list(args.set or [])
    if getattr(args, "logdir", None):
        overrides.append(f"logging.root={json.dumps(args.logdir)}")
    return load_config(args.config, overrides)


def _quiet_tensorflow(args: argparse.Namespace) -> None:
    """Called by each subcommand right before it loads TensorFlow, so --help and config errors stay instant:
    TensorFlow's start-up chatter would hide the lines users need. --verbose leaves everything as it is."""
    if args.verbose:
        return
    if args.terminal:
        from tfsoftmax.display.terminal import quiet_tensorflow

        quiet_tensorflow()
    else:  # an in-process caller (a test, a notebook) owns its stderr: only the log level is ours to set
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _loads_tensorflow(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A subcommand from another module that loads TensorFlow: quieted like ours."""

    def run(args: argparse.Namespace) -> int:
        _quiet_tensorflow(args)
        return command(args)

    return run


def cmd_run(args: argparse.Namespace) -> int:
    if args.resume and (args.config or args.set or args.logdir):
        raise TfsoftmaxError(
            "run: --resume RUN_DIR continues a run with the config saved in it; give either "
            "CONFIG (with --set/--logdir) or --resume RUN_DIR",
            CONFIG_ERROR,
        )
    if not args.resume and not args.config:
        raise TfsoftmaxError(
            "run: give an experiment file (e.g. experiments/fashion_mnist.toml) or --resume RUN_DIR", CONFIG_ERROR
        )
    if args.resume:
        from tfsoftmax.rundir.checkpoint import resumable

        resumable(Path(args.resume))  # a wrong folder is reported before TensorFlow loads
    config = None if args.resume else _config(args)
    _quiet_tensorflow(args)
    from tfsoftmax.training import train

    result = (train.resume(Path(args.resume)) if args.resume else train.run(config)).raise_for_status()
    root = result.run_dir.parent.parent
    epochs = len(result.history.get("loss", []))
    print(
        f"\nrun {result.status}: test accuracy {result.test['accuracy']:.4f}, test loss "
        f"{result.test['loss']:.4f}, {epochs} epochs, {result.wall_time_s:.1f} s"
    )
    print(f"run directory: {result.run_dir}")
    print(f"TensorBoard:   tfsoftmax board {root}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    config = _config(args)
    if bool(args.role) != bool(args.oracle):
        raise TfsoftmaxError(
            "--role and --oracle go together: --role chief|worker --oracle HOST:PORT (the chief's address)",
            CONFIG_ERROR,
        )
    if args.role and (args.workers or args.final or args.overwrite or args.dry_run):
        raise TfsoftmaxError(
            "--role runs one side of a distributed sweep; --workers, --final, --overwrite and "
            "--dry-run belong to the launching command",
            CONFIG_ERROR,
        )
    require_space(config, args.config)
    _quiet_tensorflow(args)
    if args.dry_run:
        from tfsoftmax.sweeps.estimate import describe

        print(describe(config))
        return 0
    if args.role:
        from tfsoftmax.distributed.launcher import set_role
        from tfsoftmax.sweeps import tune

        tuner_id = set_role(args.role, args.oracle)
        print(f"sweep {args.role} '{tuner_id}' on {args.oracle}", flush=True)
        tune.search(config, display=args.verbose)
        return 0
    from tfsoftmax import sweep
    from tfsoftmax.rundir.layout import RESULTS_CSV, RESULTS_JSON
    from tfsoftmax.sweeps.results import format_table

    result = sweep(config, overwrite=args.overwrite, final=args.final, workers=args.workers or 0, display=args.verbose)
    if result.workers:
        print(f"\nworkers: {', '.join(result.workers)}")
    print(f"\n{format_table(result.rows, [e.key for e in config.sweep.space], config.sweep.objective)}")
    print(f"\nsweep of {len(result.rows)} trials in {result.wall_time_s:.1f} s: {result.sweep_dir}")
    print(f"results:       {result.sweep_dir / RESULTS_CSV}, {result.sweep_dir / RESULTS_JSON}")
    print(f"TensorBoard:   tfsoftmax board {result.sweep_dir}")
    print(f"best config:   {result.best_config_path}  (tfsoftmax run {result.best_config_path})")
    if result.final is not None:
        final = result.final
        print(
            f"\nfinal run on train+validation: test accuracy {final.test['accuracy']:.4f}, "
            f"test loss {final.test['loss']:.4f}: {final.run_dir}"
        )
    return 0


def cmd_numerics(args: argparse.Namespace) -> int:
    _quiet_tensorflow(args)
    from tfsoftmax.lessons.numerics import report  # checks the format name before it loads TensorFlow

    print(report(args.dtype))
    return 0


def cmd_board(args: argparse.Namespace) -> int:
    from tfsoftmax.board import serve as board

    view = board.choose(Path(args.path))
    _quiet_tensorflow(args)
    url = board.serve(view, args.host, args.port)
    print(f"TensorBoard on {view.kind} {view.logdir}: {url} (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


def positive_int(text: str) -> int:
    """An argparse type for counts such as --workers and bench's --epochs."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got '{text}'")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    from tfsoftmax.display.terminal import VERBOSE_ENV

    parser = argparse.ArgumentParser(
        prog="tfsoftmax",
        description="D2L's softmax regression with Keras: runs and sweeps from config files, in TensorBoard.",
    )
    verbose_help = (
        "show everything TensorFlow and keras-tuner print: start-up notices, INFO lines, "
        f"keras-tuner's trial tables (also ${VERBOSE_ENV}=1); before or after COMMAND"
    )
    parser.add_argument("--verbose", action="store_true", help=verbose_help)
    # The same flag after COMMAND; SUPPRESS keeps a --verbose given before COMMAND.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_config_args(p: argparse.ArgumentParser, nargs: str | None = None) -> None:
        p.add_argument("config", nargs=nargs, help="experiment TOML file, e.g. experiments/fashion_mnist.toml")
        p.add_argument(
            "--set",
            action="append",
            metavar="SECTION.KEY=VALUE",
            help="override a config key; the value is read as TOML (repeatable)",
        )
        p.add_argument("--logdir", metavar="DIR", help="log root instead of the config's logging.root")

    p = sub.add_parser("run", parents=[verbose], help="train one experiment and write its run directory")
    add_config_args(p, nargs="?")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run from its last finished epoch, in its own directory",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "sweep", parents=[verbose], help="keras-tuner search over the config's [sweep.space]; resumes if run again"
    )
    add_config_args(p)
    p.add_argument("--overwrite", action="store_true", help="delete the earlier sweep of this config first")
    p.add_argument(
        "--final",
        action="store_true",
        help="retrain the best configuration on train+validation and report test accuracy",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="validate, print the space and trial count, estimate the time; train nothing",
    )
    p.add_argument(
        "--workers", type=positive_int, metavar="N", help="run a chief oracle and N worker processes on this machine"
    )
    p.add_argument("--role", choices=["chief", "worker"], help="run one side of a distributed sweep alone")
    p.add_argument("--oracle", metavar="HOST:PORT", help="the chief's address, with --role")
    p.set_defaults(func=cmd_sweep)

    from tfsoftmax.analysis import compare

    p = sub.add_parser(
        "compare", parents=[verbose], help="tables and PNG figures comparing finished runs, experiments or sweeps"
    )
    compare.configure_parser(p)
    p.set_defaults(func=compare.command)

    from tfsoftmax.bench import command as bench

    p = sub.add_parser(
        "bench",
        parents=[verbose],
        help="seconds per epoch against the NumPy floor, the eager loop and plain fit; --costs: what a naive loss and "
        "many classes cost; --goals: the speed goals as ratios; --reproduce: packed trials against standalone runs",
    )
    bench.configure_parser(p)
    p.set_defaults(func=_loads_tensorflow(bench.command))

    p = sub.add_parser(
        "numerics", parents=[verbose], help="where exp and the naive softmax break in float64/32, bfloat16, float16"
    )
    p.add_argument("--dtype", default="float32", help="format for the softmax([100, 0]) check (default: float32)")
    p.set_defaults(func=cmd_numerics)

    p = sub.add_parser(
        "board",
        parents=[verbose],
        help="start TensorBoard on a run, experiment, sweep or log root; print the dashboard's URL",
    )
    root = LoggingConfig().root  # the config's default log root, not a second copy of it
    p.add_argument(
        "path",
        nargs="?",
        default=root,
        help="a run directory or an experiment folder (opens on the scalars), a sweep folder (on "
        f"HParams) or a log root (default: {root})",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=6006, help="port (default: 6006; 0 picks a free one)")
    p.set_defaults(func=cmd_board)
    return parser


def main(argv: Sequence[str] | None = None, terminal: bool = False) -> int:
    """Run one subcommand; a TfsoftmaxError becomes one line on stderr and its exit code. `terminal` says
    the process is the command line itself, whose stderr it may filter; in-process callers keep theirs."""
    from tfsoftmax.display.terminal import verbose_requested

    args = build_parser().parse_args(argv)
    args.verbose = verbose_requested(args.verbose)
    args.terminal = terminal
    try:
        return args.func(args)
    except TfsoftmaxError as e:
        print(f"tfsoftmax: error: {printable(str(e))}", file=sys.stderr)  # one line, whatever it quotes
        return e.exit_code
    except KeyboardInterrupt:  # between epochs or trials: everything finished so far is already on disk
        print("tfsoftmax: error: interrupted; run the same command again to resume", file=sys.stderr)
        return INTERRUPTED


def main_entry() -> None:
    """Console-script and `python -m tfsoftmax` entry point."""
    sys.exit(main(terminal=True))
