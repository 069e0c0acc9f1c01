"""convpool.conv2d against convpool.reference.conv2d.

Three tiers:
  * random data, compared under the derived summation-error bound of
    ``conv_tolerance`` (no guessed tolerance);
  * integer data in [-8, 8]: every partial sum is an integer below 2**24, so
    the fast result must equal the float64 reference bit for bit, in both
    dtypes (oneDNN's benchdnn tests its float convolutions the same way);
  * NaN guard regions around every array and a NaN-filled ``out=``, so an
    out-of-bounds read or an unwritten output shows (as in XNNPACK's
    micro-kernel testers).
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import convpool
from convpool import reference
from convpool._shapes import window_2d
from _helpers import conv_configs as helper_conv_configs
from _helpers import (
    assert_bitwise_equal,
    assert_conv_close,
    assert_guard_intact,
    case_id,
    conv_tolerance,
    guarded,
    guarded_out,
    small_ints,
    to_layout,
)

# Every test runs on each ISA variant of the C registry that this CPU can run.
pytestmark = pytest.mark.usefixtures("isa")

DTYPES = (np.float32, np.float64)
LAYOUTS = ("channels_last", "channels_first")

_DEFAULTS = dict(n=1, strides=1, padding="valid", dilation=1, groups=1)


def _geom(**kw):
    cfg = dict(_DEFAULTS)
    cfg.update(kw)
    return cfg


# Edge geometries: sizes 1 and primes, non-square kernels, stride > kernel,
# dilation with stride, groups (depthwise, channel multiplier, OCg around the
# register panel), every padding form, K large enough to shrink the tile.
GEOMETRIES = [
    _geom(h=1, w=1, c=1, oc=1, kernel=1),
    _geom(h=1, w=1, c=3, oc=7, kernel=3, padding="same"),
    _geom(n=3, h=7, w=5, c=3, oc=8, kernel=(3, 2), strides=(2, 1), padding=((1, 0), (1, 1)),
          dilation=(1, 2)),
    _geom(n=2, h=13, w=11, c=2, oc=9, kernel=(2, 5)),
    _geom(h=11, w=13, c=5, oc=17, kernel=(1, 4), strides=(1, 3), padding="same"),
    _geom(h=5, w=7, c=4, oc=15, kernel=(4, 1), strides=(3, 1), padding=2),
    # stride larger than the kernel
    _geom(n=2, h=11, w=13, c=3, oc=16, kernel=2, strides=3),
    _geom(h=13, w=7, c=2, oc=31, kernel=1, strides=(4, 5), padding="same"),
    _geom(h=9, w=9, c=1, oc=33, kernel=(2, 1), strides=(3, 4), padding=(1, 0)),
    # dilation with stride
    _geom(n=2, h=13, w=11, c=3, oc=8, kernel=3, strides=2, padding="same", dilation=2),
    _geom(h=17, w=13, c=2, oc=9, kernel=(2, 3), strides=(3, 2), padding=((2, 1), (0, 3)),
          dilation=(3, 2)),
    _geom(h=7, w=11, c=4, oc=7, kernel=3, strides=(1, 2), dilation=(2, 3)),
    # groups
    _geom(n=2, h=7, w=7, c=4, oc=8, kernel=3, padding="same", groups=2),
    _geom(h=6, w=9, c=6, oc=9, kernel=(2, 3), strides=(1, 2), padding=1, groups=3),
    _geom(n=2, h=5, w=11, c=5, oc=5, kernel=3, padding="same", groups=5),  # depthwise
    _geom(h=7, w=13, c=3, oc=6, kernel=(3, 2), strides=2, padding=(1, 1), dilation=(1, 2),
          groups=3),  # depthwise, multiplier 2
    _geom(h=9, w=7, c=4, oc=12, kernel=3, groups=4),  # depthwise, multiplier 3
    _geom(h=8, w=8, c=16, oc=34, kernel=1, groups=2),  # 17 outputs per group: 2 panels in f32
    _geom(h=5, w=6, c=8, oc=32, kernel=2, padding="same", groups=2),  # 16 per group
    _geom(h=4, w=7, c=9, oc=27, kernel=(1, 2), groups=3),  # 9 per group: 2 panels in f64
    # padding forms, pads as large as the input
    _geom(h=3, w=2, c=2, oc=3, kernel=(3, 2), padding=((2, 2), (1, 1))),
    _geom(h=2, w=3, c=3, oc=5, kernel=(5, 4), strides=(2, 3), padding=((3, 4), (2, 5))),
    _geom(n=3, h=6, w=6, c=2, oc=4, kernel=2, strides=2, padding="same"),  # "same" adds nothing
    _geom(h=6, w=7, c=3, oc=7, kernel=4, padding="same"),  # even kernel: pad (1, 2)
    _geom(h=10, w=10, c=2, oc=8, kernel=3, strides=3, padding="same", dilation=2),
    _geom(h=5, w=5, c=2, oc=3, kernel=(2, 3), padding=[1, 2]),
    # long reductions: the im2col tile shrinks to a few micro-kernel rows
    _geom(h=6, w=8, c=64, oc=17, kernel=3, padding="same"),
    _geom(h=5, w=5, c=300, oc=9, kernel=3, strides=2, padding=1),
]


def _params(geometries):
    out = []
    for i, (geo, dtype, layout) in enumerate(itertools.product(geometries, DTYPES, LAYOUTS)):
        cfg = dict(geo, dtype=np.dtype(dtype), data_format=layout, bias=(i // 4) % 3 != 2)
        out.append(pytest.param(cfg, id=case_id(**cfg)))
    return out


EDGE_PARAMS = _params(GEOMETRIES)


def _make_case(cfg, rng, fill):
    """x (in cfg's layout), kernel, bias, and the conv2d keyword arguments."""
    dtype = cfg["dtype"]
    x = to_layout(fill(rng, (cfg["n"], cfg["h"], cfg["w"], cfg["c"]), dtype), cfg["data_format"])
    kernel = fill(rng, _kernel_shape(cfg), dtype)
    bias = fill(rng, (cfg["oc"],), dtype) if cfg["bias"] else None
    kwargs = dict(strides=cfg["strides"], padding=cfg["padding"],
                  dilation_rate=cfg["dilation"], groups=cfg["groups"],
                  data_format=cfg["data_format"])
    return x, kernel, bias, kwargs


def _kernel_shape(cfg):
    kh, kw = (cfg["kernel"],) * 2 if np.ndim(cfg["kernel"]) == 0 else cfg["kernel"]
    return (kh, kw, cfg["c"] // cfg["groups"], cfg["oc"])


def _normal(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _ref64(x, kernel, bias, **kwargs):
    return reference.conv2d(
        x.astype(np.float64), kernel.astype(np.float64),
        None if bias is None else bias.astype(np.float64), **kwargs,
    )


def _expected_shape(cfg):
    kh, kw, _, oc = _kernel_shape(cfg)
    win = window_2d((cfg["h"], cfg["w"]), (kh, kw), cfg["strides"], cfg["padding"], cfg["dilation"])
    if cfg["data_format"] == "channels_first":
        return (cfg["n"], oc, win.oh, win.ow)
    return (cfg["n"], win.oh, win.ow, oc)


# ------------------------------------------------------------------ tier B: random data
@pytest.mark.parametrize("cfg", EDGE_PARAMS)
def test_conv2d_matches_reference(cfg, rng):
    x, kernel, bias, kwargs = _make_case(cfg, rng, _normal)
    got = convpool.conv2d(x, kernel, bias, **kwargs)
    assert got.dtype == cfg["dtype"]
    assert got.shape == _expected_shape(cfg)
    assert got.flags.c_contiguous
    ref = _ref64(x, kernel, bias, **kwargs)
    tol = conv_tolerance(x, kernel, cfg["dtype"], bias=bias, **kwargs)
    assert_conv_close(got, ref, tol, cfg)


# ------------------------------------------------------------ tier A: exact integer data
def _assert_exact(got, ref, cfg):
    """Bitwise equality with a float64 reference whose every value is an exact integer."""
    assert np.all(np.abs(ref) < 2**24) and np.array_equal(ref, np.round(ref)), (
        f"precondition: the reference must be small integers; {cfg}"
    )
    if ref.size >= 16:  # benchdnn's rule: a mostly-zero result proves little
        nonzero = np.count_nonzero(ref) / ref.size
        assert nonzero >= 0.3, f"mistrusted case: only {nonzero:.0%} of outputs non-zero; {cfg}"
    assert got.dtype == cfg["dtype"]
    assert_bitwise_equal(got, ref.astype(cfg["dtype"]), cfg, what="fast vs exact reference")


@pytest.mark.parametrize("cfg", EDGE_PARAMS)
def test_conv2d_exact_on_small_integers(cfg, rng):
    """The direct algorithms sum products of small integers exactly (Winograd's
    transforms have fractions: tests/test_winograd.py)."""
    x, kernel, bias, kwargs = _make_case(cfg, rng, small_ints)
    got = convpool.conv2d(x, kernel, bias, **kwargs, algorithm="direct")
    _assert_exact(got, _ref64(x, kernel, bias, **kwargs), cfg)


# Register-tile edges: C_out around the f32 panel (16) and the f64 panel (8),
# pixel counts around the 6-row micro-kernel, across an image boundary (N=2).
TILE_PARAMS = [
    pytest.param(cfg, id=case_id(**cfg))
    for cfg in (
        dict(n=n, h=2, w=ow + 2, c=3, oc=oc, kernel=(2, 3), strides=1, padding="valid",
             dilation=1, groups=1, bias=bias, dtype=np.dtype(dt), data_format="channels_last")
        for oc, (n, ow), dt in itertools.product(
            (1, 7, 8, 9, 15, 16, 17, 31, 33),
            ((1, 1), (1, 5), (1, 6), (1, 7), (1, 12), (1, 13), (2, 5), (2, 9), (1, 19)),
            DTYPES,
        )
        for bias in [(oc + ow) % 2 == 0]
    )
]


@pytest.mark.parametrize("cfg", TILE_PARAMS)
def test_conv2d_tile_edges_exact(cfg, rng):
    x, kernel, bias, kwargs = _make_case(cfg, rng, small_ints)
    got = convpool.conv2d(x, kernel, bias, **kwargs)
    assert got.shape == (cfg["n"], 1, cfg["w"] - 2, cfg["oc"])
    _assert_exact(got, _ref64(x, kernel, bias, **kwargs), cfg)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_conv2d_moderate_size_multi_tile(dtype, rng):
    """2x64x64x16 -> 33 channels: many im2col tiles, two f32 panels plus a tail, threads."""
    cfg = dict(n=2, h=64, w=64, c=16, oc=33, kernel=3, strides=1, padding="same", dilation=1,
               groups=1, bias=True, dtype=np.dtype(dtype), data_format="channels_last")
    x, kernel, bias, kwargs = _make_case(cfg, rng, _normal)
    got = convpool.conv2d(x, kernel, bias, **kwargs)
    tol = conv_tolerance(x, kernel, dtype, bias=bias, **kwargs)
    assert_conv_close(got, _ref64(x, kernel, bias, **kwargs), tol, cfg)


# ------------------------------------------------------------------------- equivalences
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_grouped_equals_concatenated_per_group_convs(dtype, rng):
    """A grouped conv is, bit for bit, the per-group convs side by side."""
    groups, cg, ocg = 3, 2, 5
    x = _normal(rng, (2, 9, 8, groups * cg), dtype)
    kernel = _normal(rng, (3, 2, cg, groups * ocg), dtype)
    bias = _normal(rng, (groups * ocg,), dtype)
    kw = dict(strides=(2, 1), padding="same", dilation_rate=(1, 2))
    got = convpool.conv2d(x, kernel, bias, groups=groups, **kw)
    parts = [
        convpool.conv2d(
            np.ascontiguousarray(x[..., g * cg:(g + 1) * cg]),
            np.ascontiguousarray(kernel[..., g * ocg:(g + 1) * ocg]),
            bias[g * ocg:(g + 1) * ocg], **kw,
        )
        for g in range(groups)
    ]
    assert_bitwise_equal(got, np.concatenate(parts, axis=-1), kw, what="grouped vs per group")


@pytest.mark.parametrize(
    "h, w, kernel, strides, dilation",
    [(7, 6, (4, 3), (3, 2), 1), (5, 9, 3, 2, (2, 1)), (8, 8, 2, 1, 1)],
    ids=lambda v: str(v).replace(" ", ""),
)
def test_same_equals_explicit_padding(h, w, kernel, strides, dilation, rng):
    """'same' is exactly the explicit (top, bottom, left, right) it resolves to (worked by hand)."""
    kh, kw = (kernel, kernel) if np.ndim(kernel) == 0 else kernel
    dh, dw = (dilation, dilation) if np.ndim(dilation) == 0 else dilation
    sh, sw = (strides, strides) if np.ndim(strides) == 0 else strides
    pads = []
    for n, k, d, s in ((h, kh, dh, sh), (w, kw, dw, sw)):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    x = _normal(rng, (2, h, w, 3), np.float32)
    k = _normal(rng, (kh, kw, 3, 5), np.float32)
    same = convpool.conv2d(x, k, strides=strides, padding="same", dilation_rate=dilation)
    explicit = convpool.conv2d(x, k, strides=strides, padding=tuple(pads), dilation_rate=dilation)
    assert same.shape[1:3] == (-(-h // sh), -(-w // sw))
    assert_bitwise_equal(same, explicit, pads, what="'same' vs explicit")


# --------------------------------------------------------------------- guard regions
GUARD_CASES = [
    _geom(n=2, h=7, w=5, c=3, oc=17, kernel=(3, 2), strides=(2, 1), padding=((1, 2), (1, 0)),
          dilation=(1, 2), bias=True),
    _geom(n=1, h=5, w=13, c=4, oc=8, kernel=3, padding="same", groups=4, bias=False),
    _geom(n=3, h=6, w=6, c=2, oc=9, kernel=(2, 5), strides=(1, 3), padding=2, bias=True),
]


@pytest.mark.parametrize("contiguous", [True, False], ids=["contig", "strided"])
@pytest.mark.parametrize(
    "cfg",
    [pytest.param(dict(g, dtype=np.dtype(dt), data_format=lay), id=case_id(**g, dtype=dt,
                                                                           data_format=lay))
     for g in GUARD_CASES for dt in DTYPES for lay in LAYOUTS],
)
def test_conv2d_nan_guard_regions(cfg, contiguous, rng):
    """NaN around x, kernel and bias never reaches the result; every out cell is written once."""
    x, kernel, bias, kwargs = _make_case(cfg, rng, _normal)
    gx = guarded(x, contiguous=contiguous)
    gk = guarded(kernel)
    gb = guarded(bias) if bias is not None else None
    shape = _expected_shape(cfg)
    gout = guarded_out(shape, cfg["dtype"])
    res = convpool.conv2d(gx.view, gk.view, None if gb is None else gb.view, out=gout.view,
                          **kwargs)
    assert res is gout.view
    assert not np.isnan(res).any(), (
        f"NaN in the result: a guard cell was read or an output left unwritten; {cfg}"
    )
    tol = conv_tolerance(x, kernel, cfg["dtype"], bias=bias, **kwargs)
    assert_conv_close(res, _ref64(x, kernel, bias, **kwargs), tol, cfg)
    for g, name in ((gx, "x"), (gk, "kernel"), (gb, "bias"), (gout, "out")):
        if g is not None:
            assert_guard_intact(g, name)
    assert_bitwise_equal(gx.view, x, cfg, what="x after the call")


# ------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize(
    "x_dtype", [np.uint8, np.int8, np.int16, np.int32, np.int64, np.uint16, np.bool_, np.float16],
)
def test_conv2d_small_dtypes_compute_in_float32(x_dtype, rng):
    raw = rng.integers(0 if np.dtype(x_dtype).kind in "ub" else -8, 9, size=(2, 6, 7, 3))
    x = raw.astype(x_dtype)
    kernel = small_ints(rng, (2, 3, 3, 9), np.float32)
    bias = small_ints(rng, (9,), np.float32)
    got = convpool.conv2d(x, kernel, bias, padding="same")
    assert got.dtype == np.float32
    as_f32 = convpool.conv2d(x.astype(np.float32), kernel, bias, padding="same")
    assert_bitwise_equal(got, as_f32, x_dtype, what=f"{np.dtype(x_dtype)} input vs float32 copy")
    ref = _ref64(x.astype(np.float64), kernel, bias, padding="same")
    assert np.array_equal(got, ref.astype(np.float32))


def test_conv2d_float16_input_is_float32_of_the_values(rng):
    x = rng.standard_normal((1, 5, 6, 2)).astype(np.float16)
    kernel = rng.standard_normal((2, 2, 2, 3)).astype(np.float32)
    got = convpool.conv2d(x, kernel)
    assert got.dtype == np.float32
    assert_bitwise_equal(got, convpool.conv2d(x.astype(np.float32), kernel), "f16")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("w_dtype", [np.int8, np.int64, np.uint8, np.bool_])
def test_conv2d_integer_weights_are_cast(dtype, w_dtype, rng):
    x = rng.standard_normal((2, 5, 5, 3)).astype(dtype)
    kernel = rng.integers(0, 3, size=(3, 2, 3, 4)).astype(w_dtype)
    bias = rng.integers(0, 3, size=(4,)).astype(w_dtype)
    got = convpool.conv2d(x, kernel, bias, padding=1)
    assert got.dtype == dtype
    cast = convpool.conv2d(x, kernel.astype(dtype), bias.astype(dtype), padding=1)
    assert_bitwise_equal(got, cast, (dtype, w_dtype), what="integer vs cast weights")


# ---------------------------------------------------------------------- empty sizes
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_conv2d_empty_batch(dtype, layout):
    x = to_layout(np.zeros((0, 7, 5, 3), dtype), layout)
    kernel = np.ones((3, 2, 3, 4), dtype)
    got = convpool.conv2d(x, kernel, np.ones(4, dtype), strides=(2, 1), padding="same",
                          data_format=layout)
    expected = (0, 4, 4, 5) if layout == "channels_first" else (0, 4, 5, 4)
    assert got.shape == expected and got.dtype == dtype
    ref = reference.conv2d(x, kernel, np.ones(4, dtype), strides=(2, 1), padding="same",
                           data_format=layout)
    assert ref.shape == expected


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_conv2d_zero_input_channels_gives_bias(layout, groups, with_bias):
    """C_in = 0: every sum is empty, so the output is the bias (or 0), like the reference."""
    x = to_layout(np.ones((2, 5, 4, 0), np.float32), layout)
    kernel = np.ones((2, 3, 0, 4), np.float32)
    bias = np.array([1.5, -2.0, 0.25, 7.0], np.float32) if with_bias else None
    gout = guarded_out((2, 4, 4, 2) if layout == "channels_first" else (2, 4, 2, 4), np.float32)
    got = convpool.conv2d(x, kernel, bias, padding=((0, 0), (0, 0)), groups=groups,
                          data_format=layout, out=gout.view)
    assert got is gout.view
    expected_c = bias if with_bias else np.zeros(4, np.float32)
    axis_shape = (1, 4, 1, 1) if layout == "channels_first" else (1, 1, 1, 4)
    assert np.array_equal(got, np.broadcast_to(expected_c.reshape(axis_shape), got.shape))
    ref = reference.conv2d(x, kernel, bias, groups=groups, data_format=layout)
    assert np.array_equal(got, ref)
    assert_guard_intact(gout, "out")


def test_conv2d_zero_output_channels(rng):
    x = rng.standard_normal((2, 5, 5, 3)).astype(np.float32)
    got = convpool.conv2d(x, np.ones((2, 2, 3, 0), np.float32), np.ones(0, np.float32))
    assert got.shape == (2, 4, 4, 0) and got.dtype == np.float32


# --------------------------------------------------------------------------- out=
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_conv2d_out_matches_return_value(dtype, layout, rng):
    x = to_layout(rng.standard_normal((3, 9, 7, 4)).astype(dtype), layout)
    kernel = rng.standard_normal((3, 3, 2, 10)).astype(dtype)
    bias = rng.standard_normal(10).astype(dtype)
    kw = dict(strides=(1, 2), padding="same", dilation_rate=(2, 1), groups=2, data_format=layout)
    plain = convpool.conv2d(x, kernel, bias, **kw)
    gout = guarded_out(plain.shape, dtype)
    got = convpool.conv2d(x, kernel, bias, out=gout.view, **kw)
    assert got is gout.view
    assert_bitwise_equal(got, plain, kw, what="out= vs returned")
    assert_guard_intact(gout, "out")
    # the reference honours out= the same way
    rout = np.full(plain.shape, np.nan, dtype)
    assert reference.conv2d(x, kernel, bias, out=rout, **kw) is rout
    assert not np.isnan(rout).any()


def test_conv2d_out_sentinel_overwritten_everywhere(rng):
    """A huge sentinel (not NaN) in out= is gone after the call: no cell skipped."""
    x = rng.standard_normal((2, 11, 13, 3)).astype(np.float32)
    kernel = rng.standard_normal((2, 3, 3, 17)).astype(np.float32)
    gout = guarded_out((2, 10, 11, 17), np.float32, fill=np.float32(3e38))
    convpool.conv2d(x, kernel, out=gout.view)
    assert not (gout.view == np.float32(3e38)).any()
    assert_guard_intact(gout, "out")


# ------------------------------------------------------------------ hypothesis sweep
PRIMES_AND_SMALL = [1, 2, 3, 4, 5, 6, 7, 8, 11, 13]


conv_configs = functools.partial(
    helper_conv_configs, batches=[0, 1, 1, 2, 3], heights=PRIMES_AND_SMALL,
    widths=PRIMES_AND_SMALL, dtypes=DTYPES, layouts=LAYOUTS, bias=True)


def test_conv2d_hypothesis_sweep():
    ran = {"compared": 0, "empty": 0}

    @settings(max_examples=200, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(cfg=conv_configs())
    def check(cfg):
        rng = np.random.default_rng(cfg["seed"])
        x, kernel, bias, kwargs = _make_case(cfg, rng, _normal)
        got = convpool.conv2d(x, kernel, bias, **kwargs)
        assert got.shape == _expected_shape(cfg), cfg
        assert got.dtype == cfg["dtype"], cfg
        if x.size == 0:
            ran["empty"] += 1
            return
        tol = conv_tolerance(x, kernel, cfg["dtype"], bias=bias, **kwargs)
        assert_conv_close(got, _ref64(x, kernel, bias, **kwargs), tol, case_id(**cfg))
        ran["compared"] += 1

    check()
    assert ran["compared"] >= 100, ran
