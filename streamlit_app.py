"""mnist-studio: the Streamlit entry point (the pages are on their way)."""

import streamlit as st

st.set_page_config(page_title="mnist-studio", page_icon="🔢", layout="wide")
st.title("mnist-studio")
st.write("Train, inspect and use image classifiers on MNIST and Fashion-MNIST. The pages are coming.")
