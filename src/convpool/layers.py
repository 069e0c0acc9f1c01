"""Keras-style layers: thin wrappers that own weights and call :mod:`convpool.functional`.

Names and conventions follow Keras: ``Dense(units, use_bias)``,
``Conv2D(filters, kernel_size, strides, padding, dilation_rate, groups,
use_bias, data_format)``, ``MaxPool2D`` / ``AvgPool2D(pool_size, strides,
padding)``, ``Flatten``; kernels in Keras's layout, channels_last by default.

Weights are created at the first call (or :meth:`Layer.build`) from the
input's shape: Glorot-uniform kernels, zero biases, drawn from
``numpy.random.default_rng(seed)``.  Their dtype is ``dtype`` when given, else
the compute dtype of the first input (float64 for float64 input, float32
otherwise); a later call in the other float dtype uses a cast copy.

Every layer validates its constructor arguments at once, and its input at each
call, raising ValueError / TypeError before computing anything.

Training: ``forward(x, training=True)`` keeps what ``backward(grad_out)`` needs;
``backward`` returns the gradient for the layer's input and stores the
gradients of its weights in ``.grads``, aligned with ``.weights``.
``activation="relu"`` on Conv2D and Dense applies the ReLU as the output is
written (fused into the conv kernel's store).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, SupportsIndex, TypeAlias, TypeVar, cast

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import functional
from ._checks import (
    FloatArray,
    as_array,
    cast_weights,
    check_activation,
    check_bool,
    check_data_format,
    check_int,
    compute_dtype,
    from_nhwc_shape,
    to_nhwc_shape,
)
from ._shapes import (
    IntPair,
    Padding,
    TransposeWindow2D,
    Window2D,
    as_pair,
    check_padding_mode,
    padding_mode_name,
    receptive_field_step,
    resolve_padding,
    transpose_receptive_field_step,
    transpose_window_2d,
    window_2d,
)

__all__ = [
    "Layer", "Dense", "Conv2D", "Conv2DTranspose", "MaxPool2D", "AvgPool2D",
    "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten", "ReLU", "LAYERS",
]

#: A shape as the layers see it: the batch axis (or any other) may be None.
Shape: TypeAlias = tuple[int | None, ...]
#: A shape as the layers take it: any sequence of ints and Nones.
ShapeLike: TypeAlias = Sequence[int | None]
#: A (height, width) pair, or None (receptive fields once positions are mixed).
#: Ints, or Fractions after a transposed conv (its outputs are 1/stride of an
#: input pixel apart).
OptionalPair: TypeAlias = tuple[Any, Any] | None

_L = TypeVar("_L", bound="Layer")

_name_counters: defaultdict[str, itertools.count[int]] = defaultdict(itertools.count)


def _default_name(cls_name: str) -> str:
    snake = "".join("_" + ch.lower() if ch.isupper() else ch for ch in cls_name).lstrip("_")
    snake = snake.replace("2_d", "2d")
    n = next(_name_counters[snake])
    return snake if n == 0 else f"{snake}_{n}"


def _float_dtype(dtype: DTypeLike | None) -> np.dtype[np.floating[Any]] | None:
    if dtype is None:
        return None
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32, float64 or None, got {dtype}")
    return cast("np.dtype[np.floating[Any]]", dtype)  # float32 or float64, checked above


def _check_padding_form(padding: Padding) -> None:
    """Reject an unknown or negative padding at construction time."""
    resolve_padding(padding, (1, 1), (1, 1), (1, 1))


def _relu_inplace(y: NDArray[Any]) -> NDArray[Any]:
    """max(0, y) in place, keeping NaN (as the fused conv kernel does)."""
    y[y < 0] = 0
    return y


def _glorot_uniform(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    fan_in: int,
    fan_out: int,
    dtype: np.dtype[Any],
) -> NDArray[Any]:
    limit = math.sqrt(6.0 / (fan_in + fan_out)) if fan_in + fan_out > 0 else 0.0
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


class Layer:
    """Base of all layers: weights, building, shapes, parameter counts.

    Subclasses set ``_weight_names`` and implement ``_build_weights(input_shape,
    dtype)``, ``_call(x)``, ``_backward(grad_out, x, y, input_grad)``,
    ``compute_output_shape(input_shape)`` and ``get_config()``.

    Parameters
    ----------
    name : str, optional
        Defaults to the snake-case class name, numbered like Keras (``conv2d_1``).
    seed : int or None
        Seed of the weight initialiser.
    dtype : {None, "float32", "float64"}
        Weight dtype; None takes the compute dtype of the first input.
    """

    _weight_names: tuple[str, ...] = ()

    def __init__(
        self, *, name: str | None = None, seed: int | None = None, dtype: DTypeLike | None = None
    ) -> None:
        self.name = name if name is not None else _default_name(type(self).__name__)
        self.seed = seed
        self.dtype = _float_dtype(dtype)
        self.built = False
        self.input_shape: Shape | None = None
        self._weights: dict[str, NDArray[Any]] = {}
        self.grads: list[NDArray[Any]] = []  # set by backward, aligned with weights
        # (x, y) of the last forward(training=True)
        self._saved: tuple[NDArray[Any], NDArray[Any]] | None = None

    # ---- weights ------------------------------------------------------------
    @property
    def weights(self) -> list[NDArray[Any]]:
        """The weight arrays (kernel first, then bias if any); empty before build."""
        return [self._weights[n] for n in self._weight_names if n in self._weights]

    def get_weights(self) -> list[NDArray[Any]]:
        """Copies of :attr:`weights`."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Iterable[ArrayLike]) -> None:
        """Replace the weights with copies of ``weights`` (same count and shapes).

        Raises
        ------
        ValueError
            If the layer is not built, or the count or a shape differs.
        """
        if not self.built:
            raise ValueError(
                f"layer {self.name!r} is not built: call it on an input or "
                f"build(input_shape) before set_weights"
            )
        current = self.weights
        weights = list(weights)
        if len(weights) != len(current):
            raise ValueError(
                f"layer {self.name!r} has {len(current)} weight arrays, got {len(weights)}"
            )
        new = []
        for name, old, w in zip(self._weight_names, current, weights):
            w = as_array(w, name)
            if w.shape != old.shape:
                raise ValueError(
                    f"{name} of layer {self.name!r} has shape {old.shape}, got {w.shape}"
                )
            if w.dtype.kind not in "biuf":
                raise TypeError(f"{name} has dtype {w.dtype}, expected a real number dtype")
            new.append(np.array(w, dtype=old.dtype, copy=True))
        for name, w in zip(self._weight_names, new):
            self._weights[name] = w

    def count_params(self) -> int:
        """Number of weights (kernel and bias elements).

        Raises
        ------
        ValueError
            If the layer has weights but is not built yet.
        """
        if self._weight_names and not self.built:
            raise ValueError(
                f"layer {self.name!r} is not built, so its parameter count is not "
                f"known yet: call it on an input or build(input_shape)"
            )
        return int(sum(w.size for w in self.weights))

    # ---- building and calling ------------------------------------------------
    def build(self, input_shape: ShapeLike) -> None:
        """Create the weights for inputs of ``input_shape`` (batch may be None)."""
        input_shape = tuple(input_shape)
        self.compute_output_shape(input_shape)  # validates the shape
        dtype = self.dtype if self.dtype is not None else np.dtype(np.float32)
        self._build_weights(input_shape, dtype)
        self.dtype = dtype
        self.input_shape = input_shape
        self.built = True

    def __call__(self, x: ArrayLike) -> NDArray[Any]:
        """The layer's output for ``x`` (inference: nothing is kept for backward)."""
        return self.forward(x)

    def forward(self, x: ArrayLike, training: bool = False) -> NDArray[Any]:
        """The layer's output for ``x``; ``training=True`` keeps what backward needs.

        Parameters
        ----------
        x : array_like
        training : bool, default False
            Keep ``x`` and the output for the next :meth:`backward`.

        Returns
        -------
        ndarray
        """
        x = as_array(x, "x")
        compute = compute_dtype(x, "x")
        if not self.built:
            self.compute_output_shape(x.shape)  # validate before creating weights
            if self.dtype is None:
                self.dtype = compute
            self.build(x.shape)
        y = self._call(x)
        self._saved = (x, y) if training else None
        return y

    def backward(self, grad_out: ArrayLike, input_grad: bool = True) -> NDArray[Any] | None:
        """Back-propagate ``grad_out`` through the last ``forward(x, training=True)``.

        Parameters
        ----------
        grad_out : array_like of the output's shape
            Gradient of the loss with respect to this layer's output.
        input_grad : bool, default True
            False skips the input's gradient (e.g. for a network's first layer).

        Returns
        -------
        ndarray of the input's shape, or None when ``input_grad`` is False
            Gradient of the loss with respect to this layer's input.  The
            weights' gradients go to :attr:`grads`.
        """
        if self._saved is None:
            raise RuntimeError(
                f"layer {self.name!r}: backward() needs a forward(x, training=True) first"
            )
        x, y = self._saved
        grad_out = as_array(grad_out, "grad_out")
        if grad_out.shape != y.shape:
            raise ValueError(
                f"layer {self.name!r}: grad_out must have the output's shape {y.shape}, "
                f"got {grad_out.shape}"
            )
        grad_out = cast_weights(grad_out, "grad_out", compute_dtype(y, "output"))
        grad_x, grads = self._backward(grad_out, x, y, input_grad)
        self.grads = [g.astype(w.dtype, copy=False) for g, w in zip(grads, self.weights)]
        return grad_x

    def _backward(  # pragma: no cover - abstract
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        raise NotImplementedError

    def _weight(self, name: str, dtype: np.dtype[Any]) -> NDArray[Any]:
        w = self._weights[name]
        return w if w.dtype == dtype else w.astype(dtype)

    def _build_weights(self, input_shape: Shape, dtype: np.dtype[np.floating[Any]]) -> None:
        pass

    def _call(self, x: NDArray[Any]) -> NDArray[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:  # pragma: no cover - abstract
        raise NotImplementedError

    def receptive_field(
        self, field: OptionalPair, jump: OptionalPair, input_shape: ShapeLike
    ) -> tuple[OptionalPair, OptionalPair]:
        """Receptive field and jump on the network input after this layer.

        Parameters
        ----------
        field, jump : (int, int) or None
            Of this layer's input; None once the spatial axes are mixed away.
        input_shape : tuple
            This layer's input shape.

        Returns
        -------
        (field, jump)
            Unchanged for layers that act on each position separately.
        """
        return field, jump

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this layer (JSON-friendly)."""
        return {"name": self.name}

    @classmethod
    def from_config(cls: type[_L], config: dict[str, Any]) -> _L:
        """A new layer from :meth:`get_config`'s output (weights not included)."""
        return cls(**config)

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({cfg + ', ' if cfg else ''}name={self.name!r})"


class _KernelBias:
    """The ``kernel`` / ``bias`` pair of Dense and Conv2D (``use_bias`` decides the bias)."""

    # Declared for the type checker; Layer defines them.
    _weights: dict[str, NDArray[Any]]
    _weight_names: tuple[str, ...]

    def _init_kernel_bias(self, use_bias: bool | np.bool_, activation: str | None) -> None:
        self.use_bias = check_bool(use_bias, "use_bias")
        self._weight_names = ("kernel", "bias") if self.use_bias else ("kernel",)
        self.activation = check_activation(activation)

    @property
    def kernel(self) -> NDArray[Any] | None:
        """The kernel ndarray, or None before build."""
        return self._weights.get("kernel")

    @property
    def bias(self) -> NDArray[Any] | None:
        """The bias ndarray of shape (units or filters,), or None (not built or no bias)."""
        return self._weights.get("bias")


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


class _Spatial(Layer):
    """Common part of the sliding-window layers (Conv2D and the pools)."""

    def __init__(
        self,
        window: IntPair,
        strides: IntPair | None,
        padding: Padding,
        data_format: str,
        *,
        window_name: str,
        name: str | None,
        seed: int | None,
        dtype: DTypeLike | None,
    ) -> None:
        super().__init__(name=name, seed=seed, dtype=dtype)
        self._window_name = window_name
        self._window = as_pair(window, window_name)
        self.strides = as_pair(strides, "strides") if strides is not None else self._window
        _check_padding_form(padding)
        self.padding = padding
        self.data_format = check_data_format(data_format)
        self.dilation_rate = (1, 1)

    def _resolve(
        self, input_shape: ShapeLike
    ) -> tuple[Window2D, tuple[int | None, int, int, int | None]]:
        """The Window2D of this layer on ``input_shape`` (validates the shape)."""
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            layout = "(N, H, W, C)" if self.data_format == "channels_last" else "(N, C, H, W)"
            raise ValueError(
                f"{type(self).__name__} expects a 4-D input {layout}, got shape {input_shape}"
            )
        n, h, w, c = to_nhwc_shape(input_shape, self.data_format)
        if h is None or w is None:
            raise ValueError(f"{type(self).__name__} needs known H and W, got {input_shape}")
        win = window_2d(
            (h, w), self._window, self.strides, self.padding, self.dilation_rate,
            window_name=self._window_name,
            context=f"layer {self.name!r}, input shape {input_shape}",
            max_pad=self._max_pad(),
        )
        return win, (n, h, w, c)

    def _max_pad(self) -> tuple[int, int] | None:
        return None

    def receptive_field(
        self, field: OptionalPair, jump: OptionalPair, input_shape: ShapeLike
    ) -> tuple[OptionalPair, OptionalPair]:
        if field is None:
            return None, None
        win, _ = self._resolve(input_shape)
        # jump is None only together with field (see Sequential.summary).
        return receptive_field_step(field, cast("tuple[int, int]", jump), win)


class Conv2D(_KernelBias, _Spatial):
    """2-D convolution layer (see :func:`convpool.conv2d`).

    Parameters
    ----------
    filters : int
        Output channels (positive, divisible by ``groups``).
    kernel_size : int or (int, int)
    strides : int or (int, int), default 1
    padding : "valid", "same", int, (ph, pw) or ((top, bottom), (left, right))
    dilation_rate : int or (int, int), default 1
    groups : int, default 1
    use_bias : bool, default True
    data_format : {"channels_last", "channels_first"}
    activation : {None, "relu"}
        "relu" is applied by the conv kernel as it writes the output.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, keyword-only
        PyTorch's Conv2d padding modes (see :func:`convpool.conv2d`).
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

    The seed tutorial's layer: 16 filters of 5x5 over 3 channels, stride 5,
    so 5 * 5 * 3 * 16 = 1200 weights; its output on full-HD frames, and on
    a small batch:

    >>> seed = Conv2D(16, (5, 5), strides=5, use_bias=False)
    >>> seed.compute_output_shape((64, 1920, 1080, 3))
    (64, 384, 216, 16)
    >>> seed(np.zeros((2, 40, 30, 3), np.float32)).shape, seed.count_params()
    ((2, 8, 6, 16), 1200)
    """

    def __init__(
        self,
        filters: SupportsIndex,
        kernel_size: IntPair,
        strides: IntPair = 1,
        padding: Padding = "valid",
        dilation_rate: IntPair = 1,
        groups: SupportsIndex = 1,
        use_bias: bool | np.bool_ = True,
        data_format: str = "channels_last",
        activation: str | None = None,
        *,
        padding_mode: str = "zeros",
        name: str | None = None,
        seed: int | None = None,
        dtype: DTypeLike | None = None,
    ) -> None:
        super().__init__(
            kernel_size, strides, padding, data_format,
            window_name="kernel_size", name=name, seed=seed, dtype=dtype,
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

    def _build_weights(self, input_shape: Shape, dtype: np.dtype[np.floating[Any]]) -> None:
        _, _, _, c = to_nhwc_shape(input_shape, self.data_format)
        kh, kw = self.kernel_size
        # An unknown C (None) fails here with the TypeError it always raised.
        shape = (kh, kw, cast(int, c) // self.groups, self.filters)
        rng = np.random.default_rng(self.seed)
        # Keras's fans: receptive field size times the kernel's in/out axes.
        fan_in, fan_out = kh * kw * shape[2], kh * kw * shape[3]
        self._weights["kernel"] = _glorot_uniform(rng, shape, fan_in, fan_out, dtype)
        if self.use_bias:
            self._weights["bias"] = np.zeros(self.filters, dtype)

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
            activation=self.activation,
            padding_mode=self.padding_mode,
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
            activation=self.activation,
            output=y if self.activation else None,
            padding_mode=self.padding_mode,
        )
        return grad_x, [grad_kernel, grad_bias] if self.use_bias else [grad_kernel]

    def get_config(self) -> dict[str, Any]:
        return {"filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding,
                "dilation_rate": self.dilation_rate, "groups": self.groups,
                "use_bias": self.use_bias, "data_format": self.data_format,
                "activation": self.activation, "padding_mode": self.padding_mode,
                "name": self.name, "seed": self.seed,
                "dtype": None if self.dtype is None else self.dtype.name}


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
    dilation_rate : int or (int, int), default 1
    use_bias : bool, default True
    activation : {None, "relu"}
    data_format : {"channels_last", "channels_first"}
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

    def __init__(
        self,
        filters: SupportsIndex,
        kernel_size: IntPair,
        strides: IntPair = 1,
        padding: Padding = "valid",
        output_padding: IntPair | None = None,
        dilation_rate: IntPair = 1,
        use_bias: bool | np.bool_ = True,
        activation: str | None = None,
        data_format: str = "channels_last",
        *,
        groups: SupportsIndex = 1,
        name: str | None = None,
        seed: int | None = None,
        dtype: DTypeLike | None = None,
    ) -> None:
        super().__init__(name=name, seed=seed, dtype=dtype)
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

    def _build_weights(self, input_shape: Shape, dtype: np.dtype[np.floating[Any]]) -> None:
        _, _, _, c = to_nhwc_shape(input_shape, self.data_format)
        kh, kw = self.kernel_size
        shape = (kh, kw, self.filters // self.groups, cast(int, c))
        rng = np.random.default_rng(self.seed)
        # Keras's fans: receptive field size times the kernel's last two axes.
        fan_in, fan_out = kh * kw * shape[2], kh * kw * shape[3]
        self._weights["kernel"] = _glorot_uniform(rng, shape, fan_in, fan_out, dtype)
        if self.use_bias:
            self._weights["bias"] = np.zeros(self.filters, dtype)

    def _args(self) -> dict[str, Any]:
        return {"strides": self.strides, "padding": self.padding,
                "output_padding": self.output_padding, "dilation_rate": self.dilation_rate,
                "groups": self.groups, "data_format": self.data_format}

    def _call(self, x: NDArray[Any]) -> FloatArray:
        dtype = compute_dtype(x, "x")
        return functional.conv2d_transpose(
            x, self._weight("kernel", dtype),
            self._weight("bias", dtype) if self.use_bias else None,
            activation=self.activation, **self._args(),
        )

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        if self.activation is not None:
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
                "data_format": self.data_format, "groups": self.groups, "name": self.name,
                "seed": self.seed, "dtype": None if self.dtype is None else self.dtype.name}


class _Pool2D(_Spatial):
    def __init__(
        self,
        pool_size: IntPair,
        strides: IntPair | None,
        padding: Padding,
        data_format: str,
        *,
        name: str | None,
    ) -> None:
        super().__init__(
            pool_size, strides, padding, data_format,
            window_name="pool_size", name=name, seed=None, dtype=None,
        )
        self.pool_size = self._window

    def _max_pad(self) -> tuple[int, int]:
        return (self.pool_size[0] - 1, self.pool_size[1] - 1)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        win, (n, _, _, c) = self._resolve(input_shape)
        return from_nhwc_shape((n, win.oh, win.ow, c), self.data_format)

    def get_config(self) -> dict[str, Any]:
        return {"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding,
                "data_format": self.data_format, "name": self.name}


class MaxPool2D(_Pool2D):
    """2-D max pooling layer (see :func:`convpool.max_pool2d`); no parameters.

    Parameters
    ----------
    pool_size : int or (int, int), default 2
    strides : int or (int, int), optional
        Defaults to ``pool_size``.
    padding : "valid", "same", int, (ph, pw) or ((top, bottom), (left, right))
    data_format : {"channels_last", "channels_first"}
    name : str, optional

    Shape
    -----
    Input ``(N, H, W, C)``, output ``(N, OH, OW, C)`` with
    ``OH = (H + pt + pb - KH) // sh + 1``, likewise OW.

    Examples
    --------
    >>> import numpy as np
    >>> MaxPool2D(2)(np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1))[0, :, :, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    >>> MaxPool2D(2).compute_output_shape((64, 384, 216, 16))
    (64, 192, 108, 16)
    >>> MaxPool2D((3, 2), strides=(2, 1), padding="same").compute_output_shape((1, 7, 5, 3))
    (1, 4, 5, 3)
    """

    def __init__(
        self,
        pool_size: IntPair = 2,
        strides: IntPair | None = None,
        padding: Padding = "valid",
        data_format: str = "channels_last",
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(pool_size, strides, padding, data_format, name=name)

    def _call(self, x: NDArray[Any]) -> FloatArray:
        return functional.max_pool2d(
            x, self.pool_size, self.strides, self.padding, data_format=self.data_format
        )

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        if not input_grad:
            return None, []
        return functional.max_pool2d_backward(
            grad_out, x, self.pool_size, self.strides, self.padding, data_format=self.data_format
        ), []


class AvgPool2D(_Pool2D):
    """2-D average pooling layer (see :func:`convpool.avg_pool2d`); no parameters.

    Parameters
    ----------
    pool_size : int or (int, int), default 2
    strides : int or (int, int), optional
        Defaults to ``pool_size``.
    padding : "valid", "same", int, (ph, pw) or ((top, bottom), (left, right))
    data_format : {"channels_last", "channels_first"}
    count_include_pad : bool, default False
        Keras's rule (False) divides by the real cells of each window.
    name : str, optional

    Shape
    -----
    As :class:`MaxPool2D`.

    Examples
    --------
    >>> import numpy as np
    >>> AvgPool2D(2)(np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1))[0, :, :, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    """

    def __init__(
        self,
        pool_size: IntPair = 2,
        strides: IntPair | None = None,
        padding: Padding = "valid",
        data_format: str = "channels_last",
        count_include_pad: bool | np.bool_ = False,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(pool_size, strides, padding, data_format, name=name)
        self.count_include_pad = check_bool(count_include_pad, "count_include_pad")

    def _call(self, x: NDArray[Any]) -> FloatArray:
        return functional.avg_pool2d(
            x, self.pool_size, self.strides, self.padding, data_format=self.data_format,
            count_include_pad=self.count_include_pad,
        )

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        if not input_grad:
            return None, []
        return functional.avg_pool2d_backward(
            grad_out, x, self.pool_size, self.strides, self.padding,
            data_format=self.data_format, count_include_pad=self.count_include_pad,
        ), []

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "count_include_pad": self.count_include_pad}


class _GlobalPool2D(Layer):
    """Common part of GlobalAveragePooling2D and GlobalMaxPooling2D."""

    _forward_fn: Any
    _backward_fn: Any

    def __init__(self, data_format: str = "channels_last", keepdims: bool | np.bool_ = False,
                 *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.data_format = check_data_format(data_format)
        self.keepdims = check_bool(keepdims, "keepdims")

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(f"{type(self).__name__} expects a 4-D input, got shape {input_shape}")
        n, h, w, c = to_nhwc_shape(input_shape, self.data_format)
        if (h is not None and h < 1) or (w is not None and w < 1):
            raise ValueError(f"{type(self).__name__} needs H and W of at least 1, "
                             f"got input shape {input_shape}")
        if self.keepdims:
            return from_nhwc_shape((n, 1, 1, c), self.data_format)
        return (n, c)

    def _call(self, x: NDArray[Any]) -> FloatArray:
        return cast(FloatArray, type(self)._forward_fn(x, self.keepdims, self.data_format))

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        if not input_grad:
            return None, []
        return type(self)._backward_fn(grad_out, x, self.keepdims, self.data_format), []

    def receptive_field(
        self, field: OptionalPair, jump: OptionalPair, input_shape: ShapeLike
    ) -> tuple[OptionalPair, OptionalPair]:
        return None, None  # every output sees the whole image

    def get_config(self) -> dict[str, Any]:
        return {"data_format": self.data_format, "keepdims": self.keepdims, "name": self.name}


class GlobalAveragePooling2D(_GlobalPool2D):
    """The mean over H and W (see :func:`convpool.global_avg_pool2d`); no parameters.

    Parameters
    ----------
    data_format : {"channels_last", "channels_first"}
    keepdims : bool, default False
    name : str, optional

    Shape
    -----
    Input ``(N, H, W, C)``, output ``(N, C)``, or ``(N, 1, 1, C)`` with keepdims.

    Examples
    --------
    >>> import numpy as np
    >>> GlobalAveragePooling2D()(np.ones((2, 7, 5, 3), np.float32)).shape
    (2, 3)
    >>> GlobalAveragePooling2D(keepdims=True).compute_output_shape((None, 7, 5, 3))
    (None, 1, 1, 3)
    """

    _forward_fn = staticmethod(functional.global_avg_pool2d)
    _backward_fn = staticmethod(functional.global_avg_pool2d_backward)


class GlobalMaxPooling2D(_GlobalPool2D):
    """The maximum over H and W (see :func:`convpool.global_max_pool2d`); no parameters.

    Parameters, shapes: as :class:`GlobalAveragePooling2D`.

    Examples
    --------
    >>> import numpy as np
    >>> GlobalMaxPooling2D(data_format="channels_first")(np.ones((2, 3, 7, 5), np.float32)).shape
    (2, 3)
    """

    _forward_fn = staticmethod(functional.global_max_pool2d)
    _backward_fn = staticmethod(functional.global_max_pool2d_backward)


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

    def __init__(self, data_format: str = "channels_last", *, name: str | None = None) -> None:
        super().__init__(name=name)
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


#: Layer classes by name, for :meth:`Sequential.save` / :func:`convpool.load`.
LAYERS: dict[str, type[Layer]] = {
    cls.__name__: cls
    for cls in (Dense, Conv2D, Conv2DTranspose, MaxPool2D, AvgPool2D, GlobalAveragePooling2D,
                GlobalMaxPooling2D, Flatten, ReLU)
}
