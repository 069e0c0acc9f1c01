"""Global and adaptive pooling against the reference: maxima and indices exactly,
averages to rounding (integer data: exactly), forward and backward, both
layouts and dtypes; the layers; bad arguments."""


import numpy as np
import pytest
from _helpers import small_ints

import convpool
from convpool import reference

LAYOUTS = ("channels_last", "channels_first")
DTYPES = (np.float32, np.float64)

# (H, W, output_size): divisible (the plain pooling kernels), overlapping
# windows, None entries, an output larger than the input, 1x1.
ADAPTIVE = [(8, 6, (4, 3)), (7, 10, (3, 4)), (5, 5, (None, 2)), (3, 4, (5, 6)), (9, 7, 1),
            (1, 1, (1, 1)), (6, 11, 4)]


def _id(*parts):
    return "-".join(str(p).replace(" ", "") for p in parts)


def _x(rng, h, w, dtype, fmt, *, integer=False, nan=False):
    x = small_ints(rng, (2, h, w, 3), dtype) if integer else rng.standard_normal((2, h, w, 3))
    x = x.astype(dtype)
    if nan:
        x[0, h // 2, w // 2, 1] = np.nan
        x[1, 0, w - 1, 2] = np.nan
    return x if fmt == "channels_last" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("h, w, size", ADAPTIVE, ids=[_id(*c) for c in ADAPTIVE])
def test_adaptive_max_and_indices_exact(h, w, size, dtype, fmt, rng):
    for nan in (False, True):
        x = _x(rng, h, w, dtype, fmt, nan=nan)
        y, idx = convpool.adaptive_max_pool2d(x, size, fmt, return_indices=True)
        ry, ridx = reference.adaptive_max_pool2d(x, size, fmt, return_indices=True)
        np.testing.assert_array_equal(y, ry)
        np.testing.assert_array_equal(idx, ridx)
        assert idx.dtype == np.int64 and y.dtype == dtype
        np.testing.assert_array_equal(convpool.adaptive_max_pool2d(x, size, fmt), ry)
        g = small_ints(rng, y.shape, dtype)
        np.testing.assert_array_equal(convpool.adaptive_max_pool2d_backward(g, x, size, fmt),
                                      reference.adaptive_max_pool2d_backward(g, x, size, fmt))


@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("h, w, size", ADAPTIVE, ids=[_id(*c) for c in ADAPTIVE])
def test_adaptive_avg_matches_reference(h, w, size, fmt, rng):
    x = _x(rng, h, w, np.float64, fmt, integer=True)
    y = convpool.adaptive_avg_pool2d(x, size, fmt)
    ry = reference.adaptive_avg_pool2d(x, size, fmt)
    # Integer sums are exact; each output is then one division, rounded once.
    np.testing.assert_array_equal(y, ry)
    g = rng.standard_normal(y.shape)
    np.testing.assert_allclose(convpool.adaptive_avg_pool2d_backward(g, x, size, fmt),
                               reference.adaptive_avg_pool2d_backward(g, x, size, fmt),
                               rtol=1e-13, atol=1e-15)
    x32 = _x(rng, h, w, np.float32, fmt)
    y32 = convpool.adaptive_avg_pool2d(x32, size, fmt)
    r32 = reference.adaptive_avg_pool2d(x32.astype(np.float64), size, fmt)
    cells = h * w  # at most the whole image is summed: gamma(cells) relative to sum |x|
    bound = 2 * cells * np.finfo(np.float32).eps * np.abs(x32).max() + 1e-30
    assert y32.dtype == np.float32 and np.all(np.abs(y32 - r32) <= bound)


def test_adaptive_windows_are_pytorchs():
    """Output i averages rows floor(i*H/OH) .. ceil((i+1)*H/OH) - 1: with H = 5 and
    OH = 3 the windows are rows 0-1, 1-3 and 3-4 (they overlap)."""
    x = np.arange(5, dtype=np.float64).reshape(1, 5, 1, 1)
    np.testing.assert_array_equal(convpool.adaptive_avg_pool2d(x, (3, 1))[0, :, 0, 0],
                                  [0.5, 2.0, 3.5])
    y, idx = convpool.adaptive_max_pool2d(x, (3, 1), return_indices=True)
    np.testing.assert_array_equal(y[0, :, 0, 0], [1, 3, 4])
    np.testing.assert_array_equal(idx[0, :, 0, 0], [1, 3, 4])


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_global_pools_match_reference(dtype, fmt, keepdims, rng):
    x = _x(rng, 7, 5, dtype, fmt, integer=True)
    ga = convpool.global_avg_pool2d(x, keepdims, fmt)
    gm = convpool.global_max_pool2d(x, keepdims, fmt)
    want = (2, 3) if not keepdims else ((2, 1, 1, 3) if fmt == "channels_last" else (2, 3, 1, 1))
    assert ga.shape == gm.shape == want and ga.dtype == gm.dtype == dtype
    np.testing.assert_array_equal(ga, reference.global_avg_pool2d(x, keepdims, fmt))
    np.testing.assert_array_equal(gm, reference.global_max_pool2d(x, keepdims, fmt))
    g = small_ints(rng, want, dtype)
    np.testing.assert_array_equal(convpool.global_max_pool2d_backward(g, x, keepdims, fmt),
                                  reference.global_max_pool2d_backward(g, x, keepdims, fmt))
    np.testing.assert_allclose(convpool.global_avg_pool2d_backward(g, x, keepdims, fmt),
                               reference.global_avg_pool2d_backward(g, x, keepdims, fmt),
                               rtol=4 * np.finfo(dtype).eps)


def test_global_max_nan_and_first_maximum():
    x = np.zeros((1, 2, 2, 2), np.float32)
    x[0, 1, 1, 0] = np.nan
    x[0, 0, 1, 1] = x[0, 1, 0, 1] = 3  # a tie: the first one (row-major) wins
    assert np.isnan(convpool.global_max_pool2d(x)[0, 0])
    gx = convpool.global_max_pool2d_backward(np.ones((1, 2), np.float32), x)
    np.testing.assert_array_equal(gx[0, :, :, 1], [[0, 1], [0, 0]])
    np.testing.assert_array_equal(gx[0, :, :, 0], [[0, 0], [0, 1]])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x: convpool.global_avg_pool2d(x[:, :0]), "H and W of at least 1"),
        (lambda x: convpool.global_max_pool2d(x[0]), "must be 4-D"),
        (lambda x: convpool.global_avg_pool2d(x, keepdims=1), "keepdims must be a bool"),
        (lambda x: convpool.global_avg_pool2d(x, data_format="NHWC"), "data_format must be"),
        (lambda x: convpool.global_avg_pool2d_backward(np.ones((2, 4)), x), r"shape \(2, 3\)"),
        (lambda x: convpool.adaptive_avg_pool2d(x, 0), "output_size must be positive"),
        (lambda x: convpool.adaptive_max_pool2d(x, (2, 3, 4)), "output_size must be an int or a pair"),
        (lambda x: convpool.adaptive_max_pool2d(x, None), "output_size must be"),
        (lambda x: convpool.adaptive_max_pool2d(x, 2, return_indices="yes"), "return_indices must be a bool"),
        (lambda x: convpool.adaptive_avg_pool2d(x.astype(np.complex64), 2), "x has dtype complex64"),
        (lambda x: convpool.adaptive_avg_pool2d_backward(np.ones((2, 2, 2, 4)), x, 2), "grad_out must have"),
        (lambda x: convpool.adaptive_max_pool2d_backward(np.ones((2, 3, 2, 3)), x, 2), "grad_out must have"),
    ],
)
def test_bad_arguments(call, match):
    x = np.zeros((2, 6, 5, 3), np.float32)
    with pytest.raises((ValueError, TypeError), match=match):
        call(x)


