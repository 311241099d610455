"""Compare: finished runs of one dataset side by side, from their stored test outputs (nothing is retrained)."""

import zlib

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app.components.datasets import data_missing_notice, dataset_picker
from app.components.image_input import THING_BY_STYLE, draw_or_upload
from app.components.loading import cached_model, cached_split, cached_test_outputs, show_checkpoint_error
from app.components.tile_grid import tile_grid
from core.analysis import compare
from core.data.datasets import DATASETS, DataUnavailableError, get_dataset
from core.inference.images import ImageError, decode_image
from core.inference.latency import measure_latency
from core.inference.predictor import predict_batch
from core.inference.preprocess import preprocess
from core.store import events
from core.store.checkpoint import CheckpointError
from core.views import comparison as cv
from core.views.catalog import list_finished_runs, run_label

TILE_SCALE = 4  # 28 px test images shown at 112 px
CANVAS_SIDE = 196  # pixels, seven per input pixel
TILES_PER_ROW = 8
LATENCY_REPEATS = 50
BEST_STYLE = "background-color: rgba(33, 195, 84, 0.25); font-weight: 600"
DIVERGING = [[0.0, "#b2182b"], [0.5, "#f7f7f7"], [1.0, "#2166ac"]]  # red = worse for B, blue = better


st.title("Compare")
st.caption("Two or more finished runs of one dataset, side by side. Everything below comes from the test "
           "outputs stored with each run: nothing is retrained or re-evaluated.")

# "Open in Compare" on the Experiments page asks for a dataset and runs (by name) through the session
request = st.session_state.pop("compare_request", None)
if isinstance(request, dict) and request.get("dataset") in DATASETS:
    st.session_state["compare_dataset"] = request["dataset"]
dataset = dataset_picker(key="compare_dataset")
spec = get_dataset(dataset)
classes = list(spec.classes)
options = list_finished_runs(dataset)
if len(options) < 2:
    st.info(f"Comparing needs at least two finished runs of {spec.title} with stored test outputs; "
            f"there {'is' if len(options) == 1 else 'are'} {len(options)}. Train more on the Train page.")
    st.stop()

by_path = {str(o.path): o for o in options}
requested = [p for p, o in by_path.items() if isinstance(request, dict) and o.source == "user"
             and o.name in (request.get("runs") or [])]
if requested:
    st.session_state.pop(f"compare_runs_{dataset}", None)  # the request replaces this session's choice
chosen = st.multiselect("Runs to compare", list(by_path), default=requested or list(by_path)[:2],
                        format_func=lambda p: run_label(by_path[p]), key=f"compare_runs_{dataset}")

# --- stored test outputs of each chosen run ---------------------------------------------------
outputs, left_out = cv.comparable_outputs({by_path[p].label: by_path[p].path for p in chosen}, len(classes),
                                          load=cached_test_outputs)
for message in left_out:
    st.warning(message)
infos = {by_path[p].label: by_path[p] for p in chosen if by_path[p].label in outputs}

if len(outputs) < 2:
    st.info("Pick two or more runs to compare.")
    st.stop()

names = list(outputs)
labels = next(iter(outputs.values()))[1]
reports = {n: cv.outputs_report(p, y, classes) for n, (p, y) in outputs.items()}
preds = {n: p.argmax(1) for n, (p, _) in outputs.items()}

# --- the table --------------------------------------------------------------------------------
st.subheader("Side by side")
latency = st.session_state.setdefault("compare_latency", {})  # run path -> {"p50_ms", "p95_ms"}; this session's
if st.button("Measure latency", key="compare_measure_latency",
             help=f"Times each model on one image on this machine ({LATENCY_REPEATS} runs after a warm-up)."):
    with st.spinner("Timing each model on one image…"):
        for name, info in infos.items():
            try:
                latency[str(info.path)] = measure_latency(cached_model(info.path), repeats=LATENCY_REPEATS)
            except CheckpointError as err:
                st.warning(f"{name}: the model cannot be loaded to time it: {err}")

table = [cv.table_row(n, infos[n].model, infos[n].summary, reports[n], cv.checkpoint_size_bytes(infos[n].path),
                      latency.get(str(infos[n].path))) for n in names]
frame = pd.DataFrame(table, columns=cv.COLUMNS)
mask = cv.best_mask(table)
highlight = pd.DataFrame([[BEST_STYLE if m.get(c) else "" for c in frame.columns] for m in mask],
                         index=frame.index, columns=frame.columns)
