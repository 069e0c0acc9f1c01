"""Keras-style losses: values against NumPy formulas, gradients against central
differences, the fused activation gradients against the chain rule, argument
checks, and (where Keras is importable) values and gradients against Keras 3."""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pytest

import convpool.losses
from convpool import losses
from convpool.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    KerasLoss,
    MeanAbsoluteError,
    MeanSquaredError,
    SparseCategoricalCrossentropy,
    softmax_cross_entropy,
)

EPS = 1e-7


# -------------------------------------------------------------------- helpers
def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _probs(rng, shape, low=0.05):
    """Rows of probabilities bounded away from the clip range."""
    p = rng.uniform(low, 1, size=shape)
    return p / p.sum(axis=-1, keepdims=True)


def _onehot(labels, k):
    return np.eye(k)[labels]


def _central_diff(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        g[i] = (f(xp) - f(xm)) / (2 * h)
    return g


def _frozen(*arrays):
    """Read-only copies: any write into an input raises."""
    out = []
    for a in arrays:
        a = np.array(a)
        a.flags.writeable = False
        out.append(a)
    return out


SHAPES = [(5, 3), (2, 3, 4)]  # (N, K) and (N, H, K)


def _case(rng, name, shape, from_logits):
    """(loss instance, y_true, y_pred, reference per-sample loss) for one configuration."""
    k = shape[-1]
    if name == "categorical":
        t = _onehot(rng.integers(0, k, shape[:-1]), k)
        if from_logits:
            z = rng.normal(size=shape) * 3
            per = -(t * np.log(_softmax(z))).sum(-1)
            return CategoricalCrossentropy(from_logits=True), t, z, per
        p = _probs(rng, shape)
        return CategoricalCrossentropy(), t, p, -(t * np.log(p)).sum(-1)
    if name == "sparse":
        y = rng.integers(0, k, shape[:-1])
        if from_logits:
            z = rng.normal(size=shape) * 3
            per = -np.log(np.take_along_axis(_softmax(z), y[..., None], -1))[..., 0]
            return SparseCategoricalCrossentropy(from_logits=True), y, z, per
        p = _probs(rng, shape)
        per = -np.log(np.take_along_axis(p, y[..., None], -1))[..., 0]
        return SparseCategoricalCrossentropy(), y, p, per
    if name == "binary":
        t = rng.integers(0, 2, shape).astype(float)
        if from_logits:
            z = rng.normal(size=shape) * 3
            s = _sigmoid(z)
            per = (-(t * np.log(s) + (1 - t) * np.log(1 - s))).mean(-1)
            return BinaryCrossentropy(from_logits=True), t, z, per
        p = rng.uniform(0.05, 0.95, shape)
        per = (-(t * np.log(p) + (1 - t) * np.log(1 - p))).mean(-1)
        return BinaryCrossentropy(), t, p, per
    t = rng.normal(size=shape)
    p = t + rng.uniform(0.1, 1, shape) * rng.choice([-1, 1], shape)  # never p == t
    if name == "mse":
        return MeanSquaredError(), t, p, ((p - t) ** 2).mean(-1)
    return MeanAbsoluteError(), t, p, np.abs(p - t).mean(-1)


CASES = [(name, shape, logits)
         for name in ("categorical", "sparse", "binary", "mse", "mae")
         for shape in SHAPES
         for logits in ((False, True) if name in ("categorical", "sparse", "binary") else (False,))]


def _case_id(case):
    name, shape, logits = case
    return f"{name}-{'x'.join(map(str, shape))}{'-logits' if logits else ''}"


FUNCTIONS = {
    "categorical": losses.categorical_crossentropy,
    "sparse": losses.sparse_categorical_crossentropy,
    "binary": losses.binary_crossentropy,
    "mse": losses.mean_squared_error,
    "mae": losses.mean_absolute_error,
}


# ---------------------------------------------------------------------- values
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_values_match_the_numpy_formulas(rng, case):
    name, shape, logits = case
    loss, t, p, per = _case(rng, name, shape, logits)
    kwargs = {"from_logits": True} if logits else {}
    got = FUNCTIONS[name](t, p, **kwargs)
    assert got.shape == per.shape and got.dtype == np.float64, case
    np.testing.assert_allclose(got, per, rtol=1e-12, atol=1e-14, err_msg=str(case))
    assert loss(t, p) == pytest.approx(per.mean(), rel=1e-12)
    value, grad = loss.value_and_grad(p, t)
    assert value == pytest.approx(per.mean(), rel=1e-12)
    assert grad.shape == np.shape(p)


def test_names_are_keras_names():
    assert [cls().name for cls in (CategoricalCrossentropy, SparseCategoricalCrossentropy,
                                   BinaryCrossentropy, MeanSquaredError, MeanAbsoluteError)] == [
        "categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy",
        "mean_squared_error", "mean_absolute_error"]


def test_probabilities_are_normalised_then_clipped_as_keras():
    t = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    p = np.array([[2.0, 1.0, 1.0], [1.0, 0.0, 0.0]])  # row sums 4 and 1
    np.testing.assert_allclose(losses.categorical_crossentropy(t, p),
                               [-np.log(0.5), -np.log(EPS)], rtol=1e-12)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy([0, 1], p),
                               [-np.log(0.5), -np.log(EPS)], rtol=1e-12)
    # binary: p = 0 and p = 1 are clipped to eps and 1 - eps
    np.testing.assert_allclose(losses.binary_crossentropy([[1.0, 0.0]], [[0.0, 1.0]]),
                               [-np.log(EPS)], rtol=1e-9)


