"""Plain-NumPy reference of every kernel: the oracle of the tests and of ``validate``.

Same signatures and the same argument checks as :mod:`convpool.functional`;
the computation is deliberately obvious rather than fast: pad with
``np.pad``, take every window with ``sliding_window_view``, keep every
stride-th window and every dilation-th tap by slicing, and reduce with
``np.tensordot`` (conv) or ``max`` / ``sum`` (pooling).  No loop runs over
pixels; the only Python loop is over conv groups.
"""

from __future__ import annotations

from typing import Any, SupportsIndex

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

from ._checks import (
    ConvCall,
    FloatArray,
    PoolCall,
    check_activation,
    check_bool,
    check_out,
    from_nhwc,
    grad_out_nhwc,
    to_nhwc,
)
from ._shapes import IntPair, Padding, Window2D, effective_size

__all__ = [
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "conv2d_backward",
    "max_pool2d_backward",
    "avg_pool2d_backward",
]


def _windows(xp: NDArray[Any], win: Window2D) -> NDArray[Any]:
    """Every window of the padded NHWC ``xp``: a view of shape (N, OH, OW, C, KH, KW)."""
    eh, ew = effective_size(win.kh, win.dh), effective_size(win.kw, win.dw)
    # NumPy < 2.3's stub takes one axis only; the runtime (any version) takes a tuple.
    view: NDArray[Any] = sliding_window_view(  # type: ignore[call-overload, unused-ignore]
        xp, (eh, ew), axis=(1, 2)
    )
    view = view[:, :: win.sh, :: win.sw, :, :: win.dh, :: win.dw]
    assert view.shape[1:3] == (win.oh, win.ow) and view.shape[4:] == (win.kh, win.kw)
    return view


def _pad(x: NDArray[Any], win: Window2D, value: float) -> NDArray[Any]:
    return np.pad(
        x, ((0, 0), (win.pt, win.pb), (win.pl, win.pr), (0, 0)), constant_values=value
    )


def _deliver(
    y_nhwc: NDArray[Any], call: ConvCall | PoolCall, out: NDArray[Any] | None
) -> NDArray[Any]:
    y = y_nhwc if call.data_format == "channels_last" else y_nhwc.transpose(0, 3, 1, 2)
    y = np.ascontiguousarray(y, dtype=call.dtype)
    if out is None:
        return y
    out[...] = y
    return out


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
) -> FloatArray:
    """Reference of :func:`convpool.conv2d` (same arguments, same result up to rounding)."""
    call = ConvCall(x, kernel, bias, strides, padding, dilation_rate, groups, data_format)
    relu = check_activation(activation) == "relu"
    out = check_out(out, call.out_shape, call.dtype, {"x": call.x, "kernel": kernel, "bias": bias})
    x = to_nhwc(call.x, call.data_format, call.dtype)
    windows = _windows(_pad(x, call.win, 0), call.win)  # (N, OH, OW, C, KH, KW)
    cg = call.kernel.shape[2]
    ocg = call.kernel.shape[3] // call.groups
    parts = [
        np.tensordot(
            windows[:, :, :, g * cg : (g + 1) * cg],
            call.kernel[:, :, :, g * ocg : (g + 1) * ocg],
            axes=([3, 4, 5], [2, 0, 1]),
        )
        for g in range(call.groups)
    ]
    y = np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
    if call.bias is not None:
        y = y + call.bias
    if relu:
        y = np.where(y < 0, 0, y)  # max(0, y) that keeps NaN
    return _deliver(y.reshape(call.nhwc_shape), call, out)


def max_pool2d(
    x: ArrayLike,
    pool_size: IntPair,
    strides: IntPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
    out: FloatArray | None = None,
) -> FloatArray:
    """Reference of :func:`convpool.max_pool2d`: padding is -inf, NaN propagates."""
    call = PoolCall(x, pool_size, strides, padding, data_format)
    out = check_out(out, call.out_shape, call.dtype, {"x": call.x})
    x = to_nhwc(call.x, call.data_format, call.dtype)
    windows = _windows(_pad(x, call.win, -np.inf), call.win)
    return _deliver(windows.max(axis=(4, 5)), call, out)


def avg_pool2d(
    x: ArrayLike,
    pool_size: IntPair,
    strides: IntPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
    count_include_pad: bool | np.bool_ = False,
    out: FloatArray | None = None,
) -> FloatArray:
    """Reference of :func:`convpool.avg_pool2d`: the window sum over the number of
    real cells (or over ``KH * KW`` with ``count_include_pad``)."""
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    call = PoolCall(x, pool_size, strides, padding, data_format)
    out = check_out(out, call.out_shape, call.dtype, {"x": call.x})
    x = to_nhwc(call.x, call.data_format, call.dtype)
    win = call.win
    sums = _windows(_pad(x, win, 0), win).sum(axis=(4, 5))
    if count_include_pad:
        counts = np.full((1, win.oh, win.ow, 1), win.kh * win.kw)
    else:
        real = np.ones((1, x.shape[1], x.shape[2], 1))
        counts = _windows(_pad(real, win, 0), win).sum(axis=(4, 5))
    return _deliver(sums / counts.astype(call.dtype), call, out)


# ------------------------------------------------------------------ backward
def _tap_slices(win: Window2D, kh: int, kw: int) -> tuple[slice, slice]:
    """Where tap (kh, kw) of every window lies in the padded input: two strided slices."""
    r0, c0 = kh * win.dh, kw * win.dw
    return (slice(r0, r0 + win.sh * (win.oh - 1) + 1, win.sh),
            slice(c0, c0 + win.sw * (win.ow - 1) + 1, win.sw))


