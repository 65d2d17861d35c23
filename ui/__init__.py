"""The Streamlit UI (`streamlit run ui/app.py -- --index DIR`): pages over one ferindex index."""
