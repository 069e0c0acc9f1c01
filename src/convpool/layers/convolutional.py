"""Convolution layers: Conv2D, Conv2DTranspose, DepthwiseConv2D and SeparableConv2D."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, ParamSpec, SupportsIndex, cast

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .. import functional
from .._checks import (
    FloatArray,
    check_conv_algorithm,
    check_data_format,
    check_int,
    compute_dtype,
    from_nhwc_shape,
    to_nhwc_shape,
)
from .._shapes import (
    IntPair,
    Padding,
    TransposeWindow2D,
    as_pair,
    check_padding_mode,
    padding_mode_name,
    transpose_receptive_field_step,
    transpose_window_2d,
)
from .base import (
    Layer,
    OptionalPair,
    Shape,
    ShapeLike,
    _check_padding_form,
    _draw_weights,
    _inits_config,
    _KernelBias,
    _none_only,
    _Spatial,
    _WeightInit,
)

_P = ParamSpec("_P")


def _legacy_positional(at: int, legacy: tuple[str, ...], keras_order: str
                       ) -> Callable[[Callable[_P, None]], Callable[_P, None]]:
    """Accept convpool's earlier positional order of a constructor beside Keras's.

    Keras's order has ``data_format`` (a str or None) at position ``at``
    (counting ``self``) where convpool's earlier order had ``dilation_rate``
    (an int or a pair).  A call with anything else there by position is in
    the earlier order: its positional arguments from ``at`` on are the
    ``legacy`` names, passed on by keyword, with a DeprecationWarning.
    """
    def decorate(init: Callable[_P, None]) -> Callable[_P, None]:
        @functools.wraps(init)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> None:
            if len(args) > at and args[at] is not None and not isinstance(args[at], str):
                owner = type(args[0]).__name__
                extra = args[at:]
                if len(extra) > len(legacy):
                    raise TypeError(f"{owner}() takes at most {at + len(legacy) - 1} positional "
                                    f"arguments in its earlier order, got {len(args) - 1}")
                named = dict(zip(legacy, extra))
                for key in named:
                    if key in kwargs:
                        raise TypeError(f"{owner}() got multiple values for argument {key!r}")
                warnings.warn(
                    f"{owner}(..., {', '.join(legacy[:len(extra)])}) by position (convpool's "
                    f"earlier order) is deprecated: Keras's order is {owner}({keras_order}); "
                    f"pass {legacy[0]}= and the arguments after it by name",
                    DeprecationWarning, stacklevel=2)
                init(*cast(Any, args[:at]), **cast(Any, {**kwargs, **named}))
                return
            init(*args, **kwargs)
        return wrapper
    return decorate


class Conv2D(_KernelBias, _Spatial):
    """2-D convolution layer (see :func:`convpool.conv2d`).

    Parameters
    ----------
    filters : int
        Output channels (positive, divisible by ``groups``).
    kernel_size : int or (int, int)
    strides : int or (int, int), default 1
    padding : "valid", "same", int, (ph, pw) or ((top, bottom), (left, right))
    data_format : {"channels_last", "channels_first", None}
        None is channels_last (Keras's default image_data_format).
    dilation_rate : int or (int, int), default 1
    groups : int, default 1
    activation : str, one of convpool.activations' functions, or None
        Keras's activations by name (:mod:`convpool.activations`); "relu" is
        fused into the kernel's store, the others run on its output.
    use_bias : bool, default True
    kernel_initializer, bias_initializer : str, Initializer, dict, callable or None
        Keras's (see :func:`convpool.initializers.get`); default
        "glorot_uniform" and "zeros", drawn from ``numpy.random.default_rng(seed)``.
    kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint, \
bias_constraint : None
        Keras's arguments; only None is supported (anything else is a ValueError).
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, keyword-only
        PyTorch's Conv2d padding modes (see :func:`convpool.conv2d`).
    algorithm : {"auto", "direct", "winograd"}, keyword-only
        How the forward pass and the input gradient are computed (see
        :func:`convpool.conv2d`); "auto" takes Winograd for float32 3x3
        stride-1 layers of at least 16 channels in and out.
    name, seed, dtype :
        See :class:`Layer`.

    Shape
    -----
    Input ``(N, H, W, C_in)`` (channels_last), output ``(N, OH, OW, filters)``
    with ``OH = (H + pt + pb - (dh * (KH - 1) + 1)) // sh + 1`` and likewise
    OW.  kernel ``(KH, KW, C_in // groups, filters)``, bias ``(filters,)``.

    Examples
    --------
    A non-square kernel with stride and dilation:

    >>> import numpy as np
    >>> layer = Conv2D(8, (3, 2), strides=(2, 1), dilation_rate=(1, 2), padding=1)
    >>> layer.compute_output_shape((None, 32, 20, 3))
    (None, 16, 20, 8)

    Keras's positional order (convpool's earlier one, with ``dilation_rate``
    fifth, still works, with a DeprecationWarning):

    >>> Conv2D(8, 3, 1, "same", "channels_first", 2).dilation_rate
    (2, 2)

    The seed tutorial's layer: 16 filters of 5x5 over 3 channels, stride 5,
    so 5 * 5 * 3 * 16 = 1200 weights; its output on full-HD frames, and on
    a small batch:

    >>> seed = Conv2D(16, (5, 5), strides=5, use_bias=False)
    >>> seed.compute_output_shape((64, 1920, 1080, 3))
    (64, 384, 216, 16)
    >>> seed(np.zeros((2, 40, 30, 3), np.float32)).shape, seed.count_params()
    ((2, 8, 6, 16), 1200)
    """

    @_legacy_positional(5, ("dilation_rate", "groups", "use_bias", "data_format", "activation"),
                        "filters, kernel_size, strides, padding, data_format, dilation_rate, "
                        "groups, activation, use_bias, ...")
    def __init__(
        self,
        filters: SupportsIndex,
        kernel_size: IntPair,
        strides: IntPair = (1, 1),
        padding: Padding = "valid",
        data_format: str | None = None,
        dilation_rate: IntPair = (1, 1),
        groups: SupportsIndex = 1,
        activation: object = None,
        use_bias: bool | np.bool_ = True,
        kernel_initializer: object = "glorot_uniform",
        bias_initializer: object = "zeros",
        kernel_regularizer: None = None,
        bias_regularizer: None = None,
        activity_regularizer: None = None,
        kernel_constraint: None = None,
        bias_constraint: None = None,
        *,
        padding_mode: str = "zeros",
        algorithm: str = "auto",
        name: str | None = None,
        seed: int | None = None,
        dtype: DTypeLike | None = None,
        input_shape: ShapeLike | None = None,
    ) -> None:
        super().__init__(
            kernel_size, strides, padding, check_data_format(data_format),
            window_name="kernel_size", name=name, seed=seed, dtype=dtype,
            input_shape=input_shape,
        )
        self.filters = check_int(filters, "filters")
        self.kernel_size = self._window
        self.dilation_rate = as_pair(dilation_rate, "dilation_rate")
        self.groups = check_int(groups, "groups")
        if self.filters % self.groups:
            raise ValueError(f"groups={self.groups} must divide filters={self.filters}")
        # kernel (KH, KW, C_in // groups, filters), bias (filters,)
        self._init_kernel_bias(use_bias, activation)
        self.padding_mode = padding_mode_name(padding_mode)
        _none_only(kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                   activity_regularizer=activity_regularizer,
                   kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self._inits = {"kernel": _WeightInit("kernel_initializer", kernel_initializer),
                       "bias": _WeightInit("bias_initializer", bias_initializer)}
        self.algorithm = check_conv_algorithm(algorithm, self)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        win, (n, h, w, c) = self._resolve(input_shape)
        check_padding_mode(self.padding_mode, win, (h, w),
                           f"layer {self.name!r}, input shape {tuple(input_shape)}")
        if c is not None and c % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide the input channels, got input shape "
                f"{tuple(input_shape)} ({c} channels)"
            )
        if self.built and c is not None:
            cg = self._weights["kernel"].shape[2]
            if c // self.groups != cg:
                raise ValueError(
                    f"Conv2D layer {self.name!r} was built for {cg * self.groups} "
                    f"input channels, got input shape {tuple(input_shape)}"
                )
        return from_nhwc_shape((n, win.oh, win.ow, self.filters), self.data_format)

    def weight_shapes(self, input_shape: ShapeLike) -> list[tuple[int, ...]]:
        _, _, _, c = to_nhwc_shape(tuple(input_shape), self.data_format)
        kh, kw = self.kernel_size
        # An unknown C (None) fails here with the TypeError it always raised.
        kernel = (kh, kw, cast(int, c) // self.groups, self.filters)
        return [kernel] + ([(self.filters,)] if self.use_bias else [])

    def _build_weights(self, input_shape: Shape, dtype: np.dtype[np.floating[Any]]) -> None:
        _draw_weights(self, self._inits, self.weight_shapes(input_shape), dtype)

    def _call(self, x: NDArray[Any]) -> FloatArray:
        dtype = compute_dtype(x, "x")
        return functional.conv2d(
            x,
            self._weight("kernel", dtype),
            self._weight("bias", dtype) if self.use_bias else None,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            groups=self.groups,
            data_format=self.data_format,
            activation=self._fused,
            padding_mode=self.padding_mode,
            algorithm=self.algorithm,
        )

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        grad_x, grad_kernel, grad_bias = functional.conv2d_backward(
            grad_out,
            x,
            self._weight("kernel", grad_out.dtype),
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            groups=self.groups,
            data_format=self.data_format,
            input_grad=input_grad,
            activation=self._grad_relu,
            output=y if self._grad_relu else None,
            padding_mode=self.padding_mode,
            algorithm=self.algorithm,
        )
        return grad_x, [grad_kernel, grad_bias] if self.use_bias else [grad_kernel]

    def get_config(self) -> dict[str, Any]:
        return {"filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding,
                "dilation_rate": self.dilation_rate, "groups": self.groups,
                "use_bias": self.use_bias, "data_format": self.data_format,
                "activation": self.activation, "padding_mode": self.padding_mode,
                "algorithm": self.algorithm, **_inits_config(self._inits),
                **self._identity_config()}


class Conv2DTranspose(_KernelBias, Layer):
    """2-D transposed convolution layer (see :func:`convpool.conv2d_transpose`).

    Parameters
    ----------
    filters : int
        Output channels (positive, divisible by ``groups``).
    kernel_size : int or (int, int)
    strides : int or (int, int), default 1
    padding : "valid", "same", int, (ph, pw) or ((top, bottom), (left, right))
        Strings as in Keras's Conv2DTranspose, numbers as in PyTorch's
        ConvTranspose2d (rows and columns cropped from the full output).
    output_padding : None, int or (int, int)
        Rows and columns added at the bottom and right, each smaller than
        ``max(stride, dilation)``; None is Keras's default.
    data_format : {"channels_last", "channels_first", None}
        None is channels_last.
    dilation_rate : int or (int, int), default 1
    activation : str, one of convpool.activations' functions, or None
        Keras's activations by name (:mod:`convpool.activations`); "relu" is
        fused into the kernel's store, the others run on its output.
    use_bias : bool, default True
    kernel_initializer, bias_initializer : str, Initializer, dict, callable or None
        Keras's (see :func:`convpool.initializers.get`); default
        "glorot_uniform" and "zeros", drawn from ``numpy.random.default_rng(seed)``.
    kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint, \
bias_constraint : None
        Keras's arguments; only None is supported (anything else is a ValueError).
    groups : int, keyword-only, default 1
        Divides the input channels and ``filters`` (PyTorch's groups).
    name, seed, dtype :
        See :class:`Layer`.

    Shape
    -----
    Input ``(N, H, W, C_in)`` (channels_last), output ``(N, OH, OW, filters)``
    with ``OH = (H - 1)*sh - (pt + pb) + dh*(KH - 1) + output_padding_h + 1``
    and likewise OW; "same" gives ``H*sh``.  kernel ``(KH, KW, filters //
    groups, C_in)`` (Keras's layout), bias ``(filters,)``.

    Examples
    --------
    Upsampling by two, as in a decoder, and a non-square kernel with a
    stride, dilation and PyTorch-style crop:

    >>> import numpy as np
    >>> up = Conv2DTranspose(16, 3, strides=2, padding="same")
    >>> up(np.zeros((2, 24, 32, 8), np.float32)).shape, up.count_params()
    ((2, 48, 64, 16), 1168)
    >>> Conv2DTranspose(4, (3, 2), strides=(2, 1), padding=1, output_padding=(1, 0),
    ...                 dilation_rate=(1, 2)).compute_output_shape((None, 10, 10, 3))
    (None, 20, 10, 4)
    """

    @_legacy_positional(6, ("dilation_rate", "use_bias", "activation", "data_format"),
                        "filters, kernel_size, strides, padding, output_padding, data_format, "
                        "dilation_rate, activation, use_bias, ...")
    def __init__(
        self,
        filters: SupportsIndex,
        kernel_size: IntPair,
        strides: IntPair = (1, 1),
        padding: Padding = "valid",
        output_padding: IntPair | None = None,
        data_format: str | None = None,
        dilation_rate: IntPair = (1, 1),
        activation: object = None,
        use_bias: bool | np.bool_ = True,
        kernel_initializer: object = "glorot_uniform",
        bias_initializer: object = "zeros",
        kernel_regularizer: None = None,
        bias_regularizer: None = None,
        activity_regularizer: None = None,
        kernel_constraint: None = None,
        bias_constraint: None = None,
        *,
        groups: SupportsIndex = 1,
        name: str | None = None,
        seed: int | None = None,
        dtype: DTypeLike | None = None,
        input_shape: ShapeLike | None = None,
    ) -> None:
        super().__init__(name=name, seed=seed, dtype=dtype, input_shape=input_shape)
        self.filters = check_int(filters, "filters")
        self.kernel_size = as_pair(kernel_size, "kernel_size")
        self.strides = as_pair(strides, "strides")
        self.dilation_rate = as_pair(dilation_rate, "dilation_rate")
        self.output_padding = (None if output_padding is None
                               else as_pair(output_padding, "output_padding", minimum=0))
        if not isinstance(padding, str):
            _check_padding_form(padding)
        elif padding.lower() not in ("valid", "same"):
            _check_padding_form(padding)  # raises the usual message
        self.padding = padding
        self.data_format = check_data_format(data_format)
        self.groups = check_int(groups, "groups")
        if self.filters % self.groups:
            raise ValueError(f"groups={self.groups} must divide filters={self.filters}")
        # kernel (KH, KW, filters // groups, C_in), bias (filters,)
        self._init_kernel_bias(use_bias, activation)
        _none_only(kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                   activity_regularizer=activity_regularizer,
                   kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self._inits = {"kernel": _WeightInit("kernel_initializer", kernel_initializer),
                       "bias": _WeightInit("bias_initializer", bias_initializer)}
        self._resolve((None, 1, 1, self.groups) if self.data_format == "channels_last"
                      else (None, self.groups, 1, 1))  # output_padding against strides now

    def _resolve(self, input_shape: ShapeLike) -> tuple[TransposeWindow2D, Shape]:
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            layout = "(N, H, W, C)" if self.data_format == "channels_last" else "(N, C, H, W)"
            raise ValueError(
                f"Conv2DTranspose expects a 4-D input {layout}, got shape {input_shape}"
            )
        n, h, w, c = to_nhwc_shape(input_shape, self.data_format)
        if h is None or w is None:
            raise ValueError(f"Conv2DTranspose needs known H and W, got {input_shape}")
        if c is not None and c % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide the input channels, got input shape "
                f"{input_shape} ({c} channels)"
            )
        if self.built and c is not None and c != self._weights["kernel"].shape[3]:
            raise ValueError(
                f"Conv2DTranspose layer {self.name!r} was built for "
                f"{self._weights['kernel'].shape[3]} input channels, got input shape "
                f"{input_shape}"
            )
        win = transpose_window_2d(
            (h, w), self.kernel_size, self.strides, self.padding, self.output_padding,
            self.dilation_rate, context=f"layer {self.name!r}, input shape {input_shape}",
        )
        return win, (n, h, w, c)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        win, (n, _, _, _) = self._resolve(input_shape)
        return from_nhwc_shape((n, win.oh, win.ow, self.filters), self.data_format)

    def weight_shapes(self, input_shape: ShapeLike) -> list[tuple[int, ...]]:
        _, _, _, c = to_nhwc_shape(tuple(input_shape), self.data_format)
        kh, kw = self.kernel_size
        kernel = (kh, kw, self.filters // self.groups, cast(int, c))
        return [kernel] + ([(self.filters,)] if self.use_bias else [])

    def _build_weights(self, input_shape: Shape, dtype: np.dtype[np.floating[Any]]) -> None:
        _draw_weights(self, self._inits, self.weight_shapes(input_shape), dtype)

    def _args(self) -> dict[str, Any]:
        return {"strides": self.strides, "padding": self.padding,
                "output_padding": self.output_padding, "dilation_rate": self.dilation_rate,
                "groups": self.groups, "data_format": self.data_format}

    def _call(self, x: NDArray[Any]) -> FloatArray:
        dtype = compute_dtype(x, "x")
        return functional.conv2d_transpose(
            x, self._weight("kernel", dtype),
            self._weight("bias", dtype) if self.use_bias else None,
            activation=self._fused, **self._args(),
        )

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        if self._grad_relu is not None:
            grad_out = functional._relu_grad(grad_out, y)
        grad_x, grad_kernel, grad_bias = functional.conv2d_transpose_backward(
            grad_out, x, self._weight("kernel", grad_out.dtype), input_grad=input_grad,
            **self._args(),
        )
        return grad_x, [grad_kernel, grad_bias] if self.use_bias else [grad_kernel]

    def receptive_field(
        self, field: OptionalPair, jump: OptionalPair, input_shape: ShapeLike
    ) -> tuple[OptionalPair, OptionalPair]:
        if field is None:
            return None, None
        win, _ = self._resolve(input_shape)
        return transpose_receptive_field_step(field, cast("tuple[Any, Any]", jump), win)

    def get_config(self) -> dict[str, Any]:
        return {"filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding,
                "output_padding": self.output_padding, "dilation_rate": self.dilation_rate,
                "use_bias": self.use_bias, "activation": self.activation,
                "data_format": self.data_format, "groups": self.groups,
                **_inits_config(self._inits), **self._identity_config()}


class DepthwiseConv2D(_KernelBias, _Spatial):
    """Depthwise 2-D convolution, Keras's ``DepthwiseConv2D``: each input channel
    convolved with its own ``depth_multiplier`` filters (:func:`convpool.conv2d`
    with ``groups`` = the input channels, on its depthwise kernel).

    Parameters
    ----------
    kernel_size : int or (int, int)
    strides : int or (int, int), default 1
    padding : "valid", "same", int, (ph, pw) or ((top, bottom), (left, right))
    depth_multiplier : int, default 1
    data_format : {"channels_last", "channels_first"}, optional
    dilation_rate : int or (int, int), default 1
    activation : str, one of convpool.activations' functions, or None
    use_bias : bool, default True
    depthwise_initializer, bias_initializer : str, Initializer, dict, callable or None
        Keras's (see :func:`convpool.initializers.get`); default
        "glorot_uniform" (Keras's fans of the (KH, KW, C, depth_multiplier)
        kernel: KH*KW*C in, KH*KW*depth_multiplier out) and "zeros".
    depthwise_regularizer, bias_regularizer, activity_regularizer, depthwise_constraint, \
bias_constraint : None
        Keras's arguments; only None is supported (anything else is a ValueError).
    name, seed, dtype, input_shape :
        See :class:`Layer` (keyword-only).

    Shape
    -----
    Kernel in Keras's layout ``(KH, KW, C, depth_multiplier)``; bias
    ``(C * depth_multiplier,)``; output channel ``c * depth_multiplier + m``
    is input channel ``c``'s ``m``-th filter.

    Examples
    --------
    >>> import numpy as np
    >>> layer = DepthwiseConv2D(3, padding="same", depth_multiplier=2)
    >>> layer(np.zeros((1, 8, 8, 4), np.float32)).shape, layer.kernel.shape
    ((1, 8, 8, 8), (3, 3, 4, 2))
    """

    def __init__(
        self,
        kernel_size: IntPair,
        strides: IntPair = (1, 1),
        padding: Padding = "valid",
        depth_multiplier: SupportsIndex = 1,
        data_format: str | None = None,
        dilation_rate: IntPair = (1, 1),
        activation: object = None,
        use_bias: bool | np.bool_ = True,
        depthwise_initializer: object = "glorot_uniform",
        bias_initializer: object = "zeros",
        depthwise_regularizer: None = None,
        bias_regularizer: None = None,
        activity_regularizer: None = None,
        depthwise_constraint: None = None,
        bias_constraint: None = None,
        *,
        name: str | None = None,
        seed: int | None = None,
        dtype: DTypeLike | None = None,
        input_shape: ShapeLike | None = None,
    ) -> None:
        super().__init__(kernel_size, strides, padding, check_data_format(data_format),
                         window_name="kernel_size", name=name, seed=seed, dtype=dtype,
                         input_shape=input_shape)
        self.kernel_size = self._window
        self.depth_multiplier = check_int(depth_multiplier, "depth_multiplier")
        self.dilation_rate = as_pair(dilation_rate, "dilation_rate")
        self._init_kernel_bias(use_bias, activation)
        _none_only(depthwise_regularizer=depthwise_regularizer, bias_regularizer=bias_regularizer,
                   activity_regularizer=activity_regularizer,
                   depthwise_constraint=depthwise_constraint, bias_constraint=bias_constraint)
        self._inits = {"kernel": _WeightInit("depthwise_initializer", depthwise_initializer),
                       "bias": _WeightInit("bias_initializer", bias_initializer)}

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        win, (n, h, w, c) = self._resolve(input_shape)
        if self.built and c is not None and c != self._weights["kernel"].shape[2]:
            raise ValueError(f"DepthwiseConv2D layer {self.name!r} was built for "
                             f"{self._weights['kernel'].shape[2]} input channels, got input "
                             f"shape {tuple(input_shape)}")
        out_c = None if c is None else c * self.depth_multiplier
        return from_nhwc_shape((n, win.oh, win.ow, out_c), self.data_format)

    def weight_shapes(self, input_shape: ShapeLike) -> list[tuple[int, ...]]:
        kernel = _depthwise_shape(self, input_shape)
        out_c = kernel[2] * kernel[3]
        return [kernel] + ([(out_c,)] if self.use_bias else [])

    def _build_weights(self, input_shape: Shape, dtype: np.dtype[np.floating[Any]]) -> None:
        _draw_weights(self, self._inits, self.weight_shapes(input_shape), dtype)

    def _call(self, x: NDArray[Any]) -> FloatArray:
        dtype = compute_dtype(x, "x")
        k, args = _grouped_conv(self, self._weight("kernel", dtype))
        return functional.conv2d(x, k, self._weight("bias", dtype) if self.use_bias else None,
                                 activation=self._fused, **args)

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        kernel = self._weights["kernel"]
        k, args = _grouped_conv(self, self._weight("kernel", grad_out.dtype))
        grad_x, grad_kernel, grad_bias = functional.conv2d_backward(
            grad_out, x, k, input_grad=input_grad, activation=self._grad_relu,
            output=y if self._grad_relu else None, **args)
        grad_kernel = grad_kernel.reshape(kernel.shape)
        return grad_x, [grad_kernel, grad_bias] if self.use_bias else [grad_kernel]

    def get_config(self) -> dict[str, Any]:
        return {"kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "depth_multiplier": self.depth_multiplier,
                "data_format": self.data_format, "dilation_rate": self.dilation_rate,
                "activation": self.activation, "use_bias": self.use_bias,
                **_inits_config(self._inits), **self._identity_config()}


class SeparableConv2D(_KernelBias, _Spatial):
    """Depthwise-separable 2-D convolution, Keras's ``SeparableConv2D``: a
    depthwise conv (each channel's ``depth_multiplier`` filters, no bias), then
    a pointwise 1x1 conv to ``filters`` channels with the bias and activation.

    Parameters
    ----------
    filters : int
    kernel_size : int or (int, int)
    strides, padding, data_format, dilation_rate, depth_multiplier, activation, use_bias :
        As in :class:`DepthwiseConv2D` (strides, padding and dilation apply
        to the depthwise step).
    depthwise_initializer, pointwise_initializer, bias_initializer : \
str, Initializer, dict, callable or None
        Keras's (see :func:`convpool.initializers.get`); default
        "glorot_uniform", "glorot_uniform" and "zeros", drawn in that order
        from ``numpy.random.default_rng(seed)``.
    depthwise_regularizer, pointwise_regularizer, bias_regularizer, activity_regularizer, \
depthwise_constraint, pointwise_constraint, bias_constraint : None
        Keras's arguments; only None is supported (anything else is a ValueError).
    name, seed, dtype, input_shape :
        See :class:`Layer` (keyword-only).

    Shape
    -----
    Weights in Keras's order and layouts: ``depthwise_kernel`` (KH, KW, C,
    M), ``pointwise_kernel`` (1, 1, C * M, filters), ``bias`` (filters,).

    Examples
    --------
    >>> import numpy as np
    >>> layer = SeparableConv2D(16, 3, padding="same")
    >>> layer(np.zeros((1, 8, 8, 4), np.float32)).shape, layer.count_params()
    ((1, 8, 8, 16), 116)
    """

    def __init__(
        self,
        filters: SupportsIndex,
        kernel_size: IntPair,
        strides: IntPair = (1, 1),
        padding: Padding = "valid",
        data_format: str | None = None,
        dilation_rate: IntPair = (1, 1),
        depth_multiplier: SupportsIndex = 1,
        activation: object = None,
        use_bias: bool | np.bool_ = True,
        depthwise_initializer: object = "glorot_uniform",
        pointwise_initializer: object = "glorot_uniform",
        bias_initializer: object = "zeros",
        depthwise_regularizer: None = None,
        pointwise_regularizer: None = None,
        bias_regularizer: None = None,
        activity_regularizer: None = None,
        depthwise_constraint: None = None,
        pointwise_constraint: None = None,
        bias_constraint: None = None,
        *,
        name: str | None = None,
        seed: int | None = None,
        dtype: DTypeLike | None = None,
        input_shape: ShapeLike | None = None,
    ) -> None:
        super().__init__(kernel_size, strides, padding, check_data_format(data_format),
                         window_name="kernel_size", name=name, seed=seed, dtype=dtype,
                         input_shape=input_shape)
        self.filters = check_int(filters, "filters")
        self.kernel_size = self._window
        self.depth_multiplier = check_int(depth_multiplier, "depth_multiplier")
        self.dilation_rate = as_pair(dilation_rate, "dilation_rate")
        self._init_kernel_bias(use_bias, activation)
        self._weight_names = ("depthwise_kernel", "pointwise_kernel") + (
            ("bias",) if self.use_bias else ())
        _none_only(depthwise_regularizer=depthwise_regularizer,
                   pointwise_regularizer=pointwise_regularizer, bias_regularizer=bias_regularizer,
                   activity_regularizer=activity_regularizer,
                   depthwise_constraint=depthwise_constraint,
                   pointwise_constraint=pointwise_constraint, bias_constraint=bias_constraint)
        self._inits = {
            "depthwise_kernel": _WeightInit("depthwise_initializer", depthwise_initializer),
            "pointwise_kernel": _WeightInit("pointwise_initializer", pointwise_initializer),
            "bias": _WeightInit("bias_initializer", bias_initializer)}
        self._mid: NDArray[Any] | None = None  # the depthwise output, for backward

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        win, (n, h, w, c) = self._resolve(input_shape)
        if self.built and c is not None and c != self._weights["depthwise_kernel"].shape[2]:
            raise ValueError(f"SeparableConv2D layer {self.name!r} was built for "
                             f"{self._weights['depthwise_kernel'].shape[2]} input channels, "
                             f"got input shape {tuple(input_shape)}")
        return from_nhwc_shape((n, win.oh, win.ow, self.filters), self.data_format)

    def weight_shapes(self, input_shape: ShapeLike) -> list[tuple[int, ...]]:
        depthwise = _depthwise_shape(self, input_shape)
        pointwise = (1, 1, depthwise[2] * depthwise[3], self.filters)
        return [depthwise, pointwise] + ([(self.filters,)] if self.use_bias else [])

    def _build_weights(self, input_shape: Shape, dtype: np.dtype[np.floating[Any]]) -> None:
        _draw_weights(self, self._inits, self.weight_shapes(input_shape), dtype)

    def _depthwise(self, dtype: np.dtype[Any]) -> tuple[NDArray[Any], dict[str, Any]]:
        return _grouped_conv(self, self._weight("depthwise_kernel", dtype))

    def _call(self, x: NDArray[Any]) -> FloatArray:
        dtype = compute_dtype(x, "x")
        k, args = self._depthwise(dtype)
        mid = functional.conv2d(x, k, None, **args)
        self._mid = mid
        return functional.conv2d(mid, self._weight("pointwise_kernel", dtype),
                                 self._weight("bias", dtype) if self.use_bias else None,
                                 data_format=self.data_format, activation=self._fused)

    def _activate(self, z: NDArray[Any], training: bool) -> NDArray[Any]:
        if not training:
            self._mid = None
        return super()._activate(z, training)

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        mid, self._mid = self._mid, None
        assert mid is not None  # forward(training=True) kept it
        dtype = grad_out.dtype
        g_mid, g_point, g_bias = functional.conv2d_backward(
            grad_out, mid, self._weight("pointwise_kernel", dtype), data_format=self.data_format,
            activation=self._grad_relu, output=y if self._grad_relu else None)
        k, args = self._depthwise(dtype)
        assert g_mid is not None
        grad_x, g_depth, _ = functional.conv2d_backward(g_mid, x, k, input_grad=input_grad,
                                                        **args)
        g_depth = g_depth.reshape(self._weights["depthwise_kernel"].shape)
        return grad_x, [g_depth, g_point] + ([g_bias] if self.use_bias else [])

    def get_config(self) -> dict[str, Any]:
        return {"filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding,
                "data_format": self.data_format, "dilation_rate": self.dilation_rate,
                "depth_multiplier": self.depth_multiplier, "activation": self.activation,
                "use_bias": self.use_bias, **_inits_config(self._inits),
                **self._identity_config()}


# ------------------------------------------------ the depthwise step (Keras's layout)
def _depthwise_shape(layer: Any, input_shape: ShapeLike) -> tuple[int, int, int, int]:
    """(KH, KW, C, depth_multiplier): a depthwise kernel in Keras's layout."""
    c = to_nhwc_shape(tuple(input_shape), layer.data_format)[3]
    if c is None:
        raise ValueError(f"{type(layer).__name__} needs known input channels, got input shape "
                         f"{tuple(input_shape)}")
    kh, kw = layer.kernel_size
    return (kh, kw, int(c), layer.depth_multiplier)


def _grouped_conv(layer: Any, kernel: NDArray[Any]) -> tuple[NDArray[Any], dict[str, Any]]:
    """A (KH, KW, C, M) depthwise kernel as conv2d's grouped kernel (KH, KW, 1, C*M),
    a reshape (output channel c*M + m is channel c's m-th filter), and the
    conv2d arguments of ``layer``'s depthwise step (groups = C)."""
    kh, kw, c, dm = kernel.shape
    args = {"strides": layer.strides, "padding": layer.padding,
            "dilation_rate": layer.dilation_rate, "groups": c, "data_format": layer.data_format}
    return kernel.reshape(kh, kw, 1, c * dm), args
