"""Hardening: faults that other libraries' conv and pooling kernels have had, shown absent.

The fault classes: NaN and +-inf treated differently by a SIMD body and its
scalar tail loop, so that a result depends on the channel count; reads and
writes outside an array, or outputs never written (index arithmetic, strided
or misaligned views); 32-bit index overflow on large tensors; partial writes
when a call fails; crashes, races and thread-count-dependent results under
concurrent calls; and memory leaks.

1. SIMD body vs scalar tails: pairwise sweeps of channel counts, output
   channels and output widths around the vector widths, the 6-pixel
   micro-tile and the ROWS threshold of 24 columns, with NaN and +-inf
   planted where the tails are: NaN and infinities land exactly where the
   reference puts them, finite values within the derived bounds, max pooling
   exactly.  conv2d_transpose too, through both its paths (an infinite
   weight moves a stride-1 call to the data-gradient kernel).
2. Canaries (out-of-bounds access, unwritten outputs): every input is the
   middle of a NaN-filled buffer and ``out=`` starts as NaN, for each
   internal conv path (ROWS, ROWS without copy, GATHER, POINTWISE,
   DEPTHWISE), both pools and the three gradients, with regular and streamed
   (non-temporal) stores: every output written, no guard cell read or written;
   likewise each path of conv2d_transpose (the stride-1 conv, by the conv
   algorithm it plans, and the data-gradient kernel) and its gradients.
3. All or nothing: a call with one bad argument (or a workspace cap of
   100 bytes) raises and leaves ``out=`` and every input bit for bit as they were.
4. Concurrency: 8 Python threads, shared and separate inputs, one
   shared layer: every result bitwise the serial one; the GIL is released
   while a kernel runs.
5. No leaks: 2000 calls of each function (and of the error paths) leave the
   resident memory where it was.
6. Big tensors (32-bit index overflow), ``-m bigmem``: more than 2**31
   elements, checked at the far end of the array.
7. threadpoolctl finds the OpenMP runtime.
8. Regressions: the bugs these tests found (huge pool widths overflowing the
   scratch size and the average's divisor, a dilation past int64 on a one-tap
   axis, pools over zero-height inputs, misaligned arrays), each run in a
   subprocess where a crash is possible, so it fails only its own test.
   conv2d_transpose with huge strides, crops, dilations and output padding
   (offsets near 2**40 that leave a tiny output), arguments past int64, and
   odd magnitudes (subnormals, values near overflow, signed zeros).
"""

from __future__ import annotations

import concurrent.futures
import gc
import json
import math
import os
import random
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import convpool
from convpool import reference
from convpool._checks import TransposeCall
from convpool._kernels import _core
from convpool._shapes import output_length
from _helpers import (
    Guarded,
    assert_bitwise_equal,
    assert_conv_close,
    assert_guard_intact,
    avg_pool_tolerance,
    case_id,
    conv_tolerance,
    gamma,
    guarded,
    guarded_out,
    transpose_tolerance,
)

DTYPES = (np.float32, np.float64)
DTYPE_IDS = {np.float32: "f32", np.float64: "f64"}
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
OPENMP = convpool._config.config()["openmp"]
# tools/sanitize.sh runs the tests with ASan + UBSan preloaded.
SANITIZED = "libasan" in os.environ.get("LD_PRELOAD", "")


# =========================================================================== helpers
def _pairwise(factors: dict, seed: int = 0) -> list[dict]:
    """A strength-2 covering array: every pair of values of every two factors
    appears in at least one row.  Greedy and deterministic (about as many rows
    as the two largest factors multiplied)."""
    names = list(factors)
    values = [list(factors[name]) for name in names]
    nf = len(names)

    def key(i, a, j, b):
        return (i, a, j, b) if i < j else (j, b, i, a)

    uncovered = {(i, a, j, b) for i in range(nf) for j in range(i + 1, nf)
                 for a in range(len(values[i])) for b in range(len(values[j]))}
    rnd = random.Random(seed)
    rows = []
    while uncovered:
        i, a, j, b = min(uncovered)
        best = None
        for _ in range(12):
            row = [None] * nf
            row[i], row[j] = a, b
            rest = [k for k in range(nf) if k not in (i, j)]
            rnd.shuffle(rest)
            for k in rest:
                gains = [sum(key(k, v, m, row[m]) in uncovered for m in range(nf)
                             if row[m] is not None) for v in range(len(values[k]))]
                top = max(gains)
                row[k] = rnd.choice([v for v, g in enumerate(gains) if g == top])
            gain = sum(key(p, row[p], q, row[q]) in uncovered
                       for p in range(nf) for q in range(p + 1, nf))
            if best is None or gain > best[0]:
                best = (gain, row)
        row = best[1]
        uncovered -= {key(p, row[p], q, row[q]) for p in range(nf) for q in range(p + 1, nf)}
        rows.append({names[k]: values[k][row[k]] for k in range(nf)})
    return rows


def _pair(v):
    return (v, v) if np.ndim(v) == 0 else tuple(v)


