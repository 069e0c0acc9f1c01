"""Keras-style metrics: per-sample values, the resolution of "accuracy" by Keras 3's
rule, named metrics and callables, argument checks, and (where Keras is
importable) the same values and choices as Keras 3."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import convpool.metrics
from convpool import losses, metrics
from convpool.metrics import (
    binary_accuracy,
    categorical_accuracy,
    sparse_categorical_accuracy,
)


def _frozen(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


# ------------------------------------------------------------------ functions
def test_binary_accuracy_is_elementwise():
    t = np.array([[1, 0], [0, 1], [1, 1]])
    p = np.array([[0.7, 0.2], [0.5, 0.9], [0.4, 0.51]])
    got = binary_accuracy(t, p)
    assert got.dtype == np.float32 and got.shape == (3, 2)
    np.testing.assert_array_equal(got, [[1, 1], [1, 1], [0, 1]])  # 0.5 is not > 0.5
    np.testing.assert_array_equal(binary_accuracy(t, p, threshold=0.45), [[1, 1], [0, 1], [0, 1]])
    # (N,) labels against a (N, 1) output: Keras's rank matching
    np.testing.assert_array_equal(binary_accuracy([1, 0, 1], [[0.9], [0.1], [0.2]]),
                                  [[1], [1], [0]])


def test_categorical_accuracy_compares_argmaxes(rng):
    t = np.eye(4)[rng.integers(0, 4, 10)]
    p = rng.normal(size=(10, 4))
    got = categorical_accuracy(t, p)
    assert got.dtype == np.float32 and got.shape == (10,)
    np.testing.assert_array_equal(got, (t.argmax(1) == p.argmax(1)).astype(np.float32))
    p3 = rng.normal(size=(2, 3, 4))
    t3 = np.eye(4)[rng.integers(0, 4, (2, 3))]
    assert categorical_accuracy(t3, p3).shape == (2, 3)


def test_sparse_categorical_accuracy(rng):
    y = rng.integers(0, 5, 12)
    p = rng.normal(size=(12, 5))
    expected = (p.argmax(1) == y).astype(np.float32)
    np.testing.assert_array_equal(sparse_categorical_accuracy(y, p), expected)
    np.testing.assert_array_equal(sparse_categorical_accuracy(y[:, None], p), expected)
    np.testing.assert_array_equal(sparse_categorical_accuracy(y.astype(float), p), expected)
    # a label out of range never matches (no error, as in Keras)
    assert sparse_categorical_accuracy([7], [[0.1, 0.9]]).tolist() == [0.0]


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda: categorical_accuracy([0, 1], np.eye(2)), ValueError,
         r"y_true shape \(2,\), y_pred shape \(2, 2\).*sparse_categorical_accuracy"),
        (lambda: sparse_categorical_accuracy([0, 1, 1], np.eye(2)), ValueError,
         r"without its last \(class\) axis, \(2,\)"),
        (lambda: sparse_categorical_accuracy([0], np.zeros((1, 0))), ValueError, r"K >= 1"),
        (lambda: binary_accuracy(np.ones((2, 2)), np.ones((2, 3))), ValueError,
         r"same shape, got y_true shape \(2, 2\), y_pred shape \(2, 3\)"),
        (lambda: binary_accuracy([1], [0.5], threshold="0.5"), TypeError, r"threshold"),
        (lambda: categorical_accuracy(["a"], [1.0]), TypeError, r"y_true must hold numbers"),
        (lambda: metrics.get("f1"), ValueError, r"unknown metric 'f1'.*accuracy.*mae"),
        (lambda: metrics.get(3), TypeError, r"name or a callable, got int"),
    ],
    ids=["cat-sparse-labels", "sparse-shape", "sparse-no-class", "binary-shape", "threshold",
         "strings", "unknown", "type"],
)
def test_bad_arguments(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_inputs_are_never_modified(rng):
    y = _frozen(rng.integers(0, 3, (6, 1)))
    t = _frozen(np.eye(3)[rng.integers(0, 3, 6)])
    p = _frozen(rng.uniform(size=(6, 3)))
    y0, t0, p0 = y.copy(), t.copy(), p.copy()
    sparse_categorical_accuracy(y, p)
    categorical_accuracy(t, p)
    binary_accuracy(t, p)
    for name in ("accuracy", "mse", "sparse_categorical_crossentropy"):
        metrics.get(name)[1](y if "sparse" in name else t, p)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(t, t0)
    np.testing.assert_array_equal(p, p0)


# ------------------------------------------------------------------------ get
def test_accuracy_follows_keras3s_shape_rule(rng):
    p1 = rng.uniform(size=(8, 1))
    y1 = rng.integers(0, 2, 8)
    p3 = rng.normal(size=(8, 3))
    y3 = rng.integers(0, 3, 8)
    t3 = np.eye(3)[y3]
    name, fn = metrics.get("accuracy")
    assert name == "accuracy"
    assert fn(y1, p1) == pytest.approx(binary_accuracy(y1, p1).mean())
    assert fn(y3, p3) == pytest.approx(sparse_categorical_accuracy(y3, p3).mean())
    assert fn(y3[:, None], p3) == pytest.approx(sparse_categorical_accuracy(y3, p3).mean())
    assert fn(t3, p3) == pytest.approx(categorical_accuracy(t3, p3).mean())
    # Keras 3 does not look at the loss: binary_crossentropy on 2 outputs -> categorical
    t2 = rng.integers(0, 2, (8, 2)).astype(float)
    p2 = rng.uniform(size=(8, 2))
    _, fn = metrics.get("accuracy", loss="binary_crossentropy", output_shape=(None, 2))
    assert fn(t2, p2) == pytest.approx(categorical_accuracy(t2, p2).mean())


def test_accuracy_settled_in_advance_by_the_output_shape_or_the_loss(rng):
    name, fn = metrics.get("acc", output_shape=(None, 1))
    assert name == "acc" and fn.__name__ == "binary_accuracy"
    for loss in ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy()):
        assert metrics.get("Accuracy", loss=loss)[1].__name__ == "sparse_categorical_accuracy"
    assert metrics.get("accuracy", loss="categorical_crossentropy")[1].__name__ == "accuracy"
    assert metrics.get("accuracy", loss="no such loss")[1].__name__ == "accuracy"


def test_named_metrics_and_callables(rng):
    t = rng.normal(size=(5, 3))
    p = rng.normal(size=(5, 3))
    for name, ref in (("mse", ((p - t) ** 2).mean()), ("mean_squared_error", ((p - t) ** 2).mean()),
                      ("mae", np.abs(p - t).mean()), ("MAE", np.abs(p - t).mean())):
        got_name, fn = metrics.get(name)
        assert got_name == name and fn(t, p) == pytest.approx(ref, rel=1e-12)
    assert metrics.get("binary_accuracy")[1]([[1.0]], [[0.7]]) == 1.0

    def hits(y_true, y_pred):
        return np.asarray(y_true) == np.asarray(y_pred)

    name, fn = metrics.get(hits)
    assert name == "hits" and fn([1, 2, 3, 4], [1, 2, 0, 0]) == 0.5
    name, fn = metrics.get(losses.MeanSquaredError())
    assert name == "mean_squared_error" and fn(t, p) == pytest.approx(((p - t) ** 2).mean())
    assert metrics.get("accuracy")[1](np.zeros(0, int), np.zeros((0, 3))) == 0.0


def test_docstring_examples():
    result = doctest.testmod(convpool.metrics)
    assert result.attempted > 2 and result.failed == 0


# ----------------------------------------------------- cross-check with Keras
def test_matches_keras(rng):
    keras = pytest.importorskip("keras")
    t = np.eye(4)[rng.integers(0, 4, 16)].astype(np.float32)
    y = rng.integers(0, 4, 16)
    p = rng.uniform(size=(16, 4)).astype(np.float32)
    b = rng.integers(0, 2, (16, 4)).astype(np.float32)
    np.testing.assert_array_equal(categorical_accuracy(t, p),
                                  np.asarray(keras.metrics.categorical_accuracy(t, p)))
    np.testing.assert_array_equal(sparse_categorical_accuracy(y, p),
                                  np.asarray(keras.metrics.sparse_categorical_accuracy(y, p)))
    np.testing.assert_array_equal(
        sparse_categorical_accuracy(y[:, None], p),
        np.asarray(keras.metrics.sparse_categorical_accuracy(y[:, None], p)))
    np.testing.assert_array_equal(binary_accuracy(b, p, threshold=0.3),
                                  np.asarray(keras.metrics.binary_accuracy(b, p, threshold=0.3)))
    np.testing.assert_array_equal(
        binary_accuracy(b[:, 0], p[:, :1]),
        np.asarray(keras.metrics.binary_accuracy(b[:, 0], p[:, :1])))

    # the metric compile chooses for "accuracy", per output and label shape
    from keras.src.trainers import compile_utils

    cases = [(b[:, :1], p[:, :1]), (b[:, 0], p[:, :1]), (y, p), (y[:, None], p), (t, p), (b, p)]
    ours = {"binary_accuracy": "BinaryAccuracy", "sparse_categorical_accuracy":
            "SparseCategoricalAccuracy", "categorical_accuracy": "CategoricalAccuracy"}
    for y_true, y_pred in cases:
        theirs = compile_utils.get_metric("accuracy", y_true, y_pred)
        theirs.update_state(y_true, y_pred)
        _, fn = metrics.get("accuracy")
        assert fn(y_true, y_pred) == pytest.approx(float(theirs.result()), abs=1e-7)
        chosen = metrics._accuracy_for(np.asarray(y_true), np.asarray(y_pred))
        assert ours[chosen.__name__] == type(theirs).__name__, (y_true.shape, y_pred.shape)
