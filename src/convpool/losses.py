"""Losses for training: the mean loss over the batch and its gradient.

Two conventions live here:

* convpool's :data:`Loss`, ``f(output, y) -> (mean loss, gradient with
  respect to output)``, which :meth:`Sequential.fit` calls
  (:func:`softmax_cross_entropy` is one);
* Keras 3's losses, as classes (:class:`CategoricalCrossentropy`,
  :class:`SparseCategoricalCrossentropy`, :class:`BinaryCrossentropy`,
  :class:`MeanSquaredError`, :class:`MeanAbsoluteError`) and as functions of
  the same snake-case names returning the per-sample loss.  An instance is
  called in Keras's order, ``loss(y_true, y_pred) -> float``; a training loop
  calls its :meth:`~CategoricalCrossentropy.value_and_grad` instead, which
  follows convpool's convention (prediction first, and the gradient too).

The Keras losses follow Keras 3's definitions: the per-sample loss is taken
along the last axis (the sum over the classes for the cross-entropies, the mean
over the outputs for the binary cross-entropy and the mean errors), and the
reduction is the mean of the per-sample losses over every remaining axis
("sum_over_batch_size").  Probabilities are clipped to ``[eps, 1 - eps]`` with
``eps = 1e-7`` (``keras.backend.epsilon()``), and the categorical ones are
first divided by their sum over the classes, as Keras's backends do (for the
sparse loss, Keras's TensorFlow backend alone clips first and normalises the
clipped values: the two agree unless a probability is clipped);
``from_logits=True`` uses the log-sum-exp and log-sigmoid forms, which never
overflow.  Everything is computed in float64; results come back in the
prediction's dtype (float32 for integer, bool and float16 predictions).

Examples
--------
>>> import numpy as np
>>> from convpool import losses
>>> y_true = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
>>> y_pred = np.array([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]])
>>> losses.categorical_crossentropy(y_true, y_pred).round(4)
array([0.0513, 2.3026])
>>> cce = losses.CategoricalCrossentropy()
>>> round(cce(y_true, y_pred), 4)
1.1769
>>> value, grad = cce.value_and_grad(y_pred, y_true)   # the training loop's order
>>> grad.shape
(2, 3)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._checks import FloatArray, as_array, check_bool, compute_dtype

__all__ = [
    "softmax_cross_entropy",
    "LOSSES",
    "KerasLoss",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "BinaryCrossentropy",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "binary_crossentropy",
    "mean_squared_error",
    "mean_absolute_error",
    "get",
]

#: A loss: ``f(output, y) -> (mean loss, gradient with respect to output)``.
#: ``y`` is the labels as given to :meth:`Sequential.evaluate` (any array_like).
Loss: TypeAlias = Callable[[NDArray[Any], ArrayLike], tuple[float, NDArray[Any]]]

#: What :meth:`KerasLoss.fused` returns: ``f(probabilities, y_true) -> (mean
#: loss, gradient with respect to the logits before the activation)``.
FusedLoss: TypeAlias = Callable[[ArrayLike, ArrayLike], tuple[float, FloatArray]]

#: Keras's ``backend.epsilon()``: probabilities are clipped to [EPSILON, 1 - EPSILON].
EPSILON = 1e-7


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
    _log_softmax(z, out=z)
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


# ------------------------------------------------------------------- checks
def _shapes(y_true: NDArray[Any], y_pred: NDArray[Any]) -> str:
    return f"y_true shape {y_true.shape}, y_pred shape {y_pred.shape}"


def _same_rank(
    a: NDArray[Any], b: NDArray[Any]
) -> tuple[NDArray[Any], NDArray[Any]]:
    """Keras's ``squeeze_or_expand_to_same_rank``: when the ranks differ by one
    and the longer array ends in an axis of 1, squeeze it (or, when the shorter
    is 1-D, give the shorter a trailing axis of 1).  Views, never copies."""
    if a.ndim == b.ndim + 1 and a.shape[-1] == 1:
        if b.ndim == 1:
            b = b[..., np.newaxis]
        else:
            a = a[..., 0]
    elif b.ndim == a.ndim + 1 and b.shape[-1] == 1:
        if a.ndim == 1:
            a = a[..., np.newaxis]
        else:
            b = b[..., 0]
    return a, b


def _read(
    y_true: ArrayLike, y_pred: ArrayLike, same_rank: bool
) -> tuple[NDArray[Any], NDArray[Any], np.dtype[np.floating[Any]], str]:
    """Both arrays as given (after Keras's rank matching when ``same_rank``),
    the prediction's result dtype, and the original shapes for messages."""
    pred = as_array(y_pred, "y_pred")
    dtype = compute_dtype(pred, "y_pred")
    true = as_array(y_true, "y_true")
    if true.dtype.kind not in "biuf":
        raise TypeError(f"y_true must hold numbers, got dtype {true.dtype} ({_shapes(true, pred)})")
    shapes = _shapes(true, pred)
    if same_rank:
        true, pred = _same_rank(true, pred)
    if pred.ndim == 0:
        raise ValueError(f"y_pred must have at least one axis, got {shapes}")
    return true, pred, dtype, shapes


def _check_same_shape(true: NDArray[Any], pred: NDArray[Any], what: str, shapes: str) -> None:
    if true.shape != pred.shape:
        raise ValueError(f"{what} needs y_true and y_pred of the same shape, got {shapes}")


def _check_classes(pred: NDArray[Any], what: str, shapes: str) -> None:
    if pred.shape[-1] == 0:
        raise ValueError(f"{what} needs at least one class on y_pred's last axis, got {shapes}")
    if pred.shape[-1] == 1:
        warnings.warn(
            f"{what} expects y_pred of shape (batch_size, num_classes) with num_classes > 1, "
            f"got {shapes}; consider binary_crossentropy for 2 classes",
            SyntaxWarning,  # Keras's category for this warning
            stacklevel=3,
        )


def _sparse_labels(true: NDArray[Any], pred: NDArray[Any], shapes: str) -> NDArray[np.intp]:
    """Class indices of y_pred's shape without the class axis, checked to be
    integral (integers, bools or integral floats) and in [0, K)."""
    if true.ndim == pred.ndim and true.shape[-1] == 1:
        true = true[..., 0]
    if true.shape != pred.shape[:-1]:
        raise ValueError(
            f"sparse_categorical_crossentropy needs y_true of y_pred's shape without its "
            f"last (class) axis, {pred.shape[:-1]}, or with a trailing axis of 1; got {shapes}"
        )
    k = pred.shape[-1]
    if k == 0:
        raise ValueError(
            f"sparse_categorical_crossentropy needs at least one class on y_pred's last "
            f"axis, got {shapes}"
        )
    if true.dtype.kind == "f" and true.size:
        bad = ~np.isfinite(true) | (np.floor(true) != true)
        if bad.any():
            raise ValueError(
                f"y_true must hold class indices (integers, or floats with integral values), "
                f"got {true[bad].flat[0].item()!r} ({shapes})"
            )
    if true.size:
        low, high = true.min(), true.max()
        if low < 0 or high >= k:
            raise ValueError(
                f"y_true class indices must lie in [0, {k}) for y_pred's {k} classes, "
                f"got values in [{low}, {high}] ({shapes})"
            )
    return true.astype(np.intp)


# ----------------------------------------------------------- the computations
# Each core takes float64 copies (and class indices for the sparse one) and
# returns the per-sample losses and, when asked, the gradient of their *sum*
# with respect to the prediction; the reductions divide by the sample count.

_Core: TypeAlias = tuple[NDArray[np.float64], NDArray[np.float64] | None]


def _log_softmax(z: NDArray[np.float64], *, out: NDArray[np.float64] | None = None
                 ) -> NDArray[np.float64]:
    """log softmax over the last axis, shifted by the row maximum first; into
    ``out`` (which may be ``z`` itself) or a new array."""
    if out is None:
        out = np.empty_like(z)
    np.subtract(z, z.max(axis=-1, keepdims=True), out=out)
    out -= np.log(np.exp(out).sum(axis=-1, keepdims=True))
    return out


def _normalised_clipped(
    p: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(sum over the classes, p / sum, that clipped to [eps, 1 - eps])."""
    with np.errstate(divide="ignore", invalid="ignore"):
        total = p.sum(axis=-1, keepdims=True)
        q = p / total
    return total, q, np.clip(q, EPSILON, 1 - EPSILON)


def _in_clip_range(q: NDArray[np.float64]) -> NDArray[np.bool_]:
    # clip's gradient, as TensorFlow's: 1 inside [eps, 1 - eps], bounds included.
    return (q >= EPSILON) & (q <= 1 - EPSILON)


def _categorical_core(t: NDArray[np.float64], p: NDArray[np.float64], from_logits: bool,
                      grad: bool) -> _Core:
    if from_logits:
        log_p = _log_softmax(p)
        per = -(t * log_p).sum(axis=-1)
        if not grad:
            return per, None
        # d/dz of -sum_k t_k log softmax(z)_k = softmax(z) * sum_k t_k - t
        return per, np.exp(log_p) * t.sum(axis=-1, keepdims=True) - t
    total, q, c = _normalised_clipped(p)
    with np.errstate(divide="ignore"):
        per = -(t * np.log(c)).sum(axis=-1)
    if not grad:
        return per, None
    # L = -sum_k t_k log clip(q_k), q = p / S: dL/dp_j = -(r_j - sum_k r_k q_k) / S
    # with r = t / clip(q) where q is inside the clip range, 0 elsewhere.
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(_in_clip_range(q), t / c, 0.0)
        return per, -(r - (r * q).sum(axis=-1, keepdims=True)) / total


def _sparse_core(labels: NDArray[np.intp], p: NDArray[np.float64], from_logits: bool,
                 grad: bool) -> _Core:
    index = labels[..., np.newaxis]
    if from_logits:
        log_p = _log_softmax(p)
        per = -np.take_along_axis(log_p, index, axis=-1)[..., 0]
        if not grad:
            return per, None
        g = np.exp(log_p)
        np.put_along_axis(g, index, np.take_along_axis(g, index, axis=-1) - 1, axis=-1)
        return per, g
    total, q, c = _normalised_clipped(p)
    c_y = np.take_along_axis(c, index, axis=-1)
    per = -np.log(c_y)[..., 0]
    if not grad:
        return per, None
    # As the categorical core with a one-hot t, r = t / clip(q) has one entry, r_y:
    # dL/dp_j = (r_y q_y - [j == y] r_y) / S.
    with np.errstate(divide="ignore", invalid="ignore"):
        q_y = np.take_along_axis(q, index, axis=-1)
        r_y = np.where(_in_clip_range(q_y), 1 / c_y, 0.0)
        g = np.repeat(r_y * q_y / total, p.shape[-1], axis=-1)
        np.put_along_axis(g, index, np.take_along_axis(g, index, axis=-1) - r_y / total, axis=-1)
    return per, g


def _sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _mean_last(e: NDArray[np.float64], de: NDArray[np.float64] | None) -> _Core:
    """Per-sample means over the last axis, and the gradient of their sum."""
    k = e.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        per = e.sum(axis=-1) / k
        return per, None if de is None else de / k


def _binary_core(t: NDArray[np.float64], p: NDArray[np.float64], from_logits: bool,
                 grad: bool) -> _Core:
    if from_logits:
        # TensorFlow's sigmoid_cross_entropy_with_logits: max(x, 0) - x t + log1p(exp(-|x|))
        e = np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))
        return _mean_last(e, _sigmoid(p) - t if grad else None)
    c = np.clip(p, EPSILON, 1 - EPSILON)
    e = -(t * np.log(c) + (1 - t) * np.log(1 - c))
    if not grad:
        return _mean_last(e, None)
    # d/dc of -(t log c + (1 - t) log(1 - c)) = (c - t) / (c (1 - c))
    return _mean_last(e, np.where(_in_clip_range(p), (c - t) / (c * (1 - c)), 0.0))


def _squared_core(t: NDArray[np.float64], p: NDArray[np.float64], grad: bool) -> _Core:
    d = p - t
    return _mean_last(d * d, 2 * d if grad else None)


def _absolute_core(t: NDArray[np.float64], p: NDArray[np.float64], grad: bool) -> _Core:
    d = p - t
    return _mean_last(np.abs(d), np.sign(d) if grad else None)


def _f64(a: NDArray[Any]) -> NDArray[np.float64]:
    return np.array(a, dtype=np.float64)  # always a copy: the caller's array is never written


def _reduce(per: NDArray[np.float64], grad_sum: NDArray[np.float64] | None,
            pred_shape: tuple[int, ...], dtype: np.dtype[np.floating[Any]]
            ) -> tuple[float, FloatArray]:
    """Keras's "sum_over_batch_size": the mean of the per-sample losses, and its gradient."""
    count = per.size
    if count == 0:
        return 0.0, np.zeros(pred_shape, dtype)
    value = float(per.sum() / count)
    if grad_sum is None:
        return value, np.zeros(0, dtype)
    grad_sum /= count
    return value, grad_sum.astype(dtype).reshape(pred_shape)


# -------------------------------------------------------------- the functions
def categorical_crossentropy(
    y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False
) -> FloatArray:
    """Keras's ``categorical_crossentropy``: the per-sample loss.

    Parameters
    ----------
    y_true : array_like of shape (N, ..., K)
        One-hot (or probability) rows.
    y_pred : array_like of shape (N, ..., K), same shape as y_true
        Probabilities (divided by their sum over K, then clipped to
        ``[1e-7, 1 - 1e-7]``), or logits when ``from_logits``.
    from_logits : bool, default False

    Returns
    -------
    ndarray of shape (N, ...), y_pred's float dtype
        ``-sum_k y_true[..., k] * log(p[..., k])``.
    """
    from_logits = check_bool(from_logits, "from_logits")
    true, pred, dtype, shapes = _read(y_true, y_pred, same_rank=False)
    _check_same_shape(true, pred, "categorical_crossentropy", shapes)
    _check_classes(pred, "categorical_crossentropy", shapes)
    per, _ = _categorical_core(_f64(true), _f64(pred), from_logits, grad=False)
    return per.astype(dtype)


def sparse_categorical_crossentropy(
    y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False
) -> FloatArray:
    """Keras's ``sparse_categorical_crossentropy``: the per-sample loss.

    Parameters
    ----------
    y_true : array_like of shape (N, ...) or (N, ..., 1)
        Class indices in [0, K): integers, or floats with integral values.
    y_pred : array_like of shape (N, ..., K)
        Probabilities (divided by their sum, then clipped to ``[1e-7, 1 - 1e-7]``),
        or logits when ``from_logits``.
    from_logits : bool, default False

    Returns
    -------
    ndarray of shape (N, ...), y_pred's float dtype
        ``-log(p[..., y_true])``.
    """
    from_logits = check_bool(from_logits, "from_logits")
    true, pred, dtype, shapes = _read(y_true, y_pred, same_rank=False)
    labels = _sparse_labels(true, pred, shapes)
    per, _ = _sparse_core(labels, _f64(pred), from_logits, grad=False)
    return per.astype(dtype)


def binary_crossentropy(
    y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False
) -> FloatArray:
    """Keras's ``binary_crossentropy``: the per-sample loss.

    Parameters
    ----------
    y_true : array_like of shape (N, ..., K)
        Targets in [0, 1].
    y_pred : array_like of shape (N, ..., K), same shape as y_true
        Probabilities (clipped to ``[1e-7, 1 - 1e-7]``), or logits when
        ``from_logits``.
    from_logits : bool, default False

    Returns
    -------
    ndarray of shape (N, ...), y_pred's float dtype
        The mean over the last axis of ``-(t log p + (1 - t) log(1 - p))``
        (a 0-d array for 1-D inputs, as Keras's).
    """
    from_logits = check_bool(from_logits, "from_logits")
    true, pred, dtype, shapes = _read(y_true, y_pred, same_rank=False)
    _check_same_shape(true, pred, "binary_crossentropy", shapes)
    per, _ = _binary_core(_f64(true), _f64(pred), from_logits, grad=False)
    return per.astype(dtype)


def mean_squared_error(y_true: ArrayLike, y_pred: ArrayLike) -> FloatArray:
    """Keras's ``mean_squared_error``: the per-sample loss.

    Parameters
    ----------
    y_true, y_pred : array_like of shape (N, ..., K)
        The same shape, or one of them with an extra trailing axis of 1
        (squeezed, or added to a 1-D other, as Keras does).

    Returns
    -------
    ndarray of shape (N, ...), y_pred's float dtype
        ``mean((y_true - y_pred) ** 2, axis=-1)``.
    """
    true, pred, dtype, shapes = _read(y_true, y_pred, same_rank=True)
    _check_same_shape(true, pred, "mean_squared_error", shapes)
    per, _ = _squared_core(_f64(true), _f64(pred), grad=False)
    return per.astype(dtype)


def mean_absolute_error(y_true: ArrayLike, y_pred: ArrayLike) -> FloatArray:
    """Keras's ``mean_absolute_error``: the per-sample loss.

    Parameters
    ----------
    y_true, y_pred : array_like of shape (N, ..., K)
        As in :func:`mean_squared_error`.

    Returns
    -------
    ndarray of shape (N, ...), y_pred's float dtype
        ``mean(abs(y_true - y_pred), axis=-1)``.
    """
    true, pred, dtype, shapes = _read(y_true, y_pred, same_rank=True)
    _check_same_shape(true, pred, "mean_absolute_error", shapes)
    per, _ = _absolute_core(_f64(true), _f64(pred), grad=False)
    return per.astype(dtype)


# ---------------------------------------------------------------- the classes
class KerasLoss:
    """Base of the Keras-style losses.

    An instance is called in Keras's order, ``loss(y_true, y_pred) -> float``
    (the mean over the batch).  A training loop calls
    :meth:`value_and_grad` instead, which follows convpool's :data:`Loss`
    convention, and may call :meth:`fused` to skip the backward pass of the
    output activation.  Arguments are checked as the functions check them,
    after Keras's rank matching (``y_true`` of shape (N,) against ``y_pred``
    of shape (N, 1) is read as (N, 1)).

    Attributes
    ----------
    name : str
        Keras's snake-case name.
    from_logits : bool
    """

    name: str = ""
    from_logits: bool = False
    #: The output activation whose backward pass :meth:`fused` folds in.
    _fuses: str | None = None

    def __call__(self, y_true: ArrayLike, y_pred: ArrayLike) -> float:
        """The mean loss over the batch, in Keras's argument order."""
        return self._evaluate(y_true, y_pred, grad=False)[0]

    def value_and_grad(self, y_pred: ArrayLike, y_true: ArrayLike) -> tuple[float, FloatArray]:
        """The mean loss and its gradient: convpool's :data:`Loss` convention.

        Parameters
        ----------
        y_pred : array_like of shape (N, ..., K)
            The model's output.
        y_true : array_like
            The targets, as the loss's function takes them.

        Returns
        -------
        loss : float
            The mean over the batch of the per-sample loss (0.0 for an empty batch).
        grad : ndarray of y_pred's shape, y_pred's float dtype
            The gradient of ``loss`` with respect to ``y_pred``, computed in float64.
        """
        return self._evaluate(y_true, y_pred, grad=True)

    def fused(self, activation: object) -> FusedLoss | None:
        """The loss and the gradient with respect to the logits before ``activation``.

        Parameters
        ----------
        activation : str or None
            The model's output activation.

        Returns
        -------
        callable or None
            For a probability loss (``from_logits=False``) whose natural
            activation is ``activation`` ("softmax" for the categorical
            cross-entropies, "sigmoid" for the binary one),
            ``f(probabilities, y_true) -> (loss, grad)``: ``loss`` is this
            loss's value on the probabilities (clipped as Keras clips them)
            and ``grad`` the closed-form gradient with respect to the logits
            (``(p - t) / N`` for the categorical ones, ``(p - t) / (N * K)``
            for the binary one), which is what back-propagating
            :meth:`value_and_grad` through the activation gives, without its
            cancellation when ``p`` is near 0 or 1.  None for any other pair.
        """
        if self.from_logits or self._fuses is None:
            return None
        if not isinstance(activation, str) or activation.lower() != self._fuses:
            return None
        return self._fused

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments and the name, as Keras's ``get_config``."""
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"

    # ---- for the subclasses
    def _prepare(self, y_true: ArrayLike, y_pred: ArrayLike
                 ) -> tuple[NDArray[Any], NDArray[np.float64], np.dtype[np.floating[Any]],
                            tuple[int, ...]]:
        """(targets ready for the core, y_pred as float64, the result dtype,
        y_pred's shape as given)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _core(self, true: NDArray[Any], pred: NDArray[np.float64], grad: bool) -> _Core:
        raise NotImplementedError  # pragma: no cover - abstract

    def _logit_grad(self, true: NDArray[Any], probs: NDArray[np.float64]) -> NDArray[np.float64]:
        """The gradient of the per-sample losses' sum with respect to the logits."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _evaluate(self, y_true: ArrayLike, y_pred: ArrayLike, grad: bool
                  ) -> tuple[float, FloatArray]:
        true, pred, dtype, shape = self._prepare(y_true, y_pred)
        per, grad_sum = self._core(true, pred, grad)
        return _reduce(per, grad_sum, shape, dtype)

    def _fused(self, probs: ArrayLike, y_true: ArrayLike) -> tuple[float, FloatArray]:
        true, pred, dtype, shape = self._prepare(y_true, probs)
        per, _ = self._core(true, pred, grad=False)
        return _reduce(per, self._logit_grad(true, pred), shape, dtype)


class _FromLogits(KerasLoss):
    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = check_bool(from_logits, "from_logits")

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "from_logits": self.from_logits}


