"""Global and adaptive pooling against the reference: maxima and indices exactly,
averages to rounding (integer data: exactly), forward and backward, both
layouts and dtypes; the layers; bad arguments."""

import itertools

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
    table = model.summary(print_fn=None)
    assert table.rows[1]["receptive_field"] is None and table.rows[1]["whole_input"] == (6, 5)
    model.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(convpool.load(tmp_path / "m.npz").predict(x), model.predict(x))
    with pytest.raises(TypeError, match="keepdims must be a bool"):
        cls(keepdims="no")
