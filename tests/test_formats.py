from core.views.formats import format_count, format_duration


def test_one_duration_format_for_every_page():
    assert [format_duration(s) for s in (None, -1, float("nan"), float("inf"))] == ["", "", "", ""]
    assert [format_duration(s) for s in (0, 42.04, 45.6, 185, 3599.4, 3725, 7380)] == \
        ["0s", "42s", "46s", "3m 05s", "59m 59s", "1h 02m", "2h 03m"]


def test_parameter_counts():
    assert [format_count(n) for n in (None, 789, 45_600, 1_234_567)] == ["—", "789", "45.6 k", "1.23 M"]
