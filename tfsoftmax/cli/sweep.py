"""`tfsoftmax sweep`: a keras-tuner search over the config's space (or one side of a distributed one), its
ranked trials and where the results went."""

from __future__ import annotations

import argparse

from tfsoftmax.cli import common
from tfsoftmax.config.loader import require_space
from tfsoftmax.errors import CONFIG_ERROR, TfsoftmaxError

HELP = "keras-tuner search over the config's [sweep.space]; resumes if run again"


def configure_parser(p: argparse.ArgumentParser) -> None:
    """The `sweep` subcommand's arguments."""
    common.add_config_args(p)
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
        "--workers",
        type=common.positive_int,
        metavar="N",
        help="run a chief oracle and N worker processes on this machine",
    )
    p.add_argument("--role", choices=["chief", "worker"], help="run one side of a distributed sweep alone")
    p.add_argument("--oracle", metavar="HOST:PORT", help="the chief's address, with --role")


def _check_roles(args: argparse.Namespace) -> None:
    """--role and --oracle together, and without the flags only the launching command reads."""
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


def command(args: argparse.Namespace) -> int:
    """Search (or estimate with --dry-run, or serve one --role), print what came of it; 0 on success."""
    config = common.config(args)
    _check_roles(args)
    require_space(config, args.config)
    common.quiet_tensorflow(args)
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
    from tfsoftmax.rundir.layout import RESULTS_CSV, RESULTS_JSON
    from tfsoftmax.sweeps.results import format_table
    from tfsoftmax.sweeps.tune import sweep

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
