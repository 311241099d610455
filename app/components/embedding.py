"""The Evaluate page's "Where the test images land": a run's stored 2-D maps of its test images."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app.components.visitor import current_actor
from core.analysis import projection, projection_job
from core.store import guest, runs
from core.store.runs import RunInfo
from core.views.formats import format_duration

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
METHOD_TITLES = {"pca": "PCA", "umap": "UMAP"}


STAGE_TEXT = {"starting": "starting", "features": "reading the test images' features",
              "umap": "arranging them with UMAP"}


@st.cache_data(max_entries=8, show_spinner=False)
def _projection(path: str, mtime: float) -> projection.Projection | None:
    """The run's stored projection (per file version)."""
    return projection.load(Path(path))


@st.fragment(run_every=1.0)
def _map_progress(path: str) -> None:
    """The background job's progress, once a second; the whole page reruns when it ends (the map opens)."""
    job = projection_job.state(Path(path))
    if job.state != "running":
        st.rerun()
    elapsed = f", {format_duration(time.time() - job.started)} so far" if isinstance(job.started, float) else ""
    st.progress(min(1.0, max(0.0, job.fraction)),
                text=f"Making this run's map in the background: {STAGE_TEXT.get(job.stage, job.stage)}{elapsed} "
                     "(UMAP of 10,000 images takes a minute or two). It is stored in the run, so leaving the page "
                     "loses nothing.")


def may_start_map(info: RunInfo) -> bool:
    """Whether this visitor may spend the server's time on a map: always, except a guest on another's run."""
    actor = current_actor()
    return actor is None or guest.refusal(actor, info.path) is None


def _no_map_yet(info: RunInfo, images: np.ndarray | None) -> None:
    """What the section shows for a run without a stored map: the job's progress, its failure, or a start button."""
    if info.source != "user":
        st.info("This shipped run has no stored map.")
        return
    if images is None:
        st.info("This run has no stored map yet, and making one needs the test images (see the Data page).")
        return
    job = projection_job.state(info.path)
    if job.state == "none" and not may_start_map(info):
        st.info("This run has no map yet; it is made when training ends, or when the person who started the run "
                "opens it here.")
        return
    if job.state == "none" and projection_job.auto_enabled():
        projection_job.start(info.path)  # False when another visitor's page started it first: same map
        job = projection_job.state(info.path)
    if job.state == "running":
        _map_progress(str(info.path))
    elif job.state == "failed":
        st.error(f"The map of this run could not be made: {job.error}")
        st.button("Try again", key="eval_map_retry_button", on_click=projection_job.start, args=(info.path,))
    elif job.state == "none":
        st.button("Compute the map for this run", key="eval_map_compute_button", on_click=projection_job.start,
                  args=(info.path,))


@st.cache_data(max_entries=16, show_spinner=False)
def _overlaps(path: str, mtime: float, method: str, _coords: np.ndarray, _labels: np.ndarray,
              names: tuple[str, ...]) -> list[tuple[str, str, float]]:
    return projection.overlaps(_coords, _labels, list(names))


def scatter(coords: np.ndarray, labels: np.ndarray, preds: np.ndarray, names: list[str], shown: list[int]) -> go.Figure:
    """One trace per class (coloured), misclassified points drawn as crosses; customdata = test index."""
    fig = go.Figure()
    for c in shown:
        index = np.flatnonzero(labels == c)
        wrong = preds[index] != c
        fig.add_trace(go.Scattergl(
            x=coords[index, 0], y=coords[index, 1], mode="markers", name=names[c], customdata=index,
            marker={"size": np.where(wrong, 7, 4).tolist(), "color": PALETTE[c % len(PALETTE)],
                    "symbol": np.where(wrong, "x", "circle").tolist(), "opacity": 0.7},
            hovertemplate=f"{names[c]} · #%{{customdata}}<extra></extra>"))
    fig.update_layout(height=520, margin={"l": 10, "r": 10, "t": 10, "b": 10}, dragmode="lasso",
                      xaxis={"showticklabels": False}, yaxis={"showticklabels": False})
    return fig


def embedding_section(info: RunInfo, names: list[str], labels: np.ndarray, images: np.ndarray | None) -> list[int]:
    """The map of the run's test images; returns the indices of the points selected on it."""
    st.subheader("Where the test images land")
    st.caption("What the layer before the logits makes of each test image, projected to 2-D (PCA: linear; UMAP: "
               "keeps neighbours together). Colour = true class, crosses = misclassified. Select points or draw a "
               "lasso to see those images below.")
    path, mtime = str(info.path), runs.mtime(info.path / projection.FILE_NAME)
    proj = _projection(path, mtime)
    if proj is None:
        _no_map_yet(info, images)
        return []
    if len(proj.labels) != len(labels) or (proj.labels != labels).any():
        st.warning("The stored map was made on a different test split than this run's outputs; not shown.")
        return []
    left, right = st.columns([1, 3])
    methods = [m for m in projection.METHODS if m in proj.coords]
    method = left.radio("Projection", methods, format_func=METHOD_TITLES.get, key="eval_map_method",
                        horizontal=True)
    shown = right.multiselect("Classes", list(range(len(names))), default=list(range(len(names))),
                              format_func=lambda c: names[c], key="eval_map_classes")
    coords = proj.coords[method]
    mixed = _overlaps(path, mtime, method, coords, proj.labels, tuple(names))
    if mixed:
        st.markdown("Classes that overlap most here (share of their nearest neighbours on the map from the other "
                    "class): " + ", ".join(f"**{a} ↔ {b}** ({share:.0%})" for a, b, share in mixed))
    event = st.plotly_chart(scatter(coords, proj.labels, proj.preds, names, shown), key="eval_map_chart",
                            on_select="rerun", selection_mode=("points", "box", "lasso"))
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    return sorted({int(p["customdata"]) for p in points if "customdata" in p})