st.dataframe(frame.style.apply(lambda _: highlight, axis=None).format(cv.FORMATS, na_rep="—"), hide_index=True)
st.caption(f"Best per column highlighted (epochs are not ranked). Latency per image: {LATENCY_REPEATS} timed runs "
           "on this machine, median (p50) and 95th percentile; measured on demand with the button above. "
           "Size: the weights file the app loads.")
columns = list(cv.COLUMNS)
left, right = st.columns(2)
left.download_button("Download table (CSV)", compare.comparison_csv(table, columns), file_name=f"compare-{dataset}.csv",
                     mime="text/csv", key="compare_csv")
right.download_button("Download table (Markdown)", compare.comparison_markdown(table, columns),
                      file_name=f"compare-{dataset}.md", mime="text/markdown", key="compare_md")

# --- learning curves --------------------------------------------------------------------------
st.subheader("Learning curves")
curves = cv.learning_curves({n: events.read_events(infos[n].path)[0] for n in names})
if not curves:
    st.info("These runs have no per-epoch metrics to plot.")
else:
    x_axis = st.radio("Against", ["epoch", "training s"], horizontal=True, key="compare_curve_x",
                      format_func=lambda x: {"epoch": "epoch", "training s": "training time (s)"}[x])
    shown = ("val accuracy", "val loss") if cv.has_values(curves, "val accuracy") else ("train accuracy", "train loss")
    if shown[0] == "train accuracy":
        st.caption("No validation split in these runs: training accuracy and loss are shown instead.")
    curve_frame = pd.DataFrame(curves)
    for column, metric in zip(st.columns(2), shown, strict=True):
        fig = px.line(curve_frame.dropna(subset=[metric, x_axis]), x=x_axis, y=metric, color="run", markers=True,
                      title=metric)
        fig.update_layout(legend={"orientation": "h", "y": -0.25}, margin={"t": 40})
        if x_axis == "epoch":
            fig.update_xaxes(dtick=1)
        column.plotly_chart(fig, key=f"compare_curve_{metric}")

# --- per-class F1 -----------------------------------------------------------------------------
st.subheader("Per-class F1")
f1_frame = pd.DataFrame(cv.per_class_f1(reports))
fig = px.bar(f1_frame, x="class", y="F1", color="run", barmode="group")
fig.update_yaxes(range=[max(0.0, float(f1_frame["F1"].min()) - 0.05), 1.0])
fig.update_layout(legend={"orientation": "h", "y": -0.2}, margin={"t": 20})
st.plotly_chart(fig, key="compare_f1")

# --- one pair: A against B --------------------------------------------------------------------
st.subheader("A against B")
default_a, default_b = cv.default_pair(table)
pair_key = zlib.crc32("|".join(names).encode())  # fresh pickers when the chosen runs change
col_a, col_b = st.columns(2)
name_a = col_a.selectbox("A (reference)", names, index=default_a, key=f"compare_a_{dataset}_{pair_key}")
name_b = col_b.selectbox("B (candidate)", names, index=default_b, key=f"compare_b_{dataset}_{pair_key}")
if name_a == name_b:
    st.info("Pick two different runs as A and B.")
