"""Training: layer gradients, losses, optimizers, Sequential.fit, save/load, fused ReLU."""

import os
import subprocess
import sys

import numpy as np
import pytest

import convpool
from convpool import (
    SGD,
    Adam,
    AvgPool2D,
    Conv2D,
    Dense,
    Flatten,
    MaxPool2D,
    ReLU,
    Sequential,
    reference,
    softmax_cross_entropy,
)

from _helpers import assert_bitwise_equal

EPS = 1e-6  # central differences in float64


def _directional(f, x, direction):
    """(f(x + eps d) - f(x - eps d)) / (2 eps): the derivative of f along d."""
    return (f(x + EPS * direction) - f(x - EPS * direction)) / (2 * EPS)


def _check_layer_gradients(layer, x, rng):
    """Every gradient of ``layer`` against central differences of L = sum(y * G).

    For the input and for each weight, <grad, d> along a random direction d
    must match the directional derivative (rtol 1e-3, float64).  Data with
    distinct values keeps max pooling differentiable at x.
    """
    y = layer.forward(x, training=True)
    g = rng.standard_normal(y.shape)
    grad_x = layer.backward(g)
    grads = layer.grads
    assert len(grads) == len(layer.weights)

    def loss_of_x(xx):
        return float((layer.forward(xx) * g).sum())

    d = rng.standard_normal(x.shape)
    numeric = _directional(loss_of_x, x, d)
    assert np.isclose((grad_x * d).sum(), numeric, rtol=1e-3, atol=1e-7), (layer, "input")
    for i, w in enumerate(layer.weights):
        original = w.copy()
        d = rng.standard_normal(w.shape)

        def loss_of_w(ww, i=i):
            layer.weights[i][...] = ww
            return float((layer.forward(x) * g).sum())

        numeric = _directional(loss_of_w, original, d)
        layer.weights[i][...] = original
        assert np.isclose((grads[i] * d).sum(), numeric, rtol=1e-3, atol=1e-7), (layer, i)


def _distinct(rng, shape):
    """float64 data with all values distinct (no ties in a max-pool window) and
    none within 1/(2 size) of 0 (no ReLU kink inside the differences)."""
    n = np.prod(shape)
    return (rng.permutation(n).reshape(shape) + 0.5) / n - 0.5


LAYER_CASES = [
    pytest.param(lambda: Dense(5, seed=1), (3, 4, 6), id="dense"),
    pytest.param(lambda: Dense(5, activation="relu", seed=1), (7, 6), id="dense-relu"),
    pytest.param(lambda: Dense(3, use_bias=False, seed=1), (4, 6), id="dense-nobias"),
    pytest.param(lambda: Conv2D(4, 3, padding="same", activation="relu", seed=1), (2, 7, 8, 3),
                 id="conv-same-relu"),
    pytest.param(lambda: Conv2D(6, (3, 2), strides=(2, 1), dilation_rate=(1, 2), padding=1,
                                groups=2, seed=1), (2, 9, 8, 4), id="conv-s2x1-d1x2-g2"),
    pytest.param(lambda: Conv2D(3, 2, data_format="channels_first", seed=1), (2, 3, 6, 5),
                 id="conv-nchw"),
    pytest.param(lambda: MaxPool2D(2), (2, 6, 8, 3), id="maxpool"),
    pytest.param(lambda: MaxPool2D(3, strides=1, padding="same"), (1, 5, 6, 2), id="maxpool-overlap"),
    pytest.param(lambda: AvgPool2D(3, strides=2, padding="same"), (2, 7, 7, 3), id="avgpool"),
    pytest.param(lambda: Flatten(data_format="channels_first"), (2, 3, 4, 5), id="flatten-nchw"),
    pytest.param(lambda: ReLU(), (3, 10), id="relu"),
]


@pytest.mark.parametrize("make, shape", LAYER_CASES)
def test_layer_gradients_match_finite_differences(make, shape, rng):
    _check_layer_gradients(make(), _distinct(rng, shape), rng)


def test_backward_needs_a_training_forward():
    layer = Dense(2)
    layer(np.ones((3, 4)))
    with pytest.raises(RuntimeError, match="forward\\(x, training=True\\)"):
        layer.backward(np.ones((3, 2)))
    layer.forward(np.ones((3, 4)), training=True)
    with pytest.raises(ValueError, match="grad_out must have the output's shape \\(3, 2\\)"):
        layer.backward(np.ones((3, 3)))


