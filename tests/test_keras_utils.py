"""to_categorical: values, shapes, the trailing-axis rule, checks, and (where
Keras is importable) the same arrays as keras.utils.to_categorical;
set_random_seed: the draws it makes repeatable, the seeds that still win, its checks."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import convpool.utils
from convpool.layers import Conv2D, Dense, Dropout, Flatten
from convpool.models import Sequential
from convpool.utils import get_random_seed, set_random_seed, to_categorical


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


# ------------------------------------------------------------ set_random_seed
def _draws():
    """Everything a script draws without a seed of its own: two layers' weights,
    a Dropout mask, fit's shuffle (seen in the trained weights) and NumPy's
    legacy global generator."""
    conv, dense = Conv2D(4, 3), Dense(2)
    conv.build((None, 6, 6, 1))
    dense.build((None, 3))
    mask = Dropout(0.5).forward(np.ones((4, 8), np.float32), training=True)
    model = Sequential([Conv2D(2, 3, seed=1), Flatten(), Dense(2, seed=2)],
                       input_shape=(None, 3, 3, 1))
    x = np.arange(8 * 9, dtype=np.float32).reshape(8, 3, 3, 1) / 72
    model.fit(x, np.arange(8) % 2, epochs=1, batch_size=2, verbose=0)
    return [*conv.get_weights(), *dense.get_weights(), mask, *model.get_weights(),
            np.random.random(3)]


def test_set_random_seed_repeats_every_unseeded_draw():
    set_random_seed(3)
    first = _draws()
    assert get_random_seed() == 3
    set_random_seed(3)
    again = _draws()
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    set_random_seed(4)
    other = _draws()
    assert not np.array_equal(first[0], other[0])  # another seed, other weights
    assert not np.array_equal(first[4], other[4])  # and another mask


def test_successive_layers_draw_different_weights_after_set_random_seed():
    set_random_seed(0)
    a, b = Dense(5), Dense(5)
    a.build((None, 5))
    b.build((None, 5))
    assert not np.array_equal(a.get_weights()[0], b.get_weights()[0])


def test_an_explicit_seed_wins_over_set_random_seed():
    def kernel(seed):
        layer = Dense(3, seed=seed)
        layer.build((None, 4))
        return layer.get_weights()[0]

    set_random_seed(11)
    mine = kernel(5)
    set_random_seed(12)
    np.testing.assert_array_equal(kernel(5), mine)


def test_without_set_random_seed_unseeded_layers_differ():
    assert get_random_seed() is None  # the fixture clears it after every test
    a, b = Dense(8), Dense(8)
    a.build((None, 8))
    b.build((None, 8))
    assert not np.array_equal(a.get_weights()[0], b.get_weights()[0])


@pytest.mark.parametrize(
    "seed, exc, pattern",
    [(-1, ValueError, r"seed must be an int in \[0, 2\*\*32\), got -1"),
     (2**32, ValueError, r"seed must be an int in \[0, 2\*\*32\), got 4294967296"),
     (1.5, TypeError, r"seed must be an int in \[0, 2\*\*32\)"),
     (True, TypeError, r"seed must be an int"),
     (None, TypeError, r"seed must be an int")],
    ids=["negative", "too-large", "float", "bool", "none"],
)
def test_set_random_seed_bad_arguments(seed, exc, pattern):
    with pytest.raises(exc, match=pattern):
        set_random_seed(seed)
    assert get_random_seed() is None


def test_set_random_seed_takes_keras_arguments():
    keras = pytest.importorskip("keras")
    import inspect

    assert (list(inspect.signature(set_random_seed).parameters)
            == list(inspect.signature(keras.utils.set_random_seed).parameters))
    import convpool.keras.utils as ku

    assert ku.set_random_seed is set_random_seed and ku.get_random_seed is get_random_seed
