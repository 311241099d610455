"""Tests for core.compare against values worked out by hand."""

import csv
import io

import numpy as np
import pytest

from core.analysis.compare import (
    agreement_rate,
    best_per_column,
    comparison_csv,
    comparison_markdown,
    confusion_difference,
    describe_mcnemar,
    fixed_and_broken,
    mcnemar,
)


def outcomes(b01: int, b10: int, both_right: int = 5, both_wrong: int = 3):
    """Labels and two prediction arrays with the given McNemar counts (class 0 is right)."""
    a_right = [1] * b01 + [0] * b10 + [1] * both_right + [0] * both_wrong
    b_right = [0] * b01 + [1] * b10 + [1] * both_right + [0] * both_wrong
    labels = np.zeros(len(a_right), dtype=np.int64)
    return labels, 1 - np.array(a_right), 1 - np.array(b_right)


def test_agreement_rate():
    assert agreement_rate([0, 1, 2, 3], [0, 1, 0, 0]) == 0.5
    assert agreement_rate([4, 4], [4, 4]) == 1.0


def test_fixed_and_broken_and_swap():
    labels = [0, 1, 2, 3, 4]
    a = [0, 1, 0, 0, 4]  # right on 0, 1, 4
    b = [0, 0, 2, 3, 1]  # right on 0, 2, 3
    fixed, broken = fixed_and_broken(labels, a, b)
    np.testing.assert_array_equal(fixed, [2, 3])  # B right, A wrong
    np.testing.assert_array_equal(broken, [1, 4])  # A right, B wrong
    fixed_ba, broken_ba = fixed_and_broken(labels, b, a)
    np.testing.assert_array_equal(fixed_ba, broken)
    np.testing.assert_array_equal(broken_ba, fixed)


def test_mcnemar_counts_only_images_where_one_model_is_right():
    # Both wrong with different predictions (image 1) counts for neither b01 nor b10.
    result = mcnemar([0, 0, 0], [0, 1, 0], [0, 2, 1])
    assert (result["b01"], result["b10"]) == (1, 0)


@pytest.mark.parametrize(
    "b01, b10, p",
    [
        # 2 * P(X <= 2), X ~ Bin(10, 1/2) = 2 * (1 + 10 + 45) / 1024 = 112/1024
        (2, 8, 112 / 1024),
        # 2 * (1 + 10) / 1024 = 22/1024
        (1, 9, 22 / 1024),
        # 2 * (1 + 6 + 15 + 20) / 64 = 84/64 > 1, capped at 1
        (3, 3, 1.0),
        # 2 * P(X <= 0), X ~ Bin(24, 1/2) = 2 / 2**24: still exact at 24 discordant pairs
        (0, 24, 2 / 2**24),
        # nothing to test
        (0, 0, 1.0),
    ],
)
def test_mcnemar_exact_binomial_small_counts(b01, b10, p):
    result = mcnemar(*outcomes(b01, b10))
    assert result["method"] == "exact-binomial"
    assert (result["b01"], result["b10"]) == (b01, b10)
    assert result["statistic"] == min(b01, b10)
    assert result["p_value"] == pytest.approx(p, rel=1e-12)


@pytest.mark.parametrize(
    "b01, b10, statistic, p",
    [
        # (|18 - 7| - 1)^2 / 25 = 100/25 = 4 = 2^2, so p = P(|Z| > 2) = 0.0455003 (normal table);
        # 25 discordant pairs is the first count that uses the chi-square.
        (7, 18, 4.0, 0.04550026389635842),
        # (|39 - 10| - 1)^2 / 49 = 784/49 = 16 = 4^2, so p = P(|Z| > 4) = 6.334248e-05
        (10, 39, 16.0, 6.334248366623996e-05),
        # equal counts: the corrected difference is max(0, 0 - 1) = 0, p = 1
        (20, 20, 0.0, 1.0),
    ],
)
def test_mcnemar_chi_square_large_counts(b01, b10, statistic, p):
    result = mcnemar(*outcomes(b01, b10))
    assert result["method"] == "chi-square-cc"
    assert result["statistic"] == pytest.approx(statistic)
    assert result["p_value"] == pytest.approx(p, rel=1e-9)


