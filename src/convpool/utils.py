"""Utilities, as ``keras.utils``: :func:`to_categorical`.

Examples
--------
>>> from convpool.utils import to_categorical
>>> to_categorical([0, 2, 1])
array([[1., 0., 0.],
       [0., 0., 1.],
       [0., 1., 0.]], dtype=float32)
>>> to_categorical([[1], [0]], num_classes=3).shape   # a trailing axis of 1 is dropped
(2, 3)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._checks import as_array, check_int

__all__ = ["to_categorical"]


def to_categorical(x: ArrayLike, num_classes: int | None = None) -> NDArray[np.float32]:
    """One-hot rows from class indices, as ``keras.utils.to_categorical``.

    Parameters
    ----------
    x : array_like of shape (...) or (..., 1)
        Class indices: integers, or floats with integral values.  A trailing
        axis of 1 (on an array of two axes or more) is dropped first, as Keras does.
    num_classes : int, optional
        At least 1; default ``max(x) + 1``.

    Returns
    -------
    ndarray of float32 and shape (..., num_classes)
        (Keras 3 returns float64 for a NumPy input and float32 for a tensor;
        float32 here, what the layers compute in.)

    Raises
    ------
    ValueError
        For a negative index, one >= num_classes, a non-integral float, or an
        empty ``x`` without ``num_classes``.
    TypeError
        For labels that are not numbers, or a num_classes that is not an int.
    """
    labels = as_array(x, "x")
    if labels.dtype.kind not in "biuf":
        raise TypeError(f"x must hold class indices (integers), got dtype {labels.dtype}")
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels.dtype.kind == "f" and labels.size:
        bad = ~np.isfinite(labels) | (np.floor(labels) != labels)
        if bad.any():
            raise ValueError(
                f"x must hold class indices (integers, or floats with integral values), "
                f"got {labels[bad].flat[0].item()!r} (x shape {labels.shape})"
            )
    if labels.size and labels.min() < 0:
        raise ValueError(f"x must hold class indices >= 0, got {labels.min().item()!r}")
    if num_classes is None:
        if labels.size == 0:
            raise ValueError("x is empty: pass num_classes to say how many classes there are")
        k = int(labels.max()) + 1
    else:
        k = check_int(num_classes, "num_classes", requirement="a positive int or None")
        if labels.size and labels.max() >= k:
            raise ValueError(
                f"x holds the class index {labels.max().item()!r}, out of range for "
                f"num_classes={k} (indices in [0, {k}))"
            )
    flat = labels.reshape(-1).astype(np.intp)
    out: NDArray[Any] = np.zeros((flat.size, k), np.float32)
    out[np.arange(flat.size), flat] = 1
    return out.reshape(labels.shape + (k,))
