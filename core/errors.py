"""Exceptions for bad input. Each is a ``ValueError`` that names the problem for the user."""

from __future__ import annotations


class InputError(ValueError):
    """Base class: a user-supplied input cannot be used; the message says why."""


class ImageError(InputError):
    """An uploaded file is not a usable image (empty, truncated, not an image, too large)."""


class ModelFileError(InputError):
    """An uploaded model or class-names file cannot be used."""


class ModelUnavailable(InputError):
    """A model's weights are not on this machine; the message says which file and where."""


class MethodNotApplicable(InputError):
    """An attribution method cannot apply to this model (e.g. CAM without GAP + linear head)."""


class ParameterError(InputError):
    """A method or metric parameter is out of its allowed range."""


class DatasetError(InputError):
    """A folder or run store cannot be used as a dataset (empty, unknown labels, a run started with other settings)."""