class CategoricalCrossentropy(_FromLogits):
    """Keras's ``CategoricalCrossentropy``: one-hot (or probability) targets.

    ``loss = mean over the samples of -sum_k y_true[..., k] * log(p[..., k])``;
    see :func:`categorical_crossentropy`.  :meth:`fused` with "softmax" gives
    the gradient ``(p - t) / N`` with respect to the logits (for targets that
    sum to s, ``(s p - t) / N``).

    Parameters
    ----------
    from_logits : bool, default False
        y_pred holds logits (log-softmax is used) instead of probabilities.
    """

    name = "categorical_crossentropy"
    _fuses = "softmax"

    def _prepare(self, y_true: ArrayLike, y_pred: ArrayLike
                 ) -> tuple[NDArray[Any], NDArray[np.float64], np.dtype[np.floating[Any]],
                            tuple[int, ...]]:
        shape = np.shape(y_pred)
        true, pred, dtype, shapes = _read(y_true, y_pred, same_rank=True)
        _check_same_shape(true, pred, self.name, shapes)
        _check_classes(pred, self.name, shapes)
        return _f64(true), _f64(pred), dtype, shape

    def _core(self, true: NDArray[Any], pred: NDArray[np.float64], grad: bool) -> _Core:
        return _categorical_core(true, pred, self.from_logits, grad)

    def _logit_grad(self, true: NDArray[Any], probs: NDArray[np.float64]) -> NDArray[np.float64]:
        grad: NDArray[np.float64] = probs * true.sum(axis=-1, keepdims=True) - true
        return grad


