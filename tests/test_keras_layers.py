"""Keras's activations, the Activation, Dropout and Input pieces, ``input_shape=``
on layers, Sequential.add / summary as Keras's, and the ``convpool.keras``
namespaces (the same objects as convpool's own)."""

import warnings

import numpy as np
import pytest

import convpool
from convpool import activations, keras
from convpool.layers import Activation, Conv2D, Dense, Dropout, Flatten, Input, MaxPool2D

NAMES = sorted(activations.ACTIVATIONS)


def _formula(name, x):
    """Each activation in float64, from its textbook definition."""
    x = x.astype(np.float64)
    if name == "linear":
        return x
    if name == "relu":
        return np.maximum(x, 0)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if name == "tanh":
        return np.tanh(x)
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "elu":
        return np.where(x > 0, x, np.exp(x) - 1)
    if name == "selu":
        return activations.SELU_SCALE * np.where(x > 0, x, activations.SELU_ALPHA * (np.exp(x) - 1))
    if name == "leaky_relu":
        return np.where(x > 0, x, 0.2 * x)
    if name == "gelu":
        from math import erf
        return x * 0.5 * (1 + np.vectorize(erf)(x / np.sqrt(2)))
    if name == "swish":
        return x / (1 + np.exp(-x))
    raise AssertionError(name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_activation_matches_its_formula(name, dtype, rng):
    x = (rng.standard_normal((4, 7)) * 3).astype(dtype)
    before = x.copy()
    y = activations.get(name).fn(x)
    assert y.dtype == dtype and y.shape == x.shape
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(y, _formula(name, x), rtol=rtol, atol=rtol)
    assert np.array_equal(x, before)


def test_gelu_keeps_the_normal_cdf_tail_for_very_negative_inputs():
    """Phi(x) = erfc(-x / sqrt(2)) / 2: (1 + erf) / 2 would round to 0 below about -8."""
    from math import erfc, sqrt

    x = np.array([-10.0, -30.0, -0.5, 3.0])
    want = x * np.array([0.5 * erfc(-v / sqrt(2)) for v in x])
    y = activations.gelu(x)
    # 1e-12: CPython's math.erfc (its own series, not the C library's) and the
    # C library's erfc were measured 1.5e-13 apart (relative) at -30.
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=0)
    assert np.all(y[:3] < 0)


