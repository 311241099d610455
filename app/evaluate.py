"""Evaluate: how good a finished run is, and exactly where it goes wrong (from its stored test outputs)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app.components.common import pick_run
from app.components.datasets import data_missing_notice
from app.components.embedding import embedding_section
from app.components.loading import cached_split, cached_test_outputs
from app.components.share import export_controls, import_box
from app.components.tile_grid import tile_grid
from core.analysis import errors as analysis
from core.data.datasets import DataUnavailableError, get_dataset
from core.store import events, runs
from core.views import evaluation as ev
from core.views.formats import format_count, format_duration

PER_ROW = 6
ANY = -1  # "any class" in the gallery filters


@st.cache_data(max_entries=32, show_spinner=False)
def run_events(path: str, mtime: float, num_classes: int):
    """(learning-curve rows, {epoch: validation confusion}) from a run's metrics.jsonl, per file version."""
    logged, _ = events.read_events(Path(path))
    return ev.learning_curves(logged), ev.epoch_confusions(logged, num_classes)


def test_images(dataset: str, stored_labels):
    """The run's test images (uint8 [N,28,28]) or None, saying why when they cannot be shown."""
    if data_missing_notice(dataset):
        st.info("Metrics come from the run's stored test outputs; the images need the dataset (see the Data page).")
        return None
    try:
        images, split_labels = cached_split(dataset, train=False)
    except DataUnavailableError as err:
        st.warning(f"Test images cannot be read, so galleries show text only: {err}")
        return None
    if not ev.images_match(split_labels, stored_labels):
        st.warning("The test split on this machine is not the one this run was scored on (its labels differ), "
                   "so galleries show text only.")
        return None
    return images


def tiles(items: list[dict], images, empty: str) -> None:
    """Gallery items as tiles: the test image (when the data is here), true/predicted labels, top-3 probabilities."""
    tile_grid([(None if images is None else images[item["index"]], ev.tile_caption(item)) for item in items],
              PER_ROW, empty)


def confusion_figure(confusion, names: list[str], normalise: bool, errors_only: bool, clickable: bool,
                     zmax: float | None = None) -> go.Figure:
    """The confusion heatmap; when clickable, invisible square markers on every cell carry the hover and the click
    (plotly reports no selection for heatmap cells), with [true, predicted, count, percent] as customdata."""
    values, text = ev.heatmap_cells(confusion, normalise, errors_only)
    n = len(names)
    t, p = np.divmod(np.arange(n * n), n)
    custom = np.stack([t, p, np.asarray(confusion).reshape(-1), ev.heatmap_cells(confusion, True)[0].reshape(-1)], 1)
    hover = "true %{y} → predicted %{x}<br>%{customdata[2]} images (%{customdata[3]:.1f}% of %{y})<extra></extra>"
    fig = go.Figure(go.Heatmap(z=values, x=names, y=names, text=text, texttemplate="%{text}", colorscale="Blues",
                               showscale=False, customdata=custom.reshape(n, n, 4),
                               **({"hoverinfo": "skip"} if clickable else {"hovertemplate": hover}),
                               **({} if zmax is None else {"zmin": 0, "zmax": zmax})))
    if clickable:
        fig.add_trace(go.Scatter(
            x=[names[i] for i in p], y=[names[i] for i in t], mode="markers", customdata=custom, hovertemplate=hover,
            marker=dict(size=30, symbol="square", color="rgba(0,0,0,0)"), showlegend=False,
            selected=dict(marker=dict(color="rgba(255,90,0,0.35)")), unselected=dict(marker=dict(opacity=0))))
    fig.update_layout(xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed", height=520,
                      margin=dict(t=10, b=10, l=10, r=10), dragmode=False, hoverdistance=40,
                      xaxis=dict(type="category"), yaxis=dict(type="category"))
    return fig


def _cell_clicked() -> None:
    """on_select of the confusion matrix: move the cell selectors to the clicked cell."""
    cell = ev.cell_from_selection(st.session_state.get("eval_cm"), st.session_state.get("eval_names", []))
    if cell is not None:
        st.session_state["eval_cell_true"], st.session_state["eval_cell_pred"] = cell


def _set_pair(dataset: str, a: int, b: int) -> None:
    st.session_state["eval_pair"] = (dataset, a, b)
    st.session_state["eval_mis_true"] = st.session_state["eval_mis_pred"] = ANY


def _clear_pair() -> None:
    st.session_state["eval_pair"] = None


st.title("Evaluate")
with st.expander("Import a run archive"):
    import_box()
info = pick_run("Run", key="eval_run")
if info is None:
    st.stop()
try:
    spec = get_dataset(info.dataset or "")
except ValueError as err:
    st.error(f"This run cannot be evaluated: {err}")
    st.stop()
names = list(spec.classes)
st.session_state["eval_names"] = names
try:
    probs, labels = cached_test_outputs(info.path)
    preds, confusion = ev.outputs_confusion(probs, labels)
