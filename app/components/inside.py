"""The Predict page's "Inside the network": every layer of one model for the current input, and its weights."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app.components.embedding import METHOD_TITLES, scatter
from app.components.loading import cached_model, cached_split
from core.analysis import projection
from core.data.datasets import DataUnavailableError
from core.data.stats import enlarge
from core.inference import features
from core.store import runs
from core.store.checkpoint import LoadedModel

BIG = 224  # pixels of a map or patch looked at closely


def bar_strip(values: np.ndarray, labels: list[str] | None, key: str, height: int = 140) -> None:
    """A vector as bars (units or classes along x)."""
    x = labels if labels is not None else list(range(len(values)))
    fig = go.Figure(go.Bar(x=x, y=np.asarray(values).tolist(), marker_color="#4c78a8",
                           hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 5, "b": 5}, showlegend=False,
                      xaxis={"type": "category", "showticklabels": labels is not None}, bargap=0.05)
    st.plotly_chart(fig, key=key, config={"displayModeBar": False})


def weight_tiles(weights: np.ndarray, captions: list[str], width: int = 84) -> None:
    """28x28 (or k x k) weights on a diverging scale shared by all of them (blue negative, red positive)."""
    limit = features.symmetric_limit(weights)
    st.image([enlarge(features.diverging(w, limit), width) for w in weights], caption=captions, width=width)


def show_weights(loaded: LoadedModel, layers: list[features.Layer]) -> None:
    """The first layer's filters, the linear model's templates or the MLP's most excited hidden units."""
    model = loaded.model
    filters = features.first_layer_filters(model)
    if filters is not None:
        weights, fixed = filters
        st.markdown("**First-layer filters**" + (" — fixed whitening filters set from the data's 4x4 patches, "
                                                 "not learned" if fixed else ", as learned"))
        weight_tiles(weights, [str(i) for i in range(len(weights))], width=48)
    elif loaded.arch == "linear":
        st.markdown("**Weight templates**: what each class looks like to the model (red: ink there argues for "
                    "the class, blue: against)")
        weight_tiles(features.linear_templates(model), loaded.class_names)
    else:
        st.markdown("**The hidden units this input excites most** (first-layer weights; red: ink there excites)")
        top = features.top_hidden_units(model, layers)
        weight_tiles(np.stack([w for _, _, w in top]), [f"unit {u}: {a:.2f}" for u, a, _ in top])


@st.cache_data(max_entries=8, show_spinner="Scoring the 10,000 test images…")
def _channel_responses(run_path: str, mtime: float, dataset: str, stage: int) -> np.ndarray:
    images, _ = cached_split(dataset, train=False)
    return features.channel_responses(cached_model(run_path), images, stage)


def show_top_images(loaded: LoadedModel, stage: int, channel: int) -> None:
    """The nine test images the chosen channel of the last conv layer fires on most."""
    try:
        images, labels = cached_split(loaded.dataset, train=False)
    except DataUnavailableError:
        st.info("The test set is not on this machine, so the images this channel fires on cannot be shown.")
        return
    responses = _channel_responses(str(loaded.path), runs.mtime(loaded.path / "best.pt"), loaded.dataset, stage)
    top = features.top_images(responses, channel)
    st.image([enlarge(images[i], 84) for i in top], width=84,
             caption=[f"{loaded.class_names[labels[i]]} · {responses[i, channel]:.2f}" for i in top])


