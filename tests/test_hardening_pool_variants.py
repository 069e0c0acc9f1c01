"""Hardening of the pooling variants and of conv2d's padding modes.

The functions: max_pool2d with dilation_rate, ceil_mode and return_indices and
its backward pass; avg_pool2d with ceil_mode and divisor_override and its
backward pass; max_unpool2d; lp_pool2d and its backward pass; the adaptive
and global average / max pools and their backward passes; conv2d and
conv2d_backward with padding_mode "zeros", "reflect", "replicate" and
"circular".  The plain options are the business of test_fuzz.py,
test_hardening.py and test_inputs.py; this file covers the new ones.

1. Bad arguments: a ValueError / TypeError whose message names the argument
   (the messages asserted are the ones the code gives), from the fast
   functions and the reference alike, before any work: every input array and
   ``out=`` byte for byte as they were.
2. Huge values: sizes, strides, pads, dilations, divisors and adaptive sizes
   near or past 2**62 / 2**63 are a ValueError at once (a 10 s wall clock
   is a hang guard, not a speed test); outputs past the 64-bit range
   likewise; windows of 2**40 - 2**61 cells made to fit by their padding give
   their hand-worked tiny result (in a subprocess, where a crash fails that
   test only).  Values near the float maximum, +-inf and NaN: the fast
   result has NaN, +inf and -inf where the reference has them, maxima and
   indices exactly, averages and convolutions within derived bounds.
3. Zero sizes: N = 0, C = 0, H or W = 0 (with padding where the geometry
   allows it): the fast result is the reference's (shape, dtype, values), or
   both raise the same exception type.
4. Views: strided, transposed-then-sliced, the other layout's memory (an
   NCHW buffer seen as NHWC and vice versa), negative-stride, misaligned,
   read-only and Fortran-order inputs (every array argument) give bitwise
   the contiguous input's result.
5. ``out=`` (max_pool2d, avg_pool2d, conv2d): the result lands in ``out``,
   which is returned; a misaligned ``out`` is fine; a wrong shape (the floor
   shape where ceil_mode rounds up) or dtype, a non-contiguous, Fortran or
   read-only ``out``, or one sharing memory with an input is refused with
   ``out`` untouched.
6. A seeded fuzz (hypothesis, ``derandomize``) over the option combinations,
   fast against reference: maxima and indices exactly, averages and Lp
   within derived bounds, integer-valued convolutions exactly; an invalid
   combination raises the same exception type in both.
7. Regressions for the bugs these tests found (a crash on an empty plane, a
   huge padded copy, unclear messages, fast and reference disagreeing near
   the float maximum), all fixed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convpool
from convpool import reference
from _helpers import (
    assert_bitwise_equal,
    assert_conv_close,
    assert_guard_intact,
    avg_pool_tolerance,
    case_id,
    conv_tolerance,
    gamma,
    guarded_out,
    strided_copy,
    to_layout,
)

F32, F64 = np.float32, np.float64
DTYPES = (F32, F64)
LAYOUTS = ("channels_last", "channels_first")
MODES = ("zeros", "reflect", "replicate", "circular")
IMPLS = [pytest.param(convpool, id="fast"), pytest.param(reference, id="ref")]
HANG_GUARD_S = 10.0  # a hang guard only: every call below returns in milliseconds
# tools/sanitize.sh preloads ASan, which aborts on an impossible allocation.
SANITIZED = "libasan" in os.environ.get("LD_PRELOAD", "")
_SETTINGS = dict(deadline=None, database=None, print_blob=True,
                 suppress_health_check=list(HealthCheck))


# =========================================================================== helpers
def _ints(shape, dtype=F32, seed=0, bound=8):
    """Integers in [-bound, bound] over 4: exact in both dtypes, with ties."""
    rng = np.random.default_rng(seed)
    return (rng.integers(-bound, bound + 1, size=shape) / 4).astype(dtype)


def _pair(v):
    return (v, v) if np.ndim(v) == 0 else tuple(v)


def _as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def _snapshot(args):
    """The bytes of every array argument (``out`` aside)."""
    return {k: (v.dtype, v.shape, v.tobytes()) for k, v in args.items()
            if isinstance(v, np.ndarray) and k != "out"}


def _assert_unchanged(args, snap, cfg):
    for k, (dtype, shape, raw) in snap.items():
        v = args[k]
        assert (v.dtype, v.shape) == (dtype, shape) and v.tobytes() == raw, (
            f"{k} was modified by the call; {cfg}")


def _outcome(impl, fn, args):
    """("ok", tuple of results) or ("raised", the exception); 0/0 warnings silenced."""
    try:
        with np.errstate(all="ignore"):
            return "ok", _as_tuple(getattr(impl, fn)(**args))
    except Exception as err:  # noqa: BLE001 - the type is what is compared
        return "raised", err


def _assert_same_specials(fast, ref, cfg):
    """NaN, +inf and -inf exactly where the reference has them."""
    f = np.asarray(fast, F64)
    r = np.asarray(ref, F64)
    assert f.shape == r.shape, f"shape {f.shape} != {r.shape}; {cfg}"
    for name, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        a, b = test(f), test(r)
        if not np.array_equal(a, b):
            idx = tuple(int(i) for i in np.argwhere(a != b)[0])
            raise AssertionError(
                f"{name} positions differ in {int((a != b).sum())} of {r.size} elements; "
                f"first at {idx}: fast={f[idx]!r} ref={r[idx]!r}\n  config: {cfg}")


def _assert_exact(fast, ref, cfg, what="result"):
    """Same shape and dtype, equal values, NaN where the reference has NaN."""
    fast, ref = np.asarray(fast), np.asarray(ref)
    assert fast.dtype == ref.dtype, f"{what}: dtype {fast.dtype} != {ref.dtype}; {cfg}"
    assert fast.shape == ref.shape, f"{what}: shape {fast.shape} != {ref.shape}; {cfg}"
    same = (fast == ref) | (np.isnan(fast) & np.isnan(ref)) if fast.dtype.kind == "f" \
        else fast == ref
    if not same.all():
        idx = tuple(int(i) for i in np.argwhere(~same)[0])
        raise AssertionError(f"{what} differs in {int((~same).sum())} of {ref.size} elements; "
                             f"first at {idx}: fast={fast[idx]!r} ref={ref[idx]!r}\n  config: {cfg}")


def _assert_same_outcome(fast, ref, cfg):
    """Both raised the same type (ValueError or TypeError), or the results are the reference's."""
    (fk, fv), (rk, rv) = fast, ref
    if rk == "raised":
        assert isinstance(rv, (ValueError, TypeError)), f"the reference raised {rv!r}; {cfg}"
        assert fk == "raised", f"the reference raised {rv!r} but fast returned; {cfg}"
        assert type(fv) is type(rv), f"fast raised {fv!r}, the reference {rv!r}; {cfg}"
        return
    assert fk == "ok", f"fast raised {fv!r} where the reference returned; {cfg}"
    assert len(fv) == len(rv), cfg
    for i, (a, b) in enumerate(zip(fv, rv)):
        if b is None:
            assert a is None, cfg
            continue
        _assert_exact(a, b, cfg, what=f"result {i}")


def _gamma_array(n, dtype):
    """``gamma_n`` elementwise for an array of counts (see ``_helpers.gamma``)."""
    u = float(np.finfo(dtype).eps) / 2
    n = np.asarray(n, F64)
    assert (n * u < 0.5).all()
    return n * u / (1 - n * u)