@pytest.mark.parametrize("name", NAMES)
def test_activation_gradient_matches_central_differences(name, rng):
    """grad(g, x, y) against (f(x + h) - f(x - h)) / 2h of sum(g * f), in float64."""
    x = rng.standard_normal((3, 5)) * 2
    x[np.abs(x) < 1e-3] += 0.1  # keep off relu's and leaky_relu's kink
    g = rng.standard_normal(x.shape)
    act = activations.get(name)
    got = act.grad(g, x, act.fn(x))
    h = 1e-6
    want = np.empty_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        want[i] = ((g * act.fn(xp)).sum() - (g * act.fn(xm)).sum()) / (2 * h)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def test_activation_names_aliases_and_errors():
    assert activations.get(None).name == "linear"
    assert activations.get("SiLU").name == "swish" and activations.get("ReLU").name == "relu"
    assert activations.get(activations.sigmoid).name == "sigmoid"
    assert activations.get(keras.activations.softmax).name == "softmax"
    with pytest.raises(ValueError, match="activation must be one of"):
        activations.get("relu6")
    with pytest.raises(TypeError, match="a custom callable has no gradient"):
        activations.get(lambda x: x)
    sig = activations.sigmoid(np.array([-1000.0, 0.0, 1000.0]))  # no overflow warning
    np.testing.assert_array_equal(sig, [0.0, 0.5, 1.0])


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softmax", "elu", "gelu", "swish"])
@pytest.mark.parametrize("layer_kind", ["Dense", "Conv2D", "Activation"])
def test_layer_activation_backward_matches_central_differences(layer_kind, name, rng):
    """The layer's input and weight gradients through an activation applied after
    its kernel, against central differences of sum(g * layer(x)) in float64."""
    if layer_kind == "Dense":
        layer, x = Dense(3, activation=name, seed=0, dtype="float64"), rng.standard_normal((4, 5))
    elif layer_kind == "Conv2D":
        layer = Conv2D(3, 2, activation=name, seed=0, dtype="float64")
        x = rng.standard_normal((2, 4, 3, 2))
    else:
        layer, x = Activation(name), rng.standard_normal((3, 6))
    y = layer.forward(x, training=True)
    g = rng.standard_normal(y.shape)
    gx = layer.backward(g)
    grads = list(layer.grads)

    def objective():
        return float((g * layer(x)).sum())

    h = 1e-6
    for target, got in [(x, gx)] + list(zip(layer.weights, grads)):
        want = np.empty_like(target)
        for i in np.ndindex(target.shape):
            keep = target[i]
            target[i] = keep + h
            up = objective()
            target[i] = keep - h
            down = objective()
            target[i] = keep
            want[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_pre_activation_backward_skips_the_activation(rng):
    layer = Dense(4, activation="softmax", seed=0, dtype="float64")
    x = rng.standard_normal((3, 5))
    layer.forward(x, training=True)
    g = rng.standard_normal((3, 4))
    gx = layer.backward(g, pre_activation=True)
    np.testing.assert_allclose(gx, g @ layer.kernel.T, rtol=1e-12)
    relu = Dense(4, activation="relu", seed=0, dtype="float64")
    relu.forward(x, training=True)
    # the gradient before the fused ReLU: no mask (and the next call masks again)
    np.testing.assert_allclose(relu.backward(g, pre_activation=True), g @ relu.kernel.T,
                               rtol=1e-12)
    relu.forward(x, training=True)
    masked = np.where(relu._saved[1] > 0, g, 0)
    np.testing.assert_allclose(relu.backward(g), masked @ relu.kernel.T, rtol=1e-12)
    linear = Dense(4, seed=0)
    linear.forward(x.astype(np.float32), training=True)
    with pytest.raises(ValueError, match="pre_activation=True needs"):
        linear.backward(g.astype(np.float32), pre_activation=True)


def test_dropout_training_and_inference(rng):
    x = rng.standard_normal((200, 50)).astype(np.float32)
    layer = Dropout(0.3, seed=5)
    assert layer(x) is x
    y = layer.forward(x, training=True)
    kept = y != 0
    assert 0.6 < kept.mean() < 0.8
    np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-6)
    g = rng.standard_normal(x.shape).astype(np.float32)
    gx = layer.backward(g)
    np.testing.assert_array_equal(gx == 0, ~kept)
    np.testing.assert_allclose(gx[kept], g[kept] / 0.7, rtol=1e-6)
    again = Dropout(0.3, seed=5).forward(x, training=True)
    assert np.array_equal(again, y)  # the same seed, the same masks
    channels = Dropout(0.5, noise_shape=(None, 1), seed=1).forward(x, training=True)
    assert all(len(set(row.tolist())) == 1 for row in (channels != 0))  # whole rows kept or not
    for bad, exc in [(1.0, ValueError), (-0.1, ValueError), ("0.5", TypeError), (True, TypeError)]:
        with pytest.raises(exc, match="rate must"):
            Dropout(bad)


def test_input_and_first_layer_input_shape_build_the_model():
    a = convpool.Sequential([Input(shape=(28, 28, 1)), Conv2D(4, 3), Flatten(), Dense(2)])
    b = convpool.Sequential([Conv2D(4, 3, input_shape=(28, 28, 1)), Flatten(), Dense(2)])
    c = convpool.Sequential()
    c.add(Input((28, 28, 1), batch_size=16))
    c.add(Conv2D(4, 3))
    c.add(MaxPool2D())
    for model in (a, b):
        assert model.built and model.input_shape == (None, 28, 28, 1)
        assert model.count_params() == (9 * 4 + 4) + (26 * 26 * 4 * 2 + 2)
    assert c.input_shape == (16, 28, 28, 1) and c.count_params() == 40
    assert Input(batch_shape=(None, 5)).shape == (None, 5)
    with pytest.raises(ValueError, match="an Input can only be the first"):
        a.add(Input(shape=(3,)))
    with pytest.raises(ValueError, match="exactly one of shape"):
        Input()
    with pytest.raises(TypeError, match="input_shape must be a tuple"):
        Dense(2, input_shape="28x28")
    with pytest.raises(ValueError, match="differs from the model's"):
        convpool.Sequential([Dense(2, input_shape=(3,))], input_shape=(None, 4))


def test_summary_prints_like_keras_and_returns_none(capsys):
    model = convpool.Sequential([Input((8, 8, 1)), Conv2D(2, 3), Flatten(), Dense(1)])
    assert model.summary() is None
    printed = capsys.readouterr().out
    assert printed.rstrip("\n") == str(model.summary_table())
    assert "Total params: 93" in printed  # (9 + 1) * 2 + (6 * 6 * 2 + 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = model.summary(print_fn=None)  # convpool's earlier meaning, deprecated
    assert table.total_params == 93 and caught[0].category is DeprecationWarning
    assert capsys.readouterr().out == ""


