"""Weight initializers with Keras 3's names, classes, defaults and fan rule.

Each initializer is a small callable object, ``init(shape, dtype=None,
rng=None)``, returning a new array of ``shape`` (float32 by default, as Keras's
floatx).  The random ones draw from ``rng``, a :class:`numpy.random.Generator`
(the layers pass one seeded by their ``seed``), unless they were given a
``seed`` of their own, which then wins: an initializer seeded with an int
returns the same values at every call, as Keras's.  Without either, a fresh
generator is seeded from the operating system.

============================ ======================================================
name (class)                 values
============================ ======================================================
zeros (Zeros)                0
ones (Ones)                  1
constant (Constant)          ``value``
identity (Identity)          ``gain * eye`` (2-D shapes only)
random_normal (RandomNormal) normal(mean, stddev), default (0, 0.05)
random_uniform               uniform[minval, maxval), default [-0.05, 0.05)
truncated_normal             normal(mean, stddev) with values beyond 2 stddev redrawn
variance_scaling             ``scale / n`` variance, n from ``mode``'s fan (below)
glorot_uniform, glorot_normal   variance scaling: scale 1, fan_avg
he_uniform, he_normal           scale 2, fan_in
lecun_uniform, lecun_normal     scale 1, fan_in
orthogonal (Orthogonal)      ``gain * Q`` of a normal matrix's QR, signs fixed by R
============================ ======================================================

Variance scaling, as Keras's: ``n = max(1, fan)`` (fan_avg: the mean of fan_in
and fan_out); "uniform" draws from ``[-limit, limit]`` with ``limit =
sqrt(3 * scale / n)``; "truncated_normal" (the *_normal names) from a normal
truncated at two standard deviations with ``stddev = sqrt(scale / n) /
0.87962566103423978`` (the truncation's own standard deviation, so that the
values have variance ``scale / n``); "untruncated_normal" with ``stddev =
sqrt(scale / n)``.

Fans (:func:`compute_fans`), Keras's rule on the weight's shape in Keras's
layout: a vector has ``fan_in = fan_out = size``; a matrix ``(d_in, d_out)``;
a kernel ``(*receptive_field, in, out)`` has ``fan_in = prod(receptive_field)
* in`` and ``fan_out = prod(receptive_field) * out`` (Conv2D's ``(KH, KW,
C_in // groups, filters)``, Conv2DTranspose's ``(KH, KW, filters, C_in)``,
DepthwiseConv2D's ``(KH, KW, C, depth_multiplier)``).

:func:`get` resolves what a layer's ``kernel_initializer=`` takes: a name
(Keras's CamelCase class names, their snake_case names and Keras's aliases
"normal", "uniform", "one", "zero"), an instance, a class, a Keras-style dict
``{"class_name": "GlorotUniform", "config": {...}}`` or a callable
``fn(shape, dtype=None)``.  :func:`serialize` writes that dict.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
from numpy.typing import DTypeLike, NDArray

from . import _random
from ._checks import check_int, check_number

__all__ = [
    "Initializer", "Zeros", "Ones", "Constant", "Identity", "RandomNormal", "RandomUniform",
    "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeNormal",
    "HeUniform", "LecunNormal", "LecunUniform", "Orthogonal", "INITIALIZERS", "compute_fans",
    "get", "serialize", "deserialize",
    "zeros", "ones", "constant", "identity", "random_normal", "random_uniform",
    "truncated_normal", "variance_scaling", "glorot_uniform", "glorot_normal", "he_normal",
    "he_uniform", "lecun_normal", "lecun_uniform", "orthogonal",
]

#: The standard deviation of a standard normal truncated to [-2, 2] (Keras's constant).
TRUNCATION_STDDEV = 0.87962566103423978


# ------------------------------------------------------------------ argument checks
def _as_shape(shape: object) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) and d >= 0
            for d in shape):
        raise TypeError(f"shape must be a tuple of non-negative ints, got {shape!r}")
    return tuple(int(d) for d in shape)


def _as_dtype(dtype: DTypeLike | None) -> np.dtype[np.floating[Any]]:
    if dtype is None:
        return np.dtype(np.float32)
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32, float64 or None, got {dtype!r}") from None
    if resolved not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32, float64 or None, got {dtype!r}")
    return cast("np.dtype[np.floating[Any]]", resolved)  # float32 or float64, checked above


def _check_seed(seed: object) -> int | None:
    if seed is None:
        return None
    return check_int(seed, "seed", minimum=0, requirement="a non-negative int or None")


def _check_axes(axes: object, name: str) -> tuple[int, ...] | None:
    if axes is None:
        return None
    if not isinstance(axes, (tuple, list)):
        raise TypeError(f"{name} must be a list of ints or None, got {axes!r}")
    return tuple(check_int(a, name, minimum=None) for a in axes)


def compute_fans(shape: Sequence[int], input_axes: Sequence[int] | None = None,
                 output_axes: Sequence[int] | None = None) -> tuple[int, int]:
    """Keras's ``(fan_in, fan_out)`` of a weight of ``shape`` (see the module docstring).

    Parameters
    ----------
    shape : tuple of int
    input_axes, output_axes : list of int, optional
        Both given: the fans are the products of these axes' sizes instead.

    Returns
    -------
    (int, int)

    Examples
    --------
    >>> compute_fans((3, 2, 4, 8))      # a 3x2 Conv2D kernel, 4 channels in, 8 out
    (24, 48)
    >>> compute_fans((5, 7)), compute_fans((6,))
    ((5, 7), (6, 6))
    """
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return (math.prod(shape[a] for a in input_axes),
                math.prod(shape[a] for a in output_axes))
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _truncated_standard_normal(rng: np.random.Generator, shape: tuple[int, ...]
                               ) -> NDArray[np.float64]:
    """Standard normal values, each beyond +-2 redrawn until it lies within."""
    z = rng.standard_normal(shape)
    outside = np.abs(z) > 2.0
    while outside.any():
        z[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(z) > 2.0
    return z


# ------------------------------------------------------------------ the classes
class Initializer:
    """Base of the initializers: ``init(shape, dtype=None, rng=None) -> ndarray``.

    Subclasses implement ``_draw(shape, dtype, rng)`` and ``get_config()``
    (their constructor's arguments, JSON-friendly).
    """

    def __call__(self, shape: Sequence[int], dtype: DTypeLike | None = None,
                 rng: np.random.Generator | None = None) -> NDArray[Any]:
        """A new array of ``shape`` and ``dtype``.

        Parameters
        ----------
        shape : tuple of int
            In Keras's layout (the fans are read from it).
        dtype : {None, "float32", "float64"}
            None is float32 (Keras's floatx).
        rng : numpy.random.Generator, optional
            What the random initializers draw from when they have no seed of
            their own.

        Returns
        -------
        ndarray of shape ``shape``
        """
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator or None, got {rng!r}")
        return self._draw(_as_shape(shape), _as_dtype(dtype), rng)

    def _draw(self, shape: tuple[int, ...], dtype: np.dtype[np.floating[Any]],
              rng: np.random.Generator | None) -> NDArray[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this initializer (JSON-friendly)."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Initializer:
        """A new initializer from :meth:`get_config`'s output."""
        return cls(**config)

    def clone(self) -> Initializer:
        """A new initializer of the same class and config."""
        return type(self).from_config(self.get_config())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    """All zeros."""

    def _draw(self, shape: tuple[int, ...], dtype: np.dtype[np.floating[Any]],
              rng: np.random.Generator | None) -> NDArray[Any]:
        return np.zeros(shape, dtype)


class Ones(Initializer):
    """All ones."""

    def _draw(self, shape: tuple[int, ...], dtype: np.dtype[np.floating[Any]],
              rng: np.random.Generator | None) -> NDArray[Any]:
        return np.ones(shape, dtype)


class Constant(Initializer):
    """Every value ``value`` (a real number).

    Examples
    --------
    >>> Constant(0.5)((2,))
    array([0.5, 0.5], dtype=float32)
    """

    def __init__(self, value: float = 0.0) -> None:
        self.value = check_number(value, "value")

    def _draw(self, shape: tuple[int, ...], dtype: np.dtype[np.floating[Any]],
              rng: np.random.Generator | None) -> NDArray[Any]:
        return np.full(shape, self.value, dtype)

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value}


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only; a rectangle's
    leading diagonal)."""

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = check_number(gain, "gain")

    def _draw(self, shape: tuple[int, ...], dtype: np.dtype[np.floating[Any]],
              rng: np.random.Generator | None) -> NDArray[Any]:
        if len(shape) != 2:
            raise ValueError(f"the Identity initializer makes 2-D matrices only, got shape "
                             f"{shape}")
        return (self.gain * np.eye(*shape)).astype(dtype)

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain}


class _Random(Initializer):
    """Common part of the random initializers: the optional seed."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = _check_seed(seed)

    def _generator(self, rng: np.random.Generator | None) -> np.random.Generator:
        if self.seed is not None:
            return np.random.default_rng(self.seed)
        return rng if rng is not None else _random.generator(None)

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}


