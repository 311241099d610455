"""The training command line: `python -m core.train --preset fast --dataset fashion-mnist`.

Every TrainConfig field is a flag; `--start` trains a run the app prepared, `--resume` continues one.
The run lifecycle is core.training.session (the loop itself core.training.loop); this module parses, names and reports.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

import numpy as np

from core.analysis import projection_job
from core.data.datasets import DataUnavailableError
from core.models.cost import model_problems
from core.store import atomic, runs
from core.training.config import ConfigError, TrainConfig, add_config_arguments, overrides_from_args
from core.training.distributed import DistContext, RankZeroError, setup_distributed
from core.training.presets import PRESETS, get_preset
from core.training.session import run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.train",
        description="Train a model on MNIST or Fashion-MNIST into a run directory. The last line printed is "
                    "the run directory. Every TrainConfig field is a flag; a --preset fills them first.")
    parser.add_argument("--preset", choices=tuple(PRESETS), help="start from a named preset: "
                        + "; ".join(p.title for p in PRESETS.values()).replace("%", "%%"))
    parser.add_argument("--name", help="run name (default: time-dataset-model)")
    parser.add_argument("--runs-dir", type=Path, help="where to create the run (default: checkpoints/runs, "
                        "or $MNIST_STUDIO_RUNS)")
    parser.add_argument("--start", "--start-run", dest="start", type=Path, metavar="RUN_DIR",  # torchrun
                        # reads a bare --start as its own --start-method, hence the longer alias under it
                        help="train a run prepared by the app (its config.json is read; other flags are ignored)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue a stopped or interrupted run from its last.pt to its epoch count")
    parser.add_argument("--queue", action="store_true",
                        help="wait for a free training slot ($MNIST_STUDIO_MAX_CONCURRENT, default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_arguments(parser)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The config a command line asks for: preset (if any), then explicit flags; validated."""
    overrides = overrides_from_args(args)
    if args.preset:
        dataset = overrides.pop("dataset", TrainConfig.dataset)
        return get_preset(args.preset).config(dataset, **overrides)
    return TrainConfig.from_dict(overrides)


class ProgressBar:
    """A one-line progress bar on stderr (a line per epoch when stderr is not a terminal)."""

    def __init__(self, stream=sys.stderr):
        self.stream, self.tty = stream, stream.isatty()

    def __call__(self, event: dict) -> None:
        if event["type"] == "step" and self.tty:
            done = event["step"] / max(1, event["total_steps"])
            bar = "#" * int(30 * done)
            self.stream.write(f"\r[{bar:<30}] {done:6.1%} epoch {event['epoch']} loss {event['loss']:.4f} "
                              f"{event['images_per_sec']:,.0f} img/s ETA {event['eta']:.0f}s ")
            self.stream.flush()
        elif event["type"] == "epoch":
            val = f" val_acc {event['val_acc']:.4f}" if event["val_acc"] is not None else ""
            self.stream.write(("\r" if self.tty else "") + f"epoch {event['epoch']}: train_loss "
                              f"{event['train_loss']:.4f} train_acc {event['train_acc']:.4f}{val} "
                              f"({event['epoch_seconds']:.1f}s, {event['images_per_sec']:,.0f} img/s)\n")
            self.stream.flush()