def _adaptive_bounds(n, out):
    """PyTorch's adaptive windows on one axis: [floor(i n / out), ceil((i + 1) n / out))."""
    return [((i * n) // out, -((-(i + 1) * n) // out)) for i in range(out)]


def _hw(shape, fmt):
    return (shape[1], shape[2]) if fmt == "channels_last" else (shape[2], shape[3])


def _spatial_to_layout(a, fmt):
    """(OH, OW) per-window numbers shaped to broadcast against a result in ``fmt``."""
    return a[None, :, :, None] if fmt == "channels_last" else a[None, None, :, :]


def adaptive_avg_tolerance(x, y_shape, dtype, fmt):
    """Elementwise bound on ``|fast - ref|`` for adaptive_avg_pool2d (and the global average).

    Derivation.  Output (i, j) is ``s / m`` with ``s`` the sum of the ``m``
    cells of its window.  Any summation order costs ``gamma_{m-1} sum |x|``,
    the division ``u |s / m|``, so each implementation is within
    ``gamma_m * mean(|x|)`` of the exact mean (the reference sums in float64
    and rounds once to the dtype: within ``u |mean|`` plus far less).  Hence
    ``|fast - ref| <= 2 gamma_m mean(|x|)``, with ``mean(|x|)`` from the
    float64 reference (its own error absorbed by ``1 + gamma^{f64}``), plus
    ``4 * tiny`` for underflow.  ``m`` is each window's own cell count.
    """
    h, w = _hw(x.shape, fmt)
    oh, ow = _hw(y_shape, fmt)
    rows = np.array([b - a for a, b in _adaptive_bounds(h, oh)])
    cols = np.array([b - a for a, b in _adaptive_bounds(w, ow)])
    m = np.outer(rows, cols)
    with np.errstate(all="ignore"):
        mean_abs = reference.adaptive_avg_pool2d(np.abs(np.asarray(x, F64)), (oh, ow), fmt)
    mean_abs = mean_abs * (1 + gamma(int(m.max()) + 1, F64))
    return (2 * _spatial_to_layout(_gamma_array(m, dtype), fmt) * mean_abs
            + 4 * float(np.finfo(dtype).tiny))


def adaptive_avg_backward_tolerance(g, x, output_size, dtype, fmt):
    """Elementwise bound on ``|fast - ref|`` for adaptive_avg_pool2d_backward.

    Derivation.  ``grad_x[r, c]`` is the sum over the ``T`` windows holding
    (r, c) of ``g / m`` (``m`` the window's cells): each term costs one
    rounding, the sum of T terms ``gamma_{T-1}``, so each implementation is
    within ``gamma_{T+1} sum |g| / m`` of the exact value, and
    ``|fast - ref| <= 2 gamma_{T+1} * backward(|g|)`` (the float64 reference
    on ``|g|``).  ``T`` is bounded by the largest number of windows sharing a
    row times that sharing a column.
    """
    h, w = _hw(x.shape, fmt)
    oh, ow = _hw(g.shape, fmt)

    def coverage(n, out):
        count = np.zeros(n, int)
        for a, b in _adaptive_bounds(n, out):
            count[a:b] += 1
        return int(count.max())

    t = coverage(h, oh) * coverage(w, ow)
    with np.errstate(all="ignore"):
        mag = reference.adaptive_avg_pool2d_backward(np.abs(np.asarray(g, F64)),
                                                     np.asarray(x, F64), output_size, fmt)
    return (2 * gamma(t + 1, dtype) * mag * (1 + gamma(t + 1, F64))
            + 4 * float(np.finfo(dtype).tiny))


def avg_backward_tolerance(g, x, pool_size, dtype, **kw):
    """Elementwise bound on ``|fast - ref|`` for avg_pool2d_backward.

    Derivation.  ``grad_x`` at a cell is the sum over the windows holding it
    (at most ``KH * KW`` of them, as strides are >= 1) of ``g / d``, ``d`` the
    window's exact divisor.  A term costs at most two roundings (``g * (1/d)``
    or ``g / d``), the sum of ``T <= KH*KW`` terms ``gamma_{T-1}``: each
    implementation is within ``gamma_{KH*KW+1} sum |g| / d`` of the exact
    value, so ``|fast - ref| <= 2 gamma_{KH*KW+1} * backward(|g|)`` (the
    float64 reference on ``|g|``), plus ``4 * tiny``.
    """
    kh, kw_ = _pair(pool_size)
    with np.errstate(all="ignore"):
        mag = reference.avg_pool2d_backward(np.abs(np.asarray(g, F64)), np.asarray(x, F64),
                                            pool_size, **kw)
    taps = kh * kw_
    return (2 * gamma(taps + 1, dtype) * mag * (1 + gamma(taps + 1, F64))
            + 4 * float(np.finfo(dtype).tiny))


def lp_tolerance(ref, pool_size, dtype):
    """Elementwise bound on ``|fast - ref|`` for lp_pool2d with ``p >= 1`` on ``x >= 0``.

    Derivation.  ``y = (k/cells * sum of m <= k = KH*KW terms x**p) ** (1/p)``.
    The fast path: each ``x**p`` within 1 ulp (``<= 2u`` relative; exact on
    small integers), the sum of positive terms ``gamma_{m-1}``, the division
    by the cell count and the product by ``k`` one rounding each: the total
    is within ``gamma_{m+3}`` relative.  The power ``1/p <= 1`` scales that
    relative error by ``1/p`` and adds its own 1 ulp (2u): ``gamma_{m+5}``.
    The reference works in float64 and rounds once to the dtype (``u``), so
    ``|fast - ref| <= gamma_{k+6} |y|``, with ``|y| <= |ref| (1 + gamma_{k+6})``:
    ``gamma_{k+7} |ref|`` covers it.
    """
    kh, kw = _pair(pool_size)
    return gamma(kh * kw + 7, dtype) * np.abs(np.asarray(ref, F64)) + 4 * float(
        np.finfo(dtype).tiny)


def lp_backward_tolerance(g, x, p, pool_size, dtype, **kw):
    """Elementwise bound on ``|fast - ref|`` for lp_pool2d_backward, ``p >= 1``, ``x >= 0``.

    Derivation.  Each term reaching a cell is
    ``g * (1/p) * s**(1/p - 1) * k / cells * p * x**(p - 1)``: seven products
    or quotients and two powers (1 ulp each, 2u) cost ``gamma_{11}``; ``s`` is
    itself within ``gamma_{k+3}`` relative (see :func:`lp_tolerance`), and
    ``|1/p - 1| < 1`` keeps that below ``gamma_{k+3}`` in ``s**(1/p - 1)``.  Up to
    ``T <= k`` terms are summed (``gamma_{T-1}``).  With ``x >= 0`` all
    factors but ``g`` are non-negative, so the magnitudes add up to the
    float64 reference on ``|g|``: ``|fast - ref| <= 2 gamma_{2k+13} * backward(|g|)``.
    """
    kh, kw_ = _pair(pool_size)
    with np.errstate(all="ignore"):
        mag = reference.lp_pool2d_backward(np.abs(np.asarray(g, F64)), np.asarray(x, F64), p,
                                           pool_size, **kw)
    return 2 * gamma(2 * kh * kw_ + 13, dtype) * np.abs(mag) + 4 * float(np.finfo(dtype).tiny)


def _check_close(fast, ref, tol, cfg):
    _assert_same_specials(fast, ref, cfg)
    assert np.asarray(fast).dtype == np.asarray(ref).dtype, cfg
    assert_conv_close(fast, ref, tol, cfg)


# ================================================================== base calls
# One valid call per function (float32 NHWC, every new option away from its
# default); a bad-argument case overrides one argument of it.
X = _ints((2, 6, 7, 3))
XA = np.abs(X)
K = _ints((3, 3, 3, 4), seed=1)
B = _ints((4,), seed=2)


def _base_calls():
    b = {}
    b["max_pool2d"] = dict(x=X, pool_size=3, strides=2, padding=1, dilation_rate=(1, 2),
                           ceil_mode=True)
    shape = reference.max_pool2d(**b["max_pool2d"]).shape  # (2, 4, 3, 3)
    b["max_pool2d_backward"] = dict(grad_out=np.ones(shape, F32), **b["max_pool2d"])
    b["avg_pool2d"] = dict(x=X, pool_size=3, strides=2, padding=1, count_include_pad=True,
                           ceil_mode=True, divisor_override=5)
    shape = reference.avg_pool2d(**b["avg_pool2d"]).shape  # (2, 4, 4, 3)
    b["avg_pool2d_backward"] = dict(grad_out=np.ones(shape, F32), **b["avg_pool2d"])
    b["lp_pool2d"] = dict(x=XA, norm_type=2, pool_size=3, strides=2, ceil_mode=True)
    shape = reference.lp_pool2d(**b["lp_pool2d"]).shape  # (2, 3, 3, 3)
    b["lp_pool2d_backward"] = dict(grad_out=np.ones(shape, F32), **b["lp_pool2d"])
    for kind in ("avg", "max"):
        b[f"adaptive_{kind}_pool2d"] = dict(x=X, output_size=(4, 5))
        b[f"adaptive_{kind}_pool2d_backward"] = dict(grad_out=np.ones((2, 4, 5, 3), F32), x=X,
                                                      output_size=(4, 5))
        b[f"global_{kind}_pool2d"] = dict(x=X, keepdims=True)
        b[f"global_{kind}_pool2d_backward"] = dict(grad_out=np.ones((2, 1, 1, 3), F32), x=X,
                                                    keepdims=True)
    b["adaptive_max_pool2d"]["return_indices"] = True
    y, idx = reference.max_pool2d(X, 2, return_indices=True)  # indices into the 6x7 plane
    b["max_unpool2d"] = dict(x=y, indices=idx, pool_size=2, strides=2, padding=0,
                             output_size=(6, 7))
    b["conv2d"] = dict(x=X, kernel=K, bias=B, padding=1, padding_mode="reflect")
    b["conv2d_backward"] = dict(grad_out=np.ones((2, 6, 7, 4), F32), x=X, kernel=K, padding=1,
                                padding_mode="reflect")
    return b


BASE = _base_calls()
OUT_SHAPES = {fn: getattr(reference, fn)(**BASE[fn]).shape
              for fn in ("max_pool2d", "avg_pool2d", "conv2d")}
POOL_WINDOW_FNS = ("max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
                   "lp_pool2d", "lp_pool2d_backward")
ADAPTIVE_FNS = ("adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_avg_pool2d_backward",
                "adaptive_max_pool2d_backward")
GLOBAL_FNS = ("global_avg_pool2d", "global_max_pool2d", "global_avg_pool2d_backward",
              "global_max_pool2d_backward")
BACKWARD_FNS = tuple(fn for fn in BASE if fn.endswith("_backward"))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("fn", sorted(BASE))
def test_base_calls_are_valid(fn, impl):
    """Each bad-argument case below changes one argument of a call that works."""
    with np.errstate(all="ignore"):
        getattr(impl, fn)(**BASE[fn])


# ============================================================ 1. bad arguments
def _bad_cases():
    cases = []

    def bad(fn, cid, over, exc, pattern, marks=(), out=True):
        cases.append(pytest.param(fn, over, exc, pattern, out, id=f"{fn}-{cid}", marks=marks))

    x3 = r"x must be 4-D \(N, H, W, C\) for data_format='channels_last', got shape \(6, 7, 3\)"
    fmt = r"data_format must be 'channels_last' or 'channels_first', got 'NHWC'"
    int_pair = "must be an int or a pair of ints"
    for fn in POOL_WINDOW_FNS:
        bad(fn, "pool_size=0", dict(pool_size=0), ValueError, r"^pool_size must be positive, got 0$")
        bad(fn, "pool_size=3x-1", dict(pool_size=(3, -1)), ValueError,
            r"^pool_size must be positive, got \(3, -1\)$")
        bad(fn, "pool_size=True", dict(pool_size=True), TypeError,
            rf"^pool_size {int_pair}, got the bool True$")
        bad(fn, "pool_size=2.0", dict(pool_size=2.0), TypeError,
            rf"^pool_size {int_pair}, got 2.0 of type float$")
        bad(fn, "strides=0", dict(strides=0), ValueError, r"^strides must be positive, got 0$")
        bad(fn, "strides=True", dict(strides=True), TypeError,
            rf"^strides {int_pair}, got the bool True$")
        bad(fn, "strides=1x2x3", dict(strides=(1, 2, 3)), ValueError,
            rf"^strides {int_pair}, got \(1, 2, 3\) with 3 elements$")
        for v in (1, None, "yes"):
            bad(fn, f"ceil_mode={v!r}", dict(ceil_mode=v), TypeError,
                rf"^ceil_mode must be a bool, got {v!r}$")
        bad(fn, "x-3d", dict(x=X[0]), ValueError, x3)
        bad(fn, "x-complex", dict(x=X.astype(np.complex64)), TypeError,
            r"^x has dtype complex64, which convpool does not support")
        bad(fn, "x-object", dict(x=X.astype(object)), TypeError, r"^x has dtype object")
        bad(fn, "x-none", dict(x=None), TypeError, r"^x must be an array, got None$")
        bad(fn, "data_format", dict(data_format="NHWC"), ValueError, fmt)
        bad(fn, "pool-too-big", dict(pool_size=10), ValueError,
            r"^the window does not fit: the padded input is \(\d+, \d+\).*effective pool_size "
            r"is \(10, ")
    for fn in ("max_pool2d", "max_pool2d_backward"):
        bad(fn, "dilation=0", dict(dilation_rate=0), ValueError,
            r"^dilation_rate must be positive, got 0$")
        bad(fn, "dilation=1x-2", dict(dilation_rate=(1, -2)), ValueError,
            r"^dilation_rate must be positive, got \(1, -2\)$")
        bad(fn, "dilation=True", dict(dilation_rate=True), TypeError,
            rf"^dilation_rate {int_pair}, got the bool True$")
        bad(fn, "dilation=1.5", dict(dilation_rate=1.5), TypeError,
            rf"^dilation_rate {int_pair}, got 1.5 of type float$")
        bad(fn, "pad-exceeds-dilated-pool", dict(padding=5), ValueError,
            r"may not exceed the dilated pool_size \(3, 5\) minus one, \(2, 4\)")
        bad(fn, "window-between-cells", dict(pool_size=(1, 2), strides=1, dilation_rate=(1, 9),
                                             padding=((0, 0), (8, 8))),
            ValueError, r"^window 6 along W holds no input cell: its 2 taps 9 apart start at -2")
        bad(fn, "padding=True", dict(padding=True), TypeError,
            r"^padding must be 'valid', 'same', an int, a pair \(ph, pw\) or")
    for v in (1, "yes", None):
        bad("max_pool2d", f"return_indices={v!r}", dict(return_indices=v), TypeError,
            rf"^return_indices must be a bool, got {v!r}$")
    bad("max_pool2d", "return_indices-empty-plane",
        dict(x=np.zeros((2, 0, 7, 3), F32), pool_size=2, strides=1, padding=1, dilation_rate=1,
             return_indices=True),
        ValueError, r"^return_indices needs a non-empty input plane, got x shape \(2, 0, 7, 3\)",
        out=False)  # with an out= of another shape, the two check in other orders
    for fn in ("avg_pool2d", "avg_pool2d_backward"):
        for v, exc, text in ((0, ValueError, "got 0$"), (-1, ValueError, "got -1$"),
                             (1.5, TypeError, "got 1.5 of type float$"),
                             (True, TypeError, "got the bool True$"),
                             ("2", TypeError, "got '2' of type str$")):
            bad(fn, f"divisor_override={v!r}", dict(divisor_override=v), exc,
                rf"^divisor_override must be a positive int or None, {text}")
        bad(fn, "divisor_override=2**63", dict(divisor_override=2**63), ValueError,
            r"^divisor_override must be below 2\*\*63, got 9223372036854775808$")
        bad(fn, "count_include_pad=1", dict(count_include_pad=1), TypeError,
            r"^count_include_pad must be a bool, got 1$")
        bad(fn, "pad-exceeds-pool", dict(padding=3), ValueError,
            r"may not exceed the pool_size minus one, \(2, 2\)")
    for fn in ("lp_pool2d", "lp_pool2d_backward"):
        for v in (0, 0.0, np.inf, -np.inf, np.nan):
            bad(fn, f"norm_type={v!r}", dict(norm_type=v), ValueError,
                rf"^norm_type must be finite and non-zero, got {re.escape(repr(v))}$")
        for v in ("2", True, None, 2j):
            bad(fn, f"norm_type={v!r}", dict(norm_type=v), TypeError,
                rf"^norm_type must be a number, got {re.escape(repr(v))}$")
    for fn in ADAPTIVE_FNS:
        bad(fn, "output_size=0", dict(output_size=0), ValueError,
            r"^output_size must be positive, got 0$")
        bad(fn, "output_size=2x-1", dict(output_size=(2, -1)), ValueError,
            r"^output_size must be positive, got \(2, -1\)$")
        bad(fn, "output_size=None", dict(output_size=None), TypeError,
            r"^output_size must be an int or a pair of ints \(or None entries\), got None$")
        bad(fn, "output_size=True", dict(output_size=True), TypeError,
            rf"^output_size {int_pair}, got the bool True$")
        bad(fn, "output_size=1.5", dict(output_size=1.5), TypeError,
            rf"^output_size {int_pair}, got 1.5 of type float$")
        bad(fn, "output_size='2'", dict(output_size="2"), TypeError,
            rf"^output_size {int_pair}, got '2'$")
        bad(fn, "output_size=2x3x4", dict(output_size=(2, 3, 4)), ValueError,
            rf"^output_size {int_pair}, got \(2, 3, 4\) with 3 elements$")
        bad(fn, "output_size=2**40", dict(output_size=2**40), ValueError,
            r"^output_size \(1099511627776, 1099511627776\) is too large for an input of \(6, 7\)")
        bad(fn, "output_size=1x65537", dict(output_size=(1, 65537)), ValueError,
            r"^output_size \(1, 65537\) is too large for an input of \(6, 7\): an axis's output "
            r"may exceed its input only up to 65536")
        bad(fn, "x-H0", dict(x=np.zeros((2, 0, 7, 3), F32)), ValueError,
            rf"^{fn} needs H and W of at least 1, got x shape \(2, 0, 7, 3\) \(channels_last\)$")
        bad(fn, "x-3d", dict(x=X[0]), ValueError, x3)
        bad(fn, "x-complex", dict(x=X.astype(complex)), TypeError, r"^x has dtype complex128")
        bad(fn, "data_format", dict(data_format="NHWC"), ValueError, fmt)
    bad("adaptive_max_pool2d", "return_indices=1", dict(return_indices=1), TypeError,
        r"^return_indices must be a bool, got 1$")
    for fn in GLOBAL_FNS:
        for v in (1, None, "yes"):
            bad(fn, f"keepdims={v!r}", dict(keepdims=v), TypeError,
                rf"^keepdims must be a bool, got {v!r}$")
        bad(fn, "x-H0", dict(x=np.zeros((2, 0, 7, 3), F32)), ValueError,
            rf"^{fn} needs H and W of at least 1, got x shape \(2, 0, 7, 3\)")
        bad(fn, "x-W0", dict(x=np.zeros((2, 6, 0, 3), F32)), ValueError,
            rf"^{fn} needs H and W of at least 1, got x shape \(2, 6, 0, 3\)")
        bad(fn, "x-3d", dict(x=X[0]), ValueError, x3)
        bad(fn, "x-str", dict(x=X.astype(str)), TypeError, r"^x has dtype <U\d+, which")
        bad(fn, "data_format", dict(data_format="NHWC"), ValueError, fmt)
    u = BASE["max_unpool2d"]
    for cid, over, exc, pattern in (
        ("indices-shape", dict(indices=u["indices"][:, :2]), ValueError,
         r"^indices must have x's shape \(2, 3, 3, 3\), got \(2, 2, 3, 3\)$"),
        ("indices-float", dict(indices=u["indices"].astype(F64)), TypeError,
         r"^indices must be integers, got dtype float64$"),
        ("indices-bool", dict(indices=u["indices"] > 0), TypeError,
         r"^indices must be integers, got dtype bool$"),
        ("indices-none", dict(indices=None), TypeError, r"^indices must be an array, got None$"),
        ("indices-past-plane", dict(indices=u["indices"] + 42), ValueError,
         r"^indices must lie in \[0, 42\) \(the output plane \(6, 7\)\), got values from \d+ to"),
        ("indices-negative", dict(indices=u["indices"] - 100), ValueError,
         r"^indices must lie in \[0, 42\) \(the output plane \(6, 7\)\), got values from -\d+ to"),
        ("indices-past-default-plane", dict(indices=np.full(u["indices"].shape, 40),
                                            output_size=None), ValueError,
         (r"^indices must lie in \[0, 36\) \(the output plane \(6, 6\)\), got values from 40 "
          r"to 40$")),
        ("pool_size=0", dict(pool_size=0), ValueError, r"^pool_size must be positive, got 0$"),
        ("pool_size=True", dict(pool_size=True), TypeError,
         rf"^pool_size {int_pair}, got the bool True$"),
        ("strides=0", dict(strides=0), ValueError, r"^strides must be positive, got 0$"),
        ("padding=-1", dict(padding=-1), ValueError, r"^padding must be >= 0, got -1$"),
        ("padding='same'", dict(padding="same"), TypeError, rf"^padding {int_pair}, got 'same'$"),
        ("padding=True", dict(padding=True), TypeError, rf"^padding {int_pair}, got the bool True$"),
        ("padding-empties-output", dict(padding=5, output_size=None), ValueError,
         r"^max_unpool2d's output would be empty: \(-4, -4\) for input \(3, 3\)"),
        ("output_size-out-of-reach", dict(output_size=(9, 6)), ValueError,
         (r"^output_size \(9, 6\) must lie strictly within the stride \(2, 2\) of the default "
          r"size \(6, 6\) on each axis \(axis 0 is 9\)$")),
        ("output_size=0", dict(output_size=0), ValueError, r"^output_size must be positive, got 0$"),
        ("output_size-None-entry", dict(output_size=(None, 6)), TypeError,
         rf"^output_size {int_pair}, got None of type NoneType$"),
        ("x-H0", dict(x=np.zeros((2, 0, 3, 3), F32), indices=np.zeros((2, 0, 3, 3), np.int64)),
         ValueError, r"^max_unpool2d needs H and W of at least 1, got x shape \(2, 0, 3, 3\)"),
        ("x-3d", dict(x=u["x"][0]), ValueError, r"^x must be 4-D \(N, H, W, C\)"),
        ("x-complex", dict(x=u["x"].astype(complex)), TypeError, r"^x has dtype complex128"),
        ("data_format", dict(data_format="NHWC"), ValueError, fmt),
    ):
        bad("max_unpool2d", cid, over, exc, pattern)
    mode_list = r"^padding_mode must be one of 'zeros', 'reflect', 'replicate', 'circular', got "
    for fn in ("conv2d", "conv2d_backward"):
        for v in ("mirror", None, 0, b"reflect", "wrap"):
            bad(fn, f"padding_mode={v!r}", dict(padding_mode=v), ValueError,
                mode_list + re.escape(repr(v)) + "$")
        bad(fn, "reflect-pad=H", dict(padding=((6, 0), (1, 1))), ValueError,
            r"^padding_mode='reflect' needs each pad smaller than the input along its axis: H is 6 "
            r"but the padding resolves to \(6, 0\) there")
        bad(fn, "reflect-pad=W", dict(padding=((1, 1), (0, 7))), ValueError,
            r"^padding_mode='reflect' needs each pad smaller than the input along its axis: W is 7 "
            r"but the padding resolves to \(0, 7\) there")
        bad(fn, "reflect-same-13x3", dict(kernel=_ints((13, 3, 3, 4)), padding="same"), ValueError,
            r"^padding_mode='reflect' needs each pad smaller.*H is 6 but the padding resolves to "
            r"\(6, 6\)")
        bad(fn, "circular-pad=H+1", dict(padding=((7, 0), (1, 1)), padding_mode="circular"),
            ValueError, r"^padding_mode='circular' needs each pad at most the input along its "
                        r"axis: H is 6 but the padding resolves to \(7, 0\) there")
        bad(fn, "replicate-H0", dict(x=np.zeros((2, 0, 7, 3), F32), padding=2,
                                     padding_mode="replicate"),
            ValueError, r"^padding_mode='replicate' has no edge pixel to repeat: H is 0")
        bad(fn, "reflect-one-row", dict(x=X[:, :1], padding=1), ValueError,
            r"^padding_mode='reflect' needs each pad smaller.*H is 1")
        bad(fn, "groups=True", dict(groups=True), TypeError,
            r"^groups must be an int, got the bool True$")
        bad(fn, "x-complex", dict(x=X.astype(np.complex64)), TypeError, r"^x has dtype complex64")
        bad(fn, "kernel-f64", dict(kernel=K.astype(F64)), TypeError,
            r"^kernel has dtype float64 but the input is computed in float32")
    bad("conv2d", "bias-short", dict(bias=B[:3]), ValueError,
        r"^bias must have shape \(C_out,\) = \(4,\), got \(3,\)")
    bad("conv2d", "activation='tanh'", dict(activation="tanh"), ValueError,
        r"^activation must be None, 'linear' or 'relu', got 'tanh'$")
    bad("conv2d_backward", "relu-without-output", dict(activation="relu"), ValueError,
        r"^activation='relu' needs output=, the forward call's result$")
    bad("conv2d_backward", "output-without-relu", dict(output=np.ones((2, 6, 7, 4), F32)),
        ValueError, r"^output is used with activation='relu' only; got activation=None$")
    bad("conv2d_backward", "output-shape", dict(activation="relu", output=np.ones((2, 1, 7, 4), F32)),
        ValueError, r"^output must have the forward output's shape \(2, 6, 7, 4\).*got \(2, 1, 7, 4\)$")
    for fn in BACKWARD_FNS:
        g = BASE[fn]["grad_out"]
        want = re.escape(str(g.shape))
        wrong = g.shape[:-1] + (g.shape[-1] + 1,)
        bad(fn, "grad_out-shape", dict(grad_out=np.ones(wrong, F32)), ValueError,
            rf"^grad_out must have the forward output's shape {want}.*got {re.escape(str(wrong))}$")
        bad(fn, "grad_out-f64", dict(grad_out=g.astype(F64)), TypeError,
            r"^grad_out has dtype float64 but the input is computed in float32")
        bad(fn, "grad_out-complex", dict(grad_out=g.astype(np.complex64)), TypeError,
            r"^grad_out has dtype complex64, which convpool does not support$")
        bad(fn, "grad_out-none", dict(grad_out=None), TypeError,
            r"^grad_out must be an array, got None$")
    # the ceil_mode shape rule: the floor-mode shape is the wrong one
    bad("max_pool2d_backward", "grad_out-floor-shape", dict(grad_out=np.ones((2, 3, 3, 3), F32)),
        ValueError, r"^grad_out must have the forward output's shape \(2, 4, 3, 3\)")
    bad("avg_pool2d_backward", "grad_out-floor-shape", dict(grad_out=np.ones((2, 3, 3, 3), F32)),
        ValueError, r"^grad_out must have the forward output's shape \(2, 4, 4, 3\)")
    bad("global_avg_pool2d_backward", "grad_out-not-keepdims", dict(grad_out=np.ones((2, 3), F32)),
        ValueError, r"^grad_out must have the forward output's shape \(2, 1, 1, 3\), got \(2, 3\)$")
    return cases


BAD_CASES = _bad_cases()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("fn, over, exc, pattern, with_out", BAD_CASES)
def test_bad_argument_is_refused_before_any_work(fn, over, exc, pattern, with_out, impl):
    """One bad argument in an otherwise valid call: the exception type and the
    message (which names the argument), from the fast function and the
    reference alike; no input array changed, and ``out=`` (where taken)
    still all NaN, every byte, including its guard cells."""
    args = {**BASE[fn], **over}
    snap = _snapshot(args)
    gout = None
    if fn in OUT_SHAPES and with_out:
        gout = guarded_out(OUT_SHAPES[fn], F32)
        args["out"] = gout.view
    with pytest.raises(exc, match=pattern):
        getattr(impl, fn)(**args)
    _assert_unchanged(args, snap, (fn, over))
    if gout is not None:
        assert np.isnan(gout.buffer).all(), "out= was written by a call that raised"
        assert_guard_intact(gout, "out")


def test_bad_case_table_covers_every_function():
    names = {p.values[0] for p in BAD_CASES}
    assert names == set(BASE), sorted(set(BASE) - names)


# ================================================================ 2. huge values
HUGE = {"2**62": 2**62, "2**63-1": 2**63 - 1, "2**63": 2**63, "2**64": 2**64, "10**30": 10**30}
# The names a huge-value message must mention (one of them): the argument, or
# the output it makes too large.
HUGE_NAMES = (r"pool_size|strides|padding|dilation_rate|output_size|divisor_override|norm_type|"
              r"kernel size|output")


def _huge_cases():
    cases = []

    def add(fn, cid, over, marks=()):
        cases.append(pytest.param(fn, over, id=f"{fn}-{cid}", marks=marks))

    for tag, v in HUGE.items():
        for fn in POOL_WINDOW_FNS:
            add(fn, f"pool_size={tag}", dict(pool_size=v))
            add(fn, f"strides={tag}", dict(strides=v))
            add(fn, f"strides=1x{tag}", dict(strides=(1, v)))
            if not fn.startswith("lp"):
                # a window made to fit by its padding: the padded width is past 2**62
                add(fn, f"pool_size=2x{tag}-padded", dict(pool_size=(2, v), strides=(1, v),
                                                          padding=((1, 1), (v - 1, v - 1))))
                add(fn, f"padding={tag}", dict(padding=v))
        for fn in ("max_pool2d", "max_pool2d_backward"):
            add(fn, f"dilation={tag}", dict(dilation_rate=v))
            add(fn, f"dilation=1x{tag}-padded", dict(dilation_rate=(1, v), strides=(1, v),
                                                     padding=((1, 1), (v, v))))
        for fn in ADAPTIVE_FNS:
            add(fn, f"output_size={tag}", dict(output_size=v))
            add(fn, f"output_size=1x{tag}", dict(output_size=(1, v)))
        add("max_unpool2d", f"output_size={tag}x7", dict(output_size=(v, 7)))
        add("max_unpool2d", f"pool_size={tag}", dict(pool_size=v, output_size=None))
        add("max_unpool2d", f"strides={tag}", dict(strides=v, output_size=None))
        for fn in ("conv2d", "conv2d_backward"):
            for mode in MODES:
                add(fn, f"padding={tag}-{mode}", dict(padding=v, padding_mode=mode))
            add(fn, f"strides={tag}", dict(strides=v))
            add(fn, f"dilation={tag}", dict(dilation_rate=v))
            add(fn, f"dilation=1x{tag}-padded-replicate",
                dict(dilation_rate=(1, v), padding=((1, 1), (v, v)), padding_mode="replicate"))
    for tag, v in (("2**63", 2**63), ("2**64", 2**64), ("10**30", 10**30)):
        for fn in ("avg_pool2d", "avg_pool2d_backward"):
            add(fn, f"divisor_override={tag}", dict(divisor_override=v))
    for fn in ("lp_pool2d", "lp_pool2d_backward"):
        add(fn, "norm_type=10**400", dict(norm_type=10**400))
    return cases


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("fn, over", _huge_cases())
def test_huge_arguments_are_a_prompt_value_error(fn, over, impl):
    """A size, stride, pad, dilation, divisor or adaptive size near or past 2**62:
    a ValueError naming it (never an OverflowError, a MemoryError from a huge
    allocation, or a hang), inputs untouched."""
    args = {**BASE[fn], **over}
    snap = _snapshot(args)
    start = time.monotonic()
    try:
        with pytest.raises(ValueError) as info:
            getattr(impl, fn)(**args)
    finally:
        elapsed = time.monotonic() - start
    assert elapsed < HANG_GUARD_S, f"{elapsed:.1f} s to refuse {over}"
    assert re.search(HUGE_NAMES, str(info.value)), f"the message names nothing: {info.value}"
    _assert_unchanged(args, snap, over)


# Results past 2**63 bytes from small inputs, each call valid but for that size.
_K61 = 2**61
_ONE = np.ones((1, 1, 1, 2), F32)
BIG_OUTPUTS = {
    "max_pool2d-ceil": ("max_pool2d", dict(x=_ONE, pool_size=(2, _K61), strides=1, ceil_mode=True,
                                           padding=((1, 1), (_K61 - 1, _K61 - 1)))),
    "max_pool2d-indices": ("max_pool2d", dict(x=_ONE, pool_size=(2, _K61), strides=1,
                                              return_indices=True,
                                              padding=((1, 1), (_K61 - 1, _K61 - 1)))),
    "avg_pool2d-divisor": ("avg_pool2d", dict(x=_ONE, pool_size=(2, _K61), strides=1,
                                              divisor_override=2,
                                              padding=((1, 1), (_K61 - 1, _K61 - 1)))),
    "conv2d-replicate": ("conv2d", dict(x=_ONE, kernel=np.ones((1, 1, 2, 1), F32),
                                        padding=((0, 0), (_K61 - 1, _K61 - 1)),
                                        padding_mode="replicate")),
    "max_unpool2d": ("max_unpool2d", dict(x=_ONE, indices=np.zeros((1, 1, 1, 2), np.int64),
                                          pool_size=(2, _K61))),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", sorted(BIG_OUTPUTS))
def test_outputs_past_the_64_bit_range_are_refused_by_name(case, impl):
    """Valid arguments whose result would take more than 2**63 bytes: a prompt
    ValueError that says the output is too large (as conv2d_transpose's
    'too large for 64-bit indexing: output ...'), not NumPy's allocator error."""
    fn, args = BIG_OUTPUTS[case]
    start = time.monotonic()
    with pytest.raises(ValueError) as info:
        getattr(impl, fn)(**args)
    assert time.monotonic() - start < HANG_GUARD_S
    assert re.search(HUGE_NAMES, str(info.value)), f"the message names nothing: {info.value}"


def _run_python(code, timeout=120):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, check=False)


def _json_result(proc):
    how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
           else f"exit status {proc.returncode}")
    assert proc.returncode == 0, f"the subprocess ended with {how}\nstderr: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


_HUGE_WINDOW_SCRIPT = """
import json, numpy as np, convpool
x = np.array([[[[1.0, 2.0]]]], np.float32)  # (1, 1, 1, 2): one real cell per channel
k = {k}
fit = dict(pool_size=(2, k), padding=((1, 1), (k - 1, k - 1)))  # every window holds the cell
ceil = dict(fit, strides=(1, k), ceil_mode=True)  # 2 rows, 1 column (the 2nd would start in the pad)
dil = dict(pool_size=(2, 2), strides=(1, k), padding=((1, 1), (k, k)), dilation_rate=(1, k))
g = np.ones((1, 2, 1, 2), np.float32)
calls = {{
    "indices": lambda: convpool.max_pool2d(x, **fit, return_indices=True),
    "indices-ceil": lambda: convpool.max_pool2d(x, **ceil, return_indices=True),
    "max-ceil": lambda: convpool.max_pool2d(x, **ceil),
    "max-backward-ceil": lambda: convpool.max_pool2d_backward(g, x, **ceil),
    "avg-ceil-divisor": lambda: convpool.avg_pool2d(x, **ceil, divisor_override=3),
    "avg-ceil-include-pad": lambda: convpool.avg_pool2d(x, **ceil, count_include_pad=True),
    "avg-backward-ceil-divisor": lambda: convpool.avg_pool2d_backward(g, x, **ceil,
                                                                      divisor_override=4),
    "avg-backward-ceil-include-pad": lambda: convpool.avg_pool2d_backward(
        g, x, **ceil, count_include_pad=True),
    "dilated-indices": lambda: convpool.max_pool2d(x, **dil, return_indices=True),
    "dilated-backward": lambda: convpool.max_pool2d_backward(np.ones((1, 2, 2, 2), np.float32),
                                                             x, **dil),
}}
res = {{}}
for name, call in calls.items():
    try:
        r = call()
        r = r if isinstance(r, tuple) else (r,)
        res[name] = [[list(a.shape), np.asarray(a, np.float64).ravel().tolist()] for a in r]
    except (ValueError, MemoryError) as err:
        res[name] = [type(err).__name__, str(err)]
print(json.dumps(res))
"""


def _huge_window_expected(k):
    """Each call's result, worked by hand: every window holds the one real cell
    (values 1 and 2), so maxima are x, indices 0, a window sum is x; the
    divisor counting the padded input is 2 rows times k columns."""
    x = [1.0, 2.0]
    return {
        "indices": [[[1, 1, 1, 2], x], [[1, 1, 1, 2], [0.0, 0.0]]],
        "indices-ceil": [[[1, 2, 1, 2], x * 2], [[1, 2, 1, 2], [0.0] * 4]],
        "max-ceil": [[[1, 2, 1, 2], x * 2]],
        "max-backward-ceil": [[[1, 1, 1, 2], [2.0, 2.0]]],  # both windows pick the cell
        "avg-ceil-divisor": [[[1, 2, 1, 2], [float(np.float32(v / 3)) for v in x] * 2]],
        "avg-ceil-include-pad": [[[1, 2, 1, 2], [v / (2 * k) for v in x] * 2]],
        "avg-backward-ceil-divisor": [[[1, 1, 1, 2], [0.5, 0.5]]],
        "avg-backward-ceil-include-pad": [[[1, 1, 1, 2], [2 / (2 * k)] * 2]],
        "dilated-indices": [[[1, 2, 2, 2], x * 4], [[1, 2, 2, 2], [0.0] * 8]],
        "dilated-backward": [[[1, 1, 1, 2], [4.0, 4.0]]],  # 4 windows, each picks the cell
    }


@pytest.mark.parametrize("k", [2**40, 2**60, 2**61], ids=["2**40", "2**60", "2**61"])
def test_huge_windows_fitted_by_padding_give_the_tiny_result(k):
    """Windows of k = 2**40 .. 2**61 columns over a 1x1 input, made to fit by
    their padding, with ceil_mode, indices, divisor_override, count_include_pad
    and dilation (taps k apart): the hand-worked result (k a power of two,
    so every average is exact), or a ValueError, or the workspace cap's
    MemoryError (which says so) -- never NumPy's allocator, a crash or a hang.
    In a subprocess: a crash fails this test only."""
    start = time.monotonic()
    got = _json_result(_run_python(_HUGE_WINDOW_SCRIPT.format(k=k)))
    assert time.monotonic() - start < 60, "a hang guard"
    for name, want in _huge_window_expected(k).items():
        value = got[name]
        if value[0] == "ValueError":
            continue
        if value[0] == "MemoryError":
            assert "workspace" in value[1], f"{name}: {value[1]}"
            continue
        assert value == want, f"k={k} {name}: got {value}, want {want}"


# ------------------------------------------------ float extremes, inf and NaN
def _extreme_x(rng, shape, dtype):
    """NHWC data of 3 channels, small integers over 4, with +big cells in channel
    0, -big cells in channel 1, and NaN, +inf, -inf in channel 2 at the tails
    (first / last row and column).  ``big`` is 0.75 of the float maximum: one
    fits, the sum of two of one sign overflows in any order."""
    big = dtype(0.75) * np.finfo(dtype).max
    x = _ints(shape, dtype, seed=int(rng.integers(2**31)))
    n, h, w, c = shape
    assert c == 3
    x[..., 0][rng.random((n, h, w)) < 0.25] = big
    x[..., 1][rng.random((n, h, w)) < 0.25] = -big
    x[0, 0, w - 1, 2] = np.nan
    x[0, h - 1, 0, 2] = np.inf
    x[-1, h // 2, w // 2, 2] = -np.inf
    x[-1, h - 1, w - 1, 2] = np.nan
    return x


def _extreme_cases():
    """(id, function, its non-array arguments, data kind); ``x`` and ``grad_out``
    are made per dtype and layout."""
    pool = dict(pool_size=3, strides=2, padding=1, ceil_mode=True)
    return {
        "max_pool2d-ceil-dil-indices": ("max_pool2d", dict(pool, dilation_rate=(2, 1),
                                                           return_indices=True), "exact"),
        "max_pool2d_backward-ceil-dil": ("max_pool2d_backward", dict(pool, dilation_rate=(1, 2)),
                                         "exact"),
        "avg_pool2d-ceil-cip": ("avg_pool2d", dict(pool, count_include_pad=True), "avg"),
        "avg_pool2d-ceil-divisor": ("avg_pool2d", dict(pool, divisor_override=7), "avg"),
        "avg_pool2d_backward-ceil-divisor": ("avg_pool2d_backward", dict(pool, divisor_override=2),
                                             "avg_backward"),
        "lp_pool2d-p2": ("lp_pool2d", dict(norm_type=2, pool_size=2, strides=1, ceil_mode=True),
                         "lp"),
        "lp_pool2d_backward-p2": ("lp_pool2d_backward", dict(norm_type=2, pool_size=2, strides=1,
                                                             ceil_mode=True), "lp_backward"),
        "adaptive_avg_pool2d-4x5": ("adaptive_avg_pool2d", dict(output_size=(4, 5)), "adaptive"),
        "adaptive_avg_pool2d-3x7": ("adaptive_avg_pool2d", dict(output_size=(3, 7)), "adaptive"),
        "adaptive_max_pool2d-4x5-indices": ("adaptive_max_pool2d",
                                            dict(output_size=(4, 5), return_indices=True), "exact"),
        "adaptive_avg_pool2d_backward-4x5": ("adaptive_avg_pool2d_backward",
                                             dict(output_size=(4, 5)), "adaptive_backward"),
        "adaptive_max_pool2d_backward-4x5": ("adaptive_max_pool2d_backward",
                                             dict(output_size=(4, 5)), "exact"),
        "global_avg_pool2d": ("global_avg_pool2d", dict(keepdims=True), "adaptive"),
        "global_max_pool2d": ("global_max_pool2d", dict(keepdims=False), "exact"),
        "global_avg_pool2d_backward": ("global_avg_pool2d_backward", dict(keepdims=True),
                                       "adaptive_backward"),
        "global_max_pool2d_backward": ("global_max_pool2d_backward", dict(keepdims=False),
                                       "exact"),
        "max_unpool2d": ("max_unpool2d", dict(pool_size=2, strides=2, padding=0,
                                              output_size=(6, 7)), "exact"),
    }


EXTREME = _extreme_cases()
def _extreme_param(cid, dtype, fmt):
    return pytest.param(cid, dtype, fmt, id=f"{cid}-" + case_id(dtype=dtype, data_format=fmt))


@pytest.mark.parametrize("cid, dtype, fmt", [_extreme_param(c, d, f) for c in sorted(EXTREME)
                                             for d in DTYPES for f in LAYOUTS])
def test_float_extremes_inf_and_nan_propagate_as_the_reference(cid, dtype, fmt, rng):
    """Values of 0.75 * the float maximum (one per window fits, two overflow in
    any summation order, all of one sign per channel so the order cannot
    matter), +-inf and NaN at the tails: NaN, +inf and -inf exactly where the
    reference (same dtype) has them; maxima, winners' gradients and indices
    exactly; averages within the derived bounds.  For Lp the big value is
    one whose square overflows float32 but not float64 (1e20)."""
    fn, kw, kind = EXTREME[cid]
    kw = dict(kw, data_format=fmt)
    shape = (2, 6, 7, 3)
    if kind.startswith("lp"):
        x = np.abs(_ints(shape, dtype))
        big = dtype(1e20) if dtype is F32 else dtype(1e160)
        x[..., 0][rng.random(shape[:3]) < 0.25] = big
        x[0, 0, 6, 2], x[1, 5, 0, 2] = np.nan, np.inf
    else:
        x = _extreme_x(rng, shape, dtype)
    if fn == "max_unpool2d":
        y, idx = reference.max_pool2d(x, 2, data_format="channels_last", return_indices=True)
        args = dict(x=to_layout(y, fmt), indices=to_layout(idx, fmt), **kw)
    else:
        args = dict(x=to_layout(x, fmt), **kw)
    if fn.endswith("_backward"):
        fwd = getattr(reference, fn[: -len("_backward")])
        with np.errstate(all="ignore"):
            y_shape = np.shape(_as_tuple(fwd(**args))[0])
        if kind == "lp_backward":
            g = _ints(y_shape, dtype, seed=3)
        else:  # grad_out with same-sign big values
            g = np.abs(_ints(y_shape, dtype, seed=3))
            g[rng.random(y_shape) < 0.3] = dtype(0.75) * np.finfo(dtype).max
            g.flat[0] = dtype(0.75) * np.finfo(dtype).max
        args["grad_out"] = g
    with np.errstate(all="ignore"):
        got = _as_tuple(getattr(convpool, fn)(**args))
        want = _as_tuple(getattr(reference, fn)(**args))
    cfg = (cid, case_id(dtype=dtype, data_format=fmt))
    w0 = np.asarray(want[0], F64)
    assert not np.isfinite(w0).all() or np.abs(w0).max() > np.finfo(dtype).max / 1e3, (
        f"a vacuous case: neither specials nor values near the maximum; {cfg}")
    if kind == "exact":
        for i, (a, b) in enumerate(zip(got, want)):
            _assert_exact(a, b, cfg, what=f"result {i}")
        return
    a, b = got[0], want[0]
    with np.errstate(all="ignore"):
        if kind == "avg":
            tol = avg_pool_tolerance(args["x"], kw["pool_size"], dtype,
                                     **{k: v for k, v in kw.items() if k != "pool_size"})
        elif kind == "avg_backward":
            tol = avg_backward_tolerance(args["grad_out"], args["x"], kw["pool_size"], dtype,
                                         **{k: v for k, v in kw.items() if k != "pool_size"})
        elif kind == "adaptive":
            tol = adaptive_avg_tolerance(args["x"], b.shape, dtype, fmt)
        elif kind == "adaptive_backward":
            size = kw.get("output_size", 1)
            g = args["grad_out"]
            if fn.startswith("global"):
                g = g.reshape(b.shape[0], -1)
                g = g.reshape((b.shape[0], 1, 1, -1) if fmt == "channels_last"
                              else (b.shape[0], -1, 1, 1))
            tol = adaptive_avg_backward_tolerance(g, args["x"], size, dtype, fmt)
        elif kind == "lp":
            tol = lp_tolerance(b, kw["pool_size"], dtype)
        else:
            tol = lp_backward_tolerance(args["grad_out"], args["x"], kw["norm_type"],
                                        kw["pool_size"], dtype, strides=kw["strides"],
                                        ceil_mode=True, data_format=fmt)
    _check_close(a, b, tol, cfg)


@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("groups", [1, 3], ids=["g1", "depthwise"])
def test_conv2d_padding_modes_extremes_inf_and_nan(groups, mode, dtype, fmt, rng):
    """conv2d with each padding_mode, dense and depthwise, strided, dilated and
    unevenly padded.  (a) NaN, +inf and -inf at the borders (the cells that
    reflect / replicate / circular copy into the padding): NaN and +-inf
    exactly where the reference has them, finite values within the derived
    bound (``_helpers.conv_tolerance``, given the padding_mode).  (b) Cells of
    0.75 * the float maximum under weights in [1, 1.25] (one product fits, two
    overflow whatever the order; no negative big term): +inf where the
    reference has it, the rest within the bound.  (c) The backward pass on
    finite data within the derived bound of its sums."""
    shape = (2, 6, 7, 3)
    cg = 3 // groups
    oc = 3 if groups == 3 else 4
    kernel = rng.standard_normal((3, 3, cg, oc)).astype(dtype)
    kernel[:, :, 0, :oc // groups] = rng.uniform(1.0, 1.25, (3, 3, oc // groups)).astype(dtype)
    bias = rng.standard_normal(oc).astype(dtype)
    kw = dict(strides=(1, 2), padding=((2, 1), (1, 2)), dilation_rate=(2, 1), groups=groups,
              data_format=fmt, padding_mode=mode)
    cfg = case_id(dtype=dtype, data_format=fmt, groups=groups, mode=mode)
    specials = rng.standard_normal(shape).astype(dtype)
    specials[0, 0, 0, 1], specials[0, 5, 6, 1] = np.nan, np.inf
    specials[1, 0, 6, 2], specials[1, 3, 0, 2] = -np.inf, np.inf
    bigs = rng.standard_normal(shape).astype(dtype)
    bigs[..., 0][rng.random(shape[:3]) < 0.2] = dtype(0.75) * np.finfo(dtype).max
    for what, x in (("specials", specials), ("bigs", bigs)):
        x = to_layout(x, fmt)
        with np.errstate(all="ignore"):
            got = convpool.conv2d(x, kernel, bias, **kw)
            want = reference.conv2d(x, kernel, bias, **kw)
            tol = conv_tolerance(x, kernel, dtype, bias=bias, **kw)
        assert np.isinf(want).any() and np.isfinite(want).any(), (what, cfg)
        assert what == "bigs" or np.isnan(want).any(), (what, cfg)
        _check_close(got, want, tol, (what, cfg))
    xf = to_layout(rng.standard_normal(shape).astype(dtype), fmt)
    g = rng.standard_normal(got.shape).astype(dtype)
    fast = convpool.conv2d_backward(g, xf, kernel, **kw)
    slow = reference.conv2d_backward(g.astype(F64), xf.astype(F64), kernel.astype(F64), **kw)
    mag = reference.conv2d_backward(np.abs(g.astype(F64)), np.abs(xf.astype(F64)),
                                    np.abs(kernel.astype(F64)), **kw)
    # Terms per element: grad_x, 9 taps x C_out for each padded cell folded
    # onto the pixel (a pixel is the source of at most (1 + 3) x (1 + 3) cells
    # of the padded input here); grad_kernel and grad_bias, one per output
    # pixel (N * OH * OW).  Any order of T terms is within gamma_T of the sum
    # of |terms| (Higham 3.1), both sides: 2 gamma_{T+1} * mag.
    pixels = got.shape[0] * int(np.prod(_hw(got.shape, fmt)))
    for name, a, b, m, t in zip(("grad_x", "grad_kernel", "grad_bias"), fast, slow, mag,
                                (9 * oc * 16, pixels, pixels)):
        assert a.dtype == dtype and a.shape == b.shape, (name, cfg)
        assert_conv_close(a, b, 2 * gamma(t + 1, dtype) * m + 4 * float(np.finfo(dtype).tiny),
                          (name, cfg))


# ================================================================= 3. zero sizes
def _zero_cases():
    cases = []

    def add(cid, fn, **args):
        cases.append(pytest.param(fn, args, id=f"{fn}-{cid}"))

    shapes = {"N0": (0, 5, 6, 3), "C0": (2, 5, 6, 0), "H0": (2, 0, 6, 3), "W0": (2, 5, 0, 3),
              "H0W0": (2, 0, 0, 3)}
    for sid, shape in shapes.items():
        for fmt in LAYOUTS:
            x = to_layout(np.ones(shape, F32), fmt)
            tag = f"{sid}-{case_id(data_format=fmt)}"
            pool = dict(x=x, pool_size=2, strides=1, padding=1, data_format=fmt)
            for ceil in (False, True):
                add(f"{tag}-ceil{ceil:d}", "max_pool2d", **pool, ceil_mode=ceil)
                add(f"{tag}-ceil{ceil:d}-indices", "max_pool2d", **pool, ceil_mode=ceil,
                    return_indices=True)
                add(f"{tag}-ceil{ceil:d}-dil", "max_pool2d", **dict(pool, pool_size=3, padding=2),
                    ceil_mode=ceil, dilation_rate=2)
                for extra in (dict(), dict(count_include_pad=True), dict(divisor_override=3)):
                    name = "-".join(f"{k}" for k in extra) or "real"
                    add(f"{tag}-ceil{ceil:d}-{name}", "avg_pool2d", **pool, ceil_mode=ceil,
                        **extra)
                for fn, extra in (("max_pool2d", dict(dilation_rate=(1, 1))),
                                  ("avg_pool2d", dict(divisor_override=3))):
                    with np.errstate(all="ignore"):
                        y = getattr(reference, fn)(**pool, ceil_mode=ceil, **extra)
                    add(f"{tag}-ceil{ceil:d}", f"{fn}_backward", grad_out=np.ones(y.shape, F32),
                        **pool, ceil_mode=ceil, **extra)
            add(tag, "lp_pool2d", x=x, norm_type=2, pool_size=2, strides=1, ceil_mode=True,
                data_format=fmt)
            n, c = shape[0], shape[3]
            for size in ((3, 4), (2, 3)):  # windows overlapping, and dividing 6 columns
                add(f"{tag}-{size[0]}x{size[1]}", "adaptive_avg_pool2d", x=x, output_size=size,
                    data_format=fmt)
                add(f"{tag}-{size[0]}x{size[1]}", "adaptive_max_pool2d", x=x, output_size=size,
                    data_format=fmt, return_indices=True)
                g = to_layout(np.ones((n,) + size + (c,), F32), fmt)
                for kind in ("avg", "max"):
                    add(f"{tag}-{size[0]}x{size[1]}", f"adaptive_{kind}_pool2d_backward",
                        grad_out=g, x=x, output_size=size, data_format=fmt)
            for kind in ("avg", "max"):
                add(tag, f"global_{kind}_pool2d", x=x, keepdims=True, data_format=fmt)
                add(tag, f"global_{kind}_pool2d_backward", grad_out=np.ones((n, c), F32), x=x,
                    data_format=fmt)
            if sid in ("N0", "C0"):
                y, idx = reference.max_pool2d(x, 2, data_format=fmt, return_indices=True)
                add(tag, "max_unpool2d", x=y, indices=idx, pool_size=2, data_format=fmt)
            for mode in MODES:
                kernel = np.ones((3, 3, shape[3], 4), F32)
                conv = dict(x=x, kernel=kernel, padding=2, data_format=fmt, padding_mode=mode)
                add(f"{tag}-{mode}", "conv2d", **conv, bias=np.ones(4, F32))
                add(f"{tag}-{mode}-cout0", "conv2d", **dict(conv, kernel=kernel[..., :0]))
                if sid in ("H0", "W0", "H0W0") and mode == "zeros":
                    # stride 1 with grad_x crashes the interpreter (see
                    # test_regression_conv2d_backward_on_an_empty_plane); these do not
                    for extra in (dict(strides=2), dict(strides=(2, 1)), dict(input_grad=False)):
                        y = reference.conv2d(**conv, strides=extra.get("strides", 1))
                        add(f"{tag}-{mode}-" + "-".join(f"{k}={v}" for k, v in extra.items()),
                            "conv2d_backward", grad_out=np.ones(y.shape, F32), **conv, **extra)
                    continue
                with np.errstate(all="ignore"):
                    try:
                        y = reference.conv2d(**conv)
                    except ValueError:
                        y = np.ones((1, 1, 1, 1), F32)  # the call raises before grad_out is read
                add(f"{tag}-{mode}", "conv2d_backward", grad_out=np.ones(y.shape, F32), **conv)
    return cases


ZERO_CASES = _zero_cases()


@pytest.mark.parametrize("fn, args", ZERO_CASES)
def test_zero_sizes_match_the_reference(fn, args):
    """An empty batch, no channels, or no rows / columns (padding making windows
    of padding only: -inf for max, NaN or the divisor's 0 for averages, the bias
    for a conv): the fast result has the reference's shape, dtype and values,
    or both raise the same exception type (ValueError for an empty plane that
    indices, Lp, the adaptive and global pools or a reflect pad cannot use)."""
    snap = _snapshot(args)
    fast = _outcome(convpool, fn, args)
    ref = _outcome(reference, fn, args)
    _assert_same_outcome(fast, ref, (fn, {k: np.shape(v) if isinstance(v, np.ndarray) else v
                                          for k, v in args.items()}))
    _assert_unchanged(args, snap, fn)


def test_zero_size_table_reaches_both_outcomes():
    """Not vacuous: many cases compute, and some raise (in the reference)."""
    kinds = [_outcome(reference, p.values[0], p.values[1])[0] for p in ZERO_CASES]
    assert kinds.count("ok") > 200 and kinds.count("raised") > 30, (
        kinds.count("ok"), kinds.count("raised"))


_CONV_BACKWARD_EMPTY_PLANE = """
import json, numpy as np, convpool
x = np.ones({shape}, np.float32)
k = np.ones((3, 3, x.shape[3], 4), np.float32)
g = np.ones(convpool.conv2d(x, k, padding=2).shape, np.float32)
gx, gk, gb = convpool.conv2d_backward(g, x, k, padding=2)
print(json.dumps([list(gx.shape), gk.ravel().tolist(), gb.ravel().tolist()]))
"""


# Found by this file: a SIGFPE (the forward kernel run on an empty grad_x), fixed.
@pytest.mark.parametrize("shape", [(2, 0, 7, 3), (2, 7, 0, 3), (1, 0, 0, 1)],
                         ids=["H0", "W0", "H0W0"])
def test_regression_conv2d_backward_on_an_empty_plane(shape):
    """x of zero rows or columns padded by 2 under a 3x3 kernel: conv2d gives the
    padding-only output; its backward pass must give the reference's gradients
    (grad_x empty, grad_kernel 0, grad_bias the sum of grad_out), not crash.
    In a subprocess: the crash fails this test only."""
    got = _json_result(_run_python(_CONV_BACKWARD_EMPTY_PLANE.format(shape=shape)))
    x = np.ones(shape, F32)
    k = np.ones((3, 3, shape[3], 4), F32)
    g = np.ones(reference.conv2d(x, k, padding=2).shape, F32)
    gx, gk, gb = reference.conv2d_backward(g, x, k, padding=2)
    assert got == [list(gx.shape), gk.ravel().tolist(), gb.ravel().tolist()]


# ====================================================================== 4. views
def _view(a, kind):
    """``a`` (any rank) with another memory layout, equal to it."""
    a = np.asarray(a)
    if kind == "strided":
        return strided_copy(a, 3)
    if kind == "transposed-sliced":  # every axis reversed in memory, every other element
        big = np.zeros(tuple(2 * s + 1 for s in a.shape[::-1]), a.dtype)
        v = big.T[(slice(1, None, 2),) * a.ndim]
        v[...] = a
        return v
    if kind == "other-layout":  # 4-D: NCHW memory seen as NHWC and vice versa
        perm = (0, 3, 1, 2) if a.ndim == 4 else tuple(range(a.ndim))[::-1]
        return np.ascontiguousarray(a.transpose(perm)).transpose(np.argsort(perm))
    if kind == "negative":
        return np.flip(np.ascontiguousarray(np.flip(a)))
    if kind == "misaligned":
        buf = bytearray(a.nbytes + 1)
        v = np.frombuffer(buf, a.dtype, count=a.size, offset=1).reshape(a.shape)
        v[...] = a
        return v
    if kind == "read-only":
        v = a.copy()
        v.flags.writeable = False
        return v
    if kind == "fortran":
        return np.asfortranarray(a)
    raise AssertionError(kind)


VIEWS = ("strided", "transposed-sliced", "other-layout", "negative", "misaligned", "read-only",
         "fortran")


def _view_precondition(v, kind):
    if kind == "misaligned":
        return not v.flags.aligned
    if kind == "read-only":
        return not v.flags.writeable
    return not v.flags.c_contiguous


def _view_calls(dtype, fmt, rng):
    """{id: (function, arguments)}, x of shape (2, 7, 8, 5) with NaN and ties."""
    x_nhwc = np.round(rng.standard_normal((2, 7, 8, 5)) * 2).astype(dtype) / 2
    x_nhwc[0, 3, 4, 1] = np.nan
    x = to_layout(x_nhwc, fmt)
    xa = np.abs(x)
    calls = {}
    pool = dict(pool_size=3, strides=2, padding=1, ceil_mode=True, data_format=fmt)
    calls["max_pool2d-ceil-dil-indices"] = ("max_pool2d", dict(x=x, **pool, dilation_rate=(1, 2),
                                                               return_indices=True))
    calls["avg_pool2d-ceil-cip-divisor"] = ("avg_pool2d", dict(x=x, **pool, count_include_pad=True,
                                                               divisor_override=4))
    calls["lp_pool2d-p3"] = ("lp_pool2d", dict(x=xa, norm_type=3, pool_size=(2, 3), strides=2,
                                               ceil_mode=True, data_format=fmt))
    calls["adaptive_avg_pool2d-3x5"] = ("adaptive_avg_pool2d", dict(x=x, output_size=(3, 5),
                                                                    data_format=fmt))
    calls["adaptive_max_pool2d-3x5"] = ("adaptive_max_pool2d", dict(x=x, output_size=(3, 5),
                                                                    data_format=fmt,
                                                                    return_indices=True))
    calls["global_avg_pool2d"] = ("global_avg_pool2d", dict(x=x, data_format=fmt))
    calls["global_max_pool2d"] = ("global_max_pool2d", dict(x=x, keepdims=True, data_format=fmt))
    y, idx = convpool.max_pool2d(x, 2, data_format=fmt, return_indices=True)
    calls["max_unpool2d"] = ("max_unpool2d", dict(x=y, indices=idx, pool_size=2, output_size=(7, 8),
                                                  data_format=fmt))
    k = rng.standard_normal((3, 2, 5, 6)).astype(dtype)
    kd = rng.standard_normal((3, 3, 1, 5)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    for mode, kernel, groups in (("reflect", k, 1), ("replicate", k, 1), ("circular", kd, 5),
                                 ("zeros", kd, 5)):
        calls[f"conv2d-{mode}-g{groups}"] = ("conv2d", dict(
            x=x, kernel=kernel, bias=b if groups == 1 else None, strides=(1, 2), padding="same",
            dilation_rate=(2, 1), groups=groups, data_format=fmt, padding_mode=mode))
    for cid, (fn, args) in list(calls.items()):
        if fn in ("max_unpool2d",):
            continue
        fwd_args = {k_: v for k_, v in args.items() if k_ not in ("return_indices", "bias")}
        if fn == "conv2d":
            y = convpool.conv2d(**fwd_args)
            calls[f"conv2d_backward-{cid[7:]}"] = ("conv2d_backward", dict(
                grad_out=rng.standard_normal(y.shape).astype(dtype), **fwd_args))
            continue
        y = _as_tuple(getattr(convpool, fn)(**args))[0]
        g = np.round(rng.standard_normal(y.shape) * 4).astype(dtype)
        if fn.startswith("global"):
            calls[f"{fn}_backward"] = (f"{fn}_backward", dict(grad_out=g, **fwd_args))
        else:
            calls[f"{fn}_backward-{cid.split('-', 1)[1]}"] = (f"{fn}_backward",
                                                              dict(grad_out=g, **fwd_args))
    return calls


VIEW_IDS = sorted(_view_calls(F32, "channels_last", np.random.default_rng(0)))


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cid", VIEW_IDS)
def test_views_give_bitwise_the_contiguous_result(cid, dtype, fmt, view, rng):
    """Every array argument (x, grad_out, indices, kernel, bias) in the same
    other memory layout: bitwise the result of the C-contiguous arrays, and
    none of them modified."""
    fn, args = _view_calls(dtype, fmt, rng)[cid]
    viewed = {k: _view(v, view) if isinstance(v, np.ndarray) else v for k, v in args.items()}
    v_x = viewed["x"]
    assert _view_precondition(v_x, view), f"x is not {view}"
    for k, v in args.items():
        if isinstance(v, np.ndarray):
            assert np.array_equal(viewed[k], v, equal_nan=True), k
    snap = _snapshot(viewed)
    with np.errstate(all="ignore"):
        want = _as_tuple(getattr(convpool, fn)(**args))
        got = _as_tuple(getattr(convpool, fn)(**viewed))
    cfg = (cid, view, case_id(dtype=dtype, data_format=fmt))
    for i, (a, b) in enumerate(zip(got, want)):
        if b is None:
            assert a is None
            continue
        assert_bitwise_equal(a, b, cfg, what=f"result {i}, {view} vs contiguous")
    _assert_unchanged(viewed, snap, cfg)


# ====================================================================== 5. out=
def _out_calls(fmt):
    x = to_layout(_ints((2, 6, 7, 3), seed=5), fmt)
    kernel = _ints((3, 3, 3, 3), seed=6)
    bias = _ints((3,), seed=7)
    pool = dict(x=x, pool_size=3, strides=2, padding=1, ceil_mode=True, data_format=fmt)
    calls = {
        "max_pool2d-ceil-dil": ("max_pool2d", dict(pool, dilation_rate=(1, 2))),
        "max_pool2d-ceil-indices": ("max_pool2d", dict(pool, return_indices=True)),
        "avg_pool2d-ceil-cip": ("avg_pool2d", dict(pool, count_include_pad=True)),
        "avg_pool2d-ceil-divisor": ("avg_pool2d", dict(pool, divisor_override=3)),
    }
    for mode in MODES:  # C_out = C_in and "same": the output has x's shape
        calls[f"conv2d-{mode}"] = ("conv2d", dict(x=x, kernel=kernel, bias=bias, padding="same",
                                                  data_format=fmt, padding_mode=mode,
                                                  activation="relu"))
    return calls


OUT_IDS = sorted(_out_calls("channels_last"))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("cid", OUT_IDS)
def test_out_receives_the_result_and_is_returned(cid, fmt, impl):
    """``out`` (NaN-filled, inside a NaN guard buffer) is returned, holds
    bitwise the result without ``out``, and no guard cell was touched; a
    misaligned ``out`` (np.frombuffer at an odd offset) works the same."""
    fn, args = _out_calls(fmt)[cid]
    want = _as_tuple(getattr(impl, fn)(**args))
    gout = guarded_out(want[0].shape, F32)
    got = _as_tuple(getattr(impl, fn)(**args, out=gout.view))
    assert got[0] is gout.view, "out is not what was returned"
    assert_guard_intact(gout, "out")
    for i, (a, b) in enumerate(zip(got, want)):
        assert_bitwise_equal(a, b, (cid, fmt), what=f"result {i} through out=")
    buf = bytearray(want[0].nbytes + 1)
    mis = np.frombuffer(buf, F32, count=want[0].size, offset=1).reshape(want[0].shape)
    assert not mis.flags.aligned and mis.flags.writeable
    got = _as_tuple(getattr(impl, fn)(**args, out=mis))
    assert got[0] is mis
    assert_bitwise_equal(mis, want[0], (cid, fmt), what="misaligned out")


def _bad_outs(shape, args, ceil_floor_shape):
    """(id, out, exception, message pattern) for a call whose result has ``shape``."""
    x = args["x"]
    ro = np.full(shape, np.nan, F32)
    ro.flags.writeable = False
    shape_text = re.escape(str(tuple(shape)))
    cases = [
        ("dtype-f64", np.full(shape, np.nan, F64), TypeError,
         r"^out has dtype float64 but the result has dtype float32$"),
        ("channels-plus-one", np.full(shape[:-1] + (shape[-1] + 1,), np.nan, F32), ValueError,
         rf"^out has shape .* but the result has shape {shape_text}$"),
        ("floor-shape", np.full(ceil_floor_shape, np.nan, F32), ValueError,
         (rf"^out has shape {re.escape(str(ceil_floor_shape))} but the result has shape "
          rf"{shape_text}$")),
        ("non-contiguous", np.full(shape[:-1] + (2 * shape[-1],), np.nan, F32)[..., ::2],
         ValueError, r"^out must be C-contiguous, got strides"),
        ("fortran", np.asfortranarray(np.full(shape, np.nan, F32)), ValueError,
         r"^out must be C-contiguous"),
        ("read-only", ro, ValueError, rf"^out of shape {shape_text} is read-only$"),
        ("list", np.full(shape, np.nan, F32).tolist(), TypeError,
         r"^out must be a numpy.ndarray, got list$"),
        ("numpy-scalar", F32(0), TypeError, r"^out must be a numpy.ndarray, got float32$"),
    ]
    # out overlapping x by a few elements (x copied into the head of a shared buffer)
    size = int(np.prod(shape))
    base = np.full(x.size + size, np.nan, F32)
    xb = base[: x.size].reshape(x.shape)
    xb[...] = x
    cases.append(("overlaps-x", base[x.size - 3: x.size - 3 + size].reshape(shape), ValueError,
                  (rf"^out \(shape {shape_text}\) shares memory with x \(shape "
                   rf"{re.escape(str(x.shape))}\); pass a separate array$"), dict(x=xb)))
    if x.shape == tuple(shape):
        xc = np.array(x)
        cases.append(("is-x", xc, ValueError, r"shares memory with x", dict(x=xc)))
    if "kernel" in args:
        kbase = np.full(args["kernel"].size + size, np.nan, F32)
        kk = kbase[: args["kernel"].size].reshape(args["kernel"].shape)
        kk[...] = args["kernel"]
        cases.append(("overlaps-kernel", kbase[1: 1 + size].reshape(shape), ValueError,
                      r"shares memory with kernel \(shape \(3, 3, 3, 3\)\)", dict(kernel=kk)))
        bbase = np.full(3 + size, np.nan, F32)
        bb = bbase[:3]
        bb[...] = args["bias"]
        cases.append(("overlaps-bias", bbase[2: 2 + size].reshape(shape), ValueError,
                      r"shares memory with bias \(shape \(3,\)\)", dict(bias=bb)))
    return [c if len(c) == 5 else c + ({},) for c in cases]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("cid", OUT_IDS)
def test_bad_out_is_refused_and_left_untouched(cid, fmt, impl):
    """Each wrong ``out``: the error (naming ``out`` and the shapes), with ``out``
    and every input byte for byte as they were.  Where ceil_mode rounds up,
    the floor-mode shape is a wrong one too.  An ``out`` sharing even a few
    elements with x (or the conv's kernel or bias), or ``out=x``, is refused."""
    fn, args = _out_calls(fmt)[cid]
    shape = _as_tuple(getattr(impl, fn)(**args))[0].shape
    if "ceil_mode" in args:
        floor = _as_tuple(getattr(reference, fn)(**dict(args, ceil_mode=False)))[0].shape
        assert floor != shape, "ceil_mode must change the shape for the floor-shape case"
    else:
        floor = shape[:1] + (shape[1] + 1,) + shape[2:]
    for oid, out, exc, pattern, over in _bad_outs(shape, args, floor):
        call = {**args, **over}
        snap = _snapshot(call)
        before = None if not isinstance(out, np.ndarray) else out.tobytes()
        with pytest.raises(exc, match=pattern):
            getattr(impl, fn)(**call, out=out)
        _assert_unchanged(call, snap, (cid, oid))
        if before is not None:
            assert out.tobytes() == before, f"{oid}: out was written"


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("call", ["max_pool2d-indices", "avg_pool2d-ceil-divisor"])
def test_pools_out_is_x_refused(call, impl):
    """A 1x1 window keeps x's shape, so ``out=x`` has the right shape: still refused."""
    x = X.copy()
    before = x.tobytes()
    kw = (dict(return_indices=True) if call.startswith("max")
          else dict(ceil_mode=True, divisor_override=2))
    fn = getattr(impl, call.split("-")[0])
    with pytest.raises(ValueError, match=r"^out \(shape \(2, 6, 7, 3\)\) shares memory with x"):
        fn(x, 1, out=x, **kw)
    assert x.tobytes() == before


def test_out_next_to_x_in_one_buffer_is_accepted():
    """Sharing a base array without overlapping bytes is fine."""
    y_shape = OUT_SHAPES["conv2d"]
    base = np.zeros(X.size + int(np.prod(y_shape)), F32)
    x = base[: X.size].reshape(X.shape)
    x[...] = X
    out = base[X.size:].reshape(y_shape)
    assert convpool.conv2d(x, K, B, padding=1, padding_mode="circular", out=out) is out
    assert_bitwise_equal(out, convpool.conv2d(X, K, B, padding=1, padding_mode="circular"), "adj")


# ================================================================= 6. fuzz
STATS = {"compared": 0, "raised": 0}


def _padding_strategy(draw):
    form = draw(st.sampled_from(["valid", "same", "int", "pair", "explicit"]))
    p = st.integers(0, 3)
    if form in ("valid", "same"):
        return form
    if form == "int":
        return draw(p)
    if form == "pair":
        return (draw(p), draw(p))
    return ((draw(p), draw(p)), (draw(p), draw(p)))


@st.composite
def pool_calls(draw):
    """A max / avg / Lp pooling call (forward or backward) with every option drawn;
    about half of them invalid (a window that does not fit, a pad past the
    window, a dilated window between the cells)."""
    fn = draw(st.sampled_from(["max_pool2d", "max_pool2d-indices", "max_pool2d_backward",
                               "avg_pool2d", "avg_pool2d_backward", "lp_pool2d",
                               "lp_pool2d_backward"]))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    case = dict(
        fn=fn, dtype=draw(st.sampled_from(DTYPES)), data_format=draw(st.sampled_from(LAYOUTS)),
        n=draw(st.sampled_from([1, 2])), h=draw(st.integers(1, 9)), w=draw(st.integers(1, 9)),
        c=draw(st.sampled_from([1, 3, 8, 9])), pool=(kh, kw),
        strides=draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4)))),
        ceil_mode=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))
    if fn.startswith("max"):
        case["dilation"] = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if not fn.startswith("lp"):
        case["padding"] = _padding_strategy(draw)
    if fn.startswith("avg"):
        case["cip"] = draw(st.booleans())
        case["divisor"] = draw(st.sampled_from([None, None, 1, 3, 7]))
    if fn.startswith("lp"):
        case["p"] = draw(st.sampled_from([1, 2, 3]))
    return case