class SparseCategoricalCrossentropy(_FromLogits):
    """Keras's ``SparseCategoricalCrossentropy``: class-index targets.

    ``loss = mean over the samples of -log(p[..., y_true])``; see
    :func:`sparse_categorical_crossentropy`.  :meth:`fused` with "softmax"
    gives ``(p - onehot(y_true)) / N`` with respect to the logits.

    Parameters
    ----------
    from_logits : bool, default False
    """

    name = "sparse_categorical_crossentropy"
    _fuses = "softmax"

    def _prepare(self, y_true: ArrayLike, y_pred: ArrayLike
                 ) -> tuple[NDArray[Any], NDArray[np.float64], np.dtype[np.floating[Any]],
                            tuple[int, ...]]:
        shape = np.shape(y_pred)
        true, pred, dtype, shapes = _read(y_true, y_pred, same_rank=True)
        return _sparse_labels(true, pred, shapes), _f64(pred), dtype, shape

    def _core(self, true: NDArray[Any], pred: NDArray[np.float64], grad: bool) -> _Core:
        return _sparse_core(true, pred, self.from_logits, grad)

    def _logit_grad(self, true: NDArray[Any], probs: NDArray[np.float64]) -> NDArray[np.float64]:
        g: NDArray[np.float64] = probs.copy()
        index = true[..., np.newaxis]
        np.put_along_axis(g, index, np.take_along_axis(g, index, axis=-1) - 1, axis=-1)
        return g