except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
    st.error(f"The stored test outputs of this run cannot be read ({type(err).__name__}: {err}). "
             "Score the run again with `python -m core.evaluate RUN_DIR` after deleting its test_outputs.npz.")
    st.stop()
if probs.shape[1] != len(names):
    st.error(f"The stored test outputs have {probs.shape[1]} classes but {spec.title} has {len(names)}.")
    st.stop()

# ---- headline -----------------------------------------------------------------------------------------
head = ev.headline(probs, labels, info.summary)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Test accuracy", f"{head['test_acc']:.2%}")
c2.metric("Macro F1", f"{head['macro_f1']:.4f}")
c3.metric("Parameters", format_count(head["params"]))
c4.metric("Training time", format_duration(head["train_seconds"]) or "—")
st.caption(f"{spec.title} · model `{info.model}` · {head['test_images']:,} test images · "
           f"{head['epochs'] or '?'} epochs (best weights from epoch {head['best_epoch'] or '?'})")

# ---- take it with you ---------------------------------------------------------------------------------
st.subheader("Take this model with you")
st.caption("ONNX and .pt2 take a 0..1 image [N, 1, 28, 28] (light on dark) and give probabilities [N, 10]; each is "
           "checked against PyTorch before it is offered. The archive imports into another mnist-studio.")
export_controls(info)

# ---- learning curves ----------------------------------------------------------------------------------
curves, epoch_conf = run_events(str(info.path), runs.mtime(info.path / events.METRICS_FILE), len(names))
st.subheader("Learning curves")
if curves:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    for col, kind in ((1, "loss"), (2, "acc")):
        for split, (x, y) in ev.curve_series(curves, kind).items():
            style = dict(dash="dot", color="#1f77b4") if split == "train" else dict(color="#d62728")
            fig.add_trace(go.Scatter(x=x, y=y, name=split, mode="lines+markers", legendgroup=split,
                                     showlegend=col == 1, line=style), row=1, col=col)
    fig.update_xaxes(title_text="epoch", dtick=1 if len(curves) <= 20 else None)
    fig.update_layout(height=320, margin=dict(t=30, b=10))
    st.plotly_chart(fig, key="eval_curves")
else:
    st.info("This run's metrics.jsonl has no epoch events, so there are no curves to draw.")

# ---- per-class table ----------------------------------------------------------------------------------
st.subheader("Per class")
rows = ev.per_class_rows(confusion, names)
worst = [r for r in sorted(rows, key=lambda r: r["f1"]) if r["worst"]]
lead = ("Weakest classes: " + ", ".join(f"**{r['class']}** (F1 {r['f1']:.3f})" for r in worst) + "."
        if worst else "Every class has the same F1.")
st.write(lead + " Click a column header to sort.")
table = pd.DataFrame(rows)
st.dataframe(table.style.apply(lambda r: ["background-color: rgba(255, 75, 75, 0.22)" if r["worst"] else ""] * len(r),
                               axis=1),
             hide_index=True, key="eval_per_class",
             column_config={"precision": st.column_config.NumberColumn(format="%.4f"),
                            "recall": st.column_config.NumberColumn(format="%.4f"),
                            "f1": st.column_config.NumberColumn("F1", format="%.4f"),
                            "worst": st.column_config.CheckboxColumn("worst", help="among the 3 lowest F1")})
st.download_button("Per-class table (CSV)", ev.to_csv(rows), file_name=f"{info.name}-per-class.csv",
                   mime="text/csv", key="eval_csv_per_class")

images = test_images(spec.name, labels)

# ---- confusion matrix ---------------------------------------------------------------------------------
st.subheader("Confusion matrix (test set)")
m1, m2 = st.columns(2)
normalise = m1.radio("Cells show", ["counts", "% of the true class"], key="eval_cm_mode", horizontal=True) != "counts"
errors_only = m2.toggle("Colour only the mistakes", value=True, key="eval_cm_errors",
                        help="leave the diagonal uncoloured so small confusions stand out")
st.plotly_chart(confusion_figure(confusion, names, normalise, errors_only, clickable=True), key="eval_cm",
                on_select=_cell_clicked, selection_mode=("points",), config={"displayModeBar": False})
st.caption("Click a cell to see exactly those test images, or pick the cell here:")
cells = ev.confusion_cells(confusion, names)
if "eval_cell_true" not in st.session_state and cells:
    st.session_state["eval_cell_true"], st.session_state["eval_cell_pred"] = cells[0]["true"], cells[0]["pred"]
s1, s2, s3 = st.columns([2, 2, 1])
true_c = s1.selectbox("True class", range(len(names)), format_func=lambda i: names[i], key="eval_cell_true")
pred_c = s2.selectbox("Predicted class", range(len(names)), format_func=lambda i: names[i], key="eval_cell_pred")
cell_limit = int(s3.number_input("Show up to", 6, 240, 12, 6, key="eval_cell_limit"))
cell_idx = analysis.cell_indices(labels, preds, true_c, pred_c, probs)
st.markdown(f"**True {names[true_c]} predicted {names[pred_c]}**: {len(cell_idx)} test images"
            + (f", the {min(cell_limit, len(cell_idx))} most confident first" if len(cell_idx) else ""))