def test_model_gradients_match_finite_differences(rng):
    model = Sequential([Conv2D(3, 3, padding="same", activation="relu", seed=0, dtype="float64"),
                        MaxPool2D(2), Flatten(), Dense(4, seed=1, dtype="float64")],
                       input_shape=(None, 6, 6, 2))
    x = _distinct(rng, (5, 6, 6, 2))
    labels = rng.integers(0, 4, size=5)
    _, grad = softmax_cross_entropy(model.forward(x, training=True), labels)
    model.backward(grad)
    for i, w in enumerate(model.weights):
        original = w.copy()
        d = rng.standard_normal(w.shape)

        def loss_of(ww, i=i):
            model.weights[i][...] = ww
            return softmax_cross_entropy(model(x), labels)[0]

        numeric = _directional(loss_of, original, d)
        model.weights[i][...] = original
        assert np.isclose((model.grads[i] * d).sum(), numeric, rtol=1e-3, atol=1e-8), i


# -------------------------------------------------------------------------- loss
def test_softmax_cross_entropy_value_and_gradient(rng):
    logits = rng.standard_normal((6, 5))
    labels = rng.integers(0, 5, size=6)
    loss, grad = softmax_cross_entropy(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.isclose(loss, -np.log(p[np.arange(6), labels]).mean(), rtol=1e-12)
    d = rng.standard_normal(logits.shape)
    numeric = _directional(lambda z: softmax_cross_entropy(z, labels)[0], logits, d)
    assert np.isclose((grad * d).sum(), numeric, rtol=1e-6)
    one_hot = np.eye(5)[labels]
    loss2, grad2 = softmax_cross_entropy(logits, one_hot)
    assert loss2 == pytest.approx(loss, rel=1e-12) and np.allclose(grad2, grad, rtol=1e-12)
    big = softmax_cross_entropy(np.array([[1000.0, 0.0]]), np.array([1]))[0]
    assert np.isfinite(big) and big == pytest.approx(1000.0)


@pytest.mark.parametrize(
    "logits, labels, exc, pattern",
    [
        (np.zeros((3, 2)), np.array([0, 2, 1]), ValueError, "labels must lie in \\[0, 2\\)"),
        (np.zeros((3, 2)), np.zeros((3, 3)), ValueError, "labels must have shape"),
        (np.zeros((3, 2)), np.array([0.0, 1.0, 0.0]), TypeError, "must be integers"),
        (np.zeros(3), np.zeros(3, int), ValueError, "logits must be 2-D"),
    ],
)
def test_softmax_cross_entropy_rejects(logits, labels, exc, pattern):
    with pytest.raises(exc, match=pattern):
        softmax_cross_entropy(logits, labels)


# -------------------------------------------------------------------- optimizers
def test_sgd_momentum_and_nesterov_steps():
    w = np.array([1.0, -2.0])
    g = np.array([0.5, 0.25])
    for nesterov in (False, True):
        opt, ww, v = SGD(0.1, momentum=0.9, nesterov=nesterov), w.copy(), np.zeros(2)
        for _ in range(3):
            v = 0.9 * v - 0.1 * g
            expected = ww + (0.9 * v - 0.1 * g if nesterov else v)
            opt.apply([ww], [g])
            np.testing.assert_allclose(ww, expected, rtol=1e-14)


def test_adam_steps_follow_the_formula():
    w = np.array([1.0, -2.0, 3.0])
    opt = Adam(0.01)
    m = v = np.zeros(3)
    expected = w.copy()
    for t in range(1, 4):
        g = np.array([0.5, -1.0, 2.0]) * t
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        lr = 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        expected = expected - lr * m / (np.sqrt(v) + 1e-7)
        opt.apply([w], [g])
        np.testing.assert_allclose(w, expected, rtol=1e-12)


def test_optimizers_reject_bad_arguments():
    with pytest.raises(ValueError, match="learning_rate must be positive"):
        SGD(0)
    with pytest.raises(ValueError, match="momentum must lie in"):
        SGD(0.1, momentum=1.5)
    with pytest.raises(ValueError, match="beta_1 must lie in"):
        Adam(beta_1=1.0)
    opt = SGD(0.1)
    with pytest.raises(ValueError, match="a gradient of shape"):
        opt.apply([np.zeros(2)], [np.zeros(3)])
    opt.apply([np.zeros(2)], [np.zeros(2)])
    with pytest.raises(ValueError, match="used with other weights"):
        opt.apply([np.zeros(3)], [np.zeros(3)])


# ----------------------------------------------------------------------- fitting
def _bars(rng, n):
    """8x8 images of a horizontal (class 0), vertical (1) or diagonal (2) bar, with noise."""
    x = rng.normal(0, 0.2, size=(n, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=n)
    pos = rng.integers(1, 7, size=n)
    for i in range(n):
        if y[i] == 0:
            x[i, pos[i], :, 0] += 1
        elif y[i] == 1:
            x[i, :, pos[i], 0] += 1
        else:
            x[i, np.arange(8), np.arange(8), 0] += 1
    return x, y


def _small_cnn(seed=0):
    return Sequential([Conv2D(8, 3, padding="same", activation="relu", seed=seed), MaxPool2D(2),
                       Flatten(), Dense(3, seed=seed + 1)], input_shape=(None, 8, 8, 1))


def test_fit_learns_and_reports(rng, capsys):
    x, y = _bars(rng, 240)
    x_val, y_val = _bars(rng, 60)
    model = _small_cnn()
    history = model.fit(x, y, epochs=8, batch_size=16, optimizer=Adam(0.01),
                        validation_data=(x_val, y_val), seed=0, verbose=True)
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history["loss"]) == 8
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["val_accuracy"][-1] >= 0.9
    loss, acc = model.evaluate(x_val, y_val)
    assert acc == history["val_accuracy"][-1] and loss == pytest.approx(history["val_loss"][-1])
    out = capsys.readouterr().out  # Keras's display, on stdout
    assert "Epoch 8/8" in out and "15/15" in out and "- loss: " in out and "val_accuracy" in out
    assert all(layer._saved is None for layer in model.layers)  # nothing kept after fit


def test_fit_is_reproducible_and_thread_invariant(rng, num_threads):
    x, y = _bars(rng, 96)
    weights = []
    for threads in (1, 2, 3):
        num_threads(threads)
        model = Sequential([Conv2D(4, 3, padding="same", activation="relu", seed=3), AvgPool2D(2),
                            Conv2D(3, 4, seed=4), Flatten()], input_shape=(None, 8, 8, 1))
        model.fit(x, y, epochs=2, batch_size=32, optimizer=SGD(0.05, momentum=0.9), seed=1,
                  verbose=False)
        weights.append(model.get_weights())
    for other in weights[1:]:
        for a, b in zip(weights[0], other):
            assert_bitwise_equal(a, b, "fit", what="weights after fit at 1 vs more threads")


def test_fit_bitwise_across_threads_and_blas_limits(rng, num_threads):
    """A CNN whose every layer runs on convpool's kernels (Dense included: it
    no longer calls NumPy's matmul) trains to the same bits at 1, 2 and 3
    threads, and with NumPy's BLAS limited to one thread or not."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    x, y = _bars(rng, 128)

    def train():
        model = Sequential([Conv2D(8, 3, padding="same", activation="relu", seed=5),
                            MaxPool2D(2), Flatten(), Dense(64, activation="relu", seed=6),
                            Dense(3, seed=7)], input_shape=(None, 8, 8, 1))
        before = [w.copy() for w in model.get_weights()]
        # 128 samples in batches of 64, two epochs: four Adam steps, shuffled by seed
        model.fit(x, y, epochs=2, batch_size=64, optimizer=Adam(0.01), shuffle=True, seed=2,
                  verbose=False)
        return before, model.get_weights()

    runs = {}
    for threads in (1, 2, 3):
        num_threads(threads)
        runs[f"convpool at {threads} thread(s)"] = train()
    num_threads(None)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        assert all(i["num_threads"] == 1 for i in blas), blas
        runs["BLAS limited to 1 thread"] = train()
    runs["BLAS unlimited"] = train()
    before, after = runs["convpool at 1 thread(s)"]
    assert len(after) == 6  # conv kernel, bias; two Dense kernels and biases
    for i, (b, a) in enumerate(zip(before, after)):
        assert not np.array_equal(a, b), f"weight {i} ({a.shape}) did not change in training"
    for label, (b_other, a_other) in runs.items():
        for i, (w0, w) in enumerate(zip(before, b_other)):
            assert_bitwise_equal(w, w0, label, what=f"initial weight {i}")
        for i, (w1, w) in enumerate(zip(after, a_other)):
            assert_bitwise_equal(w, w1, label, what=f"weight {i} after fit, {label} vs 1 thread")


def test_fit_rejects_bad_arguments(rng):
    x, y = _bars(rng, 10)
    model = _small_cnn()
    with pytest.raises(ValueError, match="same length"):
        model.fit(x, y[:5], verbose=False)
    with pytest.raises(ValueError, match="epochs must be positive"):
        model.fit(x, y, epochs=0, verbose=False)
    with pytest.raises(ValueError, match="unknown optimizer 'adamw'"):
        model.fit(x, y, optimizer="adamw", verbose=False)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        model.fit(x, y, loss="hinge", verbose=False)
    with pytest.raises(ValueError, match="does not support class_weight"):
        model.fit(x, y, class_weight={0: 1.0}, verbose=False)
    with pytest.raises(ValueError, match="verbose must be"):
        model.fit(x, y, verbose=3)
    with pytest.raises(ValueError, match="validation_split must lie in"):
        model.fit(x, y, validation_split=1.5, verbose=False)


def test_predict_in_batches_equals_one_call(rng):
    """convpool's conv and pool layers give each sample the same bits in any
    batch split (the Dense case is the test below)."""
    x, _ = _bars(rng, 50)
    model = Sequential([Conv2D(8, 3, padding="same", activation="relu", seed=0), MaxPool2D(2),
                        Conv2D(3, 4, seed=1), Flatten()], input_shape=(None, 8, 8, 1))
    assert_bitwise_equal(model.predict(x, batch_size=7), model.predict(x), "predict",
                         what="batched vs whole predict")


def test_predict_in_batches_with_dense_equals_one_call(rng, num_threads):
    """Dense now runs on convpool's GEMM too (each row summed in feature order),
    so a whole CNN with Dense layers gives every sample the same bits in any batch split."""
    x, _ = _bars(rng, 50)
    model = Sequential([Conv2D(8, 3, padding="same", activation="relu", seed=0), MaxPool2D(2),
                        Flatten(), Dense(32, activation="relu", seed=1), Dense(3, seed=2)],
                       input_shape=(None, 8, 8, 1))
    num_threads(3)
    whole = model.predict(x)
    assert_bitwise_equal(model.predict(x, batch_size=7), whole, "predict",
                         what="batched vs whole predict")
    assert_bitwise_equal(model.predict(x[13:14]), whole[13:14], "predict", what="one sample")


def test_save_and_load_roundtrip(tmp_path, rng):
    x, y = _bars(rng, 40)
    model = Sequential([Conv2D(4, (3, 2), strides=(1, 2), padding=((1, 1), (0, 1)),
                               activation="relu", seed=0), AvgPool2D(2, count_include_pad=True,
                                                                     padding="same"),
                        Flatten(), Dense(3, use_bias=False, seed=1)], input_shape=(None, 8, 8, 1))
    model.fit(x, y, epochs=1, verbose=False)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = convpool.load(path)
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    assert loaded.layers[0].activation == "relu" and loaded.layers[1].count_include_pad
    assert loaded.layers[0].padding == ((1, 1), (0, 1))
    assert_bitwise_equal(loaded.predict(x), model.predict(x), "load", what="loaded vs saved model")
    with pytest.raises(ValueError, match="not built"):
        Sequential([Dense(2)]).save(tmp_path / "empty.npz")


# ----------------------------------------------------------------- fused ReLU
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    "xs, ks, kw",
    [((2, 9, 40, 3), (3, 3, 3, 16), dict(padding="same")),
     ((2, 9, 40, 8), (3, 3, 1, 8), dict(padding="same", groups=8)),
     ((2, 5, 7, 8), (3, 3, 8, 17), dict()),
     ((2, 9, 40, 8), (1, 1, 8, 20), dict())],
    ids=["rows", "depthwise", "gather", "pointwise"],
)
def test_fused_relu_equals_relu_of_output(xs, ks, kw, dtype, rng):
    x = rng.standard_normal(xs).astype(dtype)
    x[0, 1, 1, 0] = np.nan
    k = rng.standard_normal(ks).astype(dtype)
    b = rng.standard_normal(ks[3]).astype(dtype)
    plain = convpool.conv2d(x, k, b, **kw)
    fused = convpool.conv2d(x, k, b, activation="relu", **kw)
    assert_bitwise_equal(fused, np.where(plain < 0, 0, plain).astype(dtype), kw,
                         what="fused ReLU vs ReLU of the output")
    ref = reference.conv2d(x, k, b, activation="relu", **kw)
    assert np.array_equal(np.isnan(ref), np.isnan(fused)) and (fused >= 0)[~np.isnan(fused)].all()
    with pytest.raises(ValueError, match="activation must be"):
        convpool.conv2d(x, k, b, activation="tanh", **kw)


# ------------------------------------------------------------------- the example
def test_train_digits_example_reaches_97_percent(tmp_path):
    """examples/train_digits.py needs scikit-learn's bundled digits (no download)."""
    pytest.importorskip("sklearn")
    example = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "train_digits.py")
    if not os.path.exists(example):
        pytest.skip("examples/ is not next to the tests (installed package)")
    proc = subprocess.run(
        [sys.executable, example, "--quiet", "--plot", str(tmp_path / "loss.png")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    accuracy = float(proc.stdout.split("test accuracy ")[1].split()[0])
    assert accuracy >= 0.97, proc.stdout
