"""Home: what mnist-studio does, and a way into each page."""

import streamlit as st

from app.components.warmup import warm_up_imports
from core.views.catalog import run_table_rows

st.title("mnist-studio")
st.write(
    "A workbench for small image classifiers on **MNIST** (handwritten digits) and **Fashion-MNIST** "
    "(clothing). Train a model and watch it learn, see exactly where it goes wrong, draw a digit and see "
    "what every model reads and why, and compare models side by side. Pretrained models are ready to use."
)
col1, col2, col3 = st.columns(3)
with col1:
    st.page_link("app/train.py", label="Train a model", icon="🏋️")
    st.caption("Pick an architecture and hyperparameters, watch loss and accuracy live, stop and resume.")
    st.page_link("app/data.py", label="Look at the data", icon="🗂️")
    st.caption("Samples per class, class balance, pixel statistics, augmentation preview.")
with col2:
    st.page_link("app/evaluate.py", label="Evaluate a model", icon="🔬")
    st.caption("Per-class metrics, a clickable confusion matrix, misclassified galleries.")
    st.page_link("app/predict.py", label="Draw or upload", icon="✏️")
    st.caption("What each model predicts for your drawing or photo, and why.")
with col3:
    st.page_link("app/compare.py", label="Compare models", icon="⚖️")
    st.caption("Side-by-side metrics, per-class gains, the images one model fixes, McNemar's test.")
    st.page_link("app/experiments.py", label="Run an experiment", icon="🧪")
    st.caption("Vary a setting, repeat with seeds, read each effect with its error bar; ready-made ablations.")

rows = run_table_rows()
st.subheader("Models available now")
if rows:
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "test accuracy": st.column_config.NumberColumn(format="percent"),
        "macro F1": st.column_config.NumberColumn(format="%.4f"),
        "parameters": st.column_config.NumberColumn(format="localized"),
        "training s": st.column_config.NumberColumn(format="%.0f"),
    })
else:
    st.info("No models yet: train one on the Train page.")

warm_up_imports()  # torch and friends, for the page opened next (Home itself needs none of them)
