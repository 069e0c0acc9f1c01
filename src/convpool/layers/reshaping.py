"""Reshaping layers: Flatten."""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from .._checks import (
    check_data_format,
)
from .base import (
    Layer,
    Shape,
    ShapeLike,
)


class Flatten(Layer):
    """Flatten all but the batch axis, as Keras does.

    With ``data_format="channels_first"`` a 4-D input is first put in
    channels_last order, so the flattened order does not depend on the layout.

    Shape
    -----
    Input ``(N, d1, ..., dk)``, output ``(N, d1 * ... * dk)``.

    Examples
    --------
    >>> import numpy as np
    >>> Flatten()(np.zeros((2, 8, 6, 16), np.float32)).shape
    (2, 768)
    >>> Flatten().compute_output_shape((64, 384, 216, 16))
    (64, 1327104)
    """

    def __init__(self, data_format: str = "channels_last", *, name: str | None = None,
                 input_shape: ShapeLike | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self.data_format = check_data_format(data_format)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        input_shape = tuple(input_shape)
        if len(input_shape) < 1:
            raise ValueError(f"Flatten expects an input with a batch axis, got {input_shape}")
        rest = input_shape[1:]
        size = None if any(d is None for d in rest) else math.prod(cast("tuple[int, ...]", rest))
        return (input_shape[0], size)

    def _call(self, x: NDArray[Any]) -> NDArray[Any]:
        if self.data_format == "channels_first" and x.ndim == 4:
            x = x.transpose(0, 2, 3, 1)
        # The size, not -1: an empty batch has no size to infer it from.
        return np.reshape(x, (x.shape[0], math.prod(x.shape[1:])))

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        if not input_grad:
            return None, []
        if self.data_format == "channels_first" and x.ndim == 4:
            n, c, h, w = x.shape
            return grad_out.reshape(n, h, w, c).transpose(0, 3, 1, 2), []
        return grad_out.reshape(x.shape), []

    def get_config(self) -> dict[str, Any]:
        return {"data_format": self.data_format, "name": self.name}
