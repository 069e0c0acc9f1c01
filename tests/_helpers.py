"""Pure helpers shared by the test modules: case ids, derived tolerances, guard regions.

Import them with ``from _helpers import ...`` (``conftest.py`` puts this
directory on ``sys.path``).  The oracle is always :mod:`convpool.reference`;
only ``forced_conv`` and ``every_algorithm`` call the fast kernels, to force
one of their conv algorithms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from convpool import reference
from convpool._shapes import effective_size

__all__ = [
    "DTYPE_TAG",
    "every_algorithm",
    "forced_conv",
    "Guarded",
    "assert_bitwise_equal",
    "assert_conv_close",
    "assert_guard_intact",
    "avg_pool_tolerance",
    "case_id",
    "conv_configs",
    "conv_tolerance",
    "gamma",
    "guarded",
    "guarded_out",
    "strided_copy",
    "small_ints",
    "to_layout",
    "from_layout",
    "transpose_tolerance",
]

DTYPE_TAG = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}

_LAYOUT_TAG = {"channels_last": "nhwc", "channels_first": "nchw", None: "nhwc"}


# --------------------------------------------------------------------------- ids
def _pair_text(value) -> str:
    if isinstance(value, (tuple, list)):
        a, b = value
        return f"{a}x{b}"
    return f"{value}x{value}"


def _padding_text(padding) -> str:
    if isinstance(padding, str):
        return padding.lower()
    if isinstance(padding, (tuple, list)) and all(isinstance(p, (tuple, list)) for p in padding):
        (t, b), (l, r) = padding
        parts = (t, b, l, r)
    elif isinstance(padding, (tuple, list)):
        ph, pw = padding
        parts = (ph, ph, pw, pw)
    else:
        parts = (padding,) * 4
    sep = "" if all(0 <= int(p) < 10 for p in parts) else "_"
    return sep.join(str(int(p)) for p in parts)


def case_id(**cfg) -> str:
    """A readable test id from a configuration.

    For example ``N2-H7xW5-C3-k3x2-s2x1-p1011-d1x2-g1-f32-nhwc``.

    Parameters
    ----------
    **cfg
        Any of ``n``, ``h``, ``w``, ``c`` (input channels), ``oc`` (output
        channels), ``kernel`` or ``pool`` (int or pair), ``strides``,
        ``padding`` (every form conv2d accepts; ``p1011`` is top, bottom,
        left, right), ``dilation``, ``groups``, ``bias`` (bool), ``cip``
        (count_include_pad, bool), ``dtype``, ``data_format``.  Missing keys
        are left out; unknown keys are appended as ``key=value``.

    Returns
    -------
    str
    """
    cfg = dict(cfg)
    parts = []
    if "n" in cfg:
        parts.append(f"N{cfg.pop('n')}")
    if "h" in cfg or "w" in cfg:
        parts.append(f"H{cfg.pop('h', '?')}xW{cfg.pop('w', '?')}")
    if "c" in cfg:
        parts.append(f"C{cfg.pop('c')}")
    if "oc" in cfg:
        parts.append(f"O{cfg.pop('oc')}")
    for key in ("kernel", "pool"):
        if key in cfg:
            parts.append(f"k{_pair_text(cfg.pop(key))}")
    if "strides" in cfg:
        strides = cfg.pop("strides")
        parts.append("sdef" if strides is None else f"s{_pair_text(strides)}")
    if "padding" in cfg:
        parts.append(f"p{_padding_text(cfg.pop('padding'))}")
    if "dilation" in cfg:
        parts.append(f"d{_pair_text(cfg.pop('dilation'))}")
    if "groups" in cfg:
        parts.append(f"g{cfg.pop('groups')}")
    if "bias" in cfg:
        parts.append("bias" if cfg.pop("bias") else "nobias")
    if "cip" in cfg:
        parts.append("cip" if cfg.pop("cip") else "real")
    if "dtype" in cfg:
        dt = np.dtype(cfg.pop("dtype"))
        parts.append(DTYPE_TAG.get(dt, dt.name))
    if "data_format" in cfg:
        parts.append(_LAYOUT_TAG[cfg.pop("data_format")])
    parts.extend(f"{k}={v}" for k, v in cfg.items())
    return "-".join(parts)


# -------------------------------------------------------------------- tolerances
def gamma(n: int, dtype) -> float:
    """Higham's ``gamma_n = n u / (1 - n u)`` with ``u = eps / 2`` of ``dtype``.

    Parameters
    ----------
    n : int
        Number of roundings.
    dtype : dtype-like
        float32 or float64.

    Returns
    -------
    float
    """
    u = float(np.finfo(dtype).eps) / 2
    assert n * u < 0.5, "the error bound is meaningless for so long a reduction"
    return n * u / (1 - n * u)


def _abs64(a):
    return None if a is None else np.abs(np.asarray(a, dtype=np.float64))


def conv_tolerance(x, kernel, dtype, **conv_kwargs) -> np.ndarray:
    """Elementwise bound on ``|fast - ref|`` for a conv2d computed in ``dtype``.

    Derivation.  Each output is ``y = b + sum_{k<K} x_k w_k`` with
    ``K = KH * KW * C_in / groups`` (taps in the padding are exact zeros).  The
    fast kernel accumulates the K products into a zero accumulator in a fixed
    order (with or without FMA) and then adds the bias; the reference uses a
    BLAS matrix product (any summation order) and then adds the bias.  For any
    order, a length-K dot product followed by one more addition satisfies
    (Higham, *Accuracy and Stability*, 3.1 and 3.5)

        |fl(y) - y| <= gamma_{K+1} (S + |b|),   S = sum_k |x_k| |w_k|,

    with ``gamma_n = n u / (1 - n u)`` and ``u = eps / 2`` of the dtype the sum
    is carried in.  Both results obey it against the exact ``y``, so

        |fast - ref| <= 2 gamma_{K+1} (S + |b|)       (about 2 K u S).

    When the reference runs in float64 on float32 data its own error is
    ``gamma^{f64}`` (far below ``gamma^{f32}``), so the same bound, evaluated
    with the *compute* dtype's u, still holds.  ``S`` is ``|x| conv |w|``,
    computed by ``convpool.reference.conv2d`` on float64 copies (its own
    relative error, ~K * 1e-16, is absorbed by evaluating the bound on
    ``S * (1 + gamma^{f64}_K)``).  A floor of ``4 * tiny`` (smallest normal) per
    output covers products that underflow.

    Parameters
    ----------
    x : ndarray
        The conv input, in the layout given by ``conv_kwargs['data_format']``.
    kernel : ndarray of shape (KH, KW, C_in // groups, C_out)
    dtype : dtype-like
        The dtype the fast call computes in (float32 or float64).
    **conv_kwargs
        The conv2d arguments: ``bias``, ``strides``, ``padding``,
        ``dilation_rate``, ``groups``, ``data_format``.

    Returns
    -------
    ndarray of float64, the shape of the conv output
        Never loosen it to make a test pass: a failure is a finding.
    """
    kwargs = dict(conv_kwargs)
    kwargs.pop("out", None)
    bias = _abs64(kwargs.pop("bias", None))
    kernel = np.asarray(kernel)
    k_len = int(kernel.shape[0] * kernel.shape[1] * kernel.shape[2])
    s = reference.conv2d(_abs64(x), _abs64(kernel), bias=bias, **kwargs)
    s = s * (1 + gamma(max(k_len, 1) + 1, np.float64))
    return 2 * gamma(k_len + 1, dtype) * s + 4 * float(np.finfo(dtype).tiny)


def transpose_tolerance(x, kernel, dtype, *, bias=None, **kwargs) -> np.ndarray:
    """Elementwise bound on ``|fast - ref|`` for a conv2d_transpose computed in ``dtype``.

    Derivation.  An output is ``y = b + sum of x[n, i, j, c] * kernel[a, b, o, c]``
    over the taps (a, b) that reach it from an input pixel (at most one pixel
    per tap and channel: ``i = (row + pt - a*dh) / sh`` must be an integer) and
    the ``Cg = C_in / groups`` channels of its group: at most
    ``K = KH * KW * Cg`` products.  The stride-1 path sums the K products of a
    conv (taps over its zero padding are exact zeros); the data-gradient path
    adds per-tap GEMM results into the row; the reference adds per-tap matrix
    products; then the bias.  Any order of a K-term sum plus one addition obeys
    (Higham, *Accuracy and Stability*, 3.1 and 3.5)

        |fl(y) - y| <= gamma_{K+1} (S + |b|),   S = sum |x| |w|,

    so ``|fast - ref| <= 2 gamma_{K+1} (S + |b|)`` with the compute dtype's u
    (the float64 reference is far more accurate).  ``S + |b|`` is the same
    transposed conv of absolute values (``convpool.reference.conv2d_transpose``
    on float64 copies; its own error is absorbed by the factor
    ``1 + gamma^{f64}_{K+1}``).  A ReLU is 1-Lipschitz, so the bound holds
    after it too.  ``4 * tiny`` per output covers underflowing products.

    Parameters
    ----------
    x : ndarray
        The input, in the layout given by ``kwargs['data_format']``.
    kernel : ndarray of shape (KH, KW, C_out // groups, C_in)
    dtype : dtype-like
        The compute dtype of the fast call.
    bias : ndarray of shape (C_out,), optional
    **kwargs
        The other conv2d_transpose arguments (``activation`` and ``out`` are
        ignored).

    Returns
    -------
    ndarray of float64, the shape of the output
        Never loosen it to make a test pass: a failure is a finding.
    """
    kwargs = {k: v for k, v in kwargs.items() if k not in ("out", "activation")}
    kh, kw, _, cin = np.shape(kernel)
    k_len = int(kh * kw * (cin // int(kwargs.get("groups", 1))))
    s = reference.conv2d_transpose(_abs64(x), _abs64(kernel), _abs64(bias), **kwargs)
    s = s * (1 + gamma(k_len + 1, np.float64))
    return 2 * gamma(k_len + 1, dtype) * s + 4 * float(np.finfo(dtype).tiny)


def avg_pool_tolerance(x, pool_size, dtype, **pool_kwargs) -> np.ndarray:
    """Elementwise bound on ``|fast - ref|`` for avg_pool2d computed in ``dtype``.

    Derivation.  An output is ``s / d`` with ``s`` the sum of the ``m <= KH*KW``
    real cells of the window (padding adds exact zeros) and ``d`` the exact
    integer divisor.  Summing m terms in any order costs ``gamma_{m-1} sum|x|``;
    the correctly rounded division adds ``u |s/d|``, so

        |fl(fl(s)/d) - s/d| <= gamma_{KH*KW} * (sum |x|) / d
                             = gamma_{KH*KW} * avg_pool(|x|)

    for both the fast and the reference result, hence
    ``|fast - ref| <= 2 gamma_{KH*KW} avg_pool(|x|)`` (``avg_pool(|x|)`` with the
    same divisor, computed in float64 by the reference), plus ``4 * tiny``.

    Parameters
    ----------
    x : ndarray
    pool_size : int or (int, int)
    dtype : dtype-like
        The compute dtype (float32 or float64).
    **pool_kwargs
        ``strides``, ``padding``, ``data_format``, ``count_include_pad``.

    Returns
    -------
    ndarray of float64, the shape of the pooled output
    """
    kwargs = dict(pool_kwargs)
    kwargs.pop("out", None)
    ph, pw = (pool_size, pool_size) if np.ndim(pool_size) == 0 else pool_size
    mean_abs = reference.avg_pool2d(_abs64(x), pool_size, **kwargs)
    mean_abs = mean_abs * (1 + gamma(ph * pw + 1, np.float64))
    return 2 * gamma(ph * pw, dtype) * mean_abs + 4 * float(np.finfo(dtype).tiny)


# -------------------------------------------------------------------- assertions
def assert_conv_close(fast, ref, tol, cfg) -> None:
    """Assert ``|fast - ref| <= tol`` elementwise, NaN only where ``ref`` is NaN.

    Parameters
    ----------
    fast, ref : ndarray
        Same shape; ``ref`` may be float64 while ``fast`` is float32.
    tol : ndarray or float
        From :func:`conv_tolerance` or :func:`avg_pool_tolerance`.
    cfg : dict or str
        The whole configuration; printed on failure with the worst element.
    """
    fast = np.asarray(fast)
    ref = np.asarray(ref)
    assert fast.shape == ref.shape, f"shape {fast.shape} != reference {ref.shape}; {cfg}"
    f64 = fast.astype(np.float64)
    r64 = ref.astype(np.float64)
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), ref.shape)
    nan_mismatch = np.isnan(f64) != np.isnan(r64)
    if nan_mismatch.any():
        idx = tuple(int(i) for i in np.argwhere(nan_mismatch)[0])
        raise AssertionError(
            f"NaN mismatch at {idx}: fast={f64[idx]!r} ref={r64[idx]!r} "
            f"({int(nan_mismatch.sum())} of {ref.size} elements)\n  config: {cfg}"
        )
    with np.errstate(invalid="ignore"):
        err = np.where(np.isnan(r64), 0.0, np.abs(f64 - r64))
        err = np.where((f64 == r64), 0.0, err)  # equal infinities
    excess = np.where(err > tol, err / np.maximum(tol, np.finfo(np.float64).tiny), 0.0)
    if excess.any():
        idx = tuple(int(i) for i in np.unravel_index(np.argmax(excess), excess.shape))
        raise AssertionError(
            f"|fast - ref| exceeds the derived bound at {int((excess > 0).sum())} of "
            f"{ref.size} elements; worst at {idx}: fast={f64[idx]!r} ref={r64[idx]!r} "
            f"|diff|={err[idx]:.3e} tol={tol[idx]:.3e} ({excess[idx]:.2f}x the bound)\n"
            f"  config: {cfg}"
        )


def assert_bitwise_equal(a, b, cfg, *, what="results") -> None:
    """Assert two arrays are identical bit for bit (NaN payloads included).

    Parameters
    ----------
    a, b : ndarray
        Same dtype and shape.
    cfg : dict or str
        Printed on failure.
    what : str
        What is compared, for the message.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != {b.dtype}; {cfg}"
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}; {cfg}"
    ua = np.ascontiguousarray(a).view(f"u{a.itemsize}")
    ub = np.ascontiguousarray(b).view(f"u{b.itemsize}")
    diff = ua != ub
    if diff.any():
        idx = tuple(int(i) for i in np.argwhere(diff)[0])
        raise AssertionError(
            f"{what} differ in {int(diff.sum())} of {a.size} elements; first at {idx}: "
            f"{a[idx]!r} vs {b[idx]!r}\n  config: {cfg}"
        )


# ------------------------------------------------------------------ guard regions
@dataclass
class Guarded:
    """An array view living inside a larger buffer whose other cells hold a sentinel.

    Attributes
    ----------
    view : ndarray
        The array to pass to the function under test.
    buffer : ndarray
        The whole allocation.
    mask : ndarray of bool, shape of ``buffer``
        True on the guard cells (everything not covered by ``view``).
    fill : float
        The sentinel the guard cells hold.
    """

    view: np.ndarray
    buffer: np.ndarray
    mask: np.ndarray
    fill: float


def guarded(
    data, *, guard: int = 67, contiguous: bool = True, axis_guard: int = 2, fill=np.nan
) -> Guarded:
    """Copy ``data`` into the middle of a larger buffer filled with ``fill``.

    With ``contiguous=True`` the buffer is 1-D and the view a C-contiguous
    reshaped slice of it, so convpool hands the very memory to the kernel
    (no copy): a read before or after the data picks up NaN and shows in the
    result.  With ``contiguous=False`` the buffer is N-D with ``axis_guard``
    extra cells on every side of every axis (stride 2 on the last axis), so the
    view is non-contiguous and exercises the copying path.

    Parameters
    ----------
    data : ndarray
    guard : int
        Guard cells before and after the data in the 1-D buffer (a prime, so
        that tile edges do not align).
    contiguous : bool
    axis_guard : int
        Guard cells on each side of each axis when ``contiguous=False``.
    fill : float
        The sentinel, NaN by default.

    Returns
    -------
    Guarded
    """
    data = np.asarray(data)
    if contiguous:
        buffer = np.full(data.size + 2 * guard, fill, dtype=data.dtype)
        view = buffer[guard : guard + data.size].reshape(data.shape)
        mask = np.ones(buffer.shape, dtype=bool)
        mask[guard : guard + data.size] = False
    else:
        g = axis_guard
        shape = tuple(s + 2 * g for s in data.shape[:-1]) + (2 * data.shape[-1] + 2 * g,)
        buffer = np.full(shape, fill, dtype=data.dtype)
        index = tuple(slice(g, g + s) for s in data.shape[:-1]) + (
            slice(g, g + 2 * data.shape[-1], 2),
        )
        view = buffer[index]
        mask = np.ones(buffer.shape, dtype=bool)
        mask[index] = False
    view[...] = data
    return Guarded(view, buffer, mask, fill)


def guarded_out(shape, dtype, *, guard: int = 67, fill=np.nan) -> Guarded:
    """A C-contiguous ``out=`` array pre-filled with ``fill``, inside a guarded buffer.

    Unwritten outputs keep the sentinel; writes past either end change a guard
    cell (check with :func:`assert_guard_intact`).

    Parameters
    ----------
    shape : tuple
    dtype : dtype-like
    guard : int
    fill : float

    Returns
    -------
    Guarded
    """
    return guarded(np.full(shape, fill, dtype=dtype), guard=guard, contiguous=True, fill=fill)


def assert_guard_intact(g: Guarded, what: str = "buffer") -> None:
    """Assert every guard cell still holds the sentinel, bit for bit.

    Parameters
    ----------
    g : Guarded
    what : str
        Name for the message.
    """
    cells = g.buffer[g.mask]
    expected = np.full(cells.shape, g.fill, dtype=g.buffer.dtype)
    ok = cells.view(f"u{cells.itemsize}") == expected.view(f"u{cells.itemsize}")
    assert ok.all(), (
        f"{what}: {int((~ok).sum())} guard cells were overwritten "
        f"(first new value {cells[~ok][0]!r})"
    )


def strided_copy(data, step: int = 3) -> np.ndarray:
    """``data`` as a non-contiguous view (every ``step``-th element of a larger array).

    Parameters
    ----------
    data : ndarray
    step : int

    Returns
    -------
    ndarray
        Equal to ``data``, with strides ``step`` times the contiguous ones on
        the last axis.
    """
    data = np.asarray(data)
    big = np.zeros(data.shape[:-1] + (data.shape[-1] * step,), dtype=data.dtype)
    view = big[..., ::step]
    view[...] = data
    return view


# ----------------------------------------------------------------------- data
def to_layout(x_nhwc, data_format) -> np.ndarray:
    """``x_nhwc`` as a C-contiguous array in ``data_format`` (NCHW for channels_first).

    Parameters
    ----------
    x_nhwc : ndarray of shape (N, H, W, C)
    data_format : {"channels_last", "channels_first"}

    Returns
    -------
    ndarray
    """
    if data_format == "channels_first":
        return np.ascontiguousarray(np.asarray(x_nhwc).transpose(0, 3, 1, 2))
    return np.ascontiguousarray(x_nhwc)


def from_layout(y, data_format) -> np.ndarray:
    """The NHWC view of a result in ``data_format`` (inverse of :func:`to_layout`)."""
    if data_format == "channels_first":
        return np.asarray(y).transpose(0, 2, 3, 1)
    return np.asarray(y)


def small_ints(rng, shape, dtype, bound: int = 8) -> np.ndarray:
    """Integers uniform in ``[-bound, bound]`` stored as ``dtype``: exact in any float type.

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : tuple
    dtype : dtype-like
    bound : int

    Returns
    -------
    ndarray
    """
    return rng.integers(-bound, bound + 1, size=shape).astype(dtype)


# --------------------------------------------------------------------- hypothesis
@st.composite
def conv_configs(draw, *, batches, heights, widths, dtypes, layouts, bias=False):
    """A random conv2d case: groups, channels around the vector widths, kernel
    1-4, stride 1-4, dilation 1-3 and every padding form, on an input the
    window fits in plus a size drawn from ``heights`` / ``widths`` (minus one).

    Returns a dict for ``case_id`` (with a ``bias`` flag when ``bias``) and a
    ``seed`` for the data.
    """
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.sampled_from([1, 2, 3, 5]))
    ocg = draw(st.sampled_from([1, 2, 7, 8, 9, 15, 16, 17]))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    form = draw(st.sampled_from(["valid", "same", "int", "pair", "explicit"]))
    p = st.integers(0, 3)
    if form in ("valid", "same"):
        padding, pads = form, (0, 0, 0, 0)
    elif form == "int":
        v = draw(p)
        padding, pads = v, (v,) * 4
    elif form == "pair":
        a, b = draw(p), draw(p)
        padding, pads = (a, b), (a, a, b, b)
    else:
        t, bo, le, ri = draw(p), draw(p), draw(p), draw(p)
        padding, pads = ((t, bo), (le, ri)), (t, bo, le, ri)
    # the smallest input the window fits in (any input fits under "same")
    min_h = 1 if form == "same" else max(1, effective_size(kh, dh) - pads[0] - pads[1])
    min_w = 1 if form == "same" else max(1, effective_size(kw, dw) - pads[2] - pads[3])
    cfg = dict(
        n=draw(st.sampled_from(batches)),
        h=min_h + draw(st.sampled_from(heights)) - 1,
        w=min_w + draw(st.sampled_from(widths)) - 1,
        c=groups * cg, oc=groups * ocg,
        kernel=(kh, kw), strides=(sh, sw), padding=padding, dilation=(dh, dw), groups=groups,
    )
    if bias:
        cfg["bias"] = draw(st.booleans())
    cfg.update(dtype=np.dtype(draw(st.sampled_from(dtypes))),
               data_format=draw(st.sampled_from(layouts)),
               seed=draw(st.integers(0, 2**32 - 1)))
    return cfg