def _pool_args(case):
    rng = np.random.default_rng(case["seed"])
    dtype, fmt = case["dtype"], case["data_format"]
    shape = (case["n"], case["h"], case["w"], case["c"])
    if case["fn"].startswith("lp"):
        x = rng.integers(0, 5, shape).astype(dtype)  # x**p and the sums exact
    else:
        x = rng.standard_normal(shape).astype(dtype)
        if case["fn"].startswith("max"):
            x = np.round(x * 2) / 2  # ties: the first maximum must win
        for value in (np.nan, np.inf, -np.inf):
            x[rng.random(shape) < 0.04] = value
    fn = case["fn"].split("-")[0]
    args = dict(x=to_layout(x, fmt), pool_size=case["pool"], strides=case["strides"],
                ceil_mode=case["ceil_mode"], data_format=fmt)
    if "padding" in case:
        args["padding"] = case["padding"]
    if "dilation" in case:
        args["dilation_rate"] = case["dilation"]
    if "cip" in case:
        args.update(count_include_pad=case["cip"], divisor_override=case["divisor"])
    if "p" in case:
        args["norm_type"] = case["p"]
    if case["fn"] == "max_pool2d-indices":
        args["return_indices"] = True
    if fn.endswith("_backward"):
        try:
            with np.errstate(all="ignore"):
                y = getattr(reference, fn[: -len("_backward")])(**args)
            args["grad_out"] = rng.integers(-4, 5, y.shape).astype(dtype)
        except ValueError:
            args["grad_out"] = np.ones((1, 1, 1, 1), dtype)  # the call raises before reading it
    return fn, args