def _fold_configs(config: TrainConfig) -> list[TrainConfig]:
    if config.folds <= 1:
        return [config]
    return [TrainConfig.from_dict({**config.to_dict(), "fold": k}) for k in range(config.folds)]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    bar = None if args.quiet else ProgressBar()
    dist = setup_distributed()  # under torchrun: join the job once, for every run (and fold) below
    clean = False
    try:
        code = _main(parser, args, bar, dist)
        clean = True
        return code
    except RankZeroError:  # rank 0 failed at reading or creating the run, and reports it
        return 2
    except DataUnavailableError as err:  # the run is marked failed with this message; Resume retries it
        print(f"python -m core.train: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    finally:
        dist.close(clean=clean)


def _main(parser: argparse.ArgumentParser, args: argparse.Namespace, bar, dist: DistContext) -> int:
    try:
        if args.resume or args.start:
            resume = bool(args.resume)
            # on rank 0: on several machines only its host has the run directory
            run_dir, config = dist.from_main(functools.partial(_existing_run, args.resume or args.start, resume))
            state, summary = run(config, run_dir, resume=resume, queue=args.queue, progress_bar=bar)
            _after(run_dir, state, dist)
            return _report(run_dir, state, summary)
        config = config_from_args(args)
        _check_model(config)
    except (ConfigError, ValueError, FileNotFoundError, runs.RunNameError, runs.ReadOnlyRunError) as err:
        return _refuse(err)
    root = Path(args.runs_dir or runs.runs_root())

    def new_name():
        root.mkdir(parents=True, exist_ok=True)
        return args.name or runs.new_run_name(config.dataset, config.model, root)
    base = dist.from_main(new_name)  # rank 0 names the run (its clock, its runs folder)
    results = []
    for fold_config in _fold_configs(config):
        name = base if config.folds <= 1 else f"{base}-fold{fold_config.fold + 1}"
        try:
            run_dir = runs.run_dir_for(name, root)
            dist.from_main(functools.partial(_create_run, run_dir, fold_config, args.queue))
        except (runs.RunNameError, FileExistsError, runs.ReadOnlyRunError) as err:
            return _refuse(err)
        state, summary = run(fold_config, run_dir, queue=args.queue, progress_bar=bar)
        _after(run_dir, state, dist)
        results.append((run_dir, state, summary))
    if config.folds > 1 and dist.is_main:
        _report_folds(results)
    return _report(*results[-1])


def _after(run_dir: Path, state: str, dist: DistContext) -> None:
    """Once a run completed and its training slot is free: its map of the test images, made in the background
    (core.analysis.projection_job; $MNIST_STUDIO_AUTO_PROJECTION=0 switches it off)."""
    if state == "completed" and dist.is_main:
        projection_job.start_after_training(run_dir)


def _refuse(err: Exception) -> int:
    """One line naming what is wrong, and exit status 2 (like argparse), nothing created."""
    print(f"python -m core.train: error: {err}", file=sys.stderr)
    return 2


def _check_model(config: TrainConfig) -> None:
    """Refuse model arguments the model cannot be built with, or that make it bigger than the bounds (counted
    on the meta device: no weights are made)."""
    problems = model_problems(config.model, config.model_kwargs)
    if problems:
        raise ConfigError(problems)


def _existing_run(text: str | Path, resume: bool) -> tuple[Path, TrainConfig]:
    """The run directory and config of `--start`/`--resume`, or a ValueError saying why it may not be trained."""
    run_dir = runs.resolve_run_path(text)
    runs.ensure_writable(run_dir)
    info = runs.read_run(run_dir)
    config = TrainConfig.from_dict(info.config or {})
    _check_model(config)
    if info.state == "completed":
        raise ValueError(f"run {run_dir.name} has completed; train a new run instead")
    has_last = (run_dir / "last.pt").is_file()
    if resume and not has_last:
        raise ValueError(f"run {run_dir.name} has no last.pt to continue from; to train it from the start, "
                         f"use --start {run_dir}")
    if not resume and has_last:
        raise ValueError(f"run {run_dir.name} has trained epochs (last.pt); continue it with --resume {run_dir}")
    return run_dir, config


def _create_run(run_dir: Path, config: TrainConfig, queue: bool) -> None:
    runs.RunWriter.create(run_dir, config.to_dict(), state="queued" if queue else "running")


def _report_folds(results: list) -> None:
    accs = [runs.read_json(d / "summary.json") or {} for d, _, _ in results]
    vals = [s.get("best_val_acc") for s in accs if s.get("best_val_acc") is not None]
    if vals:
        mean, std = float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
        cv = {"folds": len(vals), "val_accs": vals, "mean": mean, "std": std}
        for run_dir, _, _ in results:
            summary = runs.read_json(run_dir / "summary.json")
            if summary is not None:
                atomic.write_json(run_dir / "summary.json", {**summary, "cv": cv})
        print(f"cross-validation: validation accuracy {mean:.4f} +- {std:.4f} over {len(vals)} folds",
              file=sys.stderr)


def _report(run_dir: Path, state: str, summary: dict | None) -> int:
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if summary:
        print(f"{state}: test accuracy {summary['test_acc']:.4f}, macro F1 {summary['macro_f1']:.4f}, "
              f"{summary['train_seconds']:.1f}s training", file=sys.stderr)
    else:
        status = runs.read_json(Path(run_dir) / "status.json") or {}
        print(f"{state}: {status.get('error') or status.get('hint') or ''}", file=sys.stderr)
    print(run_dir)
    return 0 if state in ("completed", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
