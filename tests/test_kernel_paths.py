"""The kernels' internal paths give bitwise identical results.

conv2d computes with one of the algorithms of the C kernels' table
(``convpool.conv2d_plan`` names the one a call uses): ROWS (A read in place
from the input, borders gathered), GATHER (im2col tiles across rows),
POINTWISE (1x1: the input is A) and DEPTHWISE (a direct kernel).  Large
outputs are written with non-temporal stores.  Each output is the same ordered
sum whichever path computes it, so equal inputs must give equal bits; these
tests force every applicable algorithm on the same call (no test depends on
the plan's thresholds) and compare.  Every test runs on each ISA variant this
CPU can run (the ``isa`` fixture).
"""

import numpy as np
import pytest

import convpool
from convpool._kernels import _core

from _helpers import assert_bitwise_equal, case_id, every_algorithm

DTYPES = [np.float32, np.float64]

pytestmark = pytest.mark.usefixtures("isa")


def _data(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _assert_all_equal(results, cfg, need):
    assert need <= set(results), f"{cfg}: expected {need} among {sorted(results)}"
    first = results["gather"]
    for name, got in results.items():
        assert_bitwise_equal(got, first, cfg, what=f"{name.upper()} vs GATHER")


# ------------------------------------------------------------- ROWS vs GATHER
ROW_CASES = [
    dict(c=3, oc=16, kernel=(5, 5), strides=5, padding="valid", dilation=1, groups=1),
    dict(c=3, oc=16, kernel=(3, 3), strides=1, padding="same", dilation=1, groups=1),
    dict(c=5, oc=7, kernel=(3, 2), strides=(1, 2), padding=((1, 2), (0, 1)), dilation=1, groups=1),
    dict(c=8, oc=20, kernel=(3, 3), strides=1, padding=2, dilation=(2, 2), groups=1),
    dict(c=8, oc=16, kernel=(3, 3), strides=2, padding=((1, 1), (1, 0)), dilation=1, groups=4),
    dict(c=6, oc=33, kernel=(2, 3), strides=1, padding="valid", dilation=(1, 3), groups=3),
    dict(c=16, oc=17, kernel=(1, 1), strides=(2, 3), padding="valid", dilation=1, groups=1),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("width", [7, 61])
@pytest.mark.parametrize("cfg", ROW_CASES, ids=[case_id(**c) for c in ROW_CASES])
def test_rows_path_equals_gather_path(cfg, width, dtype, rng):
    """ROWS and GATHER forced on the same narrow and wide images: same bits."""
    kw = dict(strides=cfg["strides"], padding=cfg["padding"], dilation_rate=cfg["dilation"],
              groups=cfg["groups"])
    sw = cfg["strides"] if isinstance(cfg["strides"], int) else cfg["strides"][1]
    x = _data(rng, (2, 13, width * sw + 5, cfg["c"]), dtype)
    kernel = _data(rng, cfg["kernel"] + (cfg["c"] // cfg["groups"], cfg["oc"]), dtype)
    bias = _data(rng, (cfg["oc"],), dtype)
    results = every_algorithm(x, kernel, bias, **kw)
    _assert_all_equal(results, cfg, {"rows", "gather"})
    assert_bitwise_equal(convpool.conv2d(x, kernel, bias, **kw), results["gather"], cfg,
                         what="conv2d's own choice vs GATHER")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("c, oc", [(3, 16), (64, 128), (17, 9)])
def test_pointwise_path_equals_rows_path(c, oc, dtype, rng):
    """1x1 stride 1 without padding: POINTWISE, ROWS and GATHER forced agree;
    with padding 1 (ROWS or GATHER) its interior is the same computation."""
    x = _data(rng, (2, 9, 31, c), dtype)
    kernel = _data(rng, (1, 1, c, oc), dtype)
    bias = _data(rng, (oc,), dtype)
    results = every_algorithm(x, kernel, bias)
    _assert_all_equal(results, (c, oc), {"pointwise", "rows", "gather"})
    padded = convpool.conv2d(x, kernel, bias, padding=1)
    assert_bitwise_equal(padded[:, 1:-1, 1:-1], results["pointwise"], (c, oc),
                         what="padded vs POINTWISE")


DW_CASES = [
    dict(c=8, kernel=(3, 3), strides=1, padding="same", dilation=1),
    dict(c=64, kernel=(3, 3), strides=1, padding="same", dilation=1),
    dict(c=37, kernel=(3, 2), strides=2, padding=((2, 1), (0, 3)), dilation=(1, 2)),
    dict(c=13, kernel=(5, 5), strides=(2, 1), padding="valid", dilation=1),
    # the column-reuse blocks (3 or 5 wide, stride 1 or 2, dilation 1), with a
    # channel tail past the last whole vector and rows of zero padding
    dict(c=35, kernel=(3, 3), strides=1, padding="same", dilation=1, width=31),
    dict(c=48, kernel=(3, 3), strides=2, padding="same", dilation=1),
    dict(c=40, kernel=(5, 5), strides=(1, 2), padding="same", dilation=1),
    dict(c=32, kernel=(3, 3), strides=1, padding="same", dilation=(2, 1)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", DW_CASES, ids=[case_id(**c) for c in DW_CASES])
def test_depthwise_path_equals_gemm_path(cfg, dtype, rng):
    """groups = C_in = C_out: DEPTHWISE, ROWS and GATHER forced agree; and a
    channel multiplier of 2 (the GEMM path) with the kernel duplicated gives
    the same values in every other output channel."""
    c = cfg["c"]
    kw = dict(strides=cfg["strides"], padding=cfg["padding"], dilation_rate=cfg["dilation"],
              groups=c)
    x = _data(rng, (2, 11, cfg.get("width", 29), c), dtype)
    kernel = _data(rng, cfg["kernel"] + (1, c), dtype)
    bias = _data(rng, (c,), dtype)
    results = every_algorithm(x, kernel, bias, **kw)
    _assert_all_equal(results, cfg, {"depthwise", "rows", "gather"})
    doubled = convpool.conv2d(x, np.repeat(kernel, 2, axis=3), np.repeat(bias, 2), **kw)
    assert_bitwise_equal(results["depthwise"], doubled[..., ::2], cfg, what="DEPTHWISE vs GEMM")


# ---------------------------------------------------- streamed (NT) stores
@pytest.fixture
def stream_threshold():
    """Set the non-temporal-store threshold for one test (bytes); restored after."""
    old = _core._set_stream_threshold(2**62)
    yield _core._set_stream_threshold
    _core._set_stream_threshold(old)


STREAM_CONV = [
    ((2, 12, 60, 3), (5, 5, 3, 16), dict(strides=5)),
    ((2, 12, 60, 3), (3, 3, 3, 32), dict(padding="same")),
    ((2, 12, 60, 16), (1, 1, 16, 48), dict()),
    ((2, 5, 7, 8), (3, 3, 8, 16), dict(padding="same")),
    ((2, 12, 60, 8), (3, 3, 2, 16), dict(padding="same", groups=4)),
    # depthwise with whole cache lines of channels (streamed), and without (not)
    ((2, 12, 60, 64), (3, 3, 1, 64), dict(padding="same", groups=64)),
    ((2, 12, 60, 16), (3, 3, 1, 16), dict(strides=2, groups=16)),
    ((2, 12, 60, 24), (3, 3, 1, 24), dict(padding="same", groups=24)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("xs, ks, kw", STREAM_CONV, ids=lambda v: str(v).replace(" ", ""))
def test_streamed_conv_output_equals_cached_stores(xs, ks, kw, dtype, rng, stream_threshold):
    x, kernel = _data(rng, xs, dtype), _data(rng, ks, dtype)
    bias = _data(rng, (ks[3],), dtype)
    regular = convpool.conv2d(x, kernel, bias, **kw)
    stream_threshold(0)
    streamed = convpool.conv2d(x, kernel, bias, **kw)
    assert streamed.ctypes.data % 64 == 0  # convpool's own results are line-aligned
    assert_bitwise_equal(streamed, regular, (xs, ks, kw), what="streamed vs regular stores")


ROWS_PREFETCH = [  # windows that do not overlap down the image (the rule's only case)
    ((2, 20, 200, 3), (5, 5, 3, 16), dict(strides=5)),                  # the full-HD layer's shape
    ((2, 13, 151, 4), (3, 3, 4, 16), dict(strides=(3, 2), padding="same")),
    ((2, 11, 160, 3), (2, 3, 3, 16), dict(strides=(3, 1), dilation_rate=2)),
    ((2, 9, 150, 8), (2, 2, 2, 16), dict(strides=2, groups=4)),
    ((2, 9, 150, 16), (1, 1, 16, 40), dict(strides=(2, 1))),
    ((2, 16, 180, 6), (4, 4, 6, 24), dict(strides=4, padding="same")),
]


@pytest.fixture
def rows_prefetch_threshold():
    """Set the ROWS prefetch threshold for one test (bytes); restored after."""
    old = _core._set_rows_prefetch_threshold(2**62)
    yield _core._set_rows_prefetch_threshold
    _core._set_rows_prefetch_threshold(old)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("xs, ks, kw", ROWS_PREFETCH, ids=lambda v: str(v).replace(" ", ""))
def test_rows_prefetching_row_by_tiles_equals_one_call(xs, ks, kw, dtype, rng,
                                                        rows_prefetch_threshold):
    """ROWS over a large input computes each row MR pixels a call, prefetching
    the next row's window rows as it goes; the bits must equal those of one
    call per row (the threshold forced either way on a small input)."""
    x, kernel = _data(rng, xs, dtype), _data(rng, ks, dtype)
    bias = _data(rng, (ks[3],), dtype)
    assert convpool.conv2d_plan(x, kernel, bias, **kw)["algorithm"] == "rows"
    whole = convpool.conv2d(x, kernel, bias, **kw)
    rows_prefetch_threshold(0)
    tiled = convpool.conv2d(x, kernel, bias, **kw)
    assert_bitwise_equal(tiled, whole, (xs, ks, kw), what="prefetching tiles vs one call")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("c", [1, 3, 5, 8, 17])
@pytest.mark.parametrize("op", ["max", "avg"])
def test_streamed_pool_output_equals_cached_stores(op, c, dtype, rng, stream_threshold):
    fn = convpool.max_pool2d if op == "max" else convpool.avg_pool2d
    x = _data(rng, (2, 9, 301, c), dtype)
    x[0, 3, 17, 0] = np.nan
    for kw in (dict(pool_size=2), dict(pool_size=3, strides=2, padding="same")):
        regular = fn(x, **kw)
        stream_threshold(0)
        streamed = fn(x, **kw)
        stream_threshold(2**62)
        assert_bitwise_equal(streamed, regular, (op, c, kw), what="streamed vs regular stores")


# ------------------------------------------- max-pool gradient: the vector run
RUN_CASES = [
    dict(pool=(2, 2), padding="valid"),
    dict(pool=(3, 3), padding="valid"),
    dict(pool=(2, 3), padding=((1, 0), (2, 0))),
    dict(pool=(2, 2), padding="same"),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("c", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("w", [7, 12, 13, 31])
@pytest.mark.parametrize("cfg", RUN_CASES, ids=lambda c: case_id(pool=c["pool"], padding=c["padding"]))
def test_max_pool_backward_vector_run_matches_reference(cfg, w, c, dtype, rng):
    """Windows that tile the input (stride = pool size) with C <= 4 take a
    4-lane vector run in the interior (AVX2); the row ends, other C and the
    portable variant take the scalar loop.  Without overlap every cell gets
    at most one value, so the result must equal the reference exactly: this
    checks the run's bounds, its spilling stores and its tie and NaN rules."""
    from convpool import reference

    x = rng.integers(-3, 4, size=(2, 8, w, c)).astype(dtype)  # many ties
    x[0, 2, 5 % w, 0] = np.nan
    x[1, 3, 1, :] = -np.inf
    kw = dict(pool_size=cfg["pool"], strides=cfg["pool"], padding=cfg["padding"])
    g = rng.standard_normal(convpool.max_pool2d(x, **kw).shape).astype(dtype)
    got = convpool.max_pool2d_backward(g, x, **kw)
    want = reference.max_pool2d_backward(g, x, **kw)
    assert_bitwise_equal(got, want, (cfg, w, c), what="max-pool gradient vs reference")
