"""Normalization layers: BatchNormalization."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._checks import check_bool, check_int, check_number
from .base import (
    Layer,
    Shape,
    ShapeLike,
    _draw_weights,
    _inits_config,
    _none_only,
    _WeightInit,
)


class BatchNormalization(Layer):
    """Keras 3's batch normalization over every axis but ``axis``.

    In training (``forward(x, training=True)``, as ``fit`` calls it) each
    feature is normalised by the batch's mean and (biased) variance, and the
    moving statistics move towards them:
    ``moving = moving * momentum + batch * (1 - momentum)``.  In inference
    (``predict``, ``evaluate``, a plain call) the moving statistics are used:
    ``y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta``.
    Computed in float64, returned in the input's float dtype.

    Parameters
    ----------
    axis : int, default -1
        The feature axis (the channels: -1 for channels_last, 1 for channels_first).
    momentum : float, default 0.99
    epsilon : float, default 1e-3
    center, scale : bool, default True
        Learn ``beta`` / ``gamma`` (else 0 / 1, not stored).
    beta_initializer, gamma_initializer, moving_mean_initializer, \
moving_variance_initializer : str, Initializer, dict, callable or None
        Keras's (see :func:`convpool.initializers.get`); default "zeros",
        "ones", "zeros", "ones".  Random ones draw from
        ``numpy.random.default_rng(seed)`` in the weights' order.
    beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint : None
        Keras's arguments; only None is supported (anything else is a ValueError).
    name, seed, dtype, input_shape :
        See :class:`Layer` (keyword-only).

    Weights
    -------
    ``gamma``, ``beta`` (trainable), ``moving_mean``, ``moving_variance`` (not
    trainable: set by the forward pass), each of shape (features,), Keras's
    order.  ``count_params`` counts all four, as Keras's total.

    Examples
    --------
    >>> import numpy as np
    >>> bn = BatchNormalization()
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]], np.float32)
    >>> bn.forward(x, training=True)             # the batch's statistics
    array([[-0.9995004, -0.999995 ],
           [ 0.9995004,  0.999995 ]], dtype=float32)
    >>> bn.moving_mean, bn.moving_variance       # 1% of the way from (0, 1)
    (array([0.02, 0.2 ], dtype=float32), array([1.  , 1.99], dtype=float32))
    """

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True,
                 beta_initializer: object = "zeros", gamma_initializer: object = "ones",
                 moving_mean_initializer: object = "zeros",
                 moving_variance_initializer: object = "ones",
                 beta_regularizer: None = None, gamma_regularizer: None = None,
                 beta_constraint: None = None, gamma_constraint: None = None, *,
                 name: str | None = None, seed: int | None = None,
                 dtype: DTypeLike | None = None, input_shape: ShapeLike | None = None) -> None:
        super().__init__(name=name, seed=seed, dtype=dtype, input_shape=input_shape)
        self.axis = check_int(axis, "axis", minimum=None)
        self.momentum = check_number(momentum, "momentum", low=0, high=1)
        self.epsilon = check_number(epsilon, "epsilon", low=0, low_open=True)
        self.center = check_bool(center, "center")
        self.scale = check_bool(scale, "scale")
        trainable = (("gamma",) if self.scale else ()) + (("beta",) if self.center else ())
        self._trainable_names = trainable
        self._weight_names = trainable + ("moving_mean", "moving_variance")
        _none_only(beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                   beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        self._inits = {
            "gamma": _WeightInit("gamma_initializer", gamma_initializer),
            "beta": _WeightInit("beta_initializer", beta_initializer),
            "moving_mean": _WeightInit("moving_mean_initializer", moving_mean_initializer),
            "moving_variance": _WeightInit("moving_variance_initializer",
                                           moving_variance_initializer)}
        self._cache: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None

    def _feature_axis(self, ndim: int) -> int:
        if not -ndim <= self.axis < ndim:
            raise ValueError(f"BatchNormalization axis={self.axis} is out of range for an "
                             f"input of rank {ndim}")
        return self.axis % ndim

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        input_shape = tuple(input_shape)
        if len(input_shape) < 2:
            raise ValueError(f"BatchNormalization expects an input of rank >= 2, got shape "
                             f"{input_shape}")
        features = input_shape[self._feature_axis(len(input_shape))]
        if features is None:
            raise ValueError(f"BatchNormalization needs a known feature axis {self.axis}, got "
                             f"shape {input_shape}")
        if self.built and features != self._weights["moving_mean"].shape[0]:
            raise ValueError(f"BatchNormalization layer {self.name!r} was built for "
                             f"{self._weights['moving_mean'].shape[0]} features, got input "
                             f"shape {input_shape}")
        return input_shape

    def weight_shapes(self, input_shape: ShapeLike) -> list[tuple[int, ...]]:
        input_shape = tuple(input_shape)
        features = self.compute_output_shape(input_shape)[self._feature_axis(len(input_shape))]
        return [(int(cast(int, features)),)] * len(self._weight_names)

    def _build_weights(self, input_shape: Shape, dtype: np.dtype[np.floating[Any]]) -> None:
        _draw_weights(self, self._inits, self.weight_shapes(input_shape), dtype)

    def _param(self, name: str, default: float, c: int) -> NDArray[np.float64]:
        if name in self._weights:
            return self._weights[name].astype(np.float64)
        return np.full(c, default)

    def _shape_for(self, ndim: int, axis: int) -> tuple[int, ...]:
        return tuple(-1 if i == axis else 1 for i in range(ndim))

    def _call(self, x: NDArray[Any]) -> NDArray[Any]:
        return x  # normalised in _activate, which knows whether this is training

    def _activate(self, z: NDArray[Any], training: bool) -> NDArray[Any]:
        axis = self._feature_axis(z.ndim)
        dtype = z.dtype if z.dtype.kind == "f" and z.dtype.itemsize >= 4 else np.dtype(np.float32)
        x = z.astype(np.float64)
        c = x.shape[axis]
        shape = self._shape_for(x.ndim, axis)
        reduce = tuple(i for i in range(x.ndim) if i != axis)
        if training and x.size:
            mean = x.mean(axis=reduce)
            var = x.var(axis=reduce)
            m = self.momentum
            for name, batch in (("moving_mean", mean), ("moving_variance", var)):
                moving = self._weights[name]
                moving[...] = (moving.astype(np.float64) * m + batch * (1 - m)).astype(moving.dtype)
        else:
            mean = self._weights["moving_mean"].astype(np.float64)
            var = self._weights["moving_variance"].astype(np.float64)
        inv = 1.0 / np.sqrt(var + self.epsilon)
        xhat = (x - mean.reshape(shape)) * inv.reshape(shape)
        self._cache = (xhat, inv) if training else None
        gamma, beta = self._param("gamma", 1.0, c), self._param("beta", 0.0, c)
        out: NDArray[Any] = (xhat * gamma.reshape(shape) + beta.reshape(shape)).astype(dtype)
        return out

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        assert self._cache is not None  # forward(training=True) kept it
        xhat, inv = self._cache
        self._cache = None
        axis = self._feature_axis(grad_out.ndim)
        shape = self._shape_for(grad_out.ndim, axis)
        reduce = tuple(i for i in range(grad_out.ndim) if i != axis)
        g = grad_out.astype(np.float64)
        c = g.shape[axis]
        m = g.size // max(c, 1)
        sum_g = g.sum(axis=reduce)
        sum_gx = (g * xhat).sum(axis=reduce)
        grads = ([sum_gx] if self.scale else []) + ([sum_g] if self.center else [])
        grad_x = None
        if input_grad:
            gamma = self._param("gamma", 1.0, c)
            k = (gamma * inv / max(m, 1)).reshape(shape)
            grad_x = (k * (m * g - sum_g.reshape(shape) - xhat * sum_gx.reshape(shape))
                      ).astype(grad_out.dtype)
        return grad_x, [gr.astype(grad_out.dtype) for gr in grads]

    @property
    def moving_mean(self) -> NDArray[Any] | None:
        return self._weights.get("moving_mean")

    @property
    def moving_variance(self) -> NDArray[Any] | None:
        return self._weights.get("moving_variance")

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                **_inits_config(self._inits), **self._identity_config()}

