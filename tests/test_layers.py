"""Layers and Sequential: construction checks, building, weights, shapes, summary."""

import math

import numpy as np
import pytest

import convpool
from convpool import AvgPool2D, Conv2D, Conv2DTranspose, Dense, Flatten, MaxPool2D, Sequential
from convpool import reference

RNG = np.random.default_rng(1234)


# ---------------------------------------------------------------- construction
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Dense(0), "units must be positive"),
        (lambda: Dense(-3), "units must be positive"),
        (lambda: Dense(1.5), "units must be an int"),
        (lambda: Dense(2, use_bias="yes"), "use_bias must be a bool"),
        (lambda: Conv2D(0, 3), "filters must be positive"),
        (lambda: Conv2D(4, 0), "kernel_size must be positive"),
        (lambda: Conv2D(4, (3, 3, 3)), "kernel_size must be an int or a pair"),
        (lambda: Conv2D(4, 3, strides=0), "strides must be positive"),
        (lambda: Conv2D(4, 3, dilation_rate=(1, 0)), "dilation_rate must be positive"),
        (lambda: Conv2D(4, 3, padding="full"), "padding must be 'valid', 'same'"),
        (lambda: Conv2D(4, 3, padding=-1), "padding must be non-negative"),
        (lambda: Conv2D(4, 3, groups=3), "groups=3 must divide filters=4"),
        (lambda: Conv2D(4, 3, groups=0), "groups must be positive"),
        (lambda: Conv2D(4, 3, data_format="NHWC"), "data_format must be"),
        (lambda: MaxPool2D(0), "pool_size must be positive"),
        (lambda: AvgPool2D(2, strides=-1), "strides must be positive"),
        (lambda: AvgPool2D(2, count_include_pad=1), "count_include_pad must be a bool"),
        (lambda: Dense(2, dtype="int32"), "dtype must be float32, float64"),
        (lambda: Conv2DTranspose(0, 3), "filters must be positive"),
        (lambda: Conv2DTranspose(4, 3, strides=2, output_padding=2), "output_padding"),
        (lambda: Conv2DTranspose(4, 3, output_padding=-1), "output_padding must be >= 0"),
        (lambda: Conv2DTranspose(4, 3, padding="full"), "padding must be 'valid', 'same'"),
        (lambda: Conv2DTranspose(4, 3, padding=-2), "padding must be non-negative"),
        (lambda: Conv2DTranspose(4, 3, groups=3), "groups=3 must divide filters=4"),
        (lambda: Conv2DTranspose(4, 3, activation="tanhh"), "activation must be one of"),
        (lambda: Dense(4, activation=np.tanh), "a custom callable has no gradient"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_constructor_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


# ------------------------------------------------------------ shapes & calls
CONV_CASES = [
    dict(filters=4, kernel_size=3),
    dict(filters=5, kernel_size=(3, 2), strides=(2, 1), dilation_rate=(1, 2), padding=1),
    dict(filters=6, kernel_size=3, padding="same", strides=2, groups=3),
    dict(filters=3, kernel_size=(1, 4), padding=((0, 2), (1, 0)), use_bias=False),
]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("cfg", CONV_CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_conv2d_layer_matches_functional_reference(cfg, data_format):
    x = RNG.standard_normal((2, 11, 9, 6)).astype(np.float32)
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    layer = Conv2D(**cfg, data_format=data_format, seed=7)
    predicted = layer.compute_output_shape(x.shape)
    assert not layer.built
    y = layer(x)
    assert layer.built and y.shape == predicted and y.dtype == np.float32
    kw = {k: v for k, v in cfg.items() if k not in ("filters", "kernel_size", "use_bias")}
    ref = reference.conv2d(x, layer.kernel, layer.bias, data_format=data_format, **kw)
    k = math.prod(layer.kernel.shape[:3])
    np.testing.assert_allclose(y, ref, rtol=0, atol=4 * k * np.finfo(np.float32).eps * np.abs(x).max())
    expected_params = layer.kernel.size + (cfg["filters"] if cfg.get("use_bias", True) else 0)
    assert layer.count_params() == expected_params


def test_conv2d_weights_glorot_uniform_zero_bias_seeded():
    x = np.zeros((1, 8, 8, 3), np.float32)
    a, b, c = Conv2D(16, 5, seed=1), Conv2D(16, 5, seed=1), Conv2D(16, 5, seed=2)
    for layer in (a, b, c):
        layer(x)
    limit = math.sqrt(6 / (5 * 5 * 3 + 5 * 5 * 16))
    assert a.kernel.shape == (5, 5, 3, 16) and a.kernel.dtype == np.float32
    assert np.abs(a.kernel).max() <= limit
    assert np.abs(a.kernel).max() > 0.8 * limit  # actually spread over the range
    assert np.array_equal(a.kernel, b.kernel)
    assert not np.array_equal(a.kernel, c.kernel)
    assert np.array_equal(a.bias, np.zeros(16, np.float32))
    assert [w.shape for w in a.weights] == [(5, 5, 3, 16), (16,)]


def test_dense_matches_matmul_on_any_rank():
    x = RNG.standard_normal((3, 4, 5, 6))
    layer = Dense(7, seed=0)
    y = layer(x)
    assert y.shape == (3, 4, 5, 7) and layer.kernel.dtype == np.float64
    layer.set_weights([layer.kernel, RNG.standard_normal(7)])
    np.testing.assert_allclose(layer(x), x @ layer.kernel + layer.bias, rtol=1e-12, atol=1e-12)
    assert layer.count_params() == 6 * 7 + 7


def test_dense_rejects_rank1_and_wrong_features():
    with pytest.raises(ValueError, match="rank >= 2"):
        Dense(2)(np.zeros(5))
    layer = Dense(2)
    layer(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="built for 3 input features"):
        layer(np.zeros((4, 5)))


def test_conv_layer_rejects_channel_change_after_build():
    layer = Conv2D(2, 3)
    layer(np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match="kernel expects 3 input channels"):
        layer(np.zeros((1, 5, 5, 4), np.float32))


def test_layer_input_rank_checked_before_building():
    layer = Conv2D(2, 3)
    with pytest.raises(ValueError, match="expects a 4-D input"):
        layer(np.zeros((5, 5, 3), np.float32))
    assert not layer.built


def test_weights_follow_input_dtype_and_cast_on_other_dtype():
    layer = Conv2D(2, 3, seed=0)
    y64 = layer(RNG.standard_normal((1, 6, 6, 2)))
    assert layer.kernel.dtype == np.float64 and y64.dtype == np.float64
    y32 = layer(RNG.standard_normal((1, 6, 6, 2)).astype(np.float32))
    assert y32.dtype == np.float32
    fixed = Conv2D(2, 3, dtype="float32")
    fixed(np.zeros((1, 6, 6, 2)))
    assert fixed.kernel.dtype == np.float32


def test_get_set_weights_roundtrip_and_errors():
    layer = Conv2D(4, 3, seed=3)
    with pytest.raises(ValueError, match="not built"):
        layer.set_weights([np.zeros((3, 3, 2, 4))])
    with pytest.raises(ValueError, match="not built"):
        layer.count_params()
    assert layer.get_weights() == []
    layer.build((None, 8, 8, 2))
    new = [RNG.standard_normal((3, 3, 2, 4)), RNG.standard_normal(4)]
    layer.set_weights(new)
    got = layer.get_weights()
    assert all(np.array_equal(g, n.astype(np.float32)) for g, n in zip(got, new))
    got[0][...] = 0  # copies: the layer is unaffected
    assert layer.kernel.any()
    with pytest.raises(ValueError, match="has 2 weight arrays, got 1"):
        layer.set_weights(new[:1])
    with pytest.raises(ValueError, match=r"kernel of layer .* has shape \(3, 3, 2, 4\)"):
        layer.set_weights([np.zeros((3, 3, 4, 2)), np.zeros(4)])


@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
def test_pool_layers_match_functional(cls):
    x = RNG.standard_normal((2, 9, 7, 3)).astype(np.float32)
    layer = cls((3, 2), strides=(2, 1), padding="same")
    y = layer(x)
    assert y.shape == layer.compute_output_shape(x.shape) == (2, 5, 7, 3)
    fn = reference.max_pool2d if cls is MaxPool2D else reference.avg_pool2d
    np.testing.assert_allclose(y, fn(x, (3, 2), (2, 1), "same"), rtol=2e-6, atol=1e-7)
    assert layer.count_params() == 0 and layer.weights == []


def test_pool_layer_rejects_pad_larger_than_pool():
    with pytest.raises(ValueError, match="may not exceed the pool_size minus one"):
        MaxPool2D(2, padding=2)(np.zeros((1, 6, 6, 1), np.float32))


def test_flatten_channels_first_matches_channels_last_order():
    x = RNG.standard_normal((2, 3, 4, 5))  # NCHW
    flat_cf = Flatten(data_format="channels_first")(x)
    flat_cl = Flatten()(x.transpose(0, 2, 3, 1))
    assert flat_cf.shape == (2, 60)
    assert np.array_equal(flat_cf, flat_cl)
    assert Flatten().compute_output_shape((None, 4, None)) == (None, None)


def test_layers_do_not_modify_their_input():
    x = RNG.standard_normal((2, 8, 8, 3)).astype(np.float32)
    before = x.copy()
    model = Sequential([Conv2D(4, 3, padding="same"), MaxPool2D(2), AvgPool2D(2), Flatten(), Dense(2)])
    model(x)
    assert np.array_equal(x, before)


def test_layer_names_and_repr():
    a, b = Dense(1), Dense(1)
    assert a.name != b.name and a.name.startswith("dense")
    assert "Conv2D(filters=3" in repr(Conv2D(3, 2, name="c"))


# ---------------------------------------------------------------- Sequential
def test_sequential_build_call_and_count():
    model = Sequential([Conv2D(8, 3, padding="same", seed=0), MaxPool2D(2), Flatten(), Dense(3, seed=1)])
    assert not model.built
    with pytest.raises(ValueError, match="not built"):
        model.count_params()
    with pytest.raises(ValueError, match="not built"):
        model.summary()
    assert model.compute_output_shape((None, 10, 12, 2)) == (None, 3)
    x = RNG.standard_normal((4, 10, 12, 2)).astype(np.float32)
    y = model(x)
    assert y.shape == (4, 3)
    assert model.count_params() == (3 * 3 * 2 * 8 + 8) + (5 * 6 * 8 * 3 + 3)
    # The same computation by hand, layer by layer.
    h = reference.conv2d(x, model.layers[0].kernel, model.layers[0].bias, padding="same")
    h = reference.max_pool2d(h, 2).reshape(4, -1) @ model.layers[3].kernel + model.layers[3].bias
    np.testing.assert_allclose(y, h, rtol=1e-4, atol=1e-4)
    # Keras's add on a built model: the new layer is built for the output shape.
    model.add(Dense(1, seed=2))
    assert model.layers[-1].kernel.shape == (3, 1) and model(x).shape == (4, 1)
    count = len(model.layers)
    with pytest.raises(ValueError, match="expects a 4-D input"):
        model.add(MaxPool2D(2))  # on a (None, 1) output: refused, not appended
    assert len(model.layers) == count
    with pytest.raises(TypeError, match="convpool layers"):
        Sequential([lambda x: x])


def test_sequential_weights_roundtrip():
    model = Sequential([Dense(3), Dense(2)], input_shape=(None, 4))
    weights = [RNG.standard_normal(w.shape) for w in model.get_weights()]
    model.set_weights(weights)
    assert all(np.allclose(a, b) for a, b in zip(model.get_weights(), weights))
    with pytest.raises(ValueError, match="model has 4 weight arrays, got 3"):
        model.set_weights(weights[:3])


def test_summary_table_receptive_field_and_jump():
    model = Sequential(
        [
            Conv2D(4, 3),                          # rf 3, jump 1
            Conv2D(4, 3, strides=2),               # rf 5, jump 2
            Conv2D(4, 3, dilation_rate=2),         # rf 5 + 4 * 2 = 13, jump 2
            MaxPool2D((2, 3), strides=(2, 3)),     # rf (15, 17), jump (4, 6)
            Dense(2),                              # per pixel: unchanged
            Flatten(),
            Dense(1),                              # the whole input
        ],
        input_shape=(None, 64, 80, 3),
    )
    lines = []
    assert model.summary(print_fn=lines.append) is None  # Keras's: it prints, line by line
    table = model.summary_table()
    fields = [row["receptive_field"] for row in table.rows]
    jumps = [row["jump"] for row in table.rows]
    assert fields[:5] == [(3, 3), (5, 5), (13, 13), (15, 17), (15, 17)]
    assert jumps[:5] == [(1, 1), (2, 2), (2, 2), (4, 6), (4, 6)]
    assert fields[6] is None and table.rows[6]["whole_input"] == (64, 80)
    text = "\n".join(lines)
    assert str(table) == text and len(lines) == text.count("\n") + 1
    assert "64x80 (all)" in text and "Total params:" in text
    assert f"{table.total_params:,}" in text and table.total_params == model.count_params()


def test_summary_without_image_input_has_no_receptive_field():
    model = Sequential([Dense(3, use_bias=False), Dense(1, use_bias=False)], input_shape=(64, 4, 2))
    table = model.summary_table()
    assert [r["params"] for r in table.rows] == [6, 3]
    assert all(r["receptive_field"] is None and r["whole_input"] is None for r in table.rows)
    assert table.rows[-1]["output_shape"] == (64, 4, 1)
    assert convpool.Sequential is Sequential


# ---------------------------------------------------------------- Conv2DTranspose
TRANSPOSE_CASES = [
    dict(filters=4, kernel_size=3, strides=2, padding="same"),
    dict(filters=5, kernel_size=(3, 2), strides=(2, 1), padding=1, output_padding=(1, 0),
         dilation_rate=(1, 2)),
    dict(filters=6, kernel_size=2, strides=3, groups=3, use_bias=False, activation="relu"),
    dict(filters=3, kernel_size=4, padding="valid"),
]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("cfg", TRANSPOSE_CASES,
                         ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_conv2d_transpose_layer_matches_reference_forward_and_backward(cfg, data_format):
    x = RNG.standard_normal((2, 5, 7, 6))
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    layer = Conv2DTranspose(**cfg, data_format=data_format, seed=3)
    y = layer.forward(x, training=True)
    assert y.shape == layer.compute_output_shape(x.shape)
    args = dict(strides=layer.strides, padding=layer.padding,
                output_padding=layer.output_padding, dilation_rate=layer.dilation_rate,
                groups=layer.groups, data_format=data_format)
    ref = reference.conv2d_transpose(x, layer.kernel, layer.bias, activation=layer.activation,
                                     **args)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    g = RNG.standard_normal(y.shape)
    grad_x = layer.backward(g)
    g_ref = np.where(ref > 0, g, 0) if layer.activation else g
    rx, rk, rb = reference.conv2d_transpose_backward(g_ref, x, layer.kernel, **args)
    np.testing.assert_allclose(grad_x, rx, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(layer.grads[0], rk, rtol=1e-11, atol=1e-11)
    if layer.use_bias:
        np.testing.assert_allclose(layer.grads[1], rb, rtol=1e-11, atol=1e-11)
    assert len(layer.grads) == len(layer.weights)


def test_conv2d_transpose_layer_weights_and_params():
    layer = Conv2DTranspose(16, (3, 2), strides=2, groups=2, seed=0)
    layer.build((None, 8, 8, 6))
    assert layer.kernel.shape == (3, 2, 8, 6) and layer.bias.shape == (16,)
    assert layer.count_params() == 3 * 2 * 8 * 6 + 16
    assert not layer.bias.any()
    limit = math.sqrt(6 / (3 * 2 * 8 + 3 * 2 * 6))  # Keras's Glorot fans
    assert 0 < np.abs(layer.kernel).max() <= limit
    with pytest.raises(ValueError, match="6 input channels"):
        layer(np.zeros((1, 8, 8, 4), np.float32))


def test_conv2d_transpose_layer_saves_and_loads(tmp_path):
    model = Sequential([Conv2DTranspose(4, 3, strides=2, padding=1, output_padding=1,
                                        activation="relu", seed=1), Conv2D(2, 3)],
                       input_shape=(None, 5, 6, 3))
    x = RNG.standard_normal((2, 5, 6, 3)).astype(np.float32)
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = convpool.load(path)
    assert loaded.layers[0].get_config() == model.layers[0].get_config()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_summary_after_a_transposed_conv_shows_fractional_jumps():
    model = Sequential(
        [
            Conv2D(4, 3, strides=2),                              # rf 3, jump 2
            Conv2DTranspose(4, 3, strides=2, padding="same"),     # rf 3 + 1 * 2, jump 1
            Conv2DTranspose(4, 2, strides=2),                     # one pixel per output: jump 1/2
            Conv2D(4, 3),                                         # rf 5 + 2 * 1/2 = 6
        ],
        input_shape=(None, 33, 33, 3),
    )
    lines = []
    model.summary(print_fn=lines.append)
    table = model.summary_table()
    assert [row["jump"] for row in table.rows] == [(2, 2), (1, 1), (0.5, 0.5), (0.5, 0.5)]
    assert [row["receptive_field"] for row in table.rows] == [(3, 3), (5, 5), (5, 5), (6, 6)]
    assert any("1/2x1/2" in line for line in lines)