class _Elementwise(KerasLoss):
    """A loss that compares y_true and y_pred element by element (same shape)."""

    def _prepare(self, y_true: ArrayLike, y_pred: ArrayLike
                 ) -> tuple[NDArray[Any], NDArray[np.float64], np.dtype[np.floating[Any]],
                            tuple[int, ...]]:
        shape = np.shape(y_pred)
        true, pred, dtype, shapes = _read(y_true, y_pred, same_rank=True)
        _check_same_shape(true, pred, self.name, shapes)
        return _f64(true), _f64(pred), dtype, shape


class BinaryCrossentropy(_Elementwise):
    """Keras's ``BinaryCrossentropy``: independent targets in [0, 1].

    ``loss = mean of -(t log p + (1 - t) log(1 - p))`` over the outputs, then
    over the samples; see :func:`binary_crossentropy`.  :meth:`fused` with
    "sigmoid" gives ``(p - t) / (N * K)`` with respect to the logits.

    Parameters
    ----------
    from_logits : bool, default False
        y_pred holds logits (the log-sigmoid form is used).
    """

    name = "binary_crossentropy"
    _fuses = "sigmoid"

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = check_bool(from_logits, "from_logits")

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "from_logits": self.from_logits}

    def _core(self, true: NDArray[Any], pred: NDArray[np.float64], grad: bool) -> _Core:
        return _binary_core(true, pred, self.from_logits, grad)

    def _logit_grad(self, true: NDArray[Any], probs: NDArray[np.float64]) -> NDArray[np.float64]:
        grad: NDArray[np.float64] = (probs - true) / probs.shape[-1]
        return grad