def test_inputs_never_modified_and_integer_input_computes_in_float32(rng):
    x = small_ints(rng, (2, 7, 6, 3), np.int32)
    before = x.copy()
    for fn in (lambda: convpool.adaptive_avg_pool2d(x, (3, 4)),
               lambda: convpool.adaptive_max_pool2d(x, (3, 4), return_indices=True)[0],
               lambda: convpool.global_avg_pool2d(x)):
        assert fn().dtype == np.float32
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("cls", [convpool.GlobalAveragePooling2D, convpool.GlobalMaxPooling2D])
@pytest.mark.parametrize("fmt", LAYOUTS)
def test_global_pooling_layers(cls, fmt, rng, tmp_path):
    shape = (None, 6, 5, 3) if fmt == "channels_last" else (None, 3, 6, 5)
    layer = cls(data_format=fmt)
    x = rng.standard_normal((2,) + shape[1:]).astype(np.float32)
    y = layer.forward(x, training=True)
    fn = convpool.global_avg_pool2d if cls is convpool.GlobalAveragePooling2D else convpool.global_max_pool2d
    np.testing.assert_array_equal(y, fn(x, data_format=fmt))
    assert layer.compute_output_shape(shape) == (None, 3) and layer.count_params() == 0
    g = rng.standard_normal(y.shape).astype(np.float32)
    bwd = (convpool.global_avg_pool2d_backward if cls is convpool.GlobalAveragePooling2D
           else convpool.global_max_pool2d_backward)
    np.testing.assert_array_equal(layer.backward(g), bwd(g, x, data_format=fmt))
    model = convpool.Sequential([convpool.Conv2D(4, 3, data_format=fmt), cls(data_format=fmt,
                                                                                keepdims=True)],
                                input_shape=shape)
    table = model.summary_table()
    assert table.rows[1]["receptive_field"] is None and table.rows[1]["whole_input"] == (6, 5)
    model.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(convpool.load(tmp_path / "m.npz").predict(x), model.predict(x))
    with pytest.raises(TypeError, match="keepdims must be a bool"):
        cls(keepdims="no")


