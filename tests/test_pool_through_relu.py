"""max_pool2d_backward(..., through_relu=True): the pool's gradient and the
ReLU's before it in one pass, the same bits as the two steps; and
Sequential.backward pairing a max pool with the fused ReLU before it."""

import numpy as np
import pytest

import convpool
from convpool.layers import Conv2D, Dense, Flatten, MaxPool2D
from convpool.models import Sequential


def _relu_output(rng, shape, dtype):
    """A ReLU's output with ties at 0, a NaN and an inf."""
    x = np.maximum(rng.standard_normal(shape), 0).astype(dtype)
    x.reshape(-1)[:: 7] = 0
    x.reshape(-1)[3] = np.nan
    x.reshape(-1)[11] = np.inf
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [1, 3, 4, 5, 16, 21])
@pytest.mark.parametrize("pool, strides, padding, dilation", [
    (2, None, "valid", 1),     # windows that tile the input (the vector run)
    (3, 2, "same", 1),         # overlapping windows, padded
    ((2, 3), (1, 2), "valid", 1),
    (2, 1, "valid", 2),        # dilated (NumPy's winners)
])
def test_through_relu_is_relu_grad_of_the_pool_gradient_bitwise(rng, isa, dtype, c, pool,
                                                                  strides, padding, dilation):
    x = _relu_output(rng, (2, 9, 10, c), dtype)
    y = convpool.max_pool2d(x, pool, strides, padding, dilation_rate=dilation)
    g = rng.standard_normal(y.shape).astype(dtype)
    g.reshape(-1)[5] = np.nan
    kw = dict(dilation_rate=dilation)
    plain = convpool.max_pool2d_backward(g, x, pool, strides, padding, **kw)
    want = np.where(x > 0, plain, 0).astype(dtype)
    got = convpool.max_pool2d_backward(g, x, pool, strides, padding, through_relu=True, **kw)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
    assert (got[~(x > 0)] == 0).all()


def test_through_relu_channels_first(rng):
    x = _relu_output(rng, (2, 8, 8, 5), np.float32)
    g = rng.standard_normal((2, 4, 4, 5)).astype(np.float32)
    want = convpool.max_pool2d_backward(g, x, 2, through_relu=True)
    got = convpool.max_pool2d_backward(g.transpose(0, 3, 1, 2), x.transpose(0, 3, 1, 2), 2,
                                       data_format="channels_first", through_relu=True)
    np.testing.assert_array_equal(got.transpose(0, 2, 3, 1), want)


def test_through_relu_rejects_a_non_bool(rng):
    x = np.ones((1, 4, 4, 1), np.float32)
    with pytest.raises(TypeError, match="through_relu"):
        convpool.max_pool2d_backward(np.ones((1, 2, 2, 1), np.float32), x, 2, through_relu=1)


def _assert_backward_is_layer_by_layer(model, x, g):
    """model.backward's weight gradients against every layer's own backward,
    last to first, bit for bit; returns the former."""
    model.forward(x, training=True)
    model.backward(g)
    fused = [np.copy(w) for w in model.grads]
    model.forward(x, training=True)
    grad = g
    for i in range(len(model.layers) - 1, -1, -1):
        grad = model.layers[i].backward(grad, input_grad=i > 0)
    for a, b in zip(fused, model.grads):
        np.testing.assert_array_equal(a, b)
    return fused


def _net(dtype):
    return Sequential([Conv2D(6, 3, padding="same", activation="relu", seed=1, dtype=dtype),
                       MaxPool2D(2),
                       Conv2D(8, 3, activation="relu", seed=2, dtype=dtype),
                       MaxPool2D(2),
                       Flatten(),
                       Dense(12, activation="relu", seed=3, dtype=dtype),
                       Dense(4, seed=4, dtype=dtype)], input_shape=(None, 12, 12, 3))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sequential_backward_pairs_pools_with_relus_bitwise(rng, dtype):
    """Sequential.backward (the pools taking the gradient through the ReLUs
    before them) gives the bits of every layer's own backward, last to first."""
    x = rng.standard_normal((5, 12, 12, 3)).astype(dtype)
    g = rng.standard_normal((5, 4)).astype(dtype)
    fused = _assert_backward_is_layer_by_layer(_net(dtype), x, g)
    assert any(np.any(w != 0) for w in fused)


def test_a_max_pool_after_a_linear_layer_is_not_paired(rng):
    model = Sequential([Conv2D(4, 3, seed=1), MaxPool2D(2), Flatten(), Dense(3, seed=2)],
                       input_shape=(None, 8, 8, 2))
    x = rng.standard_normal((2, 8, 8, 2)).astype(np.float32)
    g = rng.standard_normal((2, 3)).astype(np.float32)
    _assert_backward_is_layer_by_layer(model, x, g)
