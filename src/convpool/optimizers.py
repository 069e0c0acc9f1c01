"""Optimizers: update a list of weight arrays in place from their gradients.

Keras 3's update rules and defaults: :class:`SGD` (with momentum and
Nesterov), :class:`Adam`, :class:`RMSprop` and :class:`Adagrad`.  Each keeps
its state (velocities, moments, accumulators) per position in the list it is
given, so one optimizer serves one model (its ``weights`` order is fixed).
The arithmetic runs in each weight's dtype, as Keras casts the learning rate
and the gradient to the variable's dtype.

``learning_rate`` may be changed between steps (``opt.learning_rate = 1e-4``;
:class:`convpool.callbacks.ReduceLROnPlateau` does so).  The legacy ``lr=``
keyword is still accepted, with a DeprecationWarning.

Examples
--------
>>> import numpy as np
>>> from convpool import optimizers
>>> w = np.array([1.0, -2.0])
>>> opt = optimizers.get("rmsprop")
>>> opt.learning_rate
0.001
>>> opt.apply([w], [np.array([0.5, -0.5])])
>>> w.round(6)
array([ 0.996838, -1.996838])
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._checks import check_bool, check_number
from ._threads import get_num_threads

__all__ = ["Optimizer", "SGD", "Adam", "RMSprop", "Adagrad", "get"]


def _positive(value: float, name: str) -> float:
    return check_number(value, name, low=0, low_open=True)


def _fraction(value: float, name: str) -> float:
    return check_number(value, name, low=0, high=1, high_open=True)


def _learning_rate(learning_rate: float | None, lr: float | None, default: float,
                   owner: str) -> float:
    """``learning_rate``, or the legacy ``lr`` (with a DeprecationWarning), or ``default``."""
    if lr is None:
        return default if learning_rate is None else learning_rate
    if learning_rate is not None:
        raise TypeError(f"{owner} got both learning_rate and the legacy lr; pass learning_rate only")
    warnings.warn(f"{owner}: lr is deprecated, use learning_rate", DeprecationWarning,
                  stacklevel=4)
    return lr


class Optimizer:
    """Base: ``apply(weights, grads)`` updates every weight array in place.

    Parameters
    ----------
    learning_rate : float or None
        Positive; None means the class's default (:attr:`default_learning_rate`).
    lr : float, optional
        Legacy name of ``learning_rate`` (a DeprecationWarning; a TypeError
        when both are given).

    Attributes
    ----------
    learning_rate : float
        Settable between steps; must stay positive.
    iterations : int
        The steps taken so far.
    """

    #: The learning rate when none is given (Keras 3's default for the class).
    default_learning_rate = 0.001

    def __init__(self, learning_rate: float | None = None, *, lr: float | None = None) -> None:
        self.learning_rate = _learning_rate(learning_rate, lr, self.default_learning_rate,
                                            type(self).__name__)
        self.iterations = 0
        self._state: list[list[NDArray[Any]]] | None = None

    @property
    def learning_rate(self) -> float:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._learning_rate = _positive(value, "learning_rate")

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
    lr : float, optional
        Legacy name of ``learning_rate`` (deprecated).
    """

    default_learning_rate = 0.01

    def __init__(
        self,
        learning_rate: float | None = None,
        momentum: float = 0.0,
        nesterov: bool = False,
        *,
        lr: float | None = None,
    ) -> None:
        super().__init__(learning_rate, lr=lr)
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
    lr : float, optional
        Legacy name of ``learning_rate`` (deprecated).
    """

    def __init__(
        self,
        learning_rate: float | None = None,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        *,
        lr: float | None = None,
    ) -> None:
        super().__init__(learning_rate, lr=lr)
        self.beta_1 = _fraction(beta_1, "beta_1")
        self.beta_2 = _fraction(beta_2, "beta_2")
        self.epsilon = _positive(epsilon, "epsilon")

    def _new_state(self, w: NDArray[Any]) -> list[NDArray[Any]]:
        return [np.zeros_like(w), np.zeros_like(w), np.empty_like(w), np.empty_like(w)]

    def _update(self, w: NDArray[Any], g: NDArray[Any], state: list[NDArray[Any]]) -> None:
        m, v = state[0], state[1]
        t = self.iterations
        lr_t = float(self.learning_rate * math.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t))
        if (w.dtype in (np.float32, np.float64) and g.dtype == w.dtype
                and all(a.flags.c_contiguous for a in (w, g, m, v))
                and not np.shares_memory(w, g)):
            # One compiled pass, the NumPy code's operations in its order
            # (the same bits; a CIFAR-sized net's 12 weight arrays took 0.8
            # ms a step through NumPy's dozen calls each).
            from ._kernels import _core

            _core.adam_update(w.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                              self.beta_1, 1 - self.beta_1, self.beta_2, 1 - self.beta_2,
                              self.epsilon, lr_t, get_num_threads())
            return
        self._update_numpy(w, g, state, lr_t)

    def _update_numpy(self, w: NDArray[Any], g: NDArray[Any], state: list[NDArray[Any]],
                      lr_t: float) -> None:
        """The step through NumPy (any layout), the compiled pass's reference."""
        m, v, a, b = state  # moments, and two scratch arrays: no temporaries
        # Python floats (weak scalars): the arithmetic stays in w's dtype.
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


