"""The functional Model (Keras's ``Model(inputs, outputs)``) and the merging
layers: graphs, gradients through branches, training, summary, saving, errors."""

import numpy as np
import pytest

import convpool
from convpool import keras
from convpool.layers import (
    Add,
    Average,
    Concatenate,
    Conv2D,
    Dense,
    Flatten,
    GlobalAveragePooling2D,
    Input,
    MaxPool2D,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
)
from convpool.models import Model, Sequential


def _residual(dtype="float32", seed=0):
    x = Input(shape=(8, 8, 4), dtype=dtype, name="img")
    h = Conv2D(4, 3, padding="same", activation="relu", seed=seed, name="c1")(x)
    h = Conv2D(4, 3, padding="same", seed=seed + 1, name="c2")(h)
    s = Add(name="add")([x, h])
    c = Concatenate(name="cat")([s, h])
    p = MaxPool2D(2, name="pool")(c)
    y = Dense(3, seed=seed + 2, name="out")(GlobalAveragePooling2D(name="gap")(p))
    return Model(x, y, name="res")


# ---- the graph ---------------------------------------------------------------------------
def test_chain_model_equals_sequential_forward_and_training_bitwise(rng):
    def layers():
        return [Conv2D(6, 3, activation="relu", seed=1), MaxPool2D(2), Flatten(),
                Dense(5, seed=2)]

    seq = Sequential(layers(), input_shape=(None, 10, 10, 2))
    x = Input(shape=(10, 10, 2))
    t = x
    for layer in layers():
        t = layer(t)
    model = Model(x, t)
    assert [w.shape for w in model.weights] == [w.shape for w in seq.weights]
    model.set_weights(seq.get_weights())
    data = rng.standard_normal((24, 10, 10, 2)).astype(np.float32)
    labels = rng.integers(0, 5, 24)
    assert np.array_equal(model.predict(data), seq.predict(data))
    for m in (seq, model):
        m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    h1 = seq.fit(data, labels, 8, 2, verbose=0, seed=3)
    h2 = model.fit(data, labels, 8, 2, verbose=0, seed=3)
    assert h1.history == h2.history
    for a, b in zip(seq.get_weights(), model.get_weights()):
        assert np.array_equal(a, b)


def test_layers_in_topological_order_and_tensor_metadata():
    model = _residual()
    assert [layer.name for layer in model.layers] == ["c1", "c2", "add", "cat", "pool", "gap",
                                                      "out"]
    assert model.input_shape == (None, 8, 8, 4) and model.output_shape == (None, 3)
    assert model.inputs[0].name == "img" and model.outputs[0].layer is model.layers[-1]
    assert model.compute_output_shape((5, 8, 8, 4)) == (5, 3)
    assert model.count_params() == 2 * (4 * 9 * 4 + 4) + 8 * 3 + 3


def test_residual_gradients_match_finite_differences(rng):
    """Back-propagation through Add and Concatenate (a tensor read by three
    layers sums their gradients) against central differences in float64."""
    model = _residual("float64")
    x = rng.standard_normal((3, 8, 8, 4))
    g = rng.standard_normal((3, 3))
    model.forward(x, training=True)
    model.backward(g)
    grads = model.grads
    assert len(grads) == len(model.trainable_weights) == 6
    eps = 1e-6
    for w, grad in zip(model.trainable_weights, grads):
        flat = w.reshape(-1)
        for i in rng.choice(flat.size, size=min(6, flat.size), replace=False):
            keep = flat[i]
            flat[i] = keep + eps
            up = float(np.sum(model.predict(x) * g))
            flat[i] = keep - eps
            down = float(np.sum(model.predict(x) * g))
            flat[i] = keep
            assert abs((up - down) / (2 * eps) - grad.reshape(-1)[i]) < 1e-6 * max(
                1.0, abs(grad.reshape(-1)[i]))


def test_multi_input_multi_output_calls_take_and_return_lists(rng):
    a, b = Input(shape=(4,), name="a"), Input(shape=(4,), name="b")
    s = Add()([a, b])
    d = Subtract()([a, b])
    model = Model([a, b], [Dense(2, seed=0)(s), d])
    xa, xb = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    out = model([xa, xb])
    assert isinstance(out, list) and out[0].shape == (5, 2)
    assert np.allclose(out[1], xa - xb)
    assert isinstance(model.predict([xa, xb]), list)
    with pytest.raises(ValueError, match="one input and one output"):
        model.fit([xa, xb], out[0])
    with pytest.raises(TypeError, match="list of arrays"):
        model(xa)
    with pytest.raises(ValueError, match="batch sizes differ"):
        model([xa, xb[:3]])


