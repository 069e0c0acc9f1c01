"""``keras.losses``: :mod:`convpool.losses`."""

from ..losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    MeanAbsoluteError,
    MeanSquaredError,
    SparseCategoricalCrossentropy,
    binary_crossentropy,
    categorical_crossentropy,
    get,
    mean_absolute_error,
    mean_squared_error,
    sparse_categorical_crossentropy,
)

#: Keras's short names.
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error

__all__ = [
    "BinaryCrossentropy", "CategoricalCrossentropy", "MAE", "MSE", "MeanAbsoluteError",
    "MeanSquaredError", "SparseCategoricalCrossentropy", "binary_crossentropy",
    "categorical_crossentropy", "get", "mae", "mean_absolute_error", "mean_squared_error",
    "mse", "sparse_categorical_crossentropy",
]
