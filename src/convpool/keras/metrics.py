"""``keras.metrics``: :mod:`convpool.metrics`'s accuracy functions."""

from ..metrics import binary_accuracy, categorical_accuracy, get, sparse_categorical_accuracy

__all__ = ["binary_accuracy", "categorical_accuracy", "get", "sparse_categorical_accuracy"]
