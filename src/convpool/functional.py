"""The fast functions: validate, normalise, call a compiled kernel.

No loops over data here: every function checks and normalises its arguments
(``_checks``, ``_shapes``), brings the input to C-contiguous NHWC in the compute
dtype (copying only when it is not already), and hands explicit integers to
``convpool._kernels._core``.  Inputs are never modified; a bad argument raises
before any kernel runs.
"""

from __future__ import annotations

import math

from typing import Any, Literal, SupportsIndex, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _memory
from ._checks import (
    ConvCall,
    compute_dtype,
    FloatArray,
    PoolCall,
    TransposeCall,
    as_array,
    cast_weights,
    check_activation,
    check_conv_algorithm,
    check_bool,
    check_divisor_override,
    check_image,
    check_norm_type,
    check_out,
    check_result_size,
    dense_call,
    from_nhwc,
    from_nhwc_shape,
    grad_out_nhwc,
    kernel_ready,
    to_nhwc,
    to_nhwc_shape,
)
from ._kernels import _core
from ._shapes import (
    IntPair,
    Padding,
    Window2D,
    adaptive_output_size,
    adaptive_windows,
    data_gradient_padding,
    padded_source,
)
from ._threads import get_num_threads

__all__ = [
    "conv2d",
    "conv2d_plan",
    "conv2d_transpose",
    "conv2d_transpose_backward",
    "dense",
    "dense_backward",
    "max_pool2d",
    "avg_pool2d",
    "global_avg_pool2d",
    "global_max_pool2d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "max_unpool2d",
    "lp_pool2d",
    "conv2d_backward",
    "max_pool2d_backward",
    "avg_pool2d_backward",
    "global_avg_pool2d_backward",
    "global_max_pool2d_backward",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d_backward",
    "lp_pool2d_backward",
]


def _finish(y_nhwc: NDArray[Any], out: NDArray[Any] | None, data_format: str) -> NDArray[Any]:
    """Return the NHWC result in ``data_format``, through ``out`` when given."""
    if data_format == "channels_first":
        y = y_nhwc.transpose(0, 3, 1, 2)
        if out is None:
            out = _memory.empty(y.shape, y.dtype)
        out[...] = y
        return out
    if out is not None and out is not y_nhwc:
        out[...] = y_nhwc
        return out
    return y_nhwc


def _nhwc_result(
    call: ConvCall | PoolCall | TransposeCall, out: NDArray[Any] | None
) -> NDArray[Any]:
    """The array the kernel writes: ``out`` itself when it is NHWC and aligned
    (a misaligned ``out`` is filled from a temporary by :func:`_finish`)."""
    if out is not None and call.data_format == "channels_last" and out.flags.aligned:
        return out
    return _memory.empty(call.nhwc_shape, call.dtype)


def conv2d(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: ArrayLike | None = None,
    strides: IntPair = 1,
    padding: Padding = "valid",
    dilation_rate: IntPair = 1,
    groups: SupportsIndex = 1,
    data_format: str = "channels_last",
    out: FloatArray | None = None,
    *,
    activation: str | None = None,
    padding_mode: str = "zeros",
    algorithm: str = "auto",
) -> FloatArray:
    """2-D convolution (cross-correlation, as in Keras and PyTorch).

    ``y[n, i, j, o] = bias[o] + sum over (a, b, c) of
    x_padded[n, i*sh + a*dh, j*sw + b*dw, g*Cg + c] * kernel[a, b, c, o]``
    where ``g = o // (C_out // groups)`` and ``Cg = C_in // groups``.

    Parameters
    ----------
    x : array_like of shape (N, H, W, C_in), or (N, C_in, H, W) with channels_first
        float32 or float64; integer, bool and float16 inputs are computed in
        float32.  Any strides or memory order; never modified.
    kernel : array_like of shape (KH, KW, C_in // groups, C_out)
        Keras's layout.  Same float dtype as the computation (integers are cast).
    bias : array_like of shape (C_out,), optional
    strides : int or (int, int), default 1
    padding : "valid", "same", int, (ph, pw) or ((top, bottom), (left, right))
        ``"same"`` follows TensorFlow: output ``ceil(H / sh)``, the odd extra
        pad at the bottom/right.  What the pad holds is ``padding_mode``.
    dilation_rate : int or (int, int), default 1
    groups : int, default 1
        Divides C_in and C_out; ``groups == C_in`` is a depthwise convolution.
    data_format : {"channels_last", "channels_first"}
    out : ndarray, optional
        Preallocated result: exact shape and dtype, C-contiguous, writeable,
        sharing no memory with the inputs.
    activation : {None, "relu"}, keyword-only
        "relu" applies ``max(0, y)`` (a NaN stays NaN) as the kernel writes y:
        no second pass over the output.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, keyword-only
        PyTorch's modes: zeros; the input mirrored about its edge pixel (each
        pad smaller than the input); its edge pixel repeated; the input
        wrapped around (each pad at most the input).  The kernel reads the
        border taps it needs from the input itself: no padded copy is made.
    algorithm : {"auto", "direct", "winograd"}, keyword-only
        ``"direct"``: im2col + GEMM or a direct kernel, every output summed
        in the fixed order (kh, kw, c): the same bits from every direct
        algorithm, SIMD variant, thread count and layout.  ``"winograd"``:
        F(4x4, 3x3) for 3x3 convolutions with stride 1, dilation 1, one group
        and zero padding (a ValueError otherwise): 2.25 multiplications per
        output and channel pair instead of 9, its own bits (again the same
        for any thread count, batch split and layout), within the error
        bound of README.md's "Winograd" section.  ``"auto"``: Winograd for
        float32 calls it computes with at least 16 input and 16 output
        channels and outputs of at least 4x4, direct otherwise; the choice
        depends on the geometry and the dtype only (:func:`conv2d_plan`
        tells it).  When Winograd writes an inf or NaN (which its transforms
        may spread to outputs whose window holds none), the call is
        recomputed by the direct algorithms.

    Returns
    -------
    y : ndarray of shape (N, OH, OW, C_out), or (N, C_out, OH, OW) with channels_first
        ``OH = (H + pt + pb - ((KH - 1) * dh + 1)) // sh + 1``, likewise OW.

    Raises
    ------
    ValueError, TypeError
        For any invalid argument, before any computation, naming the argument
        and the shapes received.
    MemoryError
        If the kernel's workspace cannot be allocated (nothing is written).

    Examples
    --------
    A 2x2 kernel of ones with stride 2 sums each 2x2 block:

    >>> import numpy as np, convpool
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    >>> convpool.conv2d(x, np.ones((2, 2, 1, 1), np.float32), strides=2)[0, :, :, 0]
    array([[10., 18.],
           [42., 50.]], dtype=float32)

    The seed tutorial's 16 filters of 5x5 with stride 5, on a small batch
    (full-HD frames give (64, 384, 216, 16)):

    >>> frames = np.zeros((2, 40, 30, 3), np.float32)
    >>> convpool.conv2d(frames, np.ones((5, 5, 3, 16), np.float32), strides=5).shape
    (2, 8, 6, 16)
    """
    call = ConvCall(x, kernel, bias, strides, padding, dilation_rate, groups, data_format,
                    padding_mode)
    relu = check_activation(activation) == "relu"
    algorithm = check_conv_algorithm(algorithm, call)
    out = check_out(out, call.out_shape, call.dtype, {"x": call.x, "kernel": kernel, "bias": bias})
    return _conv2d(call, out, relu, algorithm)


def _conv2d(
    call: ConvCall, out: FloatArray | None, relu: bool, algorithm: str | None
) -> FloatArray:
    """conv2d of a validated call; ``algorithm`` is "auto" (or None), "direct",
    or the name of one of the kernel's algorithms to force (the tests)."""
    y = _nhwc_result(call, out)
    if y.size == 0:
        return _finish(y, out, call.data_format)
    if call.kernel.shape[2] == 0:  # no input channels: the sum is empty
        y[...] = 0 if call.bias is None else call.bias
        if relu:
            y[y < 0] = 0
        return _finish(y, out, call.data_format)
    xn = to_nhwc(call.x, call.data_format, call.dtype)
    w = call.win
    _core.conv2d_nhwc(
        xn,
        kernel_ready(call.kernel),
        None if call.bias is None else kernel_ready(call.bias),
        y,
        w.sh, w.sw, w.dh, w.dw, w.pt, w.pl, call.groups,
        get_num_threads(),
        relu,
        algorithm,
        pad_mode=_core.PAD_MODES[call.padding_mode],
    )
    return _finish(y, out, call.data_format)


