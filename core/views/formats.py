"""How numbers read on every page: durations and counts (plain text, no Streamlit)."""

from __future__ import annotations

import math


def format_duration(seconds: float | None) -> str:
    """'45s', '3m 05s', '2h 03m' (seconds rounded); '' when unknown, negative or not finite."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def format_count(n: int | None) -> str:
    """A parameter count like '1.23 M', '45.6 k' or '789'; '—' when unknown."""
    if n is None:
        return "—"
    if n >= 1_000_000:
        return f"{n / 1e6:.2f} M"
    if n >= 1_000:
        return f"{n / 1e3:.1f} k"
    return str(n)
