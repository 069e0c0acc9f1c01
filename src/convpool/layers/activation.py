"""Activation layers: Activation (any of :mod:`convpool.activations`), ReLU and LeakyReLU."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from numpy.typing import NDArray

from .. import activations, functional
from .._checks import (
    check_number,
    compute_dtype,
)
from .base import (
    Layer,
    Shape,
    ShapeLike,
    _relu_inplace,
)


class ReLU(Layer):
    """Rectified linear unit: ``max(0, x)`` elementwise (a NaN stays NaN).

    Shape
    -----
    Output shape = input shape; no parameters.

    Examples
    --------
    >>> import numpy as np
    >>> ReLU()(np.array([[-1.0, 0.5]], np.float32))
    array([[0. , 0.5]], dtype=float32)
    """

    def __init__(self, *, name: str | None = None, input_shape: ShapeLike | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        return tuple(input_shape)

    def _call(self, x: NDArray[Any]) -> NDArray[Any]:
        return _relu_inplace(x.astype(compute_dtype(x, "x"), copy=True))

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        return (functional._relu_grad(grad_out, y) if input_grad else None), []


class Activation(Layer):
    """An activation as a layer, Keras's ``Activation("sigmoid")``.

    Parameters
    ----------
    activation : str, one of convpool.activations' functions, or None
        See :mod:`convpool.activations`; None is linear.
    name, input_shape :
        See :class:`Layer` (keyword-only).

    Shape
    -----
    Output shape = input shape; no parameters.  Softmax runs along the last axis.

    Examples
    --------
    >>> import numpy as np
    >>> Activation("sigmoid")(np.zeros((1, 2), np.float32))
    array([[0.5, 0.5]], dtype=float32)
    """

    def __init__(self, activation: object, *, name: str | None = None,
                 input_shape: ShapeLike | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self._act = activations.get(activation)
        self.activation = self._act.name

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        return tuple(input_shape)

    def _call(self, x: NDArray[Any]) -> NDArray[Any]:
        return x  # the activation runs in _activate

    def _activate(self, z: NDArray[Any], training: bool) -> NDArray[Any]:
        return self._act.fn(z)

    def _activation_backward(self, grad_out: NDArray[Any], y: NDArray[Any],
                             pre_activation: bool) -> NDArray[Any]:
        if pre_activation:
            return grad_out
        assert self._saved is not None  # backward checked it
        x = np.asarray(self._saved[0], dtype=y.dtype)
        return self._act.grad(grad_out, x, y)

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        return (grad_out if input_grad else None), []

    def get_config(self) -> dict[str, Any]:
        return {"activation": self.activation, "name": self.name}


class LeakyReLU(Layer):
    """Keras 3's ``LeakyReLU``: ``x`` where x > 0, else ``negative_slope * x``
    (:func:`convpool.activations.leaky_relu`; a NaN stays NaN).

    Parameters
    ----------
    negative_slope : float, default 0.3
        Non-negative.  (The layer's default is Keras's 0.3; the
        ``"leaky_relu"`` activation's is 0.2, as in Keras.)
    alpha : float, keyword-only, optional
        Keras 2's name of ``negative_slope``: taken in its place with a
        DeprecationWarning, as Keras 3 takes it (with a warning); given
        together with a ``negative_slope`` other than the default, a TypeError.
    name, input_shape :
        See :class:`Layer` (keyword-only).

    Shape
    -----
    Output shape = input shape; no parameters.  The gradient is 1 where
    x > 0, else ``negative_slope`` (at 0 too, as TensorFlow's).

    Examples
    --------
    >>> import numpy as np
    >>> LeakyReLU(negative_slope=0.5)(np.array([-10, -5, 0.0, 5, 10], np.float32))
    array([-5. , -2.5,  0. ,  5. , 10. ], dtype=float32)
    """

    def __init__(self, negative_slope: float = 0.3, *, alpha: float | None = None,
                 name: str | None = None, input_shape: ShapeLike | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        if alpha is not None:
            if negative_slope != 0.3:
                raise TypeError("LeakyReLU got both negative_slope and Keras 2's alpha; pass "
                                "negative_slope only")
            warnings.warn("LeakyReLU(alpha=...) is deprecated (Keras 2's name): use "
                          "negative_slope=", DeprecationWarning, stacklevel=2)
            negative_slope = alpha
        self.negative_slope = check_number(negative_slope, "negative_slope", low=0)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        return tuple(input_shape)

    def _call(self, x: NDArray[Any]) -> NDArray[Any]:
        return activations.leaky_relu(x, self.negative_slope)

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        if not input_grad:
            return None, []
        slope = grad_out.dtype.type(self.negative_slope)
        return np.where(x > 0, grad_out, grad_out * slope), []

    def get_config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope, "name": self.name}
