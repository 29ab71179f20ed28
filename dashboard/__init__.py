"""The Streamlit dashboard (thin UI over explainers/, metrics/ and zoo/)."""