else:
    (probs_a, _), (probs_b, _) = outputs[name_a], outputs[name_b]
    fixed, broken = compare.fixed_and_broken(labels, preds[name_a], preds[name_b])
    st.write(cv.gain_summary(name_a, name_b, reports[name_a], reports[name_b]))
    m1, m2, m3 = st.columns(3)
    m1.metric("Agreement", f"{compare.agreement_rate(preds[name_a], preds[name_b]):.2%}",
              help="Share of test images on which A and B predict the same class.")
    m2.metric("Fixed by B", f"{fixed.size:,}", help="Test images B gets right and A gets wrong.")
    m3.metric("Broken by B", f"{broken.size:,}", help="Test images A gets right and B gets wrong.")
    st.info(compare.describe_mcnemar(compare.mcnemar(labels, preds[name_a], preds[name_b]), name_a, name_b))

    gains_col, heat_col = st.columns([2, 3])
    with gains_col:
        st.markdown("**Where the difference comes from** (test images right, per class)")
        st.dataframe(pd.DataFrame(cv.class_gains(reports[name_a], reports[name_b])).style.format(
            {"F1 A": "{:.3f}", "F1 B": "{:.3f}", "change": "{:+d}"}), hide_index=True)
    with heat_col:
        diff = compare.confusion_difference(reports[name_a]["confusion"], reports[name_b]["confusion"])
        text = [[f"{v:+d}" if v else "" for v in row] for row in diff.tolist()]
        heat = go.Figure(go.Heatmap(
            z=cv.improvement_for_b(diff), x=classes, y=classes, text=text, texttemplate="%{text}",
            customdata=diff, colorscale=DIVERGING, zmid=0, showscale=False,
            hovertemplate="true %{y}, predicted %{x}: B − A = %{customdata}<extra></extra>"))
        heat.update_layout(title="Confusion matrix, B minus A", xaxis_title="predicted", yaxis_title="true",
                           yaxis_autorange="reversed", margin={"t": 40})
        st.plotly_chart(heat, key="compare_confusion_diff")
        st.caption("Numbers: B's count minus A's. Blue is better for B (more right on the diagonal, fewer of "
                   "that mistake off it), red is worse.")

    st.markdown("**The images that differ**")
    if data_missing_notice(dataset):
        st.info("The galleries need the test images; the numbers above come from the stored outputs.")
    else:
        try:
            test_images, test_labels = cached_split(dataset, False)
        except DataUnavailableError as err:
            test_images, test_labels = None, None
            st.warning(f"The test images cannot be read: {err}")
        if test_labels is not None and not np.array_equal(test_labels, labels):
            st.warning("The test images on this machine do not match the stored outputs of these runs (another "
                       "version or size of the test set), so the galleries cannot be shown.")
        elif test_labels is not None:
            limit = st.slider("Images per gallery", 8, 96, 24, step=8, key="compare_gallery_limit")
            st.caption("Each tile: the true class, then A's and B's predictions with confidence. Largest swing in "
                       "the probability of the true class first.")
            for tab, indices in zip(st.tabs([f"Fixed by B ({fixed.size:,})", f"Broken by B ({broken.size:,})"]),
                                    (fixed, broken), strict=True):
                with tab:
                    tiles = cv.gallery_tiles(indices, labels, probs_a, probs_b, limit)
                    tile_grid([(test_images[t["index"]], cv.tile_caption(t, classes)) for t in tiles], TILES_PER_ROW,
                              "No such test image.")

# --- the same input, every model --------------------------------------------------------------
st.subheader("Same input, every model")
st.caption(f"Draw a {THING_BY_STYLE[spec.style]} or upload a picture: it is prepared the way the Predict page does "
           "it, and every selected model gives its probabilities for the very same input.")
given = draw_or_upload("compare", spec.style, CANVAS_SIDE, multiple=False,
                       source_key="compare_input_source")  # the radio kept its key from before the shared input
image = given.drawing
for name, data in given.files:
    try:
        image = decode_image(data, name)
    except ImageError as err:
        st.error(str(err))

pre = None
if image is not None:
    try:
        pre = preprocess(image, spec.style)
    except ValueError as err:
        st.error(f"This image cannot be prepared for the models: {err}")
if pre is not None:
    if pre.is_blank:
        st.info("Nothing to classify yet: no drawing or object found in the image.")
    else:
        models = {}
        for name, info in infos.items():
            try:
                models[name] = cached_model(info.path)
            except CheckpointError as err:
                show_checkpoint_error(err)
        probs_by_run = {name: p[0] for name, p in predict_batch(models, pre.tensor_input[None]).items()}
        seen_col, bars_col = st.columns([1, 4])
        seen_col.image(cv.upscale((pre.tensor_input[0] * 255).round().astype(np.uint8), TILE_SCALE),
                       caption="what the models see")
        if probs_by_run:
            fig = px.bar(pd.DataFrame(cv.probability_rows(probs_by_run, classes)), x="class", y="probability",
                         color="run", barmode="group")
            fig.update_yaxes(range=[0, 1])
            fig.update_layout(legend={"orientation": "h", "y": -0.2}, margin={"t": 20})
            bars_col.plotly_chart(fig, key="compare_input_probs")
            st.dataframe(pd.DataFrame(cv.top_predictions(probs_by_run, classes)).style.format(
                {"confidence": "{:.1%}", "runner-up probability": "{:.1%}"}), hide_index=True)
