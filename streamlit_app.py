"""mnist-studio: the Streamlit entry point, a router over the page scripts in app/."""

import streamlit as st

from app.components.visitor import sidebar_access

st.set_page_config(page_title="mnist-studio", page_icon="🔢", layout="wide")

PAGES = [
    st.Page("app/home.py", title="Home", icon="🏠", default=True),
    st.Page("app/train.py", title="Train", icon="🏋️", url_path="train"),
    st.Page("app/data.py", title="Data", icon="🗂️", url_path="data"),
    st.Page("app/evaluate.py", title="Evaluate", icon="🔬", url_path="evaluate"),
    st.Page("app/predict.py", title="Predict", icon="✏️", url_path="predict"),
    st.Page("app/compare.py", title="Compare", icon="⚖️", url_path="compare"),
    st.Page("app/experiments.py", title="Experiments", icon="🧪", url_path="experiments"),
]

page = st.navigation(PAGES)
sidebar_access()  # guest mode: what a guest may do, and the owner's sign-in
page.run()