def _fuzz_compare(fn, args, cfg, kind):
    fast = _outcome(convpool, fn, args)
    ref = _outcome(reference, fn, args)
    if ref[0] == "raised" or kind == "exact":
        _assert_same_outcome(fast, ref, cfg)
        STATS["raised" if ref[0] == "raised" else "compared"] += 1
        return
    assert fast[0] == "ok", f"fast raised {fast[1]!r} where the reference returned; {cfg}"
    STATS["compared"] += 1
    a, b = fast[1][0], ref[1][0]
    dtype = b.dtype
    kw = {k: v for k, v in args.items() if k not in ("x", "pool_size", "grad_out", "norm_type")}
    with np.errstate(all="ignore"):
        if kind == "avg":
            tol = avg_pool_tolerance(args["x"], args["pool_size"], dtype, **kw)
        elif kind == "avg_backward":
            tol = avg_backward_tolerance(args["grad_out"], args["x"], args["pool_size"], dtype,
                                         **kw)
        elif kind == "lp":
            tol = lp_tolerance(b, args["pool_size"], dtype)
        elif kind == "lp_backward":
            tol = lp_backward_tolerance(args["grad_out"], args["x"], args["norm_type"],
                                        args["pool_size"], dtype, **kw)
        elif kind == "adaptive":
            tol = adaptive_avg_tolerance(args["x"], b.shape, dtype, args["data_format"])
        else:
            tol = adaptive_avg_backward_tolerance(args["grad_out"], args["x"],
                                                  args["output_size"], dtype, args["data_format"])
    _check_close(a, b, tol, cfg)


