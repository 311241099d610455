"""Compare page (coming in its own issue)."""

import streamlit as st

st.title("Compare")
st.info("This page is being built.")
