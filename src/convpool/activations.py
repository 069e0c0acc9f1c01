"""Activation functions with Keras 3's names and definitions, and their gradients.

Each function takes an array and returns a new one in the input's float dtype
(float32 for integer input); the input is never modified.  The layers use
:func:`get`, whose :class:`Activation` records also carry the gradient:

========== ============================================= ==============================
name        f(x)                                          df/dx (from x and y = f(x))
========== ============================================= ==============================
linear      x                                             1
relu        max(0, x) (NaN stays NaN)                     1 where y > 0, else 0
sigmoid     1 / (1 + exp(-x))                             y (1 - y)
tanh        tanh(x)                                       1 - y**2
softmax     exp(x - max) / sum(exp(x - max)), last axis   y (g - sum(g y)) (a Jacobian)
elu         x if x > 0 else alpha (exp(x) - 1), alpha=1   1 if x > 0 else y + alpha
selu        scale * elu(x, alpha), Keras's constants      scale if x > 0 else y + scale alpha
leaky_relu  x if x > 0 else 0.2 x (Keras 3's slope)       1 if x > 0 else 0.2
gelu        x Phi(x), exact (Keras 3's default)           Phi(x) + x phi(x)
swish/silu  x sigmoid(x)                                  s + x s (1 - s)
========== ============================================= ==============================

``relu`` inside Conv2D, Conv2DTranspose and Dense is fused into the kernel's
store; the others run after the layer's output is written.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._checks import as_array, compute_dtype
from ._kernels import _core
from ._threads import get_num_threads

__all__ = [
    "Activation", "ACTIVATIONS", "get", "serialize", "linear", "relu", "sigmoid", "tanh",
    "softmax", "elu", "selu", "leaky_relu", "gelu", "swish", "silu",
]

#: SELU's constants (Klambauer et al. 2017), as Keras's.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
#: Keras 3's default leaky_relu slope.
LEAKY_SLOPE = 0.2


def _float(x: ArrayLike) -> NDArray[Any]:
    a = as_array(x, "x")
    return np.asarray(a, dtype=compute_dtype(a, "x"))


def _sigmoid64(x: NDArray[Any]) -> NDArray[np.float64]:
    """A sigmoid without overflow warnings: exp of -|x| only."""
    z = np.asarray(x, np.float64)
    e = np.exp(-np.abs(z))
    out: NDArray[np.float64] = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out


def linear(x: ArrayLike) -> NDArray[Any]:
    """The identity (a copy in the float dtype)."""
    return _float(x).copy()


def relu(x: ArrayLike) -> NDArray[Any]:
    """``max(0, x)``; a NaN stays NaN."""
    x = _float(x)
    return np.where(x < 0, x.dtype.type(0), x)


def sigmoid(x: ArrayLike) -> NDArray[Any]:
    """``1 / (1 + exp(-x))``, computed without overflow."""
    x = _float(x)
    return _sigmoid64(x).astype(x.dtype)


def tanh(x: ArrayLike) -> NDArray[Any]:
    """The hyperbolic tangent."""
    out: NDArray[Any] = np.tanh(_float(x))
    return out


def softmax(x: ArrayLike, axis: int = -1) -> NDArray[Any]:
    """``exp(x) / sum(exp(x))`` along ``axis`` (the last by default), shifted by the max."""
    x = _float(x)
    if x.ndim == 0:
        raise ValueError("softmax needs an input of rank >= 1, got a scalar")
    z = np.asarray(x, np.float64)
    with np.errstate(invalid="ignore"):
        e = np.exp(z - z.max(axis=axis, keepdims=True))
        out: NDArray[Any] = (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)
    return out


def elu(x: ArrayLike, alpha: float = 1.0) -> NDArray[Any]:
    """``x`` where x > 0, else ``alpha * (exp(x) - 1)``."""
    x = _float(x)
    z = np.asarray(x, np.float64)
    return np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0))).astype(x.dtype)


def selu(x: ArrayLike) -> NDArray[Any]:
    """``scale * elu(x, alpha)`` with SELU's constants."""
    x = _float(x)
    z = np.asarray(x, np.float64)
    y = SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0)))
    return y.astype(x.dtype)


def leaky_relu(x: ArrayLike, negative_slope: float = LEAKY_SLOPE) -> NDArray[Any]:
    """``x`` where x > 0, else ``negative_slope * x``."""
    x = _float(x)
    return np.where(x > 0, x, x * x.dtype.type(negative_slope))


def _phi(z: NDArray[np.float64]) -> NDArray[np.float64]:
    """The standard normal CDF, ``erfc(-z / sqrt(2)) / 2``, in one compiled pass
    (NumPy has no erf; the C library's erfc keeps Phi's tiny values for very
    negative z, which ``(1 + erf) / 2`` rounds to 0)."""
    flat = np.ascontiguousarray(z, dtype=np.float64).reshape(-1)
    out = np.empty_like(flat)
    _core.normal_cdf(flat, out, get_num_threads())
    return out.reshape(np.shape(z))


def gelu(x: ArrayLike, approximate: bool = False) -> NDArray[Any]:
    """``x * Phi(x)`` (exact, Keras 3's default), or the tanh approximation."""
    x = _float(x)
    z = np.asarray(x, np.float64)
    if approximate:
        y = 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3)))
    else:
        y = z * _phi(z)
    return y.astype(x.dtype)


