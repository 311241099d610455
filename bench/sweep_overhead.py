"""What does an experiment add to its runs? Wall time of an experiment minus its runs' training time, per trial.

An experiment of N one-epoch trials (a grid over the learning rate with seeds) is created and run by one worker
in this process (torch imported once, as a `--join` worker does), into a temporary experiment and run store.
Overhead per trial = (wall time from creating the experiment to the worker's end - the sum of the runs'
train_seconds) / N: loading the split, building the model, the test evaluation, checkpoints, the run store and
Optuna. The reference, measured in the same process just before: the same N configs trained by plain
`core.training.loop.run` calls (what `python -m core.train` does per run), whose overhead per run the experiment
cannot avoid; the difference is what the experiment machinery (Optuna study, claiming, monitor, report) costs.
The target is under 1 s per trial.

    MNIST_STUDIO_DATA=/path/to/data python bench/sweep_overhead.py        # real MNIST, 8 trials
    python bench/sweep_overhead.py --trials 4                              # the tiny synthetic data
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.machine import cpu_model  # noqa: E402
from core.data.datasets import is_available  # noqa: E402
from core.experiments import store  # noqa: E402
from core.experiments.spec import ExperimentSpec  # noqa: E402
from core.experiments.worker import run_worker  # noqa: E402
from core.store import runs  # noqa: E402
from core.store.paths import data_root  # noqa: E402
from core.training.presets import get_preset  # noqa: E402
from core.training.session import run  # noqa: E402


def train_seconds(names: list[str]) -> float:
    return sum((runs.read_json(runs.run_dir_for(n) / "summary.json") or {}).get("train_seconds", 0.0) for n in names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=8, help="trials (an even number: lr x 2 seeds)")
    parser.add_argument("--subset", type=int, default=2000, help="training images per trial")
    parser.add_argument("--preset", default="cnn2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MNIST_STUDIO_RUNS"] = str(Path(tmp) / "runs")
        os.environ["MNIST_STUDIO_EXPERIMENTS"] = str(Path(tmp) / "experiments")
        dataset = "mnist"
        if not is_available(dataset, data_root()):
            from tests.idx import write_dataset
            write_dataset(Path(tmp) / "data", "MNIST")
            os.environ["MNIST_STUDIO_DATA"] = str(Path(tmp) / "data")
            print("# (the real MNIST is not under $MNIST_STUDIO_DATA: tiny synthetic data)")
        base = get_preset(args.preset).config(dataset, epochs=1, subset=args.subset).to_dict()
        lrs = [f"{1e-3 * (i + 1):g}" for i in range(max(1, args.trials // 2))]
        spec = ExperimentSpec(name="bench", dataset=dataset, base=base, grid={"lr": lrs}, repeats=2).validate()

        started = time.perf_counter()  # the reference: the same trials as plain runs
        names = []
        for i, point in enumerate(spec.grid_points()):
            config = spec.trial_config(point)
            names.append(f"plain-{i}")
            runs.RunWriter.create(runs.run_dir_for(names[-1]), config.to_dict(), state="running")
            run(config, runs.run_dir_for(names[-1]))
        plain_wall = time.perf_counter() - started
        plain = (plain_wall - train_seconds(names)) / len(names)

        started = time.perf_counter()
        store.create_experiment(spec)
        run_worker("bench", log=lambda line: None)
        wall = time.perf_counter() - started
        trial_names = [f"bench-t{i:03d}" for i in range(spec.n_trials())]
        per_trial = (wall - train_seconds(trial_names)) / spec.n_trials()
    print(f"# Experiment overhead ({cpu_model()}, {os.cpu_count()} cores, {args.preset}, {spec.n_trials()} trials "
          f"of 1 epoch on {args.subset} images)")
    print(f"plain runs (reference): {plain:.2f} s per run outside training")
    print(f"experiment:             {per_trial:.2f} s per trial outside training ({per_trial / plain:.2f}x the "
          f"reference; Optuna and the worker add {per_trial - plain:+.2f} s); target under 1 s: "
          f"{'met' if per_trial < 1 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
