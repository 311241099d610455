"""Predict page (coming in its own issue)."""

import streamlit as st

st.title("Predict")
st.info("This page is being built.")