def _crop(xp: NDArray[Any], win: Window2D) -> NDArray[Any]:
    return xp[:, win.pt : xp.shape[1] - win.pb, win.pl : xp.shape[2] - win.pr]


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
) -> tuple[FloatArray | None, FloatArray, FloatArray]:
    """Reference of :func:`convpool.conv2d_backward`.

    grad_kernel: every window times grad_out, summed (tensordot); grad_bias:
    grad_out summed; grad_x: for each tap (kh, kw), grad_out @ kernel[kh, kw]^T
    added into the padded input at that tap's strided positions, then cropped.
    """
    call = ConvCall(x, kernel, None, strides, padding, dilation_rate, groups, data_format)
    g = grad_out_nhwc(grad_out, call)
    x = to_nhwc(call.x, call.data_format, call.dtype)
    win, k = call.win, call.kernel
    cg, ocg = k.shape[2], k.shape[3] // call.groups
    windows = _windows(_pad(x, win, 0), win)  # (N, OH, OW, C, KH, KW)
    grad_kernel = np.concatenate(
        [
            np.tensordot(windows[:, :, :, i * cg : (i + 1) * cg], g[..., i * ocg : (i + 1) * ocg],
                         axes=([0, 1, 2], [0, 1, 2])).transpose(1, 2, 0, 3)
            for i in range(call.groups)
        ],
        axis=-1,
    )
    grad_bias = g.sum(axis=(0, 1, 2))
    grad_x = None
    if input_grad:
        gxp = np.zeros((x.shape[0], x.shape[1] + win.pt + win.pb, x.shape[2] + win.pl + win.pr,
                        x.shape[3]), call.dtype)
        for kh in range(win.kh):
            for kw in range(win.kw):
                rows, cols = _tap_slices(win, kh, kw)
                for i in range(call.groups):
                    gxp[:, rows, cols, i * cg : (i + 1) * cg] += (
                        g[..., i * ocg : (i + 1) * ocg] @ k[kh, kw, :, i * ocg : (i + 1) * ocg].T
                    )
        grad_x = from_nhwc(_crop(gxp, win), call.data_format)
    return grad_x, grad_kernel.astype(call.dtype), grad_bias.astype(call.dtype)


def max_pool2d_backward(
    grad_out: ArrayLike,
    x: ArrayLike,
    pool_size: IntPair,
    strides: IntPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
) -> FloatArray:
    """Reference of :func:`convpool.max_pool2d_backward`.

    The winner of each window: the last NaN if it holds any, else the first
    maximum among its real cells in row-major order; grad_out is added there
    with ``np.add.at`` (so overlapping windows add up).
    """
    call = PoolCall(x, pool_size, strides, padding, data_format)
    g = grad_out_nhwc(grad_out, call)
    x = to_nhwc(call.x, call.data_format, call.dtype)
    win = call.win
    taps = win.kh * win.kw
    shape = (x.shape[0], win.oh, win.ow, x.shape[3], taps)
    vals = _windows(_pad(x, win, -np.inf), win).reshape(shape)
    real = _windows(_pad(np.ones(x.shape[:3] + (1,), bool), win, False), win)
    real = np.broadcast_to(real.reshape(shape[:3] + (1, taps)), shape)
    nan = np.isnan(vals)
    last_nan = taps - 1 - np.argmax(nan[..., ::-1], axis=-1)
    best = np.where(real, vals, -np.inf).max(axis=-1, keepdims=True)
    first_max = np.argmax(real & (vals == best), axis=-1)
    winner = np.where(nan.any(axis=-1), last_nan, first_max)  # (N, OH, OW, C)
    n, oh, ow, c = np.indices(winner.shape, sparse=True)
    rows = oh * win.sh + winner // win.kw
    cols = ow * win.sw + winner % win.kw
    gxp = np.zeros((x.shape[0], x.shape[1] + win.pt + win.pb, x.shape[2] + win.pl + win.pr,
                    x.shape[3]), call.dtype)
    np.add.at(gxp, (n, rows, cols, c), g)
    return from_nhwc(_crop(gxp, win), call.data_format)


def avg_pool2d_backward(
    grad_out: ArrayLike,
    x: ArrayLike,
    pool_size: IntPair,
    strides: IntPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
    count_include_pad: bool | np.bool_ = False,
) -> FloatArray:
    """Reference of :func:`convpool.avg_pool2d_backward`: grad_out / divisor added
    to every tap's strided positions of the padded input, then cropped."""
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    call = PoolCall(x, pool_size, strides, padding, data_format)
    g = grad_out_nhwc(grad_out, call)
    x = to_nhwc(call.x, call.data_format, call.dtype)
    win = call.win
    if count_include_pad:
        counts = np.full((1, win.oh, win.ow, 1), win.kh * win.kw)
    else:
        real = np.ones((1, x.shape[1], x.shape[2], 1))
        counts = _windows(_pad(real, win, 0), win).sum(axis=(4, 5))
    share = g / counts.astype(call.dtype)
    gxp = np.zeros((x.shape[0], x.shape[1] + win.pt + win.pb, x.shape[2] + win.pl + win.pr,
                    x.shape[3]), call.dtype)
    for kh in range(win.kh):
        for kw in range(win.kw):
            rows, cols = _tap_slices(win, kh, kw)
            gxp[:, rows, cols] += share
    return from_nhwc(_crop(gxp, win), call.data_format)