_POOL_KIND = {"max_pool2d": "exact", "max_pool2d_backward": "exact", "avg_pool2d": "avg",
              "avg_pool2d_backward": "avg_backward", "lp_pool2d": "lp",
              "lp_pool2d_backward": "lp_backward"}


def test_fuzz_pool_options_against_the_reference():
    """1500 max / avg / Lp calls from a fixed seed over ceil_mode x dilation x
    padding x strides x count_include_pad x divisor_override x norm_type x
    dtype x data_format (NaN and +-inf in the data): maxima, indices and max
    gradients exactly, averages and Lp within the derived bounds; an invalid
    combination raises the same exception type in both."""
    STATS.update(compared=0, raised=0)

    @settings(max_examples=1500, derandomize=True, **_SETTINGS)
    @given(case=pool_calls())
    def run(case):
        fn, args = _pool_args(case)
        _fuzz_compare(fn, args, case_id(**{k: v for k, v in case.items() if k != "seed"},
                                        seed=case["seed"]), _POOL_KIND[fn])

    run()
    assert STATS["compared"] >= 500 and STATS["raised"] >= 200, STATS


@st.composite
def adaptive_calls(draw):
    """An adaptive, global or unpooling call (forward or backward); some invalid
    (an output size of 0, unpooling indices past the default plane)."""
    fn = draw(st.sampled_from(["adaptive_avg_pool2d", "adaptive_max_pool2d",
                               "adaptive_avg_pool2d_backward", "adaptive_max_pool2d_backward",
                               "global_avg_pool2d", "global_max_pool2d",
                               "global_avg_pool2d_backward", "global_max_pool2d_backward",
                               "max_unpool2d"]))
    one = st.integers(0, 9)  # 0 is invalid
    size = draw(st.one_of(one, st.tuples(st.one_of(st.none(), one), st.one_of(st.none(), one))))
    return dict(fn=fn, dtype=draw(st.sampled_from(DTYPES)),
                data_format=draw(st.sampled_from(LAYOUTS)), n=draw(st.sampled_from([1, 2])),
                h=draw(st.integers(1, 8)), w=draw(st.integers(1, 8)),
                c=draw(st.sampled_from([1, 3, 8])), output_size=size,
                keepdims=draw(st.booleans()), return_indices=draw(st.booleans()),
                pool=draw(st.integers(1, 3)), strides=draw(st.integers(1, 3)),
                padding=draw(st.integers(0, 1)), give_size=draw(st.booleans()),
                seed=draw(st.integers(0, 2**32 - 1)))


