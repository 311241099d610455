"""A model's ten probabilities as plain HTML bars: one row per class, the predicted class highlighted.

Plain HTML rather than a chart library: on the Predict page three Plotly charts took 14-30 ms to build on
the server, plus their layout in the browser, on the path from releasing the mouse to the answer on
screen (bench/draw_latency.py). Each row carries its class and exact probability as data attributes, so tests
and benchmarks read the numbers rather than the pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PICKED, OTHER, TRACK = "#d62728", "#9aa5b1", "rgba(151, 166, 195, 0.15)"


def probability_bars_html(probs: Sequence[float], class_names: Sequence[str], picked: int) -> str:
    """Ten labelled horizontal bars, widest for the most probable class; `picked` is drawn in red."""
    name_em = min(7.0, 0.8 + 0.55 * max(len(str(n)) for n in class_names))  # digits need 1.4em, "Ankle boot" 6.3em
    rows = []
    for i, (name, p) in enumerate(zip(class_names, probs, strict=True)):
        p = min(1.0, max(0.0, float(p)))
        colour = PICKED if i == picked else OTHER
        weight = "600" if i == picked else "400"
        rows.append(
            f'<div class="prob-row" data-class="{escape(str(name))}" data-prob="{p!r}" '
            f'style="display:grid;grid-template-columns:{name_em:.1f}em 1fr 3.2em;align-items:center;gap:6px;'
            f'height:18px;font-size:0.8rem;font-weight:{weight}">'
            f'<span style="overflow:hidden;white-space:nowrap;text-overflow:ellipsis">{escape(str(name))}</span>'
            f'<span style="background:{TRACK};height:12px;border-radius:2px">'
            f'<span style="display:block;width:{p * 100:.1f}%;height:100%;background:{colour};border-radius:2px">'
            '</span></span>'
            f'<span style="text-align:right;font-variant-numeric:tabular-nums">{p:.0%}</span></div>')
    return f'<div class="prob-bars" role="img" aria-label="class probabilities">{"".join(rows)}</div>'
