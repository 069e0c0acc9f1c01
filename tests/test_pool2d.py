"""convpool.max_pool2d / avg_pool2d against convpool.reference.

Max pooling is compared exactly (NaN positions included).  Average pooling is
compared under the derived bound of ``avg_pool_tolerance`` on random data, and
bit for bit on small integers: the window sum is then exact and the division
correctly rounded in both implementations (for float32, rounding the float64
reference to float32 is innocuous: 53 >= 2 * 24 + 2, Figueroa 1995).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convpool
from convpool import reference
from convpool._shapes import window_2d
from _helpers import (
    assert_bitwise_equal,
    assert_conv_close,
    assert_guard_intact,
    avg_pool_tolerance,
    case_id,
    guarded,
    guarded_out,
    small_ints,
    to_layout,
)

# Every test runs on each ISA variant of the C registry that this CPU can run.
pytestmark = pytest.mark.usefixtures("isa")

DTYPES = (np.float32, np.float64)
LAYOUTS = ("channels_last", "channels_first")
CHANNELS = (1, 2, 3, 4, 7, 8, 9, 16, 17)


def _geom(**kw):
    cfg = dict(n=1, strides=None, padding="valid")
    cfg.update(kw)
    return cfg


# Edge geometries; the channel count cycles through CHANNELS below so every
# pool shape meets the small-C (whole-run) and the per-pixel horizontal pass.
_SHAPES = [
    _geom(h=1, w=1, pool=1),
    _geom(h=5, w=7, pool=2),  # default strides = pool, the last row/column dropped
    _geom(n=3, h=7, w=5, pool=(3, 2), strides=(2, 1), padding=((1, 0), (1, 1))),
    _geom(n=2, h=11, w=13, pool=(2, 5), strides=1, padding="same"),
    _geom(h=13, w=11, pool=(1, 4), strides=(1, 3), padding=(0, 3)),
    _geom(h=9, w=9, pool=3, strides=1, padding=1),  # stride < pool
    _geom(h=9, w=10, pool=3, strides=3, padding="same"),  # stride = pool
    _geom(n=2, h=13, w=11, pool=2, strides=(3, 4)),  # stride > pool
    _geom(h=11, w=17, pool=(2, 3), strides=(5, 4), padding="same"),  # stride > pool, padded
    _geom(h=2, w=3, pool=(2, 3), strides=1, padding=((1, 1), (2, 2))),  # pads = pool - 1
    _geom(h=6, w=7, pool=4, strides=1, padding="same"),  # even pool: pad (1, 2)
    _geom(h=1, w=7, pool=(1, 7), strides=(1, 2)),  # pool the whole width
    _geom(n=2, h=4, w=19, pool=(2, 2), strides=(1, 1), padding=(1, 0)),
    _geom(h=17, w=3, pool=(5, 1), strides=(2, 1), padding=((4, 0), (0, 0))),
]
GEOMETRIES = [dict(g, c=CHANNELS[i % len(CHANNELS)]) for i, g in enumerate(_SHAPES)]
# ...plus every channel count on one padded, strided, non-square geometry
GEOMETRIES += [
    _geom(n=2, h=7, w=11, c=c, pool=(3, 2), strides=(2, 1), padding=((1, 2), (0, 1)))
    for c in CHANNELS
]


def _params(geometries, cips=(False, True)):
    """Geometry x dtype x layout; count_include_pad alternates (None: max pooling, no flag)."""
    out = []
    combos = itertools.product(geometries, DTYPES, LAYOUTS)
    for i, (geo, dtype, layout) in enumerate(combos):
        cfg = dict(geo, dtype=np.dtype(dtype), data_format=layout)
        if cips is not None:
            cfg["cip"] = cips[i % len(cips)]
        out.append(pytest.param(cfg, id=case_id(**cfg)))
    return out


PARAMS = _params(GEOMETRIES)
MAX_PARAMS = _params(GEOMETRIES, cips=None)


def _x(cfg, rng, fill):
    return to_layout(fill(rng, (cfg["n"], cfg["h"], cfg["w"], cfg["c"]), cfg["dtype"]),
                     cfg["data_format"])


def _normal(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _kwargs(cfg):
    return dict(strides=cfg["strides"], padding=cfg["padding"], data_format=cfg["data_format"])


def _expected_shape(cfg):
    pool = cfg["pool"]
    strides = pool if cfg["strides"] is None else cfg["strides"]
    win = window_2d((cfg["h"], cfg["w"]), pool, strides, cfg["padding"], 1)
    if cfg["data_format"] == "channels_first":
        return (cfg["n"], cfg["c"], win.oh, win.ow)
    return (cfg["n"], win.oh, win.ow, cfg["c"])


def _assert_max_exact(got, ref, cfg):
    assert got.dtype == ref.dtype, cfg
    if isinstance(cfg, dict) and "dtype" in cfg:
        assert got.dtype == cfg["dtype"], cfg
    assert got.shape == ref.shape, cfg
    if not np.array_equal(got, ref, equal_nan=True):
        bad = np.argwhere(~((got == ref) | (np.isnan(got) & np.isnan(ref))))
        idx = tuple(int(i) for i in bad[0])
        raise AssertionError(
            f"max pool differs from the reference at {len(bad)} of {ref.size} elements; "
            f"first at {idx}: fast={got[idx]!r} ref={ref[idx]!r}\n  config: {cfg}"
        )


# ------------------------------------------------------------------------ max pooling
@pytest.mark.parametrize("cfg", MAX_PARAMS)
def test_max_pool2d_exact(cfg, rng):
    x = _x(cfg, rng, _normal)
    got = convpool.max_pool2d(x, cfg["pool"], **_kwargs(cfg))
    assert got.shape == _expected_shape(cfg)
    assert got.flags.c_contiguous
    _assert_max_exact(got, reference.max_pool2d(x, cfg["pool"], **_kwargs(cfg)), cfg)


@pytest.mark.parametrize("cfg", MAX_PARAMS)
def test_max_pool2d_padding_never_wins(cfg, rng):
    """With every value negative, no output may be 0 (zero padding) or -inf (an empty window)."""
    x = _x(cfg, rng, lambda r, s, d: (-1 - r.random(s)).astype(d))
    got = convpool.max_pool2d(x, cfg["pool"], **_kwargs(cfg))
    assert np.all((got <= -1) & (got >= -2)), cfg


@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_max_pool2d_nan_anywhere_in_window_gives_nan(dtype, c, rng):
    """A NaN at every position in turn: the SIMD body and the channel tail agree (tf#125965)."""
    base = rng.standard_normal((1, 5, 6, c)).astype(dtype)
    checked = 0
    for pos in itertools.product(range(5), range(6), range(c)):
        x = base.copy()
        x[(0,) + pos] = np.nan
        for pool, strides, padding in (((3, 2), (2, 1), "same"), (2, 1, "valid")):
            got = convpool.max_pool2d(x, pool, strides, padding)
            _assert_max_exact(got, reference.max_pool2d(x, pool, strides, padding),
                              dict(pos=pos, pool=pool, c=c, dtype=np.dtype(dtype)))
            # independently: NaN exactly where the window holds the NaN
            hits = reference.max_pool2d(np.isnan(x).astype(np.float64), pool, strides, padding)
            assert np.array_equal(np.isnan(got), hits == 1)
            checked += 1
    assert checked == 2 * 5 * 6 * c


@pytest.mark.parametrize("c", (1, 3, 8, 9, 17))
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_max_pool2d_infinities(dtype, c, rng):
    x = rng.standard_normal((2, 6, 7, c)).astype(dtype)
    x[0] = -np.inf  # every window of sample 0 is all -inf
    x[1, 0, 0, :] = np.inf
    x[1, 3, 4, 0] = -np.inf
    x[1, 5, 6, -1] = np.nan
    for padding in ("valid", "same", 1):
        got = convpool.max_pool2d(x, 3, 2, padding)
        assert np.all(got[0] == -np.inf), padding
        assert np.all(got[1, 0, 0, :] == np.inf), padding
        _assert_max_exact(got, reference.max_pool2d(x, 3, 2, padding),
                          dict(padding=padding, c=c, dtype=np.dtype(dtype)))


# ------------------------------------------------------------------------ avg pooling
@pytest.mark.parametrize("cfg", PARAMS)
def test_avg_pool2d_matches_reference(cfg, rng):
    x = _x(cfg, rng, _normal)
    kw = dict(_kwargs(cfg), count_include_pad=cfg["cip"])
    got = convpool.avg_pool2d(x, cfg["pool"], **kw)
    assert got.shape == _expected_shape(cfg) and got.dtype == cfg["dtype"]
    ref = reference.avg_pool2d(x.astype(np.float64), cfg["pool"], **kw)
    assert_conv_close(got, ref, avg_pool_tolerance(x, cfg["pool"], cfg["dtype"], **kw), cfg)


@pytest.mark.parametrize("cfg", PARAMS)
def test_avg_pool2d_exact_on_small_integers(cfg, rng):
    x = _x(cfg, rng, small_ints)
    kw = dict(_kwargs(cfg), count_include_pad=cfg["cip"])
    got = convpool.avg_pool2d(x, cfg["pool"], **kw)
    ref = reference.avg_pool2d(x.astype(np.float64), cfg["pool"], **kw)
    assert_bitwise_equal(got, ref.astype(cfg["dtype"]), cfg, what="fast vs float64 reference")


def test_avg_pool2d_divisor_golden_table():
    """Ones, pool 2, stride 1, pad 1 on 3x3: real cells per window are 1 / 2 / 4 (by hand)."""
    x = np.ones((1, 3, 3, 1), np.float32)
    counts = np.array([[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]], np.float32)
    real = convpool.avg_pool2d(x, 2, 1, 1)
    incl = convpool.avg_pool2d(x, 2, 1, 1, count_include_pad=True)
    assert np.array_equal(real[0, :, :, 0], np.ones((4, 4), np.float32))
    assert np.array_equal(incl[0, :, :, 0], counts / 4)


def test_avg_pool2d_divisor_golden_table_asymmetric():
    """arange data, pool (2, 3), strides (2, 2), padding ((1, 0), (2, 1)) on 3x4, by hand."""
    x = np.arange(12, dtype=np.float64).reshape(1, 3, 4, 1)  # rows [0..3], [4..7], [8..11]
    # padded 4 x 7; windows start at rows -1, 1 and columns -2, 0, 2
    # row -1 covers input row 0 only; row 1 covers rows 1-2
    # col -2 covers col 0 only; col 0 covers 0-2; col 2 covers 2-3 (col 4 is right padding)
    sums = np.array([[0, 0 + 1 + 2, 2 + 3], [4 + 8, 4 + 5 + 6 + 8 + 9 + 10, 6 + 7 + 10 + 11]])
    counts = np.array([[1, 3, 2], [2, 6, 4]])
    real = convpool.avg_pool2d(x, (2, 3), (2, 2), ((1, 0), (2, 1)))
    incl = convpool.avg_pool2d(x, (2, 3), (2, 2), ((1, 0), (2, 1)), count_include_pad=True)
    assert np.array_equal(real[0, :, :, 0], sums / counts)
    assert np.array_equal(incl[0, :, :, 0], sums / 6)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_avg_pool2d_count_include_pad_irrelevant_without_padding(dtype, rng):
    x = rng.standard_normal((2, 9, 8, 5)).astype(dtype)
    a = convpool.avg_pool2d(x, (3, 2), (2, 3), "valid", count_include_pad=False)
    b = convpool.avg_pool2d(x, (3, 2), (2, 3), "valid", count_include_pad=True)
    assert_bitwise_equal(a, b, "valid", what="count_include_pad False vs True")


@pytest.mark.parametrize("c", (1, 3, 8, 17))
def test_avg_pool2d_nan_and_inf_propagate(c, rng):
    x = rng.standard_normal((1, 6, 7, c)).astype(np.float32)
    x[0, 2, 3, 0] = np.nan
    x[0, 5, 0, -1] = np.inf
    for cip in (False, True):
        got = convpool.avg_pool2d(x, 3, 1, "same", count_include_pad=cip)
        ref = reference.avg_pool2d(x.astype(np.float64), 3, 1, "same", count_include_pad=cip)
        assert np.array_equal(np.isnan(got), np.isnan(ref))
        assert np.array_equal(np.isinf(got), np.isinf(ref))
        assert_conv_close(got, ref, avg_pool_tolerance(x, 3, np.float32, strides=1,
                                                       padding="same", count_include_pad=cip),
                          dict(c=c, cip=cip))


# ------------------------------------------------------------------ larger inputs
@pytest.mark.parametrize(
    "shape, pool, strides, padding",
    [
        ((1, 3, 9001, 1), (2, 3), (1, 1), "same"),  # a row wider than one horizontal tile
        ((1, 2, 4099, 3), (2, 3), (1, 2), ((0, 1), (2, 1))),
        ((1, 3, 1003, 17), 3, 2, "valid"),
        ((2, 64, 64, 16), 3, 2, "same"),  # the moderate multi-thread case
    ],
    ids=lambda v: str(v).replace(" ", ""),
)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_pools_wide_rows(shape, pool, strides, padding, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    cfg = dict(shape=shape, pool=pool, strides=strides, padding=padding, dtype=np.dtype(dtype))
    _assert_max_exact(convpool.max_pool2d(x, pool, strides, padding),
                      reference.max_pool2d(x, pool, strides, padding), cfg)
    xi = small_ints(rng, shape, dtype)
    for cip in (False, True):
        got = convpool.avg_pool2d(xi, pool, strides, padding, count_include_pad=cip)
        ref = reference.avg_pool2d(xi.astype(np.float64), pool, strides, padding,
                                   count_include_pad=cip)
        assert_bitwise_equal(got, ref.astype(dtype), cfg, what="avg vs float64 reference")


# ---------------------------------------------------------------------- guard regions
@pytest.mark.parametrize("contiguous", [True, False], ids=["contig", "strided"])
@pytest.mark.parametrize("is_max", [True, False], ids=["max", "avg"])
@pytest.mark.parametrize(
    "cfg",
    _params([_geom(n=2, h=7, w=9, c=c, pool=(3, 2), strides=(2, 1), padding="same")
             for c in (1, 3, 8, 9)], cips=(False, True)),
)
def test_pools_nan_guard_regions(cfg, is_max, contiguous, rng):
    x = _x(cfg, rng, _normal)
    gx = guarded(x, contiguous=contiguous)
    gout = guarded_out(_expected_shape(cfg), cfg["dtype"])
    kw = _kwargs(cfg)
    if is_max:
        res = convpool.max_pool2d(gx.view, cfg["pool"], out=gout.view, **kw)
        _assert_max_exact(res, reference.max_pool2d(x, cfg["pool"], **kw), cfg)
    else:
        kw["count_include_pad"] = cfg["cip"]
        res = convpool.avg_pool2d(gx.view, cfg["pool"], out=gout.view, **kw)
        ref = reference.avg_pool2d(x.astype(np.float64), cfg["pool"], **kw)
        assert_conv_close(res, ref, avg_pool_tolerance(x, cfg["pool"], cfg["dtype"], **kw), cfg)
    assert res is gout.view
    assert not np.isnan(res).any(), cfg
    assert_guard_intact(gx, "x")
    assert_guard_intact(gout, "out")


# --------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize(
    "x_dtype", [np.uint8, np.int8, np.int16, np.int32, np.int64, np.bool_, np.float16]
)
def test_pools_small_dtypes_compute_in_float32(x_dtype, rng):
    x = rng.integers(0, 9, size=(2, 6, 7, 3)).astype(x_dtype)
    as_f32 = x.astype(np.float32)
    for fn, kw in ((convpool.max_pool2d, {}), (convpool.avg_pool2d, {"count_include_pad": True})):
        got = fn(x, 3, 2, "same", **kw)
        assert got.dtype == np.float32
        assert_bitwise_equal(got, fn(as_f32, 3, 2, "same", **kw), x_dtype, what=fn.__name__)
    assert np.array_equal(convpool.max_pool2d(x, 2), reference.max_pool2d(as_f32, 2))


def test_max_pool2d_uint8_full_range():
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    got = convpool.max_pool2d(x, 4)
    assert got.dtype == np.float32
    assert np.array_equal(got[0, :, :, 0], x[0, 3::4, 3::4, 0].astype(np.float32))


# ------------------------------------------------------------------------ empty sizes
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_pools_empty_batch_and_channels(dtype, layout):
    for shape in ((0, 7, 5, 3), (2, 7, 5, 0)):
        x = to_layout(np.zeros(shape, dtype), layout)
        for fn in (convpool.max_pool2d, convpool.avg_pool2d, reference.max_pool2d):
            got = fn(x, (3, 2), (2, 1), "same", layout)
            n, c = shape[0], shape[3]
            expected = (n, c, 4, 5) if layout == "channels_first" else (n, 4, 5, c)
            assert got.shape == expected and got.dtype == dtype, fn


# ------------------------------------------------------------------------------ out=
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("is_max", [True, False], ids=["max", "avg"])
def test_pools_out_matches_return_value(is_max, dtype, layout, rng):
    x = to_layout(rng.standard_normal((3, 9, 7, 5)).astype(dtype), layout)
    fn = convpool.max_pool2d if is_max else convpool.avg_pool2d
    plain = fn(x, (2, 3), (1, 2), ((1, 0), (0, 2)), layout)
    gout = guarded_out(plain.shape, dtype)
    got = fn(x, (2, 3), (1, 2), ((1, 0), (0, 2)), layout, out=gout.view)
    assert got is gout.view
    assert_bitwise_equal(got, plain, layout, what="out= vs returned")
    assert_guard_intact(gout, "out")


# --------------------------------------------------------------------- hypothesis sweep
@st.composite
def pool_configs(draw):
    ph, pw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    strides = draw(st.one_of(st.none(), st.tuples(st.integers(1, 5), st.integers(1, 5))))
    form = draw(st.sampled_from(["valid", "same", "int", "pair", "explicit"]))
    if form in ("valid", "same"):
        padding, pads = form, (0, 0, 0, 0)
    elif form == "int":
        v = draw(st.integers(0, min(ph, pw) - 1))
        padding, pads = v, (v,) * 4
    elif form == "pair":
        a, b = draw(st.integers(0, ph - 1)), draw(st.integers(0, pw - 1))
        padding, pads = (a, b), (a, a, b, b)
    else:
        t, bo = draw(st.integers(0, ph - 1)), draw(st.integers(0, ph - 1))
        le, ri = draw(st.integers(0, pw - 1)), draw(st.integers(0, pw - 1))
        padding, pads = ((t, bo), (le, ri)), (t, bo, le, ri)
    min_h = 1 if form == "same" else max(1, ph - pads[0] - pads[1])
    min_w = 1 if form == "same" else max(1, pw - pads[2] - pads[3])
    return dict(
        n=draw(st.sampled_from([0, 1, 1, 2, 3])),
        h=min_h + draw(st.sampled_from([0, 1, 2, 4, 6, 10])),
        w=min_w + draw(st.sampled_from([0, 1, 2, 4, 6, 10, 12])),
        c=draw(st.sampled_from(CHANNELS)), pool=(ph, pw), strides=strides, padding=padding,
        cip=draw(st.booleans()), dtype=np.dtype(draw(st.sampled_from(DTYPES))),
        data_format=draw(st.sampled_from(LAYOUTS)), seed=draw(st.integers(0, 2**32 - 1)),
        specials=draw(st.booleans()),
    )


def test_pools_hypothesis_sweep():
    ran = {"compared": 0, "empty": 0}

    @settings(max_examples=200, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(cfg=pool_configs())
    def check(cfg):
        rng = np.random.default_rng(cfg["seed"])
        x = _x(cfg, rng, _normal)
        if cfg["specials"] and x.size:  # sprinkle NaN and infinities
            x.flat[rng.integers(0, x.size, size=3)] = [np.nan, np.inf, -np.inf]
        kw = _kwargs(cfg)
        got = convpool.max_pool2d(x, cfg["pool"], **kw)
        assert got.shape == _expected_shape(cfg), cfg
        avg = convpool.avg_pool2d(x, cfg["pool"], count_include_pad=cfg["cip"], **kw)
        assert avg.shape == got.shape and avg.dtype == cfg["dtype"], cfg
        if x.size == 0:
            ran["empty"] += 1
            return
        _assert_max_exact(got, reference.max_pool2d(x, cfg["pool"], **kw), case_id(**cfg))
        kw["count_include_pad"] = cfg["cip"]
        with np.errstate(invalid="ignore"):  # inf + -inf in one window is NaN, as intended
            ref = reference.avg_pool2d(x.astype(np.float64), cfg["pool"], **kw)
        tol = avg_pool_tolerance(np.nan_to_num(x, posinf=0, neginf=0), cfg["pool"],
                                 cfg["dtype"], **kw)
        assert_conv_close(avg, ref, tol, case_id(**cfg))
        ran["compared"] += 1

    check()
    assert ran["compared"] >= 100, ran