class MeanSquaredError(_Elementwise):
    """Keras's ``MeanSquaredError``: ``mean((y_true - y_pred) ** 2)`` over the
    last axis, then over the samples; see :func:`mean_squared_error`."""

    name = "mean_squared_error"

    def _core(self, true: NDArray[Any], pred: NDArray[np.float64], grad: bool) -> _Core:
        return _squared_core(true, pred, grad)


class MeanAbsoluteError(_Elementwise):
    """Keras's ``MeanAbsoluteError``: ``mean(abs(y_true - y_pred))`` over the
    last axis, then over the samples; see :func:`mean_absolute_error`.  Its
    gradient at ``y_pred == y_true`` is 0 (the sign's, as TensorFlow's)."""

    name = "mean_absolute_error"

    def _core(self, true: NDArray[Any], pred: NDArray[np.float64], grad: bool) -> _Core:
        return _absolute_core(true, pred, grad)


#: Losses by name, for :meth:`Sequential.fit`.
LOSSES: dict[str, Loss] = {"softmax_cross_entropy": softmax_cross_entropy}

# Keras's names and aliases (and its class names), for get().
_KERAS_LOSSES: dict[str, type[KerasLoss]] = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
}
_KERAS_LOSSES.update({cls.__name__: cls for cls in set(_KERAS_LOSSES.values())})
_KERAS_LOSSES_LOWER = {name.lower(): cls for name, cls in _KERAS_LOSSES.items()}


