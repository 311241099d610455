"""Train page (coming in its own issue)."""

import streamlit as st

st.title("Train")
st.info("This page is being built.")
