"""``keras.utils``: :func:`to_categorical`."""

from ..utils import to_categorical

__all__ = ["to_categorical"]
