"""The Predict page's probability bars: plain HTML, one row per class, the exact numbers in data attributes."""

import re

from core.views.probability_bars import PICKED, probability_bars_html


def rows(html: str) -> list[tuple[str, float, str]]:
    return [(name, float(prob), width) for name, prob, width in
            re.findall(r'data-class="([^"]*)" data-prob="([^"]*)".*?width:([0-9.]+)%', html)]


def test_each_class_gets_a_row_as_wide_as_its_probability_and_the_pick_is_highlighted():
    probs = [0.0] * 10
    probs[7], probs[1] = 0.9, 0.1
    html = probability_bars_html(probs, [str(d) for d in range(10)], picked=7)
    found = rows(html)
    assert [name for name, _, _ in found] == [str(d) for d in range(10)]
    assert [p for _, p, _ in found] == probs and [w for _, _, w in found][7] == "90.0"
    assert html.count(PICKED) == 1 and ">90%<" in html and ">10%<" in html


def test_class_names_are_escaped_and_odd_probabilities_are_clamped():
    names = ["<b>T-shirt</b>", *(f"c{i}" for i in range(9))]
    html = probability_bars_html([1.5, -0.2, *([0.0] * 8)], names, picked=0)
    assert "<b>" not in html and "&lt;b&gt;T-shirt&lt;/b&gt;" in html
    assert [p for _, p, _ in rows(html)][:2] == [1.0, 0.0]