class RandomNormal(_Random):
    """Normal values of mean ``mean`` and standard deviation ``stddev``.

    Parameters
    ----------
    mean : float, default 0.0
    stddev : float, default 0.05
    seed : int, optional
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        self.mean = check_number(mean, "mean")
        self.stddev = check_number(stddev, "stddev", low=0)
        super().__init__(seed)

    def _draw(self, shape: tuple[int, ...], dtype: np.dtype[np.floating[Any]],
              rng: np.random.Generator | None) -> NDArray[Any]:
        return self._generator(rng).normal(self.mean, self.stddev, size=shape).astype(dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(_Random):
    """Normal values of mean ``mean`` and standard deviation ``stddev``,
    those more than two standard deviations from the mean redrawn (Keras's
    and TensorFlow's truncated normal).

    Parameters
    ----------
    mean : float, default 0.0
    stddev : float, default 0.05
        Of the normal before truncation (the values' own is ``0.8796 * stddev``).
    seed : int, optional
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        self.mean = check_number(mean, "mean")
        self.stddev = check_number(stddev, "stddev", low=0)
        super().__init__(seed)

    def _draw(self, shape: tuple[int, ...], dtype: np.dtype[np.floating[Any]],
              rng: np.random.Generator | None) -> NDArray[Any]:
        z = _truncated_standard_normal(self._generator(rng), shape)
        return (self.mean + self.stddev * z).astype(dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class RandomUniform(_Random):
    """Uniform values in ``[minval, maxval)``.

    Parameters
    ----------
    minval : float, default -0.05
    maxval : float, default 0.05
    seed : int, optional
    """

    def __init__(self, minval: float = -0.05, maxval: float = 0.05,
                 seed: int | None = None) -> None:
        self.minval = check_number(minval, "minval")
        self.maxval = check_number(maxval, "maxval")
        if self.minval > self.maxval:
            raise ValueError(f"minval must not exceed maxval, got minval={minval!r}, "
                             f"maxval={maxval!r}")
        super().__init__(seed)

    def _draw(self, shape: tuple[int, ...], dtype: np.dtype[np.floating[Any]],
              rng: np.random.Generator | None) -> NDArray[Any]:
        return self._generator(rng).uniform(self.minval, self.maxval, size=shape).astype(dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")


class VarianceScaling(_Random):
    """Values of variance ``scale / n``, n from the weight's fans (Keras's
    VarianceScaling; see the module docstring).

    Parameters
    ----------
    scale : float, default 1.0
        Positive.
    mode : {"fan_in", "fan_out", "fan_avg"}
    distribution : {"truncated_normal", "untruncated_normal", "uniform"}
        "normal" is "truncated_normal" (Keras's alias); any case.
    seed : int, optional
    input_axes, output_axes : list of int, optional
        Both given: the fans are the products of these axes' sizes.
    """

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: int | None = None,
                 input_axes: Sequence[int] | None = None,
                 output_axes: Sequence[int] | None = None) -> None:
        self.scale = check_number(scale, "scale", low=0, low_open=True)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, _MODES))}, got {mode!r}")
        if not isinstance(distribution, str):
            raise TypeError(f"distribution must be a string, got {distribution!r}")
        dist = distribution.lower()
        dist = "truncated_normal" if dist == "normal" else dist
        if dist not in _DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {', '.join(map(repr, _DISTRIBUTIONS))}"
                             f" (or 'normal'), got {distribution!r}")
        self.mode = mode
        self.distribution = dist
        self.input_axes = _check_axes(input_axes, "input_axes")
        self.output_axes = _check_axes(output_axes, "output_axes")
        super().__init__(seed)

    def _draw(self, shape: tuple[int, ...], dtype: np.dtype[np.floating[Any]],
              rng: np.random.Generator | None) -> NDArray[Any]:
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        n = {"fan_in": max(1.0, fan_in), "fan_out": max(1.0, fan_out),
             "fan_avg": max(1.0, (fan_in + fan_out) / 2.0)}[self.mode]
        gen = self._generator(rng)
        if self.distribution == "uniform":
            # One rounding of sqrt(3 * scale / n): for Glorot, sqrt(6 / (fan_in +
            # fan_out)) to the bit, the limit convpool's layers always drew with.
            limit = math.sqrt(3.0 * self.scale / n)
            return gen.uniform(-limit, limit, size=shape).astype(dtype)
        if self.distribution == "untruncated_normal":
            return gen.normal(0.0, math.sqrt(self.scale / n), size=shape).astype(dtype)
        stddev = math.sqrt(self.scale / n) / TRUNCATION_STDDEV
        return (stddev * _truncated_standard_normal(gen, shape)).astype(dtype)

    def _axes_config(self) -> dict[str, Any]:
        return {"input_axes": None if self.input_axes is None else list(self.input_axes),
                "output_axes": None if self.output_axes is None else list(self.output_axes)}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale, "mode": self.mode,
                "distribution": self.distribution, **self._axes_config()}


