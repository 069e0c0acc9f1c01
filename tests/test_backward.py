"""Backward passes: conv2d_backward, max_pool2d_backward, avg_pool2d_backward.

Tiers, as for the forward functions (``tests/test_conv2d.py``):
  * random data against ``convpool.reference`` in float64, under bounds derived
    from the summation error of each gradient (:func:`conv_backward_tolerances`,
    :func:`pool_backward_tolerance`), on edge geometries and a hypothesis sweep;
  * integer data small enough that every partial sum is exact: the fast
    gradients equal the float64 reference bit for bit, in both dtypes;
  * central finite differences in float64 of ``L = sum(f(x) * G)``, which check
    the fast gradients and the references against the forward definition;
  * hand-built max-pool windows (ties, NaN, all -inf, padding) with expectations
    worked out by hand;
  * bitwise invariance under the thread count, the layout, strided views and
    batch slicing (grad_x only: grad_kernel and grad_bias sum over the batch);
  * bad arguments, untouched (read-only) inputs, input_grad=False, empty sizes.
"""

from __future__ import annotations

import functools
import itertools
import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convpool
from convpool import reference
from convpool._shapes import window_2d
from _helpers import conv_configs as helper_conv_configs
from _helpers import (
    assert_bitwise_equal,
    assert_conv_close,
    case_id,
    gamma,
    guarded,
    small_ints,
    strided_copy,
    to_layout,
)

DTYPES = (np.float32, np.float64)
LAYOUTS = ("channels_last", "channels_first")
THREAD_COUNTS = (1, 2, 3, 5, 8)


# ============================================================================ helpers
def _pair(value):
    return (value, value) if np.ndim(value) == 0 else tuple(value)


def _abs64(a):
    return np.abs(np.asarray(a, dtype=np.float64))


