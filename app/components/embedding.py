"""The Evaluate page's "Where the test images land": a run's stored 2-D maps of its test images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app.components.loading import cached_model
from core.analysis import projection
from core.store import runs
from core.store.runs import RunInfo

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
METHOD_TITLES = {"pca": "PCA", "umap": "UMAP"}


@st.cache_data(max_entries=8, show_spinner="Projecting the test images (UMAP takes a minute)…")
def _projection(path: str, mtime: float, compute: bool, _images: np.ndarray | None,
                _labels: np.ndarray | None) -> projection.Projection | None:
    """The run's stored projection; with `compute`, made from the test images (and stored when writable)."""
    stored = projection.load(Path(path))
    if stored is not None or not compute:
        return stored
    made = projection.project_run(cached_model(Path(path)), _images, _labels)
    if not runs.is_shipped(Path(path)):
        projection.save(Path(path), made)
    return made


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
    compute = st.session_state.get("eval_map_compute") == path and images is not None
    proj = _projection(path, mtime, compute, images, labels)
    if proj is None:
        if images is None:
            st.info("This run has no stored map yet, and making one needs the test images (see the Data page).")
        else:
            st.button("Compute the map for this run", key="eval_map_compute_button",
                      on_click=lambda: st.session_state.update(eval_map_compute=path))
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