def _pads(padding):
    """(top, bottom, left, right) of an explicit padding (not "same")."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if np.ndim(padding) == 0:
        return (padding,) * 4
    if all(np.ndim(p) == 1 for p in padding):
        (t, b), (l, r) = padding
        return (t, b, l, r)
    ph, pw = padding
    return (ph, ph, pw, pw)


def _width_for(ow, kernel_w, stride_w, dilation_w, padding):
    """The smallest input width whose output width is ``ow``."""
    for w in range(1, ow * stride_w + (kernel_w - 1) * dilation_w + 8):
        if padding == "same":
            got = -(-w // stride_w)
        else:
            _, _, left, right = _pads(padding)
            got = output_length(w, kernel_w, stride_w, dilation_w, left, right)
        if got == ow:
            return w
    raise AssertionError(f"no width gives {ow} outputs")


def _assert_same_specials(fast, ref, cfg):
    """NaN, +inf and -inf exactly where the reference has them."""
    f = np.asarray(fast, np.float64)
    r = np.asarray(ref, np.float64)
    assert f.shape == r.shape, f"shape {f.shape} != {r.shape}; {cfg}"
    for name, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        a, b = test(f), test(r)
        if not np.array_equal(a, b):
            idx = tuple(int(i) for i in np.argwhere(a != b)[0])
            raise AssertionError(
                f"{name} positions differ in {int((a != b).sum())} of {r.size} elements; "
                f"first at {idx}: fast={f[idx]!r} ref={r[idx]!r}\n  config: {cfg}")


def _plant_specials(x):
    """NaN and +-inf (NHWC x, in place) at the tails: last column, last channel,
    first and middle channels, first and last rows of each image."""
    n, h, w, c = x.shape
    x[0, 0, w - 1, c - 1] = np.nan
    x[0, h - 1, 0, 0] = np.inf
    x[-1, h // 2, w // 2, c // 2] = -np.inf
    x[-1, h - 1, w - 1, 0] = np.nan
    return x


def _f64(a):
    return None if a is None else np.asarray(a, np.float64)


def _aligned_guarded_out(shape, dtype, guard=67):
    """Like ``guarded_out`` (NaN before, in and after), but the view starts on a
    64-byte boundary, so the kernels may use non-temporal stores on it."""
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    buffer = np.full(size + 2 * guard + 64 // dtype.itemsize, np.nan, dtype)
    start = guard
    while buffer[start:].ctypes.data % 64:
        start += 1
    view = buffer[start:start + size].reshape(shape)
    mask = np.ones(buffer.shape, bool)
    mask[start:start + size] = False
    return Guarded(view, buffer, mask, np.nan)


@pytest.fixture
def stream_all():
    """Every output large enough for non-temporal stores, for one test."""
    old = _core._set_stream_threshold(0)
    try:
        yield
    finally:
        _core._set_stream_threshold(old)


@pytest.fixture
def workspace_limit():
    """``convpool.set_workspace_limit``, restored however the test ends."""
    old = convpool.get_workspace_limit()
    try:
        yield convpool.set_workspace_limit
    finally:
        convpool.set_workspace_limit(old)
    assert convpool.get_workspace_limit() == old


# ================================================================ 1. SIMD vs tails
SIMD_CHANNELS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 33)
SIMD_OUT_CHANNELS = (1, 7, 8, 9, 15, 16, 17, 24, 33)
# around the 6-pixel micro-tile (CP_MR) and the ROWS threshold (4 * CP_MR = 24)
SIMD_OUT_WIDTHS = (5, 6, 7, 11, 12, 13, 23, 24, 25)
CONV_SWEEP_GEOMETRIES = {
    "k3x3-same": dict(kernel=(3, 3), strides=1, padding="same", dilation=1),
    "k1x1": dict(kernel=(1, 1), strides=1, padding="valid", dilation=1),  # POINTWISE
    "k2x3-s1x2": dict(kernel=(2, 3), strides=(1, 2), padding=((1, 0), (2, 1)), dilation=1),
    "k3x2-d1x2": dict(kernel=(3, 2), strides=1, padding="same", dilation=(1, 2)),  # K segments
}
CONV_SWEEP = _pairwise({
    "c": SIMD_CHANNELS, "oc": SIMD_OUT_CHANNELS, "ow": SIMD_OUT_WIDTHS, "dtype": DTYPES,
    "geometry": sorted(CONV_SWEEP_GEOMETRIES), "special": ("x", "x+kernel"),
})


def _conv_sweep_id(cfg):
    return f"{cfg['geometry']}-" + case_id(c=cfg["c"], oc=cfg["oc"], ow=cfg["ow"],
                                           dtype=cfg["dtype"], special=cfg["special"])


def _conv_sweep_case(cfg, rng, groups=1):
    geo = CONV_SWEEP_GEOMETRIES[cfg["geometry"]]
    kh, kw = geo["kernel"]
    sw, dw = _pair(geo["strides"])[1], _pair(geo["dilation"])[1]
    w = _width_for(cfg["ow"], kw, sw, dw, geo["padding"])
    dtype = cfg["dtype"]
    x = _plant_specials(rng.standard_normal((2, 6, w, cfg["c"])).astype(dtype))
    kernel = rng.standard_normal((kh, kw, cfg["c"] // groups, cfg["oc"])).astype(dtype)
    if cfg["special"] == "x+kernel":
        kernel[0, 0, -1, -1] = np.inf  # last input and output channel
    bias = rng.standard_normal(cfg["oc"]).astype(dtype)
    kwargs = dict(strides=geo["strides"], padding=geo["padding"], dilation_rate=geo["dilation"],
                  groups=groups)
    return x, kernel, bias, kwargs


def _check_conv_specials(x, kernel, bias, kwargs, dtype, cfg):
    got = convpool.conv2d(x, kernel, bias, **kwargs)
    assert got.dtype == dtype, cfg
    with np.errstate(invalid="ignore"):
        ref = reference.conv2d(_f64(x), _f64(kernel), _f64(bias), **kwargs)
        tol = conv_tolerance(x, kernel, dtype, bias=bias, **kwargs)
    assert np.isnan(ref).any(), f"a vacuous case: no NaN; {cfg}"
    # With one output channel an infinite kernel tap reaches every output.
    one_inf_channel = kernel.shape[3] == 1 and not np.isfinite(kernel).all()
    assert one_inf_channel or np.isfinite(ref).any(), f"a vacuous case: no finite value; {cfg}"
    _assert_same_specials(got, ref, cfg)
    assert_conv_close(got, ref, tol, cfg)


def test_conv_sweep_covers_every_pair():
    assert len(CONV_SWEEP) >= len(SIMD_CHANNELS) * len(SIMD_OUT_CHANNELS)
    seen = ({("oc", r["c"], r["oc"]) for r in CONV_SWEEP}
            | {("ow", r["c"], r["ow"]) for r in CONV_SWEEP})
    assert len(seen) == len(SIMD_CHANNELS) * (len(SIMD_OUT_CHANNELS) + len(SIMD_OUT_WIDTHS))


@pytest.mark.parametrize("cfg", [pytest.param(c, id=_conv_sweep_id(c)) for c in CONV_SWEEP])
def test_conv2d_simd_tails_with_nan_and_inf(cfg, rng):
    x, kernel, bias, kwargs = _conv_sweep_case(cfg, rng)
    _check_conv_specials(x, kernel, bias, kwargs, cfg["dtype"], _conv_sweep_id(cfg))


DEPTHWISE_SWEEP = _pairwise({"c": SIMD_CHANNELS, "ow": SIMD_OUT_WIDTHS, "dtype": DTYPES,
                             "special": ("x", "x+kernel")})


@pytest.mark.parametrize(
    "cfg", [pytest.param(c, id=case_id(c=c["c"], ow=c["ow"], dtype=c["dtype"],
                                       special=c["special"])) for c in DEPTHWISE_SWEEP])
def test_depthwise_simd_tails_with_nan_and_inf(cfg, rng):
    """groups = C_in = C_out: the direct kernel, vectorised over the channels."""
    cfg = dict(cfg, oc=cfg["c"], geometry="k3x3-same")
    x, kernel, bias, kwargs = _conv_sweep_case(cfg, rng, groups=cfg["c"])
    _check_conv_specials(x, kernel, bias, kwargs, cfg["dtype"], case_id(**cfg))


POOL_SWEEP_GEOMETRIES = {
    "k2-s2": dict(pool=(2, 2), strides=None, padding="valid"),
    "k3x2-s2x1-same": dict(pool=(3, 2), strides=(2, 1), padding="same"),
    "k3-s1-p1": dict(pool=(3, 3), strides=1, padding=1),
    "k2x3-s1x3-p0102": dict(pool=(2, 3), strides=(1, 3), padding=((0, 1), (0, 2))),
}
# the widths of the conv sweep, and one past the pooling tile for the larger C
POOL_SWEEP = _pairwise({
    "c": SIMD_CHANNELS, "ow": SIMD_OUT_WIDTHS + (260,), "dtype": DTYPES,
    "geometry": sorted(POOL_SWEEP_GEOMETRIES), "kind": ("max", "avg", "avg-cip"),
})


def _pool_sweep_id(cfg):
    return f"{cfg['kind']}-{cfg['geometry']}-" + case_id(c=cfg["c"], ow=cfg["ow"],
                                                         dtype=cfg["dtype"])


@pytest.mark.parametrize("cfg", [pytest.param(c, id=_pool_sweep_id(c)) for c in POOL_SWEEP])
def test_pools_simd_tails_with_nan_and_inf(cfg, rng):
    geo = POOL_SWEEP_GEOMETRIES[cfg["geometry"]]
    ph, pw = geo["pool"]
    sw = pw if geo["strides"] is None else _pair(geo["strides"])[1]
    w = _width_for(cfg["ow"], pw, sw, 1, geo["padding"])
    dtype = cfg["dtype"]
    x = _plant_specials(rng.standard_normal((2, 7, w, cfg["c"])).astype(dtype))
    x[1, 1:6, :, ::2] = -np.inf  # whole windows of -inf in every geometry, every other channel
    x[1, 3, w // 3, 0] = np.nan  # a NaN among them
    kw = dict(strides=geo["strides"], padding=geo["padding"])
    cid = _pool_sweep_id(cfg)
    if cfg["kind"] == "max":
        got = convpool.max_pool2d(x, geo["pool"], **kw)
        ref = reference.max_pool2d(x, geo["pool"], **kw)
        assert got.dtype == ref.dtype == dtype, cid
        assert np.isnan(ref).any() and np.isneginf(ref).any(), f"a vacuous case; {cid}"
        if not np.array_equal(got, ref, equal_nan=True):
            _assert_same_specials(got, ref, cid)
            bad = np.argwhere(~((got == ref) | (np.isnan(got) & np.isnan(ref))))[0]
            raise AssertionError(f"max_pool2d differs at {tuple(bad)}: {got[tuple(bad)]!r} vs "
                                 f"{ref[tuple(bad)]!r}; {cid}")
        return
    kw["count_include_pad"] = cfg["kind"] == "avg-cip"
    got = convpool.avg_pool2d(x, geo["pool"], **kw)
    assert got.dtype == dtype, cid
    with np.errstate(invalid="ignore"):
        ref = reference.avg_pool2d(_f64(x), geo["pool"], **kw)
        tol = avg_pool_tolerance(x, geo["pool"], dtype, **kw)
    assert np.isnan(ref).any() and np.isneginf(ref).any(), f"a vacuous case; {cid}"
    _assert_same_specials(got, ref, cid)
    assert_conv_close(got, ref, tol, cid)


# conv2d_transpose: W is the input width (the data-gradient kernel's GEMM runs
# over an input row's pixels; the stride-1 conv's output width follows it).
TRANSPOSE_SWEEP_GEOMETRIES = {
    # stride 1, finite kernel: the forward conv of the flipped kernel
    "k3x3-s1-same": dict(kernel=(3, 3), strides=1, padding="same", output_padding=None,
                         dilation_rate=1),
    "k1x1-s1": dict(kernel=(1, 1), strides=1, padding="valid", output_padding=None,
                    dilation_rate=1),
    # the data-gradient kernel
    "k3x2-s2-p1-op1": dict(kernel=(3, 2), strides=2, padding=1, output_padding=1,
                           dilation_rate=1),
    "k2x3-s1x2-d2x1": dict(kernel=(2, 3), strides=(1, 2), padding=((1, 0), (0, 1)),
                           output_padding=None, dilation_rate=(2, 1)),
}
TRANSPOSE_SWEEP = _pairwise({
    "c": SIMD_CHANNELS, "oc": SIMD_OUT_CHANNELS, "w": SIMD_OUT_WIDTHS, "dtype": DTYPES,
    "geometry": sorted(TRANSPOSE_SWEEP_GEOMETRIES), "special": ("x", "x+kernel"),
})


def _transpose_sweep_id(cfg):
    return f"{cfg['geometry']}-" + case_id(h=4, w=cfg["w"], c=cfg["c"], oc=cfg["oc"],
                                           dtype=cfg["dtype"], special=cfg["special"])


def _check_transpose_specials(cfg, rng, groups=1):
    geo = dict(TRANSPOSE_SWEEP_GEOMETRIES[cfg["geometry"]])
    kh, kw = geo.pop("kernel")
    dtype = cfg["dtype"]
    x = _plant_specials(rng.standard_normal((2, 4, cfg["w"], cfg["c"])).astype(dtype))
    kernel = rng.standard_normal((kh, kw, cfg["oc"] // groups, cfg["c"])).astype(dtype)
    if cfg["special"] == "x+kernel":
        kernel[0, 0, -1, -1] = np.inf  # last output and input channel
    bias = rng.standard_normal(cfg["oc"]).astype(dtype)
    cid = _transpose_sweep_id(cfg)
    got = convpool.conv2d_transpose(x, kernel, bias, groups=groups, **geo)
    assert got.dtype == dtype, cid
    with np.errstate(invalid="ignore"):
        ref = reference.conv2d_transpose(_f64(x), _f64(kernel), _f64(bias), groups=groups, **geo)
        tol = transpose_tolerance(x, kernel, dtype, bias=bias, groups=groups, **geo)
    assert np.isnan(ref).any(), f"a vacuous case: no NaN; {cid}"
    # With one output channel an infinite 1x1 tap reaches every output.
    one_inf_channel = cfg["oc"] == 1 and not np.isfinite(kernel).all()
    assert one_inf_channel or np.isfinite(ref).any(), f"a vacuous case: no finite value; {cid}"
    _assert_same_specials(got, ref, cid)
    assert_conv_close(got, ref, tol, cid)


def test_transpose_sweep_covers_every_pair():
    seen = ({("oc", r["c"], r["oc"]) for r in TRANSPOSE_SWEEP}
            | {("w", r["c"], r["w"]) for r in TRANSPOSE_SWEEP}
            | {("geometry", r["geometry"], r["special"]) for r in TRANSPOSE_SWEEP})
    assert len(seen) == (len(SIMD_CHANNELS) * (len(SIMD_OUT_CHANNELS) + len(SIMD_OUT_WIDTHS))
                         + 2 * len(TRANSPOSE_SWEEP_GEOMETRIES))


@pytest.mark.parametrize("cfg", [pytest.param(c, id=_transpose_sweep_id(c))
                                 for c in TRANSPOSE_SWEEP])
def test_conv2d_transpose_simd_tails_with_nan_and_inf(cfg, rng):
    _check_transpose_specials(cfg, rng)


TRANSPOSE_DEPTHWISE_SWEEP = _pairwise({
    "c": SIMD_CHANNELS, "w": SIMD_OUT_WIDTHS, "dtype": DTYPES, "special": ("x", "x+kernel"),
    "geometry": ("k3x3-s1-same", "k3x2-s2-p1-op1")})


@pytest.mark.parametrize("cfg", [pytest.param(dict(c, oc=c["c"]),
                                              id=_transpose_sweep_id(dict(c, oc=c["c"])))
                                 for c in TRANSPOSE_DEPTHWISE_SWEEP])
def test_conv2d_transpose_depthwise_simd_tails_with_nan_and_inf(cfg, rng):
    """groups = C_in = C_out: at stride 1 the conv's depthwise kernel."""
    _check_transpose_specials(cfg, rng, groups=cfg["c"])


