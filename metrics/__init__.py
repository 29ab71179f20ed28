"""Quantitative metrics (deletion/insertion, sanity checks, sensitivity): filled by the metric issues."""