def _adaptive_args(case):
    rng = np.random.default_rng(case["seed"])
    dtype, fmt, fn = case["dtype"], case["data_format"], case["fn"]
    shape = (case["n"], case["h"], case["w"], case["c"])
    x = np.round(rng.standard_normal(shape) * 2).astype(dtype) / 2
    for value in (np.nan, np.inf, -np.inf):
        x[rng.random(shape) < 0.04] = value
    x = to_layout(x, fmt)
    if fn == "max_unpool2d":
        try:
            y, idx = reference.max_pool2d(x, case["pool"], case["strides"], case["padding"], fmt,
                                          return_indices=True)
        except ValueError:
            y, idx = x, np.zeros(x.shape, np.int64)  # the unpooling is then likely invalid
        size = (case["h"], case["w"]) if case["give_size"] else None
        return fn, dict(x=y, indices=idx, pool_size=case["pool"], strides=case["strides"],
                        padding=case["padding"], output_size=size, data_format=fmt)
    if fn.startswith("global"):
        args = dict(x=x, keepdims=case["keepdims"], data_format=fmt)
    else:
        args = dict(x=x, output_size=case["output_size"], data_format=fmt)
    if fn == "adaptive_max_pool2d":
        args["return_indices"] = case["return_indices"]
    if fn.endswith("_backward"):
        try:
            with np.errstate(all="ignore"):
                y = getattr(reference, fn[: -len("_backward")])(**args)
            args["grad_out"] = rng.integers(-4, 5, y.shape).astype(dtype)
        except ValueError:
            args["grad_out"] = np.ones((1, 1), dtype)
    return fn, args