def test_from_logits_is_stable_for_huge_logits():
    z = np.array([[1000.0, -1000.0, 0.0]])
    assert losses.categorical_crossentropy([[0.0, 1.0, 0.0]], z, from_logits=True)[0] == \
        pytest.approx(2000.0)
    assert losses.sparse_categorical_crossentropy([0], z, from_logits=True)[0] == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        b = losses.binary_crossentropy([[0.0, 1.0, 1.0]], z, from_logits=True)
        value, grad = BinaryCrossentropy(from_logits=True).value_and_grad(z, [[0.0, 1.0, 1.0]])
    assert b[0] == pytest.approx((1000 + 1000 + np.log(2)) / 3) and value == pytest.approx(b[0])
    np.testing.assert_allclose(grad, [[1 / 3, -1 / 3, -1 / 6]], rtol=1e-12)


def test_categorical_from_logits_agrees_with_softmax_cross_entropy(rng):
    z = rng.normal(size=(6, 4))
    y = rng.integers(0, 4, 6)
    ref_value, ref_grad = softmax_cross_entropy(z, y)
    for loss, target in ((CategoricalCrossentropy(from_logits=True), _onehot(y, 4)),
                         (SparseCategoricalCrossentropy(from_logits=True), y)):
        value, grad = loss.value_and_grad(z, target)
        assert value == pytest.approx(ref_value, rel=1e-14)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-13, atol=1e-16)


# ------------------------------------------------------------------- gradients
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_gradients_match_central_differences(rng, case):
    name, shape, logits = case
    loss, t, p, _ = _case(rng, name, shape, logits)
    _, grad = loss.value_and_grad(p, t)
    fd = _central_diff(lambda q: loss(t, q), p)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9, err_msg=str(case))


