"""What does an experiment add to its runs? Wall time of an experiment minus its runs' training time, per trial.

An experiment of N one-epoch trials (a grid over the learning rate with seeds) is created and run by one worker
in this process (torch imported once, as a `--join` worker does), into a temporary experiment and run store.
Overhead per trial = (wall time from creating the experiment to the worker's end - the sum of the runs'
train_seconds) / N: loading the split, building the model, the test evaluation, checkpoints, the run store and
Optuna. The reference, measured in the same process just before (after one untimed warm-up run, so that neither pays the
first load of the data and of torch's kernels): the same N configs trained by plain
`core.training.loop.run` calls (what `python -m core.train` does per run), whose overhead per run the experiment
cannot avoid; the difference is what the experiment machinery (Optuna study, claiming, monitor, report) costs.
The target is under 1 s per trial.

The breakdown times the phases of both by wrapping the methods that do them (measurement only): setting up the
run (the split cut and its normalisation, the model), validation after each epoch, the test evaluation (with
writing test_outputs.npz and the summary), the checkpoints, taking a training slot, the rest of the run's lifecycle
(status writes, events, the loop's bookkeeping) and, for the experiment, everything outside the runs (Optuna:
queueing, claiming, telling; the monitor).
It prints wall and CPU seconds: on a shared machine the gap between them is the time the process waited for a core.

    MNIST_STUDIO_DATA=/path/to/data python bench/sweep_overhead.py        # real MNIST, 8 trials
    python bench/sweep_overhead.py --trials 4                              # the tiny synthetic data
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.machine import cpu_model  # noqa: E402
from core.data.datasets import is_available  # noqa: E402
from core.experiments import store, worker  # noqa: E402
from core.experiments.spec import ExperimentSpec  # noqa: E402
from core.experiments.worker import run_worker  # noqa: E402
from core.store import runs  # noqa: E402
from core.store.paths import data_root  # noqa: E402
from core.training import loop, session  # noqa: E402
from core.training.presets import get_preset  # noqa: E402

PHASES = {  # phase: the methods whose time it is (outside training)
    "run setup (split, normalisation, model)": [(loop.Trainer, "__init__")],
    "validation (each epoch)": [(loop.Trainer, "validate")],
    "test evaluation and its files": [(loop.Trainer, "evaluate_test")],
    "checkpoints": [(loop.Trainer, "save_best"), (loop.Trainer, "save_last")],
}
SESSION_PHASES = {"loading the split (cached after the first run)": "load_split",
                  "taking a training slot": "wait_for_slot"}
SPENT: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # phase -> [wall, cpu] seconds


def timed(phase: str, method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return method(*args, **kwargs)
        finally:
            SPENT[phase][0] += time.perf_counter() - wall
            SPENT[phase][1] += time.process_time() - cpu
    return wrapper


def instrument() -> None:
    for phase, methods in PHASES.items():
        for owner, name in methods:
            setattr(owner, name, timed(phase, getattr(owner, name)))
    session.run = worker.run = timed("run", session.run)  # the whole run, as the reference and the worker call it
    for phase, name in SESSION_PHASES.items():  # functions session.run calls by the names it imported
        setattr(session, name, timed(phase, getattr(session, name)))


def breakdown(wall: float, cpu: float, trained: float, n: int) -> dict[str, tuple[float, float]]:
    """Per trial (wall, cpu) seconds of each phase outside training, from SPENT (then reset)."""
    rows = {phase: (SPENT[phase][0] / n, SPENT[phase][1] / n) for phase in [*PHASES, *SESSION_PHASES]}
    inside = sum(w for w, _ in rows.values())  # per trial
    rows["rest of the run (status, events, fit's bookkeeping)"] = ((SPENT["run"][0] - trained) / n - inside, None)
    rows["outside the runs (Optuna, claiming, monitor)"] = ((wall - SPENT["run"][0]) / n,
                                                            (cpu - SPENT["run"][1]) / n)
    SPENT.clear()
    return rows


def train_seconds(names: list[str]) -> float:
    return sum((runs.read_json(runs.run_dir_for(n) / "summary.json") or {}).get("train_seconds", 0.0) for n in names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=8, help="trials (an even number: lr x 2 seeds)")
    parser.add_argument("--subset", type=int, default=2000, help="training images per trial")
    parser.add_argument("--preset", default="cnn2")
    args = parser.parse_args()
    instrument()
    load = os.getloadavg()[0]
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

        n = spec.n_trials()
        warm_up = runs.run_dir_for("warm-up")  # first use of the data and of torch's kernels, timed by neither
        runs.RunWriter.create(warm_up, spec.trial_config(spec.grid_points()[0]).to_dict(), state="running")
        session.run(spec.trial_config(spec.grid_points()[0]), warm_up)
        SPENT.clear()
        started, cpu = time.perf_counter(), time.process_time()  # the reference: the same trials as plain runs
        names = []
        for i, point in enumerate(spec.grid_points()):
            config = spec.trial_config(point)
            names.append(f"plain-{i}")
            runs.RunWriter.create(runs.run_dir_for(names[-1]), config.to_dict(), state="running")
            session.run(config, runs.run_dir_for(names[-1]))
        plain_wall = time.perf_counter() - started
        plain = (plain_wall - train_seconds(names)) / n
        plain_rows = breakdown(plain_wall, time.process_time() - cpu, train_seconds(names), n)

        started, cpu = time.perf_counter(), time.process_time()
        store.create_experiment(spec)
        run_worker("bench", log=lambda line: None)
        wall = time.perf_counter() - started
        trial_names = [f"bench-t{i:03d}" for i in range(n)]
        per_trial = (wall - train_seconds(trial_names)) / n
        rows = breakdown(wall, time.process_time() - cpu, train_seconds(trial_names), n)
    print(f"# Experiment overhead ({cpu_model()}, {os.cpu_count()} cores, load average {load:.1f} -> "
          f"{os.getloadavg()[0]:.1f}, {args.preset}, {n} trials of 1 epoch on {args.subset} images)")
    print(f"{'seconds per trial outside training':<48} {'plain run':>16} {'experiment':>16}   (wall / cpu)")
    for phase, (wall_s, cpu_s) in rows.items():
        plain_wall_s, plain_cpu_s = plain_rows.get(phase, (None, None))

        def cell(w, c):
            return "-" if w is None else f"{w:.2f} / {c:.2f}" if c is not None else f"{w:.2f}"
        print(f"  {phase:<46} {cell(plain_wall_s, plain_cpu_s):>16} {cell(wall_s, cpu_s):>16}")
    print(f"plain runs (reference): {plain:.2f} s per run outside training")
    print(f"experiment:             {per_trial:.2f} s per trial outside training ({per_trial / plain:.2f}x the "
          f"reference; Optuna and the worker add {per_trial - plain:+.2f} s); target under 1 s: "
          f"{'met' if per_trial < 1 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
