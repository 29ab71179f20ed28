"""The one private Streamlit API the dashboard relies on, in one place (``tests/app/test_st_private.py`` checks it
against the installed Streamlit): the flag that marks code running inside a cached function. The progress bar sets
it to False while it redraws from inside a cached computation, so the redraw is not replayed from the cache."""

from __future__ import annotations

from streamlit.runtime.scriptrunner_utils.script_run_context import in_cached_function

__all__ = ["in_cached_function"]