def test_gradients_through_normalisation_and_clipping():
    # Unnormalised rows, one entry clipped at eps (its gradient is the clip's: 0)
    # and soft targets: the full gradient of Keras's formula, not (p - t) / N.
    t = np.array([[0.2, 0.5, 0.3], [0.0, 0.0, 1.0]])
    p = np.array([[2.0, 1.0, 1.0], [0.5, 0.5, 1e-12]])
    loss = CategoricalCrossentropy()
    _, grad = loss.value_and_grad(p, t)
    np.testing.assert_allclose(grad, _central_diff(lambda q: loss(t, q), p, h=1e-8),
                               rtol=1e-5, atol=1e-8)
    sparse = SparseCategoricalCrossentropy()
    y = np.array([1, 2])
    _, grad = sparse.value_and_grad(p, y)
    np.testing.assert_allclose(grad, _central_diff(lambda q: sparse(y, q), p, h=1e-8),
                               rtol=1e-5, atol=1e-8)
    assert np.all(grad[1] == 0)  # the label's probability is clipped: no gradient
    binary = BinaryCrossentropy()
    tb, pb = np.array([[1.0, 0.0, 1.0]]), np.array([[1e-12, 0.3, 0.6]])
    _, grad = binary.value_and_grad(pb, tb)
    assert grad[0, 0] == 0
    np.testing.assert_allclose(grad, _central_diff(lambda q: binary(tb, q), pb, h=1e-8),
                               rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_gradient_in_the_prediction_dtype(dtype):
    p = np.array([[1, 2, 3], [3, 1, 1]], dtype=dtype)
    expected = np.float64 if dtype == np.float64 else np.float32
    for loss, t in ((CategoricalCrossentropy(from_logits=True), np.eye(3)[[0, 2]]),
                    (SparseCategoricalCrossentropy(from_logits=True), [0, 2]),
                    (BinaryCrossentropy(from_logits=True), np.ones((2, 3))),
                    (MeanSquaredError(), np.zeros((2, 3))), (MeanAbsoluteError(), np.zeros((2, 3)))):
        value, grad = loss.value_and_grad(p, t)
        assert isinstance(value, float) and grad.dtype == expected, loss
        assert loss(t, p) == pytest.approx(value)


def test_float32_gradient_is_the_float64_one_rounded(rng):
    p = _probs(rng, (8, 5)).astype(np.float32)
    t = _onehot(rng.integers(0, 5, 8), 5)
    _, g32 = CategoricalCrossentropy().value_and_grad(p, t)
    _, g64 = CategoricalCrossentropy().value_and_grad(p.astype(np.float64), t)
    np.testing.assert_array_equal(g32, g64.astype(np.float32))


# ----------------------------------------------------------------------- fused
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_fused_softmax_gradients_equal_the_chain_rule(rng, shape):
    k = shape[-1]
    z = rng.normal(size=shape)
    p = _softmax(z)
    y = rng.integers(0, k, shape[:-1])
    for loss, t in ((CategoricalCrossentropy(), _onehot(y, k)),
                    (CategoricalCrossentropy(), _probs(rng, shape)),  # soft targets
                    (SparseCategoricalCrossentropy(), y)):
        fused = loss.fused("softmax")
        value, grad = fused(p, t)
        ref_value, g = loss.value_and_grad(p, t)
        chain = p * (g - (g * p).sum(-1, keepdims=True))  # softmax's Jacobian, transposed
        assert value == ref_value
        np.testing.assert_allclose(grad, chain, rtol=1e-10, atol=1e-15)
        # and the derivative of the loss of softmax(z) with respect to z
        np.testing.assert_allclose(grad, _central_diff(lambda q, f=loss, t=t: f(t, _softmax(q)), z),
                                   rtol=1e-6, atol=1e-9)
    onehot = _onehot(y, k)
    n = int(np.prod(shape[:-1]))
    np.testing.assert_allclose(CategoricalCrossentropy().fused("Softmax")(p, onehot)[1],
                               (p - onehot) / n, rtol=1e-14)


@pytest.mark.parametrize("shape", [(6, 1), (5, 3), (2, 3, 4)], ids=lambda s: "x".join(map(str, s)))
def test_fused_sigmoid_gradient_equals_the_chain_rule(rng, shape):
    z = rng.normal(size=shape)
    p = _sigmoid(z)
    t = rng.integers(0, 2, shape).astype(float)
    loss = BinaryCrossentropy()
    value, grad = loss.fused("sigmoid")(p, t)
    ref_value, g = loss.value_and_grad(p, t)
    assert value == ref_value
    np.testing.assert_allclose(grad, g * p * (1 - p), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(grad, (p - t) / t.size, rtol=1e-14)
    np.testing.assert_allclose(grad, _central_diff(lambda q: loss(t, _sigmoid(q)), z),
                               rtol=1e-6, atol=1e-9)


def test_fused_gradient_stays_finite_where_probabilities_saturate():
    # p rounds to 1 and 0: the chain rule through the clipped loss loses the
    # gradient, the fused closed form keeps it.
    z = np.array([[40.0, 0.0, -40.0]])
    p = _softmax(z)
    value, grad = CategoricalCrossentropy().fused("softmax")(p, [[0.0, 0.0, 1.0]])
    assert value == pytest.approx(-np.log(EPS))
    np.testing.assert_allclose(grad, p - [[0.0, 0.0, 1.0]], rtol=1e-12)
    _, grad = BinaryCrossentropy().fused("sigmoid")(_sigmoid(np.array([[40.0]])), [[0.0]])
    assert grad[0, 0] == pytest.approx(1.0)


def test_fused_is_none_unless_the_activation_matches():
    assert CategoricalCrossentropy().fused("sigmoid") is None
    assert CategoricalCrossentropy(from_logits=True).fused("softmax") is None
    assert SparseCategoricalCrossentropy().fused(None) is None
    assert BinaryCrossentropy().fused("softmax") is None
    assert BinaryCrossentropy(from_logits=True).fused("sigmoid") is None
    assert MeanSquaredError().fused("linear") is None and MeanAbsoluteError().fused("relu") is None
    assert BinaryCrossentropy().fused(object()) is None


def test_fused_result_dtype_is_the_probabilities():
    p = _softmax(np.array([[1.0, 2.0], [0.0, 0.0]])).astype(np.float32)
    value, grad = SparseCategoricalCrossentropy().fused("softmax")(p, [1, 0])
    assert grad.dtype == np.float32 and isinstance(value, float)


# -------------------------------------------------------- shapes and rank rules
def test_keras_rank_matching_for_one_unit_outputs(rng):
    y = rng.integers(0, 2, 7)
    p = rng.uniform(0.1, 0.9, (7, 1))
    loss = BinaryCrossentropy()
    value, grad = loss.value_and_grad(p, y)
    ref = loss.value_and_grad(p, y[:, None])
    assert value == ref[0] and grad.shape == (7, 1)
    np.testing.assert_array_equal(grad, ref[1])
    # 1-D against 1-D: the per-sample loss is the mean over the last (only) axis
    per = losses.binary_crossentropy(y, p[:, 0])
    assert per.shape == () and float(per) == pytest.approx(value)
    # mse's function matches ranks too; a (N, 1) label against (N,) predictions
    assert losses.mean_squared_error(y[:, None], p[:, 0]).shape == (7,)
    assert MeanSquaredError()(y[:, None], p[:, 0]) == pytest.approx(MeanSquaredError()(y, p))
    # sparse labels of shape (N, 1)
    probs = _probs(rng, (7, 3))
    labels = rng.integers(0, 3, 7)
    assert SparseCategoricalCrossentropy()(labels[:, None], probs) == \
        SparseCategoricalCrossentropy()(labels, probs)


def test_empty_batch_gives_zero_loss_and_an_empty_gradient():
    for loss, t, p in ((CategoricalCrossentropy(), np.zeros((0, 3)), np.zeros((0, 3))),
                       (SparseCategoricalCrossentropy(), np.zeros(0, int), np.zeros((0, 3))),
                       (BinaryCrossentropy(), np.zeros((0, 2)), np.zeros((0, 2))),
                       (MeanSquaredError(), np.zeros((0, 2)), np.zeros((0, 2)))):
        value, grad = loss.value_and_grad(p, t)
        assert value == 0.0 and grad.shape == p.shape


def test_sparse_labels_may_be_integral_floats():
    p = _probs(np.random.default_rng(0), (3, 4))
    assert SparseCategoricalCrossentropy()([0.0, 3.0, 1.0], p) == \
        SparseCategoricalCrossentropy()(np.array([0, 3, 1], np.uint8), p)


def test_categorical_warns_for_one_class():
    with pytest.warns(SyntaxWarning, match="num_classes > 1"):
        losses.categorical_crossentropy([[1.0]], [[1.0]])


# -------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda: CategoricalCrossentropy()(np.eye(3), np.ones((3, 4)) / 4), ValueError,
         r"same shape.*y_true shape \(3, 3\), y_pred shape \(3, 4\)"),
        (lambda: losses.binary_crossentropy(np.ones(3), np.ones((3, 1)) / 2), ValueError,
         r"y_true shape \(3,\), y_pred shape \(3, 1\)"),
        (lambda: MeanSquaredError().value_and_grad(np.ones((2, 3)), np.ones((2, 2))), ValueError,
         r"mean_squared_error needs y_true and y_pred of the same shape"),
        (lambda: SparseCategoricalCrossentropy()([0, 3], np.ones((2, 3)) / 3), ValueError,
         r"must lie in \[0, 3\).*got values in \[0, 3\]"),
        (lambda: SparseCategoricalCrossentropy()([-1, 0], np.ones((2, 3)) / 3), ValueError,
         r"must lie in \[0, 3\)"),
        (lambda: SparseCategoricalCrossentropy()([0.5, 1], np.ones((2, 3)) / 3), ValueError,
         r"class indices .*got 0.5"),
        (lambda: SparseCategoricalCrossentropy()([np.nan, 1], np.ones((2, 3)) / 3), ValueError,
         r"class indices"),
        (lambda: SparseCategoricalCrossentropy()([0, 1, 2], np.ones((2, 3)) / 3), ValueError,
         r"without its last \(class\) axis, \(2,\).*y_true shape \(3,\), y_pred shape \(2, 3\)"),
        (lambda: losses.sparse_categorical_crossentropy(np.zeros((2, 3)), np.ones((2, 3))),
         ValueError, r"without its last \(class\) axis"),
        (lambda: CategoricalCrossentropy()(np.zeros((2, 0)), np.zeros((2, 0))), ValueError,
         r"at least one class"),
        (lambda: CategoricalCrossentropy()(["a", "b"], np.ones(2)), TypeError,
         r"y_true must hold numbers"),
        (lambda: MeanAbsoluteError()(np.ones(2), np.ones(2, complex)), TypeError,
         r"y_pred has dtype complex128"),
        (lambda: MeanAbsoluteError()(np.ones(2), None), TypeError, r"y_pred must be an array"),
        (lambda: MeanAbsoluteError()(1.0, 2.0), ValueError, r"at least one axis"),
        (lambda: CategoricalCrossentropy(from_logits=1), TypeError, r"from_logits must be a bool"),
        (lambda: losses.binary_crossentropy([1.0], [0.5], from_logits="no"), TypeError,
         r"from_logits must be a bool"),
    ],
    ids=["cce-shape", "bce-fn-shape", "mse-shape", "sparse-high", "sparse-negative",
         "sparse-fraction", "sparse-nan", "sparse-shape", "sparse-onehot", "cce-no-class",
         "cce-strings", "mae-complex", "mae-none", "mae-0d", "from-logits-int", "bce-fn-flag"],
)
def test_bad_arguments(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_inputs_are_never_modified(rng, case):
    name, shape, logits = case
    loss, t, p, _ = _case(rng, name, shape, logits)
    t0, p0 = t.copy(), p.copy()
    t, p = _frozen(t, p)
    loss.value_and_grad(p, t)
    loss(t, p)
    if loss.fused("softmax") or loss.fused("sigmoid"):
        (loss.fused("softmax") or loss.fused("sigmoid"))(p, t)
    FUNCTIONS[name](t, p, **({"from_logits": True} if logits else {}))
    np.testing.assert_array_equal(t, t0)
    np.testing.assert_array_equal(p, p0)


# ------------------------------------------------------------------------ get
def test_get_resolves_names_instances_and_callables():
    for name, cls in [("categorical_crossentropy", CategoricalCrossentropy),
                      ("sparse_categorical_crossentropy", SparseCategoricalCrossentropy),
                      ("binary_crossentropy", BinaryCrossentropy),
                      ("mse", MeanSquaredError), ("mean_squared_error", MeanSquaredError),
                      ("MSE", MeanSquaredError), ("mae", MeanAbsoluteError),
                      ("mean_absolute_error", MeanAbsoluteError),
                      ("BinaryCrossentropy", BinaryCrossentropy)]:
        got = losses.get(name)
        assert type(got) is cls and not got.from_logits, name
    assert losses.get("mse") is not losses.get("mse")  # a new instance each time
    assert losses.get("softmax_cross_entropy") is softmax_cross_entropy
    loss = CategoricalCrossentropy(from_logits=True)
    assert losses.get(loss) is loss

    def custom(output, y):
        return 0.0, np.zeros_like(output)

    assert losses.get(custom) is custom
    assert losses.LOSSES == {"softmax_cross_entropy": softmax_cross_entropy}
    assert isinstance(loss, KerasLoss)
    assert repr(loss) == "CategoricalCrossentropy(from_logits=True)"
    assert loss.get_config() == {"name": "categorical_crossentropy", "from_logits": True}


def test_get_rejects_unknown_names_and_types():
    with pytest.raises(ValueError, match="unknown loss 'hinge'.*categorical_crossentropy.*mae"):
        losses.get("hinge")
    with pytest.raises(TypeError, match="got int"):
        losses.get(3)
    with pytest.raises(TypeError, match="got NoneType"):
        losses.get(None)


def test_docstring_examples():
    result = doctest.testmod(convpool.losses, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 3 and result.failed == 0


# ----------------------------------------------------- cross-check with Keras
def _keras():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the cross-check compares gradients with TensorFlow's GradientTape")
    return keras


def test_values_and_gradients_match_keras(rng):
    keras = _keras()
    import tensorflow as tf

    classes = {"categorical": keras.losses.CategoricalCrossentropy,
               "sparse": keras.losses.SparseCategoricalCrossentropy,
               "binary": keras.losses.BinaryCrossentropy,
               "mse": keras.losses.MeanSquaredError, "mae": keras.losses.MeanAbsoluteError}
    functions = {"categorical": keras.losses.categorical_crossentropy,
                 "sparse": keras.losses.sparse_categorical_crossentropy,
                 "binary": keras.losses.binary_crossentropy,
                 "mse": keras.losses.mean_squared_error, "mae": keras.losses.mean_absolute_error}
    checked = 0
    for name, shape, logits in CASES + [("binary", (6, 1), False), ("binary", (6, 1), True)]:
        ours, t, p, _ = _case(rng, name, shape, logits)
        kwargs = {"from_logits": True} if logits else {}
        theirs = classes[name](dtype="float64", **kwargs)
        assert theirs.name == ours.name
        variable = tf.Variable(p)
        with tf.GradientTape() as tape:
            value = theirs(t, variable)
        grad = tape.gradient(value, variable).numpy()
        my_value, my_grad = ours.value_and_grad(p, t)
        assert my_value == pytest.approx(float(value), rel=1e-10), (name, shape, logits)
        np.testing.assert_allclose(my_grad, grad, rtol=1e-9, atol=1e-15,
                                   err_msg=str((name, shape, logits)))
        np.testing.assert_allclose(FUNCTIONS[name](t, p, **kwargs),
                                   np.asarray(functions[name](t, p, **kwargs)),
                                   rtol=1e-10, err_msg=str((name, shape, logits)))
        checked += 1
    # normalisation and clipping (in float64: in float32 the bound 1 - 1e-7 rounds
    # to 1 - 1.19e-7, which moves a clipped log by a few per cent)
    t = np.array([[0.2, 0.5, 0.3], [0.0, 0.0, 1.0]])
    p = np.array([[2.0, 1.0, 1.0], [0.5, 0.5, 1e-9]])
    assert CategoricalCrossentropy()(t, p) == pytest.approx(
        float(keras.losses.CategoricalCrossentropy(dtype="float64")(t, p)), rel=1e-12)
    tb, pb = np.array([[1.0, 0.0, 0.0]]), np.array([[1e-9, 0.3, 1.0]])
    assert BinaryCrossentropy()(tb, pb) == pytest.approx(
        float(keras.losses.BinaryCrossentropy(dtype="float64")(tb, pb)), rel=1e-12)
    # ... and the gradients there, clipped entries included
    for ours, theirs, target, pred in (
            (CategoricalCrossentropy(), keras.losses.CategoricalCrossentropy(dtype="float64"),
             t, np.array([[2.0, 1.0, 1.0], [0.5, 0.5, 1e-12]])),
            # Keras's TensorFlow backend clips the sparse loss's probabilities
            # *before* normalising them; its other backends (and this module)
            # normalise first, as every backend does for the one-hot loss.
            (SparseCategoricalCrossentropy(),
             keras.losses.CategoricalCrossentropy(dtype="float64"),
             np.array([1, 2]), np.array([[0.2, 0.3, 0.5], [0.5, 0.5 - 1e-12, 1e-12]])),
            (BinaryCrossentropy(), keras.losses.BinaryCrossentropy(dtype="float64"),
             tb, np.array([[1e-12, 0.3, 0.6]]))):
        variable = tf.Variable(pred)
        keras_target = np.eye(3)[target] if target.ndim == 1 else target
        with tf.GradientTape() as tape:
            value = theirs(keras_target, variable)
        np.testing.assert_allclose(ours.value_and_grad(pred, target)[1],
                                   tape.gradient(value, variable).numpy(), rtol=1e-12, atol=0)
    # the rank matching of a 1-unit output against 1-D labels
    y, q = rng.integers(0, 2, 5), rng.uniform(0.1, 0.9, (5, 1))
    assert BinaryCrossentropy()(y, q) == pytest.approx(
        float(keras.losses.BinaryCrossentropy(dtype="float64")(y, q)), rel=1e-12)
    assert checked == len(CASES) + 2