def conv2d_plan(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: ArrayLike | None = None,
    strides: IntPair = 1,
    padding: Padding = "valid",
    dilation_rate: IntPair = 1,
    groups: SupportsIndex = 1,
    data_format: str = "channels_last",
    *,
    padding_mode: str = "zeros",
    algorithm: str = "auto",
) -> dict[str, Any]:
    """How :func:`conv2d` would compute this call, without computing it.

    Takes the arguments of :func:`conv2d` (validated the same way; ``x`` and
    ``kernel`` may be ``np.empty`` arrays of the right shapes and dtypes).

    Returns
    -------
    dict
        ``algorithm``: ``"depthwise"`` (groups = C_in = C_out, a direct kernel),
        ``"pointwise"`` (1x1 stride 1 without padding: the input is the GEMM's
        A), ``"winograd"`` (F(4x4, 3x3), see :func:`conv2d`), ``"rows"``
        (each output row's interior read in place, borders gathered) or
        ``"gather"`` (im2col tiles, for narrow outputs); ``exact``: whether
        it is a direct algorithm (the exact summation order);
        ``isa``: the SIMD variant in use; ``tile``: the micro-kernel's
        (MR, NR), output pixels x output channels; ``units``: independent
        units of work shared among the threads; ``panels``: weight panels of
        NR channels per group; ``pixel_tile``: output pixels per im2col tile.
        Every direct algorithm gives the same bits; the plan only tells which
        runs.  A call with an empty result or an empty sum runs no kernel:
        ``algorithm`` is then None.

    Examples
    --------
    >>> import numpy as np, convpool
    >>> x = np.empty((1, 8, 64, 3), np.float32)
    >>> convpool.conv2d_plan(x, np.empty((3, 3, 3, 16), np.float32), padding="same")["algorithm"]
    'rows'
    >>> convpool.conv2d_plan(x, np.empty((1, 1, 3, 16), np.float32))["algorithm"]
    'pointwise'
    >>> wide = np.empty((1, 8, 64, 32), np.float32)
    >>> convpool.conv2d_plan(wide, np.empty((3, 3, 32, 32), np.float32), padding="same")["algorithm"]
    'winograd'
    """
    call = ConvCall(x, kernel, bias, strides, padding, dilation_rate, groups, data_format,
                    padding_mode)
    return _plan(call, check_conv_algorithm(algorithm, call))


def _plan(call: ConvCall, algorithm: str | None) -> dict[str, Any]:
    """The kernel's plan for a validated call; ``algorithm`` forces one (tests)."""
    n, oh, ow, oc = call.nhwc_shape
    if n * oh * ow * oc == 0 or call.kernel.shape[2] == 0:
        # An empty result, or an empty sum: conv2d fills it without a kernel.
        return {"algorithm": None, "exact": True, "isa": _core.isa_selected(), "tile": None,
                "units": 0,
                "panels": 0, "pixel_tile": 0}
    kh, kw, _, _ = call.kernel.shape
    h, w, c = to_nhwc_shape(call.x.shape, call.data_format)[1:]
    win = call.win
    return _core.conv_plan(n, h, w, c, kh, kw, oc, oh, ow, win.sh, win.sw, win.dh, win.dw,
                           win.pt, win.pl, call.groups, call.dtype.itemsize, algorithm,
                           _core.PAD_MODES[call.padding_mode])


def conv2d_transpose(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: ArrayLike | None = None,
    strides: IntPair = 1,
    padding: Padding = "valid",
    output_padding: IntPair | None = None,
    dilation_rate: IntPair = 1,
    groups: SupportsIndex = 1,
    data_format: str = "channels_last",
    out: FloatArray | None = None,
    *,
    activation: str | None = None,
) -> FloatArray:
    """2-D transposed convolution (Keras's Conv2DTranspose, PyTorch's conv_transpose2d).

    Each input pixel scatters through the kernel:
    ``y_full[n, i*sh + a*dh, j*sw + b*dw, g*OCg + o] += x[n, i, j, g*Cg + c] *
    kernel[a, b, o, g*Cg + c]`` (``Cg = C_in // groups``, ``OCg = C_out //
    groups``), then the padding is cropped from ``y_full`` and the bias added.
    It is the input gradient of :func:`conv2d` with the same kernel, strides,
    dilation and padding, and is computed by that gradient's kernel (no
    column matrix, no zeros inserted between pixels).

    Parameters
    ----------
    x : array_like of shape (N, H, W, C_in), or (N, C_in, H, W) with channels_first
        float32 or float64 (integers, bools and float16 are computed in float32).
    kernel : array_like of shape (KH, KW, C_out // groups, C_in)
        Keras's Conv2DTranspose layout (PyTorch's weight (C_in, C_out // groups,
        KH, KW) is ``weight.transpose(2, 3, 1, 0)``).
    bias : array_like of shape (C_out,), optional
    strides : int or (int, int), default 1
    padding : "valid", "same", int, (ph, pw) or ((top, bottom), (left, right))
        ``"valid"`` / ``"same"`` follow Keras: without ``output_padding`` the
        output is ``(H - 1)*sh + max(eff_h, sh)`` and ``H*sh`` rows (``eff_h =
        dh*(KH - 1) + 1``).  Numbers follow PyTorch: the rows and columns
        cropped from the full output (top, bottom, left, right).
    output_padding : None, int or (int, int)
        Rows and columns added at the bottom and right (no input pixel reaches
        them: they hold the bias), each smaller than ``max(stride, dilation)``.
        None: 0 with numeric padding, Keras's default with "valid" / "same".
    dilation_rate : int or (int, int), default 1
    groups : int, default 1
        Divides C_in; C_out is ``groups * kernel.shape[2]``.
    data_format : {"channels_last", "channels_first"}
    out : ndarray, optional
        As in :func:`conv2d`.
    activation : {None, "relu"}, keyword-only
        Applied as each output row is finished.

    Returns
    -------
    y : ndarray of shape (N, OH, OW, C_out), or (N, C_out, OH, OW) with channels_first
        ``OH = (H - 1)*sh - (pt + pb) + dh*(KH - 1) + output_padding_h + 1``,
        likewise OW.  Each value is the sum of the terms that reach it (and
        only those: a crop or an output padding never multiplies a weight),
        then the bias.

    Raises
    ------
    ValueError, TypeError
        For any invalid argument, before any computation.

    Examples
    --------
    A 2x2 kernel of ones with stride 2 copies each pixel into a 2x2 block:

    >>> import numpy as np, convpool
    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32).reshape(1, 2, 2, 1)
    >>> convpool.conv2d_transpose(x, np.ones((2, 2, 1, 1), np.float32), strides=2)[0, :, :, 0]
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.],
           [3., 3., 4., 4.],
           [3., 3., 4., 4.]], dtype=float32)

    PyTorch's usual upsampling layer (3x3, stride 2, padding 1, output_padding
    1) doubles the size; Keras's "same" does too:

    >>> x = np.zeros((1, 5, 7, 8), np.float32)
    >>> convpool.conv2d_transpose(x, np.zeros((3, 3, 4, 8), np.float32), strides=2,
    ...                           padding=1, output_padding=1).shape
    (1, 10, 14, 4)
    >>> convpool.conv2d_transpose(x, np.zeros((3, 3, 4, 8), np.float32), strides=2,
    ...                           padding="same").shape
    (1, 10, 14, 4)
    """
    call = TransposeCall(x, kernel, bias, strides, padding, output_padding, dilation_rate,
                         groups, data_format)
    relu = check_activation(activation) == "relu"
    out = check_out(out, call.out_shape, call.dtype, {"x": call.x, "kernel": kernel, "bias": bias})
    y = _nhwc_result(call, out)
    if y.size == 0:
        return _finish(y, out, call.data_format)
    if call.kernel.shape[3] == 0:  # no input channels: the sum is empty
        y[...] = 0 if call.bias is None else call.bias
        if relu:
            y[y < 0] = 0
        return _finish(y, out, call.data_format)
    xn = to_nhwc(call.x, call.data_format, call.dtype)
    w = call.win
    bias_c = None if call.bias is None else kernel_ready(call.bias)
    span_h, span_w = w.dh * (w.kh - 1), w.dw * (w.kw - 1)
    if (w.sh, w.sw) == (1, 1) and w.pt <= span_h and w.pl <= span_w \
            and np.isfinite(call.kernel).all():
        # Stride 1: the conv of x with the kernel flipped (channel axes swapped
        # per group), padded by the kernel's span less the crop; the forward
        # kernels fuse the bias and the ReLU.  Only for a finite kernel: the
        # padding zeros would multiply an inf or NaN weight into terms the
        # transposed conv does not have.
        _core.conv2d_nhwc(xn, kernel_ready(_data_gradient_kernel(call.kernel, call.groups)),
                          bias_c, y, 1, 1, w.dh, w.dw, span_h - w.pt, span_w - w.pl,
                          call.groups, get_num_threads(), relu, op="conv2d_transpose")
    else:
        # The data-gradient kernel of the conv from y back to x: per row of y,
        # a GEMM of x's row with the kernel, scattered (col2im) into the row;
        # it reads nothing but y's shape from its "forward input" argument.
        _core.conv2d_backward_nhwc(xn, y, kernel_ready(call.kernel), y, None, None,
                                   w.sh, w.sw, w.dh, w.dw, w.pt, w.pl, call.groups,
                                   get_num_threads(), dx_bias=bias_c, dx_relu=relu,
                                   op="conv2d_transpose")
    return _finish(y, out, call.data_format)


