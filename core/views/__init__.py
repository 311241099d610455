"""Pure view models the pages render: tables, figures' data and labels, no Streamlit."""