def test_dense_keras_positional_order_and_the_legacy_one(rng):
    assert Dense(3, "relu").activation == "relu" and Dense(3, "relu").use_bias
    with pytest.warns(DeprecationWarning, match="Keras's order is Dense"):
        legacy = Dense(3, False)
    assert legacy.use_bias is False and legacy.activation is None
    with pytest.warns(DeprecationWarning):
        legacy = Dense(3, False, "relu")
    assert legacy.use_bias is False and legacy.activation == "relu"


def test_keras_namespace_is_convpool_itself():
    from convpool.keras import layers, models
    from convpool.keras.layers import AveragePooling2D, MaxPooling2D

    assert keras.Sequential is convpool.Sequential is models.Sequential
    assert layers.Conv2D is convpool.Conv2D and layers.Dense is convpool.Dense
    assert MaxPooling2D is convpool.MaxPool2D and AveragePooling2D is convpool.AvgPool2D
    assert layers.GlobalAvgPool2D is convpool.GlobalAveragePooling2D
    assert keras.Input is Input and keras.layers.Dropout is Dropout
    for name in layers.__all__:
        assert getattr(layers, name) is getattr(convpool.layers, name, None) or name in (
            "MaxPooling2D", "AveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPool2D")


def test_activation_and_dropout_layers_save_and_load(tmp_path, rng):
    model = convpool.Sequential([Input((6,)), Dense(4, activation="tanh", seed=1), Dropout(0.25),
                                 Activation("softmax")])
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = convpool.load(path)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [type(layer).__name__ for layer in loaded.layers] == ["Dense", "Dropout", "Activation"]


@pytest.mark.parametrize("fmt", ["channels_last", "channels_first"])
def test_zero_padding_upsampling_reshape_forward_and_adjoint_backward(fmt, rng):
    """Each is linear: its backward pass is its adjoint, <g, f(x)> = <f^T(g), x>."""
    from convpool.layers import Reshape, UpSampling2D, ZeroPadding2D

    shape = (2, 3, 4, 5) if fmt == "channels_last" else (2, 5, 3, 4)
    x = rng.standard_normal(shape)
    for layer, want_shape in [
        (ZeroPadding2D(((1, 2), (0, 3)), data_format=fmt),
         (2, 6, 7, 5) if fmt == "channels_last" else (2, 5, 6, 7)),
        (ZeroPadding2D(2, data_format=fmt), (2, 7, 8, 5) if fmt == "channels_last" else (2, 5, 7, 8)),
        (UpSampling2D((2, 3), data_format=fmt),
         (2, 6, 12, 5) if fmt == "channels_last" else (2, 5, 6, 12)),
        (Reshape((-1, 5)), (2, 12, 5)),
    ]:
        y = layer.forward(x, training=True)
        assert y.shape == want_shape == layer.compute_output_shape(x.shape)
        g = rng.standard_normal(y.shape)
        gx = layer.backward(g)
        assert gx.shape == x.shape
        np.testing.assert_allclose((g * y).sum(), (gx * x).sum(), rtol=1e-12)
    pad = ZeroPadding2D(((1, 0), (0, 1)), data_format=fmt)(x)
    inner = pad[:, 1:, :-1, :] if fmt == "channels_last" else pad[:, :, 1:, :-1]
    np.testing.assert_array_equal(inner, x)
    up = UpSampling2D(2, data_format=fmt)(x)
    np.testing.assert_array_equal(up[:, ::2, ::2] if fmt == "channels_last" else up[:, :, ::2, ::2],
                                  x)


def test_reshaping_layer_errors_and_summary():
    from fractions import Fraction

    from convpool.layers import Reshape, UpSampling2D, ZeroPadding2D

    with pytest.raises(ValueError, match="cannot reshape a sample"):
        Reshape((7,))(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="one -1 and no 0"):
        Reshape((-1, -1))
    with pytest.raises(ValueError, match="interpolation must be 'nearest' or 'bilinear'"):
        UpSampling2D(2, interpolation="bicubic")
    with pytest.raises(ValueError, match="padding must be"):
        ZeroPadding2D(-1)
    model = convpool.Sequential([Input((8, 8, 1)), Conv2D(2, 3, strides=2), UpSampling2D(2),
                                 ZeroPadding2D(1), Conv2D(2, 3), Flatten(), Reshape((-1, 2))])
    rows = model.summary_table().rows
    assert rows[1]["jump"] == (Fraction(1), Fraction(1))  # stride 2, then 2x upsampled
    assert rows[2]["receptive_field"] == (3, 3)            # padding shifts, adds nothing
    assert rows[3]["receptive_field"] == (5, 5)            # 3 + 2 * 1
    assert model.layers[-1].compute_output_shape((None, 200)) == (None, 100, 2)


