"""The LeakyReLU layer as Keras 3's: negative_slope (default 0.3), Keras 2's
alpha= taken with a warning, forward and backward, config, model files."""

import warnings

import numpy as np
import pytest

import convpool
from convpool import activations, keras
from convpool.layers import LAYERS, Conv2D, Input, LeakyReLU

SLOPES = [0.0, 0.01, 0.3, 1.0, 2.5]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("slope", SLOPES, ids=[f"slope{s}" for s in SLOPES])
def test_forward_is_the_formula_and_backward_central_differences(slope, dtype, rng):
    x = (rng.standard_normal((3, 4, 5, 2)) * 3).astype(dtype)
    x[np.abs(x) < 1e-2] = 0.5  # off the kink for the differences
    x[0, 0, 0, 0] = np.nan
    before = x.copy()
    layer = LeakyReLU(negative_slope=slope)
    y = layer.forward(x, training=True)
    want = np.where(x > 0, x, x * dtype(slope))  # one multiply in x's dtype, as TensorFlow's
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, want)
    assert np.isnan(y[0, 0, 0, 0]) and np.array_equal(x, before, equal_nan=True)
    g = rng.standard_normal(y.shape).astype(dtype)
    gx = layer.backward(g)
    np.testing.assert_array_equal(gx, np.where(x > 0, g, g * dtype(slope)))
    # Central differences of sum(g * f) in float64, elementwise (f acts per element).
    x64, g64 = x.astype(np.float64)[1:], g.astype(np.float64)[1:]
    h = 1e-6
    num = g64 * (LeakyReLU(slope)(x64 + h) - LeakyReLU(slope)(x64 - h)) / (2 * h)
    np.testing.assert_allclose(gx[1:], num, rtol=1e-6 if dtype == np.float32 else 1e-9,
                               atol=1e-12)


def test_defaults_alpha_and_errors():
    assert LeakyReLU().negative_slope == 0.3  # Keras 3's layer default
    assert activations.leaky_relu(np.array([-1.0]))[0] == -0.2  # the activation's is 0.2
    with pytest.warns(DeprecationWarning, match="alpha=.* is deprecated"):
        legacy = LeakyReLU(alpha=0.1)
    assert legacy.negative_slope == 0.1
    with pytest.raises(TypeError, match="both negative_slope and Keras 2's alpha"):
        LeakyReLU(0.2, alpha=0.1)
    with pytest.raises(ValueError, match="negative_slope must lie in"):
        LeakyReLU(-0.1)
    for bad in (None, "0.3", True):
        with pytest.raises(TypeError, match="negative_slope must be a number"):
            LeakyReLU(bad)


def test_config_registry_namespace_and_model_file(tmp_path, rng):
    layer = LeakyReLU(0.25)
    assert layer.get_config() == {"negative_slope": 0.25, "name": layer.name}
    assert LeakyReLU.from_config(layer.get_config()).negative_slope == 0.25
    assert LAYERS["LeakyReLU"] is LeakyReLU and keras.layers.LeakyReLU is LeakyReLU
    assert convpool.layers.LeakyReLU is LeakyReLU and "LeakyReLU" in convpool.layers.__all__
    model = convpool.Sequential([Input((5, 5, 2)), Conv2D(3, 3, seed=0), LeakyReLU(0.1)])
    model.save(tmp_path / "m.npz")
    x = rng.standard_normal((2, 5, 5, 2)).astype(np.float32)
    loaded = convpool.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.layers[1].negative_slope == 0.1


def test_leaky_relu_activation_string_on_conv2d(rng):
    """``activation="leaky_relu"`` is the activation (slope 0.2), after the conv."""
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    fused = Conv2D(4, 3, activation="leaky_relu", seed=1)
    plain = Conv2D(4, 3, seed=1)
    z = plain(x)
    np.testing.assert_array_equal(fused(x), np.where(z > 0, z, z * np.float32(0.2)))


def test_matches_keras():
    k = pytest.importorskip("keras")
    import tensorflow as tf

    x = np.linspace(-3, 3, 61, dtype=np.float32).reshape(1, 61)
    for slope in (0.3, 0.05, 1.5):
        klayer = k.layers.LeakyReLU(negative_slope=slope)
        np.testing.assert_array_equal(LeakyReLU(slope)(x), np.asarray(klayer(x)))
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = klayer(xt)
        kgrad = tape.gradient(y, xt, output_gradients=tf.ones_like(y)).numpy()
        ours = LeakyReLU(slope)
        ours.forward(x, training=True)
        np.testing.assert_array_equal(ours.backward(np.ones_like(x)), kgrad)
    assert k.layers.LeakyReLU().negative_slope == LeakyReLU().negative_slope
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert k.layers.LeakyReLU(alpha=0.1).negative_slope == 0.1  # Keras 3 maps it, warning
    assert caught
    assert set(k.layers.LeakyReLU().get_config()) >= set(LeakyReLU().get_config())
