"""UpSampling2D(interpolation="bilinear") as Keras 3's on TensorFlow
(``tf.image.resize(..., "bilinear")``: half-pixel centres, edges clamped, no
antialiasing): forward against an independent float64 reference and Keras,
backward as the adjoint and against central differences."""

import math

import numpy as np
import pytest

import convpool
from convpool.layers import Conv2D, Input, UpSampling2D

F32_EPS = float(np.finfo(np.float32).eps)
F64_EPS = float(np.finfo(np.float64).eps)


def _resize_matrix(n, size):
    """(n * size, n) weights of TensorFlow's half-pixel bilinear resize along one
    axis, from its definition: output o samples input position
    (o + 0.5) / size - 0.5 from floor and floor + 1, each clamped to [0, n - 1]."""
    m = np.zeros((n * size, n))
    for o in range(n * size):
        pos = (o + 0.5) / size - 0.5
        low = math.floor(pos)
        frac = pos - low
        m[o, min(max(low, 0), n - 1)] += 1 - frac
        m[o, min(max(low + 1, 0), n - 1)] += frac
    return m


def _reference(x, size, data_format):
    x = np.asarray(x, np.float64)
    if data_format == "channels_first":
        x = x.transpose(0, 2, 3, 1)
    mh, mw = _resize_matrix(x.shape[1], size[0]), _resize_matrix(x.shape[2], size[1])
    y = np.einsum("oh,nhwc,pw->nopc", mh, x, mw)
    return y.transpose(0, 3, 1, 2) if data_format == "channels_first" else y


# (H, W, C) and size: sizes 1 and primes, a 1-pixel axis, non-square factors.
CASES = [((7, 5, 3), (2, 2)), ((1, 4, 2), (3, 2)), ((6, 1, 1), (1, 4)), ((5, 3, 4), (5, 3)),
         ((2, 2, 1), (1, 1)), ((11, 13, 2), (2, 3)), ((3, 3, 5), (4, 4))]
IDS = [f"H{h}xW{w}-C{c}-s{sh}x{sw}" for (h, w, c), (sh, sw) in CASES]
FORMATS = ["channels_last", "channels_first"]


def _input(rng, hwc, data_format, dtype, n=2):
    h, w, c = hwc
    shape = (n, h, w, c) if data_format == "channels_last" else (n, c, h, w)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("hwc, size", CASES, ids=IDS)
def test_forward_matches_the_definition(hwc, size, data_format, dtype, rng):
    """Each output is a convex combination of at most four inputs, computed in
    two passes of one rounding each: within 4 eps of the magnitudes combined."""
    x = _input(rng, hwc, data_format, dtype)
    before = x.copy()
    layer = UpSampling2D(size, data_format=data_format, interpolation="bilinear")
    y = layer(x)
    want = _reference(x, size, data_format)
    assert y.dtype == dtype and y.shape == want.shape == layer.compute_output_shape(x.shape)
    eps = F32_EPS if dtype == np.float32 else F64_EPS
    tol = 8 * eps * np.abs(x).max()
    np.testing.assert_allclose(y, want, rtol=0, atol=tol,
                               err_msg=f"{hwc} size={size} {data_format} {dtype.__name__}")
    assert np.array_equal(x, before)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("hwc, size", CASES, ids=IDS)
def test_backward_is_the_adjoint(hwc, size, data_format, rng):
    """<A x, g> = <x, A^T g> in float64, and the backward pass equals A^T g of
    the reference's matrices."""
    x = _input(rng, hwc, data_format, np.float64)
    layer = UpSampling2D(size, data_format=data_format, interpolation="bilinear")
    y = layer.forward(x, training=True)
    g = rng.standard_normal(y.shape)
    gx = layer.backward(g)
    assert gx.shape == x.shape and gx.dtype == np.float64
    np.testing.assert_allclose((g * y).sum(), (gx * x).sum(), rtol=1e-12,
                               atol=1e-12 * np.abs(g).sum())
    gn = g.transpose(0, 2, 3, 1) if data_format == "channels_first" else g
    mh = _resize_matrix(hwc[0], size[0])
    mw = _resize_matrix(hwc[1], size[1])
    want = np.einsum("oh,nopc,pw->nhwc", mh, gn, mw)
    if data_format == "channels_first":
        want = want.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(gx, want, rtol=0, atol=1e-13 * np.abs(g).max() * size[0] * size[1])