def _pool(
    call: PoolCall,
    out: NDArray[Any] | None,
    is_max: bool,
    count_include_pad: bool,
    divisor: int = 0,
) -> NDArray[Any]:
    """max_pool2d / avg_pool2d of a validated call (``divisor`` > 0: divisor_override)."""
    out = check_out(out, call.out_shape, call.dtype, {"x": call.x})
    y = _nhwc_result(call, out)
    if y.size == 0:
        return _finish(y, out, call.data_format)
    n, h, w_, c = to_nhwc_shape(call.x.shape, call.data_format)
    if h == 0 or w_ == 0:
        # No real cell anywhere: every window holds padding only (as the
        # reference computes it, max is -inf, the average 0/0 = NaN, or
        # 0 / (KH * KW) = 0 when the padding counts).
        y.fill(-np.inf if is_max else (0.0 if count_include_pad or divisor else np.nan))
        return _finish(y, out, call.data_format)
    w = call.win
    xn = to_nhwc(call.x, call.data_format, call.dtype)
    _core.pool2d_nhwc(
        xn,
        y,
        is_max,
        w.kh, w.kw, w.sh, w.sw, w.pt, w.pl,
        count_include_pad,
        get_num_threads(),
        w.pb, w.pr, divisor, w.dh, w.dw,
    )
    return _finish(y, out, call.data_format)


def _max_winners(xn: NDArray[Any], win: Window2D) -> tuple[NDArray[Any], NDArray[np.int64]]:
    """Max pooling with each window's winner: its flat index ``ih * W + iw`` (the
    first maximum, replaced by any later NaN: PyTorch's rule), by the direct
    kernel (NHWC in and out)."""
    y = _memory.empty((xn.shape[0], win.oh, win.ow, xn.shape[3]), xn.dtype)
    idx = np.empty(y.shape, np.int64)
    _core.maxpool2d_direct_nhwc(xn, y, idx, win.kh, win.kw, win.sh, win.sw, win.dh, win.dw,
                                win.pt, win.pl, get_num_threads())
    return y, idx


@overload
def max_pool2d(
    x: ArrayLike, pool_size: IntPair, strides: IntPair | None = ..., padding: Padding = ...,
    data_format: str = ..., out: FloatArray | None = ..., *, dilation_rate: IntPair = ...,
    ceil_mode: bool | np.bool_ = ..., return_indices: Literal[False] = ...,
) -> FloatArray: ...
@overload
def max_pool2d(
    x: ArrayLike, pool_size: IntPair, strides: IntPair | None = ..., padding: Padding = ...,
    data_format: str = ..., out: FloatArray | None = ..., *, dilation_rate: IntPair = ...,
    ceil_mode: bool | np.bool_ = ..., return_indices: Literal[True],
) -> tuple[FloatArray, NDArray[np.int64]]: ...
def max_pool2d(
    x: ArrayLike,
    pool_size: IntPair,
    strides: IntPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
    out: FloatArray | None = None,
    *,
    dilation_rate: IntPair = 1,
    ceil_mode: bool | np.bool_ = False,
    return_indices: bool | np.bool_ = False,
) -> FloatArray | tuple[FloatArray, NDArray[np.int64]]:
    """2-D max pooling.

    Parameters
    ----------
    x : array_like of shape (N, H, W, C), or (N, C, H, W) with channels_first
        float32 or float64; integer, bool and float16 inputs are computed in
        float32.  Never modified.
    pool_size : int or (int, int)
    strides : int or (int, int), optional
        Defaults to ``pool_size``.
    padding : "valid", "same", int, (ph, pw) or ((top, bottom), (left, right))
        A pad may not exceed the (dilated) pool size minus one, so every
        window holds at least one real cell.  Padded cells never win the max.
    data_format : {"channels_last", "channels_first"}
    out : ndarray, optional
        As in :func:`conv2d`.
    dilation_rate : int or (int, int), keyword-only, default 1
        Taps ``d`` cells apart (PyTorch's dilation); every window must hold
        an input cell.
    ceil_mode : bool, keyword-only, default False
        PyTorch's rule: a last, partial window counts too, unless it would
        start in the bottom (right) padding.
    return_indices : bool, keyword-only, default False
        Also return, for each output, the flat index ``ih * W + iw`` of its
        window's first maximum (a NaN replacing it, the last NaN winning, as
        PyTorch) in the unpadded plane of its image and channel: int64, in
        y's layout (what :func:`max_unpool2d` takes).  Found by the kernel
        that visits each tap.

    Returns
    -------
    y : ndarray of shape (N, OH, OW, C), or (N, C, OH, OW) with channels_first
        ``OH = (H + pt + pb - (dh*(KH - 1) + 1)) // sh + 1`` (rounded up with
        ceil_mode), likewise OW.  A NaN anywhere in a window gives NaN.
    indices : ndarray of int64 (with return_indices)

    Examples
    --------
    >>> import numpy as np, convpool
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    >>> convpool.max_pool2d(x, 2)[0, :, :, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    >>> y, idx = convpool.max_pool2d(x, 3, strides=2, ceil_mode=True, return_indices=True)
    >>> y[0, :, :, 0], idx[0, :, :, 0]
    (array([[10., 11.],
           [14., 15.]], dtype=float32), array([[10, 11],
           [14, 15]]))
    >>> x[0, 0, 0, 0] = np.nan
    >>> convpool.max_pool2d(x, 2)[0, :, :, 0]
    array([[nan,  7.],
           [13., 15.]], dtype=float32)
    """
    return_indices = check_bool(return_indices, "return_indices")
    call = PoolCall(x, pool_size, strides, padding, data_format, dilation_rate, ceil_mode)
    if not return_indices:
        return _pool(call, out, True, False)
    out = check_out(out, call.out_shape, call.dtype, {"x": call.x})
    call.check_indices_plane()
    if 0 in call.x.shape:  # an empty result
        y0 = _finish(_memory.empty(call.nhwc_shape, call.dtype), out, call.data_format)
        return y0, np.zeros(call.out_shape, np.int64)
    y, idx = _max_winners(to_nhwc(call.x, call.data_format, call.dtype), call.win)
    return _finish(y, out, call.data_format), from_nhwc(idx, call.data_format)


def avg_pool2d(
    x: ArrayLike,
    pool_size: IntPair,
    strides: IntPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
    count_include_pad: bool | np.bool_ = False,
    out: FloatArray | None = None,
    *,
    ceil_mode: bool | np.bool_ = False,
    divisor_override: SupportsIndex | None = None,
) -> FloatArray:
    """2-D average pooling.

    Parameters
    ----------
    x : array_like of shape (N, H, W, C), or (N, C, H, W) with channels_first
    pool_size : int or (int, int)
    strides : int or (int, int), optional
        Defaults to ``pool_size``.
    padding : "valid", "same", int, (ph, pw) or ((top, bottom), (left, right))
        A pad may not exceed ``pool_size - 1``.
    data_format : {"channels_last", "channels_first"}
    count_include_pad : bool, default False
        False (Keras): divide by the number of real cells in the window.
        True: divide by ``KH * KW``, counting padded cells as zeros (but not
        the cells past the padding that ceil_mode's last windows reach, as
        PyTorch).  Beware: PyTorch's avg_pool2d defaults to True, Keras and
        convpool to False.
    out : ndarray, optional
        As in :func:`conv2d`.
    ceil_mode : bool, keyword-only, default False
        As in :func:`max_pool2d`.
    divisor_override : int, keyword-only, optional
        Divide every window's sum by this instead (PyTorch's): a positive int below 2**63.

    Returns
    -------
    y : ndarray of shape (N, OH, OW, C), or (N, C, OH, OW) with channels_first

    Examples
    --------
    "same" pads a 3x3 input by one row and column at the bottom and right;
    the padded cells count only with ``count_include_pad``:

    >>> import numpy as np, convpool
    >>> x = np.ones((1, 3, 3, 1), np.float32)
    >>> convpool.avg_pool2d(x, 2, padding="same")[0, :, :, 0]
    array([[1., 1.],
           [1., 1.]], dtype=float32)
    >>> convpool.avg_pool2d(x, 2, padding="same", count_include_pad=True)[0, :, :, 0]
    array([[1.  , 0.5 ],
           [0.5 , 0.25]], dtype=float32)
    >>> convpool.avg_pool2d(x, 2, ceil_mode=True, divisor_override=1)[0, :, :, 0]
    array([[4., 2.],
           [2., 1.]], dtype=float32)
    """
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    divisor = check_divisor_override(divisor_override)
    call = PoolCall(x, pool_size, strides, padding, data_format, 1, ceil_mode)
    return _pool(call, out, False, count_include_pad, divisor)


