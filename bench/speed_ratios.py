"""Training times as ratios to R, the reference pipeline's seconds per epoch measured in the same run.

Seconds do not carry from machine to machine (the same `fast` run trains 2.5x slower on one 2-core VM than on
another); ratios measured side by side do. Pure functions over hand-made or measured curves: a curve is the
list of (cumulative training seconds, test accuracy) after each epoch; a run is a dict with its `curve`, the
`final` test accuracy the run reports (its validation-selected weights) and its training `seconds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import mean

THRESHOLDS = {"fashion-mnist": (0.90, 0.92, 0.93, 0.935, 0.94, 0.945, 0.95),
              "mnist": (0.99, 0.995, 0.996, 0.997, 0.9975)}


@dataclass(frozen=True)
class Target:
    """A complete run of one of `presets` on `dataset` scores at least `accuracy` within `within_r` R."""

    dataset: str
    presets: tuple[str, ...]  # the first of these the benchmark ran is the one judged
    accuracy: float
    within_r: float
    label: str


# issue #20's training targets (mean of the seeds run; the browser rows are bench/predict_latency.py's and
# bench/cold_start.py's)
TARGETS = (
    Target("fashion-mnist", ("fast",), 0.940, 6.0, "Fashion-MNIST `fast`"),
    Target("fashion-mnist", ("best", "record_gpu"), 0.950, 40.0, "Fashion-MNIST record preset"),
    Target("mnist", ("fast_mnist", "fast"), 0.996, 2.0, "MNIST `fast`-family"),
    Target("mnist", ("best",), 0.9975, 10.0, "MNIST record preset"),
)


def seconds_per_epoch(curve: list[tuple[float, float]]) -> float:
    """R: the mean training seconds of one epoch of `curve`."""
    if not curve:
        raise ValueError("R needs at least one timed epoch")
    return curve[-1][0] / len(curve)


def time_to(curve: list[tuple[float, float]], threshold: float) -> float | None:
    """Training seconds at the first epoch whose test accuracy reaches `threshold` (None: never)."""
    return next((t for t, acc in curve if acc >= threshold), None)


def mean_time_to(runs: list[dict], threshold: float) -> float | None:
    """Mean over the runs of their time to `threshold`; None unless every run reached it."""
    times = [time_to(run["curve"], threshold) for run in runs]
    return None if not times or None in times else mean(times)


def in_r(seconds: float | None, r: float) -> str:
    """'2.4R (53 s)', or 'not reached'."""
    return "not reached" if seconds is None else f"{seconds / r:.1f}R ({seconds:.0f} s)"


def summary(runs: list[dict]) -> tuple[float, float]:
    """(mean final accuracy, mean training seconds) of complete runs."""
    return mean(run["final"] for run in runs), mean(run["seconds"] for run in runs)


def threshold_table(dataset: str, r: float, results: dict[str, list[dict]]) -> list[str]:
    """Markdown: per preset, the time to each accuracy in R (mean over seeds), then the complete run."""
    names = list(results)
    lines = [f"| {dataset}: test accuracy | " + " | ".join(f"`{n}`" for n in names) + " |",
             "|---" + "|---:" * len(names) + "|"]
    for threshold in THRESHOLDS[dataset]:
        cells = [in_r(mean_time_to(results[n], threshold), r) for n in names]
        lines.append(f"| {threshold:.2%} | " + " | ".join(cells) + " |")
    finals = []
    for n in names:
        accuracy, seconds = summary(results[n])
        finals.append(f"{accuracy:.2%} after {in_r(seconds, r)}")
    lines.append("| complete run (validation-selected) | " + " | ".join(finals) + " |")
    return lines


def judged_preset(target: Target, results: dict[str, dict[str, list[dict]]]) -> str | None:
    """The first of the target's presets that was run on its dataset."""
    ran = results.get(target.dataset, {})
    return next((p for p in target.presets if p in ran), None)


def target_rows(r_by_dataset: dict[str, float], results: dict[str, dict[str, list[dict]]],
                targets: tuple[Target, ...] = TARGETS) -> list[str]:
    """Markdown: each target with what this run measured and 'met' or 'NOT met' (or why it was not judged)."""
    lines = ["| target | measured (mean of seeds) | |", "|---|---|---|"]
    for target in targets:
        want = f"{target.label}: {target.accuracy:.2%} within {target.within_r:g}R"
        preset = judged_preset(target, results)
        if preset is None:
            lines.append(f"| {want} | not run (add --presets {target.presets[0]} --datasets {target.dataset}) | |")
            continue
        runs, r = results[target.dataset][preset], r_by_dataset[target.dataset]
        accuracy, seconds = summary(runs)
        met = accuracy >= target.accuracy and seconds <= target.within_r * r
        seeds = ", ".join(f"{run['final']:.2%}" for run in runs)
        lines.append(f"| {want} | `{preset}` {accuracy:.2%} ({seeds}) after {in_r(seconds, r)} | "
                     f"{'met' if met else 'NOT met'} |")
    return lines
