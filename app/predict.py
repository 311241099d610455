"""Predict: draw or upload, see what every model reads, how sure it is, where it looked, how robust it is."""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from app.components.after_paint import painted
from app.components.datasets import dataset_picker
from app.components.image_input import THING_BY_STYLE, draw_or_upload
from app.components.inside import inside_the_network
from app.components.loading import cached_model, show_checkpoint_error
from core import hosting
from core.data.datasets import DATASETS
from core.inference.predictor import (
    FileResult,
    default_model_choices,
    disagreement,
    display_stages,
    dissenting_models,
    input_warnings,
    predict_files,
    predict_image,
    request_problem,
    results_csv,
    results_table,
    robustness_probe,
    threads_for,
)
from core.inference.preprocess import STYLE_BY_DATASET, preprocess
from core.inference.saliency import overlay, saliency_map
from core.store.checkpoint import CheckpointError, LoadedModel
from core.views.catalog import list_finished_runs, run_label
from core.views.probability_bars import probability_bars_html

CANVAS_SIDE = 280  # pixels; ten canvas pixels per input pixel


@st.cache_data(max_entries=8, show_spinner=False)
def _predict_uploads(files: tuple[tuple[str, bytes], ...], run_paths: tuple[tuple[str, str], ...],
                     style: str) -> list[FileResult]:
    """predict_files for an upload, cached on the files' bytes and the chosen runs."""
    return predict_files({name: cached_model(path) for name, path in run_paths}, files, style)


def input_token(pre, models: dict[str, LoadedModel]) -> str:
    """A short fingerprint of one input and the chosen models: whose explanations are on screen."""
    data = np.ascontiguousarray(pre.tensor_input).tobytes() + "|".join(models).encode()
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def show_results(image, pre, results: list[dict], models: dict[str, LoadedModel], style: str, key: str,
                 defer: bool = False) -> None:
    """Everything about one input: agreement, warnings and per-model answers, then `explanations`
    (deferred until the browser has painted the answers when `defer`)."""
    message = disagreement(results)
    if message:
        st.warning(f"⚠️ {message}")
    elif len(results) > 1:
        st.success(f"All {len(results)} models agree: **{results[0]['class_name']}**.")
    for warning in input_warnings(pre, results, style):
        st.warning(warning)

    dissent = dissenting_models(results)
    for column, result in zip(st.columns(len(results)), results, strict=True):
        with column:
            st.markdown(f"**{result['model']}** · `{result['arch']}`")
            st.metric("Prediction", result["class_name"], help="the most probable class",
                      delta="disagrees" if result["model"] in dissent else None, delta_color="inverse",
                      delta_arrow="off")
            st.caption(f"{result['confidence']:.1%} sure; next: "
                       + ", ".join(f"{t['class_name']} {t['prob']:.0%}" for t in result["top_k"][1:]))
            st.html(probability_bars_html(result["probs"], models[result["model"]].class_names, result["label"]))
    explanations(image, pre, results, models, key, input_token(pre, models) if defer else None)


@st.fragment
def explanations(image, pre, results: list[dict], models: dict[str, LoadedModel], key: str,
                 wait_for: str | None) -> None:
    """Where each model looked, the preprocessing stages, inside the network and the robustness probe.

    A fragment: its widgets rerun only this part. With `wait_for` (the input's token), a new input's
    explanations are drawn only once the browser has painted the answers above (see after_paint): the
    server's work on them otherwise held the answers back (bench/draw_latency.py).
    """
    seen = f"{key}_explained"
    if wait_for is not None and st.session_state.get(seen) != wait_for:
        if not painted(wait_for, key=f"{key}_painted"):
            st.caption("Working out where each model looked, what it computed and how robust it is…")
            return
        st.session_state[seen] = wait_for
    x = pre.tensor_input
    for column, result in zip(st.columns(len(results)), results, strict=True):
        method, heat = saliency_map(models[result["model"]], x, result["label"])
        column.image(overlay(x, heat), width=168,
                     caption=f"{result['model']}, {method}: where it saw “{result['class_name']}”")

    st.subheader("What the model sees")
    st.caption("Each preprocessing stage, done the way the dataset itself was made; the last is the 28x28 input.")
    stages = display_stages(image, pre)
    st.image([img for _, img in stages], caption=[name for name, _ in stages], width=96)

    with threads_for(1):  # one image: faster on one thread (see threads_for)
        inside_the_network(np.asarray(x, np.float32).reshape(28, 28), models, key)

    st.subheader("Robustness probe")
    st.caption("The same input shifted, rotated, scaled and with thinner or thicker strokes; ✗ marks a changed answer.")
    probe = robustness_probe(models, pre)
    st.image(probe.images, caption=probe.names, width=64, clamp=True)
    st.dataframe(probe.table(), hide_index=True, height="content", key=f"{key}_probe")
    st.caption(" · ".join(f"{m} keeps its answer on {share:.0%} of the variants"
                          for m, share in probe.stability().items()))