# ------------------------------------------------------------------ backward
def conv2d_backward(
    grad_out: ArrayLike,
    x: ArrayLike,
    kernel: ArrayLike,
    strides: IntPair = 1,
    padding: Padding = "valid",
    dilation_rate: IntPair = 1,
    groups: SupportsIndex = 1,
    data_format: str = "channels_last",
    *,
    input_grad: bool = True,
    activation: str | None = None,
    output: ArrayLike | None = None,
    padding_mode: str = "zeros",
    algorithm: str = "auto",
) -> tuple[FloatArray | None, FloatArray, FloatArray]:
    """Gradients of :func:`conv2d` with respect to its input, kernel and bias.

    Parameters
    ----------
    grad_out : array_like of shape (N, OH, OW, C_out), or (N, C_out, OH, OW)
        The gradient of the loss with respect to conv2d's output.
    x, kernel, strides, padding, dilation_rate, groups, data_format :
        The forward call's arguments (validated the same way).
    input_grad : bool, default True
        False skips grad_x (returned as None), e.g. for a network's first layer.
    activation : {None, "relu"}, keyword-only
        The forward call's activation.  With "relu", ``grad_out`` is the
        gradient of the activated output and passes only where ``output > 0``:
        the mask is applied by a compiled pass inside this call (no NumPy
        temporaries; ``grad_out`` is not modified).
    output : array_like of the forward output's shape, keyword-only
        The forward call's result; required with ``activation="relu"``.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, keyword-only
        The forward call's.  Other than zeros, the gradient of each padded
        tap is added to the input pixel it read.
    algorithm : {"auto", "direct", "winograd"}, keyword-only
        As :func:`conv2d`'s, for grad_x where it is a stride-1 convolution of
        grad_out (a 3x3 stride-1 conv's is again one) and for the kernel
        gradient: Winograd's is ``dU_e = sum over tiles of V_e^T dM_e``
        (``V`` the input tiles' transforms, ``dM = A dY A^T`` the grad_out
        tiles'), then ``G^T dU G``: 36 GEMMs over the tiles instead of 9
        over the pixels.  grad_bias is summed directly either way.

    Returns
    -------
    grad_x : ndarray of x's shape (in data_format), or None
    grad_kernel : ndarray of shape (KH, KW, C_in // groups, C_out)
    grad_bias : ndarray of shape (C_out,)
        All in the compute dtype; bitwise the same for any thread count.

    Examples
    --------
    The gradients of ``sum(conv2d(x, kernel, strides=2))`` for a 2x2 kernel
    of ones: each input pixel lies in one window, and each tap sums the
    pixels it reads:

    >>> import numpy as np, convpool
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    >>> kernel = np.ones((2, 2, 1, 1), np.float32)
    >>> grad_out = np.ones((1, 2, 2, 1), np.float32)
    >>> grad_x, grad_kernel, grad_bias = convpool.conv2d_backward(grad_out, x, kernel, strides=2)
    >>> grad_x[0, :, :, 0]
    array([[1., 1., 1., 1.],
           [1., 1., 1., 1.],
           [1., 1., 1., 1.],
           [1., 1., 1., 1.]], dtype=float32)
    >>> grad_kernel[:, :, 0, 0]
    array([[20., 24.],
           [36., 40.]], dtype=float32)
    >>> grad_bias
    array([4.], dtype=float32)
    """
    input_grad = check_bool(input_grad, "input_grad")
    call = ConvCall(x, kernel, None, strides, padding, dilation_rate, groups, data_format,
                    padding_mode)
    algorithm = check_conv_algorithm(algorithm, call)
    gy = grad_out_nhwc(grad_out, call)
    gy = _through_activation(gy, call, activation, output)
    if call.padding_mode != "zeros":
        return _padded_backward(gy, call, input_grad)
    nhwc = to_nhwc_shape(call.x.shape, call.data_format)
    grad_x = _memory.empty(nhwc, call.dtype) if input_grad else None
    grad_kernel = np.zeros(call.kernel.shape, call.dtype)
    grad_bias = np.zeros(call.kernel.shape[3], call.dtype)
    w = call.win
    # A stride-1 conv's input gradient is again a stride-1 conv (of grad_out,
    # with the kernel flipped and its channel axes swapped per group): the
    # forward kernels, with their algorithms (pointwise, depthwise, rows,
    # gather), compute it.  Other strides take the backward kernel's col2im.
    # (Only for a finite kernel: the padded zeros of grad_out would multiply
    # an inf or NaN weight into terms the gradient does not have.)
    dx_pads = (data_gradient_padding(w)
               if grad_x is not None and np.isfinite(call.kernel).all() else None)
    if gy.size and call.kernel.shape[2] and grad_kernel.size:
        if grad_x is not None and dx_pads is not None and grad_x.size:
            # (the forward kernel needs every size > 0: an empty x padded to a
            # non-empty output has an empty input gradient, nothing to compute)
            _core.conv2d_nhwc(gy, kernel_ready(_data_gradient_kernel(call.kernel, call.groups)),
                              None, grad_x, 1, 1, w.dh, w.dw, dx_pads[0], dx_pads[1],
                              call.groups, get_num_threads(), algorithm=algorithm,
                              op="conv2d_backward")
        xn = to_nhwc(call.x, call.data_format, call.dtype)
        # The kernel gradient by Winograd where the forward call would take it
        # (then an inf or NaN anywhere in the result is recomputed directly,
        # as conv2d does), else the direct kernels (with col2im's grad_x).
        winograd = (xn.size > 0 and _plan(call, algorithm)["algorithm"] == "winograd")
        if winograd:
            _core.conv2d_wgrad_winograd_nhwc(gy, xn, grad_kernel.reshape(-1), grad_bias,
                                             w.pt, w.pl, get_num_threads())
        if not winograd or not np.isfinite(grad_kernel).all():
            _core.conv2d_backward_nhwc(
                gy,
                xn,
                kernel_ready(call.kernel),
                None if dx_pads is not None else grad_x,
                grad_kernel.reshape(-1),
                grad_bias,
                w.sh, w.sw, w.dh, w.dw, w.pt, w.pl, call.groups,
                get_num_threads(),
            )
    else:  # nothing to multiply: no pixels, or no input channels
        grad_bias[...] = gy.sum(axis=(0, 1, 2))
        if grad_x is not None:
            grad_x[...] = 0
    if grad_x is not None:
        grad_x = from_nhwc(grad_x, call.data_format)
    return grad_x, grad_kernel, grad_bias


def conv2d_transpose_backward(
    grad_out: ArrayLike,
    x: ArrayLike,
    kernel: ArrayLike,
    strides: IntPair = 1,
    padding: Padding = "valid",
    output_padding: IntPair | None = None,
    dilation_rate: IntPair = 1,
    groups: SupportsIndex = 1,
    data_format: str = "channels_last",
    *,
    input_grad: bool = True,
) -> tuple[FloatArray | None, FloatArray, FloatArray]:
    """Gradients of :func:`conv2d_transpose` with respect to its input, kernel and bias.

    The transposed conv is the adjoint of a :func:`conv2d`, so its gradients
    are that conv's forward pass and weight gradient: ``grad_x`` is the conv2d
    of ``grad_out`` with the same kernel, strides and dilation and the crop
    as its top/left padding (its padding zeros are terms of it, as in
    :func:`conv2d`: an infinite weight under one gives NaN); ``grad_kernel``
    is that conv's kernel gradient with ``x`` as the output gradient.

    Parameters
    ----------
    grad_out : array_like of the forward output's shape
    x, kernel, strides, padding, output_padding, dilation_rate, groups, data_format :
        The forward call's arguments.
    input_grad : bool, default True
        False skips grad_x (returned as None).

    Returns
    -------
    grad_x : ndarray of x's shape (in data_format), or None
    grad_kernel : ndarray of shape (KH, KW, C_out // groups, C_in)
    grad_bias : ndarray of shape (C_out,)
        All in the compute dtype; bitwise the same for any thread count.

    Examples
    --------
    >>> import numpy as np, convpool
    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32).reshape(1, 2, 2, 1)
    >>> kernel = np.ones((2, 2, 1, 1), np.float32)
    >>> gx, gk, gb = convpool.conv2d_transpose_backward(np.ones((1, 4, 4, 1), np.float32),
    ...                                                 x, kernel, strides=2)
    >>> gx[0, :, :, 0], gk[:, :, 0, 0], gb
    (array([[4., 4.],
           [4., 4.]], dtype=float32), array([[10., 10.],
           [10., 10.]], dtype=float32), array([16.], dtype=float32))
    """
    input_grad = check_bool(input_grad, "input_grad")
    call = TransposeCall(x, kernel, None, strides, padding, output_padding, dilation_rate,
                         groups, data_format)
    gy = grad_out_nhwc(grad_out, call)  # (N, OH, OW, C_out)
    xn = to_nhwc(call.x, call.data_format, call.dtype)  # (N, H, W, C_in)
    grad_x = _memory.empty(xn.shape, call.dtype) if input_grad else None
    grad_kernel = np.zeros(call.kernel.shape, call.dtype)
    grad_bias = np.ascontiguousarray(gy.sum(axis=(0, 1, 2), dtype=call.dtype))
    w = call.win
    if gy.size and xn.size:
        if grad_x is not None:
            _core.conv2d_nhwc(gy, kernel_ready(call.kernel), None, grad_x,
                              w.sh, w.sw, w.dh, w.dw, w.pt, w.pl, call.groups,
                              get_num_threads(), op="conv2d_transpose_backward")
        _core.conv2d_backward_nhwc(xn, gy, kernel_ready(call.kernel), None,
                                   grad_kernel.reshape(-1), None,
                                   w.sh, w.sw, w.dh, w.dw, w.pt, w.pl, call.groups,
                                   get_num_threads(), op="conv2d_transpose_backward")
    elif grad_x is not None:  # nothing to multiply: no pixels, or no channels
        grad_x[...] = 0
    if grad_x is not None:
        grad_x = from_nhwc(grad_x, call.data_format)
    return grad_x, grad_kernel, grad_bias