@pytest.mark.parametrize("axis, shape", [(-1, (6, 4, 5, 3)), (1, (6, 3, 4, 5)), (-1, (10, 7))],
                         ids=["NHWC", "NCHW", "dense"])
def test_batch_normalization_matches_its_definition_and_gradients(axis, shape, rng):
    from convpool.layers import BatchNormalization

    bn = BatchNormalization(axis=axis, momentum=0.9, epsilon=1e-3, dtype="float64")
    x = rng.standard_normal(shape) * 3 + 1
    bn.build(x.shape)
    gamma, beta = rng.standard_normal(shape[axis]), rng.standard_normal(shape[axis])
    bn.set_weights([gamma, beta, np.zeros(shape[axis]), np.ones(shape[axis])])
    reduce = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    bshape = [1] * x.ndim
    bshape[axis] = -1
    mean, var = x.mean(axis=reduce), x.var(axis=reduce)
    y = bn.forward(x, training=True)
    want = (x - mean.reshape(bshape)) / np.sqrt(var.reshape(bshape) + 1e-3) * gamma.reshape(
        bshape) + beta.reshape(bshape)
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(bn.moving_mean, 0.1 * mean, rtol=1e-6)
    np.testing.assert_allclose(bn.moving_variance, 0.9 + 0.1 * var, rtol=1e-6)
    # The gradients against central differences of sum(g * y) (training-mode y).
    g = rng.standard_normal(y.shape)
    gx = bn.backward(g)
    ggamma, gbeta = bn.grads
    assert [w.shape for w in bn.trainable_weights] == [gamma.shape, beta.shape]

    def objective(xv, gm, bt):
        m, v = xv.mean(axis=reduce), xv.var(axis=reduce)
        out = (xv - m.reshape(bshape)) / np.sqrt(v.reshape(bshape) + 1e-3) * gm.reshape(
            bshape) + bt.reshape(bshape)
        return float((g * out).sum())

    h = 1e-6
    for target, got, which in [(x, gx, 0), (gamma, ggamma, 1), (beta, gbeta, 2)]:
        want = np.empty_like(target)
        for i in np.ndindex(target.shape):
            args = [x.copy(), gamma.copy(), beta.copy()]
            args[which][i] += h
            up = objective(*args)
            args[which][i] -= 2 * h
            want[i] = (up - objective(*args)) / (2 * h)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # Inference uses the moving statistics.
    mm, mv = bn.moving_mean.copy(), bn.moving_variance.copy()
    np.testing.assert_allclose(bn(x), (x - mm.reshape(bshape)) / np.sqrt(mv.reshape(bshape) + 1e-3)
                               * gamma.reshape(bshape) + beta.reshape(bshape), rtol=1e-6)
    assert np.array_equal(bn.moving_mean, mm)  # inference leaves them alone


def test_batch_normalization_in_a_model_trains_its_trainable_weights_only(tmp_path, rng):
    from convpool.layers import BatchNormalization, GlobalAveragePooling2D

    model = convpool.Sequential([Input((8, 8, 1)), Conv2D(4, 3, use_bias=False, seed=0),
                                 BatchNormalization(),
                                 Activation("relu"), GlobalAveragePooling2D(),
                                 Dense(2, activation="softmax", seed=1)])
    bn = model.layers[1]
    assert bn.count_params() == 16 and len(bn.trainable_weights) == 2
    table = model.summary_table()
    assert table.total_params - table.trainable_params == 8  # the moving statistics
    assert "Non-trainable params: 8" in str(table)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x = rng.standard_normal((64, 8, 8, 1)).astype(np.float32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype(np.int64)
    x[:, :4] += y[:, None, None, None] * 0.5
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    after = model.get_weights()
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))  # stats move too
    model.save(tmp_path / "bn.npz")
    loaded = convpool.load(tmp_path / "bn.npz")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("fmt", ["channels_last", "channels_first"])