def conv_backward_tolerances(grad_out, x, kernel, dtype, **conv_kwargs):
    """Elementwise bounds on ``|fast - ref|`` for ``(grad_x, grad_kernel, grad_bias)``.

    Derivation.  Every gradient element is a sum of products (or of values):

    * ``grad_x[n, i, j, c] = sum g[n, oh, ow, o] * kernel[a, b, c', o]`` over the
      taps ``(a, b)`` that reach ``(i, j)`` and the ``o`` of c's group: at most
      ``n_x = KH * KW * C_out / groups`` products;
    * ``grad_kernel[a, b, c', o] = sum x_pad[n, ...] * g[n, oh, ow, o]`` over the
      ``n_k = N * OH * OW`` output pixels (taps in the padding give exact zeros);
    * ``grad_bias[o] = sum g[n, oh, ow, o]``: ``N * OH * OW`` terms, no product.

    Summing m products in any order and grouping (the fast kernels use tiles,
    chunks and FMA; the reference uses BLAS matrix products) satisfies
    (Higham, *Accuracy and Stability*, 3.1 and 3.5)

        |fl(s) - s| <= gamma_m * S,     S = sum of |products|,

    with ``gamma_m = m u / (1 - m u)``, ``u`` the unit roundoff of the dtype the
    sum is carried in (a sum of m exact terms needs only ``gamma_{m-1}``).  The
    fast result (compute dtype) and the float64 reference (``gamma^{f64}``, far
    smaller) both obey it against the exact value, so

        |fast - ref| <= 2 gamma_m S      (compute dtype's u).

    ``S`` is the same gradient of absolute values, computed by the float64
    reference: ``grad_x`` of ``(|g|, x, |kernel|)`` (grad_x does not read x),
    ``grad_kernel`` and ``grad_bias`` of ``(|g|, |x|, kernel)``; its own relative
    error (``gamma^{f64}_m``) is absorbed by using ``S * (1 + gamma^{f64}_m)``.
    A floor of ``4 * tiny`` per element covers underflowing products (each
    contributes at most ``u * tiny``, and ``m u < 1``), as in ``conv_tolerance``.

    Parameters
    ----------
    grad_out : ndarray of the forward output's shape (in ``data_format``)
    x : ndarray
        The conv input, in ``conv_kwargs['data_format']``.
    kernel : ndarray of shape (KH, KW, C_in // groups, C_out)
    dtype : dtype-like
        The compute dtype of the fast call.
    **conv_kwargs
        ``strides``, ``padding``, ``dilation_rate``, ``groups``, ``data_format``.

    Returns
    -------
    (tol_x, tol_kernel, tol_bias) : ndarrays of float64, shaped like the gradients
        Never loosen them to make a test pass: a failure is a finding.
    """
    kh, kw, _, oc = np.shape(kernel)
    groups = conv_kwargs.get("groups", 1)
    n_x = max(kh * kw * (oc // groups), 1)
    n_k = max(int(np.size(grad_out)) // max(oc, 1), 1)
    g_abs = _abs64(grad_out)
    s_x = reference.conv2d_backward(g_abs, _abs64(x), _abs64(kernel), **conv_kwargs)[0]
    _, s_k, s_b = reference.conv2d_backward(
        g_abs, _abs64(x), np.asarray(kernel, np.float64), input_grad=False, **conv_kwargs
    )
    tiny = float(np.finfo(dtype).tiny)

    def bound(s, m):
        return 2 * gamma(m, dtype) * (s * (1 + gamma(m, np.float64))) + 4 * tiny

    return bound(s_x, n_x), bound(s_k, n_k), bound(s_b, n_k)


def pool_backward_tolerance(grad_out, x, pool_size, dtype, *, is_max, **pool_kwargs):
    """Elementwise bound on ``|fast - ref|`` for max/avg_pool2d_backward's grad_x.

    Derivation.  A cell of grad_x is the sum of one term per window that
    contains it (max: the windows it wins), at most
    ``m = ceil(KH / SH) * ceil(KW / SW)`` windows.  Max: the terms are grad_out
    values, exact, so any order costs ``gamma_{m-1} * S``.  Avg: each term is
    ``fl(g / d)`` (one rounding, ``u``), then ``m - 1`` additions, so
    ``gamma_m * S``.  ``S`` is the same backward pass on ``|grad_out|`` (the
    float64 reference; max uses the same x, so the same winners).  Fast and
    reference both obey the bound against the exact value:
    ``|fast - ref| <= 2 gamma_m S`` (compute dtype's u), plus ``4 * tiny``.
    With ``m == 1`` and max pooling the bound is 0: the result must be exact.

    Parameters
    ----------
    grad_out, x : ndarray
    pool_size : int or (int, int)
    dtype : dtype-like
        The compute dtype.
    is_max : bool
    **pool_kwargs
        ``strides``, ``padding``, ``data_format`` and (avg) ``count_include_pad``.

    Returns
    -------
    ndarray of float64, x's shape
    """
    ph, pw = _pair(pool_size)
    strides = pool_kwargs.get("strides")
    sh, sw = (ph, pw) if strides is None else _pair(strides)
    m = math.ceil(ph / sh) * math.ceil(pw / sw)
    x64 = np.asarray(x, np.float64)
    if is_max:
        s = reference.max_pool2d_backward(_abs64(grad_out), x64, pool_size, **pool_kwargs)
        g = gamma(m - 1, dtype) if m > 1 else 0.0
        g64 = gamma(m - 1, np.float64) if m > 1 else 0.0
        return 2 * g * s * (1 + g64)
    s = reference.avg_pool2d_backward(_abs64(grad_out), x64, pool_size, **pool_kwargs)
    return 2 * gamma(m, dtype) * s * (1 + gamma(m, np.float64)) + 4 * float(np.finfo(dtype).tiny)


# ---------------------------------------------------------------------- conv cases
_CONV_DEFAULTS = dict(n=1, strides=1, padding="valid", dilation=1, groups=1)


def _geom(**kw):
    cfg = dict(_CONV_DEFAULTS)
    cfg.update(kw)
    return cfg


def _kernel_shape(cfg):
    kh, kw = _pair(cfg["kernel"])
    return (kh, kw, cfg["c"] // cfg["groups"], cfg["oc"])


def _conv_out_nhwc(cfg):
    kh, kw, _, oc = _kernel_shape(cfg)
    win = window_2d((cfg["h"], cfg["w"]), (kh, kw), cfg["strides"], cfg["padding"],
                    cfg["dilation"])
    return (cfg["n"], win.oh, win.ow, oc)


def _conv_kwargs(cfg):
    return dict(strides=cfg["strides"], padding=cfg["padding"], dilation_rate=cfg["dilation"],
                groups=cfg["groups"], data_format=cfg.get("data_format", "channels_last"))


def _conv_case(cfg, rng, fill):
    """grad_out, x (both in cfg's layout), kernel, and the conv keyword arguments."""
    dtype = cfg["dtype"]
    layout = cfg.get("data_format", "channels_last")
    x = to_layout(fill(rng, (cfg["n"], cfg["h"], cfg["w"], cfg["c"]), dtype), layout)
    kernel = fill(rng, _kernel_shape(cfg), dtype)
    g = to_layout(fill(rng, _conv_out_nhwc(cfg), dtype), layout)
    return g, x, kernel, _conv_kwargs(cfg)


def _normal(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _ints4(rng, shape, dtype):
    return small_ints(rng, shape, dtype, bound=4)


def _ref_conv64(g, x, kernel, **kwargs):
    return reference.conv2d_backward(np.asarray(g, np.float64), np.asarray(x, np.float64),
                                     np.asarray(kernel, np.float64), **kwargs)


_GRAD_NAMES = ("grad_x", "grad_kernel", "grad_bias")


def _check_conv_against_reference(cfg, g, x, kernel, kwargs):
    got = convpool.conv2d_backward(g, x, kernel, **kwargs)
    ref = _ref_conv64(g, x, kernel, **kwargs)
    tols = conv_backward_tolerances(g, x, kernel, cfg["dtype"], **kwargs)
    shapes = (x.shape, kernel.shape, (kernel.shape[3],))
    for name, fast, r, tol, shape in zip(_GRAD_NAMES, got, ref, tols, shapes):
        assert fast.dtype == cfg["dtype"], f"{name} dtype {fast.dtype}; {cfg}"
        assert fast.shape == shape, f"{name} shape {fast.shape} != {shape}; {cfg}"
        assert fast.flags.c_contiguous, f"{name} not C-contiguous; {cfg}"
        assert_conv_close(fast, r, tol, f"{name}: {case_id(**cfg)}")


# Edge geometries: sizes 1 and primes, non-square kernels, stride > kernel (cells
# no window reaches), stride < kernel (overlap), dilation with stride, groups
# (depthwise, channel multiplier, C_out / groups around the f32 (16) and f64 (8)
# panels), every padding form, output widths around the 6-row micro-kernel and
# >= 24, KW * C_in / groups (the data gradient's panel width) around 8 and 16,
# and long reductions that shrink the data-gradient tile to 6 pixels (several
# tiles per row) and the weight-gradient tile to a few rows.
CONV_GEOMETRIES = [
    _geom(h=1, w=1, c=1, oc=1, kernel=1),
    _geom(h=1, w=1, c=3, oc=7, kernel=3, padding="same"),  # every tap but the centre padded
    _geom(n=3, h=7, w=5, c=3, oc=8, kernel=(3, 2), strides=(2, 1), padding=((1, 0), (1, 1)),
          dilation=(1, 2)),
    _geom(n=2, h=13, w=11, c=2, oc=16, kernel=(2, 5)),
    _geom(h=11, w=13, c=5, oc=17, kernel=(1, 4), strides=(1, 3), padding="same"),
    _geom(h=5, w=7, c=4, oc=15, kernel=(4, 1), strides=(3, 1), padding=2),
    # stride larger than the kernel
    _geom(n=2, h=11, w=13, c=3, oc=16, kernel=2, strides=3),
    _geom(h=13, w=7, c=2, oc=31, kernel=1, strides=(4, 5), padding="same"),
    _geom(h=9, w=9, c=1, oc=7, kernel=(2, 1), strides=(3, 4), padding=(1, 0)),
    # dilation with stride
    _geom(n=2, h=13, w=11, c=3, oc=8, kernel=3, strides=2, padding="same", dilation=2),
    _geom(h=17, w=13, c=2, oc=9, kernel=(2, 3), strides=(3, 2), padding=((2, 1), (0, 3)),
          dilation=(3, 2)),
    # groups
    _geom(n=2, h=7, w=7, c=4, oc=8, kernel=3, padding="same", groups=2),
    _geom(h=6, w=9, c=6, oc=9, kernel=(2, 3), strides=(1, 2), padding=1, groups=3),
    _geom(n=3, h=5, w=11, c=5, oc=5, kernel=3, padding="same", groups=5),  # depthwise
    _geom(h=7, w=13, c=3, oc=6, kernel=(3, 2), strides=2, padding=(1, 1), dilation=(1, 2),
          groups=3),  # depthwise, multiplier 2
    _geom(h=8, w=8, c=16, oc=34, kernel=1, groups=2),  # 17 outputs per group
    _geom(h=5, w=6, c=16, oc=32, kernel=(3, 2), padding="same", groups=2),  # KW*Cg = 16
    _geom(h=4, w=7, c=9, oc=27, kernel=(1, 2), groups=3),
    # padding forms, pads as large as the input
    _geom(h=3, w=2, c=2, oc=3, kernel=(3, 2), padding=((2, 2), (1, 1))),
    _geom(h=2, w=3, c=3, oc=5, kernel=(5, 4), strides=(2, 3), padding=((3, 4), (2, 5))),
    _geom(n=3, h=6, w=6, c=2, oc=4, kernel=2, strides=2, padding="same"),  # "same" adds nothing
    _geom(h=7, w=9, c=3, oc=7, kernel=4, strides=2, padding="same"),  # stride 2, pad (1, 2)
    _geom(h=6, w=7, c=3, oc=16, kernel=(4, 3), padding=[1, 2]),
    # output widths around the micro-kernel's 6 rows, and wide rows
    _geom(n=2, h=3, w=7, c=3, oc=7, kernel=(2, 3)),  # OW 5
    _geom(h=3, w=8, c=3, oc=17, kernel=(2, 3)),  # OW 6
    _geom(n=3, h=3, w=9, c=3, oc=16, kernel=(2, 3)),  # OW 7
    _geom(h=4, w=15, c=1, oc=8, kernel=(2, 3)),  # OW 13, KW*Cg = 3
    _geom(n=2, h=4, w=29, c=4, oc=17, kernel=(2, 3)),  # OW 27
    _geom(n=2, h=3, w=50, c=3, oc=16, kernel=3, strides=2, padding="same"),  # OW 25
    _geom(h=3, w=26, c=17, oc=9, kernel=(2, 1), padding=(0, 1)),  # OW 28, KW*Cg = 17
    # long reductions: data-gradient tile of 6 pixels (5 tiles per row), tiny
    # weight-gradient tiles; and a grouped one with a 12- or 24-pixel tile
    _geom(h=4, w=27, c=600, oc=7, kernel=3),  # KW*Cg = 1800, OW 25
    _geom(n=2, h=3, w=34, c=256, oc=18, kernel=(1, 5), groups=2),  # KW*Cg = 640, OW 30
    # pointwise (1x1, stride 1, no padding, groups 1): grad_x by the forward kernel
    _geom(n=2, h=5, w=13, c=17, oc=16, kernel=1),
    _geom(h=7, w=6, c=3, oc=33, kernel=1, dilation=2, padding="same"),  # still pointwise
    _geom(n=3, h=4, w=29, c=64, oc=7, kernel=1, padding=((0, 0), (0, 0))),
    _geom(h=3, w=5, c=300, oc=9, kernel=(1, 1)),
    _geom(n=2, h=6, w=5, c=8, oc=8, kernel=1, strides=(1, 2)),  # 1x1 but strided: col2im
]


def _conv_params(geometries):
    out = []
    for geo, dtype, layout in itertools.product(geometries, DTYPES, LAYOUTS):
        cfg = dict(geo, dtype=np.dtype(dtype), data_format=layout)
        out.append(pytest.param(cfg, id=case_id(**cfg)))
    return out


CONV_EDGE_PARAMS = _conv_params(CONV_GEOMETRIES)


# ================================================================ 1. against reference
@pytest.mark.parametrize("cfg", CONV_EDGE_PARAMS)
def test_conv2d_backward_matches_reference(cfg, rng):
    g, x, kernel, kwargs = _conv_case(cfg, rng, _normal)
    _check_conv_against_reference(cfg, g, x, kernel, kwargs)


conv_configs = functools.partial(
    helper_conv_configs, batches=[1, 1, 2, 3], heights=[1, 2, 3, 4, 5, 7, 8, 11, 13],
    widths=[1, 2, 3, 5, 6, 7, 8, 11, 13, 25, 31], dtypes=DTYPES, layouts=LAYOUTS)


def test_conv2d_backward_hypothesis_sweep():
    ran = {"compared": 0}

    @settings(max_examples=120, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(cfg=conv_configs())
    def check(cfg):
        g, x, kernel, kwargs = _conv_case(cfg, np.random.default_rng(cfg["seed"]), _normal)
        _check_conv_against_reference(cfg, g, x, kernel, kwargs)
        ran["compared"] += 1

    check()
    assert ran["compared"] >= 60, ran


# ---------------------------------------------------------------------- pool cases
_POOL_DEFAULTS = dict(n=1, strides=None, padding="valid")


def _pgeom(**kw):
    cfg = dict(_POOL_DEFAULTS)
    cfg.update(kw)
    return cfg


# Pool geometries: stride >= pool height (band units) and < (row units), stride
# larger than the pool (cells no window covers), overlap, every padding form
# (pads up to pool - 1), "same" with stride 2, C around 8 and 16.
POOL_GEOMETRIES = [
    _pgeom(h=1, w=1, c=1, pool=1),
    _pgeom(n=3, h=7, w=5, c=3, pool=(3, 2), strides=(2, 1), padding=((1, 0), (1, 1))),
    _pgeom(h=11, w=13, c=8, pool=2, strides=3),  # stride > pool
    _pgeom(n=2, h=9, w=10, c=17, pool=3, strides=1, padding="same"),  # heavy overlap
    _pgeom(h=13, w=12, c=16, pool=(2, 3), strides=2, padding="same"),
    _pgeom(h=7, w=9, c=5, pool=(4, 3), padding=((3, 0), (0, 2))),  # bands with padding
    _pgeom(n=3, h=6, w=6, c=2, pool=2),
    _pgeom(h=5, w=31, c=3, pool=(1, 3), strides=(1, 2), padding=(0, 1)),
    _pgeom(n=2, h=8, w=7, c=9, pool=3, strides=(2, 3), padding=1),
    _pgeom(h=10, w=26, c=7, pool=(5, 2), strides=(5, 1), padding=((2, 2), (1, 0))),
    _pgeom(h=7, w=8, c=1, pool=2, strides=(3, 1), padding="same"),
    _pgeom(n=2, h=9, w=7, c=15, pool=(2, 4), strides=(1, 3), padding=((1, 1), (3, 3))),
]

POOL_KINDS = {
    "max": dict(is_max=True),
    "avg": dict(is_max=False, count_include_pad=False),
    "avg_cip": dict(is_max=False, count_include_pad=True),
}


def _pool_params(geometries):
    out = []
    for geo, kind, dtype, layout in itertools.product(geometries, POOL_KINDS, DTYPES, LAYOUTS):
        cfg = dict(geo, kind=kind, dtype=np.dtype(dtype), data_format=layout)
        out.append(pytest.param(cfg, id=f"{kind}-" + case_id(**{k: v for k, v in cfg.items()
                                                                if k != "kind"})))
    return out


POOL_EDGE_PARAMS = _pool_params(POOL_GEOMETRIES)


def _pool_out_nhwc(cfg):
    ph, pw = _pair(cfg["pool"])
    strides = (ph, pw) if cfg["strides"] is None else cfg["strides"]
    win = window_2d((cfg["h"], cfg["w"]), (ph, pw), strides, cfg["padding"], 1)
    return (cfg["n"], win.oh, win.ow, cfg["c"])


def _pool_kwargs(cfg):
    kw = dict(strides=cfg["strides"], padding=cfg["padding"],
              data_format=cfg.get("data_format", "channels_last"))
    if not POOL_KINDS[cfg["kind"]]["is_max"]:
        kw["count_include_pad"] = POOL_KINDS[cfg["kind"]]["count_include_pad"]
    return kw


def _pool_fns(cfg):
    if POOL_KINDS[cfg["kind"]]["is_max"]:
        return convpool.max_pool2d_backward, reference.max_pool2d_backward
    return convpool.avg_pool2d_backward, reference.avg_pool2d_backward


def _pool_case(cfg, rng, x_fill, g_fill):
    layout = cfg.get("data_format", "channels_last")
    x = to_layout(x_fill(rng, (cfg["n"], cfg["h"], cfg["w"], cfg["c"]), cfg["dtype"]), layout)
    g = to_layout(g_fill(rng, _pool_out_nhwc(cfg), cfg["dtype"]), layout)
    return g, x, _pool_kwargs(cfg)


@pytest.mark.parametrize("cfg", POOL_EDGE_PARAMS)
def test_pool_backward_matches_reference(cfg, rng):
    g, x, kwargs = _pool_case(cfg, rng, _normal, _normal)
    fast_fn, ref_fn = _pool_fns(cfg)
    got = fast_fn(g, x, cfg["pool"], **kwargs)
    assert got.dtype == cfg["dtype"] and got.shape == x.shape and got.flags.c_contiguous, cfg
    ref = ref_fn(g.astype(np.float64), x.astype(np.float64), cfg["pool"], **kwargs)
    tol = pool_backward_tolerance(g, x, cfg["pool"], cfg["dtype"],
                                  is_max=POOL_KINDS[cfg["kind"]]["is_max"], **kwargs)
    assert_conv_close(got, ref, tol, cfg)
    # nothing is lost or invented: each window's gradient lands, whole, on real
    # cells (not with count_include_pad, whose padded share is dropped).  Each
    # cell's error is at most gamma_m of its |terms| (see pool_backward_tolerance),
    # so the float64 sum of the cells is within 2 gamma_{m+1} sum|g| of sum(g).
    if POOL_KINDS[cfg["kind"]]["is_max"] or not kwargs.get("count_include_pad"):
        ph, pw = _pair(cfg["pool"])
        sh, sw = (ph, pw) if cfg["strides"] is None else _pair(cfg["strides"])
        m = math.ceil(ph / sh) * math.ceil(pw / sw)
        bound = 2 * gamma(m + 1, cfg["dtype"]) * float(np.abs(g).astype(np.float64).sum())
        diff = abs(got.astype(np.float64).sum() - g.astype(np.float64).sum())
        assert diff <= bound, f"sum(grad_x) - sum(grad_out) = {diff:.3e} > {bound:.3e}; {cfg}"


@st.composite
def pool_configs(draw):
    ph, pw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    form = draw(st.sampled_from(["valid", "same", "explicit", "default_strides"]))
    if form == "explicit":
        padding = ((draw(st.integers(0, ph - 1)), draw(st.integers(0, ph - 1))),
                   (draw(st.integers(0, pw - 1)), draw(st.integers(0, pw - 1))))
    else:
        padding = "same" if form == "same" else "valid"
    return dict(
        n=draw(st.sampled_from([1, 2, 3])), h=ph + draw(st.integers(0, 9)),
        w=pw + draw(st.integers(0, 12)), c=draw(st.sampled_from([1, 2, 3, 8, 9, 16, 17])),
        pool=(ph, pw), strides=None if form == "default_strides" else (sh, sw),
        padding=padding, kind=draw(st.sampled_from(sorted(POOL_KINDS))),
        dtype=np.dtype(draw(st.sampled_from(DTYPES))),
        data_format=draw(st.sampled_from(LAYOUTS)), seed=draw(st.integers(0, 2**32 - 1)),
    )


def test_pool_backward_hypothesis_sweep():
    """Random geometries; x with ties, NaN and -inf so the max rules are exercised."""
    ran = {"compared": 0}

    def x_fill(rng, shape, dtype):
        x = small_ints(rng, shape, dtype, bound=2)
        x[rng.random(shape) < 0.05] = np.nan
        x[rng.random(shape) < 0.05] = -np.inf
        return x

    @settings(max_examples=120, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(cfg=pool_configs())
    def check(cfg):
        g, x, kwargs = _pool_case(cfg, np.random.default_rng(cfg["seed"]), x_fill, _normal)
        fast_fn, ref_fn = _pool_fns(cfg)
        got = fast_fn(g, x, cfg["pool"], **kwargs)
        assert got.shape == x.shape and got.dtype == cfg["dtype"], cfg
        ref = ref_fn(g.astype(np.float64), x.astype(np.float64), cfg["pool"], **kwargs)
        tol = pool_backward_tolerance(g, x, cfg["pool"], cfg["dtype"],
                                      is_max=POOL_KINDS[cfg["kind"]]["is_max"], **kwargs)
        assert_conv_close(got, ref, tol, cfg)
        ran["compared"] += 1

    check()
    assert ran["compared"] >= 60, ran


# ================================================================== 2. exact tier
def _assert_exact(got, ref, cfg, what):
    """Exact equality of values (np.array_equal: the sign of a zero is not
    compared; a sum accumulated from +0 legitimately turns -0 products into +0)."""
    ref = np.asarray(ref)
    assert np.all(np.abs(ref) < 2**24) and np.array_equal(ref, np.round(ref)), (
        f"precondition: the {what} reference must be small integers; {cfg}"
    )
    assert got.dtype == cfg["dtype"], f"{what}: {got.dtype}; {cfg}"
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}; {cfg}"
    diff = got.astype(np.float64) != ref
    if diff.any():
        idx = tuple(int(i) for i in np.argwhere(diff)[0])
        raise AssertionError(
            f"{what}: fast differs from the exact reference in {int(diff.sum())} of "
            f"{ref.size} elements; first at {idx}: {got[idx]!r} vs {ref[idx]!r}\n"
            f"  config: {case_id(**cfg)}"
        )


@pytest.mark.parametrize("cfg", CONV_EDGE_PARAMS)
def test_conv2d_backward_exact_on_small_integers(cfg, rng):
    """Integers in [-4, 4]: every partial sum is an integer far below 2**24."""
    g, x, kernel, kwargs = _conv_case(cfg, rng, _ints4)
    got = convpool.conv2d_backward(g, x, kernel, **kwargs)
    ref = _ref_conv64(g, x, kernel, **kwargs)
    # benchdnn's rule: a mostly-zero result proves little.  Count only the
    # kernel taps that see some real input (the others are structurally zero).
    reach = _ref_conv64(np.ones_like(g), np.ones_like(x), kernel, input_grad=False,
                        **kwargs)[1] != 0
    if reach.sum() >= 16:
        nonzero = np.count_nonzero(ref[1][reach]) / reach.sum()
        assert nonzero >= 0.3, f"mistrusted case: {nonzero:.0%} of grad_kernel non-zero; {cfg}"
    if ref[0].size >= 16:
        assert np.count_nonzero(ref[0]) > 0, f"mistrusted case: grad_x all zero; {cfg}"
    for name, fast, r in zip(_GRAD_NAMES, got, ref):
        _assert_exact(fast, r, cfg, name)


@pytest.mark.parametrize("cfg", POOL_EDGE_PARAMS)
def test_pool_backward_exact_on_small_integers(cfg, rng):
    """Max: x in [-2, 2] (many ties) with NaN and -inf, integer grad_out; avg:
    grad_out a multiple of every possible divisor, so every share is an integer."""
    ph, pw = _pair(cfg["pool"])
    lcm = math.lcm(*range(1, ph * pw + 1))

    def x_fill(rng, shape, dtype):
        x = small_ints(rng, shape, dtype, bound=2)
        x[rng.random(shape) < 0.07] = np.nan
        x[rng.random(shape) < 0.07] = -np.inf
        return x

    def g_fill(rng, shape, dtype):
        return (small_ints(rng, shape, np.int64, bound=4) * lcm).astype(dtype)

    g, x, kwargs = _pool_case(cfg, rng, x_fill, g_fill)
    fast_fn, ref_fn = _pool_fns(cfg)
    got = fast_fn(g, x, cfg["pool"], **kwargs)
    ref = ref_fn(g.astype(np.float64), x.astype(np.float64), cfg["pool"], **kwargs)
    _assert_exact(got, ref, cfg, "grad_x")


# ============================================================ 3. finite differences
FD_EPS = 1e-6
FD_RTOL = 1e-3
FD_CONV = [
    _geom(n=2, h=5, w=6, c=3, oc=4, kernel=(3, 2)),
    _geom(h=7, w=6, c=4, oc=6, kernel=3, strides=2, padding="same", groups=2),
    _geom(n=2, h=8, w=7, c=2, oc=3, kernel=(2, 3), strides=(1, 2), padding=((1, 0), (2, 1)),
          dilation=(2, 1)),
    _geom(h=6, w=6, c=3, oc=6, kernel=3, padding=1, groups=3),  # depthwise, multiplier 2
    _geom(n=2, h=4, w=5, c=3, oc=4, kernel=1),  # pointwise
]


def _assert_directional(fd, analytic, scale, what):
    """|fd - analytic| <= rtol |analytic| + atol.

    L is linear in each argument, so the central difference has no truncation
    error; what remains is the rounding of the two L values, about
    ``u * scale / eps`` ~ 1e-10 * scale, where ``scale`` bounds the sum of |terms|
    of L.  ``atol = 1e-6 * scale`` leaves a wide margin over it and is still
    far below a wrong gradient's effect.
    """
    atol = 1e-6 * scale
    assert abs(fd - analytic) <= FD_RTOL * abs(analytic) + atol, (
        f"{what}: finite difference {fd!r} vs <gradient, direction> {analytic!r} "
        f"(|diff| {abs(fd - analytic):.3e}, atol {atol:.3e})"
    )


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("cfg", [pytest.param(c, id=case_id(**c)) for c in FD_CONV])
def test_conv2d_backward_finite_differences(cfg, layout, rng):
    cfg = dict(cfg, dtype=np.dtype(np.float64), data_format=layout)
    big_g, x, kernel, kwargs = _conv_case(cfg, rng, _normal)
    bias = rng.standard_normal(cfg["oc"])

    def loss(x_, k_, b_):
        return float(np.sum(reference.conv2d(x_, k_, b_, **kwargs) * big_g))

    scale = float(np.sum(np.abs(big_g) * reference.conv2d(np.abs(x) + 1, np.abs(kernel) + 1,
                                                          np.abs(bias) + 1, **kwargs)))
    grads = {
        "fast": convpool.conv2d_backward(big_g, x, kernel, **kwargs),
        "reference": reference.conv2d_backward(big_g, x, kernel, **kwargs),
    }
    for trial in range(3):
        dx = rng.standard_normal(x.shape)
        dk = rng.standard_normal(kernel.shape)
        db = rng.standard_normal(bias.shape)
        fd_x = (loss(x + FD_EPS * dx, kernel, bias) - loss(x - FD_EPS * dx, kernel, bias)) / (
            2 * FD_EPS)
        fd_k = (loss(x, kernel + FD_EPS * dk, bias) - loss(x, kernel - FD_EPS * dk, bias)) / (
            2 * FD_EPS)
        fd_b = (loss(x, kernel, bias + FD_EPS * db) - loss(x, kernel, bias - FD_EPS * db)) / (
            2 * FD_EPS)
        for who, (gx, gk, gb) in grads.items():
            where = f"{who}, direction {trial}; {case_id(**cfg)}"
            _assert_directional(fd_x, float(np.sum(gx * dx)), scale, f"grad_x ({where})")
            _assert_directional(fd_k, float(np.sum(gk * dk)), scale, f"grad_kernel ({where})")
            _assert_directional(fd_b, float(np.sum(gb * db)), scale, f"grad_bias ({where})")


FD_POOL = [
    _pgeom(n=2, h=6, w=7, c=3, pool=2),
    _pgeom(h=7, w=8, c=2, pool=3, strides=1, padding="same"),  # overlap and padding
    _pgeom(n=2, h=9, w=6, c=2, pool=(3, 2), strides=(2, 3), padding=((1, 2), (1, 0))),
]


@pytest.mark.parametrize("kind", sorted(POOL_KINDS))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("cfg", [pytest.param(c, id=case_id(**c)) for c in FD_POOL])
def test_pool_backward_finite_differences(cfg, layout, kind, rng):
    """Distinct values 0.05 apart: max pooling is differentiable there (no tie
    can form within a 1e-6 step)."""
    cfg = dict(cfg, kind=kind, dtype=np.dtype(np.float64), data_format=layout)
    shape = (cfg["n"], cfg["h"], cfg["w"], cfg["c"])
    x = to_layout(rng.permutation(np.prod(shape)).reshape(shape) * 0.05 - 3.0, layout)
    big_g = to_layout(rng.standard_normal(_pool_out_nhwc(cfg)), layout)
    kwargs = _pool_kwargs(cfg)
    fast_fn, ref_fn = _pool_fns(cfg)
    forward = reference.max_pool2d if POOL_KINDS[kind]["is_max"] else reference.avg_pool2d

    def loss(x_):
        return float(np.sum(forward(x_, cfg["pool"], **kwargs) * big_g))

    scale = float(np.sum(np.abs(big_g) * forward(np.abs(x) + 1, cfg["pool"], **kwargs)))
    grads = {"fast": fast_fn(big_g, x, cfg["pool"], **kwargs),
             "reference": ref_fn(big_g, x, cfg["pool"], **kwargs)}
    for trial in range(3):
        d = rng.standard_normal(x.shape)
        fd = (loss(x + FD_EPS * d) - loss(x - FD_EPS * d)) / (2 * FD_EPS)
        for who, gx in grads.items():
            _assert_directional(fd, float(np.sum(gx * d)), scale,
                                f"{kind} grad_x ({who}, direction {trial}; {cfg})")


# ===================================================== 4. max-pool rules, by hand
NAN, INF = np.nan, np.inf

# Each case: x (H, W), grad_out (OH, OW), pool, strides, padding, expected grad_x
# (H, W), all worked out by hand.  grad_out holds distinct powers of two, so
# every expected cell is an exact sum that names its windows.
MAX_HAND_CASES = {
    # ties: the first maximum in row-major window order (-0.0 == +0.0 is a tie)
    "ties": (
        [[3, 5, 7, 7, 0, -1, -0.0, 0.0],
         [5, 1, 7, 7, -1, 0, 0.0, -0.0]],
        [[1, 2, 4, 8]], 2, 2, "valid",
        [[0, 1, 2, 0, 4, 0, 8, 0],
         [0, 0, 0, 0, 0, 0, 0, 0]],
    ),
    # NaN: the last NaN in row-major window order, whatever else the window holds
    "nan": (
        [[NAN, 1, 1, NAN, NAN, NAN, INF, NAN, NAN, 5],
         [NAN, 2, 2, 3, NAN, NAN, NAN, INF, 6, 7]],
        [[1, 2, 4, 8, 16]], 2, 2, "valid",
        [[0, 0, 0, 2, 0, 0, 0, 0, 16, 0],
         [1, 0, 0, 0, 0, 4, 8, 0, 0, 0]],
    ),
    # all -inf: the first real cell of each window; padding never wins
    "all_neg_inf_same": (
        [[-INF, -INF, -INF], [-INF, -INF, -INF], [-INF, -INF, -INF]],
        [[1, 2, 4], [8, 16, 32], [64, 128, 256]], 3, 1, "same",
        [[27, 36, 0], [192, 256, 0], [0, 0, 0]],
    ),
    # negative values around padding: a zero-padded max would lose gradient
    "negative_with_padding": (
        [[-3, -1], [-2, -4]],
        [[1, 2, 4], [8, 16, 32], [64, 128, 256]], 2, 1, 1,
        [[1, 54], [200, 256]],
    ),
    # one maximum shared by overlapping windows: their gradients add up
    "overlap_accumulates": (
        [[1, 2, 3], [4, 9, 5], [6, 7, 8]],
        [[1, 2], [4, 8]], 2, 1, "valid",
        [[0, 0, 0], [0, 15, 0], [0, 0, 0]],
    ),
    # asymmetric padding, stride > pool: uncovered cells get nothing
    # stride > pool with top/left pads: windows see rows {0}, {2, 3} and columns
    # {0}, {2, 3}; the large values in row 1, row 4, column 1 and column 4 are
    # in no window and get nothing
    "gaps_and_pads": (
        [[-5, 30, -7, -1, 50],
         [-8, -9, -4, -3, -10],
         [0, 31, 2, 3, 40],
         [7, 32, 5, 9, 60],
         [20, 21, 22, 23, 24]],
        [[1, 2], [4, 8]], 2, 3, ((1, 0), (1, 0)),
        [[1, 0, 0, 2, 0],
         [0, 0, 0, 0, 0],
         [0, 0, 0, 0, 0],
         [4, 0, 0, 8, 0],
         [0, 0, 0, 0, 0]],
    ),
}


def _ramp_expected(h, w, g, pool, strides, padding):
    """Independent oracle for a strictly increasing row-major ramp: each window's
    maximum is its bottom-right real cell."""
    ph, pw = _pair(pool)
    win = window_2d((h, w), (ph, pw), strides, padding, 1, max_pad=(ph - 1, pw - 1))
    out = np.zeros((h, w))
    for i in range(win.oh):
        for j in range(win.ow):
            r = min(i * win.sh - win.pt + ph, h) - 1
            c = min(j * win.sw - win.pl + pw, w) - 1
            out[r, c] += g[i, j]
    return out


@pytest.mark.parametrize("impl", ["convpool", "reference"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(MAX_HAND_CASES))
def test_max_pool_backward_hand_built_windows(name, dtype, layout, impl):
    """Channel 1 holds the hand-built case; channels 0 and 2 hold increasing
    ramps (each window's max at its bottom-right real cell) with their own
    grad_out, so a channel mix-up shows."""
    x2, g2, pool, strides, padding, expected2 = MAX_HAND_CASES[name]
    x2, g2, expected2 = (np.array(a, dtype=np.float64) for a in (x2, g2, expected2))
    h, w = x2.shape
    ramp = np.arange(h * w, dtype=np.float64).reshape(h, w) - 100
    x = np.stack([ramp, x2, ramp * 2], axis=-1)[None]
    g = np.stack([g2 * 1024, g2, g2 * 2**20], axis=-1)[None]
    expected = np.stack(
        [_ramp_expected(h, w, g2 * 1024, pool, strides, padding), expected2,
         _ramp_expected(h, w, g2 * 2**20, pool, strides, padding)], axis=-1)[None]
    fn = convpool.max_pool2d_backward if impl == "convpool" else reference.max_pool2d_backward
    got = fn(to_layout(g.astype(dtype), layout), to_layout(x.astype(dtype), layout), pool,
             strides, padding, data_format=layout)
    assert_bitwise_equal(got, to_layout(expected.astype(dtype), layout),
                         f"{name}, {impl}", what="grad_x vs hand-computed")


@pytest.mark.parametrize("impl", ["convpool", "reference"])
@pytest.mark.parametrize("cip, expected", [(False, [8, 12, 40]), (True, [6, 12, 24])],
                         ids=["real", "cip"])
def test_avg_pool_backward_hand_built_divisors(cip, expected, impl):
    """W=3, pool (1, 2), stride 1, one pad each side: windows hold 1, 2, 2, 1 real
    cells; grad_out [4, 8, 16, 32] -> [4/1 + 8/2, 8/2 + 16/2, 16/2 + 32/1] without
    count_include_pad, [4/2 + 8/2, 8/2 + 16/2, 16/2 + 32/2] with it."""
    fn = convpool.avg_pool2d_backward if impl == "convpool" else reference.avg_pool2d_backward
    for dtype in DTYPES:
        x = np.zeros((1, 1, 3, 1), dtype)
        g = np.array([4, 8, 16, 32], dtype).reshape(1, 1, 4, 1)
        got = fn(g, x, (1, 2), 1, ((0, 0), (1, 1)), count_include_pad=cip)
        assert_bitwise_equal(got, np.array(expected, dtype).reshape(1, 1, 3, 1), (cip, dtype))


# ============================================================ 5. bitwise invariances
# > 4 * 2048 output pixels, so the weight gradient is reduced over several chunks.
THREAD_CONV_CASES = [
    _geom(n=2, h=70, w=70, c=8, oc=16, kernel=3, padding="same", dtype=np.dtype(np.float32)),
    _geom(n=2, h=70, w=70, c=8, oc=12, kernel=(3, 2), dilation=(1, 2), groups=2,
          dtype=np.dtype(np.float64)),
    _geom(n=2, h=67, w=66, c=6, oc=12, kernel=3, strides=(1, 1), padding=1, groups=6,
          dtype=np.dtype(np.float32)),  # depthwise, multiplier 2
    _geom(n=2, h=70, w=70, c=8, oc=17, kernel=1, dtype=np.dtype(np.float64)),  # pointwise
]


@pytest.mark.parametrize("cfg", [pytest.param(c, id=case_id(**c)) for c in THREAD_CONV_CASES])
def test_conv2d_backward_bitwise_across_thread_counts(cfg, rng, num_threads):
    n, oh, ow, _ = _conv_out_nhwc(cfg)
    assert n * oh * ow > 4 * 2048, "precondition: several weight-gradient chunks"
    g, x, kernel, kwargs = _conv_case(cfg, rng, _normal)
    results = {}
    for t in THREAD_COUNTS:
        num_threads(t)
        results[t] = convpool.conv2d_backward(g, x, kernel, **kwargs)
    for t in THREAD_COUNTS[1:]:
        for name, a, b in zip(_GRAD_NAMES, results[t], results[1]):
            assert_bitwise_equal(a, b, case_id(**cfg), what=f"{name}: {t} threads vs 1")


THREAD_POOL_CASES = [
    _pgeom(n=2, h=64, w=64, c=16, pool=3, strides=2, padding="same", dtype=np.float32),
    _pgeom(n=3, h=40, w=41, c=3, pool=(2, 3), strides=(2, 1), padding=((1, 0), (2, 1)),
           dtype=np.float64),
    _pgeom(n=2, h=37, w=35, c=17, pool=(3, 2), strides=(1, 3), dtype=np.float32),
]


@pytest.mark.parametrize("kind", sorted(POOL_KINDS))
@pytest.mark.parametrize("cfg", [pytest.param(c, id=case_id(**c)) for c in THREAD_POOL_CASES])
def test_pool_backward_bitwise_across_thread_counts(cfg, kind, rng, num_threads):
    cfg = dict(cfg, kind=kind)
    g, x, kwargs = _pool_case(cfg, rng, _normal, _normal)
    x[...] = np.round(x, 1)  # many ties
    x.flat[::97] = np.nan
    fast_fn, _ = _pool_fns(cfg)
    results = {}
    for t in THREAD_COUNTS:
        num_threads(t)
        results[t] = fast_fn(g, x, cfg["pool"], **kwargs)
    for t in THREAD_COUNTS[1:]:
        assert_bitwise_equal(results[t], results[1], cfg, what=f"{t} threads vs 1")


INVARIANCE_CONV_CASES = [
    _geom(n=3, h=13, w=29, c=6, oc=34, kernel=(3, 2), strides=(2, 1), padding=((1, 2), (0, 1)),
          dilation=(1, 2), groups=2, dtype=np.dtype(np.float32)),
    _geom(n=3, h=9, w=11, c=4, oc=8, kernel=3, padding="same", groups=4,
          dtype=np.dtype(np.float64)),
    THREAD_CONV_CASES[0],
    _geom(n=3, h=6, w=31, c=9, oc=16, kernel=1, dtype=np.dtype(np.float32)),  # pointwise
]


@pytest.mark.parametrize("cfg", [pytest.param(c, id=case_id(**c)) for c in INVARIANCE_CONV_CASES])
def test_conv2d_backward_layout_invariance(cfg, rng):
    g, x, kernel, kwargs = _conv_case(cfg, rng, _normal)
    last = convpool.conv2d_backward(g, x, kernel, **kwargs)
    kwargs["data_format"] = "channels_first"
    first = convpool.conv2d_backward(to_layout(g, "channels_first"),
                                     to_layout(x, "channels_first"), kernel, **kwargs)
    assert_bitwise_equal(first[0], to_layout(last[0], "channels_first"), cfg, what="grad_x")
    assert_bitwise_equal(first[1], last[1], cfg, what="grad_kernel")
    assert_bitwise_equal(first[2], last[2], cfg, what="grad_bias")


@pytest.mark.parametrize("cfg", [pytest.param(c, id=case_id(**c)) for c in INVARIANCE_CONV_CASES])
def test_conv2d_backward_strided_views_equal_copies(cfg, rng):
    g, x, kernel, kwargs = _conv_case(cfg, rng, _normal)
    plain = convpool.conv2d_backward(g, x, kernel, **kwargs)
    views = (strided_copy(g, 2), strided_copy(x, 3), strided_copy(kernel, 2))
    assert not any(v.flags.c_contiguous for v in views)
    got = convpool.conv2d_backward(*views, **kwargs)
    for name, a, b in zip(_GRAD_NAMES, got, plain):
        assert_bitwise_equal(a, b, cfg, what=f"{name}: strided views vs contiguous")
    # negative strides (a flipped view of a flipped copy) and Fortran order
    def flipped(a):
        return np.flip(np.ascontiguousarray(np.flip(a, 1)), 1)

    for label, conv in (("negative strides", flipped), ("Fortran order", np.asfortranarray)):
        got = convpool.conv2d_backward(conv(g), conv(x), conv(kernel), **kwargs)
        for name, a, b in zip(_GRAD_NAMES, got, plain):
            assert_bitwise_equal(a, b, cfg, what=f"{name}: {label} vs C order")


@pytest.mark.parametrize("cfg", [pytest.param(c, id=case_id(**c)) for c in INVARIANCE_CONV_CASES])
def test_conv2d_backward_grad_x_batch_invariance(cfg, rng, num_threads):
    """grad_x[i] needs only sample i: bitwise the same alone or in the batch.
    (grad_kernel and grad_bias sum over the batch, so no such property.)"""
    g, x, kernel, kwargs = _conv_case(cfg, rng, _normal)
    num_threads(3)
    full = convpool.conv2d_backward(g, x, kernel, **kwargs)[0]
    for i in range(x.shape[0]):
        one = convpool.conv2d_backward(g[i:i + 1], x[i:i + 1], kernel, **kwargs)[0]
        assert_bitwise_equal(full[i], one[0], cfg, what=f"grad_x of sample {i} alone")
    split = convpool.conv2d_backward(g[1:], x[1:], kernel, **kwargs)[0]
    assert_bitwise_equal(full[1:], split, cfg, what="grad_x of a batch split")


@pytest.mark.parametrize("kind", sorted(POOL_KINDS))
@pytest.mark.parametrize("cfg", [pytest.param(c, id=case_id(**c)) for c in THREAD_POOL_CASES])
def test_pool_backward_layout_views_and_batch_invariance(cfg, kind, rng):
    cfg = dict(cfg, kind=kind)
    g, x, kwargs = _pool_case(cfg, rng, _normal, _normal)
    x.flat[::53] = np.nan
    fast_fn, _ = _pool_fns(cfg)
    last = fast_fn(g, x, cfg["pool"], **kwargs)
    first = fast_fn(to_layout(g, "channels_first"), to_layout(x, "channels_first"), cfg["pool"],
                    **dict(kwargs, data_format="channels_first"))
    assert_bitwise_equal(first, to_layout(last, "channels_first"), cfg, what="NCHW vs NHWC")
    views = fast_fn(strided_copy(g, 2), strided_copy(x, 3), cfg["pool"], **kwargs)
    assert_bitwise_equal(views, last, cfg, what="strided views vs contiguous")
    for i in range(x.shape[0]):
        one = fast_fn(g[i:i + 1], x[i:i + 1], cfg["pool"], **kwargs)
        assert_bitwise_equal(one[0], last[i], cfg, what=f"sample {i} alone")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_backward_nan_guard_regions(layout, rng):
    """Inputs passed in place (C-contiguous, compute dtype) inside NaN guards:
    no guard cell is read, the result equals the unguarded one bit for bit."""
    conv_cases = [
        _geom(n=2, h=7, w=13, c=4, oc=18, kernel=(3, 2), strides=(2, 1),
              padding=((1, 2), (2, 0)), dilation=(1, 2), groups=2, dtype=np.dtype(np.float32)),
        _geom(n=2, h=5, w=7, c=5, oc=17, kernel=1, dtype=np.dtype(np.float64)),  # pointwise
    ]
    for cfg in conv_cases:
        cfg["data_format"] = layout
        g, x, kernel, kwargs = _conv_case(cfg, rng, _normal)
        plain = convpool.conv2d_backward(g, x, kernel, **kwargs)
        gg, gx, gk = guarded(g), guarded(x), guarded(kernel)
        got = convpool.conv2d_backward(gg.view, gx.view, gk.view, **kwargs)
        for name, a, b in zip(_GRAD_NAMES, got, plain):
            assert not np.isnan(a).any(), f"{name}: NaN from a guard cell; {cfg}"
            assert_bitwise_equal(a, b, cfg, what=f"{name}: guarded vs plain")
    pcfg = dict(_pgeom(n=2, h=9, w=11, c=3, pool=3, strides=(2, 1), padding="same"),
                dtype=np.dtype(np.float64), data_format=layout)
    for kind in sorted(POOL_KINDS):
        pcfg["kind"] = kind
        pg, px, pkw = _pool_case(pcfg, rng, _normal, _normal)
        fast_fn, _ = _pool_fns(pcfg)
        plain = fast_fn(pg, px, pcfg["pool"], **pkw)
        got = fast_fn(guarded(pg).view, guarded(px).view, pcfg["pool"], **pkw)
        assert not np.isnan(got).any(), f"{kind}: NaN from a guard cell"
        assert_bitwise_equal(got, plain, pcfg, what=f"{kind}: guarded vs plain")


# ================================================================== 6. bad inputs
def _small_conv(dtype=np.float32, layout="channels_last"):
    rng = np.random.default_rng(0)
    x = to_layout(rng.standard_normal((2, 6, 7, 4)).astype(dtype), layout)
    kernel = rng.standard_normal((3, 2, 2, 6)).astype(dtype)
    kwargs = dict(strides=(1, 2), padding="valid", groups=2, data_format=layout)
    out_nhwc = (2, 4, 3, 6)
    g = to_layout(rng.standard_normal(out_nhwc).astype(dtype), layout)
    return g, x, kernel, kwargs


@pytest.mark.parametrize("impl", [convpool, reference], ids=["convpool", "reference"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_conv2d_backward_grad_out_wrong_shape(layout, impl):
    g, x, kernel, kwargs = _small_conv(layout=layout)
    expected = re.escape(str(g.shape))
    for bad in (g[:, :-1], g[..., :-1], g[:1], g[None], g.reshape(-1)):
        with pytest.raises(ValueError, match=expected) as info:
            impl.conv2d_backward(bad, x, kernel, **kwargs)
        assert str(bad.shape) in str(info.value), info.value
    # the NHWC shape given to an NCHW call (or back) is a shape error too
    other = g.transpose(0, 2, 3, 1) if layout == "channels_first" else g.transpose(0, 3, 1, 2)
    with pytest.raises(ValueError, match=expected):
        impl.conv2d_backward(np.ascontiguousarray(other), x, kernel, **kwargs)


@pytest.mark.parametrize("impl", [convpool, reference], ids=["convpool", "reference"])
@pytest.mark.parametrize("fn", ["max_pool2d_backward", "avg_pool2d_backward"])
def test_pool_backward_grad_out_wrong_shape(fn, impl):
    x = np.zeros((2, 7, 6, 5), np.float32)
    g = np.zeros((2, 3, 3, 5), np.float32)  # pool 2, default strides
    f = getattr(impl, fn)
    f(g, x, 2)  # the right shape is accepted
    for bad in (np.zeros((2, 4, 3, 5), np.float32), np.zeros((2, 3, 3, 4), np.float32),
                np.zeros((3, 3, 5), np.float32)):
        with pytest.raises(ValueError, match=r"\(2, 3, 3, 5\)") as info:
            f(bad, x, 2)
        assert str(bad.shape) in str(info.value), info.value
    # the NHWC shape given to an NCHW call, whose output is (2, 5, 3, 3)
    with pytest.raises(ValueError, match=r"\(2, 5, 3, 3\)"):
        f(g, np.ascontiguousarray(x.transpose(0, 3, 1, 2)), 2, data_format="channels_first")


@pytest.mark.parametrize("impl", [convpool, reference], ids=["convpool", "reference"])
@pytest.mark.parametrize("g_dtype, x_dtype", [
    (np.complex64, np.float32), (np.complex128, np.float64), (np.float64, np.float32),
    (np.float32, np.float64), (np.float16, np.float32), (np.float16, np.int16),
])
def test_backward_grad_out_bad_dtype(g_dtype, x_dtype, impl):
    g, x, kernel, kwargs = _small_conv()
    x = x.astype(x_dtype)
    kernel = kernel.astype(np.float64 if x_dtype == np.float64 else np.float32)
    with pytest.raises(TypeError, match="grad_out"):
        impl.conv2d_backward(g.astype(g_dtype), x, kernel, **kwargs)
    px = np.ones((1, 4, 4, 2), x_dtype)
    pg = np.ones((1, 2, 2, 2), g_dtype)
    with pytest.raises(TypeError, match="grad_out"):
        impl.max_pool2d_backward(pg, px, 2)
    with pytest.raises(TypeError, match="grad_out"):
        impl.avg_pool2d_backward(pg, px, 2)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_backward_integer_grad_out_is_cast(dtype, rng):
    g, x, kernel, kwargs = _small_conv(dtype)
    gi = rng.integers(-5, 6, size=g.shape)
    for int_dtype in (np.int8, np.int64, np.uint8, np.bool_):
        gcast = gi.astype(int_dtype)
        got = convpool.conv2d_backward(gcast, x, kernel, **kwargs)
        want = convpool.conv2d_backward(gcast.astype(dtype), x, kernel, **kwargs)
        for name, a, b in zip(_GRAD_NAMES, got, want):
            assert_bitwise_equal(a, b, int_dtype, what=f"{name}: int grad_out vs cast")
    px = rng.standard_normal((2, 6, 6, 3)).astype(dtype)
    pg = rng.integers(-5, 6, size=(2, 3, 3, 3))
    for fn in (convpool.max_pool2d_backward, convpool.avg_pool2d_backward):
        got = fn(pg, px, 2)
        assert got.dtype == dtype
        assert_bitwise_equal(got, fn(pg.astype(dtype), px, 2), fn.__name__)


def test_backward_integer_x_computes_in_float32(rng):
    x = rng.integers(-3, 4, size=(2, 5, 6, 2)).astype(np.int16)
    kernel = rng.integers(-3, 4, size=(2, 2, 2, 3)).astype(np.float32)
    g = rng.integers(-3, 4, size=(2, 4, 5, 3)).astype(np.float32)
    got = convpool.conv2d_backward(g, x, kernel)
    want = convpool.conv2d_backward(g, x.astype(np.float32), kernel)
    for name, a, b in zip(_GRAD_NAMES, got, want):
        assert a.dtype == np.float32
        assert_bitwise_equal(a, b, "int16 x", what=name)


@pytest.mark.parametrize("impl", [convpool, reference], ids=["convpool", "reference"])
@pytest.mark.parametrize("case, exc, pattern", [
    ("x_rank3", ValueError, r"x must be 4-D"),
    ("kernel_rank3", ValueError, r"kernel must be 4-D"),
    ("stride0", ValueError, r"strides must be positive"),
    ("dilation_neg", ValueError, r"dilation_rate must be positive"),
    ("groups_not_dividing", ValueError, r"groups=3 must divide"),
    ("groups0", ValueError, r"groups must be positive"),
    ("kernel_other_float", TypeError, r"kernel has dtype float64"),
    ("bad_layout", ValueError, r"data_format must be"),
    ("window_too_big", ValueError, r"does not fit"),
    ("negative_pad", ValueError, r"padding must be non-negative"),
])
def test_conv2d_backward_forward_errors_still_raised(case, exc, pattern, impl):
    g, x, kernel, kwargs = _small_conv()
    args = dict(grad_out=g, x=x, kernel=kernel, **kwargs)
    if case == "x_rank3":
        args["x"] = x[0]
    elif case == "kernel_rank3":
        args["kernel"] = kernel[0]
    elif case == "stride0":
        args["strides"] = (1, 0)
    elif case == "dilation_neg":
        args["dilation_rate"] = -1
    elif case == "groups_not_dividing":
        args["groups"] = 3
    elif case == "groups0":
        args["groups"] = 0
    elif case == "kernel_other_float":
        args["kernel"] = kernel.astype(np.float64)
    elif case == "bad_layout":
        args["data_format"] = "NHWC"
    elif case == "window_too_big":
        args["kernel"] = np.ones((7, 2, 2, 6), np.float32)
    elif case == "negative_pad":
        args["padding"] = -1
    with pytest.raises(exc, match=pattern):
        impl.conv2d_backward(**args)


@pytest.mark.parametrize("impl", [convpool, reference], ids=["convpool", "reference"])
@pytest.mark.parametrize("fn", ["max_pool2d_backward", "avg_pool2d_backward"])
@pytest.mark.parametrize("kwargs, exc, pattern", [
    (dict(pool_size=0), ValueError, r"pool_size must be positive"),
    (dict(pool_size=2, strides=0), ValueError, r"strides must be positive"),
    (dict(pool_size=2, padding=2), ValueError, r"may not exceed"),
    (dict(pool_size=9), ValueError, r"does not fit"),
    (dict(pool_size=2, data_format="nchw"), ValueError, r"data_format must be"),
], ids=["pool0", "stride0", "pad_too_big", "too_big", "bad_layout"])
def test_pool_backward_forward_errors_still_raised(fn, kwargs, exc, pattern, impl):
    x = np.zeros((1, 4, 4, 2), np.float32)
    g = np.zeros((1, 2, 2, 2), np.float32)
    with pytest.raises(exc, match=pattern):
        getattr(impl, fn)(g, x, **kwargs)
    with pytest.raises(ValueError, match="x must be 4-D"):
        getattr(impl, fn)(g, x[0], 2)


def test_avg_pool_backward_count_include_pad_must_be_bool():
    x = np.zeros((1, 4, 4, 2), np.float32)
    g = np.zeros((1, 2, 2, 2), np.float32)
    for impl in (convpool, reference):
        with pytest.raises(TypeError, match="count_include_pad must be a bool"):
            impl.avg_pool2d_backward(g, x, 2, count_include_pad=1)


def _read_only(a):
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_backward_inputs_untouched_and_read_only_accepted(dtype, layout, rng):
    g, x, kernel, kwargs = _small_conv(dtype, layout)
    kept = [a.copy() for a in (g, x, kernel)]
    ro = [_read_only(a) for a in (g, x, kernel)]
    got = convpool.conv2d_backward(*ro, **kwargs)
    plain = convpool.conv2d_backward(g, x, kernel, **kwargs)
    for name, a, b in zip(_GRAD_NAMES, got, plain):
        assert_bitwise_equal(a, b, (dtype, layout), what=f"{name}: read-only vs writeable")
        assert a.flags.writeable, f"{name} returned read-only"
    names = ("grad_out", "x", "kernel")
    for arr, copy, name in zip([*ro, g, x, kernel], kept * 2, names * 2):
        assert_bitwise_equal(arr, copy, (dtype, layout), what=f"{name} after the call")
    # the results share no memory with the inputs
    for res in got:
        for arr in (g, x, kernel, *ro):
            assert not np.shares_memory(res, arr)
    px = to_layout(rng.standard_normal((2, 6, 7, 3)).astype(dtype), layout)
    px.flat[::11] = np.nan
    pg = to_layout(rng.standard_normal((2, 3, 3, 3)).astype(dtype), layout)
    kept = (px.copy(), pg.copy())
    for fn in (convpool.max_pool2d_backward, convpool.avg_pool2d_backward):
        res = fn(_read_only(pg), _read_only(px), 2, data_format=layout)
        assert_bitwise_equal(res, fn(pg, px, 2, data_format=layout), fn.__name__)
        assert not np.shares_memory(res, px) and not np.shares_memory(res, pg)
    assert_bitwise_equal(px, kept[0], layout, what="pool x after the calls")
    assert_bitwise_equal(pg, kept[1], layout, what="pool grad_out after the calls")


# =========================================================== 7. input_grad, empties
@pytest.mark.parametrize("cfg", [pytest.param(c, id=case_id(**c)) for c in INVARIANCE_CONV_CASES])
def test_conv2d_backward_input_grad_false(cfg, rng):
    g, x, kernel, kwargs = _conv_case(cfg, rng, _normal)
    with_x = convpool.conv2d_backward(g, x, kernel, **kwargs)
    without = convpool.conv2d_backward(g, x, kernel, input_grad=False, **kwargs)
    assert len(without) == 3 and without[0] is None
    assert_bitwise_equal(without[1], with_x[1], cfg, what="grad_kernel, input_grad=False")
    assert_bitwise_equal(without[2], with_x[2], cfg, what="grad_bias, input_grad=False")
    ref = reference.conv2d_backward(g, x, kernel, input_grad=False, **kwargs)
    assert ref[0] is None


@pytest.mark.parametrize("impl", [convpool, reference], ids=["convpool", "reference"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_backward_empty_batch(dtype, layout, impl):
    x = to_layout(np.ones((0, 7, 5, 4), dtype), layout)
    kernel = np.ones((3, 2, 2, 6), dtype)
    g = to_layout(np.ones((0, 4, 5, 6), dtype), layout)  # strides (2, 1), "same"
    gx, gk, gb = impl.conv2d_backward(g, x, kernel, strides=(2, 1), padding="same", groups=2,
                                      data_format=layout)
    assert gx.shape == x.shape and gx.dtype == dtype
    assert gk.shape == kernel.shape and gk.dtype == dtype and not gk.any()
    assert gb.shape == (6,) and gb.dtype == dtype and not gb.any()
    none_x = impl.conv2d_backward(g, x, kernel, strides=(2, 1), padding="same", groups=2,
                                  data_format=layout, input_grad=False)
    assert none_x[0] is None and none_x[1].shape == kernel.shape
    pg = to_layout(np.ones((0, 3, 2, 4), dtype), layout)
    for fn in (impl.max_pool2d_backward, impl.avg_pool2d_backward):
        got = fn(pg, x, 2, data_format=layout)
        assert got.shape == x.shape and got.dtype == dtype


@pytest.mark.parametrize("layout", LAYOUTS)
def test_conv2d_backward_zero_channels_match_reference(layout, rng):
    """C_in = 0 (empty sums: grad_kernel empty, grad_bias still the sum of
    grad_out) and C_out = 0 (grad_x all zero)."""
    x = to_layout(np.ones((2, 5, 4, 0), np.float64), layout)
    kernel = np.ones((2, 3, 0, 4), np.float64)
    g = to_layout(small_ints(rng, (2, 4, 2, 4), np.float64), layout)
    got = convpool.conv2d_backward(g, x, kernel, data_format=layout)
    ref = reference.conv2d_backward(g, x, kernel, data_format=layout)
    for name, a, b in zip(_GRAD_NAMES, got, ref):
        assert_bitwise_equal(a, b, layout, what=f"C_in=0 {name}")
    assert np.array_equal(got[2], g.sum(axis=(0, 2, 3) if layout == "channels_first"
                                        else (0, 1, 2)))
    x = to_layout(rng.standard_normal((2, 5, 4, 3)), layout)
    kernel = np.ones((2, 3, 3, 0))
    g = to_layout(np.ones((2, 4, 2, 0)), layout)
    gx, gk, gb = convpool.conv2d_backward(g, x, kernel, data_format=layout)
    assert gx.shape == x.shape and not gx.any()
    assert gk.shape == kernel.shape and gb.shape == (0,)


# ============================================== 8. activation="relu": output= masks grad_out
RELU_CONV_CASES = [
    _geom(n=2, h=9, w=13, c=4, oc=17, kernel=(3, 2), strides=(2, 1), padding="same",
          dilation=(1, 2)),
    _geom(n=3, h=6, w=7, c=6, oc=6, kernel=3, padding=1, groups=6),  # depthwise
    _geom(n=2, h=5, w=11, c=9, oc=16, kernel=1),  # pointwise: grad_x by the forward kernel
    _geom(n=2, h=10, w=9, c=3, oc=8, kernel=3, padding="same"),  # C_in 3: the direct wgrad
]


def _relu_case(cfg, rng):
    """grad_out, x, kernel, the conv kwargs, and the forward output of a ReLU conv
    (bias around 0, so its mask cuts) with NaN planted in it."""
    g, x, kernel, kwargs = _conv_case(cfg, rng, _normal)
    bias = (rng.standard_normal(cfg["oc"]) / 4).astype(cfg["dtype"])
    y = convpool.conv2d(x, kernel, bias, activation="relu", **kwargs)
    y.flat[3::29] = np.nan  # NaN output: no gradient passes
    return g, x, kernel, kwargs, y


@pytest.mark.parametrize("cfg", _conv_params(RELU_CONV_CASES))
def test_conv2d_backward_relu_equals_masked_grad_out(cfg, rng):
    """activation="relu" with output=y is conv2d_backward of where(y > 0, grad_out, 0),
    bit for bit (NaN in y blocks, as NaN > 0 is false); grad_out and output untouched;
    and within the derived bounds of the float64 reference given the same keywords."""
    g, x, kernel, kwargs, y = _relu_case(cfg, rng)
    with np.errstate(invalid="ignore"):
        masked = np.where(y > 0, g, 0).astype(cfg["dtype"])
    assert 0 < np.count_nonzero(masked) < 0.9 * g.size, "precondition: the mask cuts some"
    assert np.isnan(y).any() and np.all(g[np.isnan(y)] != 0), "precondition: NaN to block"
    kept = g.copy(), y.copy()
    got = convpool.conv2d_backward(g, x, kernel, activation="relu", output=y, **kwargs)
    want = convpool.conv2d_backward(masked, x, kernel, **kwargs)
    for name, a, b in zip(_GRAD_NAMES, got, want):
        assert_bitwise_equal(a, b, case_id(**cfg), what=f"{name}: relu vs masked grad_out")
    assert_bitwise_equal(g, kept[0], cfg, what="grad_out after the call")
    assert_bitwise_equal(y, kept[1], cfg, what="output after the call")
    no_x = convpool.conv2d_backward(g, x, kernel, activation="relu", output=y, input_grad=False,
                                    **kwargs)
    assert no_x[0] is None
    assert_bitwise_equal(no_x[1], want[1], cfg, what="grad_kernel, relu, input_grad=False")
    ref = _ref_conv64(g, x, kernel, activation="relu", output=y.astype(np.float64), **kwargs)
    tols = conv_backward_tolerances(masked, x, kernel, cfg["dtype"], **kwargs)
    for name, fast, r, tol in zip(_GRAD_NAMES, got, ref, tols):
        assert_conv_close(fast, r, tol, f"{name} (relu): {case_id(**cfg)}")


@pytest.mark.parametrize("impl", [convpool, reference], ids=["convpool", "reference"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case, pattern", [
    ("output_without_activation", r"output is used with activation='relu' only; "
                                  r"got activation=None"),
    ("output_with_linear", r"output is used with activation='relu' only"),
    ("relu_without_output", r"activation='relu' needs output=, the forward call's result"),
    ("output_wrong_shape", r"output must have the forward output's shape {shape}.*got {bad}"),
    ("output_other_layout", r"output must have the forward output's shape {shape}.*got {bad}"),
    ("bad_activation", r"activation must be None, 'linear' or 'relu', got 'elu'"),
])
def test_conv2d_backward_activation_output_errors(case, pattern, layout, impl):
    g, x, kernel, kwargs = _small_conv(layout=layout)
    y = np.ones(g.shape, np.float32)
    extra = {
        "output_without_activation": dict(output=y),
        "output_with_linear": dict(activation="linear", output=y),
        "relu_without_output": dict(activation="relu"),
        "output_wrong_shape": dict(activation="relu", output=y[..., :-1]),
        "output_other_layout": dict(activation="relu", output=np.ascontiguousarray(
            y.transpose(0, 2, 3, 1) if layout == "channels_first" else y.transpose(0, 3, 1, 2))),
        "bad_activation": dict(activation="elu", output=y),
    }[case]
    if "{shape}" in pattern:
        pattern = pattern.format(shape=re.escape(str(g.shape)),
                                 bad=re.escape(str(extra["output"].shape)))
    kept = g.copy()
    with pytest.raises(ValueError, match=pattern):
        impl.conv2d_backward(g, x, kernel, **kwargs, **extra)
    assert_bitwise_equal(g, kept, case, what="grad_out after a rejected call")


@pytest.mark.parametrize("impl", [convpool, reference], ids=["convpool", "reference"])
def test_conv2d_backward_output_other_float_dtype(impl):
    g, x, kernel, kwargs = _small_conv()
    with pytest.raises(TypeError, match="output has dtype float64"):
        impl.conv2d_backward(g, x, kernel, activation="relu", output=g.astype(np.float64),
                             **kwargs)
    # an integer output is cast, like grad_out: the same mask as its float copy
    yi = np.arange(g.size).reshape(g.shape) % 3 - 1
    a = impl.conv2d_backward(g, x, kernel, activation="relu", output=yi, **kwargs)
    b = impl.conv2d_backward(np.where(yi > 0, g, 0).astype(g.dtype), x, kernel, **kwargs)
    for name, u, v in zip(_GRAD_NAMES, a, b):
        assert_bitwise_equal(u, v, impl.__name__, what=f"{name}: int output vs its mask")


# ========================================= 9. the direct weight gradient (C_in = 1, C_out <= 32)
# The SIMD variants compute grad_kernel of a conv with one group, one input
# channel and at most 32 filters directly (cp_tpl_wgrad.h: output channels in
# the lanes, 12 (AVX2) or 24 (AVX-512) taps per pass); the baseline, and the
# geometries just past those limits (2-4 input channels, 33 filters), take the
# GEMM path: the grid covers both sides.  K = KH * KW * C_in taps ranges over
# 1, 4, 9, 25 (ragged passes), 27, 36 and 75; C_out over one lane, a ragged
# f64 vector (5), one f64 / half an f32 vector (8), one f32 vector (16), the
# largest direct case (32) and a ragged third panel (33).
WGRAD_DIRECT_GRID = [
    _geom(n=2, h=9, w=11, c=c, oc=oc, kernel=3, padding=padding)
    for c in (1, 2, 3, 4) for oc in (1, 5, 8, 16, 32, 33) for padding in ("same", "valid")
] + [_geom(n=2, h=12, w=11, c=1, oc=32, kernel=5, padding="same")]
WGRAD_DIRECT_EXTRA = [
    _geom(n=3, h=13, w=12, c=3, oc=16, kernel=3, strides=2, padding="same"),
    _geom(n=2, h=12, w=15, c=2, oc=5, kernel=(3, 2), strides=(2, 3), padding=((1, 0), (2, 1))),
    _geom(n=2, h=11, w=13, c=1, oc=33, kernel=3, padding="same", dilation=2),
    _geom(n=2, h=14, w=13, c=4, oc=8, kernel=(2, 3), dilation=(2, 1), padding=1),
    _geom(n=2, h=16, w=17, c=3, oc=17, kernel=(5, 5), padding="same"),  # K = 75
    _geom(n=2, h=23, w=21, c=3, oc=16, kernel=7, strides=2, padding=3),  # a stem layer
    _geom(n=3, h=5, w=7, c=1, oc=9, kernel=1),  # K = 1, pointwise
    _geom(n=2, h=7, w=6, c=2, oc=12, kernel=(2, 1), strides=(1, 2)),  # K = 4
    _geom(n=2, h=3, w=4, c=4, oc=7, kernel=(3, 4), padding=((2, 2), (3, 3))),  # mostly padding
]


def _wgrad_params():
    """The grid in both dtypes (NHWC); the extra geometries in both dtypes and layouts."""
    out = []
    for geos, layouts in ((WGRAD_DIRECT_GRID, ("channels_last",)), (WGRAD_DIRECT_EXTRA, LAYOUTS)):
        for geo, dtype, layout in itertools.product(geos, DTYPES, layouts):
            cfg = dict(geo, dtype=np.dtype(dtype), data_format=layout)
            out.append(pytest.param(cfg, id=case_id(**cfg)))
    return out


@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("cfg", _wgrad_params())
def test_conv2d_backward_direct_wgrad_matches_reference(cfg, rng):
    g, x, kernel, kwargs = _conv_case(cfg, rng, _normal)
    _check_conv_against_reference(cfg, g, x, kernel, kwargs)


@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("c, oc", [(1, 5), (3, 16), (4, 33)], ids=["C1-O5", "C3-O16", "C4-O33"])
def test_conv2d_backward_direct_wgrad_exact_on_small_integers(c, oc, dtype, rng):
    cfg = _geom(n=2, h=10, w=9, c=c, oc=oc, kernel=3, strides=(1, 2), padding="same",
                dtype=np.dtype(dtype))
    g, x, kernel, kwargs = _conv_case(cfg, rng, _ints4)
    got = convpool.conv2d_backward(g, x, kernel, **kwargs)
    ref = _ref_conv64(g, x, kernel, **kwargs)
    assert np.count_nonzero(ref[1]) >= 0.5 * ref[1].size, "mistrusted case: grad_kernel zeros"
    for name, fast, r in zip(_GRAD_NAMES, got, ref):
        _assert_exact(fast, r, cfg, name)


@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("c, oc", [(1, 5), (3, 17), (4, 8)], ids=["C1-O5", "C3-O17", "C4-O8"])
def test_conv2d_backward_direct_wgrad_nonfinite(c, oc, dtype, rng):
    """NaN / inf as IEEE says: a NaN gradient at a corner pixel poisons every tap
    of its channel (its padded taps read 0, and 0 * NaN is NaN); an inf input
    under a zero gradient gives NaN; under a non-zero one, inf."""
    cfg = _geom(n=2, h=7, w=8, c=c, oc=oc, kernel=3, padding="same", dtype=np.dtype(dtype))
    g, x, kernel, kwargs = _conv_case(cfg, rng, _normal)
    g[0, 0, 0, oc - 1] = np.nan  # corner: 5 of its 9 taps are padding
    x[1, 3, 4, c - 1] = np.inf
    g[1, 2:5, 3:6, 0] = 0.0  # every window over the inf pixel has a zero gradient in channel 0
    got = convpool.conv2d_backward(g, x, kernel, **kwargs)
    with np.errstate(invalid="ignore"):
        ref = _ref_conv64(g, x, kernel, **kwargs)
    gk = ref[1]
    assert np.isnan(gk[..., oc - 1]).all(), "precondition: the reference poisons the channel"
    if oc > 1:
        assert np.isnan(gk[..., c - 1, 0]).all() and np.isinf(gk[..., c - 1, 1:oc - 1]).all()
    clean = [np.where(np.isfinite(a), a, 0) for a in (g, x)]
    tols = conv_backward_tolerances(clean[0], clean[1], kernel, dtype, **kwargs)
    for name, fast, r, tol in zip(_GRAD_NAMES, got, ref, tols):
        assert_conv_close(fast, r, tol, f"{name}: nonfinite C{c} O{oc} {np.dtype(dtype)}")


@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("c, oc", [(1, 5), (3, 17), (2, 33)], ids=["C1-O5", "C3-O17", "C2-O33"])
def test_conv2d_backward_direct_wgrad_nan_guard_regions(c, oc, dtype, rng):
    """grad_out, x, kernel and output passed in place inside NaN guards: the
    direct kernel's vector loads past the last output channel (a ragged vector
    at the array's end) and its taps near the border read no guard cell."""
    cfg = _geom(n=2, h=7, w=9, c=c, oc=oc, kernel=3, padding="same", dtype=np.dtype(dtype))
    g, x, kernel, kwargs = _conv_case(cfg, rng, _normal)
    y = convpool.conv2d(x, kernel, activation="relu", **kwargs)
    for extra, guarded_extra in (({}, {}),
                                 (dict(activation="relu", output=y),
                                  dict(activation="relu", output=guarded(y).view))):
        plain = convpool.conv2d_backward(g, x, kernel, **kwargs, **extra)
        got = convpool.conv2d_backward(guarded(g).view, guarded(x).view, guarded(kernel).view,
                                       **kwargs, **guarded_extra)
        for name, a, b in zip(_GRAD_NAMES, got, plain):
            assert not np.isnan(a).any(), f"{name}: NaN from a guard cell; {extra.keys()}"
            assert_bitwise_equal(a, b, case_id(**cfg), what=f"{name}: guarded vs plain")


# (8, 28, 28, C) -> 32 filters: 6272 output pixels, at least three weight-gradient chunks.
WGRAD_THREAD_CASES = [
    _geom(n=8, h=28, w=28, c=1, oc=32, kernel=3, padding="same", dtype=np.dtype(np.float32)),
    _geom(n=8, h=28, w=28, c=3, oc=32, kernel=3, padding="same", dtype=np.dtype(np.float64)),
    _geom(n=8, h=28, w=28, c=3, oc=33, kernel=(5, 5), strides=1, padding="valid",
          dtype=np.dtype(np.float32)),
]


@pytest.mark.parametrize("cfg", [pytest.param(c, id=case_id(**c)) for c in WGRAD_THREAD_CASES])
def test_conv2d_backward_direct_wgrad_bitwise_across_thread_counts(cfg, rng, num_threads):
    n, oh, ow, _ = _conv_out_nhwc(cfg)
    assert n * oh * ow >= 2 * 2048, "precondition: several weight-gradient chunks"
    g, x, kernel, kwargs = _conv_case(cfg, rng, _normal)
    results = {}
    for t in (1, 2, 3):
        num_threads(t)
        results[t] = convpool.conv2d_backward(g, x, kernel, **kwargs)
    for t in (2, 3):
        for name, a, b in zip(_GRAD_NAMES, results[t], results[1]):
            assert_bitwise_equal(a, b, case_id(**cfg), what=f"{name}: {t} threads vs 1")
    # and right: a wrong but deterministic result would pass the comparison above
    ref = _ref_conv64(g, x, kernel, **kwargs)
    tols = conv_backward_tolerances(g, x, kernel, cfg["dtype"], **kwargs)
    for name, fast, r, tol in zip(_GRAD_NAMES, results[1], ref, tols):
        assert_conv_close(fast, r, tol, f"{name}: {case_id(**cfg)}")
