"""to_categorical: values, shapes, the trailing-axis rule, checks, and (where
Keras is importable) the same arrays as keras.utils.to_categorical."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import convpool.utils
from convpool.utils import to_categorical


def test_one_hot_rows():
    got = to_categorical([2, 0, 1, 2])
    assert got.dtype == np.float32 and got.shape == (4, 3)
    np.testing.assert_array_equal(got, np.eye(3, dtype=np.float32)[[2, 0, 1, 2]])
    np.testing.assert_array_equal(to_categorical([1], num_classes=4), [[0, 1, 0, 0]])


@pytest.mark.parametrize(
    "shape, expected",
    [((5,), (5, 3)), ((5, 1), (5, 3)), ((2, 4), (2, 4, 3)), ((2, 4, 1), (2, 4, 3)),
     ((1,), (1, 3)), ((), (3,)), ((0,), (0, 3))],
    ids=lambda v: "x".join(map(str, v)) or "scalar",
)
def test_shapes(rng, shape, expected):
    x = rng.integers(0, 3, shape)
    got = to_categorical(x, num_classes=3)
    assert got.shape == expected
    squeezed = x[..., 0] if len(shape) > 1 and shape[-1] == 1 else x
    np.testing.assert_array_equal(got.argmax(-1), squeezed)
    assert np.all(got.sum(-1) == 1)


def test_integral_floats_and_unsigned_labels():
    np.testing.assert_array_equal(to_categorical([0.0, 2.0]), to_categorical(np.array([0, 2], np.uint8)))


def test_input_is_not_modified():
    x = np.array([[1], [0], [2]])
    x.flags.writeable = False
    to_categorical(x)
    np.testing.assert_array_equal(x, [[1], [0], [2]])


@pytest.mark.parametrize(
    "x, num_classes, exc, pattern",
    [
        ([0, -1], None, ValueError, r"class indices >= 0, got -1"),
        ([0, 3], 3, ValueError, r"class index 3, out of range for num_classes=3"),
        ([0.5], None, ValueError, r"integral values\), got 0.5"),
        ([np.inf], None, ValueError, r"integral values"),
        ([], None, ValueError, r"x is empty: pass num_classes"),
        ([0], 0, ValueError, r"num_classes must be a positive int or None, got 0"),
        ([0], 2.0, TypeError, r"num_classes must be a positive int or None"),
        (["a"], None, TypeError, r"x must hold class indices"),
        (None, None, TypeError, r"x must be an array"),
    ],
    ids=["negative", "too-high", "fraction", "inf", "empty", "zero-classes", "float-classes",
         "strings", "none"],
)
def test_bad_arguments(x, num_classes, exc, pattern):
    with pytest.raises(exc, match=pattern):
        to_categorical(x, num_classes)


def test_docstring_examples():
    result = doctest.testmod(convpool.utils)
    assert result.attempted >= 2 and result.failed == 0


def test_matches_keras(rng):
    keras = pytest.importorskip("keras")
    for x, k in ((rng.integers(0, 5, 9), None), (rng.integers(0, 5, (9, 1)), 6),
                 (rng.integers(0, 4, (2, 3)), 4), (rng.integers(0, 4, (2, 3, 1)), None),
                 (np.array(2), 3)):
        theirs = keras.utils.to_categorical(x, k)
        ours = to_categorical(x, k)
        assert ours.shape == theirs.shape
        np.testing.assert_array_equal(ours, theirs)