# ===================================================================== 2. canaries
# The four ways conv2d feeds its micro-kernel (src/convpool/_kernels/cp_conv.c).
CONV_PATHS = {
    "rows": ((2, 7, 40, 5), (3, 3, 5, 17), dict(padding="same")),
    "rows-no-copy": ((2, 10, 130, 3), (5, 5, 3, 16), dict(strides=5)),
    "rows-grouped-dilated": ((2, 6, 40, 8), (3, 3, 4, 12),
                             dict(groups=2, dilation_rate=(1, 2), padding="same")),
    "gather": ((2, 7, 9, 5), (3, 2, 5, 17), dict(strides=(2, 1), padding=((1, 2), (0, 1)))),
    "pointwise": ((2, 5, 31, 19), (1, 1, 19, 33), dict()),
    "depthwise": ((2, 9, 29, 13), (3, 3, 1, 13), dict(groups=13, padding="same")),
    "depthwise-strided": ((2, 9, 29, 37), (3, 2, 1, 37),
                          dict(groups=37, strides=2, padding=((2, 1), (0, 3)), dilation_rate=(1, 2))),
}


def _conv_canary(name, geometry, dtype, contiguous, rng, out_factory):
    xs, ks, kw = geometry
    x = rng.standard_normal(xs).astype(dtype)
    kernel = rng.standard_normal(ks).astype(dtype)
    bias = rng.standard_normal(ks[3]).astype(dtype)
    plain = convpool.conv2d(x, kernel, bias, **kw)
    gx, gk, gb = guarded(x, contiguous=contiguous), guarded(kernel), guarded(bias)
    gout = out_factory(plain.shape, dtype)
    res = convpool.conv2d(gx.view, gk.view, gb.view, out=gout.view, **kw)
    cfg = (name, DTYPE_IDS[dtype], "in-place" if contiguous else "copied")
    assert res is gout.view
    assert not np.isnan(res).any(), f"an output left unwritten or a guard cell read; {cfg}"
    assert_bitwise_equal(res, plain, cfg, what="guarded vs plain")
    for g, what in ((gx, "x"), (gk, "kernel"), (gb, "bias"), (gout, "out")):
        assert_guard_intact(g, f"{what} {cfg}")
    assert_bitwise_equal(gx.view, x, cfg, what="x after the call")


@pytest.mark.parametrize("contiguous", [True, False], ids=["in-place", "copied"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(CONV_PATHS))
def test_conv2d_canaries_every_path(name, dtype, contiguous, rng):
    _conv_canary(name, CONV_PATHS[name], dtype, contiguous, rng, guarded_out)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["rows", "rows-no-copy", "gather", "pointwise",
                                  "rows-grouped-dilated"])
