"""mnist-studio core: data, models, training, metrics and the run store (no Streamlit here)."""