# ------------------------------------------------- max/avg options, unpooling, Lp pooling
# (H, W, pool, strides, padding, dilation, ceil_mode)
POOL_OPTIONS = [
    (7, 8, 3, 2, 1, 1, True), (8, 6, 2, 2, 0, 1, True), (9, 9, 3, 1, 1, 2, False),
    (9, 7, (3, 2), (2, 3), (1, 0), (2, 3), True), (5, 5, 2, 3, 1, 1, True),
    (6, 6, 3, 3, 0, 1, False), (4, 11, 1, 2, 0, 1, True),
]


def _pool_id(case):
    return "-".join(f"{k}{v}".replace(" ", "") for k, v in zip("HWkspdc", case))


@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", POOL_OPTIONS, ids=_pool_id)
def test_max_pool_dilation_ceil_indices_exact(case, dtype, fmt, rng):
    h, w, k, s, p, d, ceil = case
    x = _x(rng, h, w, dtype, fmt, nan=True)
    x[..., :2] = np.round(x[..., :2])  # ties: the first maximum wins
    args = dict(strides=s, padding=p, dilation_rate=d, ceil_mode=ceil)
    y, idx = convpool.max_pool2d(x, k, data_format=fmt, return_indices=True, **args)
    ry, ridx = reference.max_pool2d(x, k, data_format=fmt, return_indices=True, **args)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_array_equal(convpool.max_pool2d(x, k, data_format=fmt, **args), ry)
    g = small_ints(rng, y.shape, dtype)
    np.testing.assert_array_equal(
        convpool.max_pool2d_backward(g, x, k, data_format=fmt, **args),
        reference.max_pool2d_backward(g, x, k, data_format=fmt, **args))


@pytest.mark.parametrize("divisor", [None, 5])
@pytest.mark.parametrize("cip", [False, True], ids=["real-cells", "include-pad"])
@pytest.mark.parametrize("case", [c for c in POOL_OPTIONS if c[5] == 1], ids=_pool_id)
def test_avg_pool_ceil_mode_and_divisor_override(case, cip, divisor, rng):
    h, w, k, s, p, _, ceil = case
    x = _x(rng, h, w, np.float64, "channels_last", integer=True)
    args = dict(strides=s, padding=p, count_include_pad=cip, ceil_mode=ceil,
                divisor_override=divisor)
    y = convpool.avg_pool2d(x, k, **args)
    np.testing.assert_array_equal(y, reference.avg_pool2d(x, k, **args))  # exact sums, one division
    g = rng.standard_normal(y.shape)
    np.testing.assert_allclose(convpool.avg_pool2d_backward(g, x, k, **args),
                               reference.avg_pool2d_backward(g, x, k, **args), rtol=1e-14,
                               atol=1e-15)


def test_ceil_mode_counts_the_padded_input_but_not_the_overhang():
    """PyTorch's divisor with count_include_pad and ceil_mode: 6 columns, pool 3,
    stride 2, pad 1 on each side: windows start at -1, 1, 3 and 5; the last
    holds column 5, the pad column 6 and column 7 past the padding, so it
    divides its sum (1) by 2 (values measured with PyTorch 2.13)."""
    x = np.ones((1, 1, 6, 1))
    y = convpool.avg_pool2d(x, (1, 3), strides=(1, 2), padding=((0, 0), (1, 1)),
                            count_include_pad=True, ceil_mode=True)
    np.testing.assert_array_equal(y[0, 0, :, 0], [2 / 3, 1.0, 1.0, 0.5])


