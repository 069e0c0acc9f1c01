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

    def __init__(self, data_format: str | None = None, *, name: str | None = None,
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


#: UpSampling2D's interpolations (Keras's others: "bicubic", "lanczos3", "lanczos5", "area").
INTERPOLATIONS = ("nearest", "bilinear")


def _bilinear_phases(size: int) -> list[tuple[int, float]]:
    """Bilinear upsampling by ``size`` along one axis, as TensorFlow's resize
    (half-pixel centres, the source position clamped to the edges): output
    ``o = i * size + r`` sits at input position ``i + (r + 0.5) / size - 0.5``,
    so it is ``(1 - f) * x[clip(i + a)] + f * x[clip(i + a + 1)]``.  One
    ``(a, f)`` per phase r: a is -1 or 0, f in [0, 1)."""
    phases = []
    for r in range(size):
        offset = (r + 0.5) / size - 0.5
        a = math.floor(offset)
        phases.append((a, offset - a))
    return phases


def _shifted(x: NDArray[Any], k: int, axis: int) -> NDArray[Any]:
    """``x[clip(i + k, 0, n - 1)]`` along ``axis`` (the edge repeated)."""
    n = x.shape[axis]
    if k == 0 or n == 0:
        return x
    return np.take(x, np.clip(np.arange(n) + k, 0, n - 1), axis=axis)


def _shift_add(acc: NDArray[Any], c: NDArray[Any], k: int, axis: int) -> None:
    """``acc[clip(i + k, 0, n - 1)] += c[i]`` along ``axis``, for k in (-1, 0, 1):
    the adjoint of :func:`_shifted`."""
    def at(index: slice | int) -> tuple[slice | int, ...]:
        return (slice(None),) * axis + (index,)

    if acc.shape[axis] == 0:
        return
    if k == 0:
        acc += c
    elif k == 1:
        acc[at(slice(1, None))] += c[at(slice(None, -1))]
        acc[at(-1)] += c[at(-1)]
    else:
        acc[at(slice(None, -1))] += c[at(slice(1, None))]
        acc[at(0)] += c[at(0)]


def _phase_view(y: NDArray[Any], axis: int, size: int) -> NDArray[Any]:
    """``y`` with ``axis`` (of length n * size) split into (n, size)."""
    shape = y.shape
    return y.reshape(shape[:axis] + (shape[axis] // size, size) + shape[axis + 1:])


def _bilinear_axis(x: NDArray[Any], axis: int, size: int) -> NDArray[Any]:
    """Bilinear upsampling of ``x`` by ``size`` along ``axis``, in x's dtype."""
    shape = list(x.shape)
    shape[axis] *= size
    y = np.empty(shape, x.dtype)
    phases = _phase_view(y, axis, size)
    one = x.dtype.type(1)
    for r, (a, f) in enumerate(_bilinear_phases(size)):
        index = (slice(None),) * (axis + 1) + (r,)
        w = x.dtype.type(f)
        low = _shifted(x, a, axis)
        phases[index] = low if f == 0 else low * (one - w) + _shifted(x, a + 1, axis) * w
    return y


def _bilinear_axis_adjoint(g: NDArray[Any], axis: int, size: int) -> NDArray[Any]:
    """The adjoint (transpose) of :func:`_bilinear_axis`: ``g`` summed back onto the input."""
    phases = _phase_view(g, axis, size)
    shape = list(g.shape)
    shape[axis] //= size
    acc = np.zeros(shape, g.dtype)
    one = g.dtype.type(1)
    for r, (a, f) in enumerate(_bilinear_phases(size)):
        c = phases[(slice(None),) * (axis + 1) + (r,)]
        w = g.dtype.type(f)
        if f == 0:
            _shift_add(acc, c, a, axis)
        else:
            _shift_add(acc, c * (one - w), a, axis)
            _shift_add(acc, c * w, a + 1, axis)
    return acc


class UpSampling2D(Layer):
    """Upsample each image by ``size`` along H and W, Keras's ``UpSampling2D``:
    each pixel repeated ("nearest"), or Keras 3's "bilinear" (TensorFlow's
    ``tf.image.resize(..., "bilinear")``: half-pixel centres, the edge pixels
    extended, no antialiasing).

    Parameters
    ----------
    size : int or (int, int), default 2
    data_format : {"channels_last", "channels_first", None}, optional
    interpolation : {"nearest", "bilinear"}
        Any case, as Keras.  Keras's others ("bicubic", "lanczos3",
        "lanczos5", "area") are a ValueError.
    name, input_shape :
        See :class:`Layer` (keyword-only).

    Shape
    -----
    (N, H, W, C) -> (N, H * sh, W * sw, C); no parameters.  Bilinear: output
    row ``o`` samples input row ``(o + 0.5) / sh - 0.5`` (clamped to [0, H - 1])
    from its two neighbours, and likewise the columns; computed in the
    input's float dtype.  In the summary the jump becomes a fraction (outputs
    are 1/size input pixels apart); bilinear widens the receptive field by
    one input pixel per axis.

    Examples
    --------
    >>> import numpy as np
    >>> UpSampling2D(2)(np.array([[1, 2]], np.float32).reshape(1, 1, 2, 1))[0, :, :, 0]
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.]], dtype=float32)
    >>> x = np.array([[0, 4]], np.float32).reshape(1, 1, 2, 1)
    >>> UpSampling2D((1, 2), interpolation="bilinear")(x)[0, 0, :, 0]
    array([0., 1., 3., 4.], dtype=float32)
    """

    def __init__(self, size: IntPair = (2, 2), data_format: str | None = None,
                 interpolation: str = "nearest", *, name: str | None = None,
                 input_shape: ShapeLike | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self.size = as_pair(size, "size")
        self.data_format = check_data_format(data_format)
        if not isinstance(interpolation, str):
            raise TypeError(f"interpolation must be a string, got {interpolation!r}")
        if interpolation.lower() not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be 'nearest' or 'bilinear' (the ones convpool "
                             f"supports), got {interpolation!r}")
        self.interpolation = interpolation.lower()

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
        if self.interpolation == "bilinear":
            return _bilinear_axis(_bilinear_axis(x, h_ax, self.size[0]), w_ax, self.size[1])
        out: NDArray[Any] = np.repeat(np.repeat(x, self.size[0], axis=h_ax), self.size[1],
                                      axis=w_ax)
        return out

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        if not input_grad:
            return None, []
        sh, sw = self.size
        if self.interpolation == "bilinear":
            h_ax, w_ax = self._axes()
            g = _bilinear_axis_adjoint(grad_out, w_ax, sw)
            return _bilinear_axis_adjoint(g, h_ax, sh), []
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
        if self.interpolation == "bilinear":  # two neighbours on each upsampled axis
            (fh, fw), (jh, jw), (sh, sw) = field, jump, self.size
            field = (fh + (jh if sh > 1 else 0), fw + (jw if sw > 1 else 0))
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
