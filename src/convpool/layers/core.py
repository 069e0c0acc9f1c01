"""Core layers: Dense, and Input (the model input's placeholder)."""

from __future__ import annotations

import warnings

from typing import Any, SupportsIndex, cast

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .. import functional
from .._checks import (
    check_int,
    compute_dtype,
)
from .base import (
    SymbolicTensor,
    _default_name,
    _float_dtype,
    _sample_shape,
    Layer,
    OptionalPair,
    Shape,
    ShapeLike,
    _draw_weights,
    _inits_config,
    _KernelBias,
    _none_only,
    _WeightInit,
)


class Dense(_KernelBias, Layer):
    """Fully connected layer on the last axis: ``y = x @ kernel + bias``.

    Parameters
    ----------
    units : int
        Output size (positive).
    activation : str, one of convpool.activations' functions, or None
        Keras's activations by name (:mod:`convpool.activations`); "relu"
        runs fused into the GEMM's store.
    use_bias : bool, default True
    kernel_initializer, bias_initializer : str, Initializer, dict, callable or None
        Keras's (see :func:`convpool.initializers.get`); default
        "glorot_uniform" and "zeros".  The random ones draw from
        ``numpy.random.default_rng(seed)``, kernel first.
    kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint, \
bias_constraint : None
        Keras's arguments; only None is supported (anything else is a ValueError).
    name, seed, dtype, input_shape :
        See :class:`Layer` (keyword-only).

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
        activation: object = None,
        use_bias: object = True,
        kernel_initializer: object = "glorot_uniform",
        bias_initializer: object = "zeros",
        kernel_regularizer: None = None,
        bias_regularizer: None = None,
        activity_regularizer: None = None,
        kernel_constraint: None = None,
        bias_constraint: None = None,
        *,
        name: str | None = None,
        seed: int | None = None,
        dtype: DTypeLike | None = None,
        input_shape: ShapeLike | None = None,
    ) -> None:
        super().__init__(name=name, seed=seed, dtype=dtype, input_shape=input_shape)
        self.units = check_int(units, "units")
        _none_only(kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                   activity_regularizer=activity_regularizer,
                   kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self._inits = {"kernel": _WeightInit("kernel_initializer", kernel_initializer),
                       "bias": _WeightInit("bias_initializer", bias_initializer)}
        if isinstance(activation, (bool, np.bool_)):
            # convpool's order before Keras's: Dense(units, use_bias, activation).
            warnings.warn("Dense(units, use_bias, ...) by position is deprecated: Keras's "
                          "order is Dense(units, activation, use_bias); pass use_bias= by name",
                          DeprecationWarning, stacklevel=2)
            activation, use_bias = (None if use_bias is True else use_bias), activation
        # kernel (d_in, units), bias (units,)
        self._init_kernel_bias(cast("bool", use_bias), activation)

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

    def weight_shapes(self, input_shape: ShapeLike) -> list[tuple[int, ...]]:
        d_in = tuple(input_shape)[-1]
        if d_in is None:
            raise ValueError(f"Dense needs a known last axis, got shape {tuple(input_shape)}")
        return [(d_in, self.units)] + ([(self.units,)] if self.use_bias else [])

    def _build_weights(self, input_shape: Shape, dtype: np.dtype[np.floating[Any]]) -> None:
        _draw_weights(self, self._inits, self.weight_shapes(input_shape), dtype)

    # Dense runs on convpool's own GEMM (functional.dense, a 1x1 conv over
    # the rows): the same threads as the convolutions, and the same bits for
    # any thread count.
    def _call(self, x: NDArray[Any]) -> NDArray[Any]:
        self.compute_output_shape(x.shape)
        dtype = compute_dtype(x, "x")
        return functional.dense(
            x, self._weight("kernel", dtype),
            self._weight("bias", dtype) if self.use_bias else None,
            activation=self._fused,
        )

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        grad_x, grad_kernel, grad_bias = functional.dense_backward(
            grad_out, x, self._weight("kernel", grad_out.dtype), input_grad=input_grad,
            activation=self._grad_relu, output=y if self._grad_relu else None,
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
                **_inits_config(self._inits), **self._identity_config()}


def Input(  # noqa: N802 - Keras's name for a function that makes an input
    shape: ShapeLike | None = None,
    batch_size: SupportsIndex | None = None,
    dtype: DTypeLike | None = None,
    name: str | None = None,
    *,
    batch_shape: ShapeLike | None = None,
) -> SymbolicTensor:
    """A model input's placeholder, Keras's ``keras.Input(shape=(28, 28, 1))``.

    Parameters
    ----------
    shape : tuple
        One sample's shape, without the batch axis.
    batch_size : int, optional
        A fixed batch size (default: any).
    dtype : {None, "float32", "float64"}
    name : str, optional
    batch_shape : tuple, keyword-only, optional
        The whole shape instead (batch axis first); not with ``shape``.

    Returns
    -------
    SymbolicTensor

    Examples
    --------
    >>> Input(shape=(28, 28, 1)).shape
    (None, 28, 28, 1)
    """
    if (shape is None) == (batch_shape is None):
        raise ValueError("Input needs exactly one of shape= (one sample's) and batch_shape=")
    if batch_shape is not None:
        full = _sample_shape(tuple(batch_shape)[1:])
        assert full is not None
        first = tuple(batch_shape)[0]
        full = ((None if first is None else check_int(first, "batch_shape[0]", minimum=0)),
                ) + full[1:]
    else:
        full = _sample_shape(shape)
        assert full is not None
        if batch_size is not None:
            full = (check_int(batch_size, "batch_size", minimum=0),) + full[1:]
    float_dtype = _float_dtype(dtype)
    return SymbolicTensor(full, float_dtype if float_dtype is not None else np.dtype(np.float32),
                          name if name is not None else _default_name("InputLayer"))