def test_ceil_mode_drops_a_window_that_starts_in_the_padding():
    x = np.zeros((1, 5, 5, 1), np.float32)
    # Rounded up, (5 + 2 - 2) / 2 gives 4 windows, but the 4th would start at
    # 3 * 2 - 1 = 5, in the padding after the input: 3 windows (PyTorch's rule).
    assert convpool.max_pool2d(x, 2, strides=2, padding=1, ceil_mode=True).shape == (1, 3, 3, 1)
    assert convpool.max_pool2d(x, 2, strides=2, padding=1).shape == (1, 3, 3, 1)
    assert convpool.max_pool2d(x, 2, strides=2, ceil_mode=True).shape == (1, 3, 3, 1)
    assert convpool.max_pool2d(x, 2, strides=2).shape == (1, 2, 2, 1)


def test_max_unpool_inverts_max_pool_at_its_indices(rng):
    x = rng.standard_normal((2, 7, 9, 3)).astype(np.float32)
    for k, s, p in ((2, 2, 0), (3, 2, 1), (3, 3, 0)):
        y, idx = convpool.max_pool2d(x, k, s, p, return_indices=True)
        u = convpool.max_unpool2d(y, idx, k, s, p, output_size=(7, 9) if (k, s) == (2, 2) else None)
        np.testing.assert_array_equal(u, reference.max_unpool2d(y, idx, k, s, p,
                                                                 u.shape[1:3]))
        flat = u.reshape(2, -1, 3)
        picked = np.take_along_axis(flat, idx.reshape(2, -1, 3), axis=1)
        np.testing.assert_array_equal(picked, y.reshape(2, -1, 3))
        assert np.count_nonzero(u) <= np.count_nonzero(y)
    # channels_first and a later value winning a shared index
    xs = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32).reshape(1, 1, 2, 2)
    shared = np.zeros((1, 1, 2, 2), np.int64)
    out = convpool.max_unpool2d(xs, shared, 2, 1, output_size=(3, 3), data_format="channels_first")
    np.testing.assert_array_equal(out[0, 0], [[4, 0, 0], [0, 0, 0], [0, 0, 0]])


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(indices=np.full((1, 2, 2, 1), 16)), r"indices must lie in \[0, 16\)"),
        (dict(indices=np.full((1, 2, 2, 1), -1)), "indices must lie in"),
        (dict(indices=np.zeros((1, 2, 2, 1), np.float32)), "indices must be integers"),
        (dict(indices=np.zeros((1, 2, 3, 1), np.int64)), "indices must have x's shape"),
        (dict(output_size=(6, 4)), "output_size .* must lie strictly within"),
        (dict(output_size=(2, 4)), "output_size .* must lie strictly within"),
    ],
)
def test_max_unpool_bad_arguments(kw, match):
    args = dict(x=np.ones((1, 2, 2, 1), np.float32), indices=np.zeros((1, 2, 2, 1), np.int64),
                pool_size=2)
    args.update(kw)
    with pytest.raises((ValueError, TypeError), match=match):
        convpool.max_unpool2d(**args)


@pytest.mark.parametrize("ceil", [False, True])
@pytest.mark.parametrize("p", [1, 2, 3.5])
def test_lp_pool_matches_reference(p, ceil, rng):
    x = np.abs(rng.standard_normal((2, 7, 6, 3))) + 0.25
    args = dict(strides=2, ceil_mode=ceil)
    y = convpool.lp_pool2d(x, p, 3, **args)
    np.testing.assert_allclose(y, reference.lp_pool2d(x, p, 3, **args), rtol=1e-13)
    g = rng.standard_normal(y.shape)
    np.testing.assert_allclose(convpool.lp_pool2d_backward(g, x, p, 3, **args),
                               reference.lp_pool2d_backward(g, x, p, 3, **args), rtol=1e-11,
                               atol=1e-14)
    if p == 2 and not ceil:  # the Euclidean norm of each window
        win = x[:, :3, :3]
        np.testing.assert_allclose(y[:, 0, 0], np.sqrt((win ** 2).sum(axis=(1, 2))), rtol=1e-13)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x: convpool.max_pool2d(x, 2, return_indices=1), "return_indices must be a bool"),
        (lambda x: convpool.max_pool2d(x, 2, ceil_mode="no"), "ceil_mode must be a bool"),
        (lambda x: convpool.max_pool2d(x, 2, dilation_rate=0), "dilation_rate must be positive"),
        (lambda x: convpool.max_pool2d(x, 2, padding=2, dilation_rate=1), "may not exceed"),
        (lambda x: convpool.avg_pool2d(x, 2, divisor_override=0), "divisor_override must be a positive"),
        (lambda x: convpool.avg_pool2d(x, 2, divisor_override=1.5), "divisor_override must be"),
        (lambda x: convpool.lp_pool2d(x, 0, 2), "norm_type must be finite and non-zero"),
        (lambda x: convpool.lp_pool2d(x, "2", 2), "norm_type must be a number"),
        (lambda x: convpool.lp_pool2d_backward(np.ones((1, 1)), x, 2, 2), "grad_out must have"),
    ],
)
def test_pool_option_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(np.zeros((2, 6, 5, 3), np.float32))