class _Preset(VarianceScaling):
    """A variance scaling of fixed scale, mode and distribution (Glorot, He, LeCun)."""

    _preset: tuple[float, str, str]

    def __init__(self, seed: int | None = None, input_axes: Sequence[int] | None = None,
                 output_axes: Sequence[int] | None = None) -> None:
        scale, mode, distribution = self._preset
        super().__init__(scale, mode, distribution, seed, input_axes, output_axes)

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed, **self._axes_config()}


class GlorotUniform(_Preset):
    """Uniform in ``[-limit, limit]``, ``limit = sqrt(6 / (fan_in + fan_out))``
    (Glorot & Bengio 2010); the layers' default kernel initializer.

    Examples
    --------
    >>> w = GlorotUniform(seed=0)((3, 3, 4, 8))       # fans 36 and 72
    >>> bool(abs(w).max() <= (6 / (36 + 72)) ** 0.5)
    True
    """

    _preset = (1.0, "fan_avg", "uniform")


class GlorotNormal(_Preset):
    """Truncated normal of variance ``2 / (fan_in + fan_out)``."""

    _preset = (1.0, "fan_avg", "truncated_normal")


class HeNormal(_Preset):
    """Truncated normal of variance ``2 / fan_in`` (He et al. 2015)."""

    _preset = (2.0, "fan_in", "truncated_normal")


