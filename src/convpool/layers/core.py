"""Core layers: Dense."""

from __future__ import annotations

from typing import Any, SupportsIndex

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .. import functional
from .._checks import (
    check_int,
    compute_dtype,
)
from .base import (
    Layer,
    OptionalPair,
    Shape,
    ShapeLike,
    _glorot_uniform,
    _KernelBias,
)


class Dense(_KernelBias, Layer):
    """Fully connected layer on the last axis: ``y = x @ kernel + bias``.

    Parameters
    ----------
    units : int
        Output size (positive).
    use_bias : bool, default True
    activation : {None, "relu"}
    name, seed, dtype :
        See :class:`Layer`.

    Shape
    -----
    Input ``(..., d_in)`` of rank >= 2, output ``(..., units)``.  kernel
    ``(d_in, units)``, bias ``(units,)``: ``d_in * units + units`` parameters.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Dense(3, use_bias=False)
    >>> layer(np.zeros((64, 4, 2), np.float32)).shape
    (64, 4, 3)
    >>> layer.kernel.shape, layer.count_params()
    ((2, 3), 6)
    """

    def __init__(
        self,
        units: SupportsIndex,
        use_bias: bool | np.bool_ = True,
        activation: str | None = None,
        *,
        name: str | None = None,
        seed: int | None = None,
        dtype: DTypeLike | None = None,
    ) -> None:
        super().__init__(name=name, seed=seed, dtype=dtype)
        self.units = check_int(units, "units")
        self._init_kernel_bias(use_bias, activation)  # kernel (d_in, units), bias (units,)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        input_shape = tuple(input_shape)
        if len(input_shape) < 2:
            raise ValueError(
                f"Dense expects an input of rank >= 2 (batch, ..., features), "
                f"got shape {input_shape}"
            )
        if input_shape[-1] is None:
            raise ValueError(f"Dense needs a known last axis, got shape {input_shape}")
        if self.built and input_shape[-1] != self._weights["kernel"].shape[0]:
            raise ValueError(
                f"Dense layer {self.name!r} was built for {self._weights['kernel'].shape[0]} "
                f"input features, got input shape {input_shape}"
            )
        return input_shape[:-1] + (self.units,)

    def _build_weights(self, input_shape: Shape, dtype: np.dtype[np.floating[Any]]) -> None:
        d_in = input_shape[-1]
        assert d_in is not None  # compute_output_shape rejects an unknown last axis
        rng = np.random.default_rng(self.seed)
        self._weights["kernel"] = _glorot_uniform(rng, (d_in, self.units), d_in, self.units, dtype)
        if self.use_bias:
            self._weights["bias"] = np.zeros(self.units, dtype)

    # Dense runs on convpool's own GEMM (functional.dense, a 1x1 conv over
    # the rows): the same threads as the convolutions, and the same bits for
    # any thread count.
    def _call(self, x: NDArray[Any]) -> NDArray[Any]:
        self.compute_output_shape(x.shape)
        dtype = compute_dtype(x, "x")
        return functional.dense(
            x, self._weight("kernel", dtype),
            self._weight("bias", dtype) if self.use_bias else None,
            activation=self.activation,
        )

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        grad_x, grad_kernel, grad_bias = functional.dense_backward(
            grad_out, x, self._weight("kernel", grad_out.dtype), input_grad=input_grad,
            activation=self.activation, output=y if self.activation else None,
        )
        return grad_x, [grad_kernel, grad_bias] if self.use_bias else [grad_kernel]

    def receptive_field(
        self, field: OptionalPair, jump: OptionalPair, input_shape: ShapeLike
    ) -> tuple[OptionalPair, OptionalPair]:
        # On an image (rank 4) Dense acts on each pixel's channels; on a
        # flattened input it mixes every position.
        if len(input_shape) == 4:
            return field, jump
        return None, None

    def get_config(self) -> dict[str, Any]:
        return {"units": self.units, "use_bias": self.use_bias, "activation": self.activation,
                "name": self.name, "seed": self.seed,
                "dtype": None if self.dtype is None else self.dtype.name}