def swish(x: ArrayLike) -> NDArray[Any]:
    """``x * sigmoid(x)`` (also called silu)."""
    x = _float(x)
    z = np.asarray(x, np.float64)
    return (z * _sigmoid64(z)).astype(x.dtype)


silu = swish


# ------------------------------------------------------------ gradients
# grad(g, x, y) -> dL/dx, with g = dL/dy, x the input and y = f(x); in g's dtype.
def _g_linear(g: NDArray[Any], x: NDArray[Any], y: NDArray[Any]) -> NDArray[Any]:
    return g.copy()


def _g_relu(g: NDArray[Any], x: NDArray[Any], y: NDArray[Any]) -> NDArray[Any]:
    return np.where(y > 0, g, g.dtype.type(0))


def _g_sigmoid(g: NDArray[Any], x: NDArray[Any], y: NDArray[Any]) -> NDArray[Any]:
    out: NDArray[Any] = g * y * (1 - y)
    return out


def _g_tanh(g: NDArray[Any], x: NDArray[Any], y: NDArray[Any]) -> NDArray[Any]:
    out: NDArray[Any] = g * (1 - y * y)
    return out


def _g_softmax(g: NDArray[Any], x: NDArray[Any], y: NDArray[Any]) -> NDArray[Any]:
    g64, y64 = np.asarray(g, np.float64), np.asarray(y, np.float64)
    out: NDArray[Any] = (y64 * (g64 - (g64 * y64).sum(axis=-1, keepdims=True))).astype(g.dtype)
    return out


def _g_elu(g: NDArray[Any], x: NDArray[Any], y: NDArray[Any]) -> NDArray[Any]:
    return np.where(x > 0, g, g * (y + 1))


def _g_selu(g: NDArray[Any], x: NDArray[Any], y: NDArray[Any]) -> NDArray[Any]:
    scale = g.dtype.type(SELU_SCALE)
    out: NDArray[Any] = np.where(x > 0, g * scale, g * (y + scale * g.dtype.type(SELU_ALPHA)))
    return out


def _g_leaky_relu(g: NDArray[Any], x: NDArray[Any], y: NDArray[Any]) -> NDArray[Any]:
    return np.where(x > 0, g, g * g.dtype.type(LEAKY_SLOPE))


def _g_gelu(g: NDArray[Any], x: NDArray[Any], y: NDArray[Any]) -> NDArray[Any]:
    z = np.asarray(x, np.float64)
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return (np.asarray(g, np.float64) * (_phi(z) + z * pdf)).astype(g.dtype)


def _g_swish(g: NDArray[Any], x: NDArray[Any], y: NDArray[Any]) -> NDArray[Any]:
    z = np.asarray(x, np.float64)
    s = _sigmoid64(z)
    return (np.asarray(g, np.float64) * (s + z * s * (1 - s))).astype(g.dtype)


@dataclass(frozen=True)
class Activation:
    """An activation: its Keras name, the function and its gradient.

    Attributes
    ----------
    name : str
    fn : callable
        ``fn(x) -> y``.
    grad : callable
        ``grad(g, x, y) -> dL/dx`` for ``g = dL/dy``.
    needs_input : bool
        Whether ``grad`` reads ``x`` (the layers then keep it for backward);
        otherwise ``y`` is enough.
    """

    name: str
    fn: Callable[[ArrayLike], NDArray[Any]]
    grad: Callable[[NDArray[Any], NDArray[Any], NDArray[Any]], NDArray[Any]]
    needs_input: bool


#: The activations by Keras name ("silu" is swish's other name).
ACTIVATIONS: dict[str, Activation] = {
    a.name: a for a in (
        Activation("linear", linear, _g_linear, False),
        Activation("relu", relu, _g_relu, False),
        Activation("sigmoid", sigmoid, _g_sigmoid, False),
        Activation("tanh", tanh, _g_tanh, False),
        Activation("softmax", softmax, _g_softmax, False),
        Activation("elu", elu, _g_elu, True),
        Activation("selu", selu, _g_selu, True),
        Activation("leaky_relu", leaky_relu, _g_leaky_relu, True),
        Activation("gelu", gelu, _g_gelu, True),
        Activation("swish", swish, _g_swish, True),
    )
}
_ALIASES = {"silu": "swish"}


def get(identifier: object) -> Activation:
    """The :class:`Activation` for a name (any case), one of this module's
    functions, an :class:`Activation`, or None (linear).

    Raises
    ------
    ValueError
        For an unknown name.
    TypeError
        For any other object (a custom callable has no gradient here).
    """
    if identifier is None:
        return ACTIVATIONS["linear"]
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, str):
        name = _ALIASES.get(identifier.lower(), identifier.lower())
        if name in ACTIVATIONS:
            return ACTIVATIONS[name]
        raise ValueError(f"activation must be one of {', '.join(map(repr, sorted(ACTIVATIONS)))}"
                         f" (or 'silu', or None), got {identifier!r}")
    for act in ACTIVATIONS.values():
        if identifier is act.fn:
            return act
    raise TypeError(f"activation must be a name, one of convpool.activations' functions or None,"
                    f" got {identifier!r} (a custom callable has no gradient here)")


def serialize(activation: Activation) -> str:
    """The activation's name (what a layer's config stores)."""
    return activation.name
