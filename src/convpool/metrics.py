"""Metrics, as Keras 3's: per-sample functions and the names ``compile`` takes.

Each function returns the per-sample values, as ``keras.metrics`` does (a
float32 array of 1.0 for a hit and 0.0 for a miss for the accuracies); a
batch's metric is their mean, and an epoch's is the mean over all its samples
(weight each batch's mean by its sample count, as Keras's ``Mean`` metric
accumulates).  :func:`get` turns what ``compile(metrics=[...])`` takes into a
``(name, fn)`` pair with ``fn(y_true, y_pred) -> float``.

Examples
--------
>>> import numpy as np
>>> from convpool import metrics
>>> metrics.sparse_categorical_accuracy([2, 1], [[0.1, 0.6, 0.3], [0.05, 0.95, 0.0]])
array([0., 1.], dtype=float32)
>>> name, fn = metrics.get("accuracy", loss="binary_crossentropy", output_shape=(None, 1))
>>> name, fn([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]])
('accuracy', 0.75)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import losses
from ._checks import as_array, check_number
from .losses import _same_rank

__all__ = [
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "get",
]

#: A metric as :func:`get` returns it: ``fn(y_true, y_pred) -> float`` (the batch mean).
MetricFn: TypeAlias = Callable[[ArrayLike, ArrayLike], float]


def _arrays(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[NDArray[Any], NDArray[Any], str]:
    pred = as_array(y_pred, "y_pred")
    true = as_array(y_true, "y_true")
    for name, arr in (("y_true", true), ("y_pred", pred)):
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    return true, pred, f"y_true shape {true.shape}, y_pred shape {pred.shape}"


def binary_accuracy(y_true: ArrayLike, y_pred: ArrayLike, threshold: float = 0.5
                    ) -> NDArray[np.float32]:
    """Keras's ``binary_accuracy``: 1 where ``(y_pred > threshold) == y_true``.

    Parameters
    ----------
    y_true : array_like of shape (N, ..., K)
        0/1 targets (or of shape (N,) against a y_pred of shape (N, 1), as
        Keras's rank matching allows).
    y_pred : array_like of shape (N, ..., K)
        Probabilities (or scores: any threshold).
    threshold : float, default 0.5

    Returns
    -------
    ndarray of float32, the shape of the rank-matched inputs
        Element by element, as Keras's (it takes no mean over the last axis).
    """
    check_number(threshold, "threshold")
    true, pred, shapes = _arrays(y_true, y_pred)
    true, pred = _same_rank(true, pred)
    if true.shape != pred.shape:
        raise ValueError(f"binary_accuracy needs y_true and y_pred of the same shape, got {shapes}")
    hits = (pred > threshold).astype(true.dtype) == true
    return np.asarray(hits, dtype=np.float32)


def categorical_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> NDArray[np.float32]:
    """Keras's ``categorical_accuracy``: 1 where the argmaxes of y_true and y_pred agree.

    Parameters
    ----------
    y_true : array_like of shape (N, ..., K)
        One-hot (or probability) rows.
    y_pred : array_like of shape (N, ..., K)
        Probabilities or logits.

    Returns
    -------
    ndarray of float32 and shape (N, ...)
    """
    true, pred, shapes = _arrays(y_true, y_pred)
    if true.shape != pred.shape or pred.ndim == 0:
        raise ValueError(
            f"categorical_accuracy needs one-hot y_true of y_pred's shape (N, ..., K), "
            f"got {shapes}; for class indices use sparse_categorical_accuracy"
        )
    if pred.shape[-1] == 0:
        raise ValueError(f"categorical_accuracy needs at least one class, got {shapes}")
    hits = np.argmax(true, axis=-1) == np.argmax(pred, axis=-1)
    return np.asarray(hits, dtype=np.float32)


def sparse_categorical_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> NDArray[np.float32]:
    """Keras's ``sparse_categorical_accuracy``: 1 where ``argmax(y_pred) == y_true``.

    Parameters
    ----------
    y_true : array_like of shape (N, ...) or (N, ..., 1)
        Class indices (a label out of [0, K) never matches, as in Keras).
    y_pred : array_like of shape (N, ..., K)

    Returns
    -------
    ndarray of float32 and shape (N, ...)
    """
    true, pred, shapes = _arrays(y_true, y_pred)
    if pred.ndim == 0 or pred.shape[-1] == 0:
        raise ValueError(
            f"sparse_categorical_accuracy needs y_pred of shape (N, ..., K) with K >= 1, "
            f"got {shapes}"
        )
    if true.ndim == pred.ndim and true.shape[-1] == 1:
        true = true[..., 0]
    if true.shape != pred.shape[:-1]:
        raise ValueError(
            f"sparse_categorical_accuracy needs y_true of y_pred's shape without its last "
            f"(class) axis, {pred.shape[:-1]}, or with a trailing axis of 1; got {shapes}"
        )
    # Keras compares in y_pred's float dtype: a label 1.0 matches class 1.
    hits = true.astype(np.float64) == np.argmax(pred, axis=-1)
    return np.asarray(hits, dtype=np.float32)


def _mean(fn: Callable[..., Any]) -> MetricFn:
    def batch_mean(y_true: ArrayLike, y_pred: ArrayLike) -> float:
        values = np.asarray(fn(y_true, y_pred), dtype=np.float64)
        return float(values.mean()) if values.size else 0.0  # Keras's Mean: 0 over nothing

    batch_mean.__name__ = getattr(fn, "__name__", "metric")
    batch_mean.__doc__ = f"The batch mean of ``{batch_mean.__name__}(y_true, y_pred)``."
    return batch_mean


_NAMED: dict[str, Callable[..., Any]] = {
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "mse": losses.mean_squared_error,
    "mean_squared_error": losses.mean_squared_error,
    "mae": losses.mean_absolute_error,
    "mean_absolute_error": losses.mean_absolute_error,
    "categorical_crossentropy": losses.categorical_crossentropy,
    "sparse_categorical_crossentropy": losses.sparse_categorical_crossentropy,
    "binary_crossentropy": losses.binary_crossentropy,
}


def _accuracy_for(true: NDArray[Any], pred: NDArray[Any]) -> Callable[..., NDArray[np.float32]]:
    """Keras 3's choice for "accuracy" (``compile_utils.is_binary_or_sparse_categorical``)."""
    if pred.ndim and pred.shape[-1] == 1:
        return binary_accuracy
    if true.ndim < pred.ndim or (true.ndim and true.shape[-1] == 1 and pred.ndim
                                 and pred.shape[-1] > 1):
        return sparse_categorical_accuracy
    return categorical_accuracy


def _auto_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> NDArray[np.float32]:
    """Keras 3's choice for "accuracy", made from the shapes of each call."""
    true, pred, _ = _arrays(y_true, y_pred)
    return _accuracy_for(true, pred)(true, pred)


_auto_accuracy.__name__ = "accuracy"


def _loss_name(loss: object) -> str | None:
    if isinstance(loss, str):
        try:
            loss = losses.get(loss)
        except ValueError:  # not a loss name: fit reports it
            return None
    name = getattr(loss, "name", None)
    return name if isinstance(name, str) else None


def get(
    identifier: str | Callable[..., Any],
    loss: object = None,
    output_shape: Sequence[int | None] | None = None,
) -> tuple[str, MetricFn]:
    """A metric's reported name and batch-mean function, as Keras 3's ``compile`` makes them.

    Parameters
    ----------
    identifier : str or callable
        "accuracy" or "acc" (any case), "binary_accuracy",
        "categorical_accuracy", "sparse_categorical_accuracy", "mse" /
        "mean_squared_error", "mae" / "mean_absolute_error", a cross-entropy's
        name, or a callable ``f(y_true, y_pred)`` returning per-sample values
        (or a scalar).
    loss : str, loss instance or callable, optional
        The model's loss; only "accuracy" looks at it (see Notes).
    output_shape : tuple, optional
        The model's output shape (batch axis included, possibly None).

    Returns
    -------
    name : str
        What the logs call it: the string as given (so "acc" stays "acc"),
        or a callable's ``name`` / ``__name__``.
    fn : callable
        ``fn(y_true, y_pred) -> float``, the mean over the batch (0.0 for an
        empty batch, as Keras's ``Mean``).

    Notes
    -----
    Keras 3 resolves "accuracy" from the shapes of the first batch (not from
    the loss, as Keras 2 did): binary accuracy when y_pred's last axis is 1;
    sparse categorical accuracy when y_true has fewer axes than y_pred, or a
    last axis of 1 against more than one class; categorical accuracy
    otherwise.  So a 2-unit sigmoid output trained with binary_crossentropy
    on (N, 2) targets reports categorical accuracy, in Keras 3 as here.  The
    returned ``fn`` applies that rule to each batch it sees; ``output_shape``
    (a last axis of 1 -> binary) and ``loss`` (sparse_categorical_crossentropy
    -> sparse) settle it in advance where they agree with that rule.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    TypeError
        For anything that is neither a str nor callable.
    """
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            fn: Callable[..., Any] = _auto_accuracy
            if output_shape is not None and len(output_shape) and output_shape[-1] == 1:
                fn = binary_accuracy
            elif _loss_name(loss) == "sparse_categorical_crossentropy":
                fn = sparse_categorical_accuracy
            return identifier, _mean(fn)
        if key not in _NAMED:
            known = ", ".join(["accuracy", "acc", *_NAMED])
            raise ValueError(f"unknown metric {identifier!r}; known names: {known}")
        return identifier, _mean(_NAMED[key])
    if callable(identifier):
        name = getattr(identifier, "name", None) or getattr(identifier, "__name__", None)
        return str(name or type(identifier).__name__), _mean(identifier)
    raise TypeError(f"a metric must be a name or a callable, got {type(identifier).__name__}")
