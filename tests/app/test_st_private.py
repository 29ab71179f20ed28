"""The one private Streamlit API the dashboard uses (``dashboard.st_private``) exists in the installed Streamlit and
behaves as the progress bar needs: a context variable that says whether code runs inside a cached function."""

from __future__ import annotations

from contextvars import ContextVar

import streamlit as st

from dashboard.st_private import in_cached_function


def test_the_private_flag_exists_and_is_set_inside_cached_functions():
    assert isinstance(in_cached_function, ContextVar)
    assert in_cached_function.get() is False

    @st.cache_data(show_spinner=False)
    def inside(_n: int) -> bool:
        return in_cached_function.get()

    st.cache_data.clear()
    assert inside(1) is True, f"streamlit {st.__version__} changed in_cached_function: update dashboard/st_private.py"