def test_intermediate_values_are_released_after_their_last_reader(rng):
    """Inference keeps no reference to a tensor once its readers ran (the
    forward pass frees intermediates), and training keeps what backward needs."""
    model = _residual()
    x = rng.standard_normal((2, 8, 8, 4)).astype(np.float32)
    y = model.predict(x)
    assert all(layer._saved is None for layer in model.layers)
    model.forward(x, training=True)
    assert all(layer._saved is not None for layer in model.layers)
    assert y.shape == (2, 3)


# ---- merging layers ----------------------------------------------------------------------
@pytest.mark.parametrize("cls, fn", [
    (Add, lambda xs: xs[0] + xs[1] + xs[2]),
    (Multiply, lambda xs: xs[0] * xs[1] * xs[2]),
    (Average, lambda xs: (xs[0] + xs[1] + xs[2]) / 3),
    (Maximum, lambda xs: np.maximum(np.maximum(xs[0], xs[1]), xs[2])),
    (Minimum, lambda xs: np.minimum(np.minimum(xs[0], xs[1]), xs[2])),
])
def test_elementwise_merge_forward_and_backward_three_inputs(rng, cls, fn):
    xs = [rng.standard_normal((2, 3, 4)) for _ in range(3)]
    layer = cls()
    assert np.allclose(layer.forward(xs, training=True), fn(xs))
    g = rng.standard_normal((2, 3, 4))
    grads = layer.backward(g)
    eps = 1e-6
    for k in range(3):  # d<fn(xs), g>/dxs[k], by central differences
        num = np.zeros_like(xs[k])
        for idx in np.ndindex(xs[k].shape):
            up = [v.copy() for v in xs]
            down = [v.copy() for v in xs]
            up[k][idx] += eps
            down[k][idx] -= eps
            num[idx] = (np.sum(fn(up) * g) - np.sum(fn(down) * g)) / (2 * eps)
        assert np.allclose(grads[k], num, atol=1e-6)


def test_maximum_tie_gives_the_gradient_to_the_first_input():
    x = np.ones((1, 2))
    layer = Maximum()
    layer.forward([x, x.copy()], training=True)
    g0, g1 = layer.backward(np.full((1, 2), 5.0))
    assert np.array_equal(g0, [[5, 5]]) and np.array_equal(g1, [[0, 0]])


def test_concatenate_axis_and_backward_split(rng):
    a, b = rng.standard_normal((2, 3, 4, 1)), rng.standard_normal((2, 3, 4, 5))
    layer = Concatenate()
    y = layer.forward([a, b], training=True)
    assert np.array_equal(y, np.concatenate([a, b], axis=-1))
    ga, gb = layer.backward(y)
    assert np.array_equal(ga, a) and np.array_equal(gb, b)
    assert Concatenate(axis=1)([a, a]).shape == (2, 6, 4, 1)
    assert Concatenate(axis=2).compute_output_shape([(None, 3, 4, 1), (None, 3, None, 1)]) == (
        None, 3, None, 1)


def test_merge_inputs_of_float32_and_float64_compute_in_float64():
    y = Add()([np.ones((1, 2), np.float32), np.ones((1, 2), np.float64)])
    assert y.dtype == np.float64


@pytest.mark.parametrize("layer, shapes, match", [
    (Add(), [(None, 3), (None, 4)], "one shape"),
    (Add(), [(None, 3)], "at least 2 inputs"),
    (Subtract(), [(None, 3)] * 3, "exactly 2 inputs"),
    (Concatenate(), [(None, 3, 4), (None, 2, 4)], "every other axis"),
    (Concatenate(axis=0), [(None, 3), (None, 3)], "non-batch axis"),
    (Concatenate(axis=3), [(None, 3), (None, 3)], "non-batch axis"),
    (Concatenate(), [(None, 3, 4), (None, 3)], "one rank"),
])
def test_merge_shape_errors(layer, shapes, match):
    with pytest.raises(ValueError, match=match):
        layer.compute_output_shape(shapes)


def test_merge_layer_type_errors():
    with pytest.raises(TypeError, match="list of inputs"):
        Add().compute_output_shape((None, 3))
    with pytest.raises(TypeError, match="list of arrays"):
        Add().forward(np.ones((2, 3)))
    with pytest.raises(TypeError, match="unexpected keyword"):
        Add(axis=1)
    with pytest.raises(TypeError, match="list of symbolic tensors"):
        Add()(Input(shape=(3,)))
    with pytest.raises(TypeError, match="one symbolic tensor"):
        Dense(2)([Input(shape=(3,)), Input(shape=(3,))])
    with pytest.raises(RuntimeError, match="forward"):
        Add().backward(np.ones((1, 3)))