#: NumPy's names for conv2d's padding modes.
_NUMPY_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _padded_backward(
    gy: NDArray[Any], call: ConvCall, input_grad: bool
) -> tuple[FloatArray | None, FloatArray, FloatArray]:
    """conv2d_backward for a padding mode other than zeros (``gy`` NHWC, already
    through the activation): the gradients of the valid conv of the padded
    input, whose padded taps' gradient is then added to the pixels they read.
    The padded copy lives for this call only (the forward pass makes none)."""
    w = call.win
    xn = to_nhwc(call.x, call.data_format, call.dtype)
    n, h, wd, c = xn.shape
    padded = (n, h + w.pt + w.pb, wd + w.pl + w.pr, c)
    # The padded copy and its gradient are this call's workspace.  Reflect and
    # circular pad by at most the input's size per side (at most 9x its
    # pixels); replicate takes any pad, so a padded copy past both that and
    # the workspace cap is refused before anything is allocated.
    nbytes = 2 * math.prod(padded) * call.dtype.itemsize
    limit = max(_memory.get_workspace_limit(), 18 * math.prod(xn.shape) * call.dtype.itemsize)
    if nbytes > limit:
        raise MemoryError(
            f"convpool.conv2d_backward with padding_mode={call.padding_mode!r} pads x to "
            f"{padded} (NHWC) for this call: {nbytes} bytes of workspace with its gradient, "
            f"more than the {limit} allowed (twice 9x x's bytes, or the workspace limit if "
            f"larger: convpool.set_workspace_limit)")
    xp = np.pad(xn, ((0, 0), (w.pt, w.pb), (w.pl, w.pr), (0, 0)),
                mode=_NUMPY_PAD_MODES[call.padding_mode])  # type: ignore[call-overload]
    gxp, grad_kernel, grad_bias = conv2d_backward(
        gy, xp, call.kernel, (w.sh, w.sw), 0, (w.dh, w.dw), call.groups, input_grad=input_grad
    )
    if gxp is None:
        return None, grad_kernel, grad_bias
    gx = _fold_padding(_fold_padding(gxp, 1, w.pt, w.pb, call.padding_mode), 2, w.pl, w.pr,
                       call.padding_mode)
    return from_nhwc(gx, call.data_format), grad_kernel, grad_bias


def _fold_padding(gp: NDArray[Any], axis: int, before: int, after: int,
                  mode: str) -> NDArray[Any]:
    """The gradient of a padded axis folded onto the input: each padded index's
    gradient added to the index it read (``_shapes.padded_source``), in order."""
    n = gp.shape[axis] - before - after
    take: list[Any] = [slice(None)] * gp.ndim

    def at(i: int | slice) -> tuple[Any, ...]:
        take[axis] = i
        return tuple(take)

    out = np.ascontiguousarray(gp[at(slice(before, before + n))])
    for p in range(before):
        out[at(padded_source(p - before, n, mode))] += gp[at(p)]
    for p in range(after):
        out[at(padded_source(n + p, n, mode))] += gp[at(before + n + p)]
    return out