st.title("Predict")
st.caption("Draw or upload an image and see what each model predicts, how sure it is, where it looked, "
           "and whether a small shift or rotation changes its mind.")

dataset = dataset_picker(key="predict_dataset")
style = STYLE_BY_DATASET[dataset]
infos = list_finished_runs(dataset, need_test_outputs=False)
if not infos:
    st.info(f"No trained models for {DATASETS[dataset].title} yet: train one on the Train page.")
    st.stop()

by_path = {str(info.path): info for info in infos}
chosen = st.multiselect("Models", list(by_path),
                        default=[str(i.path) for i in default_model_choices(infos)][:hosting.PREDICT_MODELS.value()],
                        format_func=lambda p: run_label(by_path[p]), key=f"predict_models_{dataset}",
                        max_selections=hosting.PREDICT_MODELS.value(),
                        help=f"at most {hosting.PREDICT_MODELS.value()} per request (`{hosting.PREDICT_MODELS.env}`)")
models: dict[str, LoadedModel] = {}
for path in chosen:
    try:
        models[by_path[path].label] = cached_model(by_path[path].path)
    except CheckpointError as err:
        show_checkpoint_error(err)
if not models:
    st.info("Pick at least one model above.")
    st.stop()

given = draw_or_upload("predict", style, CANVAS_SIDE, multiple=True)
thing = THING_BY_STYLE[style]
if given.drawn:
    pre = preprocess(given.drawing, style) if given.drawing is not None else None
    if pre is None or pre.is_blank:
        st.info(f"Draw a {thing} on the canvas: an empty canvas is not predicted.")
    else:
        show_results(given.drawing, pre, predict_image(models, pre), models, style, key="predict_draw",
                     defer=True)
else:
    if not given.files:
        st.info(f"Upload a photo or scan of a {thing}; dark on light paper is fine, it is inverted.")
        st.stop()
    problem = request_problem(len(given.files), len(models))
    if problem:
        st.error(f"Not predicted: {problem}. Upload fewer files at a time.")
        st.stop()
    run_paths = tuple((name, str(loaded.path)) for name, loaded in models.items())
    outcomes = _predict_uploads(tuple(given.files), run_paths, style)
    for outcome in outcomes:
        if outcome.error:
            st.error(outcome.error)
    good = [o for o in outcomes if o.error is None]
    if len(outcomes) > 1:
        rows = results_table(outcomes, list(models))
        st.subheader("Results")
        st.dataframe(rows, hide_index=True, key="predict_results_table",
                     column_config={f"{m} confidence": st.column_config.NumberColumn(format="percent")
                                    for m in models})
        st.download_button("Download as CSV", results_csv(rows), file_name="predictions.csv", mime="text/csv",
                           key="predict_results_csv")
    if not good:
        st.info(f"None of the files could be predicted; upload a picture of a {thing}.")
        st.stop()
    picked = good[0]
    if len(good) > 1:
        names = [o.file for o in good]
        index = st.selectbox("Look closer at", range(len(good)), format_func=lambda i: names[i],
                             key="predict_detail_file")
        picked = good[index or 0]
    st.subheader(picked.file)
    show_results(picked.image, picked.pre, picked.results, models, style, key="predict_upload")