def test_depthwise_conv2d_is_the_grouped_conv_of_its_keras_kernel(fmt, rng, tmp_path):
    from convpool import reference
    from convpool.layers import DepthwiseConv2D

    layer = DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, data_format=fmt,
                            activation="relu", seed=0, dtype="float64")
    shape = (2, 9, 7, 3) if fmt == "channels_last" else (2, 3, 9, 7)
    x = rng.standard_normal(shape)
    y = layer.forward(x, training=True)
    k, b = layer.kernel, layer.bias
    assert k.shape == (3, 3, 3, 2) and b.shape == (6,)
    # Keras's layout: output channel c * M + m is input channel c's m-th filter.
    grouped = np.empty((3, 3, 1, 6))
    for c in range(3):
        for m in range(2):
            grouped[:, :, 0, c * 2 + m] = k[:, :, c, m]
    want = reference.conv2d(x, grouped, b, strides=2, padding="same", groups=3, data_format=fmt,
                            activation="relu")
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    gx = layer.backward(g)
    rgx, rgk, rgb = reference.conv2d_backward(g, x, grouped, strides=2, padding="same", groups=3,
                                              data_format=fmt, activation="relu", output=want)
    np.testing.assert_allclose(gx, rgx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads[0], rgk.reshape(3, 3, 3, 2), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads[1], rgb, rtol=1e-10, atol=1e-12)
    model = convpool.Sequential([Input(shape[1:]), layer])
    model.save(tmp_path / "dw.npz")
    np.testing.assert_array_equal(convpool.load(tmp_path / "dw.npz").predict(x), model.predict(x))
    assert model.count_params() == 3 * 3 * 3 * 2 + 6


@pytest.mark.parametrize("padding, strides", [("same", 1), ("valid", (2, 1))])
def test_separable_conv2d_is_depthwise_then_pointwise(rng, tmp_path, padding, strides):
    """Keras's strides (unequal ones too) apply to the depthwise step."""
    from convpool import reference
    from convpool.layers import SeparableConv2D

    layer = SeparableConv2D(5, 3, strides=strides, padding=padding, depth_multiplier=2,
                            activation="tanh", seed=0, dtype="float64")
    x = rng.standard_normal((2, 6, 5, 3))
    y = layer.forward(x, training=True)
    dk, pk, b = layer.get_weights()
    assert (dk.shape, pk.shape, b.shape) == ((3, 3, 3, 2), (1, 1, 6, 5), (5,))
    mid = reference.conv2d(x, dk.reshape(3, 3, 1, 6), None, strides=strides, padding=padding,
                           groups=3)
    want = np.tanh(reference.conv2d(mid, pk, b))
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    gx = layer.backward(g)

    def objective():
        return float((g * layer(x)).sum())

    h = 1e-6
    for target, got in [(x, gx)] + list(zip(layer.weights, layer.grads)):
        want_g = np.empty_like(target)
        for i in np.ndindex(target.shape):
            keep = target[i]
            target[i] = keep + h
            up = objective()
            target[i] = keep - h
            want_g[i] = (up - objective()) / (2 * h)
            target[i] = keep
        np.testing.assert_allclose(got, want_g, rtol=1e-5, atol=1e-7)
    assert layer.count_params() == 3 * 3 * 3 * 2 + 6 * 5 + 5
    model = convpool.Sequential([Input((6, 5, 3)), layer])
    model.save(tmp_path / "sep.npz")
    np.testing.assert_array_equal(convpool.load(tmp_path / "sep.npz").predict(x), model.predict(x))


@pytest.mark.parametrize("make, exc, match", [
    (lambda v: Dropout(v), TypeError, "rate must be a number"),
    (lambda v: convpool.BatchNormalization(momentum=v), TypeError, "momentum must be a number"),
    (lambda v: convpool.RMSprop(rho=v), TypeError, "rho must be a number"),
], ids=["Dropout", "BatchNormalization", "RMSprop"])
@pytest.mark.parametrize("value", ["0.5", True, None, [0.5]], ids=repr)
def test_real_number_arguments_refuse_other_types(make, exc, match, value):
    with pytest.raises(exc, match=match):
        make(value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10**400, -0.5, 1.5])
def test_real_number_arguments_refuse_values_out_of_range(value):
    from convpool._checks import check_number

    with pytest.raises(ValueError, match=r"^rate must lie in \[0, 1\), got"):
        check_number(value, "rate", low=0, high=1, high_open=True)
    assert check_number(0.25, "rate", low=0, high=1, high_open=True) == 0.25
    with pytest.raises(ValueError, match="^epsilon must be positive"):
        check_number(0, "epsilon", low=0, low_open=True)
