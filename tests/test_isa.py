"""The ISA variants: their micro-kernels, their agreement, and the conv plan.

Every test here runs once per ISA variant of the C registry (the ``isa``
fixture selects each in this process; a variant this CPU cannot run is
skipped), or compares all the SIMD variants that run here (``simd_isas``).

- Micro-kernels, called directly: every row count around the tile height
  (m < MR, m = MR, MR < m < 2 MR, ...), every column count nr <= NR, several
  segmentations and reduction lengths, with bias, ReLU and streamed stores.
  Small integers make every sum exact, so the result must equal the integer
  product bit for bit; NaN guard cells around the output must survive.
- The SIMD variants (AVX2, AVX-512) must give bitwise identical results for
  every kernel family: each output keeps its order of operations, only the
  vector width differs.
- conv2d_plan names the algorithm a call uses, and forcing each applicable
  algorithm gives the same bits.
"""

import numpy as np
import pytest

import convpool
from convpool._kernels import _core

from _helpers import assert_bitwise_equal, case_id, every_algorithm, forced_conv

DTYPES = [np.float32, np.float64]
DT_IDS = ["f32", "f64"]
KINDS = {"wide": 0, "narrow": 1}


def _aligned(shape, dtype, fill=np.nan):
    """A C-contiguous array of ``shape`` whose data starts on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    raw = np.empty(n + 64 // dtype.itemsize, dtype)
    off = (-raw.ctypes.data % 64) // dtype.itemsize
    out = raw[off:off + n].reshape(shape)
    out[...] = fill
    return out


def _panel(weights, nr_tile):
    """A weight matrix (K, cols <= NR) as a packed panel (K, NR), zero padded."""
    k, cols = weights.shape
    b = _aligned((k, nr_tile), weights.dtype, fill=0)
    b[:, :cols] = weights
    return b


def _call(isa, kind, a, nseg, kseg, b, c, nr, bias=None, relu=False, stream=False):
    _core.gemm_ukernel(isa, kind, a, nseg, kseg, b, c, nr, bias, relu, stream)


# ------------------------------------------------------------- micro-kernels
SEGMENTS = [(1, 1), (1, 7), (3, 5), (2, 16), (9, 3)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_ukernel_every_m_and_nr_is_exact(isa, kind, dtype, rng):
    """m from 1 to 2 MR + 1, nr from 1 to NR, five segmentations: the exact
    integer product plus bias, nothing written outside rows < m, columns < nr."""
    itemsize = np.dtype(dtype).itemsize
    mr, nr_tile = _core.gemm_shape(itemsize, kind)
    for nseg, kseg in SEGMENTS:
        kk = nseg * kseg
        a_full = rng.integers(-4, 5, size=(2 * mr + 1, kk + 3)).astype(dtype)
        w = rng.integers(-4, 5, size=(kk, nr_tile)).astype(dtype)
        bias = rng.integers(-9, 10, size=nr_tile).astype(dtype)
        for m in range(1, 2 * mr + 2):
            a = np.ascontiguousarray(a_full[:m])
            # every nr for a few m; the edges of a vector for the others
            some = {1, 2, nr_tile // 2, nr_tile // 2 + 1, nr_tile - 1, nr_tile} - {0}
            all_nr = m in (1, mr - 1, mr, mr + 1)
            for nr in range(1, nr_tile + 1) if all_nr else sorted(some):
                b = _panel(w[:, :nr], nr_tile)
                ldc = nr_tile + 3
                c = np.full((m + 1, ldc), np.nan, dtype)
                _call(isa, kind, a, nseg, kseg, b, c[:m], nr, bias[:nr])
                want = a[:, :kk].astype(np.int64) @ w[:, :nr].astype(np.int64) + bias[:nr]
                cfg = dict(isa=isa, m=m, nr=nr, nseg=nseg, kseg=kseg)
                assert_bitwise_equal(c[:m, :nr], want.astype(dtype), cfg, what="micro-kernel")
                assert np.isnan(c[:m, nr:]).all(), f"{cfg}: wrote past column nr"
                assert np.isnan(c[m]).all(), f"{cfg}: wrote past row m"


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_ukernel_relu_and_streamed_stores(isa, kind, dtype, rng):
    """ReLU as the tile is stored; non-temporal stores of full panels (aligned
    output, ldc a multiple of NR) give the same values as ordinary stores."""
    itemsize = np.dtype(dtype).itemsize
    mr, nr_tile = _core.gemm_shape(itemsize, kind)
    m, nseg, kseg = 3 * mr + 2, 2, 9
    a = rng.integers(-4, 5, size=(m, nseg * kseg)).astype(dtype)
    w = rng.integers(-4, 5, size=(nseg * kseg, nr_tile)).astype(dtype)
    bias = rng.integers(-9, 10, size=nr_tile).astype(dtype)
    b = _panel(w, nr_tile)
    want = np.maximum(a.astype(np.int64) @ w.astype(np.int64) + bias, 0).astype(dtype)
    for stream in (False, True):
        c = _aligned((m, nr_tile), dtype)
        _call(isa, kind, a, nseg, kseg, b, c, nr_tile, bias, relu=True, stream=stream)
        assert_bitwise_equal(c, want, dict(isa=isa, stream=stream), what="relu micro-kernel")


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_ukernel_bits_equal_across_simd_isas(simd_isas, dtype, rng):
    """Random data, every SIMD variant's micro-kernels (wide and narrow): each
    output is the same fused sum from +0, so the bits must agree."""
    itemsize = np.dtype(dtype).itemsize
    m, nseg, kseg = 29, 3, 37
    cols = 0
    for name in simd_isas:  # the narrowest tile of all
        _core.isa_select(name)
        widths = [_core.gemm_shape(itemsize, kind)[1] for kind in KINDS.values()]
        cols = min(widths + ([cols] if cols else []))
    a = rng.standard_normal((m, nseg * kseg + 1)).astype(dtype)
    w = rng.standard_normal((nseg * kseg, cols)).astype(dtype)
    bias = rng.standard_normal(cols).astype(dtype)
    results = {}
    for name in simd_isas:
        _core.isa_select(name)
        for kind_name, kind in KINDS.items():
            _, nr_tile = _core.gemm_shape(itemsize, kind)
            c = np.full((m, nr_tile), np.nan, dtype)
            _call(name, kind, a, nseg, kseg, _panel(w, nr_tile), c, cols, bias)
            results[name, kind_name] = c[:, :cols]
    first = next(iter(results))
    for key, got in results.items():
        assert_bitwise_equal(got, results[first], (key, first), what="micro-kernels")


# ----------------------------------------------- every kernel family, per ISA
CONV_CASES = [
    dict(c=3, oc=16, kernel=(5, 5), strides=5, padding="valid", groups=1),
    dict(c=64, oc=64, kernel=(3, 3), strides=1, padding="same", groups=1),
    dict(c=17, oc=33, kernel=(3, 2), strides=(1, 2), padding=((1, 2), (0, 1)), groups=1),
    dict(c=16, oc=48, kernel=(1, 1), strides=1, padding="valid", groups=1),
    dict(c=8, oc=8, kernel=(3, 3), strides=1, padding="same", groups=1),
    dict(c=12, oc=20, kernel=(3, 3), strides=2, padding=1, groups=4),
    dict(c=37, oc=37, kernel=(3, 3), strides=1, padding="same", groups=37),
    dict(c=64, oc=64, kernel=(3, 3), strides=2, padding="same", groups=64),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("cfg", CONV_CASES, ids=[case_id(**c) for c in CONV_CASES])
def test_conv_bits_equal_across_simd_isas_and_algorithms(simd_isas, cfg, dtype, rng):
    """Forward conv with bias and ReLU, every applicable algorithm forced, on
    every SIMD variant: one set of bits."""
    kw = dict(strides=cfg["strides"], padding=cfg["padding"], groups=cfg["groups"])
    x = rng.standard_normal((2, 11, 61, cfg["c"])).astype(dtype)
    x[1, 4, 7, 0] = np.nan
    kernel = rng.standard_normal(cfg["kernel"] + (cfg["c"] // cfg["groups"], cfg["oc"]))
    kernel = kernel.astype(dtype)
    bias = rng.standard_normal(cfg["oc"]).astype(dtype)
    results = {}
    for name in simd_isas:
        _core.isa_select(name)
        for algorithm, got in every_algorithm(x, kernel, bias, relu=True, **kw).items():
            results[name, algorithm] = got
    first = next(iter(results))
    for key, got in results.items():
        assert_bitwise_equal(got, results[first], (cfg, key), what="ISA x algorithm")


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("c", [1, 3, 4, 5, 8, 16, 17, 33])
def test_pools_and_backward_bits_equal_across_simd_isas(simd_isas, c, dtype, rng):
    """Max and average pooling, forward and backward, and the conv backward
    pass: every SIMD variant gives the same bits (NaN and inf planted; the
    second image rounded, so its windows hold ties)."""
    x = rng.standard_normal((2, 13, 29, c)).astype(dtype)
    x[1] = np.round(x[1])
    x[0, 3, 4, 0] = np.nan
    x[1, 5, 6, c - 1] = -np.inf
    kernel = rng.standard_normal((3, 3, c, 19)).astype(dtype)
    gy = rng.standard_normal((2, 13, 29, 19)).astype(dtype)
    results = {}
    for name in simd_isas:
        _core.isa_select(name)
        out = []
        for pool in (dict(pool_size=2), dict(pool_size=3, strides=2, padding="same")):
            for fn in (convpool.max_pool2d, convpool.avg_pool2d):
                y = fn(x, **pool)
                g = np.linspace(-1, 1, y.size).reshape(y.shape).astype(dtype)
                back = (convpool.max_pool2d_backward if fn is convpool.max_pool2d
                        else convpool.avg_pool2d_backward)
                out += [y, back(g, x, **pool)]
        out.append(convpool.conv2d(np.nan_to_num(x), kernel, padding="same"))
        out += list(convpool.conv2d_backward(gy, np.nan_to_num(x), kernel, padding="same"))
        results[name] = out
    first = simd_isas[0]
    for name in simd_isas[1:]:
        for i, (got, want) in enumerate(zip(results[name], results[first])):
            assert_bitwise_equal(got, want, (name, first, c, i), what="ISA variants")


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("c", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 32, 33])
def test_max_pool_backward_vector_run_equals_the_portable_loop(c, dtype, rng):
    """The max-pool gradient over tiling windows (a vector run in every SIMD
    variant, for any C) gives the baseline's bits: the first maximum wins,
    a NaN replaces it, ties and -inf included, padded borders too."""
    names = [n for n in _core.isa_names() if _core.isa_compiled(n) and _core.isa_supported(n)]
    x = rng.standard_normal((2, 12, 19, c)).astype(dtype)
    x[1] = np.round(x[1])  # ties
    x[0, 3, 4, 0] = np.nan
    x[0, 7, 9, c - 1] = np.nan
    x[1, 5, 6, c - 1] = -np.inf
    cases = [dict(pool_size=2), dict(pool_size=3), dict(pool_size=(2, 3)),
             dict(pool_size=3, padding="same"), dict(pool_size=(3, 2), padding=((1, 1), (1, 0)))]
    old = _core.isa_selected()
    results = {}
    try:
        for name in names:
            _core.isa_select(name)
            for i, kw in enumerate(cases):
                g = np.linspace(-1, 1, convpool.max_pool2d(x, **kw).size).astype(dtype)
                g = g.reshape(convpool.max_pool2d(x, **kw).shape)
                results[name, i] = convpool.max_pool2d_backward(g, x, **kw)
    finally:
        _core.isa_select(old)
    for (name, i), got in results.items():
        assert_bitwise_equal(got, results["baseline", i], (name, cases[i], c), what="ISA vs baseline")



PACKED_POOLS = [
    dict(pool_size=2),
    dict(pool_size=2, strides=1),
    dict(pool_size=3, strides=2),
    dict(pool_size=3, strides=3),
    dict(pool_size=(2, 3), strides=(1, 2)),
    dict(pool_size=(3, 4), strides=(2, 1)),
    dict(pool_size=3, strides=2, padding=((1, 1), (0, 0))),  # rows of padding only
    dict(pool_size=3, strides=2, padding="same"),            # padded columns: not packed
    dict(pool_size=3, strides=2, ceil_mode=True),             # last windows reach past
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("c", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("w", [9, 40, 101])
def test_small_pixel_pools_equal_the_portable_loop(w, c, dtype, rng):
    """Pools of pixels narrower than 32 bytes take the packed pass in the
    SIMD variants (each window's rows reduced in two vectors, its taps
    picked by a two-vector permutation, no buffer between) and the portable
    loops in the baseline: the same bits, for max (NaN and -inf planted,
    ties) and for average (with and without the padding counted, and a
    divisor override), at widths
    where the vector steps, their masked last step and the per-pixel tail
    all run."""
    names = [n for n in _core.isa_names() if _core.isa_compiled(n) and _core.isa_supported(n)]
    x = rng.standard_normal((2, 11, w, c)).astype(dtype)
    x[1] = np.round(x[1])
    x[0, 3, 4, 0] = np.nan
    x[0, 8, w - 2, c - 1] = np.nan
    x[1, 5, 6, c - 1] = -np.inf
    calls = []
    for kw in PACKED_POOLS:
        calls.append((convpool.max_pool2d, kw))
        calls.append((convpool.avg_pool2d, kw))
        calls.append((convpool.avg_pool2d, dict(kw, count_include_pad=True)))
    calls.append((convpool.avg_pool2d, dict(pool_size=2, divisor_override=3)))
    old = _core.isa_selected()
    results = {}
    try:
        for name in names:
            _core.isa_select(name)
            for i, (fn, kw) in enumerate(calls):
                results[name, i] = fn(x, **kw)
    finally:
        _core.isa_select(old)
    for (name, i), got in results.items():
        assert_bitwise_equal(got, results["baseline", i], (name, calls[i][0].__name__,
                                                           calls[i][1], w, c),
                             what="ISA vs baseline")


# ------------------------------------------------------------------ the plan
PLAN_CASES = [
    # (x shape, kernel shape, kwargs, algorithm)
    ((1, 8, 200, 3), (3, 3, 3, 16), dict(padding="same"), "rows"),
    ((1, 8, 7, 3), (3, 3, 3, 16), dict(padding="same"), "gather"),
    ((1, 8, 40, 16), (1, 1, 16, 32), dict(), "pointwise"),
    ((1, 8, 40, 16), (3, 3, 1, 16), dict(groups=16, padding="same"), "depthwise"),
    ((1, 8, 200, 16), (3, 3, 1, 32), dict(groups=16, padding="same"), "rows"),
    # A CIFAR layer: Winograd in float32, the direct ROWS in float64 (or when asked).
    ((1, 8, 32, 32), (3, 3, 32, 32), dict(padding="same"), {"f32": "winograd", "f64": "rows"}),
    ((1, 8, 32, 32), (3, 3, 32, 32), dict(padding="same", algorithm="direct"), "rows"),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("oc", [64, 128])
def test_plan_rows_or_gather_by_the_empty_tile_rows(isa, oc, dtype):
    # 28 columns, 'same': 26 interior columns in tiles of MR pixels.  With 128
    # or more output channels, GATHER is taken once more than 15% of the
    # tiles' rows would be empty (MR = 12: 10 of 36); with fewer, ROWS.
    xs, ks = (1, 6, 28, 8), (3, 3, 8, oc)
    plan = convpool.conv2d_plan(np.zeros(xs, dtype), np.zeros(ks, dtype), padding="same",
                                algorithm="direct")
    mr = plan["tile"][0]
    filled = -(-26 // mr) * mr
    wasteful = oc >= 128 and 100 * (filled - 26) > 15 * filled
    assert plan["algorithm"] == ("gather" if wasteful else "rows"), (isa, mr, plan)
    xr = np.random.default_rng(0).standard_normal(xs).astype(dtype)
    kr = np.random.default_rng(1).standard_normal(ks).astype(dtype)
    assert_bitwise_equal(forced_conv(xr, kr, None, "rows", padding="same"),
                         convpool.conv2d(xr, kr, padding="same", algorithm="direct"),
                         (xs, ks), what="rows vs the direct plan")


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("xs, ks, kw, algorithm", PLAN_CASES,
                         ids=[case_id(x=c[0], k=c[1], **c[2]) for c in PLAN_CASES])
def test_plan_names_the_algorithm_and_tile(isa, xs, ks, kw, algorithm, dtype):
    x, k = np.zeros(xs, dtype), np.zeros(ks, dtype)
    if isinstance(algorithm, dict):
        algorithm = algorithm[DT_IDS[DTYPES.index(dtype)]]
    plan = convpool.conv2d_plan(x, k, **kw)
    assert plan["algorithm"] == algorithm
    assert plan["exact"] == (algorithm != "winograd")
    assert plan["isa"] == isa
    itemsize = np.dtype(dtype).itemsize
    assert plan["tile"] in {_core.gemm_shape(itemsize, kind) for kind in KINDS.values()}
    assert plan["units"] >= 1
    # the plan is the one conv2d runs: forcing the named algorithm changes nothing
    xr = np.random.default_rng(0).standard_normal(xs).astype(dtype)
    kr = np.random.default_rng(1).standard_normal(ks).astype(dtype)
    geometry = {key: v for key, v in kw.items() if key != "algorithm"}
    assert_bitwise_equal(forced_conv(xr, kr, None, algorithm, **geometry),
                         convpool.conv2d(xr, kr, **kw), (xs, ks, kw), what="plan vs conv2d")


def test_plan_narrow_tile_for_few_output_channels(isa):
    """Layers with at most one vector of output channels take the NARROW tile
    (the seed's 16 filters on AVX-512); wider ones the WIDE tile."""
    for dtype in DTYPES:
        itemsize = np.dtype(dtype).itemsize
        narrow, wide = _core.gemm_shape(itemsize, 1), _core.gemm_shape(itemsize, 0)
        x = np.zeros((1, 4, 30, 3), dtype)
        few = convpool.conv2d_plan(x, np.zeros((3, 3, 3, narrow[1]), dtype))
        many = convpool.conv2d_plan(x, np.zeros((3, 3, 3, narrow[1] + 1), dtype))
        assert few["tile"] == narrow
        assert many["tile"] == wide


def test_forcing_an_algorithm_that_cannot_run_is_a_value_error(rng):
    x = rng.standard_normal((1, 5, 6, 4)).astype(np.float32)
    k = rng.standard_normal((3, 3, 4, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="the depthwise algorithm cannot compute"):
        forced_conv(x, k, None, "depthwise")
    with pytest.raises(ValueError, match="the pointwise algorithm cannot compute"):
        forced_conv(x, k, None, "pointwise")
    with pytest.raises(ValueError, match="algorithm must be one of"):
        forced_conv(x, k, None, "winograd9")


def test_plan_validates_like_conv2d():
    with pytest.raises(ValueError, match="kernel"):
        convpool.conv2d_plan(np.zeros((1, 5, 5, 3), np.float32), np.zeros((3, 3, 4, 8), np.float32))
    empty = convpool.conv2d_plan(np.zeros((0, 5, 5, 3), np.float32),
                                 np.zeros((3, 3, 3, 8), np.float32))
    assert empty["algorithm"] is None and empty["units"] == 0


def test_isa_names_come_from_the_c_registry():
    names = _core.isa_names()
    assert names[0] == "baseline" and len(set(names)) == len(names)
    assert {"avx2", "avx512"} <= set(names)
    cfg = convpool.show_config()
    assert cfg["simd_selected"] in names
    for name in names:
        if _core.isa_supported(name):
            assert _core.isa_compiled(name)
    for name in names:
        if not (_core.isa_compiled(name) and _core.isa_supported(name)):
            with pytest.raises(ValueError, match="not compiled into this build or not supported"):
                _core.isa_select(name)
    assert _core.isa_selected() == cfg["simd_selected"]