def test_dilated_max_pool_bitwise_for_any_thread_count(rng):
    x = rng.standard_normal((3, 9, 9, 5)).astype(np.float32)
    before = convpool.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            convpool.set_num_threads(n)
            outs.append(convpool.max_pool2d(x, 3, 1, 1, dilation_rate=2, return_indices=True))
    finally:
        convpool.set_num_threads(before)
    for y, idx in outs[1:]:
        assert y.tobytes() == outs[0][0].tobytes() and np.array_equal(idx, outs[0][1])


def test_dilated_window_between_the_cells_is_refused():
    """Two taps 5 apart on a 2-row input padded by 3: the window starting at -3 has
    taps at -3 and 2, neither an input cell (PyTorch would return -inf there)."""
    x = np.zeros((1, 2, 2, 1), np.float32)
    for fn in (convpool.max_pool2d, reference.max_pool2d):
        with pytest.raises(ValueError, match="holds no input cell"):
            fn(x, (2, 1), strides=1, padding=((3, 3), (0, 0)), dilation_rate=(5, 1))
    y = convpool.max_pool2d(x + 1, (2, 1), strides=1, padding=((1, 1), (0, 0)),
                            dilation_rate=(2, 1))
    np.testing.assert_array_equal(y, np.ones((1, 2, 2, 1), np.float32))


@pytest.mark.parametrize("c", [1, 3, 8, 13], ids=lambda c: f"C{c}")
def test_every_isa_dilation_ceil_indices_exact(isa, c, rng):
    """Each SIMD variant's separable kernel (dilated taps, both horizontal
    passes: small C and per pixel) and its direct kernel against the reference."""
    for dtype in DTYPES:
        x = rng.standard_normal((2, 11, 13, c)).astype(dtype)
        x[0, 5, 6, 0] = np.nan
        for k, s, p, d, ceil in ((3, 2, 2, 2, False), ((2, 3), 1, (1, 2), (3, 2), True),
                                 (3, 2, 1, 1, True)):
            args = dict(strides=s, padding=p, dilation_rate=d, ceil_mode=ceil)
            ry, ridx = reference.max_pool2d(x, k, return_indices=True, **args)
            np.testing.assert_array_equal(convpool.max_pool2d(x, k, **args), ry)
            y, idx = convpool.max_pool2d(x, k, return_indices=True, **args)
            np.testing.assert_array_equal(y, ry)
            np.testing.assert_array_equal(idx, ridx)
        xi = small_ints(rng, (2, 11, 13, c), dtype)
        for cip in (False, True):
            args = dict(strides=2, padding=1, count_include_pad=cip, ceil_mode=True)
            np.testing.assert_array_equal(convpool.avg_pool2d(xi, 3, **args),
                                          reference.avg_pool2d(xi, 3, **args))


# ------------------------------------------------------------ edge inputs
@pytest.mark.parametrize("impl", [convpool, reference], ids=["fast", "reference"])
def test_divisor_override_beyond_int64_is_a_value_error(impl):
    x = np.ones((1, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match=r"divisor_override must be below 2\*\*63"):
        impl.avg_pool2d(x, 2, divisor_override=2**63)
    y = impl.avg_pool2d(x, 2, divisor_override=2**63 - 1)
    np.testing.assert_allclose(y, 4 / (2**63 - 1), rtol=1e-6)


@pytest.mark.parametrize("impl", [convpool, reference], ids=["fast", "reference"])
@pytest.mark.parametrize("shape", [(1, 0, 4, 2), (2, 3, 0, 1)], ids=["H0", "W0"])
def test_indices_of_windows_over_padding_only_are_refused(impl, shape):
    """An empty plane padded to a non-empty result: no cell to point at, in both."""
    x = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match="return_indices needs a non-empty input plane"):
        impl.max_pool2d(x, 2, padding=1, return_indices=True)


