"""mnist-studio: the Streamlit entry point, a router over the pages in pages/."""

import streamlit as st

from pages._shared import ROUTED

st.set_page_config(page_title="mnist-studio", page_icon="🔢", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/train.py", title="Train", icon="🏋️", url_path="train"),
    st.Page("pages/data.py", title="Data", icon="🗂️", url_path="data"),
    st.Page("pages/evaluate.py", title="Evaluate", icon="🔬", url_path="evaluate"),
    st.Page("pages/predict.py", title="Predict", icon="✏️", url_path="predict"),
    st.Page("pages/compare.py", title="Compare", icon="⚖️", url_path="compare"),
]

st.session_state[ROUTED] = True  # see pages._shared.serve_through_router
st.navigation(PAGES).run()
