"""Utilities, as ``keras.utils``: :func:`to_categorical`, :func:`set_random_seed`.

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

import random
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _random
from ._checks import as_array, check_int

__all__ = ["get_random_seed", "set_random_seed", "to_categorical"]


def set_random_seed(seed: int) -> None:
    """Make a script's random draws repeatable, as ``keras.utils.set_random_seed``.

    Seeds Python's :mod:`random`, NumPy's global generator
    (``numpy.random.seed``) and convpool's: from this call on, every layer,
    initializer, Dropout and ``fit`` created without a ``seed`` of its own
    takes the next generator of ``numpy.random.SeedSequence(seed)``.  A script
    that creates its layers and calls ``fit`` in the same order therefore
    draws the same weights, masks and shuffles on every run.  An explicit
    ``seed=`` argument still wins.

    Parameters
    ----------
    seed : int
        In [0, 2**32), the range ``numpy.random.seed`` accepts.

    Raises
    ------
    TypeError
        If seed is not an int.
    ValueError
        If seed is out of range.

    Examples
    --------
    >>> from convpool.layers import Dense
    >>> set_random_seed(7)
    >>> a = Dense(3)
    >>> a.build((None, 2))
    >>> set_random_seed(7)
    >>> b = Dense(3)
    >>> b.build((None, 2))
    >>> bool((a.get_weights()[0] == b.get_weights()[0]).all())
    True
    """
    seed = check_int(seed, "seed", minimum=0, requirement="an int in [0, 2**32)")
    if seed >= 2**32:
        raise ValueError(f"seed must be an int in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    _random.set_global_seed(seed)


def get_random_seed() -> int | None:
    """The seed of the last :func:`set_random_seed`, or None, as
    ``keras.utils.get_random_seed``."""
    return _random.global_seed()


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
