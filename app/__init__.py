"""The Streamlit pages: one script a page, thin views over core; routed by streamlit_app.py."""
