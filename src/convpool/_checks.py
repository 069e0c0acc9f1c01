"""Argument checks shared by the fast functions and the reference.

Everything here runs before any kernel: it either returns normalised values or
raises a ValueError / TypeError that names the argument and the shapes
received.  It never modifies its inputs.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, SupportsIndex, TypeAlias, TypeVar, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:  # _shapes imports this module: its names are needed here for typing only
    from ._shapes import IntPair, Padding, TransposeWindow2D, Window2D

__all__ = [
    "CONV_ALGORITHMS",
    "DATA_FORMATS",
    "INT64_MAX",
    "ConvCall",
    "FloatArray",
    "PoolCall",
    "TransposeCall",
    "as_array",
    "cast_weights",
    "check_activation",
    "check_bool",
    "check_conv_algorithm",
    "check_data_format",
    "check_divisor_override",
    "check_grad_out",
    "check_image",
    "check_int",
    "check_norm_type",
    "check_number",
    "check_out",
    "check_rank4",
    "check_result_size",
    "compute_dtype",
    "dense_call",
    "from_nhwc",
    "from_nhwc_shape",
    "grad_out_nhwc",
    "kernel_ready",
    "to_nhwc",
    "to_nhwc_shape",
]

DATA_FORMATS = ("channels_last", "channels_first")

#: The largest size, index or count the kernels' int64 arguments hold.
INT64_MAX = 2**63 - 1

_T = TypeVar("_T")

#: A result or gradient: float32 or float64.
FloatArray: TypeAlias = NDArray[np.floating[Any]]


def check_data_format(data_format: object) -> str:
    """Return ``data_format`` if it is 'channels_last' or 'channels_first'."""
    if data_format is None:
        return "channels_last"
    if not isinstance(data_format, str) or data_format.lower() not in DATA_FORMATS:
        raise ValueError(
            f"data_format must be 'channels_last' or 'channels_first', got {data_format!r}"
        )
    return data_format.lower()


def check_activation(activation: object) -> str | None:
    """``activation`` if it is None or 'relu' (case-insensitive), else ValueError."""
    if activation is None:
        return None
    if isinstance(activation, str) and activation.lower() in ("relu", "linear"):
        return None if activation.lower() == "linear" else "relu"
    raise ValueError(f"activation must be None, 'linear' or 'relu', got {activation!r}")


#: conv2d's algorithm= choices: the fastest for the geometry and dtype, the
#: direct (exact-order) algorithms only, or Winograd F(4x4, 3x3).
CONV_ALGORITHMS = ("auto", "direct", "winograd")


def check_conv_algorithm(algorithm: object, geometry: ConvCall | Any = None) -> str:
    """``algorithm`` if it is one of :data:`CONV_ALGORITHMS`.

    "winograd" also needs a geometry it computes (3x3, stride 1, dilation 1,
    one group, zero padding): ``geometry`` is a :class:`ConvCall` or anything
    with ``kernel_size``, ``strides``, ``dilation_rate``, ``groups`` and
    ``padding_mode`` (a Conv2D layer); a ValueError names what differs.
    """
    if not isinstance(algorithm, str) or algorithm not in CONV_ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(map(repr, CONV_ALGORITHMS))}, "
                         f"got {algorithm!r}")
    if algorithm != "winograd" or geometry is None:
        return algorithm
    if isinstance(geometry, ConvCall):
        w = geometry.win
        size = tuple(geometry.kernel.shape[:2])
        strides, dilation = (w.sh, w.sw), (w.dh, w.dw)
    else:
        size, strides, dilation = (tuple(geometry.kernel_size), tuple(geometry.strides),
                                   tuple(geometry.dilation_rate))
    problems = [what for what, bad in (
        (f"kernel_size={size}", size != (3, 3)),
        (f"strides={strides}", strides != (1, 1)),
        (f"dilation_rate={dilation}", dilation != (1, 1)),
        (f"groups={geometry.groups}", geometry.groups != 1),
        (f"padding_mode={geometry.padding_mode!r}", geometry.padding_mode != "zeros")) if bad]
    if problems:
        raise ValueError("algorithm='winograd' computes 3x3 convolutions with stride 1, "
                         "dilation 1, one group and zero padding; this one has "
                         + ", ".join(problems))
    return algorithm


def check_bool(value: object, name: str) -> bool:
    """``value`` as a bool; anything but a Python or NumPy bool is a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def check_int(
    value: object, name: str, *, minimum: int | None = 1, requirement: str | None = None
) -> int:
    """``value`` as a Python int, else a TypeError or ValueError naming ``name``.

    The one integer-argument check of the package.

    Parameters
    ----------
    value : object
        An int or anything with ``__index__`` (a NumPy integer, say).  A bool
        is refused: ``True`` is an int to Python, but never a meaningful size.
    name : str
        The argument's public name, quoted in the messages.
    minimum : int or None, default 1
        The smallest value allowed; None allows any.
    requirement : str, optional
        What both messages say ``name`` must be, e.g. ``"a positive int or
        None"``.  By default a non-integer is told it "must be an int" and a
        value out of range that it "must be positive" (or ">= minimum").

    Returns
    -------
    int

    Raises
    ------
    TypeError
        For a bool or a non-integer, quoting it and its type.
    ValueError
        For an int below ``minimum``, quoting it.
    """
    kind = requirement or "an int"
    if isinstance(value, bool):
        raise TypeError(f"{name} must be {kind}, got the bool {value!r}")
    try:
        number = operator.index(cast(SupportsIndex, value))  # a TypeError is the check
    except TypeError:
        raise TypeError(
            f"{name} must be {kind}, got {value!r} of type {type(value).__name__}"
        ) from None
    if minimum is not None and number < minimum:
        bound = requirement or ("positive" if minimum == 1 else f">= {minimum}")
        raise ValueError(f"{name} must be {bound}, got {number}")
    return number


