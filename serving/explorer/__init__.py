"""Streamlit explorer over the scorer, the feature store, data quality and the models.

`app.py` is the entry point (`make explorer`); the data-access modules (`data`, `runs`,
`scoring`) are plain functions that the pages call and the tests use without Streamlit.
"""
