"""Reshaping layers: Flatten, Reshape, ZeroPadding2D, UpSampling2D."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from .._checks import (
    check_data_format,
    check_int,
    compute_dtype,
    from_nhwc_shape,
    to_nhwc_shape,
)
from .._shapes import IntPair, as_pair
from .base import (
    Layer,
    OptionalPair,
    Shape,
    ShapeLike,
)


class Flatten(Layer):
    """Flatten all but the batch axis, as Keras does.

    With ``data_format="channels_first"`` a 4-D input is first put in
    channels_last order, so the flattened order does not depend on the layout.

    Shape
    -----
    Input ``(N, d1, ..., dk)``, output ``(N, d1 * ... * dk)``.

    Examples
    --------
    >>> import numpy as np
    >>> Flatten()(np.zeros((2, 8, 6, 16), np.float32)).shape
    (2, 768)
    >>> Flatten().compute_output_shape((64, 384, 216, 16))
    (64, 1327104)
    """

    def __init__(self, data_format: str = "channels_last", *, name: str | None = None,
                 input_shape: ShapeLike | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self.data_format = check_data_format(data_format)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        input_shape = tuple(input_shape)
        if len(input_shape) < 1:
            raise ValueError(f"Flatten expects an input with a batch axis, got {input_shape}")
        rest = input_shape[1:]
        size = None if any(d is None for d in rest) else math.prod(cast("tuple[int, ...]", rest))
        return (input_shape[0], size)

    def _call(self, x: NDArray[Any]) -> NDArray[Any]:
        if self.data_format == "channels_first" and x.ndim == 4:
            x = x.transpose(0, 2, 3, 1)
        # The size, not -1: an empty batch has no size to infer it from.
        return np.reshape(x, (x.shape[0], math.prod(x.shape[1:])))

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        if not input_grad:
            return None, []
        if self.data_format == "channels_first" and x.ndim == 4:
            n, c, h, w = x.shape
            return grad_out.reshape(n, h, w, c).transpose(0, 3, 1, 2), []
        return grad_out.reshape(x.shape), []

    def get_config(self) -> dict[str, Any]:
        return {"data_format": self.data_format, "name": self.name}


def _spatial(layer: Layer, input_shape: ShapeLike) -> tuple[Any, Any, Any, Any]:
    """(N, H, W, C) of a 4-D input in the layer's data_format, else ValueError."""
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        raise ValueError(f"{type(layer).__name__} expects a 4-D input, got shape {input_shape}")
    n, h, w, c = to_nhwc_shape(input_shape, getattr(layer, "data_format"))
    return n, h, w, c


class ZeroPadding2D(Layer):
    """Zero rows and columns around each image, Keras's ``ZeroPadding2D``.

    Parameters
    ----------
    padding : int, (int, int) or ((top, bottom), (left, right)), default 1
        An int pads all four sides; a pair pads (rows, columns) on both sides.
    data_format : {"channels_last", "channels_first"}, optional
    name, input_shape :
        See :class:`Layer` (keyword-only).

    Shape
    -----
    (N, H, W, C) -> (N, H + top + bottom, W + left + right, C); no parameters.

    Examples
    --------
    >>> import numpy as np
    >>> ZeroPadding2D(((1, 0), (0, 2)))(np.ones((1, 2, 2, 1), np.float32))[0, :, :, 0]
    array([[0., 0., 0., 0.],
           [1., 1., 0., 0.],
           [1., 1., 0., 0.]], dtype=float32)
    """

    def __init__(self, padding: Any = (1, 1), data_format: str | None = None, *,
                 name: str | None = None, input_shape: ShapeLike | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self.data_format = check_data_format(data_format)
        if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
                isinstance(p, (tuple, list)) for p in padding):
            pads = tuple(tuple(p) for p in padding)
            if any(len(p) != 2 for p in pads):
                raise ValueError(f"padding must be an int, a pair or ((top, bottom), "
                                 f"(left, right)), got {padding!r}")
            (t, b), (left, r) = pads
        else:
            ph, pw = as_pair(padding, "padding", minimum=0)
            t, b, left, r = ph, ph, pw, pw
        self.padding = tuple(check_int(v, "padding", minimum=0) for v in (t, b, left, r))

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        n, h, w, c = _spatial(self, input_shape)
        t, b, left, r = self.padding
        return from_nhwc_shape((n, None if h is None else h + t + b,
                                None if w is None else w + left + r, c), self.data_format)

    def _call(self, x: NDArray[Any]) -> NDArray[Any]:
        t, b, left, r = self.padding
        hw = ((t, b), (left, r))
        pads = ((0, 0),) + hw + ((0, 0),) if self.data_format == "channels_last" else (
            (0, 0), (0, 0)) + hw
        out: NDArray[Any] = np.pad(x.astype(compute_dtype(x, "x"), copy=False), pads)
        return out

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        if not input_grad:
            return None, []
        t, b, left, r = self.padding
        h_ax, w_ax = (1, 2) if self.data_format == "channels_last" else (2, 3)
        index: list[slice] = [slice(None)] * 4
        index[h_ax] = slice(t, grad_out.shape[h_ax] - b)
        index[w_ax] = slice(left, grad_out.shape[w_ax] - r)
        return np.ascontiguousarray(grad_out[tuple(index)]), []

    def receptive_field(self, field: OptionalPair, jump: OptionalPair,
                        input_shape: ShapeLike) -> tuple[OptionalPair, OptionalPair]:
        return field, jump  # a shift: each output sees what its input pixel saw

    def get_config(self) -> dict[str, Any]:
        t, b, left, r = self.padding
        return {"padding": [[t, b], [left, r]], "data_format": self.data_format,
                "name": self.name}