def check_number(value: object, name: str, *, low: float | None = None,
                 high: float | None = None, low_open: bool = False,
                 high_open: bool = False) -> float:
    """``value`` as a float, finite and within the given bounds, else a TypeError
    (a bool, a string, anything not a real number) or a ValueError naming ``name``.

    The one real-number-argument check of the package (rates, momenta,
    epsilons, thresholds).  ``low_open`` / ``high_open`` exclude the bound.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        number = math.inf if value > 0 else -math.inf
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and (number >= high if high_open else number > high)
    if not math.isfinite(number) or below or above:
        if low == 0 and low_open and high is None:
            raise ValueError(f"{name} must be positive, got {value!r}")
        if low is None and high is None:
            raise ValueError(f"{name} must be finite, got {value!r}")
        interval = (("(" if low_open else "[") + ("-inf" if low is None else f"{low:g}") + ", "
                    + ("inf" if high is None else f"{high:g}") + (")" if high_open else "]"))
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return number


def check_divisor_override(divisor_override: object) -> int:
    """avg_pool2d's ``divisor_override`` as the kernels' int64 (0: none).

    A positive int below 2**63, or None.
    """
    if divisor_override is None:
        return 0
    divisor = check_int(divisor_override, "divisor_override",
                        requirement="a positive int or None")
    if divisor > INT64_MAX:
        raise ValueError(f"divisor_override must be below 2**63, got {divisor}")
    return divisor


def check_norm_type(norm_type: object) -> float:
    """lp_pool2d's ``norm_type`` p as a float: a real number, finite and non-zero."""
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float, np.integer,
                                                                np.floating)):
        raise TypeError(f"norm_type must be a number, got {norm_type!r}")
    try:
        p = float(norm_type)
    except OverflowError:  # an int beyond the float range
        raise ValueError(f"norm_type must be finite and non-zero, got {norm_type!r}") from None
    if not np.isfinite(p) or p == 0:
        raise ValueError(f"norm_type must be finite and non-zero, got {norm_type!r}")
    return p


def check_image(x: ArrayLike, data_format: str | None, op: str
                ) -> tuple[NDArray[Any], str, tuple[int, int, int, int]]:
    """``x`` checked as a 4-D image batch with H, W >= 1 (the global, adaptive
    and unpooling functions): (x, normalised data_format, NHWC shape)."""
    fmt = check_data_format(data_format)
    x = as_array(x, "x")
    compute_dtype(x, "x")
    check_rank4(x, "x", fmt)
    n, h, w, c = to_nhwc_shape(x.shape, fmt)
    if h < 1 or w < 1:
        raise ValueError(f"{op} needs H and W of at least 1, got x shape {x.shape} ({fmt})")
    return x, fmt, (n, h, w, c)


