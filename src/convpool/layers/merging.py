"""Merging layers: Add, Subtract, Multiply, Average, Maximum, Minimum and
Concatenate, which take a list of inputs (Keras's ``layers/merging``).

They make the functional API's residual and U-Net-style nets possible
(:class:`~convpool.models.Model`); called on arrays they compute directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, SupportsIndex

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._checks import as_array, cast_weights, check_int, compute_dtype
from .base import Layer, OptionalPair, Shape


def _shapes(input_shape: object, layer: Layer, minimum: int) -> list[Shape]:
    """``input_shape`` as a list of shapes (a merge layer's input), checked."""
    if not isinstance(input_shape, (list, tuple)) or not all(
            isinstance(s, (list, tuple)) for s in input_shape):
        raise TypeError(f"{type(layer).__name__} layer {layer.name!r} takes a list of inputs, "
                        f"got input shape {input_shape!r}")
    shapes = [tuple(s) for s in input_shape]
    if len(shapes) < minimum:
        raise ValueError(f"{type(layer).__name__} layer {layer.name!r} takes at least "
                         f"{minimum} inputs, got {len(shapes)}")
    return shapes


def _same(a: int | None, b: int | None) -> bool:
    return a is None or b is None or a == b


def _known(sizes: Sequence[int | None]) -> int | None:
    """The first known size of one axis over several inputs (None if none is)."""
    for d in sizes:
        if d is not None:
            return d
    return None


class _Merge(Layer):
    """A layer of several inputs.  Subclasses implement ``_merge_shape``,
    ``_merge(xs)`` and ``_merge_backward(grad, xs, y)``."""

    _takes_list = True
    _min_inputs = 2

    def __init__(self, *, name: str | None = None, **kwargs: Any) -> None:
        # Keras's base-layer keywords that do not change the computation.
        unknown = sorted(set(kwargs) - {"trainable", "dtype"})
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword arguments {unknown}")
        super().__init__(name=name, dtype=kwargs.get("dtype"))
        self._saved_inputs: list[NDArray[Any]] | None = None
        self._dtypes: list[np.dtype[Any]] = []

    def compute_output_shape(self, input_shape: Any) -> Shape:
        shapes = _shapes(input_shape, self, self._min_inputs)
        return self._merge_shape(shapes)

    def _merge_shape(self, shapes: list[Shape]) -> Shape:
        """Elementwise merges: equal shapes (None matches any size)."""
        first = shapes[0]
        for s in shapes[1:]:
            if len(s) != len(first) or not all(_same(a, b) for a, b in zip(s, first)):
                raise ValueError(f"{type(self).__name__} layer {self.name!r} needs inputs of "
                                 f"one shape, got {shapes}")
        return tuple(_known(dims) for dims in zip(*shapes))

    def forward(self, x: Any, training: bool = False) -> NDArray[Any]:
        """The merged output of the list ``x``; ``training=True`` keeps the
        inputs for :meth:`backward`.

        Parameters
        ----------
        x : list of array_like
        training : bool, default False

        Returns
        -------
        ndarray
        """
        if not isinstance(x, (list, tuple)):
            raise TypeError(f"{type(self).__name__} layer {self.name!r} takes a list of arrays, "
                            f"got {type(x).__name__}")
        xs = [as_array(v, f"x[{i}]") for i, v in enumerate(x)]
        shapes: Any = [v.shape for v in xs]  # build's ShapeLike is one shape; merges take a list
        self.compute_output_shape(shapes)
        # Mixed float32 / float64 inputs compute in float64; backward gives
        # each input its gradient in its own compute dtype.
        dtypes = [compute_dtype(v, f"x[{i}]") for i, v in enumerate(xs)]
        dtype = np.result_type(*dtypes)
        if not self.built:
            self.build(shapes)
        xs = [v.astype(dtype, copy=False) for v in xs]
        y = self._merge(xs)
        self._dtypes = dtypes
        self._saved_inputs = xs if training else None
        self._saved = (xs[0], y) if training else None
        return y

    def backward(self, grad_out: ArrayLike, input_grad: bool = True, *,
                 pre_activation: bool = False) -> Any:
        """The gradients for each input of the last ``forward(x, training=True)``.

        Returns
        -------
        list of ndarray (one per input), or None when ``input_grad`` is False
        """
        if self._saved is None or self._saved_inputs is None:
            raise RuntimeError(
                f"layer {self.name!r}: backward() needs a forward(x, training=True) first")
        if pre_activation:
            raise ValueError(f"layer {self.name!r}: pre_activation=True needs an activation")
        _, y = self._saved
        grad = as_array(grad_out, "grad_out")
        if grad.shape != y.shape:
            raise ValueError(f"layer {self.name!r}: grad_out must have the output's shape "
                             f"{y.shape}, got {grad.shape}")
        grad = cast_weights(grad, "grad_out", y.dtype)
        self.grads = []
        if not input_grad:
            return None
        grads = self._merge_backward(grad, self._saved_inputs, y)
        return [g.astype(d, copy=False) for g, d in zip(grads, self._dtypes)]

    def _merge(self, xs: list[NDArray[Any]]) -> NDArray[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _merge_backward(self, grad: NDArray[Any], xs: list[NDArray[Any]], y: NDArray[Any]
                        ) -> list[NDArray[Any]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def merge_receptive_field(
        self, fields: Sequence[OptionalPair], jumps: Sequence[OptionalPair]
    ) -> tuple[OptionalPair, OptionalPair]:
        """Receptive field and jump of the output from those of the inputs.

        The widest field of the inputs, per axis (their centres align for
        'same'-padded branches); the jump when all inputs share it.  None once
        any input mixes every position.
        """
        if any(f is None for f in fields) or any(j != jumps[0] for j in jumps):
            return None, None
        return (max(f[0] for f in fields if f is not None),
                max(f[1] for f in fields if f is not None)), jumps[0]

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}


class Add(_Merge):
    """The sum of its inputs (same shapes): ``Add()([x, shortcut])``.

    Examples
    --------
    >>> import numpy as np
    >>> Add()([np.ones((2, 3)), np.full((2, 3), 2.0)])[0]
    array([3., 3., 3.])
    """

    def _merge(self, xs: list[NDArray[Any]]) -> NDArray[Any]:
        y: NDArray[Any] = xs[0] + xs[1]
        for v in xs[2:]:
            y += v
        return y

    def _merge_backward(self, grad: NDArray[Any], xs: list[NDArray[Any]], y: NDArray[Any]
                        ) -> list[NDArray[Any]]:
        return [grad] * len(xs)


class Subtract(_Merge):
    """``x[0] - x[1]`` (two inputs of one shape)."""

    def compute_output_shape(self, input_shape: Any) -> Shape:
        shapes = _shapes(input_shape, self, 2)
        if len(shapes) != 2:
            raise ValueError(f"Subtract layer {self.name!r} takes exactly 2 inputs, got "
                             f"{len(shapes)}")
        return self._merge_shape(shapes)

    def _merge(self, xs: list[NDArray[Any]]) -> NDArray[Any]:
        y: NDArray[Any] = xs[0] - xs[1]
        return y

    def _merge_backward(self, grad: NDArray[Any], xs: list[NDArray[Any]], y: NDArray[Any]
                        ) -> list[NDArray[Any]]:
        return [grad, -grad]


class Multiply(_Merge):
    """The elementwise product of its inputs (same shapes)."""

    def _merge(self, xs: list[NDArray[Any]]) -> NDArray[Any]:
        y: NDArray[Any] = xs[0] * xs[1]
        for v in xs[2:]:
            y *= v
        return y

    def _merge_backward(self, grad: NDArray[Any], xs: list[NDArray[Any]], y: NDArray[Any]
                        ) -> list[NDArray[Any]]:
        out = []
        for i in range(len(xs)):
            g = grad.copy()
            for j, v in enumerate(xs):
                if j != i:
                    g *= v
            out.append(g)
        return out


class Average(_Merge):
    """The elementwise mean of its inputs (same shapes)."""

    def _merge(self, xs: list[NDArray[Any]]) -> NDArray[Any]:
        y = Add._merge(self, xs)  # type: ignore[arg-type]
        y /= len(xs)
        return y

    def _merge_backward(self, grad: NDArray[Any], xs: list[NDArray[Any]], y: NDArray[Any]
                        ) -> list[NDArray[Any]]:
        return [grad / len(xs)] * len(xs)


class Maximum(_Merge):
    """The elementwise maximum of its inputs; a tie's gradient goes to the first."""

    _pick: Any = np.maximum  # a ufunc (not bound as a method)

    def _merge(self, xs: list[NDArray[Any]]) -> NDArray[Any]:
        y: NDArray[Any] = self._pick(xs[0], xs[1])
        for v in xs[2:]:
            self._pick(y, v, out=y)
        return y

    def _merge_backward(self, grad: NDArray[Any], xs: list[NDArray[Any]], y: NDArray[Any]
                        ) -> list[NDArray[Any]]:
        taken = np.zeros(y.shape, bool)
        out = []
        for v in xs:
            mine = (v == y) & ~taken
            taken |= mine
            out.append(np.where(mine, grad, 0).astype(grad.dtype, copy=False))
        return out


class Minimum(Maximum):
    """The elementwise minimum of its inputs; a tie's gradient goes to the first."""

    _pick: Any = np.minimum


class Concatenate(_Merge):
    """Its inputs joined along ``axis`` (the other axes equal).

    Parameters
    ----------
    axis : int, default -1
        Of the full shape, batch axis included (Keras's meaning); the batch
        axis itself cannot be joined.
    name : str, optional

    Examples
    --------
    >>> import numpy as np
    >>> Concatenate()([np.zeros((2, 4, 4, 3)), np.zeros((2, 4, 4, 5))]).shape
    (2, 4, 4, 8)
    """

    def __init__(self, axis: SupportsIndex = -1, *, name: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.axis = check_int(axis, "axis", minimum=-(2**31))

    def _axis(self, rank: int) -> int:
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 1 <= axis < rank:
            raise ValueError(f"Concatenate layer {self.name!r}: axis={self.axis} is not a "
                             f"non-batch axis of inputs of rank {rank}")
        return axis

    def _merge_shape(self, shapes: list[Shape]) -> Shape:
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes):
            raise ValueError(f"Concatenate layer {self.name!r} needs inputs of one rank, got "
                             f"{shapes}")
        axis = self._axis(rank)
        out: list[int | None] = []
        for i, dims in enumerate(zip(*shapes)):
            if i == axis:
                out.append(None if any(d is None for d in dims)
                           else sum(d for d in dims if d is not None))
            elif all(_same(a, b) for a in dims for b in dims):
                out.append(_known(dims))
            else:
                raise ValueError(f"Concatenate layer {self.name!r} (axis={self.axis}) needs "
                                 f"inputs equal on every other axis, got {shapes}")
        return tuple(out)

    def _merge(self, xs: list[NDArray[Any]]) -> NDArray[Any]:
        y: NDArray[Any] = np.concatenate(xs, axis=self._axis(xs[0].ndim))
        return y

    def _merge_backward(self, grad: NDArray[Any], xs: list[NDArray[Any]], y: NDArray[Any]
                        ) -> list[NDArray[Any]]:
        axis = self._axis(y.ndim)
        cuts = np.cumsum([v.shape[axis] for v in xs])[:-1]
        return list(np.split(grad, cuts, axis=axis))

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis, "name": self.name}