class HeUniform(_Preset):
    """Uniform in ``[-limit, limit]``, ``limit = sqrt(6 / fan_in)``."""

    _preset = (2.0, "fan_in", "uniform")


class LecunNormal(_Preset):
    """Truncated normal of variance ``1 / fan_in`` (LeCun et al. 1998)."""

    _preset = (1.0, "fan_in", "truncated_normal")


class LecunUniform(_Preset):
    """Uniform in ``[-limit, limit]``, ``limit = sqrt(3 / fan_in)``."""

    _preset = (1.0, "fan_in", "uniform")


class Orthogonal(_Random):
    """``gain`` times an orthogonal matrix (Saxe et al. 2014), as Keras's: the
    shape's leading axes flattened to rows against its last axis, Q of the QR
    factorisation of a normal matrix, each column's sign taken from R's
    diagonal; the rows orthonormal when there are fewer rows than columns.

    Parameters
    ----------
    gain : float, default 1.0
    seed : int, optional
    """

    def __init__(self, gain: float = 1.0, seed: int | None = None) -> None:
        self.gain = check_number(gain, "gain")
        super().__init__(seed)

    def _draw(self, shape: tuple[int, ...], dtype: np.dtype[np.floating[Any]],
              rng: np.random.Generator | None) -> NDArray[Any]:
        if len(shape) < 2:
            raise ValueError(f"the Orthogonal initializer needs a shape of rank >= 2, got "
                             f"{shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        if rows == 0 or cols == 0:
            return np.zeros(shape, dtype)
        a = self._generator(rng).standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.where(np.diag(r) < 0, -1.0, 1.0)
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "gain": self.gain}


# Keras's snake_case names are the same classes (keras.initializers.glorot_uniform
# is keras.initializers.GlorotUniform).
zeros, ones, constant, identity = Zeros, Ones, Constant, Identity
random_normal, random_uniform, truncated_normal = RandomNormal, RandomUniform, TruncatedNormal
variance_scaling, orthogonal = VarianceScaling, Orthogonal
glorot_uniform, glorot_normal, he_normal, he_uniform = (GlorotUniform, GlorotNormal, HeNormal,
                                                        HeUniform)
lecun_normal, lecun_uniform = LecunNormal, LecunUniform

_CLASSES: tuple[type[Initializer], ...] = (
    Zeros, Ones, Constant, Identity, RandomNormal, RandomUniform, TruncatedNormal,
    VarianceScaling, GlorotUniform, GlorotNormal, HeNormal, HeUniform, LecunNormal,
    LecunUniform, Orthogonal)


