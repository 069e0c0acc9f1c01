"""Losses for training: each returns the mean loss over the batch and its gradient."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._checks import FloatArray, as_array

__all__ = ["softmax_cross_entropy", "LOSSES"]

#: A loss: ``f(output, y) -> (mean loss, gradient with respect to output)``.
#: ``y`` is the labels as given to :meth:`Sequential.evaluate` (any array_like).
Loss: TypeAlias = Callable[[NDArray[Any], ArrayLike], tuple[float, NDArray[Any]]]


def softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike) -> tuple[float, FloatArray]:
    """Softmax cross-entropy, averaged over the batch, and its gradient.

    Parameters
    ----------
    logits : array_like of shape (N, K)
        Unnormalised class scores.
    labels : array_like of shape (N,) (class indices in [0, K)) or (N, K)
        Integer labels, or one-hot / probability rows.

    Returns
    -------
    loss : float
        ``mean over n of -sum_k p[n, k] * log softmax(logits)[n, k]``.
    grad : ndarray of shape (N, K), logits' dtype (float32 for integer logits)
        ``(softmax(logits) - p) / N``.
    """
    logits = as_array(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (N, K), got shape {logits.shape}")
    dtype = logits.dtype if logits.dtype.kind == "f" else np.dtype(np.float32)
    n, k = logits.shape
    labels = as_array(labels, "labels")
    if labels.shape == (n,):
        if labels.dtype.kind not in "iu":
            raise TypeError(f"class-index labels must be integers, got dtype {labels.dtype}")
        if n and (labels.min() < 0 or labels.max() >= k):
            raise ValueError(f"labels must lie in [0, {k}), got [{labels.min()}, {labels.max()}]")
    elif labels.shape != (n, k):
        raise ValueError(
            f"labels must have shape (N,) = ({n},) or (N, K) = {(n, k)}, got {labels.shape}"
        )
    if n == 0:
        return 0.0, np.zeros((0, k), dtype)
    # One float64 work array, updated in place: z - max, then log softmax,
    # then the gradient (no one-hot target is built for class indices).
    z = np.array(logits, dtype=np.float64)
    z -= z.max(axis=1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=1, keepdims=True))
    if labels.shape == (n,):
        rows = np.arange(n)
        loss = float(-z[rows, labels].sum() / n)
        np.exp(z, out=z)
        z[rows, labels] -= 1
    else:
        target = labels.astype(np.float64, copy=False)
        loss = float(-(target * z).sum() / n)
        np.exp(z, out=z)
        z -= target
    z /= n
    return loss, z.astype(dtype)


#: Losses by name, for :meth:`Sequential.fit`.
LOSSES: dict[str, Loss] = {"softmax_cross_entropy": softmax_cross_entropy}
