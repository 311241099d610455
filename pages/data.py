"""Data page (coming in its own issue)."""

import streamlit as st

st.title("Data")
st.info("This page is being built.")
