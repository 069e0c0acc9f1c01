"""Activation layers: ReLU."""

from __future__ import annotations

from typing import Any

from numpy.typing import NDArray

from .. import functional
from .._checks import (
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

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        return tuple(input_shape)

    def _call(self, x: NDArray[Any]) -> NDArray[Any]:
        return _relu_inplace(x.astype(compute_dtype(x, "x"), copy=True))

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        return (functional._relu_grad(grad_out, y) if input_grad else None), []