def test_fuzz_adaptive_global_and_unpool_against_the_reference():
    """1000 adaptive / global / unpooling calls from a fixed seed (output sizes
    dividing the input or not, longer than it, None entries; keepdims; indices;
    NaN and +-inf in the data): maxima, indices, max gradients and unpooled
    values exactly, averages within the derived bounds."""
    STATS.update(compared=0, raised=0)

    @settings(max_examples=1000, derandomize=True, **_SETTINGS)
    @given(case=adaptive_calls())
    def run(case):
        fn, args = _adaptive_args(case)
        if "max" in fn:
            _fuzz_compare(fn, args, case, "exact")
            return
        if not fn.startswith("global"):
            _fuzz_compare(fn, args, case, "adaptive_backward" if fn.endswith("_backward")
                          else "adaptive")
            return
        # the global average is the adaptive one of output 1: its bound, on 4-D shapes
        fast = _outcome(convpool, fn, args)
        ref = _outcome(reference, fn, args)
        if ref[0] == "raised":
            _assert_same_outcome(fast, ref, case)
            STATS["raised"] += 1
            return
        assert fast[0] == "ok", f"fast raised {fast[1]!r}; {case}"
        STATS["compared"] += 1
        a, b = fast[1][0], ref[1][0]
        fmt, n = args["data_format"], args["x"].shape[0]
        c = args["x"].shape[3] if fmt == "channels_last" else args["x"].shape[1]
        kept = (n, 1, 1, c) if fmt == "channels_last" else (n, c, 1, 1)
        with np.errstate(all="ignore"):
            if fn.endswith("_backward"):
                g = np.asarray(args["grad_out"]).reshape(kept)
                tol = adaptive_avg_backward_tolerance(g, args["x"], 1, b.dtype, fmt)
            else:
                tol = adaptive_avg_tolerance(args["x"], kept, b.dtype, fmt).reshape(b.shape)
        _check_close(a, b, tol, case)

    run()
    assert STATS["compared"] >= 600 and STATS["raised"] >= 50, STATS