def check_result_size(shape: tuple[int, ...], dtype: np.dtype[Any], what: str) -> None:
    """ValueError when an array of ``shape`` and ``dtype`` could not exist (more
    than 2**63 - 1 bytes), naming ``what`` and its shape, before NumPy's own
    less telling error."""
    nbytes = math.prod(map(int, shape)) * np.dtype(dtype).itemsize
    if nbytes > INT64_MAX:
        raise ValueError(f"{what} would have shape {tuple(shape)} ({np.dtype(dtype).name}): "
                         f"{nbytes} bytes, more than 2**63 - 1")


def as_array(value: object, name: str) -> NDArray[Any]:
    """``np.asarray(value)``, with a TypeError naming ``name`` for non-arrays."""
    if value is None:
        raise TypeError(f"{name} must be an array, got None")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} could not be read as an array: {err}") from None
    return arr


_FLOAT16, _FLOAT32, _FLOAT64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)


def compute_dtype(x: NDArray[Any], name: str = "x") -> np.dtype[np.floating[Any]]:
    """The dtype a call on ``x`` computes in: float32 or float64.

    float32 and float64 stay as they are; integers, bools and float16 are
    computed in float32; anything else is a TypeError naming the dtype.
    """
    dtype = x.dtype
    if dtype == _FLOAT64:
        return _FLOAT64
    if dtype == _FLOAT32 or dtype == _FLOAT16 or dtype.kind in "biu":
        return _FLOAT32
    raise TypeError(
        f"{name} has dtype {x.dtype}, which convpool does not support: use float32 or "
        f"float64 (integer, bool and float16 inputs are computed in float32)"
    )


def cast_weights(w: NDArray[Any], name: str, dtype: np.dtype[Any]) -> NDArray[Any]:
    """Weights in the compute ``dtype``: ints and bools are converted, another float is a TypeError."""
    kind = w.dtype.kind
    if w.dtype == dtype:
        return w
    if kind in "biu":
        return w.astype(dtype)
    if kind == "f":
        raise TypeError(
            f"{name} has dtype {w.dtype} but the input is computed in {dtype}: "
            f"cast one of them so the dtypes match"
        )
    raise TypeError(f"{name} has dtype {w.dtype}, which convpool does not support")


def check_rank4(x: NDArray[Any], name: str, data_format: str) -> None:
    """Raise ValueError unless ``x`` is 4-D."""
    if x.ndim != 4:
        layout = "(N, H, W, C)" if data_format == "channels_last" else "(N, C, H, W)"
        raise ValueError(
            f"{name} must be 4-D {layout} for data_format={data_format!r}, "
            f"got shape {x.shape}"
        )


def _overlaps(a: NDArray[Any], b: NDArray[Any]) -> bool:
    if not np.may_share_memory(a, b):
        return False
    try:
        # numpy's stub allows only max_work -1 or 0; the runtime takes any bound.
        return bool(np.shares_memory(a, b, max_work=10_000))  # type: ignore[arg-type, unused-ignore]
    except np.exceptions.TooHardError:
        return True  # cannot prove they are disjoint: treat as overlapping


