"""bench/speed_ratios.py: times to accuracy in R and the issue's target table, on hand-made curves."""

from __future__ import annotations

import pytest

from bench.speed_ratios import (
    TARGETS,
    Target,
    mean_time_to,
    seconds_per_epoch,
    target_rows,
    threshold_table,
    time_to,
)

REFERENCE = [(20.0, 0.85), (40.0, 0.88)]  # R = 20 s an epoch


def run(curve, final, seconds):
    return {"curve": curve, "final": final, "seconds": seconds}


def test_r_is_the_mean_epoch_of_the_reference():
    assert seconds_per_epoch(REFERENCE) == 20.0
    with pytest.raises(ValueError):
        seconds_per_epoch([])


def test_time_to_takes_the_first_epoch_at_or_above_the_threshold():
    curve = [(10.0, 0.90), (20.0, 0.94), (30.0, 0.93), (40.0, 0.95)]
    assert time_to(curve, 0.94) == 20.0
    assert time_to(curve, 0.90) == 10.0
    assert time_to(curve, 0.96) is None


def test_mean_over_seeds_needs_every_seed_to_reach_it():
    a = run([(10.0, 0.92), (20.0, 0.94)], 0.94, 20.0)
    b = run([(12.0, 0.93), (24.0, 0.939)], 0.939, 24.0)
    assert mean_time_to([a, b], 0.92) == 11.0
    assert mean_time_to([a, b], 0.94) is None  # seed b never got there


def test_threshold_table_prints_times_in_r_and_the_complete_run():
    runs = [run([(30.0, 0.90), (60.0, 0.93)], 0.925, 60.0), run([(50.0, 0.92), (100.0, 0.94)], 0.935, 100.0)]
    lines = threshold_table("fashion-mnist", 20.0, {"fast": runs})
    rows = {line.split(" | ")[0]: line for line in lines}
    assert rows["| 90.00%"].endswith("| 2.0R (40 s) |")  # mean of 30 s and 50 s
    assert rows["| 93.00%"].endswith("| 4.0R (80 s) |")  # mean of 60 s and 100 s
    assert rows["| 94.00%"].endswith("| not reached |")  # seed 0 never got there
    assert "93.00% after 4.0R (80 s)" in lines[-1]  # mean final accuracy and mean training time


def test_target_rows_judge_mean_accuracy_and_time_in_r():
    target = Target("mnist", ("fast_mnist", "fast"), 0.996, 2.0, "MNIST fast-family")
    quick_good = [run([(30.0, 0.996)], 0.9965, 30.0), run([(34.0, 0.996)], 0.9957, 34.0)]  # 99.61%, 1.6R
    rows = target_rows({"mnist": 20.0}, {"mnist": {"fast": quick_good}}, (target,))
    assert rows[-1].endswith("| met |") and "`fast` 99.61% (99.65%, 99.57%) after 1.6R (32 s)" in rows[-1]
    too_slow = [run([(44.0, 0.997)], 0.997, 44.0)]  # 2.2R
    rows = target_rows({"mnist": 20.0}, {"mnist": {"fast": quick_good, "fast_mnist": too_slow}}, (target,))
    assert "`fast_mnist`" in rows[-1] and rows[-1].endswith("| NOT met |")  # the first listed preset is judged
    too_weak = [run([(20.0, 0.995)], 0.995, 20.0)]
    assert target_rows({"mnist": 20.0}, {"mnist": {"fast": too_weak}}, (target,))[-1].endswith("| NOT met |")


def test_a_target_whose_preset_did_not_run_says_how_to_run_it():
    target = Target("fashion-mnist", ("best",), 0.95, 40.0, "record")
    rows = target_rows({"fashion-mnist": 20.0}, {"fashion-mnist": {"fast": []}}, (target,))
    assert "not run (add --presets best --datasets fashion-mnist)" in rows[-1]


def test_the_record_row_judges_best_and_else_the_gpu_record_preset():
    record = next(t for t in TARGETS if t.label == "Fashion-MNIST record preset")
    on_gpu = {"fashion-mnist": {"fast": [], "record_gpu": [run([(89.5, 0.9525)], 0.9525, 89.5)]}}
    row = target_rows({"fashion-mnist": 7.17}, on_gpu, (record,))[-1]
    assert "`record_gpu` 95.25%" in row and "12.5R" in row and row.endswith("| met |")
    both = {"fashion-mnist": {**on_gpu["fashion-mnist"], "best": [run([(38.0, 0.9462)], 0.9462, 38.0)]}}
    row = target_rows({"fashion-mnist": 7.17}, both, (record,))[-1]
    assert "`best` 94.62%" in row and row.endswith("| NOT met |")
