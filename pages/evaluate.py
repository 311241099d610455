"""Evaluate page (coming in its own issue)."""

import streamlit as st

st.title("Evaluate")
st.info("This page is being built.")
