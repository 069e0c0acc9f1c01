"""Plain-NumPy reference of every kernel: the oracle of the tests and of ``validate``.

Same signatures and the same argument checks as :mod:`convpool.functional`;
the computation is deliberately obvious rather than fast: pad with
``np.pad``, take every window with ``sliding_window_view``, keep every
stride-th window and every dilation-th tap by slicing, and reduce with a
matrix product (conv) or ``max`` / ``sum`` (pooling).  No loop runs over
pixels; the only Python loops are over conv groups and kernel taps.

NaN and infinities follow IEEE arithmetic whatever the BLAS does: a conv
output is NaN when one of its terms is (``NaN * w``, ``inf * 0``, including a
padding zero under an infinite weight) or when +inf and -inf terms meet
(see :func:`_matmul`).
"""

from __future__ import annotations

import math
from typing import Any, SupportsIndex

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

from ._checks import (
    ConvCall,
    compute_dtype,
    FloatArray,
    PoolCall,
    TransposeCall,
    as_array,
    cast_weights,
    check_activation,
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
    to_nhwc,
    to_nhwc_shape,
)
from ._shapes import IntPair, Padding, Window2D, effective_size, padded_source

__all__ = [
    "conv2d",
    "conv2d_transpose",
    "conv2d_transpose_backward",
    "dense",
    "max_pool2d",
    "avg_pool2d",
    "conv2d_backward",
    "dense_backward",
    "max_pool2d_backward",
    "avg_pool2d_backward",
    "global_avg_pool2d",
    "global_max_pool2d",
    "global_avg_pool2d_backward",
    "global_max_pool2d_backward",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d_backward",
    "max_unpool2d",
    "lp_pool2d",
    "lp_pool2d_backward",
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


def _patch_matrix(windows: NDArray[Any]) -> NDArray[Any]:
    """Windows (N, OH, OW, C, KH, KW) as the rows of an (N*OH*OW, C*KH*KW) matrix."""
    n, oh, ow, c, kh, kw = windows.shape
    matrix: NDArray[Any] = windows.reshape(n * oh * ow, c * kh * kw)
    return matrix


def _tap_matrix(kernel: NDArray[Any]) -> NDArray[Any]:
    """A kernel (KH, KW, C, O) as the (C*KH*KW, O) matrix that multiplies :func:`_patch_matrix`."""
    kh, kw, c, o = kernel.shape
    matrix: NDArray[Any] = kernel.transpose(2, 0, 1, 3).reshape(c * kh * kw, o)
    return matrix


def _any_pair(p: NDArray[np.bool_], q: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """``[i, o]``: is there a ``j`` with both ``p[i, j]`` and ``q[j, o]``?

    A product of 0/1 matrices counts the pairs; in float64 every count is
    exact, so no BLAS shortcut can change which are positive.
    """
    counts: NDArray[np.float64] = p.astype(np.float64) @ q.astype(np.float64)
    return counts > 0


def _matmul(a: NDArray[Any], b: NDArray[Any]) -> NDArray[Any]:
    """``a @ b`` whose NaN and infinities follow IEEE arithmetic, whatever BLAS does.

    BLAS may skip a term whose factor is zero (OpenBLAS does, in some shapes),
    and with it the NaN of ``NaN * 0`` or ``inf * 0``.  A term is non-finite
    only when one of its factors is, so an output whose terms are all finite
    is BLAS's, right whatever it skips.  Every other output is what IEEE
    makes of its terms: NaN if one of them is NaN (a NaN factor, or an
    infinity times 0) or if both +inf and -inf occur, else their common
    infinity.  Those outputs are found from 0/1 products (:func:`_any_pair`)
    restricted to the rows of ``a``, columns of ``b`` and reduction indices
    that hold a non-finite factor.  On finite data the only extra work is a
    sum of each operand; a few NaN cost little more.  (Finite terms whose sum
    overflows are not tracked: there the IEEE result depends on the summation
    order, in any implementation.)

    Parameters
    ----------
    a : ndarray of shape (..., K)
        Its leading axes are rows, as for ``@``.
    b : ndarray of shape (K, O)

    Returns
    -------
    ndarray of shape (..., O)
    """
    product: NDArray[Any] = a @ b
    with np.errstate(over="ignore", invalid="ignore"):
        # A sum is finite only if every entry is (finite entries whose sum
        # overflows merely take the longer way below).
        if np.isfinite(a.sum()) and np.isfinite(b.sum()):
            return product
    a = a.reshape(-1, a.shape[-1])
    y = product.reshape(a.shape[0], b.shape[1])  # a view: the product is C-contiguous
    bad_a, bad_b = ~np.isfinite(a), ~np.isfinite(b)
    bad_rows, bad_cols = bad_a.any(axis=1), bad_b.any(axis=0)
    if not (bad_rows.any() or bad_cols.any()):
        return product
    # The outputs that may hold a non-finite term: the rows of a non-finite
    # entry of a (in every column) and the columns of one of b (in every row).
    rows = bad_rows | bad_cols.any()
    cols = bad_cols | bad_rows.any()
    terms = bad_a.any(axis=0) | bad_b.any(axis=1)  # the only j with a non-finite term
    p, q = a[np.ix_(rows, terms)], b[np.ix_(terms, cols)]
    nan = (np.isnan(p).any(axis=1)[:, None] | np.isnan(q).any(axis=0)
           | _any_pair(np.isinf(p), q == 0) | _any_pair(p == 0, np.isinf(q)))
    pos_inf = (_any_pair(p == np.inf, q > 0) | _any_pair(p == -np.inf, q < 0)
               | _any_pair(p > 0, q == np.inf) | _any_pair(p < 0, q == -np.inf))
    neg_inf = (_any_pair(p == np.inf, q < 0) | _any_pair(p == -np.inf, q > 0)
               | _any_pair(p > 0, q == -np.inf) | _any_pair(p < 0, q == np.inf))
    block = y[np.ix_(rows, cols)]
    block[pos_inf] = np.inf
    block[neg_inf] = -np.inf
    block[nan | (pos_inf & neg_inf)] = np.nan
    y[np.ix_(rows, cols)] = block
    return product


def _grid(shape: tuple[int, ...]) -> list[NDArray[np.intp]]:
    """The index of every axis of ``shape``, each shaped to broadcast (``np.indices``, sparse)."""
    return [np.arange(size).reshape([-1 if i == k else 1 for i in range(len(shape))])
            for k, size in enumerate(shape)]


def _pad(x: NDArray[Any], win: Window2D, value: float) -> NDArray[Any]:
    """x padded with ``value``, ceil_mode's overhang (xb, xr) included."""
    return np.pad(
        x, ((0, 0), (win.pt, win.pb + win.xb), (win.pl, win.pr + win.xr), (0, 0)),
        constant_values=value,
    )


_NUMPY_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _pad_mode(x: NDArray[Any], win: Window2D, mode: str) -> NDArray[Any]:
    """``x`` padded as conv2d's ``padding_mode`` says."""
    if mode == "zeros":
        return _pad(x, win, 0)
    padded: NDArray[Any] = np.pad(
        x, ((0, 0), (win.pt, win.pb), (win.pl, win.pr), (0, 0)), mode=_NUMPY_MODES[mode]
    )  # type: ignore[call-overload]
    return padded


def _deliver(
    y_nhwc: NDArray[Any], call: ConvCall | PoolCall | TransposeCall, out: NDArray[Any] | None
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
    padding_mode: str = "zeros",
) -> FloatArray:
    """Reference of :func:`convpool.conv2d` (same arguments, same result up to rounding).

    A padding mode other than zeros pads with ``np.pad`` (modes "reflect",
    "edge", "wrap").
    """
    call = ConvCall(x, kernel, bias, strides, padding, dilation_rate, groups, data_format,
                    padding_mode)
    relu = check_activation(activation) == "relu"
    out = check_out(out, call.out_shape, call.dtype, {"x": call.x, "kernel": kernel, "bias": bias})
    x = to_nhwc(call.x, call.data_format, call.dtype)
    windows = _windows(_pad_mode(x, call.win, call.padding_mode), call.win)  # (N, OH, OW, C, KH, KW)
    cg = call.kernel.shape[2]
    ocg = call.kernel.shape[3] // call.groups
    parts = [
        _matmul(_patch_matrix(windows[:, :, :, g * cg : (g + 1) * cg]),
                _tap_matrix(call.kernel[:, :, :, g * ocg : (g + 1) * ocg]))
        for g in range(call.groups)
    ]
    y = np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]  # (N*OH*OW, C_out)
    if call.bias is not None:
        y = y + call.bias
    if relu:
        y = np.where(y < 0, 0, y)  # max(0, y) that keeps NaN
    return _deliver(y.reshape(call.nhwc_shape), call, out)


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
    """Reference of :func:`convpool.conv2d_transpose`, by its definition.

    For each tap (a, b) and group, ``x @ kernel[a, b]^T`` is added into the
    full output at rows ``a*dh + i*sh`` and columns ``b*dw + j*sw``; then the
    crop, the bias and the ReLU.  Only the terms that reach an output are
    summed (IEEE NaN and infinities, :func:`_matmul`).
    """
    call = TransposeCall(x, kernel, bias, strides, padding, output_padding, dilation_rate,
                         groups, data_format)
    relu = check_activation(activation) == "relu"
    out = check_out(out, call.out_shape, call.dtype, {"x": call.x, "kernel": kernel, "bias": bias})
    x = to_nhwc(call.x, call.data_format, call.dtype)
    win, k = call.win, call.kernel
    n, h, w, _ = x.shape
    ocg, cin = k.shape[2], k.shape[3]
    cg = cin // call.groups
    full = np.zeros((n, win.oh + win.pt + win.pb, win.ow + win.pl + win.pr, ocg * call.groups),
                    call.dtype)
    for g in range(call.groups):
        ins, outs = slice(g * cg, (g + 1) * cg), slice(g * ocg, (g + 1) * ocg)
        for a in range(win.kh):
            for b in range(win.kw):
                rows = slice(a * win.dh, a * win.dh + win.sh * (h - 1) + 1, win.sh)
                cols = slice(b * win.dw, b * win.dw + win.sw * (w - 1) + 1, win.sw)
                full[:, rows, cols, outs] += _matmul(x[..., ins], k[a, b, :, ins].T)
    y = full[:, win.pt : win.pt + win.oh, win.pl : win.pl + win.ow]
    if call.bias is not None:
        y = y + call.bias
    if relu:
        y = np.where(y < 0, 0, y)  # max(0, y) that keeps NaN
    return _deliver(y, call, out)


def _transpose_adjoint(
    call: TransposeCall, g: NDArray[Any]
) -> tuple[NDArray[Any], tuple[tuple[int, int], tuple[int, int]]]:
    """The conv2d whose input gradient the transposed ``call`` is: its input
    (``g``, NHWC, of the transposed output's shape, less the output-padding
    rows no window reads) and its padding, so that its output is x's (H, W)."""
    win = call.win
    h, w = to_nhwc_shape(call.x.shape, call.data_format)[1:3]
    # Rows below the last window: (H - 1)*s + eff - pt of them are read.
    bottom = (h - 1) * win.sh + effective_size(win.kh, win.dh) - win.pt - win.oh
    right = (w - 1) * win.sw + effective_size(win.kw, win.dw) - win.pl - win.ow
    g = g[:, : win.oh + min(bottom, 0), : win.ow + min(right, 0)]
    return g, ((win.pt, max(bottom, 0)), (win.pl, max(right, 0)))


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
    """Reference of :func:`convpool.conv2d_transpose_backward`, through the conv it
    is the adjoint of: ``grad_x`` is :func:`conv2d` of grad_out (padded by the
    crop), ``grad_kernel`` that conv's kernel gradient (:func:`conv2d_backward`)
    with x as the output gradient, ``grad_bias`` grad_out summed."""
    input_grad = check_bool(input_grad, "input_grad")
    call = TransposeCall(x, kernel, None, strides, padding, output_padding, dilation_rate,
                         groups, data_format)
    g = grad_out_nhwc(grad_out, call)
    xn = to_nhwc(call.x, call.data_format, call.dtype)
    win = call.win
    z, pads = _transpose_adjoint(call, g)
    strides, dilation = (win.sh, win.sw), (win.dh, win.dw)
    grad_kernel = conv2d_backward(xn, z, call.kernel, strides, pads, dilation, call.groups,
                                  input_grad=False)[1]
    grad_bias = g.sum(axis=(0, 1, 2))
    grad_x = None
    if input_grad:
        grad_x = from_nhwc(conv2d(z, call.kernel, None, strides, pads, dilation, call.groups),
                           call.data_format)
    return grad_x, grad_kernel, grad_bias


def _rows64(a: NDArray[Any], dtype: np.dtype[Any]) -> NDArray[np.float64]:
    """``a`` (..., n) as a float64 matrix of shape (rows, n), its values first
    rounded to the compute ``dtype`` (as the fast functions read an integer input)."""
    rows = math.prod(a.shape[:-1])  # not reshape(-1, n): that fails when n == 0
    matrix: NDArray[np.float64] = np.asarray(a, dtype).astype(np.float64)
    return matrix.reshape(rows, a.shape[-1])


def dense(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    activation: str | None = None,
) -> FloatArray:
    """Reference of :func:`convpool.dense`: ``x @ kernel + bias`` on the last axis.

    Computed in float64 (one matrix product, :func:`_matmul`, so NaN and
    infinities follow IEEE arithmetic whatever BLAS skips), then the bias
    added and, with ``activation="relu"``, ``max(0, y)`` that keeps NaN; the
    result is rounded once to the compute dtype.

    Parameters
    ----------
    x : array_like of shape (..., features)
        float32 or float64; integer, bool and float16 inputs are computed in
        float32.
    kernel : array_like of shape (features, units)
    bias : array_like of shape (units,), optional
    activation : {None, "relu"}, keyword-only

    Returns
    -------
    y : ndarray of shape (..., units), in the compute dtype
        With ``features == 0`` every output is the bias (or 0).

    Examples
    --------
    >>> import numpy as np
    >>> from convpool import reference
    >>> reference.dense(np.array([[1.0, 2.0]], np.float32), [[1, 0], [1, -1]], [1, 0])
    array([[ 4., -2.]], dtype=float32)
    """
    call, shape = dense_call(x, kernel, bias)
    relu = check_activation(activation) == "relu"
    k = call.kernel.reshape(call.kernel.shape[2:])
    y = _matmul(_rows64(call.x, call.dtype), np.asarray(k, np.float64))  # (rows, units)
    if call.bias is not None:
        y = y + np.asarray(call.bias, np.float64)
    if relu:
        y = np.where(y < 0, 0, y)  # max(0, y) that keeps NaN
    return np.ascontiguousarray(y.reshape(shape), dtype=call.dtype)


def max_pool2d(
    x: ArrayLike,
    pool_size: IntPair,
    strides: IntPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
    out: FloatArray | None = None,
    *,
    dilation_rate: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> FloatArray | tuple[FloatArray, NDArray[np.int64]]:
    """Reference of :func:`convpool.max_pool2d`: padding is -inf, NaN propagates;
    the indices from :func:`_winners`."""
    return_indices = check_bool(return_indices, "return_indices")
    call = PoolCall(x, pool_size, strides, padding, data_format, dilation_rate, ceil_mode)
    if return_indices:
        call.check_indices_plane()
    out = check_out(out, call.out_shape, call.dtype, {"x": call.x})
    x = to_nhwc(call.x, call.data_format, call.dtype)
    windows = _windows(_pad(x, call.win, -np.inf), call.win)
    y = _deliver(windows.max(axis=(4, 5)), call, out)
    if not return_indices:
        return y
    win = call.win
    winner = _winners(x, win)
    _, oh, ow, _ = _grid(winner.shape)
    rows = oh * win.sh - win.pt + (winner // win.kw) * win.dh
    cols = ow * win.sw - win.pl + (winner % win.kw) * win.dw
    return y, from_nhwc(rows * x.shape[2] + cols, call.data_format)


def _winners(x: NDArray[Any], win: Window2D) -> NDArray[np.int64]:
    """Each window's winner, its tap number a*KW + b: the last NaN if it holds
    any, else the first maximum among its real cells in row-major order."""
    taps = win.kh * win.kw
    shape = (x.shape[0], win.oh, win.ow, x.shape[3], taps)
    vals = _windows(_pad(x, win, -np.inf), win).reshape(shape)
    real = _windows(_pad(np.ones(x.shape[:3] + (1,), bool), win, False), win)
    real = np.broadcast_to(real.reshape(shape[:3] + (1, taps)), shape)
    nan = np.isnan(vals)
    last_nan = taps - 1 - np.argmax(nan[..., ::-1], axis=-1)
    best = np.where(real, vals, -np.inf).max(axis=-1, keepdims=True)
    first_max = np.argmax(real & (vals == best), axis=-1)
    winner: NDArray[np.int64] = np.where(nan.any(axis=-1), last_nan, first_max)
    return winner


def avg_pool2d(
    x: ArrayLike,
    pool_size: IntPair,
    strides: IntPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
    count_include_pad: bool | np.bool_ = False,
    out: FloatArray | None = None,
    *,
    ceil_mode: bool = False,
    divisor_override: SupportsIndex | None = None,
) -> FloatArray:
    """Reference of :func:`convpool.avg_pool2d`: the window sum over the number of
    real cells (over its cells inside the padded input with ``count_include_pad``;
    over ``divisor_override`` when given)."""
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    divisor = check_divisor_override(divisor_override)
    call = PoolCall(x, pool_size, strides, padding, data_format, 1, ceil_mode)
    out = check_out(out, call.out_shape, call.dtype, {"x": call.x})
    x = to_nhwc(call.x, call.data_format, call.dtype)
    win = call.win
    sums = _windows(_pad(x, win, 0), win).sum(axis=(4, 5))
    return _deliver(sums / _divisors(x.shape, win, count_include_pad, divisor), call, out)


def _divisors(shape: tuple[int, ...], win: Window2D, count_include_pad: bool,
              divisor: int) -> NDArray[Any]:
    """Each window's divisor, (1, OH, OW, 1): the override, or the cells counted."""
    if divisor:
        return np.full((1, win.oh, win.ow, 1), float(divisor))
    if count_include_pad:  # the padded input's cells, not ceil_mode's overhang
        counted = np.ones((1, shape[1] + win.pt + win.pb, shape[2] + win.pl + win.pr, 1))
        counted = np.pad(counted, ((0, 0), (0, win.xb), (0, win.xr), (0, 0)))
    else:
        counted = _pad(np.ones((1, shape[1], shape[2], 1)), win, 0)
    counts: NDArray[Any] = _windows(counted, win).sum(axis=(4, 5))
    return counts


# ------------------------------------------------------------------ backward
def _tap_slices(win: Window2D, kh: int, kw: int) -> tuple[slice, slice]:
    """Where tap (kh, kw) of every window lies in the padded input: two strided slices."""
    r0, c0 = kh * win.dh, kw * win.dw
    return (slice(r0, r0 + win.sh * (win.oh - 1) + 1, win.sh),
            slice(c0, c0 + win.sw * (win.ow - 1) + 1, win.sw))


def _crop(xp: NDArray[Any], win: Window2D) -> NDArray[Any]:
    return xp[:, win.pt : xp.shape[1] - win.pb - win.xb, win.pl : xp.shape[2] - win.pr - win.xr]


def _relu_mask(
    activation: object, output: ArrayLike | None, shape: tuple[int, ...],
    dtype: np.dtype[Any], context: str | None = None,
) -> NDArray[np.bool_] | None:
    """Where a ReLU passes the gradient (``output > 0``, so not at NaN), in the
    forward output's ``shape``; None without an activation."""
    if check_activation(activation) is None:
        if output is not None:
            raise ValueError("output is used with activation='relu' only; got activation=None")
        return None
    if output is None:
        raise ValueError("activation='relu' needs output=, the forward call's result")
    y = as_array(output, "output")
    if y.shape != tuple(shape):
        where = f" ({context})" if context else ""
        raise ValueError(
            f"output must have the forward output's shape {tuple(shape)}{where}, got {y.shape}"
        )
    with np.errstate(invalid="ignore"):
        mask: NDArray[np.bool_] = cast_weights(y, "output", dtype) > 0
    return mask


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
) -> tuple[FloatArray | None, FloatArray, FloatArray]:
    """Reference of :func:`convpool.conv2d_backward`.

    Per group: grad_kernel is every window times grad_out, summed over the
    pixels (one product); grad_x, for each tap (kh, kw), grad_out @
    kernel[kh, kw]^T added into the padded input at that tap's strided
    positions, then cropped; grad_bias is grad_out summed.  NaN and
    infinities follow IEEE arithmetic (:func:`_matmul`).  With
    ``activation="relu"``, grad_out is first replaced by 0 wherever the
    forward result ``output`` is not > 0 (NaN included).  A padding mode other
    than zeros: the gradients of the valid conv of the ``np.pad``-ed input,
    the padded gradient then summed onto the pixels each padded cell copies
    (``np.add.at`` over the index map of the padding).
    """
    input_grad = check_bool(input_grad, "input_grad")
    call = ConvCall(x, kernel, None, strides, padding, dilation_rate, groups, data_format,
                    padding_mode)
    if call.padding_mode != "zeros":
        return _padded_backward(call, grad_out, input_grad, activation, output)
    g = grad_out_nhwc(grad_out, call)
    mask = _relu_mask(activation, output, call.out_shape, call.dtype,
                      f"x shape {call.x.shape}, {call.data_format}")
    if mask is not None:
        g = np.where(to_nhwc(mask, call.data_format, np.dtype(np.bool_)), g, 0).astype(call.dtype)
    x = to_nhwc(call.x, call.data_format, call.dtype)
    win, k = call.win, call.kernel
    cg, ocg = k.shape[2], k.shape[3] // call.groups
    pixels = x.shape[0] * win.oh * win.ow
    windows = _windows(_pad(x, win, 0), win)  # (N, OH, OW, C, KH, KW)
    grad_kernel = np.empty(k.shape, call.dtype)
    gxp = None
    if input_grad:
        gxp = np.zeros((x.shape[0], x.shape[1] + win.pt + win.pb, x.shape[2] + win.pl + win.pr,
                        x.shape[3]), call.dtype)
    for i in range(call.groups):
        ins, outs = slice(i * cg, (i + 1) * cg), slice(i * ocg, (i + 1) * ocg)
        g_i = np.ascontiguousarray(g[..., outs])  # (N, OH, OW, ocg)
        patches = _patch_matrix(windows[:, :, :, ins])  # (N*OH*OW, cg*KH*KW)
        grad_kernel[..., outs] = (
            _matmul(patches.T, g_i.reshape(pixels, ocg))
            .reshape(cg, win.kh, win.kw, ocg).transpose(1, 2, 0, 3)
        )
        if gxp is not None:
            for kh in range(win.kh):
                for kw in range(win.kw):
                    rows, cols = _tap_slices(win, kh, kw)
                    gxp[:, rows, cols, ins] += _matmul(g_i, k[kh, kw, :, outs].T)
    grad_bias = g.sum(axis=(0, 1, 2))
    grad_x = None if gxp is None else from_nhwc(_crop(gxp, win), call.data_format)
    return grad_x, grad_kernel, grad_bias


def _padded_backward(
    call: ConvCall, grad_out: ArrayLike, input_grad: bool, activation: str | None,
    output: ArrayLike | None,
) -> tuple[FloatArray | None, FloatArray, FloatArray]:
    win = call.win
    x = to_nhwc(call.x, call.data_format, call.dtype)
    g = grad_out_nhwc(grad_out, call)
    out_nhwc = None
    if output is not None:  # checked in the call's layout, then passed on in NHWC
        y = as_array(output, "output")
        if y.shape != tuple(call.out_shape):
            raise ValueError(f"output must have the forward output's shape "
                             f"{tuple(call.out_shape)}, got {y.shape}")
        out_nhwc = to_nhwc(y, call.data_format, y.dtype)
    gxp, grad_kernel, grad_bias = conv2d_backward(
        g, _pad_mode(x, win, call.padding_mode), call.kernel, (win.sh, win.sw), 0,
        (win.dh, win.dw), call.groups, input_grad=input_grad, activation=activation,
        output=out_nhwc,
    )
    if gxp is None:
        return None, grad_kernel, grad_bias
    n, h, w, c = x.shape
    rows = np.array([padded_source(i - win.pt, h, call.padding_mode)
                     for i in range(h + win.pt + win.pb)])
    cols = np.array([padded_source(j - win.pl, w, call.padding_mode)
                     for j in range(w + win.pl + win.pr)])
    gx = np.zeros(x.shape, call.dtype)
    nn, _, _, cc = _grid(gxp.shape)
    np.add.at(gx, (nn, rows[None, :, None, None], cols[None, None, :, None], cc), gxp)
    return from_nhwc(gx, call.data_format), grad_kernel, grad_bias


def dense_backward(
    grad_out: ArrayLike,
    x: ArrayLike,
    kernel: ArrayLike,
    *,
    input_grad: bool = True,
    activation: str | None = None,
    output: ArrayLike | None = None,
) -> tuple[FloatArray | None, FloatArray, FloatArray]:
    """Reference of :func:`convpool.dense_backward`.

    With ``activation="relu"``, grad_out is first replaced by 0 wherever the
    forward result ``output`` is not > 0 (NaN included).  Then, in float64
    over the rows (every leading axis) and rounded once to the compute dtype:
    ``grad_x = grad_out @ kernel.T``, ``grad_kernel = x.T @ grad_out`` (both
    by :func:`_matmul`: IEEE NaN and infinities), ``grad_bias`` the column
    sums of grad_out.

    Parameters
    ----------
    grad_out : array_like of shape (..., units)
        The forward output's shape; a float dtype other than the compute
        dtype is a TypeError, integers are cast.
    x : array_like of shape (..., features)
    kernel : array_like of shape (features, units)
    input_grad : bool, default True
        False skips grad_x (returned as None).
    activation : {None, "relu"}, keyword-only
    output : array_like of shape (..., units), keyword-only
        The forward result; required with ``activation="relu"`` (only then).

    Returns
    -------
    grad_x : ndarray of x's shape, or None
    grad_kernel : ndarray of shape (features, units)
    grad_bias : ndarray of shape (units,)
        All in the compute dtype.
    """
    input_grad = check_bool(input_grad, "input_grad")
    call, shape = dense_call(x, kernel, None)
    g = as_array(grad_out, "grad_out")
    if g.shape != shape:
        raise ValueError(f"grad_out must have the forward output's shape {shape}, got {g.shape}")
    g = cast_weights(g, "grad_out", call.dtype)
    mask = _relu_mask(activation, output, shape, call.dtype)
    if mask is not None:
        g = np.where(mask, g, 0).astype(call.dtype)
    features, units = call.kernel.shape[2:]
    g64 = _rows64(g, call.dtype)  # (rows, units)
    x64 = _rows64(call.x, call.dtype)  # (rows, features)
    k64 = np.asarray(call.kernel.reshape(features, units), np.float64)
    grad_kernel = np.ascontiguousarray(_matmul(x64.T, g64), dtype=call.dtype)
    grad_bias = np.ascontiguousarray(g64.sum(axis=0), dtype=call.dtype)
    grad_x = None
    if input_grad:
        grad_x = np.ascontiguousarray(
            _matmul(g64, k64.T).reshape(shape[:-1] + (features,)), dtype=call.dtype
        )
    return grad_x, grad_kernel, grad_bias


def max_pool2d_backward(
    grad_out: ArrayLike,
    x: ArrayLike,
    pool_size: IntPair,
    strides: IntPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
    *,
    dilation_rate: IntPair = 1,
    ceil_mode: bool = False,
) -> FloatArray:
    """Reference of :func:`convpool.max_pool2d_backward`.

    The winner of each window (:func:`_winners`): the last NaN if it holds
    any, else the first maximum among its real cells in row-major order;
    grad_out is added there with ``np.add.at`` (so overlapping windows add up).
    """
    call = PoolCall(x, pool_size, strides, padding, data_format, dilation_rate, ceil_mode)
    g = grad_out_nhwc(grad_out, call)
    x = to_nhwc(call.x, call.data_format, call.dtype)
    win = call.win
    winner = _winners(x, win)  # (N, OH, OW, C)
    n, oh, ow, c = _grid(winner.shape)
    rows = oh * win.sh + (winner // win.kw) * win.dh
    cols = ow * win.sw + (winner % win.kw) * win.dw
    gxp = np.zeros((x.shape[0], x.shape[1] + win.pt + win.pb + win.xb,
                    x.shape[2] + win.pl + win.pr + win.xr, x.shape[3]), call.dtype)
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
    *,
    ceil_mode: bool = False,
    divisor_override: SupportsIndex | None = None,
) -> FloatArray:
    """Reference of :func:`convpool.avg_pool2d_backward`: grad_out / divisor added
    to every tap's strided positions of the padded input, then cropped."""
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    divisor = check_divisor_override(divisor_override)
    call = PoolCall(x, pool_size, strides, padding, data_format, 1, ceil_mode)
    g = grad_out_nhwc(grad_out, call)
    x = to_nhwc(call.x, call.data_format, call.dtype)
    win = call.win
    share = g / _divisors(x.shape, win, count_include_pad, divisor).astype(call.dtype)
    gxp = np.zeros((x.shape[0], x.shape[1] + win.pt + win.pb + win.xb,
                    x.shape[2] + win.pl + win.pr + win.xr, x.shape[3]), call.dtype)
    for kh in range(win.kh):
        for kw in range(win.kw):
            rows, cols = _tap_slices(win, kh, kw)
            gxp[:, rows, cols] += share
    return from_nhwc(_crop(gxp, win), call.data_format)


# ------------------------------------------------------------ global and adaptive pooling
# One window per output, taken with a slice and reduced in float64 (the
# average) or exactly (the maximum); the Python loops run over the outputs'
# windows.  Argument checks are the fast functions' (convpool.functional).
def _adaptive_setup(x: ArrayLike, output_size: Any, data_format: str, op: str
                    ) -> tuple[NDArray[Any], str, list[tuple[int, int]], list[tuple[int, int]]]:
    from ._shapes import adaptive_output_size

    x, fmt, (n, h, w, c) = check_image(x, data_format, op)
    oh, ow = adaptive_output_size(output_size, (h, w), f"x shape {x.shape} ({fmt})")
    rows = [((i * h) // oh, -((-(i + 1) * h) // oh)) for i in range(oh)]
    cols = [((j * w) // ow, -((-(j + 1) * w) // ow)) for j in range(ow)]
    dtype = compute_dtype(x, "x")
    return to_nhwc(x, fmt, dtype), fmt, rows, cols


def _window_winner(cells: NDArray[Any]) -> NDArray[np.int64]:
    """(N, cells, C): the last NaN if any, else the first maximum (row-major cells)."""
    winners = np.empty((cells.shape[0], cells.shape[2]), np.int64)
    for n in range(cells.shape[0]):
        for c in range(cells.shape[2]):
            v = cells[n, :, c]
            nans = np.flatnonzero(np.isnan(v))
            winners[n, c] = nans[-1] if nans.size else int(np.argmax(v))
    return winners


def adaptive_avg_pool2d(x: ArrayLike, output_size: Any,
                        data_format: str = "channels_last") -> FloatArray:
    """Reference of :func:`convpool.adaptive_avg_pool2d`: each window's sum over its
    cells, the sum in the compute dtype as :func:`avg_pool2d`'s reference (so a
    float32 sum past the float32 range is inf in both)."""
    xn, fmt, rows, cols = _adaptive_setup(x, output_size, data_format, "adaptive_avg_pool2d")
    y = np.empty((xn.shape[0], len(rows), len(cols), xn.shape[3]), xn.dtype)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            cells = xn.dtype.type((r1 - r0) * (c1 - c0))
            y[:, i, j] = xn[:, r0:r1, c0:c1].sum(axis=(1, 2), dtype=xn.dtype) / cells
    return from_nhwc(y, fmt)


def adaptive_max_pool2d(x: ArrayLike, output_size: Any, data_format: str = "channels_last",
                        *, return_indices: bool = False
                        ) -> FloatArray | tuple[FloatArray, NDArray[np.int64]]:
    """Reference of :func:`convpool.adaptive_max_pool2d` (winners one by one)."""
    return_indices = check_bool(return_indices, "return_indices")
    xn, fmt, rows, cols = _adaptive_setup(x, output_size, data_format, "adaptive_max_pool2d")
    n, h, w, c = xn.shape
    y = np.empty((n, len(rows), len(cols), c), xn.dtype)
    idx = np.empty(y.shape, np.int64)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            cells = xn[:, r0:r1, c0:c1].reshape(n, (r1 - r0) * (c1 - c0), c)
            k = _window_winner(cells)
            y[:, i, j] = np.take_along_axis(cells, k[:, None, :], axis=1)[:, 0]
            idx[:, i, j] = (r0 + k // (c1 - c0)) * w + c0 + k % (c1 - c0)
    if return_indices:
        return from_nhwc(y, fmt), from_nhwc(idx, fmt)
    return from_nhwc(y, fmt)


def _adaptive_g(grad_out: ArrayLike, xn: NDArray[Any], rows: list[Any], cols: list[Any],
                fmt: str) -> NDArray[Any]:
    want = (xn.shape[0], len(rows), len(cols), xn.shape[3])
    g = as_array(grad_out, "grad_out")
    want_fmt = want if fmt == "channels_last" else (want[0], want[3], want[1], want[2])
    if g.shape != want_fmt:
        raise ValueError(f"grad_out must have the forward output's shape {want_fmt}, got {g.shape}")
    return to_nhwc(cast_weights(g, "grad_out", xn.dtype), fmt, xn.dtype)


def adaptive_avg_pool2d_backward(grad_out: ArrayLike, x: ArrayLike, output_size: Any,
                                 data_format: str = "channels_last") -> FloatArray:
    """Reference of :func:`convpool.adaptive_avg_pool2d_backward`."""
    xn, fmt, rows, cols = _adaptive_setup(x, output_size, data_format,
                                          "adaptive_avg_pool2d_backward")
    g = _adaptive_g(grad_out, xn, rows, cols, fmt)
    gx = np.zeros(xn.shape, np.float64)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            gx[:, r0:r1, c0:c1] += g[:, i, j][:, None, None] / ((r1 - r0) * (c1 - c0))
    return from_nhwc(gx.astype(xn.dtype), fmt)


def adaptive_max_pool2d_backward(grad_out: ArrayLike, x: ArrayLike, output_size: Any,
                                 data_format: str = "channels_last") -> FloatArray:
    """Reference of :func:`convpool.adaptive_max_pool2d_backward`."""
    xn, fmt, rows, cols = _adaptive_setup(x, output_size, data_format,
                                          "adaptive_max_pool2d_backward")
    g = _adaptive_g(grad_out, xn, rows, cols, fmt)
    n, h, w, c = xn.shape
    gx = np.zeros((n, h * w, c), xn.dtype)
    _, idx = adaptive_max_pool2d(xn, (len(rows), len(cols)), return_indices=True)
    for i in range(len(rows)):
        for j in range(len(cols)):
            for b in range(n):
                for ch in range(c):
                    gx[b, idx[b, i, j, ch], ch] += g[b, i, j, ch]
    return from_nhwc(gx.reshape(n, h, w, c), fmt)


def global_avg_pool2d(x: ArrayLike, keepdims: bool = False,
                      data_format: str = "channels_last") -> FloatArray:
    """Reference of :func:`convpool.global_avg_pool2d`: the sum over H and W in the
    compute dtype, over H * W."""
    keepdims = check_bool(keepdims, "keepdims")
    _, _, (n, _, _, c) = check_image(x, data_format, "global_avg_pool2d")
    y = adaptive_avg_pool2d(x, 1, data_format)
    return y if keepdims else y.reshape(n, c)


def global_max_pool2d(x: ArrayLike, keepdims: bool = False,
                      data_format: str = "channels_last") -> FloatArray:
    """Reference of :func:`convpool.global_max_pool2d`."""
    keepdims = check_bool(keepdims, "keepdims")
    _, _, (n, _, _, c) = check_image(x, data_format, "global_max_pool2d")
    y = adaptive_max_pool2d(x, 1, data_format)
    assert not isinstance(y, tuple)
    return y if keepdims else y.reshape(n, c)


def _global_g(grad_out: ArrayLike, x: ArrayLike, keepdims: bool, data_format: str,
              op: str) -> NDArray[Any]:
    """A global pool's grad_out, checked, in the (N, 1, 1, C) / (N, C, 1, 1) shape."""
    keepdims = check_bool(keepdims, "keepdims")
    _, fmt, (n, _, _, c) = check_image(x, data_format, op)
    kept = from_nhwc_shape((n, 1, 1, c), fmt)
    g = as_array(grad_out, "grad_out")
    want = kept if keepdims else (n, c)
    if g.shape != want:
        raise ValueError(f"grad_out must have the forward output's shape {want}, got {g.shape}")
    return g.reshape(kept)


def global_avg_pool2d_backward(grad_out: ArrayLike, x: ArrayLike, keepdims: bool = False,
                               data_format: str = "channels_last") -> FloatArray:
    """Reference of :func:`convpool.global_avg_pool2d_backward`."""
    g = _global_g(grad_out, x, keepdims, data_format, "global_avg_pool2d_backward")
    return adaptive_avg_pool2d_backward(g, x, 1, data_format)


def global_max_pool2d_backward(grad_out: ArrayLike, x: ArrayLike, keepdims: bool = False,
                               data_format: str = "channels_last") -> FloatArray:
    """Reference of :func:`convpool.global_max_pool2d_backward`."""
    g = _global_g(grad_out, x, keepdims, data_format, "global_max_pool2d_backward")
    return adaptive_max_pool2d_backward(g, x, 1, data_format)


# ------------------------------------------------------------ unpooling, Lp pooling
def max_unpool2d(x: ArrayLike, indices: ArrayLike, pool_size: IntPair,
                 strides: IntPair | None = None, padding: IntPair = 0,
                 output_size: IntPair | None = None,
                 data_format: str = "channels_last") -> FloatArray:
    """Reference of :func:`convpool.max_unpool2d`: every value written in turn
    (row-major over H and W), so a later one at the same index replaces it."""
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
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= oh * ow):
        raise ValueError(f"indices must lie in [0, {oh * ow}) (the output plane {(oh, ow)}), "
                         f"got values from {int(idx.min())} to {int(idx.max())}")
    xn, dn = to_nhwc(x, fmt, dtype), to_nhwc(idx, fmt, np.dtype(np.int64))
    y = np.zeros((n, oh * ow, c), dtype)
    for b in range(n):
        for ch in range(c):
            for i in range(h):
                for j in range(w):
                    y[b, dn[b, i, j, ch], ch] = xn[b, i, j, ch]
    return from_nhwc(y.reshape(n, oh, ow, c), fmt)


def lp_pool2d(x: ArrayLike, norm_type: float, pool_size: IntPair,
              strides: IntPair | None = None, *, ceil_mode: bool = False,
              data_format: str = "channels_last") -> FloatArray:
    """Reference of :func:`convpool.lp_pool2d`: per window, the sum of x**p over
    its real cells over (its real cells), times KH*KW, to the power 1/p
    (PyTorch's; dividing first, so a sum near the float maximum does not
    overflow)."""
    p = check_norm_type(norm_type)
    call = PoolCall(x, pool_size, strides, 0, data_format, 1, ceil_mode)
    x = to_nhwc(call.x, call.data_format, call.dtype)
    win = call.win
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # x**p in the compute dtype, as PyTorch's definition (a float32 power
        # past the float32 range is inf there too), then summed in float64.
        xp = np.power(x, x.dtype.type(p)).astype(np.float64)
        sums = _windows(_pad(xp, win, 0), win).sum(axis=(4, 5))
        cells = _divisors(x.shape, win, False, 0)
        y = np.power(sums / cells * (win.kh * win.kw), 1.0 / p)
    return _deliver(y, call, None)


def lp_pool2d_backward(grad_out: ArrayLike, x: ArrayLike, norm_type: float, pool_size: IntPair,
                       strides: IntPair | None = None, *, ceil_mode: bool = False,
                       data_format: str = "channels_last") -> FloatArray:
    """Reference of :func:`convpool.lp_pool2d_backward`, in float64: the chain rule
    through s**(1/p), the scaled window sum s, and x**p."""
    p = check_norm_type(norm_type)
    call = PoolCall(x, pool_size, strides, 0, data_format, 1, ceil_mode)
    g = grad_out_nhwc(grad_out, call).astype(np.float64)
    xd = to_nhwc(call.x, call.data_format, call.dtype)
    x = xd.astype(np.float64)
    win = call.win
    k = win.kh * win.kw
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        cells = _divisors(x.shape, win, False, 0)
        scale = k / cells
        xp = np.power(xd, xd.dtype.type(p)).astype(np.float64)  # as the forward
        s = _windows(_pad(xp, win, 0), win).sum(axis=(4, 5)) / cells * k
        share = g * (1.0 / p) * np.power(s, 1.0 / p - 1.0) * scale  # d y / d (sum of x**p)
        gxp = np.zeros((x.shape[0], x.shape[1] + win.xb, x.shape[2] + win.xr, x.shape[3]))
        for a in range(win.kh):
            for b in range(win.kw):
                rows, cols = _tap_slices(win, a, b)
                gxp[:, rows, cols] += share
        gx = _crop(gxp, win) * p * np.power(x, p - 1.0)
    return from_nhwc(gx.astype(call.dtype), call.data_format)
