"""Optimizers: update a list of weight arrays in place from their gradients.

Both keep their state (velocities, moments) per position in the list they are
given, so one optimizer serves one model (its ``weights`` order is fixed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Optimizer", "SGD", "Adam"]


def _positive(value: float, name: str) -> float:
    value = float(value)
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def _fraction(value: float, name: str) -> float:
    value = float(value)
    if not 0 <= value < 1:
        raise ValueError(f"{name} must lie in [0, 1), got {value}")
    return value


class Optimizer:
    """Base: ``apply(weights, grads)`` updates every weight array in place."""

    def __init__(self, learning_rate: float) -> None:
        self.learning_rate = _positive(learning_rate, "learning_rate")
        self.iterations = 0
        self._state: list[list[NDArray[Any]]] | None = None

    def apply(self, weights: Iterable[NDArray[Any]], grads: Iterable[NDArray[Any]]) -> None:
        """One step: ``weights[i] -= update(grads[i])``, in place.

        Parameters
        ----------
        weights : list of ndarray
            Updated in place.
        grads : list of ndarray
            Same shapes as ``weights``.
        """
        weights, grads = list(weights), list(grads)
        if len(weights) != len(grads):
            raise ValueError(f"{len(weights)} weight arrays but {len(grads)} gradients")
        for w, g in zip(weights, grads):
            if w.shape != g.shape:
                raise ValueError(f"a gradient of shape {g.shape} for a weight of shape {w.shape}")
        if self._state is None:
            self._state = [self._new_state(w) for w in weights]
        elif [(s[0].shape, s[0].dtype) for s in self._state] != [(w.shape, w.dtype) for w in weights]:
            raise ValueError("this optimizer was used with other weights; make a new one")
        self.iterations += 1
        for w, g, state in zip(weights, grads, self._state):
            self._update(w, g.astype(w.dtype, copy=False), state)

    def _new_state(self, w: NDArray[Any]) -> list[NDArray[Any]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _update(  # pragma: no cover - abstract
        self, w: NDArray[Any], g: NDArray[Any], state: list[NDArray[Any]]
    ) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with (Nesterov) momentum, as Keras.

    ``v = momentum * v - lr * g``; ``w += v`` (or ``w += momentum * v - lr * g``
    with ``nesterov=True``).

    Parameters
    ----------
    learning_rate : float, default 0.01
    momentum : float in [0, 1), default 0
    nesterov : bool, default False
    """

    def __init__(
        self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False
    ) -> None:
        super().__init__(learning_rate)
        self.momentum = _fraction(momentum, "momentum")
        self.nesterov = bool(nesterov)

    def _new_state(self, w: NDArray[Any]) -> list[NDArray[Any]]:
        return [np.zeros_like(w), np.empty_like(w), np.empty_like(w)]  # velocity, 2 scratch

    def _update(self, w: NDArray[Any], g: NDArray[Any], state: list[NDArray[Any]]) -> None:
        v, lr_g, t = state  # every operation in place: no temporaries
        np.multiply(g, self.learning_rate, out=lr_g)
        v *= self.momentum
        v -= lr_g
        if self.nesterov:
            np.multiply(v, self.momentum, out=t)
            t -= lr_g
            w += t
        else:
            w += v


class Adam(Optimizer):
    """Adam (Kingma & Ba), with Keras's defaults.

    ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
    ``w -= lr_t * m / (sqrt(v) + eps)`` with ``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)``.

    Parameters
    ----------
    learning_rate : float, default 0.001
    beta_1, beta_2 : float in [0, 1), default 0.9, 0.999
    epsilon : float, default 1e-7
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
    ) -> None:
        super().__init__(learning_rate)
        self.beta_1 = _fraction(beta_1, "beta_1")
        self.beta_2 = _fraction(beta_2, "beta_2")
        self.epsilon = _positive(epsilon, "epsilon")

    def _new_state(self, w: NDArray[Any]) -> list[NDArray[Any]]:
        return [np.zeros_like(w), np.zeros_like(w), np.empty_like(w), np.empty_like(w)]

    def _update(self, w: NDArray[Any], g: NDArray[Any], state: list[NDArray[Any]]) -> None:
        m, v, a, b = state  # moments, and two scratch arrays: no temporaries
        t = self.iterations
        # Python floats (weak scalars): the arithmetic stays in w's dtype.
        lr_t = float(self.learning_rate * math.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t))
        m *= self.beta_1
        np.multiply(g, 1 - self.beta_1, out=a)
        m += a
        v *= self.beta_2
        np.multiply(g, g, out=a)
        a *= 1 - self.beta_2
        v += a
        np.sqrt(v, out=b)
        b += self.epsilon
        np.multiply(m, lr_t, out=a)
        a /= b
        w -= a