@pytest.mark.parametrize("b01, b10", [(2, 8), (10, 39)])
def test_mcnemar_symmetric_in_a_and_b(b01, b10):
    labels, a, b = outcomes(b01, b10)
    ab, ba = mcnemar(labels, a, b), mcnemar(labels, b, a)
    assert (ba["b01"], ba["b10"]) == (ab["b10"], ab["b01"])
    assert ba["p_value"] == ab["p_value"]
    assert ba["statistic"] == ab["statistic"]


def test_describe_mcnemar_significant_names_the_better_model():
    result = mcnemar(*outcomes(10, 39))
    assert describe_mcnemar(result, "A", "B") == (
        "B is better than A on 49 images where they disagree (B right 39, A right 10); "
        "a difference this large would arise by chance with p = 6.3e-05."
    )
    labels, a, b = outcomes(10, 39)
    swapped = mcnemar(labels, b, a)
    assert describe_mcnemar(swapped, "A", "B").startswith("A is better than B on 49 images")


def test_describe_mcnemar_not_significant():
    # p = 112/1024 = 0.109 >= 0.05
    text = describe_mcnemar(mcnemar(*outcomes(2, 8)), "cnn", "mlp")
    assert text.startswith("No significant difference between cnn and mlp")
    assert "(mlp right 8, cnn right 2)" in text
    assert "p = 0.11" in text
    assert "better" not in text


def test_describe_mcnemar_edge_cases():
    same = describe_mcnemar(mcnemar(*outcomes(0, 0)), "A", "B")
    assert "exactly the same images" in same
    # (3000 - 1)^2 / 3000 ~ 2998: erfc underflows to 0, reported as a bound.
    huge = describe_mcnemar(mcnemar(*outcomes(0, 3000)), "A", "B")
    assert "p < 1e-300" in huge
    assert huge.startswith("B is better than A")


def test_confusion_difference_b_minus_a_signed():
    a = np.array([[2, 1], [0, 3]], dtype=np.uint8)
    b = np.array([[3, 0], [1, 2]], dtype=np.uint8)
    diff = confusion_difference(a, b)
    np.testing.assert_array_equal(diff, [[1, -1], [1, -1]])  # no uint8 wrap-around
    with pytest.raises(ValueError, match="square"):
        confusion_difference(a, np.zeros((3, 3)))


TABLE = [
    {"name": "cnn", "accuracy": 0.99, "latency_ms": 2.0},
    {"name": "mlp", "accuracy": 0.97, "latency_ms": None},
    {"name": "lenet", "accuracy": None, "latency_ms": 1.5},
    {"name": "resnet", "accuracy": float("nan")},
]


def test_best_per_column_respects_direction_and_skips_missing():
    best = best_per_column(TABLE, {"accuracy": "max", "latency_ms": "min", "params": "max"})
    assert best == {"accuracy": 0.99, "latency_ms": 1.5, "params": None}
    assert best_per_column(TABLE, {"accuracy": "min"}) == {"accuracy": 0.97}
    with pytest.raises(ValueError, match="'max' or 'min'"):
        best_per_column(TABLE, {"accuracy": "highest"})


def test_comparison_markdown():
    table = TABLE[:3] + [{"name": "a|b", "accuracy": 0.5}]
    assert comparison_markdown(table, ["name", "accuracy", "latency_ms"]) == (
        "| name | accuracy | latency_ms |\n"
        "|---|---|---|\n"
        "| cnn | 0.99 | 2 |\n"
        "| mlp | 0.97 |  |\n"
        "| lenet |  | 1.5 |\n"
        "| a\\|b | 0.5 |  |\n"
    )


def test_comparison_csv_round_trips():
    table = TABLE[:3] + [{"name": "a,b", "accuracy": 0.123456789}]
    text = comparison_csv(table, ["name", "accuracy", "latency_ms"])
    assert text.splitlines()[0] == "name,accuracy,latency_ms"
    assert list(csv.reader(io.StringIO(text))) == [
        ["name", "accuracy", "latency_ms"],
        ["cnn", "0.99", "2.0"],
        ["mlp", "0.97", ""],
        ["lenet", "", "1.5"],
        ["a,b", "0.123456789", ""],  # full precision, comma quoted
    ]


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="differ in length"):
        mcnemar([0, 1], [0, 1], [0])
    with pytest.raises(ValueError, match="differ in length"):
        agreement_rate([0, 1], [0])