def _data_gradient_kernel(kernel: NDArray[Any], groups: int) -> NDArray[Any]:
    """The kernel of the conv that gives a stride-1 conv's input gradient.

    ``kernel`` (KH, KW, Cg, C_out) becomes (KH, KW, C_out // groups, C_in):
    flipped in both spatial axes, and in each group its input and output
    channels swapped.
    """
    kh, kw, cg, oc = kernel.shape
    per_group = kernel.reshape(kh, kw, cg, groups, oc // groups)
    swapped = per_group.transpose(0, 1, 4, 3, 2).reshape(kh, kw, oc // groups, groups * cg)
    return swapped[::-1, ::-1]


def _through_activation(
    gy: NDArray[Any], call: ConvCall, activation: object, output: ArrayLike | None
) -> NDArray[Any]:
    """``gy`` (NHWC) through the forward call's activation, given its ``output``."""
    if check_activation(activation) is None:
        if output is not None:
            raise ValueError("output is used with activation='relu' only; got activation=None")
        return gy
    if output is None:
        raise ValueError("activation='relu' needs output=, the forward call's result")
    y = as_array(output, "output")
    if y.shape != tuple(call.out_shape):
        raise ValueError(
            f"output must have the forward output's shape {tuple(call.out_shape)} "
            f"(x shape {call.x.shape}, {call.data_format}), got {y.shape}"
        )
    y = to_nhwc(cast_weights(y, "output", call.dtype), call.data_format, call.dtype)
    return _relu_grad(gy, y)


def _relu_grad(grad_out: NDArray[Any], y: NDArray[Any]) -> NDArray[Any]:
    """grad_out through a ReLU whose output was ``y`` (same shape and float dtype)."""
    gy, yc = kernel_ready(grad_out), kernel_ready(y)
    out = _memory.empty(gy.shape, gy.dtype)
    _core.relu_grad(gy.reshape(-1), yc.reshape(-1), out.reshape(-1), get_num_threads())
    return out


def _pool_backward(
    grad_out: ArrayLike,
    call: PoolCall,
    is_max: bool,
    count_include_pad: bool,
    divisor: int = 0,
    through_relu: bool = False,
) -> NDArray[Any]:
    gy = grad_out_nhwc(grad_out, call)
    xn = to_nhwc(call.x, call.data_format, call.dtype)
    w = call.win
    if (w.dh, w.dw) != (1, 1) and gy.size and xn.size:
        # Dilated windows: each window's gradient to its winner, as max_pool2d's indices.
        _, idx = _max_winners(xn, w)
        n, h, w_, c = xn.shape
        grad = np.zeros((n, h * w_, c), call.dtype)
        nn = np.arange(n)[:, None, None, None]
        cc = np.arange(c)[None, None, None, :]
        np.add.at(grad, (nn, idx, cc), gy)  # overlapping windows add, in order
        grad = grad.reshape(xn.shape)
        if through_relu:
            grad = _relu_grad(grad, xn)
        return from_nhwc(grad, call.data_format)
    grad_x = _memory.empty(xn.shape, call.dtype)  # every element is written by the kernel
    if not gy.size:
        grad_x[...] = 0
    elif grad_x.size:
        _core.pool2d_backward_nhwc(
            xn,  # read by max pooling only
            gy,
            grad_x,
            is_max,
            w.kh, w.kw, w.sh, w.sw, w.pt, w.pl,
            count_include_pad,
            get_num_threads(),
            w.pb, w.pr, divisor,
            through_relu,
        )
    return from_nhwc(grad_x, call.data_format)


def dense(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: ArrayLike | None = None,
    out: FloatArray | None = None,
    *,
    activation: str | None = None,
) -> FloatArray:
    """A fully connected layer on the last axis: ``y = x @ kernel + bias``.

    It runs on convpool's own GEMM micro-kernels (it is the 1x1 convolution
    of the rows of x), in the same OpenMP threads as the convolutions, so its
    bits are the same for any thread count (NumPy's matmul depends on BLAS's
    threads and blocking) and no second thread pool competes for the cores.

    Parameters
    ----------
    x : array_like of shape (..., features)
        float32 or float64 (integers, bools and float16 are computed in float32).
    kernel : array_like of shape (features, units)
    bias : array_like of shape (units,), optional
    out : ndarray of shape (..., units), optional
        As in :func:`conv2d`.
    activation : {None, "relu"}, keyword-only
        Applied as the result is written.

    Returns
    -------
    y : ndarray of shape (..., units)
        Each value is ``bias + sum over f of x[..., f] * kernel[f, :]``
        accumulated in f order from zero, then the bias added.

    Examples
    --------
    >>> import numpy as np, convpool
    >>> x = np.array([[1.0, 2.0]], np.float32)
    >>> convpool.dense(x, np.array([[1.0, 0.0, -1.0], [0.5, 1.0, 0.0]], np.float32), [0, 0, 1])
    array([[2., 2., 0.]], dtype=float32)
    """
    call, shape = dense_call(x, kernel, bias)
    relu = check_activation(activation) == "relu"
    out = check_out(out, shape, call.dtype, {"x": x, "kernel": kernel, "bias": bias})
    y = _conv2d(call, None if out is None else out.reshape(call.nhwc_shape), relu, None)
    return out if out is not None else y.reshape(shape)


def dense_backward(
    grad_out: ArrayLike,
    x: ArrayLike,
    kernel: ArrayLike,
    *,
    input_grad: bool = True,
    activation: str | None = None,
    output: ArrayLike | None = None,
) -> tuple[FloatArray | None, FloatArray, FloatArray]:
    """Gradients of :func:`dense` with respect to its input, kernel and bias.

    Parameters
    ----------
    grad_out : array_like of shape (..., units)
    x, kernel :
        The forward call's arguments.
    input_grad, activation, output :
        As in :func:`conv2d_backward`.

    Returns
    -------
    grad_x : ndarray of x's shape, or None
        ``grad_out @ kernel.T``.
    grad_kernel : ndarray of shape (features, units)
        ``x.T @ grad_out`` over all leading axes.
    grad_bias : ndarray of shape (units,)
        All bitwise the same for any thread count.

    Examples
    --------
    >>> import numpy as np, convpool
    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    >>> gx, gk, gb = convpool.dense_backward(np.ones((2, 1), np.float32), x, np.ones((2, 1), np.float32))
    >>> gk[:, 0], gb
    (array([4., 6.], dtype=float32), array([2.], dtype=float32))
    """
    input_grad = check_bool(input_grad, "input_grad")
    call, shape = dense_call(x, kernel, None)
    grad_out = as_array(grad_out, "grad_out")
    if grad_out.shape != shape:
        raise ValueError(
            f"grad_out must have the forward output's shape {shape}, got {grad_out.shape}"
        )
    if output is not None:
        output = as_array(output, "output")
        if output.shape != shape:
            raise ValueError(f"output must have the forward output's shape {shape}, got {output.shape}")
        output = output.reshape(call.nhwc_shape)
    grad_x, grad_kernel, grad_bias = conv2d_backward(
        grad_out.reshape(call.nhwc_shape), call.x, call.kernel,
        input_grad=input_grad, activation=activation, output=output,
    )
    d_in, units = call.kernel.shape[2:]
    x_shape = shape[:-1] + (d_in,)
    return (None if grad_x is None else grad_x.reshape(x_shape),
            grad_kernel.reshape(d_in, units), grad_bias)


def max_pool2d_backward(
    grad_out: ArrayLike,
    x: ArrayLike,
    pool_size: IntPair,
    strides: IntPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
    *,
    dilation_rate: IntPair = 1,
    ceil_mode: bool | np.bool_ = False,
    through_relu: bool = False,
) -> FloatArray:
    """Gradient of :func:`max_pool2d` with respect to its input.

    Each window's gradient goes to its maximum: the first one in row-major
    window order on ties (as PyTorch), the last NaN when the window holds NaN;
    overlapping windows add up.

    Parameters
    ----------
    grad_out : array_like of the forward output's shape
    x, pool_size, strides, padding, data_format, dilation_rate, ceil_mode :
        The forward call's arguments.
    through_relu : bool, keyword-only, default False
        ``x`` is the output of a ReLU (a conv or Dense layer's fused
        activation), and the gradient goes on through it: the result is the
        gradient with respect to the ReLU's input, ``where(x > 0, grad_x, 0)``,
        computed in the same pass (the same bits as the two steps).

    Returns
    -------
    grad_x : ndarray of x's shape, in the compute dtype

    Examples
    --------
    >>> import numpy as np, convpool
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    >>> convpool.max_pool2d_backward(np.ones((1, 2, 2, 1), np.float32), x, 2)[0, :, :, 0]
    array([[0., 0., 0., 0.],
           [0., 1., 0., 1.],
           [0., 0., 0., 0.],
           [0., 1., 0., 1.]], dtype=float32)
    """
    call = PoolCall(x, pool_size, strides, padding, data_format, dilation_rate, ceil_mode)
    return _pool_backward(grad_out, call, True, False,
                          through_relu=check_bool(through_relu, "through_relu"))


def avg_pool2d_backward(
    grad_out: ArrayLike,
    x: ArrayLike,
    pool_size: IntPair,
    strides: IntPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
    count_include_pad: bool | np.bool_ = False,
    *,
    ceil_mode: bool | np.bool_ = False,
    divisor_override: SupportsIndex | None = None,
) -> FloatArray:
    """Gradient of :func:`avg_pool2d` with respect to its input.

    Each window adds ``grad_out / divisor`` to each of its real cells (the
    divisor of the forward call).

    Returns
    -------
    grad_x : ndarray of x's shape, in the compute dtype
    """
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    divisor = check_divisor_override(divisor_override)
    call = PoolCall(x, pool_size, strides, padding, data_format, 1, ceil_mode)
    return _pool_backward(grad_out, call, False, bool(count_include_pad), divisor)


# ------------------------------------------------------------ global and adaptive pooling
def _global_grad_out(grad_out: ArrayLike, nhwc: tuple[int, ...], fmt: str,
                     keepdims: bool) -> NDArray[Any]:
    """grad_out of a global pool, checked and given its (N, 1, 1, C) / (N, C, 1, 1) shape."""
    n, _, _, c = nhwc
    want = from_nhwc_shape((n, 1, 1, c), fmt) if keepdims else (n, c)
    g = as_array(grad_out, "grad_out")
    if g.shape != want:
        raise ValueError(f"grad_out must have the forward output's shape {want}, got {g.shape}")
    return g.reshape(from_nhwc_shape((n, 1, 1, c), fmt))


def global_avg_pool2d(
    x: ArrayLike, keepdims: bool | np.bool_ = False, data_format: str = "channels_last"
) -> FloatArray:
    """The mean over H and W of each image and channel (Keras's GlobalAveragePooling2D).

    Parameters
    ----------
    x : array_like of shape (N, H, W, C), or (N, C, H, W) with channels_first
        H and W at least 1.
    keepdims : bool, default False
        Keep the pooled axes: (N, 1, 1, C) (or (N, C, 1, 1)).
    data_format : {"channels_last", "channels_first"}

    Returns
    -------
    y : ndarray of shape (N, C), or the keepdims shape
        It is :func:`avg_pool2d` with a window of the whole image (rows summed
        first, then columns, divided by H * W).

    Examples
    --------
    >>> import numpy as np, convpool
    >>> convpool.global_avg_pool2d(np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2))
    array([[3., 4.]], dtype=float32)
    """
    keepdims = check_bool(keepdims, "keepdims")
    x, fmt, (n, h, w, c) = check_image(x, data_format, "global_avg_pool2d")
    y = avg_pool2d(x, (h, w), data_format=fmt)
    return y if keepdims else y.reshape(n, c)


def global_max_pool2d(
    x: ArrayLike, keepdims: bool | np.bool_ = False, data_format: str = "channels_last"
) -> FloatArray:
    """The maximum over H and W of each image and channel (Keras's GlobalMaxPooling2D).

    Parameters and result as :func:`global_avg_pool2d`; a NaN anywhere in an
    image's channel gives NaN (as :func:`max_pool2d`).

    Examples
    --------
    >>> import numpy as np, convpool
    >>> convpool.global_max_pool2d(np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2),
    ...                            keepdims=True).shape
    (1, 1, 1, 2)
    """
    keepdims = check_bool(keepdims, "keepdims")
    x, fmt, (n, h, w, c) = check_image(x, data_format, "global_max_pool2d")
    y = max_pool2d(x, (h, w), data_format=fmt)
    return y if keepdims else y.reshape(n, c)


def global_avg_pool2d_backward(
    grad_out: ArrayLike, x: ArrayLike, keepdims: bool | np.bool_ = False,
    data_format: str = "channels_last",
) -> FloatArray:
    """Gradient of :func:`global_avg_pool2d`: ``grad_out / (H * W)`` at every pixel.

    Returns
    -------
    grad_x : ndarray of x's shape, in the compute dtype
    """
    keepdims = check_bool(keepdims, "keepdims")
    x, fmt, nhwc = check_image(x, data_format, "global_avg_pool2d_backward")
    g = _global_grad_out(grad_out, nhwc, fmt, keepdims)
    return avg_pool2d_backward(g, x, nhwc[1:3], data_format=fmt)


def global_max_pool2d_backward(
    grad_out: ArrayLike, x: ArrayLike, keepdims: bool | np.bool_ = False,
    data_format: str = "channels_last",
) -> FloatArray:
    """Gradient of :func:`global_max_pool2d`: ``grad_out`` at the first maximum of
    each image's channel (the last NaN if it holds any), 0 elsewhere.

    Returns
    -------
    grad_x : ndarray of x's shape, in the compute dtype
    """
    keepdims = check_bool(keepdims, "keepdims")
    x, fmt, nhwc = check_image(x, data_format, "global_max_pool2d_backward")
    g = _global_grad_out(grad_out, nhwc, fmt, keepdims)
    return max_pool2d_backward(g, x, nhwc[1:3], data_format=fmt)


def _adaptive(x: ArrayLike, output_size: IntPair, data_format: str,
              op: str) -> tuple[NDArray[Any], str, tuple[int, ...], Any, Any]:
    x, fmt, nhwc = check_image(x, data_format, op)
    oh, ow = adaptive_output_size(output_size, (nhwc[1], nhwc[2]), f"x shape {x.shape} ({fmt})")
    return x, fmt, nhwc, adaptive_windows(nhwc[1], oh), adaptive_windows(nhwc[2], ow)


def _axis_windows(win: Any, n: int) -> list[tuple[int, int]]:
    """An axis's adaptive windows as (start, end) pairs (``win``: adaptive_windows's)."""
    if isinstance(win, int):
        return [(i * win, (i + 1) * win) for i in range(n // win)]
    return list(zip(*win))


def _separable(xn: NDArray[Any], rows: Any, cols: Any, reduce: Any) -> NDArray[Any]:
    """``reduce`` over each adaptive window, columns first, then rows (NHWC)."""
    _, h, w, _ = xn.shape
    by_cols = np.stack([reduce(xn[:, :, a:b], axis=2) for a, b in _axis_windows(cols, w)], axis=2)
    return np.stack([reduce(by_cols[:, a:b], axis=1) for a, b in _axis_windows(rows, h)], axis=1)


def adaptive_avg_pool2d(
    x: ArrayLike, output_size: Any, data_format: str = "channels_last"
) -> FloatArray:
    """Average pooling to a given output size (PyTorch's adaptive_avg_pool2d).

    Parameters
    ----------
    x : array_like of shape (N, H, W, C), or (N, C, H, W) with channels_first
    output_size : int or (int or None, int or None)
        (OH, OW); None keeps the input's size on that axis.  An axis's output
        may be longer than its input (windows then repeat cells), up to
        ``max(input length, 65536)``; a longer one is a ValueError.
    data_format : {"channels_last", "channels_first"}

    Returns
    -------
    y : ndarray of shape (N, OH, OW, C), or (N, C, OH, OW) with channels_first
        Output ``i`` averages the rows ``floor(i*H/OH) <= r < ceil((i+1)*H/OH)``
        (likewise columns): when OH divides H that is :func:`avg_pool2d` with
        window and stride H / OH; otherwise the windows may overlap, and each
        is summed columns first, then rows (NumPy, one pass per output row
        and column).

    Examples
    --------
    >>> import numpy as np, convpool
    >>> x = np.arange(10, dtype=np.float32).reshape(1, 1, 10, 1)
    >>> convpool.adaptive_avg_pool2d(x, (1, 3))[0, 0, :, 0]
    array([1.5, 4.5, 7.5], dtype=float32)
    """
    x, fmt, nhwc, rows, cols = _adaptive(x, output_size, data_format, "adaptive_avg_pool2d")
    if isinstance(rows, int) and isinstance(cols, int):
        return avg_pool2d(x, (rows, cols), data_format=fmt)
    dtype = compute_dtype(x, "x")
    xn = to_nhwc(x, fmt, dtype)
    sums = _separable(xn, rows, cols, np.sum)
    counts = _adaptive_counts(rows, cols, nhwc[1:3]).astype(dtype)
    return from_nhwc(sums / counts[None, :, :, None], fmt)


def _adaptive_counts(rows: Any, cols: Any, hw: tuple[int, ...]) -> NDArray[np.int64]:
    def sizes(win: Any, n: int) -> NDArray[np.int64]:
        if isinstance(win, int):
            return np.full(n // win, win, np.int64)
        return np.asarray(win[1], np.int64) - np.asarray(win[0], np.int64)
    counts: NDArray[np.int64] = np.outer(sizes(rows, hw[0]), sizes(cols, hw[1]))
    return counts


@overload
def adaptive_max_pool2d(
    x: ArrayLike, output_size: Any, data_format: str = ..., *,
    return_indices: Literal[False] = ...,
) -> FloatArray: ...
@overload
def adaptive_max_pool2d(
    x: ArrayLike, output_size: Any, data_format: str = ..., *, return_indices: Literal[True],
) -> tuple[FloatArray, NDArray[np.int64]]: ...
def adaptive_max_pool2d(
    x: ArrayLike, output_size: Any, data_format: str = "channels_last", *,
    return_indices: bool | np.bool_ = False,
) -> FloatArray | tuple[FloatArray, NDArray[np.int64]]:
    """Max pooling to a given output size (PyTorch's adaptive_max_pool2d).

    The windows are :func:`adaptive_avg_pool2d`'s; a NaN in a window gives NaN.

    Parameters
    ----------
    x, output_size, data_format :
        As in :func:`adaptive_avg_pool2d`.
    return_indices : bool, keyword-only, default False
        Also return, for each output, the flat index ``r * W + c`` of its
        window's first maximum (the last NaN if it holds any, as PyTorch)
        within the image's channel plane: int64, in y's layout.

    Returns
    -------
    y : ndarray of shape (N, OH, OW, C), or (N, C, OH, OW) with channels_first
    indices : ndarray of int64, y's shape (with return_indices)

    Examples
    --------
    >>> import numpy as np, convpool
    >>> x = np.array([0, 5, 1, 4, 2, 3], np.float32).reshape(1, 1, 6, 1)
    >>> y, idx = convpool.adaptive_max_pool2d(x, (1, 4), return_indices=True)
    >>> y[0, 0, :, 0], idx[0, 0, :, 0]
    (array([5., 5., 4., 3.], dtype=float32), array([1, 1, 3, 5]))
    """
    return_indices = check_bool(return_indices, "return_indices")
    x, fmt, nhwc, rows, cols = _adaptive(x, output_size, data_format, "adaptive_max_pool2d")
    if not return_indices and isinstance(rows, int) and isinstance(cols, int):
        return max_pool2d(x, (rows, cols), data_format=fmt)
    dtype = compute_dtype(x, "x")
    xn = to_nhwc(x, fmt, dtype)
    if not return_indices:
        return from_nhwc(_separable(xn, rows, cols, np.max), fmt)
    y, idx = _adaptive_argmax(xn, rows, cols)
    return from_nhwc(y, fmt), from_nhwc(idx, fmt)


def _adaptive_argmax(xn: NDArray[Any], rows: Any, cols: Any
                     ) -> tuple[NDArray[Any], NDArray[np.int64]]:
    """Each adaptive window's maximum and the flat index of its winner (NHWC):
    the last NaN if the window holds any, else the first maximum in row-major order."""
    n, h, w, c = xn.shape
    rw, cw = _axis_windows(rows, h), _axis_windows(cols, w)
    y = np.empty((n, len(rw), len(cw), c), xn.dtype)
    idx = np.empty((n, len(rw), len(cw), c), np.int64)
    for i, (r0, r1) in enumerate(rw):
        for j, (c0, c1) in enumerate(cw):
            cells = xn[:, r0:r1, c0:c1].reshape(n, (r1 - r0) * (c1 - c0), c)  # row-major
            k = _winner(cells)
            y[:, i, j] = np.take_along_axis(cells, k[:, None, :], axis=1)[:, 0]
            idx[:, i, j] = (r0 + k // (c1 - c0)) * w + c0 + k % (c1 - c0)
    return y, idx


def _winner(cells: NDArray[Any]) -> NDArray[np.int64]:
    """Along axis 1: the last NaN's position if there is one, else the first maximum's."""
    nan = np.isnan(cells)
    m = cells.shape[1]
    last_nan = m - 1 - np.argmax(nan[:, ::-1], axis=1)
    first_max = np.argmax(np.where(nan, -np.inf, cells) == np.nanmax(
        np.where(nan, -np.inf, cells), axis=1, keepdims=True), axis=1)
    winner: NDArray[np.int64] = np.where(nan.any(axis=1), last_nan, first_max)
    return winner


def adaptive_avg_pool2d_backward(
    grad_out: ArrayLike, x: ArrayLike, output_size: Any, data_format: str = "channels_last"
) -> FloatArray:
    """Gradient of :func:`adaptive_avg_pool2d`: each window adds ``grad_out / cells``
    to its cells (overlapping windows add up, in row-major window order).

    Returns
    -------
    grad_x : ndarray of x's shape, in the compute dtype
    """
    x, fmt, nhwc, rows, cols = _adaptive(x, output_size, data_format,
                                         "adaptive_avg_pool2d_backward")
    if isinstance(rows, int) and isinstance(cols, int):
        return avg_pool2d_backward(grad_out, x, (rows, cols), data_format=fmt)
    dtype = compute_dtype(x, "x")
    g = _adaptive_grad_out(grad_out, nhwc, rows, cols, fmt, dtype)
    n, h, w, c = nhwc
    gx = np.zeros((n, h, w, c), dtype)
    for i, (r0, r1) in enumerate(_axis_windows(rows, h)):
        for j, (c0, c1) in enumerate(_axis_windows(cols, w)):
            gx[:, r0:r1, c0:c1] += (g[:, i, j] / dtype.type((r1 - r0) * (c1 - c0)))[:, None, None]
    return from_nhwc(gx, fmt)


def _adaptive_grad_out(grad_out: ArrayLike, nhwc: tuple[int, ...], rows: Any, cols: Any,
                       fmt: str, dtype: np.dtype[Any]) -> NDArray[Any]:
    n, h, w, c = nhwc
    want = from_nhwc_shape((n, len(_axis_windows(rows, h)), len(_axis_windows(cols, w)), c), fmt)
    g = as_array(grad_out, "grad_out")
    if g.shape != want:
        raise ValueError(f"grad_out must have the forward output's shape {want}, got {g.shape}")
    return to_nhwc(cast_weights(g, "grad_out", dtype), fmt, dtype)


def adaptive_max_pool2d_backward(
    grad_out: ArrayLike, x: ArrayLike, output_size: Any, data_format: str = "channels_last"
) -> FloatArray:
    """Gradient of :func:`adaptive_max_pool2d`: ``grad_out`` added at each window's
    winner (its ``indices``); overlapping windows add up.

    Returns
    -------
    grad_x : ndarray of x's shape, in the compute dtype
    """
    x, fmt, nhwc, rows, cols = _adaptive(x, output_size, data_format,
                                         "adaptive_max_pool2d_backward")
    if isinstance(rows, int) and isinstance(cols, int):
        return max_pool2d_backward(grad_out, x, (rows, cols), data_format=fmt)
    dtype = compute_dtype(x, "x")
    g = _adaptive_grad_out(grad_out, nhwc, rows, cols, fmt, dtype)
    n, h, w, c = nhwc
    _, idx = _adaptive_argmax(to_nhwc(x, fmt, dtype), rows, cols)
    gx = np.zeros((n, h * w, c), dtype)
    nn = np.arange(n)[:, None, None, None]
    cc = np.arange(c)[None, None, None, :]
    np.add.at(gx, (nn, idx, cc), g)
    return from_nhwc(gx.reshape(n, h, w, c), fmt)


# ------------------------------------------------------------ unpooling, Lp pooling
def max_unpool2d(
    x: ArrayLike,
    indices: ArrayLike,
    pool_size: IntPair,
    strides: IntPair | None = None,
    padding: IntPair = 0,
    output_size: IntPair | None = None,
    data_format: str = "channels_last",
) -> FloatArray:
    """Put each value back where :func:`max_pool2d` found it (PyTorch's max_unpool2d).

    Parameters
    ----------
    x : array_like of shape (N, H, W, C), or (N, C, H, W) with channels_first
        The pooled values.
    indices : array_like of ints, x's shape
        ``max_pool2d(..., return_indices=True)``'s: flat indices ``h * OW + w``
        into each image and channel's output plane.
    pool_size, strides, padding :
        The pooling's (padding an int or a pair): they give the default size.
    output_size : (int, int), optional
        (OH, OW), within ``stride - 1`` of the default ``(H - 1)*s - 2*p + k``
        (as PyTorch), for inputs whose pooling dropped a row or column.
    data_format : {"channels_last", "channels_first"}

    Returns
    -------
    y : ndarray of shape (N, OH, OW, C), or (N, C, OH, OW) with channels_first
        Zero but at the indices; where two values share an index, the later
        one (in x's row-major order over H and W) is kept.

    Examples
    --------
    >>> import numpy as np, convpool
    >>> x = np.array([[1., 5.], [7., 2.]], np.float32).reshape(1, 2, 2, 1)
    >>> y, idx = convpool.max_pool2d(x, 2, return_indices=True)
    >>> convpool.max_unpool2d(y, idx, 2)[0, :, :, 0]
    array([[0., 0.],
           [7., 0.]], dtype=float32)
    """
    from ._shapes import unpool_output_size

    x, fmt, (n, h, w, c) = check_image(x, data_format, "max_unpool2d")
    dtype = compute_dtype(x, "x")
    idx = as_array(indices, "indices")
    if idx.shape != x.shape:
        raise ValueError(f"indices must have x's shape {x.shape}, got {idx.shape}")
    if idx.dtype.kind not in "iu":
        raise TypeError(f"indices must be integers, got dtype {idx.dtype}")
    oh, ow = unpool_output_size((h, w), pool_size, strides, padding, output_size)
    check_result_size(from_nhwc_shape((n, oh, ow, c), fmt), dtype, "max_unpool2d's output")
    # The range is checked in the indices' own dtype (a uint64 beyond 2**63 - 1
    # is not cast to a negative int64 first).
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= oh * ow):
        raise ValueError(f"indices must lie in [0, {oh * ow}) (the output plane {(oh, ow)}), "
                         f"got values from {int(idx.min())} to {int(idx.max())}")
    flat = to_nhwc(idx, fmt, np.dtype(np.int64)).reshape(n, h * w, c)
    values = to_nhwc(x, fmt, dtype).reshape(n, h * w, c)
    y = np.zeros((n, oh * ow, c), dtype)
    # The later of two values at one index wins: find each target's last writer,
    # then write those alone (their targets are distinct, so the order is moot).
    nn, cc = np.broadcast_arrays(np.arange(n)[:, None, None], np.arange(c)[None, None, :], flat)[:2]
    order = np.broadcast_to(np.arange(h * w)[None, :, None], flat.shape)
    last = np.full((n, oh * ow, c), -1, np.int64)
    np.maximum.at(last, (nn, flat, cc), order)
    keep = last[nn, flat, cc] == order
    y[nn[keep], flat[keep], cc[keep]] = values[keep]
    return from_nhwc(y.reshape(n, oh, ow, c), fmt)


def lp_pool2d(
    x: ArrayLike,
    norm_type: float,
    pool_size: IntPair,
    strides: IntPair | None = None,
    *,
    ceil_mode: bool | np.bool_ = False,
    data_format: str = "channels_last",
) -> FloatArray:
    """Power-average pooling (PyTorch's lp_pool2d): ``(sum over the window of x**p)**(1/p)``.

    Computed as PyTorch does: ``(KH*KW * avg_pool2d(x**p, ceil_mode=...,
    count_include_pad=True)) ** (1/p)``, so a ceil_mode window that reaches
    past the input is scaled up as if it were whole; a negative sum
    (odd p, negative inputs) gives NaN.  No padding.

    Parameters
    ----------
    x : array_like of shape (N, H, W, C), or (N, C, H, W) with channels_first
    norm_type : float
        p, finite and non-zero.
    pool_size, strides :
        As in :func:`avg_pool2d`.
    ceil_mode : bool, keyword-only
    data_format : {"channels_last", "channels_first"}, keyword-only

    Returns
    -------
    y : ndarray of the pooled shape, in the compute dtype

    Examples
    --------
    >>> import numpy as np, convpool
    >>> x = np.array([3.0, 4.0], np.float32).reshape(1, 1, 2, 1)
    >>> float(convpool.lp_pool2d(x, 2, (1, 2))[0, 0, 0, 0])
    5.0
    """
    p = check_norm_type(norm_type)
    call = PoolCall(x, pool_size, strides, 0, data_format, 1, ceil_mode)
    dtype = call.dtype
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        xp = np.power(np.asarray(call.x, dtype), dtype.type(p))
        avg = avg_pool2d(xp, pool_size, strides, 0, call.data_format, True, ceil_mode=ceil_mode)
        total = avg * dtype.type(call.win.kh * call.win.kw)
        return np.power(total, dtype.type(1.0 / p))


def lp_pool2d_backward(
    grad_out: ArrayLike,
    x: ArrayLike,
    norm_type: float,
    pool_size: IntPair,
    strides: IntPair | None = None,
    *,
    ceil_mode: bool | np.bool_ = False,
    data_format: str = "channels_last",
) -> FloatArray:
    """Gradient of :func:`lp_pool2d`: through ``s**(1/p)``, the scaled average and ``x**p``.

    ``grad_x = p * x**(p-1) * avg_pool2d_backward(grad_out * (1/p) * s**(1/p - 1) * KH*KW)``
    with ``s`` the scaled window sum (where ``s`` is 0 the gradient is inf or NaN, as PyTorch's).

    Returns
    -------
    grad_x : ndarray of x's shape, in the compute dtype
    """
    p = check_norm_type(norm_type)
    call = PoolCall(x, pool_size, strides, 0, data_format, 1, ceil_mode)
    dtype = call.dtype
    g = as_array(grad_out, "grad_out")
    if g.shape != call.out_shape:
        raise ValueError(f"grad_out must have the forward output's shape {call.out_shape}, "
                         f"got {g.shape}")
    g = cast_weights(g, "grad_out", dtype)
    k = dtype.type(call.win.kh * call.win.kw)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        xv = np.asarray(call.x, dtype)
        xp = np.power(xv, dtype.type(p))
        s = avg_pool2d(xp, pool_size, strides, 0, call.data_format, True,
                       ceil_mode=ceil_mode) * k
        g_avg = g * dtype.type(1.0 / p) * np.power(s, dtype.type(1.0 / p - 1.0)) * k
        g_xp = avg_pool2d_backward(g_avg.astype(dtype), xp, pool_size, strides, 0,
                                   call.data_format, True, ceil_mode=ceil_mode)
        return (g_xp * dtype.type(p) * np.power(xv, dtype.type(p - 1.0))).astype(dtype)