@pytest.mark.parametrize("impl", [convpool, reference], ids=["fast", "reference"])
@pytest.mark.parametrize("shape", [(0, 5, 7, 3), (2, 5, 7, 0)], ids=["N0", "C0"])
def test_adaptive_and_global_pools_on_an_empty_batch_or_no_channels(impl, shape):
    x = np.zeros(shape, np.float32)
    n, c = shape[0], shape[3]
    y, idx = impl.adaptive_max_pool2d(x, (3, 4), return_indices=True)  # 4 does not divide 7
    assert y.shape == idx.shape == (n, 3, 4, c)
    for backward in (impl.adaptive_max_pool2d_backward, impl.adaptive_avg_pool2d_backward):
        assert backward(np.zeros((n, 3, 4, c), np.float32), x, (3, 4)).shape == shape
    assert impl.global_avg_pool2d(x).shape == (n, c)
    assert impl.global_max_pool2d(x, keepdims=True).shape == (n, 1, 1, c)
    for backward in (impl.global_avg_pool2d_backward, impl.global_max_pool2d_backward):
        assert backward(np.zeros((n, c), np.float32), x).shape == shape


@pytest.mark.parametrize("fmt", ["CHANNELS_FIRST", "Channels_Last"])
def test_reference_global_backward_normalises_data_format(fmt, rng):
    shape = (2, 3, 4, 5)
    x = rng.standard_normal(shape).astype(np.float32)
    n, c = (shape[0], shape[1]) if fmt.lower() == "channels_first" else (shape[0], shape[3])
    g = rng.standard_normal((n, c)).astype(np.float32)
    for name in ("global_avg_pool2d_backward", "global_max_pool2d_backward"):
        want = getattr(convpool, name)(g, x, data_format=fmt)
        got = getattr(reference, name)(g, x, data_format=fmt)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match=r"grad_out must have the forward output's shape"):
        reference.global_avg_pool2d_backward(g[:, :-1], x, data_format=fmt)


def test_huge_adaptive_output_is_refused_at_once():
    x = np.zeros((0, 3, 3, 1), np.float32)
    for impl in (convpool, reference):
        with pytest.raises(ValueError, match="output_size .* is too large"):
            impl.adaptive_avg_pool2d(x, 2**40)
    # Longer than the input is allowed (PyTorch's windows repeat cells) up to the bound.
    y = convpool.adaptive_max_pool2d(np.arange(3.0).reshape(1, 3, 1, 1), (7, 1))
    np.testing.assert_array_equal(y[0, :, 0, 0], [0, 0, 1, 1, 2, 2, 2])  # [i*3//7, ceil((i+1)*3/7))


def test_window_between_cells_is_found_without_a_loop_over_huge_padding():
    """Taps 10**15 apart on 3 rows, padded by 10**15 - 1 on both sides: window 2
    starts at -(10**15 - 3), its taps at that and at 3, both outside.  Closed
    form: no loop over the 10**15 + 1 windows."""
    x = np.ones((1, 3, 3, 1), np.float32)
    pad = 10**15 - 1
    with pytest.raises(ValueError, match="window 2 along H holds no input cell"):
        convpool.max_pool2d(x, (2, 1), strides=1, padding=((pad, pad), (0, 0)),
                            dilation_rate=(10**15, 1))


@pytest.mark.parametrize("impl", [convpool, reference], ids=["fast", "reference"])
def test_lp_pool_near_the_float64_maximum_does_not_overflow(impl):
    """Each 2x2 window sums to 1.6e308: finite; its sum times KH*KW is not."""
    x = np.full((1, 2, 2, 1), 4e307)
    np.testing.assert_allclose(impl.lp_pool2d(x, 1, 2), 1.6e308, rtol=1e-15)
    g = impl.lp_pool2d_backward(np.ones((1, 1, 1, 1)), x, 1, 2)
    np.testing.assert_allclose(g, 1.0, rtol=1e-15)