class UpSampling2D(Layer):
    """Repeat each pixel ``size`` times along H and W, Keras's ``UpSampling2D``
    (nearest neighbour).

    Parameters
    ----------
    size : int or (int, int), default 2
    data_format : {"channels_last", "channels_first"}, optional
    interpolation : {"nearest"}
        Keras's other interpolations are not supported (a ValueError).
    name, input_shape :
        See :class:`Layer` (keyword-only).

    Shape
    -----
    (N, H, W, C) -> (N, H * sh, W * sw, C); no parameters.  In the summary the
    jump becomes a fraction (outputs are 1/size input pixels apart).

    Examples
    --------
    >>> import numpy as np
    >>> UpSampling2D(2)(np.array([[1, 2]], np.float32).reshape(1, 1, 2, 1))[0, :, :, 0]
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.]], dtype=float32)
    """

    def __init__(self, size: IntPair = (2, 2), data_format: str | None = None,
                 interpolation: str = "nearest", *, name: str | None = None,
                 input_shape: ShapeLike | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self.size = as_pair(size, "size")
        self.data_format = check_data_format(data_format)
        if interpolation != "nearest":
            raise ValueError(f"interpolation must be 'nearest' (the only one convpool "
                             f"supports), got {interpolation!r}")
        self.interpolation = interpolation

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        n, h, w, c = _spatial(self, input_shape)
        sh, sw = self.size
        return from_nhwc_shape((n, None if h is None else h * sh, None if w is None else w * sw,
                                c), self.data_format)

    def _axes(self) -> tuple[int, int]:
        return (1, 2) if self.data_format == "channels_last" else (2, 3)

    def _call(self, x: NDArray[Any]) -> NDArray[Any]:
        h_ax, w_ax = self._axes()
        x = x.astype(compute_dtype(x, "x"), copy=False)
        out: NDArray[Any] = np.repeat(np.repeat(x, self.size[0], axis=h_ax), self.size[1],
                                      axis=w_ax)
        return out

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        if not input_grad:
            return None, []
        sh, sw = self.size
        g = grad_out
        if self.data_format == "channels_first":
            g = g.transpose(0, 2, 3, 1)
        n, oh, ow, c = g.shape
        summed = g.reshape(n, oh // sh, sh, ow // sw, sw, c).sum(axis=(2, 4), dtype=g.dtype)
        if self.data_format == "channels_first":
            summed = summed.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(summed), []

    def receptive_field(self, field: OptionalPair, jump: OptionalPair,
                        input_shape: ShapeLike) -> tuple[OptionalPair, OptionalPair]:
        if field is None or jump is None:
            return None, None
        return field, (Fraction(jump[0]) / self.size[0], Fraction(jump[1]) / self.size[1])

    def get_config(self) -> dict[str, Any]:
        return {"size": list(self.size), "data_format": self.data_format,
                "interpolation": self.interpolation, "name": self.name}


class Reshape(Layer):
    """Give each sample ``target_shape``, Keras's ``Reshape`` (one entry may be -1).

    Parameters
    ----------
    target_shape : tuple of int
        One sample's new shape, without the batch axis.
    name, input_shape :
        See :class:`Layer` (keyword-only).

    Examples
    --------
    >>> import numpy as np
    >>> Reshape((2, -1))(np.zeros((3, 8), np.float32)).shape
    (3, 2, 4)
    """

    def __init__(self, target_shape: Any, *, name: str | None = None,
                 input_shape: ShapeLike | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        if not isinstance(target_shape, (tuple, list)) or not target_shape:
            raise TypeError(f"target_shape must be a non-empty tuple of ints, got "
                            f"{target_shape!r}")
        dims = tuple(check_int(d, "target_shape", minimum=-1) for d in target_shape)
        if dims.count(-1) > 1 or 0 in dims:
            raise ValueError(f"target_shape may hold one -1 and no 0, got {target_shape!r}")
        self.target_shape = dims

    def _resolve(self, input_shape: Shape) -> tuple[int | None, ...]:
        rest = input_shape[1:]
        if any(d is None for d in rest):
            return tuple(None if d == -1 else d for d in self.target_shape)
        size = math.prod(cast("tuple[int, ...]", rest))
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(f"cannot reshape a sample of shape {rest} ({size} values) "
                                 f"to {self.target_shape}")
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if known != size:
            raise ValueError(f"cannot reshape a sample of shape {rest} ({size} values) to "
                             f"{self.target_shape} ({known} values)")
        return self.target_shape

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        input_shape = tuple(input_shape)
        if len(input_shape) < 1:
            raise ValueError(f"Reshape expects an input with a batch axis, got {input_shape}")
        return (input_shape[0],) + self._resolve(input_shape)

    def _call(self, x: NDArray[Any]) -> NDArray[Any]:
        shape = cast("tuple[int, ...]", self._resolve(x.shape))
        return x.astype(compute_dtype(x, "x"), copy=False).reshape((x.shape[0],) + shape)

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        return (grad_out.reshape(x.shape) if input_grad else None), []

    def receptive_field(self, field: OptionalPair, jump: OptionalPair,
                        input_shape: ShapeLike) -> tuple[OptionalPair, OptionalPair]:
        return None, None  # positions are rearranged

    def get_config(self) -> dict[str, Any]:
        return {"target_shape": list(self.target_shape), "name": self.name}