def test_backward_against_central_differences(rng):
    x = rng.standard_normal((1, 3, 4, 2))
    layer = UpSampling2D((3, 2), interpolation="bilinear")
    y = layer.forward(x, training=True)
    g = rng.standard_normal(y.shape)
    gx = layer.backward(g)
    h = 1e-6
    want = np.empty_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        want[i] = ((g * layer(xp)).sum() - (g * layer(xm)).sum()) / (2 * h)
    np.testing.assert_allclose(gx, want, rtol=1e-7, atol=1e-9)


def test_float32_backward_and_nearest_unchanged(rng):
    x = rng.standard_normal((2, 4, 3, 2)).astype(np.float32)
    layer = UpSampling2D(2, interpolation="bilinear")
    y = layer.forward(x, training=True)
    gx = layer.backward(np.ones_like(y))
    assert gx.dtype == np.float32
    # Each input's weights sum to size_h * size_w over the outputs (rows of A sum to 1).
    np.testing.assert_allclose(gx, 4.0, rtol=4 * F32_EPS)
    nearest = UpSampling2D(2)(x)
    np.testing.assert_array_equal(nearest, x.repeat(2, axis=1).repeat(2, axis=2))


@pytest.mark.parametrize("interpolation, exc", [("bicubic", ValueError), ("lanczos3", ValueError),
                                                ("area", ValueError), ("linear", ValueError),
                                                (None, TypeError)])
def test_other_interpolations_refused(interpolation, exc):
    with pytest.raises(exc, match="interpolation must be"):
        UpSampling2D(2, interpolation=interpolation)


def test_case_summary_and_model_file(tmp_path, rng):
    assert UpSampling2D(interpolation="BILINEAR").interpolation == "bilinear"  # as Keras
    model = convpool.Sequential([Input((6, 6, 1)), Conv2D(2, 3, strides=2, seed=0),
                                 UpSampling2D(2, interpolation="bilinear"), Conv2D(1, 3, seed=1)])
    rows = model.summary_table().rows
    assert rows[1]["receptive_field"] == (5, 5)  # 3 + one input unit (jump 2) of the conv
    assert rows[2]["receptive_field"] == (7, 7)  # + 2 * jump 1
    model.save(tmp_path / "m.npz")
    x = rng.standard_normal((2, 6, 6, 1)).astype(np.float32)
    loaded = convpool.load(tmp_path / "m.npz")
    assert loaded.layers[1].interpolation == "bilinear"
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("hwc, size", CASES, ids=IDS)
def test_matches_keras(hwc, size, data_format, rng):
    """Keras 3 on TensorFlow computes each source position in float32 as
    ``(o + 0.5) * (1 / size) - 0.5``: its weights are off by up to about
    ``(o + 1) * eps`` relative, so the outputs differ by that times the
    neighbours' difference (<= 2 max|x|), plus the roundings."""
    k = pytest.importorskip("keras")
    x = _input(rng, hwc, data_format, np.float32)
    want = np.asarray(k.layers.UpSampling2D(size, data_format=data_format,
                                            interpolation="bilinear")(x))
    got = UpSampling2D(size, data_format=data_format, interpolation="bilinear")(x)
    assert got.shape == want.shape
    longest = max(hwc[0] * size[0], hwc[1] * size[1])
    tol = (4 * (longest + 1) + 8) * F32_EPS * np.abs(x).max()
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    assert k.layers.UpSampling2D(size, interpolation="bilinear").compute_output_shape(
        (None, *hwc)) == UpSampling2D(size, interpolation="bilinear").compute_output_shape(
        (None, *hwc))
