"""conv2d's padding_mode (reflect, replicate, circular): the fast kernels against
the reference (which pads with ``np.pad``), forward and backward, and the
limits PyTorch puts on the pads.

Integer-valued data keep every sum exact in float64, so the fast and the
reference results must agree bit for bit there; float32 runs with random data
and the derived conv tolerance.
"""

import itertools

import numpy as np
import pytest
from _helpers import conv_tolerance, small_ints

import convpool
from convpool import reference

MODES = ("reflect", "replicate", "circular")

# (kernel, strides, dilation, padding, groups): every algorithm's border path.
GEOMETRIES = [
    (3, 1, 1, 1, 1),
    (3, 1, 1, "same", 1),
    ((3, 2), (2, 1), 1, ((2, 0), (1, 1)), 1),
    (3, 2, 2, 2, 1),
    (2, 1, 1, ((1, 1), (0, 1)), 2),
    (3, 1, 1, 1, 4),        # depthwise geometry: the direct kernel takes zeros only
    (1, 1, 1, 1, 1),        # a 1x1 conv whose padding ring is all border
    (5, 1, 1, 4, 1),        # pads of up to H - 1 = 4 (reflect's limit on 5 rows)
]


def _id(mode, geometry, fmt):
    k, s, d, p, g = geometry
    return f"{mode}-k{k}-s{s}-d{d}-p{p}-g{g}-{fmt}".replace(" ", "")


CASES = [pytest.param(m, geo, fmt, id=_id(m, geo, fmt))
         for m, geo, fmt in itertools.product(MODES, GEOMETRIES,
                                              ("channels_last", "channels_first"))]