def get(identifier: str | KerasLoss | Loss) -> KerasLoss | Loss:
    """A loss from a name, an instance or a callable, as ``keras.losses.get``.

    Parameters
    ----------
    identifier : str, KerasLoss or callable
        A Keras name ("categorical_crossentropy", "sparse_categorical_crossentropy",
        "binary_crossentropy", "mean_squared_error" or "mse", "mean_absolute_error"
        or "mae"; also the class names, and any of them in another case), or
        "softmax_cross_entropy"; or a loss instance; or a convpool
        :data:`Loss` ``f(output, y) -> (loss, grad)``.

    Returns
    -------
    KerasLoss or callable
        A new instance with Keras's defaults for a Keras name; the
        function of :data:`LOSSES` for a convpool name; anything else as given.
        A training loop calls ``value_and_grad`` on a :class:`KerasLoss` and
        the callable itself otherwise.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    TypeError
        For anything that is neither a str nor callable.
    """
    if isinstance(identifier, str):
        if identifier in LOSSES:
            return LOSSES[identifier]
        cls = _KERAS_LOSSES_LOWER.get(identifier.lower())
        if cls is None:
            known = sorted(n for n in [*_KERAS_LOSSES, *LOSSES] if not n[0].isupper())
            raise ValueError(f"unknown loss {identifier!r}; known names: {', '.join(known)}")
        return cls()
    if isinstance(identifier, KerasLoss) or callable(identifier):
        return identifier
    raise TypeError(
        f"loss must be a name, a convpool loss instance or a callable "
        f"f(output, y) -> (loss, grad), got {type(identifier).__name__}"
    )