class RMSprop(Optimizer):
    """RMSprop, as Keras 3's.

    ``v = rho v + (1 - rho) g^2``; with ``centered``, also
    ``a = rho a + (1 - rho) g`` and the denominator ``sqrt(v - a^2 + eps)``,
    else ``sqrt(v + eps)``; ``step = lr g / denominator``; with momentum,
    ``m = momentum m + step`` and ``w -= m``, else ``w -= step``.  (The
    epsilon is inside the square root, as in Keras.)

    Parameters
    ----------
    learning_rate : float, default 0.001
    rho : float in [0, 1), default 0.9
    momentum : float in [0, 1), default 0
    epsilon : float, default 1e-7
    centered : bool, default False
    lr : float, optional
        Legacy name of ``learning_rate`` (deprecated).
    """

    def __init__(
        self,
        learning_rate: float | None = None,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        *,
        lr: float | None = None,
    ) -> None:
        super().__init__(learning_rate, lr=lr)
        self.rho = _fraction(rho, "rho")
        self.momentum = _fraction(momentum, "momentum")
        self.epsilon = _positive(epsilon, "epsilon")
        self.centered = check_bool(centered, "centered")

    def _new_state(self, w: NDArray[Any]) -> list[NDArray[Any]]:
        # velocity, momentum, average gradient, two scratch arrays
        return [np.zeros_like(w), np.zeros_like(w), np.zeros_like(w),
                np.empty_like(w), np.empty_like(w)]

    def _update(self, w: NDArray[Any], g: NDArray[Any], state: list[NDArray[Any]]) -> None:
        v, m, avg, a, b = state  # every operation in place: no temporaries
        rho = self.rho
        v *= rho
        np.multiply(g, g, out=a)
        a *= 1 - rho
        v += a
        if self.centered:
            avg *= rho
            np.multiply(g, 1 - rho, out=a)
            avg += a
            np.multiply(avg, avg, out=a)
            np.subtract(v, a, out=b)
            b += self.epsilon
        else:
            np.add(v, self.epsilon, out=b)
        np.sqrt(b, out=b)
        np.multiply(g, self.learning_rate, out=a)
        a /= b
        if self.momentum > 0:
            m *= self.momentum
            m += a
            w -= m
        else:
            w -= a


class Adagrad(Optimizer):
    """Adagrad, as Keras 3's.

    ``acc += g^2`` (``acc`` starts at ``initial_accumulator_value``);
    ``w -= lr g / sqrt(acc + eps)``.

    Parameters
    ----------
    learning_rate : float, default 0.001
    initial_accumulator_value : float >= 0, default 0.1
    epsilon : float, default 1e-7
    lr : float, optional
        Legacy name of ``learning_rate`` (deprecated).
    """

    def __init__(
        self,
        learning_rate: float | None = None,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        *,
        lr: float | None = None,
    ) -> None:
        super().__init__(learning_rate, lr=lr)
        value = float(initial_accumulator_value)
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"initial_accumulator_value must be >= 0 and finite, got {value}")
        self.initial_accumulator_value = value
        self.epsilon = _positive(epsilon, "epsilon")

    def _new_state(self, w: NDArray[Any]) -> list[NDArray[Any]]:
        return [np.full_like(w, self.initial_accumulator_value), np.empty_like(w),
                np.empty_like(w)]  # accumulator, two scratch arrays

    def _update(self, w: NDArray[Any], g: NDArray[Any], state: list[NDArray[Any]]) -> None:
        acc, a, b = state
        np.multiply(g, g, out=a)
        acc += a
        np.add(acc, self.epsilon, out=b)
        np.sqrt(b, out=b)
        np.multiply(g, self.learning_rate, out=a)
        a /= b
        w -= a


_OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD, "adam": Adam, "rmsprop": RMSprop, "adagrad": Adagrad,
}


def get(identifier: str | Optimizer) -> Optimizer:
    """An optimizer from a name or an instance, as ``keras.optimizers.get``.

    Parameters
    ----------
    identifier : str or Optimizer
        "sgd", "adam", "rmsprop" or "adagrad" (any case), or an instance.

    Returns
    -------
    Optimizer
        For a name, a new instance with Keras 3's defaults (SGD: learning
        rate 0.01; Adam, RMSprop, Adagrad: 0.001); an instance as given.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    TypeError
        For anything else.
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _OPTIMIZERS.get(identifier.lower())
        if cls is None:
            raise ValueError(
                f"unknown optimizer {identifier!r}; known names: {', '.join(_OPTIMIZERS)}"
            )
        return cls()
    raise TypeError(
        f"optimizer must be a name or a convpool Optimizer, got {type(identifier).__name__}"
    )