def _inputs(rng, geometry, fmt, dtype, integer):
    k, s, d, p, groups = geometry
    kh, kw = (k, k) if isinstance(k, int) else k
    shape = (2, 5, 7, 4)
    if integer:
        x = small_ints(rng, shape, dtype)
        kernel = small_ints(rng, (kh, kw, 4 // groups, 4), dtype)
        bias = small_ints(rng, (4,), dtype)
    else:
        x = rng.standard_normal(shape).astype(dtype)
        kernel = rng.standard_normal((kh, kw, 4 // groups, 4)).astype(dtype)
        bias = rng.standard_normal(4).astype(dtype)
    if fmt == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    args = dict(strides=s, padding=p, dilation_rate=d, groups=groups, data_format=fmt)
    return x, kernel, bias, args


@pytest.mark.parametrize("mode, geometry, fmt", CASES)
def test_forward_and_backward_exact_on_integers(mode, geometry, fmt, rng):
    x, kernel, bias, args = _inputs(rng, geometry, fmt, np.float64, integer=True)
    x_before = x.copy()
    y = convpool.conv2d(x, kernel, bias, activation="relu", padding_mode=mode, **args)
    ref = reference.conv2d(x, kernel, bias, activation="relu", padding_mode=mode, **args)
    np.testing.assert_array_equal(y, ref)
    g = small_ints(rng, y.shape, np.float64)
    fast = convpool.conv2d_backward(g, x, kernel, activation="relu", output=y,
                                    padding_mode=mode, **args)
    slow = reference.conv2d_backward(g, x, kernel, activation="relu", output=ref,
                                     padding_mode=mode, **args)
    for name, a, b in zip(("grad_x", "grad_kernel", "grad_bias"), fast, slow):
        np.testing.assert_array_equal(a, b, err_msg=f"{name}, {mode} {geometry} {fmt}")
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize("mode", MODES)
def test_float32_within_the_derived_tolerance(mode, rng):
    geometry = (3, 1, 1, "same", 1)
    x, kernel, bias, args = _inputs(rng, geometry, "channels_last", np.float32, integer=False)
    y = convpool.conv2d(x, kernel, bias, padding_mode=mode, **args)
    ref = reference.conv2d(x.astype(np.float64), kernel.astype(np.float64),
                           bias.astype(np.float64), padding_mode=mode, **args)
    # The padded input holds the same values as x, so x's magnitudes bound the terms.
    tol = conv_tolerance(x, kernel, np.float32, **args)
    assert np.all(np.abs(y - ref) <= tol), np.abs(y - ref).max()


def test_reflect_replicate_circular_read_the_pixels_numpy_pads_with():
    """A 3x3 kernel with a single tap reads one pixel: the output is the padded input."""
    x = np.arange(12, dtype=np.float64).reshape(1, 3, 4, 1)
    for mode, np_mode in (("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap")):
        for a, b in ((0, 0), (0, 2), (2, 1)):
            kernel = np.zeros((3, 3, 1, 1))
            kernel[a, b] = 1
            y = convpool.conv2d(x, kernel, padding=1, padding_mode=mode)
            padded = np.pad(x[0, :, :, 0], 1, mode=np_mode)
            np.testing.assert_array_equal(y[0, :, :, 0], padded[a:a + 3, b:b + 4],
                                          err_msg=f"{mode} tap {(a, b)}")


def test_plan_avoids_the_depthwise_kernel_for_other_modes():
    x = np.empty((1, 8, 32, 4), np.float32)
    kernel = np.empty((3, 3, 1, 4), np.float32)
    assert convpool.conv2d_plan(x, kernel, padding=1, groups=4)["algorithm"] == "depthwise"
    for mode in MODES:
        plan = convpool.conv2d_plan(x, kernel, padding=1, groups=4, padding_mode=mode)
        assert plan["algorithm"] in ("rows", "gather"), plan


def test_bitwise_the_same_for_any_thread_count(rng):
    x, kernel, bias, args = _inputs(rng, (3, 1, 1, "same", 1), "channels_last", np.float32,
                                    integer=False)
    g = rng.standard_normal((2, 5, 7, 4)).astype(np.float32)
    results = []
    before = convpool.get_num_threads()
    try:
        for n in (1, 2, 3):
            convpool.set_num_threads(n)
            y = convpool.conv2d(x, kernel, bias, padding_mode="reflect", **args)
            results.append((y, *convpool.conv2d_backward(g, x, kernel, padding_mode="reflect",
                                                         **args)))
    finally:
        convpool.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize(
    "mode, padding, shape, k, match",
    [
        ("reflect", 5, (1, 5, 9, 1), 7, "smaller than the input"),
        ("reflect", ((0, 0), (0, 3)), (1, 5, 3, 1), 3, "W is 3"),
        ("circular", 6, (1, 5, 9, 1), 7, "at most the input"),
        ("replicate", 2, (1, 0, 4, 1), 3, "no edge pixel"),
        ("mirror", 1, (1, 5, 5, 1), 3, "padding_mode must be one of"),
        (None, 1, (1, 5, 5, 1), 3, "padding_mode must be one of"),
    ],
)
def test_bad_modes_and_pads_raise_before_computing(mode, padding, shape, k, match):
    x = np.zeros(shape, np.float32)
    kernel = np.zeros((k, k, 1, 1), np.float32)
    for fn in (convpool.conv2d, reference.conv2d, convpool.conv2d_plan):
        with pytest.raises(ValueError, match=match):
            fn(x, kernel, padding=padding, padding_mode=mode)
    with pytest.raises(ValueError, match=match):
        convpool.conv2d_backward(np.zeros((1, 1, 1, 1), np.float32), x, kernel,
                                 padding=padding, padding_mode=mode)


def test_circular_pad_equal_to_the_input_is_allowed(rng):
    x = rng.standard_normal((1, 3, 3, 2))
    kernel = rng.standard_normal((3, 3, 2, 2))
    y = convpool.conv2d(x, kernel, padding=3, padding_mode="circular")
    np.testing.assert_allclose(y, reference.conv2d(x, kernel, padding=3, padding_mode="circular"),
                               rtol=1e-12, atol=1e-12)


def test_conv2d_layer_padding_mode(rng, tmp_path):
    layer = convpool.Conv2D(3, 3, padding="same", padding_mode="circular", seed=0)
    x = rng.standard_normal((2, 6, 5, 2))
    y = layer.forward(x, training=True)
    ref = reference.conv2d(x, layer.kernel, layer.bias, padding="same", padding_mode="circular")
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    gx = layer.backward(np.ones_like(y))
    rx = reference.conv2d_backward(np.ones_like(y), x, layer.kernel, padding="same",
                                   padding_mode="circular")[0]
    np.testing.assert_allclose(gx, rx, rtol=1e-12, atol=1e-12)
    assert layer.get_config()["padding_mode"] == "circular"
    model = convpool.Sequential([layer], input_shape=(None, 6, 5, 2))
    model.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(convpool.load(tmp_path / "m.npz").predict(x), model.predict(x))
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        convpool.Conv2D(3, 3, padding_mode="wrap")
    with pytest.raises(ValueError, match="smaller than the input"):
        convpool.Conv2D(3, 9, padding=4, padding_mode="reflect").compute_output_shape(
            (None, 4, 8, 1))
