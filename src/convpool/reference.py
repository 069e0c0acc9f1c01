"""Plain-NumPy reference of every kernel: the oracle of the tests and of ``validate``.

Same signatures and the same argument checks as :mod:`convpool.functional`;
the computation is deliberately obvious rather than fast: pad with
``np.pad``, take every window with ``sliding_window_view``, keep every
stride-th window and every dilation-th tap by slicing, and reduce with
``np.tensordot`` (conv) or ``max`` / ``sum`` (pooling).  No loop runs over
pixels; the only Python loop is over conv groups.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._checks import ConvCall, PoolCall, check_out, to_nhwc
from ._shapes import effective_size

__all__ = ["conv2d", "max_pool2d", "avg_pool2d"]


def _windows(xp: np.ndarray, win) -> np.ndarray:
    """Every window of the padded NHWC ``xp``: a view of shape (N, OH, OW, C, KH, KW)."""
    eh, ew = effective_size(win.kh, win.dh), effective_size(win.kw, win.dw)
    view = sliding_window_view(xp, (eh, ew), axis=(1, 2))
    view = view[:, :: win.sh, :: win.sw, :, :: win.dh, :: win.dw]
    assert view.shape[1:3] == (win.oh, win.ow) and view.shape[4:] == (win.kh, win.kw)
    return view


def _pad(x: np.ndarray, win, value) -> np.ndarray:
    return np.pad(
        x, ((0, 0), (win.pt, win.pb), (win.pl, win.pr), (0, 0)), constant_values=value
    )


def _deliver(y_nhwc: np.ndarray, call, out) -> np.ndarray:
    y = y_nhwc if call.data_format == "channels_last" else y_nhwc.transpose(0, 3, 1, 2)
    y = np.ascontiguousarray(y, dtype=call.dtype)
    if out is None:
        return y
    out[...] = y
    return out


def conv2d(
    x,
    kernel,
    bias=None,
    strides=1,
    padding="valid",
    dilation_rate=1,
    groups=1,
    data_format="channels_last",
    out=None,
):
    """Reference of :func:`convpool.conv2d` (same arguments, same result up to rounding)."""
    call = ConvCall(x, kernel, bias, strides, padding, dilation_rate, groups, data_format)
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
    return _deliver(y.reshape(call.nhwc_shape), call, out)


def max_pool2d(x, pool_size, strides=None, padding="valid", data_format="channels_last", out=None):
    """Reference of :func:`convpool.max_pool2d`: padding is -inf, NaN propagates."""
    call = PoolCall(x, pool_size, strides, padding, data_format)
    out = check_out(out, call.out_shape, call.dtype, {"x": call.x})
    x = to_nhwc(call.x, call.data_format, call.dtype)
    windows = _windows(_pad(x, call.win, -np.inf), call.win)
    return _deliver(windows.max(axis=(4, 5)), call, out)


def avg_pool2d(
    x,
    pool_size,
    strides=None,
    padding="valid",
    data_format="channels_last",
    count_include_pad=False,
    out=None,
):
    """Reference of :func:`convpool.avg_pool2d`: the window sum over the number of
    real cells (or over ``KH * KW`` with ``count_include_pad``)."""
    if not isinstance(count_include_pad, (bool, np.bool_)):
        raise TypeError(f"count_include_pad must be a bool, got {count_include_pad!r}")
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