def _snake(name: str) -> str:
    out = "".join("_" + ch.lower() if ch.isupper() else ch for ch in name)
    return out.lstrip("_")


#: The initializers by every name Keras takes: class names, snake_case names and aliases.
INITIALIZERS: dict[str, type[Initializer]] = {
    **{cls.__name__: cls for cls in _CLASSES},
    **{_snake(cls.__name__): cls for cls in _CLASSES},
    "normal": RandomNormal, "uniform": RandomUniform, "one": Ones, "zero": Zeros,
    "IdentityInitializer": Identity, "OrthogonalInitializer": Orthogonal,
}

_DICT_KEYS = {"class_name", "config", "module", "registered_name"}


def _get(identifier: object, argument: str) -> Initializer | Callable[..., Any] | None:
    """:func:`get`, its messages naming ``argument``."""
    if identifier is None or isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        cls = INITIALIZERS.get(identifier)
        if cls is None:
            raise ValueError(f"{argument}: unknown initializer {identifier!r}; the known names "
                             f"are {', '.join(map(repr, sorted(INITIALIZERS)))}")
        return cls()
    if isinstance(identifier, dict):
        if not isinstance(identifier.get("class_name"), str) or set(identifier) - _DICT_KEYS:
            raise ValueError(f"{argument}: a dict must be Keras's {{'class_name': ..., "
                             f"'config': {{...}}}}, got {identifier!r}")
        name = identifier["class_name"]
        config = identifier.get("config", {})
        if not isinstance(config, dict):
            raise ValueError(f"{argument}: the 'config' of {name!r} must be a dict, got "
                             f"{config!r}")
        cls = INITIALIZERS.get(name)
        if cls is None:
            raise ValueError(f"{argument}: unknown initializer class {name!r}; the known names "
                             f"are {', '.join(map(repr, sorted(INITIALIZERS)))}")
        unknown = set(config) - set(inspect.signature(cls).parameters)
        if unknown:
            raise ValueError(f"{argument}: {name} takes no {', '.join(sorted(map(str, unknown)))}"
                             f" (its config: {', '.join(inspect.signature(cls).parameters)}),"
                             f" got {config!r}")
        return cls.from_config(config)
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return identifier
    raise TypeError(f"{argument} must be an initializer name, an Initializer, a Keras-style "
                    f"dict, a callable fn(shape, dtype) or None, got {identifier!r}")


def get(identifier: object) -> Initializer | Callable[..., Any] | None:
    """The initializer ``identifier`` names, Keras's ``keras.initializers.get``.

    Parameters
    ----------
    identifier : str, Initializer, type, dict, callable or None
        A name (``"glorot_uniform"``, ``"GlorotUniform"``, an alias; case as
        Keras's), an instance (returned as is), an Initializer class (a new
        instance), a Keras-style dict ``{"class_name": ..., "config": {...}}``
        (Keras's ``"module"`` and ``"registered_name"`` entries are allowed),
        any other callable ``fn(shape, dtype=None)`` (returned as is), or None
        (returned: a layer then uses its Keras default).

    Returns
    -------
    Initializer, callable or None

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones) or a malformed dict.
    TypeError
        For anything else.

    Examples
    --------
    >>> get("he_normal")
    HeNormal(seed=None, input_axes=None, output_axes=None)
    >>> get({"class_name": "RandomUniform", "config": {"minval": 0, "maxval": 1}})
    RandomUniform(seed=None, minval=0.0, maxval=1.0)
    """
    return _get(identifier, "initializer")


def serialize(initializer: Initializer | None) -> dict[str, Any] | None:
    """Keras's ``{"class_name": ..., "config": {...}}`` for ``initializer`` (None for None).

    Raises
    ------
    TypeError
        For anything but an :class:`Initializer` or None (a custom callable has
        no config).
    """
    if initializer is None:
        return None
    if not isinstance(initializer, Initializer):
        raise TypeError(f"only convpool's Initializer objects have a config, got "
                        f"{initializer!r}")
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}


def deserialize(config: dict[str, Any]) -> Initializer:
    """The initializer of a Keras-style dict (see :func:`get`)."""
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict {{'class_name': ..., 'config': {{...}}}}, got "
                        f"{config!r}")
    init = _get(config, "config")
    assert isinstance(init, Initializer)  # a dict always names one of the classes
    return init