tiles(ev.gallery_items(probs, labels, cell_idx[:cell_limit], names), images, "No test image falls in this cell.")

# ---- where the test images land -----------------------------------------------------------------------
@st.fragment
def map_and_selection() -> None:
    """The map and the images selected on it: selecting, filtering or switching the projection reruns only this."""
    selected = embedding_section(info, names, labels, images)
    if selected:
        st.markdown(f"**{len(selected)}** test images selected on the map" + (", the first 24:" if len(selected) > 24
                                                                               else ":"))
        tiles(ev.gallery_items(probs, labels, selected[:24], names), images, "No image selected.")


map_and_selection()

# ---- misclassified gallery ----------------------------------------------------------------------------
st.subheader("Misclassified test images")
pairs = ev.hard_pairs(spec.name, names)
if pairs:
    st.caption("Known hard pairs (both directions):")
    for col, pair in zip(st.columns(len(pairs) + 1), pairs, strict=False):
        col.button(pair["title"], key=f"eval_pair_{pair['a']}_{pair['b']}", on_click=_set_pair,
                   args=(spec.name, pair["a"], pair["b"]))
chosen_pair = st.session_state.get("eval_pair")
pair = tuple(chosen_pair[1:]) if chosen_pair and chosen_pair[0] == spec.name else None
f1, f2, f3, f4 = st.columns([2, 2, 3, 1])
any_class = [ANY, *range(len(names))]
mis_true = f1.selectbox("True class", any_class, format_func=lambda i: "any" if i == ANY else names[i],
                        key="eval_mis_true")
mis_pred = f2.selectbox("Predicted class", any_class, format_func=lambda i: "any" if i == ANY else names[i],
                        key="eval_mis_pred")
conf_range = ev.confidence_bounds(*f3.slider("Confidence", 0.0, 1.0, (0.0, 1.0), 0.01, key="eval_mis_conf"))
mis_limit = int(f4.number_input("Show up to", 6, 240, 18, 6, key="eval_mis_limit"))
if pair is not None:
    p1, p2 = st.columns([4, 1])
    p1.info(f"Showing only the pair **{names[pair[0]]} ↔ {names[pair[1]]}** (both directions).")
    p2.button("Clear pair", key="eval_pair_clear", on_click=_clear_pair)
wrong = analysis.misclassified(probs, labels, None if mis_true == ANY else mis_true,
                               None if mis_pred == ANY else mis_pred, *conf_range, pair=pair)
st.markdown(f"**{len(wrong)}** misclassified test images match (of {int((preds != labels).sum())} in all), "
            "most confident first.")
tiles(ev.gallery_items(probs, labels, wrong[:mis_limit], names), images, "No misclassified image matches.")
st.download_button("Misclassified list (CSV)",
                   lambda: ev.to_csv(analysis.misclassified_table(probs, labels, names, wrong),
                                     ev.MISCLASSIFIED_COLUMNS),
                   file_name=f"{info.name}-misclassified.csv", mime="text/csv", key="eval_csv_misclassified")

# ---- suspected label errors ---------------------------------------------------------------------------
st.subheader("Suspected label errors")
st.caption("Test images the model gets wrong with very high confidence. Some are genuine mistakes of the model; "
           "others may carry a wrong label or be ambiguous. Judge for yourself.")
l1, l2 = st.columns(2)
min_conf = l1.slider("Minimum confidence", 0.5, 1.0, 0.95, 0.01, key="eval_suspect_conf")
suspect_limit = int(l2.number_input("Show up to", 6, 120, 6, 6, key="eval_suspect_limit"))
suspects = analysis.suspected_label_errors(probs, labels, min_confidence=min_conf, limit=suspect_limit)
tiles(ev.gallery_items(probs, labels, suspects, names), images,
      f"No test image is misclassified with confidence ≥ {min_conf:.0%}.")

# ---- epoch replay -------------------------------------------------------------------------------------
st.subheader("How the validation confusion matrix evolved")
if not epoch_conf:
    st.info("This run logged no validation confusion matrices (it had no validation split).")
else:
    epochs = list(epoch_conf)
    epoch = epochs[0] if len(epochs) == 1 else st.select_slider("Epoch", epochs, value=epochs[-1], key="eval_epoch")
    val_conf = epoch_conf[epoch]
    acc = np.trace(val_conf) / max(1, val_conf.sum())
    st.caption(f"Epoch {epoch} of {epochs[-1]}: validation accuracy {acc:.2%} on {int(val_conf.sum()):,} images.")
    zmax = ev.colour_max(list(epoch_conf.values()), normalise, errors_only)
    st.plotly_chart(confusion_figure(val_conf, names, normalise, errors_only, clickable=False, zmax=zmax),
                    key="eval_epoch_cm", config={"displayModeBar": False})
