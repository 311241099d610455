"""A training run's live view, read from the run store alone: the Train page's Watch tab and the Experiments page's
current trials draw it with the same functions (status, progress bar, best accuracy so far, loss charts).

A training run and the browser share the machine, so the live view redraws as little as it can
(bench/page_overhead.py measures what watching costs training): the status line and progress bar (epoch, step,
images/s, ETA) refresh each time the caller's fragment runs, the step-loss figure is rebuilt only every
LIVE_CHART_SECONDS (re-sending an unchanged figure costs the browser little), the epoch charts only when an epoch
ends (re-sending them every refresh cost the browser about a third of its work, measured by hand), and no CSS
transition or animation (NO_MOTION_CSS) makes the browser paint frames in between.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas  # noqa: F401  (see below)
import plotly.graph_objects as go
import streamlit as st

from core.store import events, progress, runs
from core.store.slots import max_concurrent
from core.views.formats import format_duration
from core.views.progress import progress_text, queue_text

# plotly checks its inputs against pandas only if `pandas` is in sys.modules, without importing it; while the warm-up
# thread (app/components/warmup.py) is importing pandas, that finds a half-initialised module and fails ("partially
# initialized module 'pandas' has no attribute 'Series'", seen in this page's AppTest). Importing pandas here waits
# for that import to finish first.
CHART_HEIGHT = 280
LIVE_CHART_SECONDS = 2
NO_MOTION_CSS = "<style>*, *::before, *::after { transition: none !important; animation: none !important; }</style>"
TAILS = "live_run_tails"  # this session's incremental metrics readers, by run path
STEP_FIGURES = "live_run_step_figures"  # run path -> (time built, live step figure)


def metrics_tail(path: Path) -> events.MetricsTail:
    """This session's incremental reader of a run's metrics."""
    tails = st.session_state.setdefault(TAILS, {})
    if str(path) not in tails:
        if len(tails) > 8:
            tails.clear()
        tails[str(path)] = events.MetricsTail(path)
    return tails[str(path)]


def read_progress(path: Path) -> tuple[runs.RunInfo, progress.LiveProgress]:
    """A run's files and its progress so far (read incrementally, per session)."""
    info = runs.read_run(path)
    return info, progress.summarize(metrics_tail(path).read(), info.config)


def line_figure(title: str, x_title: str, y_title: str, traces: list[go.Scatter]) -> go.Figure:
    fig = go.Figure(traces)
    fig.update_layout(title=title, height=CHART_HEIGHT, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      xaxis_title=x_title, yaxis_title=y_title, legend={"orientation": "h", "y": -0.25},
                      uirevision="keep")
    return fig


def step_figure(p: progress.LiveProgress) -> go.Figure:
    """Training loss per step, raw and smoothed."""
    steps, raw, smooth = p.loss_series()
    return line_figure("Training loss per step", "step", "loss", [
        go.Scatter(x=steps, y=raw, name="raw", mode="lines", line={"width": 1}, opacity=0.35),
        go.Scatter(x=steps, y=smooth, name="smoothed", mode="lines", line={"width": 2}),
    ])


def step_chart(figure: go.Figure, live: bool, key: str) -> None:
    """Live charts are static images (cheaper to redraw); a finished run's charts can be hovered and zoomed."""
    st.plotly_chart(figure, key=key, config={"staticPlot": True} if live else None)


def epoch_charts(p: progress.LiveProgress, live: bool, key_prefix: str) -> None:
    """Loss and accuracy per epoch, train and validation (and the benchmark's test monitor)."""
    config = {"staticPlot": True} if live else None
    epochs = [row.epoch for row in p.epochs]
    cols = st.columns(2)

    def series(attr: str, scale: float = 1.0) -> list:
        return [None if getattr(r, attr) is None else getattr(r, attr) * scale for r in p.epochs]

    with cols[0]:
        st.plotly_chart(line_figure("Loss per epoch", "epoch", "loss", [
            go.Scatter(x=epochs, y=series("train_loss"), name="train", mode="lines+markers"),
            go.Scatter(x=epochs, y=series("val_loss"), name="validation", mode="lines+markers"),
        ]), key=f"{key_prefix}_epoch_loss", config=config)
    with cols[1]:
        traces = [go.Scatter(x=epochs, y=series("train_acc", 100), name="train", mode="lines+markers"),
                  go.Scatter(x=epochs, y=series("val_acc", 100), name="validation", mode="lines+markers")]
        if any(r.test_acc is not None for r in p.epochs):
            traces.append(go.Scatter(x=epochs, y=series("test_acc", 100), name="test (monitor)",
                                     mode="lines+markers"))
        st.plotly_chart(line_figure("Accuracy per epoch", "epoch", "accuracy %", traces),
                        key=f"{key_prefix}_epoch_acc", config=config)


def status_block(info: runs.RunInfo, p: progress.LiveProgress, text: str | None = None) -> str:
    """Status line, queue place and progress bar of one run (`text` before the progress line); returns its state."""
    state = info.state
    st.markdown(f"**Status:** `{state}`")
    if state == "queued":
        st.info(queue_text(info.status, max_concurrent()))
    line = progress_text(p, state)
    st.progress(p.fraction, text=f"{text}: {line}" if text else line)
    return state


def live_step_figure(path: str, p: progress.LiveProgress) -> go.Figure:
    """The step-loss figure of a watched run, rebuilt when it is LIVE_CHART_SECONDS old."""
    figures = st.session_state.setdefault(STEP_FIGURES, {})
    cached = figures.get(path)
    if cached is None or time.time() - cached[0] >= LIVE_CHART_SECONDS:
        if len(figures) > 8:
            figures.clear()
        cached = figures[path] = (time.time(), step_figure(p))
    return cached[1]


def progress_details(path: str, p: progress.LiveProgress, state: str, key: str) -> None:
    """Below a running run's status_block: best validation accuracy so far, training time and the step-loss
    chart (call both from a fragment that refreshes)."""
    if not p.has_data:
        if state == "running":
            st.caption("Loading the data and building the model…")
        return
    best = f"{p.best_val_acc:.2%}" if p.best_val_acc is not None else "–"
    st.markdown(f"Best validation accuracy so far: **{best}** · training time: "
                f"**{format_duration(p.elapsed) or '–'}**")
    step_chart(live_step_figure(path, p), live=True, key=key)
