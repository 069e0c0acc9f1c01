"""``keras.activations``: :mod:`convpool.activations`'s functions."""

from ..activations import (
    elu,
    gelu,
    get,
    leaky_relu,
    linear,
    relu,
    selu,
    serialize,
    sigmoid,
    silu,
    softmax,
    swish,
    tanh,
)

__all__ = ["elu", "gelu", "get", "leaky_relu", "linear", "relu", "selu", "serialize", "sigmoid",
           "silu", "softmax", "swish", "tanh"]