@st.composite
def conv_mode_calls(draw):
    """A conv2d or conv2d_backward call with a padding_mode: dense, grouped and
    depthwise; strides, dilation and every padding form (so that some pads
    exceed what reflect / circular allow, or the window does not fit)."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    depthwise = draw(st.booleans()) and groups > 1
    cg = 1 if depthwise else draw(st.integers(1, 2))
    ocg = 1 if depthwise else draw(st.integers(1, 3))
    return dict(fn=draw(st.sampled_from(["conv2d", "conv2d_backward"])),
                mode=draw(st.sampled_from(MODES)), dtype=draw(st.sampled_from(DTYPES)),
                data_format=draw(st.sampled_from(LAYOUTS)), n=draw(st.sampled_from([1, 2])),
                h=draw(st.integers(1, 7)), w=draw(st.integers(1, 7)), c=groups * cg,
                oc=groups * ocg, groups=groups,
                kernel=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                strides=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                dilation=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                padding=_padding_strategy(draw), bias=draw(st.booleans()),
                relu=draw(st.booleans()), specials=draw(st.booleans()),
                seed=draw(st.integers(0, 2**32 - 1)))


def test_fuzz_conv2d_padding_modes_against_the_reference():
    """1500 conv2d / conv2d_backward calls from a fixed seed over padding_mode x
    groups (dense, grouped, depthwise) x strides x dilation x padding x bias x
    relu x dtype x data_format, on small-integer data (every sum exact in
    both dtypes: the results must be equal, NaN and +-inf included where
    planted); an invalid pad for the mode raises the same type in both."""
    STATS.update(compared=0, raised=0)

    @settings(max_examples=1500, derandomize=True, **_SETTINGS)
    @given(case=conv_mode_calls())
    def run(case):
        rng = np.random.default_rng(case["seed"])
        dtype, fmt = case["dtype"], case["data_format"]
        x = rng.integers(-4, 5, (case["n"], case["h"], case["w"], case["c"])).astype(dtype)
        if case["specials"]:
            x[rng.random(x.shape) < 0.05] = np.nan
            x[rng.random(x.shape) < 0.05] = np.inf
        kernel = rng.integers(-3, 4, case["kernel"] + (case["c"] // case["groups"],
                                                       case["oc"])).astype(dtype)
        args = dict(x=to_layout(x, fmt), kernel=kernel, strides=case["strides"],
                    padding=case["padding"], dilation_rate=case["dilation"],
                    groups=case["groups"], data_format=fmt, padding_mode=case["mode"])
        act = "relu" if case["relu"] else None
        bias = rng.integers(-3, 4, case["oc"]).astype(dtype) if case["bias"] else None
        if case["fn"] == "conv2d":
            args.update(bias=bias, activation=act)
        else:
            try:
                with np.errstate(all="ignore"):
                    y = reference.conv2d(bias=bias, activation=act, **args)
                args["grad_out"] = rng.integers(-3, 4, y.shape).astype(dtype)
                if act:
                    args.update(activation=act, output=y)
            except ValueError:
                args["grad_out"] = np.ones((1, 1, 1, 1), dtype)
        _fuzz_compare(case["fn"], args, case, "exact")

    run()
    assert STATS["compared"] >= 600 and STATS["raised"] >= 200, STATS


# ============================================================ 7. other regressions
@pytest.mark.skipif(SANITIZED, reason="asks for an impossible allocation, which ASan aborts on")
@pytest.mark.parametrize("pad", [2**40, 2**61], ids=["2**40", "2**61"])
def test_conv2d_backward_huge_replicate_pad_like_the_forward(pad):
    """Replicate padding of ``pad`` columns on the left with stride ``pad``: window
    0 reads column 0 through all three taps, window 1 columns 0-2 -- the same
    as a pad of 3 with stride 3 (whose 3rd window gets a zero grad_out).
    conv2d computes it (checked here); conv2d_backward must give the small
    call's gradients (exact on these integers), or refuse the explicitly padded
    copy its backward pass makes with a MemoryError that says so (as any
    workspace past convpool's limit)."""
    x = _ints((2, 6, 7, 3), F64)
    k = _ints((3, 3, 3, 4), F64, seed=1)
    huge = dict(padding=((0, 0), (pad, 0)), strides=(1, pad), padding_mode="replicate")
    small = dict(padding=((0, 0), (3, 0)), strides=(1, 3), padding_mode="replicate")
    y = convpool.conv2d(x, k, **huge)
    assert y.shape == (2, 4, 2, 4)
    np.testing.assert_array_equal(y, reference.conv2d(x, k, **small)[:, :, :2])
    g = _ints(y.shape, F64, seed=4)
    g_small = np.zeros((2, 4, 3, 4))
    g_small[:, :, :2] = g
    want = reference.conv2d_backward(g_small, x, k, **small)
    start = time.monotonic()
    try:
        got = convpool.conv2d_backward(g, x, k, **huge)
    except (ValueError, MemoryError) as err:
        assert "pad" in str(err), f"the message names nothing: {err}"
        return
    finally:
        assert time.monotonic() - start < HANG_GUARD_S
    for name, a, b in zip(("grad_x", "grad_kernel", "grad_bias"), got, want):
        np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("impl", IMPLS)
def test_max_unpool2d_range_message_quotes_the_indices_given(impl):
    """Indices of 2**64 - 1 (uint64) are out of range; the message must quote them."""
    idx = np.full((1, 2, 2, 1), 2**64 - 1, np.uint64)
    with pytest.raises(ValueError, match=r"^indices must lie in \[0, 16\)") as info:
        impl.max_unpool2d(np.ones((1, 2, 2, 1), F32), idx, 2)
    assert "18446744073709551615" in str(info.value), str(info.value)


@pytest.mark.parametrize("value", [1, "no", None], ids=repr)
@pytest.mark.parametrize("impl", IMPLS)
def test_conv2d_backward_input_grad_must_be_a_bool(impl, value):
    args = dict(BASE["conv2d_backward"], input_grad=value)
    with pytest.raises(TypeError, match=r"^input_grad must be a bool"):
        impl.conv2d_backward(**args)