def test_conv2d_canaries_streamed_stores(name, dtype, rng, stream_all):
    """A 64-byte aligned out= takes the non-temporal stores (whole cache lines)
    when C_out per group is a multiple of the panel width NR: none may spill."""
    xs, ks, kw = CONV_PATHS[name]
    nr = 64 // np.dtype(dtype).itemsize
    groups = kw.get("groups", 1)
    ocg = -(-(ks[3] // groups) // nr) * nr  # C_out / groups rounded up to NR
    _conv_canary(name, (xs, ks[:3] + (ocg * groups,), kw), dtype, True, rng,
                 _aligned_guarded_out)


POOL_CANARY_CHANNELS = (1, 3, 8, 9, 17)


@pytest.mark.parametrize("streamed", [False, True], ids=["stored", "streamed"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("c", POOL_CANARY_CHANNELS)
@pytest.mark.parametrize("kind", ["max", "avg", "avg-cip"])
def test_pools_canaries(kind, c, dtype, streamed, rng):
    """A wide row (several pooling tiles), guards around x and out=."""
    x = rng.standard_normal((2, 7, 301, c)).astype(dtype)
    kw = dict(pool_size=(3, 2), strides=(2, 1), padding="same")
    fn = convpool.max_pool2d
    if kind != "max":
        fn = convpool.avg_pool2d
        kw["count_include_pad"] = kind == "avg-cip"
    plain = fn(x, **kw)
    old = _core._set_stream_threshold(0 if streamed else 2**62)
    try:
        for contiguous in (True, False):
            gx = guarded(x, contiguous=contiguous)
            gout = (_aligned_guarded_out if streamed else guarded_out)(plain.shape, dtype)
            res = fn(gx.view, out=gout.view, **kw)
            cfg = (kind, c, DTYPE_IDS[dtype], streamed, contiguous)
            assert res is gout.view and not np.isnan(res).any(), cfg
            assert_bitwise_equal(res, plain, cfg, what="guarded vs plain")
            assert_guard_intact(gx, f"x {cfg}")
            assert_guard_intact(gout, f"out {cfg}")
    finally:
        _core._set_stream_threshold(old)


CONV_BACKWARD_PATHS = {
    "general": ((2, 7, 13, 4), (3, 2, 2, 18),
                dict(groups=2, strides=(2, 1), padding=((1, 2), (2, 0)), dilation_rate=(1, 2))),
    "wide": ((2, 5, 40, 3), (3, 3, 3, 16), dict(padding="same")),
    "pointwise": ((2, 5, 7, 5), (1, 1, 5, 17), dict()),
    "depthwise": ((2, 9, 11, 8), (3, 3, 1, 8), dict(groups=8, padding="same")),
    "stride-gt-kernel": ((2, 11, 12, 6), (2, 2, 6, 9), dict(strides=3)),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(CONV_BACKWARD_PATHS))
def test_conv2d_backward_canaries(name, dtype, rng):
    """grad_out, x and kernel in NaN guards (passed in place): the three
    gradients equal the unguarded ones bit for bit, no guard cell is touched."""
    xs, ks, kw = CONV_BACKWARD_PATHS[name]
    x = rng.standard_normal(xs).astype(dtype)
    kernel = rng.standard_normal(ks).astype(dtype)
    g = rng.standard_normal(convpool.conv2d(x, kernel, **kw).shape).astype(dtype)
    plain = convpool.conv2d_backward(g, x, kernel, **kw)
    gg, gx, gk = guarded(g), guarded(x), guarded(kernel)
    got = convpool.conv2d_backward(gg.view, gx.view, gk.view, **kw)
    for what, a, b in zip(("grad_x", "grad_kernel", "grad_bias"), got, plain):
        assert not np.isnan(a).any(), f"{what}: a guard cell was read; {name}"
        assert_bitwise_equal(a, b, name, what=f"{what}: guarded vs plain")
    for gd, what in ((gg, "grad_out"), (gx, "x"), (gk, "kernel")):
        assert_guard_intact(gd, f"{what} ({name})")


POOL_BACKWARD_PATHS = {
    "band-vector-run": dict(c=3, pool_size=(2, 2), strides=(2, 2), padding="valid"),
    "overlap": dict(c=9, pool_size=3, strides=1, padding="same"),
    "stride-gt-pool": dict(c=17, pool_size=2, strides=3, padding="valid"),
    "padded-bands": dict(c=5, pool_size=(4, 3), strides=(4, 3), padding=((3, 0), (0, 2))),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", ["max", "avg", "avg-cip"])
@pytest.mark.parametrize("name", sorted(POOL_BACKWARD_PATHS))
def test_pool_backward_canaries(name, kind, dtype, rng):
    cfg = dict(POOL_BACKWARD_PATHS[name])
    c = cfg.pop("c")
    x = rng.integers(-3, 4, size=(2, 9, 31, c)).astype(dtype)  # ties for the max rules
    x[0, 2, 5, 0] = np.nan
    if kind == "max":
        fwd, bwd = convpool.max_pool2d, convpool.max_pool2d_backward
    else:
        fwd, bwd = convpool.avg_pool2d, convpool.avg_pool2d_backward
        cfg["count_include_pad"] = kind == "avg-cip"
    g = rng.standard_normal(fwd(x, **cfg).shape).astype(dtype)
    plain = bwd(g, x, **cfg)
    gg, gx = guarded(g), guarded(x)
    got = bwd(gg.view, gx.view, **cfg)
    assert not np.isnan(got).any(), f"a guard cell was read; {name} {kind}"
    assert_bitwise_equal(got, plain, (name, kind), what="guarded vs plain")
    assert_guard_intact(gg, f"grad_out ({name})")
    assert_guard_intact(gx, f"x ({name})")


# conv2d_transpose's paths (src/convpool/functional.py): stride 1 with a finite
# kernel is the forward conv of the flipped kernel (the name says the conv
# algorithm it plans, checked below); the others run the data-gradient kernel.
# x (N, H, W, C_in), kernel (KH, KW, C_out // groups, C_in).
TRANSPOSE_PATHS = {
    "s1-rows": ((2, 7, 40, 5), (3, 3, 17, 5), dict(padding="same")),
    "s1-gather": ((2, 7, 5, 5), (3, 2, 17, 5), dict(padding=((1, 0), (0, 1)))),
    "s1-pointwise": ((2, 5, 31, 19), (1, 1, 33, 19), dict()),
    "s1-depthwise": ((2, 9, 29, 13), (3, 3, 1, 13), dict(groups=13, padding="same")),
    "s1-rows-grouped-dilated": ((2, 6, 40, 8), (3, 3, 6, 8),
                                dict(groups=2, dilation_rate=(1, 2), padding="same")),
    "data-gradient-s2": ((2, 7, 9, 5), (3, 2, 17, 5),
                         dict(strides=2, padding=((1, 2), (0, 1)), output_padding=1)),
    "data-gradient-stride-gt-kernel": ((2, 5, 11, 6), (2, 1, 9, 6),
                                       dict(strides=(3, 4), output_padding=(2, 3))),
    "data-gradient-crop-past-span": ((2, 8, 12, 3), (2, 2, 16, 3),
                                     dict(padding=((3, 0), (0, 2)))),
    "data-gradient-depthwise-s2": ((2, 9, 29, 8), (3, 3, 1, 8),
                                   dict(groups=8, strides=2, padding="same")),
}


def _transpose_algorithm(name, dtype):
    """The conv algorithm conv2d_transpose's stride-1 path plans for this case
    (the arguments functional.conv2d_transpose hands the conv kernel), or
    "data-gradient" when it takes the other path."""
    xs, ks, kw = TRANSPOSE_PATHS[name]
    call = TransposeCall(np.zeros(xs, dtype), np.zeros(ks, dtype), None, kw.get("strides", 1),
                         kw.get("padding", "valid"), kw.get("output_padding"),
                         kw.get("dilation_rate", 1), kw.get("groups", 1), "channels_last")
    w = call.win
    span_h, span_w = w.dh * (w.kh - 1), w.dw * (w.kw - 1)
    if (w.sh, w.sw) != (1, 1) or w.pt > span_h or w.pl > span_w:
        return "data-gradient"
    n, h, wd, c = xs
    _, oh, ow, oc = call.nhwc_shape
    return _core.conv_plan(n, h, wd, c, w.kh, w.kw, oc, oh, ow, 1, 1, w.dh, w.dw,
                           span_h - w.pt, span_w - w.pl, call.groups, np.dtype(dtype).itemsize,
                           None)["algorithm"]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_transpose_canary_cases_take_the_named_paths(dtype):
    for name in TRANSPOSE_PATHS:
        want = "data-gradient" if name.startswith("data-gradient") else name.split("-")[1]
        assert _transpose_algorithm(name, dtype) == want, name


def _transpose_canary(name, dtype, contiguous, rng, out_factory, ocg=None):
    xs, ks, kw = TRANSPOSE_PATHS[name]
    if ocg is not None:
        ks = ks[:2] + (ocg,) + ks[3:]
    x = rng.standard_normal(xs).astype(dtype)
    kernel = rng.standard_normal(ks).astype(dtype)
    bias = rng.standard_normal(ks[2] * kw.get("groups", 1)).astype(dtype)
    plain = convpool.conv2d_transpose(x, kernel, bias, activation="relu", **kw)
    gx, gk, gb = guarded(x, contiguous=contiguous), guarded(kernel), guarded(bias)
    gout = out_factory(plain.shape, dtype)
    res = convpool.conv2d_transpose(gx.view, gk.view, gb.view, out=gout.view, activation="relu",
                                    **kw)
    cfg = (name, DTYPE_IDS[dtype], "in-place" if contiguous else "copied")
    assert res is gout.view
    assert not np.isnan(res).any(), f"an output left unwritten or a guard cell read; {cfg}"
    assert_bitwise_equal(res, plain, cfg, what="guarded vs plain")
    for g, what in ((gx, "x"), (gk, "kernel"), (gb, "bias"), (gout, "out")):
        assert_guard_intact(g, f"{what} {cfg}")
    assert_bitwise_equal(gx.view, x, cfg, what="x after the call")


@pytest.mark.parametrize("contiguous", [True, False], ids=["in-place", "copied"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(TRANSPOSE_PATHS))
def test_conv2d_transpose_canaries_every_path(name, dtype, contiguous, rng):
    _transpose_canary(name, dtype, contiguous, rng, guarded_out)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(TRANSPOSE_PATHS))
def test_conv2d_transpose_canaries_streamed_stores(name, dtype, rng, stream_all):
    """A 64-byte aligned out= with C_out per group a multiple of the panel
    width NR: the stores that may stream whole cache lines spill nothing."""
    nr = 64 // np.dtype(dtype).itemsize
    ocg = -(-TRANSPOSE_PATHS[name][1][2] // nr) * nr
    _transpose_canary(name, dtype, True, rng, _aligned_guarded_out, ocg=ocg)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(TRANSPOSE_PATHS))
def test_conv2d_transpose_backward_canaries(name, dtype, rng):
    """grad_out, x and kernel in NaN guards (passed in place): the three
    gradients equal the unguarded ones bit for bit, no guard cell is touched."""
    xs, ks, kw = TRANSPOSE_PATHS[name]
    x = rng.standard_normal(xs).astype(dtype)
    kernel = rng.standard_normal(ks).astype(dtype)
    g = rng.standard_normal(convpool.conv2d_transpose(x, kernel, **kw).shape).astype(dtype)
    plain = convpool.conv2d_transpose_backward(g, x, kernel, **kw)
    gg, gx, gk = guarded(g), guarded(x), guarded(kernel)
    got = convpool.conv2d_transpose_backward(gg.view, gx.view, gk.view, **kw)
    for what, a, b in zip(("grad_x", "grad_kernel", "grad_bias"), got, plain):
        assert not np.isnan(a).any(), f"{what}: a guard cell was read; {name}"
        assert_bitwise_equal(a, b, name, what=f"{what}: guarded vs plain")
    for gd, what in ((gg, "grad_out"), (gx, "x"), (gk, "kernel")):
        assert_guard_intact(gd, f"{what} ({name})")


def _misaligned(a):
    """A C-contiguous, writeable copy of ``a`` at an odd address (flags.aligned False),
    as NumPy makes from a packed record or a buffer at an offset."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    m = np.frombuffer(raw.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    m[...] = a
    assert not m.flags.aligned and m.flags.c_contiguous and m.flags.writeable
    return m


_MISALIGNED_SCRIPT = """
import sys
sys.path.insert(0, {tests_dir!r})
import numpy as np, convpool
import test_hardening as T
rng = np.random.default_rng(5)
for dt in (np.float32, np.float64):
    x = rng.standard_normal((2, 7, 30, 5)).astype(dt)
    k = rng.standard_normal((3, 3, 5, 16)).astype(dt)
    b = rng.standard_normal(16).astype(dt)
    y = convpool.conv2d(x, k, b, padding="same")
    out = T._misaligned(np.zeros_like(y))
    assert np.array_equal(convpool.conv2d(T._misaligned(x), T._misaligned(k), T._misaligned(b),
                                          padding="same", out=out), y)
    for fn in (convpool.max_pool2d, convpool.avg_pool2d):
        p = fn(x, 3, 2, "same")
        assert np.array_equal(fn(T._misaligned(x), 3, 2, "same", out=T._misaligned(p * 0)), p)
    g = rng.standard_normal(y.shape).astype(dt)
    for a, e in zip(convpool.conv2d_backward(T._misaligned(g), T._misaligned(x), T._misaligned(k),
                                             padding="same"),
                    convpool.conv2d_backward(g, x, k, padding="same")):
        assert np.array_equal(a, e)
    gp = rng.standard_normal(p.shape).astype(dt)
    for fn in (convpool.max_pool2d_backward, convpool.avg_pool2d_backward):
        assert np.array_equal(fn(T._misaligned(gp), T._misaligned(x), 3, 2, "same"),
                              fn(gp, x, 3, 2, "same"))
print("ok")
"""


def test_misaligned_arrays_give_the_aligned_result():
    """Misaligned inputs and out= (legal NumPy arrays) give the aligned result
    bit for bit.  Run in a subprocess: under UBSan the misaligned loads abort."""
    proc = _run_python(_MISALIGNED_SCRIPT.format(tests_dir=TESTS_DIR))
    assert proc.returncode == 0 and proc.stdout.split() == ["ok"], _describe_exit(proc)


# ================================================================ 3. all or nothing
def _sentinel_out(shape, dtype):
    return np.full(shape, -4321.0, dtype)


def _base_arrays(layout):
    x = ((np.arange(2 * 9 * 30 * 8) % 13 - 6) / 4).astype(np.float32).reshape(2, 9, 30, 8)
    kernel = ((np.arange(3 * 3 * 8 * 16) % 7 - 3) / 8).astype(np.float32).reshape(3, 3, 8, 16)
    bias = np.linspace(-1, 1, 16, dtype=np.float32)
    if layout == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x, kernel, bias


# (function, name, keyword overrides, exception).  "workspace" sets a 100-byte cap.
_FORWARD_ERRORS = [
    ("conv2d", "strides-0", dict(strides=0), ValueError),
    ("conv2d", "strides-beyond-int64", dict(strides=(1, 2**63)), ValueError),
    ("conv2d", "padding-neg", dict(padding=-1), ValueError),
    ("conv2d", "dilation-0", dict(dilation_rate=0), ValueError),
    ("conv2d", "bias-shape", dict(bias=np.ones(15, np.float32)), ValueError),
    ("conv2d", "groups-3", dict(groups=3), ValueError),
    ("conv2d", "activation", dict(activation="tanh"), ValueError),
    ("conv2d", "kernel-f64", dict(kernel="f64"), TypeError),
    ("conv2d", "workspace", dict(), MemoryError),
    ("max_pool2d", "strides-0", dict(strides=0), ValueError),
    ("max_pool2d", "pool-0", dict(pool_size=0), ValueError),
    ("max_pool2d", "pad-exceeds-pool", dict(padding=3), ValueError),
    ("max_pool2d", "padding-neg", dict(padding=-1), ValueError),
    ("max_pool2d", "workspace", dict(), MemoryError),
    ("avg_pool2d", "strides-0", dict(strides=0), ValueError),
    ("avg_pool2d", "pad-exceeds-pool", dict(padding=(0, 3)), ValueError),
    ("avg_pool2d", "count-include-pad-int", dict(count_include_pad=1), TypeError),
    ("avg_pool2d", "workspace", dict(), MemoryError),
]


def _forward_call(fn, layout, over, out):
    x, kernel, bias = _base_arrays(layout)
    if fn == "conv2d":
        args = dict(x=x, kernel=kernel, bias=bias, strides=1, padding="same",
                    data_format=layout, activation="relu")
    else:
        args = dict(x=x, pool_size=3, strides=2, padding="same", data_format=layout)
        if fn == "avg_pool2d":
            args["count_include_pad"] = True
    args.update(over)
    if isinstance(args.get("kernel"), str):
        args["kernel"] = kernel.astype(np.float64)
    return args, (lambda: getattr(convpool, fn)(out=out, **args))


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
@pytest.mark.parametrize("fn, name, over, exc", [pytest.param(*c, id=f"{c[0]}-{c[1]}")
                                                 for c in _FORWARD_ERRORS])
def test_forward_error_leaves_out_and_inputs_untouched(fn, name, over, exc, layout,
                                                       workspace_limit):
    good_args, good = _forward_call(fn, layout, {}, None)
    shape = good().shape
    out = _sentinel_out(shape, np.float32)
    args, call = _forward_call(fn, layout, over, out)
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    if name == "workspace":
        workspace_limit(100)
    with pytest.raises(exc):
        call()
    workspace_limit(1 << 30)
    assert_bitwise_equal(out, _sentinel_out(shape, np.float32), (fn, name), what="out")
    for k, v in before.items():
        assert_bitwise_equal(args[k], v, (fn, name), what=f"{k} after the error")
    # the same out= is accepted by a good call, and overwritten
    _, call_good = _forward_call(fn, layout, {}, out)
    assert call_good() is out and not (out == -4321.0).any()


_BACKWARD_ERRORS = [
    ("conv2d_backward", "strides-0", dict(strides=0), ValueError),
    ("conv2d_backward", "padding-neg", dict(padding=-1), ValueError),
    ("conv2d_backward", "dilation-0", dict(dilation_rate=0), ValueError),
    ("conv2d_backward", "groups-3", dict(groups=3), ValueError),
    ("conv2d_backward", "grad-out-shape", dict(grad_out="shape"), ValueError),
    ("conv2d_backward", "grad-out-f64", dict(grad_out="f64"), TypeError),
    ("conv2d_backward", "workspace", dict(), MemoryError),
    ("conv2d_backward", "workspace-no-input-grad", dict(input_grad=False), MemoryError),
    ("max_pool2d_backward", "strides-0", dict(strides=0), ValueError),
    ("max_pool2d_backward", "pad-exceeds-pool", dict(padding=3), ValueError),
    ("max_pool2d_backward", "grad-out-shape", dict(grad_out="shape"), ValueError),
    ("max_pool2d_backward", "grad-out-f64", dict(grad_out="f64"), TypeError),
    ("max_pool2d_backward", "workspace", dict(), MemoryError),
    ("avg_pool2d_backward", "pool-0", dict(pool_size=0), ValueError),
    ("avg_pool2d_backward", "count-include-pad-none", dict(count_include_pad=None), TypeError),
    ("avg_pool2d_backward", "grad-out-shape", dict(grad_out="shape"), ValueError),
    ("avg_pool2d_backward", "workspace", dict(), MemoryError),
]


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
@pytest.mark.parametrize("fn, name, over, exc", [pytest.param(*c, id=f"{c[0]}-{c[1]}")
                                                 for c in _BACKWARD_ERRORS])
def test_backward_error_leaves_inputs_untouched(fn, name, over, exc, layout, workspace_limit):
    x, kernel, _ = _base_arrays(layout)
    if fn == "conv2d_backward":
        args = dict(x=x, kernel=kernel, strides=1, padding="same", data_format=layout)
        y = convpool.conv2d(**args)
    else:
        args = dict(x=x, pool_size=3, strides=2, padding="same", data_format=layout)
        if fn.startswith("avg"):
            args["count_include_pad"] = False
        y = getattr(convpool, fn.replace("_backward", ""))(**args)
    grad_out = (np.arange(y.size, dtype=np.float32).reshape(y.shape) % 5) - 2
    args["grad_out"] = grad_out
    args.update(over)
    if isinstance(args["grad_out"], str):
        args["grad_out"] = (grad_out.astype(np.float64) if args["grad_out"] == "f64"
                            else np.zeros(y.shape[:-1] + (y.shape[-1] + 1,), np.float32))
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    if name.startswith("workspace"):
        workspace_limit(100)
    with pytest.raises(exc):
        getattr(convpool, fn)(**args)
    for k, v in before.items():
        assert_bitwise_equal(args[k], v, (fn, name), what=f"{k} after the error")


def _transpose_args(layout, over):
    """A good conv2d_transpose call on _base_arrays (kernel (3, 3, 16, 8): C_out 16),
    stride 2 (the data-gradient kernel), with ``over`` applied."""
    x, kernel, bias = _base_arrays(layout)
    args = dict(x=x, kernel=np.ascontiguousarray(kernel.transpose(0, 1, 3, 2)), bias=bias,
                strides=2, padding=1, output_padding=1, data_format=layout, activation="relu")
    args.update(over)
    if isinstance(args.get("kernel"), str):
        args["kernel"] = np.ascontiguousarray(kernel.transpose(0, 1, 3, 2)).astype(np.float64)
    return args


_TRANSPOSE_FORWARD_ERRORS = [
    ("strides-0", dict(strides=0), ValueError),
    ("strides-beyond-int64", dict(strides=(1, 2**63)), ValueError),
    ("padding-neg", dict(padding=-1), ValueError),
    ("output-padding-too-big", dict(output_padding=2), ValueError),
    ("output-empty", dict(padding=40), ValueError),
    ("bias-shape", dict(bias=np.ones(15, np.float32)), ValueError),
    ("groups-3", dict(groups=3), ValueError),
    ("activation", dict(activation="tanh"), ValueError),
    ("kernel-f64", dict(kernel="f64"), TypeError),
    ("workspace", dict(), MemoryError),
    ("workspace-stride-1", dict(strides=1, output_padding=None), MemoryError),  # the conv path
]


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
@pytest.mark.parametrize("name, over, exc", [pytest.param(*c, id=c[0])
                                             for c in _TRANSPOSE_FORWARD_ERRORS])
def test_conv2d_transpose_error_leaves_out_and_inputs_untouched(name, over, exc, layout,
                                                                workspace_limit):
    # the good call: the base one, at stride 1 for the conv path's workspace case
    base = {k: v for k, v in over.items() if k in ("strides", "output_padding")
            and exc is MemoryError}
    shape = convpool.conv2d_transpose(**_transpose_args(layout, base)).shape
    out = _sentinel_out(shape, np.float32)
    args = _transpose_args(layout, over)
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    if name.startswith("workspace"):
        workspace_limit(100)
    with pytest.raises(exc):
        convpool.conv2d_transpose(out=out, **args)
    workspace_limit(1 << 30)
    assert_bitwise_equal(out, _sentinel_out(shape, np.float32), name, what="out")
    for k, v in before.items():
        assert_bitwise_equal(args[k], v, name, what=f"{k} after the error")
    # the same out= is accepted by a good call, and overwritten
    assert convpool.conv2d_transpose(out=out, **_transpose_args(layout, base)) is out
    assert not (out == -4321.0).any()


_TRANSPOSE_BACKWARD_ERRORS = [
    ("strides-0", dict(strides=0), ValueError),
    ("output-padding-too-big", dict(output_padding=2), ValueError),
    ("groups-3", dict(groups=3), ValueError),
    ("grad-out-shape", dict(grad_out="shape"), ValueError),
    ("grad-out-f64", dict(grad_out="f64"), TypeError),
    ("workspace", dict(), MemoryError),
    ("workspace-no-input-grad", dict(input_grad=False), MemoryError),
]


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
@pytest.mark.parametrize("name, over, exc", [pytest.param(*c, id=c[0])
                                             for c in _TRANSPOSE_BACKWARD_ERRORS])
def test_conv2d_transpose_backward_error_leaves_inputs_untouched(name, over, exc, layout,
                                                                 workspace_limit):
    args = _transpose_args(layout, {})
    del args["bias"], args["activation"]
    y = convpool.conv2d_transpose(**args)
    grad_out = (np.arange(y.size, dtype=np.float32).reshape(y.shape) % 5) - 2
    args["grad_out"] = grad_out
    args.update(over)
    if isinstance(args["grad_out"], str):
        args["grad_out"] = (grad_out.astype(np.float64) if args["grad_out"] == "f64"
                            else np.zeros(y.shape[:-1] + (y.shape[-1] + 1,), np.float32))
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    if name.startswith("workspace"):
        workspace_limit(100)
    with pytest.raises(exc):
        convpool.conv2d_transpose_backward(**args)
    for k, v in before.items():
        assert_bitwise_equal(args[k], v, name, what=f"{k} after the error")


# ==================================================================== 4. concurrency
N_THREADS = 8
ROUNDS = 3


def _jobs(rng, dtype=np.float32):
    """Named calls of every public function on one set of inputs."""
    x = rng.standard_normal((2, 24, 40, 8)).astype(dtype)
    x[0, 3, 7, 2] = np.nan
    k = rng.standard_normal((3, 3, 8, 16)).astype(dtype)
    kd = rng.standard_normal((3, 3, 1, 8)).astype(dtype)
    b = rng.standard_normal(16).astype(dtype)
    g = rng.standard_normal((2, 24, 40, 16)).astype(dtype)
    gp = rng.standard_normal((2, 12, 20, 8)).astype(dtype)
    kt = rng.standard_normal((3, 3, 16, 8)).astype(dtype)  # conv2d_transpose: C_out 16
    gt = rng.standard_normal((2, 48, 80, 16)).astype(dtype)
    up = dict(strides=2, padding=1, output_padding=1)
    return {
        "conv2d_transpose": lambda: convpool.conv2d_transpose(x, kt, b, activation="relu", **up),
        "conv2d_transpose-s1": lambda: convpool.conv2d_transpose(x, kt, b, padding="same"),
        "conv2d_transpose_backward": lambda: convpool.conv2d_transpose_backward(gt, x, kt, **up),
        "conv2d": lambda: convpool.conv2d(x, k, b, padding="same", activation="relu"),
        "conv2d-gather": lambda: convpool.conv2d(x[:, :, :9], k, b, strides=(1, 2)),
        "conv2d-depthwise": lambda: convpool.conv2d(x, kd, groups=8, padding="same"),
        "max_pool2d": lambda: convpool.max_pool2d(x, 3, 2, "same"),
        "avg_pool2d": lambda: convpool.avg_pool2d(x, 3, 2, "same", count_include_pad=True),
        "conv2d_backward": lambda: convpool.conv2d_backward(g, x, k, padding="same"),
        "max_pool2d_backward": lambda: convpool.max_pool2d_backward(gp, x, 3, 2, "same"),
        "avg_pool2d_backward": lambda: convpool.avg_pool2d_backward(gp, x, 3, 2, "same"),
    }


def _as_tuple(r):
    return tuple(r) if isinstance(r, tuple) else (r,)


def _run_threads(work):
    """Run ``work(i)`` for i < N_THREADS in as many threads, released together."""
    barrier = threading.Barrier(N_THREADS)

    def start(i):
        barrier.wait()
        return work(i)

    with concurrent.futures.ThreadPoolExecutor(N_THREADS) as pool:
        return [f.result() for f in [pool.submit(start, i) for i in range(N_THREADS)]]


def _assert_same_results(got, expected, what):
    for name, result in got:
        for i, (a, e) in enumerate(zip(_as_tuple(result), _as_tuple(expected[name]))):
            if e is None:
                assert a is None, (what, name)
            else:
                assert_bitwise_equal(a, e, (what, name, i), what="concurrent vs serial")


def test_concurrent_calls_on_shared_inputs(rng):
    jobs = _jobs(rng)
    expected = {name: job() for name, job in jobs.items()}

    def work(i):
        order = list(jobs) * ROUNDS
        random.Random(i).shuffle(order)
        return [(name, jobs[name]()) for name in order]

    results = _run_threads(work)
    assert sum(len(r) for r in results) == N_THREADS * ROUNDS * len(jobs)
    for got in results:
        _assert_same_results(got, expected, "shared inputs")


def test_concurrent_calls_on_separate_inputs(rng):
    """Each thread has its own inputs (f32 or f64) and checks its own serial results."""
    sets = [_jobs(np.random.default_rng(100 + i), DTYPES[i % 2]) for i in range(N_THREADS)]
    expected = [{name: job() for name, job in jobs.items()} for jobs in sets]

    def work(i):
        return [(name, job()) for _ in range(ROUNDS) for name, job in sets[i].items()]

    for i, got in enumerate(_run_threads(work)):
        _assert_same_results(got, expected[i], f"thread {i}")


def test_shared_layer_object_from_all_threads(rng):
    """One Conv2D (and one MaxPool2D) object called from 8 threads at once."""
    conv = convpool.Conv2D(16, (3, 2), strides=(1, 2), padding="same", activation="relu", seed=3)
    pool = convpool.MaxPool2D(3, 2, padding="same")
    xs = [rng.standard_normal((2, 20, 33, 5)).astype(np.float32) for _ in range(N_THREADS)]
    expected = [(conv(x), pool(conv(x))) for x in xs]  # builds the layer once, serially

    def work(i):
        out = []
        for r in range(ROUNDS):
            j = (i + r) % N_THREADS  # threads share inputs too
            y = conv(xs[j])
            out.append((j, y, pool(y)))
        return out

    for got in _run_threads(work):
        for j, y, p in got:
            assert_bitwise_equal(y, expected[j][0], j, what="shared Conv2D")
            assert_bitwise_equal(p, expected[j][1], j, what="shared MaxPool2D")


def _gil_case(name, rng):
    """A call of one kind of kernel, a few tens of ms on one thread."""
    def arr(*shape):
        return rng.random(shape, dtype=np.float32)

    if name == "conv2d":
        x, k = arr(8, 192, 192, 32), arr(3, 3, 32, 32)
        return lambda: convpool.conv2d(x, k, padding="same")
    if name == "conv2d_backward":
        x, k, g = arr(4, 192, 192, 32), arr(3, 3, 32, 32), arr(4, 192, 192, 32)
        return lambda: convpool.conv2d_backward(g, x, k, padding="same")
    if name == "max_pool2d_backward":
        x = arr(4, 192, 192, 32)
        return lambda: convpool.max_pool2d_backward(x, x, 3, 1, "same")
    x = arr(8, 384, 384, 32)  # the forward pools stream fast: a bigger input
    return lambda: getattr(convpool, name)(x, 3, 1, "same")


@pytest.mark.parametrize("name", ["conv2d", "max_pool2d", "avg_pool2d", "conv2d_backward",
                                  "max_pool2d_backward"])
def test_gil_released_during_kernels(name, num_threads, rng):
    """While one thread is inside a kernel, another thread keeps running Python.

    A counting thread spins on a Python loop.  A kernel call that held the GIL
    would stop it for the whole call, except for one switch interval (set to
    1 ms here) before the call starts; with the GIL released it counts through
    the call (at full speed with a free core, at about half on one core).  Its
    speed is measured first, while the main thread sleeps.  No ratio of
    timings is compared, so a slow or busy machine does not make this fail.
    """
    num_threads(1)  # process-wide; the fixture restores the default
    call = _gil_case(name, rng)
    call()  # warm up
    ticks, stop = [0], threading.Event()

    def count():
        n = 0
        while not stop.is_set():
            n += 1
            ticks[0] = n

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    counter = threading.Thread(target=count)
    counter.start()
    try:
        t0, c0 = time.perf_counter(), ticks[0]
        time.sleep(0.05)
        rate = (ticks[0] - c0) / (time.perf_counter() - t0)  # ticks per second, alone
        c0, t0 = ticks[0], time.perf_counter()
        call()
        spent = time.perf_counter() - t0
        counted = (ticks[0] - c0) / rate  # seconds the counter ran during the call
    finally:
        stop.set()
        counter.join()
        sys.setswitchinterval(interval)
    assert spent > 0.01, f"{name} took {spent * 1e3:.1f} ms: too short to tell"
    assert counted > 0.2 * spent, (
        f"during {name} ({spent * 1e3:.0f} ms) another Python thread ran for only "
        f"{counted * 1e3:.1f} ms: the GIL is held while the kernel runs")


# ========================================================================= 5. leaks
def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc/self/statm")
@pytest.mark.skipif(SANITIZED, reason="ASan holds freed memory in its quarantine, so RSS "
                    "grows by design; ASan's own heap checks cover this build")
def test_no_leaks_over_2000_calls(workspace_limit):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 16, 16, 8)).astype(np.float32)  # 8 KiB in, 16 KiB out
    xf = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    k = rng.standard_normal((3, 3, 8, 16)).astype(np.float32)
    kd = rng.standard_normal((3, 3, 1, 8)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    y = convpool.conv2d(x, k, b, padding="same")
    g = np.ones_like(y)
    gp = np.ones((1, 8, 8, 8), np.float32)
    out = np.empty_like(y)
    pout = np.empty_like(gp)
    kt = rng.standard_normal((3, 3, 16, 8)).astype(np.float32)  # conv2d_transpose: C_out 16
    xt = np.ascontiguousarray(x[:, :8, :8])  # 2 KiB in, 16 KiB out (stride 2)
    up = dict(strides=2, padding=1, output_padding=1)
    gt = np.ones((1, 16, 16, 16), np.float32)
    tout = np.empty((1, 8, 8, 16), np.float32)
    conv_layer = convpool.Conv2D(16, 3, padding="same", activation="relu", seed=0)
    pool_layer = convpool.AvgPool2D(2)

    def layer_step():
        yl = conv_layer.forward(x, training=True)
        conv_layer.backward(np.ones_like(yl))
        yp = pool_layer.forward(x, training=True)
        pool_layer.backward(np.ones_like(yp))

    def expect(exc, fn):
        def call():
            try:
                fn()
            except exc:
                return
            raise AssertionError(f"expected {exc.__name__}")
        return call

    calls = {
        "conv2d": lambda: convpool.conv2d(x, k, b, padding="same"),
        "conv2d-out": lambda: convpool.conv2d(x, k, b, padding="same", out=out),
        "conv2d-nchw": lambda: convpool.conv2d(xf, k, b, data_format="channels_first"),
        "conv2d-depthwise": lambda: convpool.conv2d(x, kd, groups=8, padding="same"),
        "conv2d-pointwise": lambda: convpool.conv2d(x, k[:1, :1]),
        "max_pool2d": lambda: convpool.max_pool2d(x, 2),
        "max_pool2d-out": lambda: convpool.max_pool2d(x, 2, out=pout),
        "avg_pool2d": lambda: convpool.avg_pool2d(x, 3, 2, "same", count_include_pad=True),
        "conv2d_backward": lambda: convpool.conv2d_backward(g, x, k, padding="same"),
        "max_pool2d_backward": lambda: convpool.max_pool2d_backward(gp, x, 2),
        "avg_pool2d_backward": lambda: convpool.avg_pool2d_backward(gp, x, 2),
        "conv2d_transpose": lambda: convpool.conv2d_transpose(xt, kt, b, **up),
        "conv2d_transpose-s1-out": lambda: convpool.conv2d_transpose(xt, kt, b, padding="same",
                                                                     out=tout),
        "conv2d_transpose_backward": lambda: convpool.conv2d_transpose_backward(gt, xt, kt, **up),
        "conv2d_transpose-ValueError": expect(
            ValueError, lambda: convpool.conv2d_transpose(xt, kt, output_padding=1)),
        "layers-forward-backward": layer_step,
        "conv2d-ValueError": expect(ValueError, lambda: convpool.conv2d(x, k, strides=0)),
        "conv2d-TypeError": expect(TypeError, lambda: convpool.conv2d(x, k.astype(float))),
    }
    capped = {  # raised by the workspace cap, after the call has planned its buffers
        "conv2d-MemoryError": lambda: convpool.conv2d(x, k, b, padding="same"),
        "max_pool2d-MemoryError": lambda: convpool.max_pool2d(x, 2),
        "conv2d_backward-MemoryError": lambda: convpool.conv2d_backward(g, x, k, padding="same"),
        "max_pool2d_backward-MemoryError": lambda: convpool.max_pool2d_backward(gp, x, 2),
        "conv2d_transpose-MemoryError": lambda: convpool.conv2d_transpose(xt, kt, b, **up),
        "conv2d_transpose_backward-MemoryError":
            lambda: convpool.conv2d_transpose_backward(gt, xt, kt, **up),
    }
    growth = {}

    def measure(name, fn):
        for _ in range(100):
            fn()
        gc.collect()
        before = _rss()
        for _ in range(2000):
            fn()
        gc.collect()
        growth[name] = _rss() - before

    for name, fn in calls.items():
        measure(name, fn)
    workspace_limit(100)
    for name, fn in capped.items():
        measure(name, expect(MemoryError, fn))
    report = ", ".join(f"{n}: {v / 1e6:+.2f} MB" for n, v in growth.items())
    assert sum(growth.values()) < 10e6, f"RSS grew over 2000 calls each: {report}"
    assert max(growth.values()) < 5e6, f"RSS grew over 2000 calls each: {report}"


# ==================================================================== 6. big tensors
BIG_SIDE = 46341  # 46341**2 = 2,147,488,281 > 2**31 elements (8.6 GB of float32)
TAIL_ROWS = 40  # the last rows hold random data; everything before holds HEAD_VALUE
HEAD_VALUE = 1e30  # wins every max and swamps every sum: a read from a wrong place shows


def _available_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


@pytest.fixture(scope="module")
def big_image():
    """(1, 46341, 46341, 1) float32: HEAD_VALUE, then TAIL_ROWS rows of random data."""
    if _available_bytes() < 14 << 30:
        pytest.skip("needs about 14 GB of free memory")
    x = np.empty((1, BIG_SIDE, BIG_SIDE, 1), np.float32)
    assert x.size > 2**31
    x[:, :-TAIL_ROWS] = HEAD_VALUE
    rng = np.random.default_rng(2**31)
    x[:, -TAIL_ROWS:] = rng.standard_normal((1, TAIL_ROWS, BIG_SIDE, 1)).astype(np.float32)
    cache = convpool.get_buffer_cache()["max_bytes"]
    try:
        yield x
    finally:
        del x
        convpool.set_buffer_cache(0)  # drop any recycled result buffers too
        convpool.set_buffer_cache(cache)
        gc.collect()


def _tail_rows(pool_or_kernel, stride, out_rows):
    """First input row of the last ``out_rows`` output rows (valid padding)."""
    oh = (BIG_SIDE - pool_or_kernel) // stride + 1
    return (oh - out_rows) * stride


@pytest.mark.bigmem
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_over_2_31_elements_far_end(big_image, kind):
    """Pool 5, stride 16: the last window ends on the last row and column."""
    assert (BIG_SIDE - 5) % 16 == 0
    fn, ref_fn = ((convpool.max_pool2d, reference.max_pool2d) if kind == "max" else
                  (convpool.avg_pool2d, reference.avg_pool2d))
    got = fn(big_image, 5, 16)
    assert got.shape == (1, 2897, 2897, 1)
    start = _tail_rows(5, 16, 2)
    assert start >= BIG_SIDE - TAIL_ROWS
    tail = big_image[:, start:]
    if kind == "max":
        assert_bitwise_equal(got[:, -2:], ref_fn(tail, 5, 16), "tail", what="max_pool2d tail")
    else:
        want = ref_fn(tail.astype(np.float64), 5, 16)
        assert_conv_close(got[:, -2:], want, avg_pool_tolerance(tail, 5, np.float32, strides=16),
                          "avg_pool2d tail")
    # and the head: every window there sees only HEAD_VALUE
    assert (got[:, :-3] == np.float32(HEAD_VALUE)).all()


@pytest.mark.bigmem
def test_conv2d_over_2_31_elements_far_end(big_image):
    """3x3 stride 6 (the ROWS path, borders gathered): the last window ends on
    the last row and column; the tail against the reference on the tail slice."""
    assert (BIG_SIDE - 3) % 6 == 0
    rng = np.random.default_rng(7)
    kernel = rng.standard_normal((3, 3, 1, 2)).astype(np.float32)
    bias = np.array([0.5, -0.25], np.float32)
    got = convpool.conv2d(big_image, kernel, bias, strides=6)
    assert got.shape == (1, 7724, 7724, 2)
    start = _tail_rows(3, 6, 4)
    assert start >= BIG_SIDE - TAIL_ROWS
    tail = big_image[:, start:]
    want = reference.conv2d(tail.astype(np.float64), kernel.astype(np.float64),
                            bias.astype(np.float64), strides=6)
    tol = conv_tolerance(tail, kernel, np.float32, bias=bias, strides=6)
    assert_conv_close(got[:, -4:], want, tol, "conv2d tail")
    head = reference.conv2d(np.full((1, 3, 3, 1), HEAD_VALUE), kernel.astype(np.float64),
                            bias.astype(np.float64))
    np.testing.assert_allclose(got[0, 100, 100], head[0, 0, 0], rtol=2 * gamma(10, np.float32))


# ================================================================= 7. threadpoolctl
def test_threadpoolctl_lists_the_openmp_runtime():
    if not OPENMP:
        pytest.skip("built without OpenMP")
    pytest.importorskip("threadpoolctl")
    proc = _run_python(None, args=["-m", "threadpoolctl", "-i", "convpool"])
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    openmp = [e for e in info if e.get("user_api") == "openmp"]
    assert openmp, f"no OpenMP runtime in {info}"
    runtime = convpool._config.config()["openmp_runtime"]
    paths = [os.path.realpath(e["filepath"]) for e in openmp]
    assert os.path.realpath(runtime) in paths, (runtime, paths)


# ==================================================================== 8. regressions
def _run_python(code, *, args=None, timeout=300):
    cmd = [sys.executable] + (args if args is not None else ["-c", textwrap.dedent(code)])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _describe_exit(proc):
    how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
           else f"exit status {proc.returncode}")
    return f"the subprocess ended with {how}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}"


def _json_result(proc):
    assert proc.returncode == 0, _describe_exit(proc)
    return json.loads(proc.stdout.strip().splitlines()[-1])


_POOL_SCRATCH_SCRIPT = """
import json, numpy as np, convpool
k = 2**61
x = np.array([[[[1.0, 2.0]]]], np.float32)  # (1, 1, 1, 2): one real cell per channel
try:
    y = convpool.{fn}(x, (2, k), padding=((1, 1), (k - 1, k - 1)))
    print(json.dumps(y.ravel().tolist()))
except (ValueError, MemoryError) as err:
    print(json.dumps(type(err).__name__))
"""


@pytest.mark.parametrize("fn", ["max_pool2d", "avg_pool2d"])
def test_regression_pool_scratch_overflow_with_huge_pool_width(fn):
    """pool_size (2, 2**61), padding ((1, 1), (2**61 - 1, 2**61 - 1)) on x of
    shape (1, 1, 1, 2): every window holds the one real cell, so the result is
    x itself ([1, 2]), or a ValueError / MemoryError.  Got: SIGSEGV."""
    got = _json_result(_run_python(_POOL_SCRATCH_SCRIPT.format(fn=fn)))
    assert got in ("ValueError", "MemoryError", [1.0, 2.0]), got


_AVG_DIVISOR_SCRIPT = """
import json, numpy as np, convpool
res = []
for kw in (2, 4, 8):  # kh * kw = 2**62 (fits int64), 2**63, 2**64
    kh = 2**61
    geo = dict(pool_size=(kh, kw), padding=((kh - 1, kh - 1), (kw - 1, kw - 1)),
               count_include_pad=True)
    x = np.array([[[[3.0, -5.0]]]], np.float32)
    try:
        if {backward}:
            y = convpool.avg_pool2d_backward(np.ones((1, 1, 1, 2), np.float32), x, **geo)
        else:
            y = convpool.avg_pool2d(x, **geo)
        res.append([kw, y.ravel().tolist()])
    except (ValueError, MemoryError) as err:
        res.append([kw, type(err).__name__])
print(json.dumps(res))
"""


@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
def test_regression_avg_pool_divisor_overflow(backward):
    """One real cell (value v) in a window of KH * KW cells, counting the padding:
    the average is v / (KH * KW) (gradient: 1 / (KH * KW)), exact in float32 for
    these powers of two; or a ValueError / MemoryError."""
    got = _json_result(_run_python(_AVG_DIVISOR_SCRIPT.format(backward=backward)))
    for kw, value in got:
        if value in ("ValueError", "MemoryError"):
            continue
        taps = 2**61 * kw
        want = [1 / taps, 1 / taps] if backward else [3.0 / taps, -5.0 / taps]
        assert value == want, f"pool_size (2**61, {kw}): got {value}, want {want}"


@pytest.mark.parametrize("dilation", [2**63, (1, 2**64), 10**30], ids=["2**63", "1x2**64",
                                                                      "10**30"])
@pytest.mark.parametrize("fn", ["conv2d", "conv2d_backward"])
def test_regression_dilation_past_int64_on_one_tap_axis(fn, dilation):
    """x (1, 1, 1, 1) of 1, kernel (1, 1, 1, 1) of 1: the reference returns [[[[1.]]]]
    (dilation cannot move the only tap); convpool must too, or raise ValueError."""
    x = np.ones((1, 1, 1, 1), np.float32)
    k = np.ones((1, 1, 1, 1), np.float32)
    args = (x, k) if fn == "conv2d" else (x, x, k)
    want = getattr(reference, fn)(*args, dilation_rate=dilation)
    try:
        got = getattr(convpool, fn)(*args, dilation_rate=dilation)
    except ValueError:
        return
    for a, e in zip(_as_tuple(got), _as_tuple(want)):
        assert_bitwise_equal(a, e, dilation)


_ZERO_HEIGHT_SCRIPT = """
import json, numpy as np, convpool
from convpool import reference
bad = []
for fn in ("max_pool2d", "avg_pool2d"):
    for dt in (np.float32, np.float64):
        for c in (1, 3, 8, 9, 17):
            x = np.ones((2, 0, 3, c), dt)  # no rows: every window holds only padding
            with np.errstate(all="ignore"):
                want = getattr(reference, fn)(x, 2, strides=1, padding=1)
            out = np.full(want.shape, 777.0, dt)
            try:
                got = getattr(convpool, fn)(x, 2, strides=1, padding=1, out=out)
            except ValueError:
                continue
            if not np.array_equal(got, want, equal_nan=True):
                bad.append([fn, np.dtype(dt).name, c, got.ravel()[:3].tolist()])
print(json.dumps(bad))
"""


def test_regression_pools_on_zero_height_input():
    """x (2, 0, 3, C), pool 2, stride 1, padding 1: the output (2, 1, 4, C) covers
    only padding.  Want ValueError, or the reference's values (-inf for max, NaN
    for avg); the W == 0 case already gives those."""
    bad = _json_result(_run_python(_ZERO_HEIGHT_SCRIPT))
    assert not bad, f"{len(bad)} of 20 combinations wrong, e.g. {bad[:4]}"


def test_zero_width_input_matches_reference():
    """The mirror case of the bug above (W == 0) is right: pinned so it stays so."""
    for fn in ("max_pool2d", "avg_pool2d"):
        for c in (1, 8, 9):
            x = np.ones((2, 3, 0, c), np.float32)
            with np.errstate(all="ignore"):
                want = getattr(reference, fn)(x, 2, strides=1, padding=1)
                got = getattr(convpool, fn)(x, 2, strides=1, padding=1)
            assert np.array_equal(got, want, equal_nan=True), (fn, c, got.ravel()[:4])


# conv2d_transpose with offsets near 2**40 that leave a tiny output: the index
# arithmetic of both paths must stay in 64 bits.  x (1, H, 2, 2) of small
# integers, kernel (KH, 1, 3, 2), bias [1, -2, 3]; each result worked by hand
# (the reference would allocate the 2**40-row full output).
_TRANSPOSE_HUGE_SCRIPT = """
import json, numpy as np, convpool
x = np.array([[[[1, 2], [3, -1]], [[-2, 4], [0, 5]]]], np.float64)  # (1, 2, 2, 2)
k = np.array([[[[1, 0], [0, 1], [2, -1]]], [[[3, 1], [-1, 2], [0, 4]]]], np.float64)  # (2, 1, 3, 2)
b = np.array([1.0, -2.0, 3.0])
T = 2**40
cases = {{
    # stride T on a 2-row input, tap 0 only, crop T from the top: row 0 is pixel row 1
    "stride-crop": (x, k[:1], dict(strides=(T, 1), padding=((T, 0), (0, 0)))),
    # one row, stride T, output padding T - 1, crop T - 2: two output-padding rows
    "output-padding-rows": (x[:, :1], k[:1], dict(strides=(T, 1), output_padding=(T - 1, 0),
                                                  padding=((T - 2, 0), (0, 0)))),
    # dilation T, stride 1 (the conv path): crop T from the top keeps tap 1 only ...
    "dilation-crop-top": (x[:, :1], k, dict(dilation_rate=(T, 1), padding=((T, 0), (0, 0)))),
    # ... from the bottom, tap 0 only
    "dilation-crop-bottom": (x[:, :1], k, dict(dilation_rate=(T, 1),
                                               padding=((0, T), (0, 0)))),
    # the same through the data-gradient kernel (stride 2 on the columns)
    "dilation-crop-top-s1x2": (x[:, :1], k, dict(strides=(1, 2), dilation_rate=(T, 1),
                                                 padding=((T, 0), (0, 0)))),
}}
res = {{}}
for name, (xx, kk, kw) in cases.items():
    try:
        y = convpool.conv2d_transpose(xx.astype(np.{dtype}), kk.astype(np.{dtype}),
                                      b.astype(np.{dtype}), **kw)
        res[name] = [list(y.shape), y.ravel().tolist()]
    except (ValueError, MemoryError) as err:
        res[name] = type(err).__name__
print(json.dumps(res))
"""


def _transpose_huge_expected():
    """The results worked by hand: y[0, r, j, o] = b[o] + sum_c x[row, j, c] k[tap, 0, o, c]."""
    x = np.array([[[[1, 2], [3, -1]], [[-2, 4], [0, 5]]]], np.float64)
    k = np.array([[[[1, 0], [0, 1], [2, -1]]], [[[3, 1], [-1, 2], [0, 4]]]], np.float64)
    b = np.array([1.0, -2.0, 3.0])

    def pixel(row, tap):  # (2 columns, 3 channels)
        return x[0, row] @ k[tap, 0].T + b

    interleaved = np.full((1, 1, 3, 3), b)  # stride 2 on 2 columns: columns 0 and 2 reached
    interleaved[0, 0, 0::2] = pixel(0, 1)
    return {
        "stride-crop": pixel(1, 0)[None, None],
        "output-padding-rows": np.broadcast_to(b, (1, 2, 2, 3)),
        "dilation-crop-top": pixel(0, 1)[None, None],
        "dilation-crop-bottom": pixel(0, 0)[None, None],
        "dilation-crop-top-s1x2": interleaved,
    }


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv2d_transpose_huge_offsets_tiny_output(dtype):
    """Each case gives its hand-worked result, or a ValueError / MemoryError;
    run in a subprocess, where a crash fails this test only."""
    got = _json_result(_run_python(_TRANSPOSE_HUGE_SCRIPT.format(dtype=dtype)))
    for name, want in _transpose_huge_expected().items():
        assert got[name] not in ("ValueError", "MemoryError"), (
            f"{name}: {got[name]} for a valid call with a small output")
        shape, values = got[name]
        assert tuple(shape) == want.shape, (name, shape, want.shape)
        assert values == want.ravel().tolist(), f"{name}: got {values}, want {want.ravel()}"


@pytest.mark.parametrize("over", [
    dict(strides=2**63), dict(strides=(1, 2**64)), dict(dilation_rate=10**30),
    dict(padding=2**64), dict(padding=((0, 2**63), (0, 0))), dict(output_padding=2**63),
    dict(strides=2**62, output_padding=(2**62 - 1, 0)), dict(dilation_rate=(2**63, 1)),
], ids=lambda over: "-".join(f"{k}={v}" for k, v in over.items()).replace(" ", ""))
@pytest.mark.parametrize("fn", ["conv2d_transpose", "conv2d_transpose_backward"])
def test_conv2d_transpose_arguments_past_int64(fn, over):
    """Past int64 (or an output past the 64-bit index range): a ValueError that
    says so, never an OverflowError or a crash, from the fast and the reference."""
    x = np.ones((1, 2, 2, 1), np.float32)
    k = np.ones((2, 1, 1, 1), np.float32)
    for impl in (convpool, reference):
        args = (x, k) if fn == "conv2d_transpose" else (np.ones((1, 3, 2, 1), np.float32), x, k)
        with pytest.raises(ValueError):
            getattr(impl, fn)(*args, **over)


@pytest.mark.parametrize("dilation", [2**40, 2**61, (1, 2**62)], ids=["2**40", "2**61", "1x2**62"])
@pytest.mark.parametrize("fn", ["conv2d_transpose", "conv2d_transpose_backward"])
def test_conv2d_transpose_dilation_on_one_tap_axes(fn, dilation):
    """Kernel (1, 1, 1, 1): dilation cannot move the only tap; convpool returns
    the reference's result, or a ValueError like it."""
    x = np.full((1, 2, 3, 1), 3.0, np.float32)
    k = np.full((1, 1, 1, 1), 2.0, np.float32)
    args = (x, k) if fn == "conv2d_transpose" else (np.ones((1, 2, 3, 1), np.float32), x, k)
    try:
        want = getattr(reference, fn)(*args, dilation_rate=dilation)
    except ValueError:
        with pytest.raises(ValueError):
            getattr(convpool, fn)(*args, dilation_rate=dilation)
        return
    got = getattr(convpool, fn)(*args, dilation_rate=dilation)
    for a, e in zip(_as_tuple(got), _as_tuple(want)):
        assert_bitwise_equal(a, e, dilation)


@pytest.mark.parametrize("strides", [1, 2], ids=["s1", "s2"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_conv2d_transpose_odd_magnitudes(dtype, strides, rng):
    """Subnormals, values whose products come near overflow (K of them summed
    stay below it), signed zeros and ones mixed: finite results within the
    derived bound of the float64 reference, forward and backward."""
    fi = np.finfo(dtype)
    big = np.sqrt(fi.max / 64)  # 27 products of big * big stay finite
    sub = fi.tiny / 2**10  # subnormal
    values = np.array([0.0, -0.0, sub, -sub, big, -big, 1.0, -1.0, fi.tiny], dtype)
    x = rng.choice(values, size=(2, 5, 7, 3))
    kernel = rng.choice(values, size=(3, 3, 4, 3))
    bias = rng.choice(values, size=4)
    kw = dict(strides=strides, padding="same")
    got = convpool.conv2d_transpose(x, kernel, bias, **kw)
    ref = reference.conv2d_transpose(_f64(x), _f64(kernel), _f64(bias), **kw)
    assert np.isfinite(ref).all() and (np.abs(ref) > 1).any(), "precondition"
    _assert_same_specials(got, ref, (dtype, strides))
    assert_conv_close(got, ref, transpose_tolerance(x, kernel, dtype, bias=bias, **kw),
                      (DTYPE_IDS[dtype], strides, "forward"))
    g = rng.choice(values, size=got.shape)
    fast_b = convpool.conv2d_transpose_backward(g, x, kernel, **kw)
    ref_b = reference.conv2d_transpose_backward(_f64(g), _f64(x), _f64(kernel), **kw)
    for name, a, r in zip(("grad_x", "grad_kernel", "grad_bias"), fast_b, ref_b):
        assert np.isfinite(a).all() == np.isfinite(r).all(), name
        _assert_same_specials(a, r, (name, dtype, strides))