def look_closer(x: np.ndarray, layers: list[features.Layer], loaded: LoadedModel, key: str) -> None:
    """One feature map large, beside the filter that made it and the input patch it responds to most."""
    maps_at = [i for i, layer in enumerate(layers) if layer.kind == "maps"]
    index = st.selectbox("Look closer at layer", maps_at, format_func=lambda i: f"{i + 1}. {layers[i].name}",
                         key=f"{key}_inside_layer")
    layer = layers[index]
    channel = st.number_input("Feature map", 0, len(layer.values) - 1, 0, key=f"{key}_inside_map_{index}")
    (row, col), patch = features.strongest_patch(layer, channel, x)
    top = max(float(layer.values.max()), 1e-12)
    big, weights, seen = st.columns(3)
    with big:
        st.image(enlarge(features.heat_picture(layer.values[channel], top), BIG), width=BIG,
                 caption=f"map {channel} of {layer.name}: strongest at ({row}, {col})")
    with weights:
        filt = features.filter_weights(layer, channel)
        if filt is None:
            st.caption("This layer has no filter of its own: it pools (or adds) the maps before it.")
        else:
            columns = math.ceil(math.sqrt(len(filt)))
            tiles = features.mosaic(filt, columns, tile=max(24, BIG // (2 * columns)), fill=0.0)
            st.image(features.diverging(tiles), width=BIG,
                     caption=f"its filter: {len(filt)} input channel(s) of {filt.shape[1]}x{filt.shape[2]} weights")
    with seen:
        st.image(enlarge(np.clip(patch, 0, 1), BIG), width=BIG, clamp=True,
                 caption=f"the {patch.shape[0]}x{patch.shape[1]} input patch it sees there")
    last = features.last_conv_stage(loaded.model)
    if index == last and st.toggle("Show the test images this map fires on most", key=f"{key}_inside_top"):
        show_top_images(loaded, last, channel)


def inside_the_network(x: np.ndarray, models: dict[str, LoadedModel], key: str) -> None:
    """Every layer of a chosen model for input x (28x28 in [0, 1]), as the data flows, to the softmax."""
    st.subheader("Inside the network")
    st.caption("What each layer computes for this input, in order: a grid of all feature maps for conv and pooling "
               "layers (one colour scale per layer, brighter = stronger), bars for dense layers, then the logits "
               "and the softmax, the probabilities shown above.")
    name = st.selectbox("Model to look inside", list(models), key=f"{key}_inside_model")
    loaded = models[name]
    layers = features.feature_maps(loaded, x)
    show_weights(loaded, layers)
    for i, layer in enumerate(layers):
        st.markdown(f"**{i + 1}. {layer.name}** · `{layer.shape_text}`")
        if layer.kind == "maps":
            columns = min(16, math.ceil(math.sqrt(len(layer.values) * 2)))
            tile = 56 if layer.values.shape[1] > 7 else 28
            picture = features.mosaic(layer.values, columns, tile=tile)
            st.image(features.heat_picture(picture, float(np.nanmax(picture))), clamp=True)
        else:
            labels = loaded.class_names if len(layer.values) == len(loaded.class_names) and i >= len(layers) - 2 \
                else None
            bar_strip(layer.values, labels, key=f"{key}_inside_bars_{i}")
    if any(layer.kind == "maps" for layer in layers):
        look_closer(x, layers, loaded, key)
    lands_here(x, loaded, key)


@st.cache_data(max_entries=4, show_spinner="Reading the test images' features…")
def _test_features(run_path: str, mtime: float, dataset: str) -> np.ndarray:
    images, _ = cached_split(dataset, train=False)
    return features.penultimate_features(cached_model(run_path), images)


def lands_here(x: np.ndarray, loaded: LoadedModel, key: str) -> None:
    """The input as a star on the run's stored map of its test images (when the run has one)."""
    stored = projection.load(loaded.path)
    if stored is None:
        st.caption("This run has no map of its test images yet (it is made after training, or when Evaluate opens "
                   "the run); then your input is placed on it here.")
        return
    st.markdown("**Your input lands here** among the test images (the run's map from the Evaluate page)")
    method = st.radio("Projection", list(stored.coords), format_func=METHOD_TITLES.get, horizontal=True,
                      key=f"{key}_lands_method")
    own = features.penultimate_features(loaded, x[None])[0]
    test_features = None
    if method == "umap":
        try:
            test_features = _test_features(str(loaded.path), runs.mtime(loaded.path / "best.pt"), loaded.dataset)
        except DataUnavailableError:
            st.info("Placing an input on the UMAP map needs the test images (see the Data page); PCA does not.")
            return
    spot = projection.place(stored, method, own, test_features)
    fig = scatter(stored.coords[method], stored.labels, stored.preds, loaded.class_names,
                  list(range(len(loaded.class_names))))
    fig.add_trace(go.Scatter(x=[float(spot[0])], y=[float(spot[1])], mode="markers", name="your input",
                             marker={"symbol": "star", "size": 20, "color": "black",
                                     "line": {"color": "white", "width": 2}}))
    fig.update_layout(height=420, dragmode="pan")
    st.plotly_chart(fig, key=f"{key}_lands_chart")
