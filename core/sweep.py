"""The experiments command line: grids and searches over TrainConfig fields, run by workers on one Optuna study.

    python -m core.sweep --name NAME --dataset D [--preset P | --model M] [TrainConfig flags as the base]
        --grid FIELD=V1,V2 (repeatable; model.ARG=...) --repeats K | --sampler random|tpe --trials N
        --space FIELD=LOW:HIGH[:log] (repeatable) [--prune] [--storage URL]
    python -m core.sweep --name NAME --join [--storage URL]   another worker on the same experiment (resumes a
                                                               stop); with a database URL, from any machine
    python -m core.sweep --name NAME --report [--json]

Creating an experiment also runs a worker in this process. The last line printed is the experiment's folder
(except for --report --json, which prints one JSON object).
"""

from __future__ import annotations

import argparse
import json
import sys

from core.experiments import report as reporting
from core.experiments import store
from core.experiments.spec import SAMPLERS, ExperimentError, ExperimentSpec, parse_grid, parse_space
from core.experiments.worker import run_worker
from core.train import config_from_args
from core.training.config import ConfigError, add_config_arguments
from core.training.presets import PRESETS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.sweep", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run an experiment: a grid of TrainConfig values (with repeats as seeds) or a random/TPE "
                    "search, each trial a normal run named NAME-tNNN. The last line printed is the experiment's "
                    "folder.")
    parser.add_argument("--name", required=True, help="experiment name (letters, digits, '.', '_', '-')")
    parser.add_argument("--join", action="store_true", help="add a worker to an existing experiment (resumes it)")
    parser.add_argument("--report", action="store_true", help="print the experiment's results")
    parser.add_argument("--json", action="store_true", help="with --report: one JSON object")
    parser.add_argument("--preset", choices=tuple(PRESETS), help="the base config's preset")
    parser.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                        help="values to try (repeatable; model arguments as model.ARG=V1,V2)")
    parser.add_argument("--repeats", type=int, default=1, help="grid: seeds 0..K-1 as one more axis "
                        "(folds when the base has --folds above 1)")
    parser.add_argument("--sampler", choices=SAMPLERS, help="grid (default with --grid), random (default with "
                        "--space) or tpe")
    parser.add_argument("--trials", type=int, help="random/tpe: how many trials")
    parser.add_argument("--space", action="append", default=[], metavar="FIELD=LOW:HIGH[:log]",
                        help="random/tpe: a range to search (repeatable)")
    parser.add_argument("--prune", action="store_true", help="median pruner on validation accuracy per epoch")
    parser.add_argument("--storage", help="study storage URL, e.g. postgresql+psycopg://USER@HOST/DB "
                        "(default: an Optuna journal file in the experiment's folder)")
    parser.add_argument("--title", default="", help="a one-line description")
    add_config_arguments(parser)
    return parser


def _collect(items: list[str], parse, what: str) -> dict:
    found = {}
    for text in items:
        name, value = parse(text)
        if name in found:
            raise ExperimentError(f"{name}: given twice in {what}")
        found[name] = value
    return found


def spec_from_args(args: argparse.Namespace) -> ExperimentSpec:
    """The validated spec a command line asks for (base = preset, then TrainConfig flags)."""
    if args.dataset is None:
        raise ExperimentError("dataset: give --dataset to create an experiment")
    try:
        base = config_from_args(args)
    except (ConfigError, ValueError) as err:
        raise ExperimentError(f"base: {err}") from None
    grid, space = _collect(args.grid, parse_grid, "--grid"), _collect(args.space, parse_space, "--space")
    sampler = args.sampler or ("random" if space else "grid")
    spec = ExperimentSpec(name=args.name, dataset=base.dataset, base=base.to_dict(), grid=grid,
                          repeats=args.repeats, sampler=sampler, trials=args.trials, space=space, prune=args.prune,
                          storage=args.storage, title=args.title)
    return spec.validate()


def print_report(result: dict) -> None:
    counts = ", ".join(f"{v} {k}" for k, v in result["counts"].items() if v)
    print(f"{result['name']}: {result['n_trials']} trials ({counts or 'none yet'})")
    ranked = sorted((t for t in result["trials"] if t["val_acc"] is not None), key=lambda t: -t["val_acc"])
    for t in ranked[:10]:
        test = f" test {t['test_acc']:.4f}" if t["test_acc"] is not None else ""
        print(f"  #{t['number']:<3} {t['state']:<9} val {t['val_acc']:.4f}{test}  {t['params']}  {t['run']}")
    for line in result["sentences"]:
        print(line)
    if result["importances"]:
        print("importances: " + ", ".join(f"{k} {v:.2f}" for k, v in result["importances"].items()))
    if result["best"]:
        print(f"best (by validation accuracy): trial {result['best']['number']} {result['best']['params']}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.report:
            result = reporting.report(args.name)
            if args.json:
                print(json.dumps(result))
                return 0
            print_report(result)
        elif args.join:
            if args.storage:  # a worker on another machine: the spec comes from the database
                store.adopt_from_storage(args.name, args.storage)
            store.load_spec(args.name)
            store.clear_stop(args.name)
            run_worker(args.name)
        else:
            folder = store.create_experiment(spec_from_args(args))
            print(f"{args.name}: {store.load_spec(args.name).n_trials()} trials queued in {folder}", file=sys.stderr)
            run_worker(args.name)
    except (ExperimentError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a database that cannot be reached or refuses us: one line, no traceback
        if not type(err).__module__.startswith(("sqlalchemy", "psycopg")):
            raise
        print(f"error: storage: cannot use the database ({type(err).__name__}: {str(err).splitlines()[0]})",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the running trial is queued again; --join resumes", file=sys.stderr)
        return 130
    if not args.report:
        counts = reporting.report(args.name)["counts"]
        print(", ".join(f"{v} {k}" for k, v in counts.items() if v), file=sys.stderr)
    print(store.experiment_dir(args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