# ------------------------------------------------- conv algorithms, forced
def _conv_call(x, kernel, bias, kw):
    from convpool._checks import ConvCall

    return ConvCall(x, kernel, bias, kw.get("strides", 1), kw.get("padding", "valid"),
                    kw.get("dilation_rate", 1), kw.get("groups", 1), "channels_last")


def forced_conv(x, kernel, bias, algorithm, *, relu=False, **kw):
    """conv2d (NHWC) computed by the kernel algorithm ``algorithm``; ValueError
    if it cannot compute this call."""
    from convpool import functional

    return functional._conv2d(_conv_call(x, kernel, bias, kw), None, relu, algorithm)


def every_algorithm(x, kernel, bias, *, relu=False, **kw):
    """{algorithm: result} for every direct (exact-order) kernel algorithm that
    can compute this call (each asked of the plan, then forced); Winograd has
    its own bits and its own tests (test_winograd.py)."""
    from convpool import functional
    from convpool._kernels import _core

    out = {}
    for name in _core.EXACT_ALGORITHMS:
        try:
            functional._plan(_conv_call(x, kernel, bias, kw), name)
        except ValueError:
            continue
        out[name] = forced_conv(x, kernel, bias, name, relu=relu, **kw)
    assert "gather" in out, "GATHER computes every geometry"
    return out

