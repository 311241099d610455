"""Data: see a dataset before training on it: samples, class balance, pixel statistics, augmentation."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from app.components.datasets import data_missing_notice, dataset_picker
from app.components.loading import cached_split
from app.components.tile_grid import tile_grid
from core.data import stats as ds
from core.data.augment import AugmentSpec
from core.data.datasets import DataUnavailableError, get_dataset
from core.store.paths import DATA_ENV, data_root
from core.training.config import field_bounds, field_help
from core.training.presets import PRESETS

SAMPLES_PER_CLASS = 10
VARIANTS = 8


# Heavy work is cached per (dataset, data folder, settings); cache hits return small arrays only.
@st.cache_data(max_entries=16, show_spinner="Drawing samples…")
def sample_strips(name: str, root: str, seed: int) -> list:
    images, labels = cached_split(name, train=True)
    picks = ds.samples_per_class(labels, len(get_dataset(name).classes), SAMPLES_PER_CLASS, seed)
    return [ds.image_strip(images[idx], size=56, gap=3) for idx in picks]


@st.cache_data(max_entries=32, show_spinner=False)
def balance(name: str, root: str, val_fraction: float, seed: int) -> dict:
    _, train_labels = cached_split(name, train=True)
    _, test_labels = cached_split(name, train=False)
    return ds.split_counts(train_labels, test_labels, len(get_dataset(name).classes), val_fraction, seed)


@st.cache_data(max_entries=4, show_spinner="Computing pixel statistics…")
def pixels(name: str, root: str) -> dict:
    train_images, train_labels = cached_split(name, train=True)
    test_images, _ = cached_split(name, train=False)
    n = len(get_dataset(name).classes)
    train = ds.pixel_stats(train_images)
    edges, counts = ds.pixel_histogram(train["value_counts"], bins=32)
    return {"train": train, "test": ds.pixel_stats(test_images), "edges": edges,
            "counts": counts, "class_means": ds.class_mean_images(train_images, train_labels, n),
            "class_intensity": ds.class_mean_intensity(train_images, train_labels, n)}


@st.cache_data(max_entries=64, show_spinner=False)
def one_image(name: str, root: str, class_index: int, seed: int):
    images, labels = cached_split(name, train=True)
    picks = ds.samples_per_class(labels, len(get_dataset(name).classes), 1, seed)[class_index]
    return (images[picks[0]].copy(), int(picks[0])) if len(picks) else (None, None)


def _bump(key: str) -> None:
    st.session_state[key] = st.session_state.get(key, 0) + 1


def download_section(name: str) -> None:
    spec = get_dataset(name)
    st.write(f"Copy the files into `{data_root()}` (or point `{DATA_ENV}` at a folder that has them and restart "
             f"the app), or download them from torchvision's mirrors (about 30 MB, needs internet):")
    if st.button(f"Download {spec.title}", key="data_download", type="primary"):
        bar = st.progress(0.0, text="starting…")
        try:
            ds.download_dataset(name, data_root(), progress=lambda f, text: bar.progress(min(max(f, 0.0), 1.0), text))
        except DataUnavailableError as err:
            bar.empty()
            st.error(f"Download failed: {err}")
            return
        st.success(f"{spec.title} is ready.")
        st.rerun()


st.title("Data")
st.caption("Look at a dataset before training on it. Everything here reads the same files, splits and "
           "augmentation code the training loop uses.")
dataset = dataset_picker(key="data_dataset")
spec = get_dataset(dataset)
root = str(data_root())
names = list(spec.classes)

if data_missing_notice(dataset):
    download_section(dataset)
    st.stop()

try:
    strips = sample_strips(dataset, root, st.session_state.get("data_sample_seed", 0))
except DataUnavailableError as err:
    st.error(f"The dataset files are there but cannot be read: {err}")
    st.stop()

# ---- samples ------------------------------------------------------------------------------------------
head, button = st.columns([4, 1], vertical_alignment="bottom")
head.subheader("Random samples per class")
button.button("Reshuffle", key="data_reshuffle", on_click=_bump, args=("data_sample_seed",), icon="🔀")
for class_name, strip in zip(names, strips, strict=True):
    label, picture = st.columns([1, 6], vertical_alignment="center")
    label.markdown(f"**{class_name}**")
    picture.image(strip, output_format="PNG")

# ---- class balance ------------------------------------------------------------------------------------
st.subheader("Class balance of the splits")
lo, hi = field_bounds("val_fraction")
c1, c2 = st.columns(2)
val_fraction = c1.slider("Validation fraction", float(lo), float(hi), 0.1, 0.01, key="data_val_fraction",
                         help=field_help()["val_fraction"])
seed = int(c2.number_input("Seed", 0, 2**31 - 1, 0, key="data_split_seed", help=field_help()["seed"]))
counts = balance(dataset, root, val_fraction, seed)
rows = ds.balance_rows(counts, names)
fig = go.Figure([go.Bar(name=split, x=names, y=[r[f"{split} %"] for r in rows],
                        customdata=[r[split] for r in rows], hovertemplate="%{x}: %{y:.2f}% (%{customdata} images)")
                 for split in ds.SPLITS])
fig.update_layout(barmode="group", yaxis_title="% of the split", height=320, margin=dict(t=10, b=10))
st.plotly_chart(fig, key="data_balance_chart")
totals = {split: int(counts[split].sum()) for split in ds.SPLITS}
st.caption(" · ".join(f"{split}: {totals[split]:,} images, largest/smallest class "
                      f"{ds.imbalance_ratio(counts[split]):.2f}×" for split in ds.SPLITS)
           + ". The split is cut as training cuts it, for this validation fraction and seed.")
st.dataframe(rows, hide_index=True, key="data_balance_table")

# ---- pixel statistics ---------------------------------------------------------------------------------
st.subheader("Pixel intensities")
px = pixels(dataset, root)
m1, m2, m3, m4 = st.columns(4)
m1.metric("Train mean", f"{px['train']['mean']:.4f}")
m2.metric("Train std", f"{px['train']['std']:.4f}")
m3.metric("Test mean", f"{px['test']['mean']:.4f}")
m4.metric("Test std", f"{px['test']['std']:.4f}")
st.caption(f"On the 0..1 scale; {px['train']['zero_share']:.1%} of the training pixels are pure black. Training "
           "normalises with the mean and std of its own training split (a little different per validation cut).")
log_y = st.toggle("Logarithmic counts", value=True, key="data_hist_log")
edges = px["edges"]
hist = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2 - 0.5, y=px["counts"], width=edges[1] - edges[0],
                        customdata=list(zip(edges[:-1], edges[1:] - 1, strict=True)),
                        hovertemplate="values %{customdata[0]}–%{customdata[1]}: %{y:,} pixels<extra></extra>"))
hist.update_layout(xaxis_title="pixel value (0 = black, 255 = white)", yaxis_title="pixels (train split)",
                   yaxis_type="log" if log_y else "linear", height=300, margin=dict(t=10, b=10))
st.plotly_chart(hist, key="data_histogram")
st.markdown("**Average image of each class** (train split)")
st.image(ds.image_strip(px["class_means"], size=84, gap=4), output_format="PNG",
         caption=" · ".join(f"{n} {v:.2f}" for n, v in zip(names, px["class_intensity"], strict=True)))

# ---- augmentation preview -----------------------------------------------------------------------------
st.subheader("Augmentation preview")
st.caption("Variants made by `core.data.augment.augment_batch`, the very function that augments each training "
           "batch. The flags start at the `fast` preset's values for this dataset.")
preset = PRESETS["fast"].config(dataset).augment()
a1, a2, a3 = st.columns([2, 2, 1])
class_index = a1.selectbox("Class", range(len(names)), format_func=lambda i: names[i], key="data_aug_class")
a3.button("Another image", key="data_aug_image", on_click=_bump, args=("data_aug_image_seed",))
a3.button("New draw", key="data_aug_draw", on_click=_bump, args=("data_aug_seed",))
with a2:
    translate = st.slider("Translate (px)", 0, int(field_bounds("translate")[1]), preset.translate,
                          key=f"data_aug_translate_{dataset}", help=field_help()["translate"])
    rotate = st.slider("Rotate (°)", 0.0, float(field_bounds("rotate")[1]), float(preset.rotate), 1.0,
                       key=f"data_aug_rotate_{dataset}", help=field_help()["rotate"])
    erase = st.slider("Erase probability", 0.0, 1.0, float(preset.erase), 0.05, key=f"data_aug_erase_{dataset}",
                      help=field_help()["erase"])
with a1:
    hflip = st.checkbox("Flip left-right", preset.hflip, key=f"data_aug_hflip_{dataset}", help=field_help()["hflip"])
    vflip = st.checkbox("Flip top-bottom", preset.vflip, key=f"data_aug_vflip_{dataset}", help=field_help()["vflip"])
spec_aug = AugmentSpec(translate, hflip, vflip, rotate, erase)
image, index = one_image(dataset, root, class_index, st.session_state.get("data_aug_image_seed", 0))
if image is None:
    st.info(f"The training split has no image of class {names[class_index]}.")
else:
    variants = ds.augment_preview(image, spec_aug, VARIANTS, st.session_state.get("data_aug_seed", 0))
    tile_grid([(image, f"original #{index}")] + [(v, f"variant {i + 1}") for i, v in enumerate(variants)],
              per_row=1 + VARIANTS // 2)
    if not spec_aug.active:
        st.caption("No augmentation selected: every variant equals the original.")
