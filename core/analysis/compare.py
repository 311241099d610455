"""Two models on the same test set: agreement, McNemar's test, comparison tables (pure numpy).

Naming: model A is the reference, model B the candidate. ``b01`` counts images A gets right
and B gets wrong, ``b10`` images A gets wrong and B gets right.
"""

from __future__ import annotations

import csv
import io
import math

import numpy as np

from core.analysis.metrics import as_labels

EXACT_BELOW = 25  # McNemar: exact binomial test when b01 + b10 is below this, else chi-square
ALPHA = 0.05  # significance level used for the wording of describe_mcnemar


def _same_length(**arrays) -> list[np.ndarray]:
    """Validate non-empty 1-D label arrays of one common length and return them as int64."""
    out = [as_labels(a, name) for name, a in arrays.items()]
    lengths = {a.shape[0] for a in out}
    if len(lengths) != 1:
        sizes = ", ".join(f"{name}={a.shape[0]}" for name, a in zip(arrays, out, strict=True))
        raise ValueError(f"arrays differ in length: {sizes}")
    if out[0].size == 0:
        raise ValueError("arrays are empty")
    return out


def agreement_rate(preds_a, preds_b) -> float:
    """Fraction of images on which A and B predict the same class."""
    a, b = _same_length(preds_a=preds_a, preds_b=preds_b)
    return float(np.mean(a == b))


def fixed_and_broken(labels, preds_a, preds_b) -> tuple[np.ndarray, np.ndarray]:
    """Indices B gets right and A wrong ("fixed"), and A right and B wrong ("broken")."""
    y, a, b = _same_length(labels=labels, preds_a=preds_a, preds_b=preds_b)
    a_right, b_right = a == y, b == y
    return np.flatnonzero(~a_right & b_right), np.flatnonzero(a_right & ~b_right)


def exact_binomial_p(b01: int, b10: int) -> float:
    """Exact two-sided McNemar p: 2 * P(X <= min(b01, b10)), X ~ Binomial(b01 + b10, 1/2), <= 1."""
    n = b01 + b10
    tail = sum(math.comb(n, i) for i in range(min(b01, b10) + 1))
    return min(1.0, 2 * tail / 2**n)


def chi2_cc(b01: int, b10: int) -> float:
    """McNemar chi-square with continuity correction, max(0, |b01 - b10| - 1)^2 / (b01 + b10)."""
    return max(0, abs(b01 - b10) - 1) ** 2 / (b01 + b10)


def mcnemar(labels, preds_a, preds_b) -> dict:
    """McNemar's test on images where just one model is right: counts, statistic, p, method."""
    fixed, broken = fixed_and_broken(labels, preds_a, preds_b)
    b01, b10 = int(broken.size), int(fixed.size)
    if b01 + b10 < EXACT_BELOW:
        # statistic: the smaller count, the binomial tail the p-value is taken from
        statistic, p, method = float(min(b01, b10)), exact_binomial_p(b01, b10), "exact-binomial"
    else:
        statistic = chi2_cc(b01, b10)
        # survival function of chi-square with 1 degree of freedom
        p, method = math.erfc(math.sqrt(statistic / 2)), "chi-square-cc"
    return {"b01": b01, "b10": b10, "statistic": statistic, "p_value": p, "method": method}


def format_p(p: float) -> str:
    """A p-value as short text: two significant digits, or ``< 1e-300`` once it underflows."""
    return "p < 1e-300" if p < 1e-300 else f"p = {p:.2g}"


def describe_mcnemar(result: dict, name_a: str, name_b: str) -> str:
    """One or two sentences saying which model is better by McNemar's test, and how surely."""
    b01, b10, p = result["b01"], result["b10"], result["p_value"]
    n = b01 + b10
    if n == 0:
        return (
            f"{name_a} and {name_b} are right on exactly the same images, "
            "so there is no difference to test."
        )
    counts = f"({name_b} right {b10}, {name_a} right {b01})"
    if p >= ALPHA:
        return (
            f"No significant difference between {name_a} and {name_b}: of the {n} images "
            f"where only one of them is right {counts}, a split at least this uneven would "
            f"arise by chance with {format_p(p)}, not below {ALPHA}."
        )
    better, worse = (name_b, name_a) if b10 > b01 else (name_a, name_b)
    return (
        f"{better} is better than {worse} on {n} images where they disagree {counts}; "
        f"a difference this large would arise by chance with {format_p(p)}."
    )


def confusion_difference(conf_a, conf_b) -> np.ndarray:
    """Signed int64 difference of two confusion matrices, B minus A."""
    a, b = np.asarray(conf_a), np.asarray(conf_b)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"need two square matrices of one shape, got {a.shape} and {b.shape}")
    return b.astype(np.int64) - a.astype(np.int64)


def _is_missing(value) -> bool:
    """True for None and float NaN, the values a comparison table leaves out."""
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def best_per_column(table: list[dict], columns: dict[str, str]) -> dict[str, object]:
    """Best value of each column ("max" or "min"), skipping None/NaN; None if a column has none."""
    best = {}
    for column, direction in columns.items():
        if direction not in ("max", "min"):
            raise ValueError(f"direction for {column!r} must be 'max' or 'min', got {direction!r}")
        values = [row.get(column) for row in table if not _is_missing(row.get(column))]
        pick = max if direction == "max" else min
        best[column] = pick(values) if values else None
    return best


def _cell_text(value) -> str:
    """A Markdown cell: blank for None/NaN, floats to 4 significant digits, pipes escaped."""
    if _is_missing(value):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def comparison_markdown(table: list[dict], columns: list[str]) -> str:
    """A Markdown table of ``columns`` for each row of ``table`` (missing cells blank)."""
    lines = [
        "| " + " | ".join(_cell_text(c) for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in table:
        lines.append("| " + " | ".join(_cell_text(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def comparison_csv(table: list[dict], columns: list[str]) -> str:
    """CSV text of ``columns`` for each row of ``table``: header, full precision, None/NaN blank."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in table:
        writer.writerow(["" if _is_missing(row.get(c)) else row.get(c) for c in columns])
    return buffer.getvalue()