def check_out(
    out: object, shape: tuple[int, ...], dtype: np.dtype[Any], inputs: Mapping[str, object]
) -> NDArray[Any] | None:
    """Validate an ``out=`` array: exact shape and dtype, C-contiguous, writeable, no overlap."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out has dtype {out.dtype} but the result has dtype {dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape} but the result has shape {tuple(shape)}")
    if not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous, got strides {out.strides} for shape {out.shape}")
    if not out.flags.writeable:
        raise ValueError(f"out of shape {out.shape} is read-only")
    for name, arr in inputs.items():
        if isinstance(arr, np.ndarray) and _overlaps(out, arr):
            raise ValueError(
                f"out (shape {out.shape}) shares memory with {name} (shape {arr.shape}); "
                f"pass a separate array"
            )
    return out


class ConvCall:
    """A conv2d call with every argument checked and normalised.

    Attributes
    ----------
    x : ndarray
        The input as given (any layout, any supported dtype; not yet copied).
    kernel : ndarray of shape (KH, KW, C_in // groups, C_out)
        In the compute dtype.
    bias : ndarray of shape (C_out,) or None
        In the compute dtype.
    dtype : numpy.dtype
        float32 or float64.
    data_format : str
    groups : int
    win : Window2D
    padding_mode : str
        One of ``_shapes.PADDING_MODES``, checked against the pads.
    nhwc_shape : tuple
        Output shape in NHWC.
    out_shape : tuple
        Output shape in ``data_format``.
    """

    x: NDArray[Any]
    kernel: NDArray[Any]
    bias: NDArray[Any] | None
    dtype: np.dtype[np.floating[Any]]
    data_format: str
    groups: int
    win: Window2D
    padding_mode: str
    nhwc_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def __init__(
        self,
        x: ArrayLike,
        kernel: ArrayLike,
        bias: ArrayLike | None,
        strides: IntPair,
        padding: Padding,
        dilation_rate: IntPair,
        groups: SupportsIndex,
        data_format: str | None,
        padding_mode: str = "zeros",
    ) -> None:
        self.data_format = check_data_format(data_format)
        x = as_array(x, "x")
        self.dtype = compute_dtype(x, "x")
        check_rank4(x, "x", self.data_format)
        kernel = as_array(kernel, "kernel")
        if kernel.ndim != 4:
            raise ValueError(
                f"kernel must be 4-D (kernel_h, kernel_w, C_in // groups, C_out), "
                f"got shape {kernel.shape}"
            )
        kernel = cast_weights(kernel, "kernel", self.dtype)
        self.groups = check_int(groups, "groups")
        n, h, w, c = to_nhwc_shape(x.shape, self.data_format)
        kh, kw, cg, oc = kernel.shape
        def shapes() -> str:  # for the error messages only
            return f"x shape {x.shape} ({self.data_format}), kernel shape {kernel.shape}"

        if c % self.groups or oc % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide both the input channels ({c}) and "
                f"the kernel's output channels ({oc}); {shapes()}"
            )
        if cg * self.groups != c:
            raise ValueError(
                f"kernel expects {cg} input channels per group but x has {c} channels "
                f"in {self.groups} group(s), i.e. {c // self.groups} per group; {shapes()}"
            )
        if kh < 1 or kw < 1:
            raise ValueError(f"kernel must have at least one tap per axis; {shapes()}")
        if bias is not None:
            bias = as_array(bias, "bias")
            if bias.shape != (oc,):
                raise ValueError(
                    f"bias must have shape (C_out,) = ({oc},), got {bias.shape}; {shapes()}"
                )
            bias = cast_weights(bias, "bias", self.dtype)
        self.win = _shapes.window_2d(
            (h, w), (kh, kw), strides, padding, dilation_rate,
            window_name="kernel size", context=shapes,
        )
        self.padding_mode = _shapes.check_padding_mode(padding_mode, self.win, (h, w), shapes)
        self.x, self.kernel, self.bias = x, kernel, bias
        self.nhwc_shape = (n, self.win.oh, self.win.ow, oc)
        self.out_shape = from_nhwc_shape(self.nhwc_shape, self.data_format)
        check_result_size(self.out_shape, self.dtype, "the output")


class TransposeCall:
    """A conv2d_transpose call with every argument checked and normalised.

    Attributes
    ----------
    x : ndarray
        The input as given, (N, H, W, C_in) or (N, C_in, H, W).
    kernel : ndarray of shape (KH, KW, C_out // groups, C_in)
        Keras's Conv2DTranspose layout, in the compute dtype.  It is also
        the kernel of the conv2d from the output back to the input whose
        adjoint this is.
    bias : ndarray of shape (C_out,) or None
    dtype, data_format, groups :
        As in :class:`ConvCall`.
    win : TransposeWindow2D
    nhwc_shape, out_shape : tuple
        The output shape in NHWC and in ``data_format``.
    """

    x: NDArray[Any]
    kernel: NDArray[Any]
    bias: NDArray[Any] | None
    dtype: np.dtype[np.floating[Any]]
    data_format: str
    groups: int
    win: TransposeWindow2D
    nhwc_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def __init__(
        self,
        x: ArrayLike,
        kernel: ArrayLike,
        bias: ArrayLike | None,
        strides: IntPair,
        padding: Padding,
        output_padding: IntPair | None,
        dilation_rate: IntPair,
        groups: SupportsIndex,
        data_format: str | None,
    ) -> None:
        self.data_format = check_data_format(data_format)
        x = as_array(x, "x")
        self.dtype = compute_dtype(x, "x")
        check_rank4(x, "x", self.data_format)
        kernel = as_array(kernel, "kernel")
        if kernel.ndim != 4:
            raise ValueError(
                f"kernel must be 4-D (kernel_h, kernel_w, C_out // groups, C_in), "
                f"got shape {kernel.shape}"
            )
        kernel = cast_weights(kernel, "kernel", self.dtype)
        self.groups = check_int(groups, "groups")
        n, h, w, c = to_nhwc_shape(x.shape, self.data_format)
        kh, kw, ocg, cin = kernel.shape
        def shapes() -> str:  # for the error messages only
            return f"x shape {x.shape} ({self.data_format}), kernel shape {kernel.shape}"

        if cin != c:
            raise ValueError(
                f"kernel expects {cin} input channels on its last axis (Conv2DTranspose "
                f"layout (kernel_h, kernel_w, C_out // groups, C_in)) but x has {c}; {shapes()}"
            )
        if c % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide the input channels ({c}); {shapes()}"
            )
        if kh < 1 or kw < 1:
            raise ValueError(f"kernel must have at least one tap per axis; {shapes()}")
        oc = ocg * self.groups
        if bias is not None:
            bias = as_array(bias, "bias")
            if bias.shape != (oc,):
                raise ValueError(
                    f"bias must have shape (C_out,) = ({oc},) (kernel's C_out // groups "
                    f"= {ocg} times groups = {self.groups}), got {bias.shape}; {shapes()}"
                )
            bias = cast_weights(bias, "bias", self.dtype)
        self.win = _shapes.transpose_window_2d(
            (h, w), (kh, kw), strides, padding, output_padding, dilation_rate, context=shapes
        )
        self.x, self.kernel, self.bias = x, kernel, bias
        self.nhwc_shape = (n, self.win.oh, self.win.ow, oc)
        self.out_shape = from_nhwc_shape(self.nhwc_shape, self.data_format)
        check_result_size(self.out_shape, self.dtype, "the output")


def dense_call(
    x: ArrayLike, kernel: ArrayLike, bias: ArrayLike | None
) -> tuple[ConvCall, tuple[int, ...]]:
    """A dense call checked and normalised: the :class:`ConvCall` of the 1x1
    conv over the rows of ``x`` (features as channels), and the result's shape."""
    x = as_array(x, "x")
    kernel = as_array(kernel, "kernel")
    if x.ndim < 1:
        raise ValueError(f"x must have at least one axis (..., features), got shape {x.shape}")
    if kernel.ndim != 2:
        raise ValueError(f"kernel must be 2-D (features, units), got shape {kernel.shape}")
    if kernel.shape[0] != x.shape[-1]:
        raise ValueError(
            f"kernel has {kernel.shape[0]} input features (shape {kernel.shape}) but x has "
            f"{x.shape[-1]} on its last axis (shape {x.shape})"
        )
    features, units = kernel.shape
    rows = math.prod(x.shape[:-1])
    call = ConvCall(x.reshape(rows, 1, 1, features), kernel.reshape(1, 1, features, units),
                    bias, 1, "valid", 1, 1, "channels_last")
    return call, x.shape[:-1] + (units,)


class PoolCall:
    """A max_pool2d / avg_pool2d call with every argument checked and normalised
    (``dilation_rate`` and ``ceil_mode`` as PyTorch's; a pad may not exceed the
    dilated window minus one, so every window holds a real cell).

    Attributes
    ----------
    x : ndarray
        The input as given.
    dtype, data_format, win, nhwc_shape, out_shape :
        As in :class:`ConvCall`.
    """

    x: NDArray[Any]
    dtype: np.dtype[np.floating[Any]]
    data_format: str
    win: Window2D
    nhwc_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def __init__(
        self,
        x: ArrayLike,
        pool_size: IntPair,
        strides: IntPair | None,
        padding: Padding,
        data_format: str | None,
        dilation_rate: IntPair = 1,
        ceil_mode: bool | np.bool_ = False,
    ) -> None:
        self.data_format = check_data_format(data_format)
        x = as_array(x, "x")
        self.dtype = compute_dtype(x, "x")
        check_rank4(x, "x", self.data_format)
        ph, pw = _shapes.as_pair(pool_size, "pool_size")
        dh, dw = _shapes.as_pair(dilation_rate, "dilation_rate")
        if strides is None:
            strides = (ph, pw)
        n, h, w, c = to_nhwc_shape(x.shape, self.data_format)
        self.win = _shapes.window_2d(
            (h, w), (ph, pw), strides, padding, (dh, dw),
            window_name="pool_size",
            context=lambda: f"x shape {x.shape} ({self.data_format})",
            max_pad=(_shapes.effective_size(ph, dh) - 1, _shapes.effective_size(pw, dw) - 1),
            ceil_mode=check_bool(ceil_mode, "ceil_mode"),
        )
        self.x = x
        self.nhwc_shape = (n, self.win.oh, self.win.ow, c)
        self.out_shape = from_nhwc_shape(self.nhwc_shape, self.data_format)
        check_result_size(self.out_shape, self.dtype, "the output")

    def check_indices_plane(self) -> None:
        """ValueError when ``return_indices`` has no cell to point at: a
        non-empty result over an input plane of zero rows or columns (its
        windows hold padding only)."""
        n, h, w, c = to_nhwc_shape(self.x.shape, self.data_format)
        if n * self.win.oh * self.win.ow * c and (h == 0 or w == 0):
            raise ValueError(f"return_indices needs a non-empty input plane, got x shape "
                             f"{self.x.shape} ({self.data_format})")


def to_nhwc_shape(shape: tuple[_T, ...], data_format: str) -> tuple[_T, ...]:
    """(N, H, W, C) from a shape in ``data_format``."""
    if data_format == "channels_first":
        n, c, h, w = shape
        return (n, h, w, c)
    return tuple(shape)


def from_nhwc_shape(shape: tuple[_T, ...], data_format: str) -> tuple[_T, ...]:
    """A shape in ``data_format`` from (N, H, W, C)."""
    if data_format == "channels_first":
        n, h, w, c = shape
        return (n, c, h, w)
    return tuple(shape)


def kernel_ready(a: NDArray[Any], dtype: np.dtype[Any] | None = None) -> NDArray[Any]:
    """``a`` as the kernels read it: C-contiguous and aligned to its item size.

    NumPy allows misaligned arrays (``np.frombuffer`` at an odd offset, packed
    records); a C kernel loading from one is undefined behaviour, so those are
    copied.  A copy is made only when needed.
    """
    a = np.ascontiguousarray(a, dtype=dtype)
    return a if a.flags.aligned else a.copy()


def to_nhwc(x: NDArray[Any], data_format: str, dtype: np.dtype[Any]) -> NDArray[Any]:
    """``x`` as a C-contiguous, aligned NHWC array of ``dtype``; a copy only when needed."""
    if data_format == "channels_first":
        x = x.transpose(0, 2, 3, 1)
    return kernel_ready(x, dtype)


def from_nhwc(a: NDArray[Any], data_format: str) -> NDArray[Any]:
    """An NHWC array as a C-contiguous array in ``data_format``; a copy only when needed."""
    if data_format == "channels_first":
        a = a.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(a)


def grad_out_nhwc(
    grad_out: ArrayLike, call: ConvCall | PoolCall | TransposeCall
) -> NDArray[Any]:
    """``grad_out`` of a backward pass, checked against the forward ``call``.

    Its shape must be the forward output's (``call.out_shape``, in the call's
    data_format); a float dtype other than the computation's is a TypeError,
    integers are cast.  Returns it as C-contiguous NHWC in the compute dtype.
    """
    grad_out = as_array(grad_out, "grad_out")
    check_grad_out(grad_out.shape, grad_out.dtype, call)
    grad_out = cast_weights(grad_out, "grad_out", call.dtype)
    return to_nhwc(grad_out, call.data_format, call.dtype)


def check_grad_out(
    shape: tuple[int, ...], dtype: np.dtype[Any], call: ConvCall | PoolCall | TransposeCall
) -> None:
    """Raise unless a grad_out of ``shape`` and ``dtype`` fits the forward ``call``.

    The shape must be the forward output's; a float dtype other than the
    computation's is a TypeError (integers are cast).
    """
    if tuple(shape) != tuple(call.out_shape):
        raise ValueError(
            f"grad_out must have the forward output's shape {tuple(call.out_shape)} "
            f"(x shape {call.x.shape}, {call.data_format}), got {tuple(shape)}"
        )
    cast_weights(np.empty(0, dtype), "grad_out", call.dtype)


# The call classes above resolve their windows with _shapes, which imports
# this module's integer check: imported last, so that either module can be
# imported first.
from . import _shapes  # noqa: E402