# ---- construction errors -------------------------------------------------------------------
def test_model_construction_errors():
    x = Input(shape=(4,), name="x")
    other = Input(shape=(4,), name="other")
    h = Dense(3)(x)
    with pytest.raises(TypeError, match="functional API"):
        Model()
    with pytest.raises(TypeError, match="symbolic tensor"):
        Model(x, np.ones(3))
    with pytest.raises(ValueError, match="must be Input placeholders"):
        Model(h, Dense(2)(h))
    with pytest.raises(ValueError, match="not one of the model's inputs"):
        Model(x, Add()([h, Dense(3)(other)]))
    with pytest.raises(ValueError, match="twice"):
        Model([x, x], h)
    shared = Dense(4)
    with pytest.raises(ValueError, match="two places"):
        Model(x, Add()([shared(x), shared(x)]))
    built = Dense(3)
    built(Input(shape=(5,)))
    with pytest.raises(ValueError, match="built for 5 input features"):
        built(x)  # a symbolic call checks the shape as an array call does
    with pytest.raises(TypeError, match="nesting models"):
        Model(x, h)(x)
    with pytest.raises(TypeError, match="nesting models"):
        Sequential([Dense(2)], input_shape=(None, 4))(x)


def test_model_call_checks_the_input_shape_before_any_layer_runs(rng):
    model = _residual()
    with pytest.raises(ValueError, match=r"input 'img' has shape \(None, 8, 8, 4\)"):
        model.predict(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="has shape"):
        model.predict(np.zeros((8, 8, 4), np.float32))


# ---- summary, saving, namespaces ------------------------------------------------------------
def test_summary_rows_show_the_connections_and_receptive_fields(capsys):
    model = _residual()
    table = model.summary_table()
    rows = {r["name"]: r for r in table.rows}
    assert table.rows[0]["type"] == "InputLayer" and table.rows[0]["connected_to"] == []
    assert rows["add"]["connected_to"] == ["img", "c2"]
    assert rows["c2"]["receptive_field"] == (5, 5)
    assert rows["add"]["receptive_field"] == (5, 5)  # the widest branch
    assert rows["pool"]["receptive_field"] == (6, 6) and rows["pool"]["jump"] == (2, 2)
    assert rows["out"]["receptive_field"] is None and rows["out"]["whole_input"] == (8, 8)
    assert table.total_params == model.count_params() == table.trainable_params
    assert model.summary() is None
    printed = capsys.readouterr().out
    assert "Connected to" in printed and "img, c2" in printed
    assert f"Total params: {model.count_params():,}" in printed


def test_save_and_load_npz_round_trip_bitwise(rng, tmp_path):
    model = _residual()
    x = rng.standard_normal((4, 8, 8, 4)).astype(np.float32)
    model.save(tmp_path / "res.npz")
    loaded = convpool.load(tmp_path / "res.npz")
    assert isinstance(loaded, Model)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert np.array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("change, match", [
    (lambda c: c["layers"][2].update(inbound=[0, 9]), "inbound must list earlier tensors"),
    (lambda c: c["layers"][0].update(inbound=[1]), "inbound must list earlier tensors"),
    (lambda c: c["layers"][0].update(inbound=[0, 0]), "takes one input"),
    (lambda c: c.update(outputs=[99]), "outputs must list tensors"),
    (lambda c: c["inputs"][0].update(shape=[None, 8, 8, 5]), "takes weights of shapes"),
    (lambda c: c["inputs"][0].update(dtype="int8"), "input 0 of its config"),
    (lambda c: c.update(single_input="yes"), "single_input"),
    (lambda c: c["layers"][0]["config"].update(filters=10**12), "takes weights of shapes"),
])
def test_load_rejects_a_malformed_graph_config(tmp_path, change, match):
    import json

    model = _residual()
    config = model.get_config()
    change(config)
    arrays = {f"weight_{i}": w for i, w in enumerate(model.weights)}
    np.savez(tmp_path / "bad.npz", config=np.array(json.dumps(config)), **arrays)
    with pytest.raises(ValueError, match=match):
        convpool.load(tmp_path / "bad.npz")


def test_keras_namespace_has_the_functional_api():
    assert keras.Model is Model is convpool.Model is keras.models.Model
    assert keras.layers.Add is Add and keras.layers.Concatenate is Concatenate
    x = keras.Input(shape=(3,))
    model = keras.Model(inputs=x, outputs=keras.layers.Dense(2)(x), name="tiny")
    assert model.name == "tiny" and model.count_params() == 8


def test_mixed_dtype_merge_returns_each_input_its_own_gradient_dtype():
    layer = Add()
    layer.forward([np.ones((1, 2), np.float32), np.ones((1, 2))], training=True)
    g32, g64 = layer.backward(np.ones((1, 2)))
    assert g32.dtype == np.float32 and g64.dtype == np.float64
