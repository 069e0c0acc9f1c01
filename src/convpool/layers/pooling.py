"""Pooling layers: max and average pooling, global pooling."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .. import functional
from .._checks import (
    FloatArray,
    check_bool,
    check_data_format,
    from_nhwc_shape,
    to_nhwc_shape,
)
from .._shapes import (
    IntPair,
    Padding,
)
from .base import (
    Layer,
    OptionalPair,
    Shape,
    ShapeLike,
    _Spatial,
)


class _Pool2D(_Spatial):
    def __init__(
        self,
        pool_size: IntPair,
        strides: IntPair | None,
        padding: Padding,
        data_format: str,
        *,
        name: str | None,
        input_shape: ShapeLike | None,
    ) -> None:
        super().__init__(
            pool_size, strides, padding, data_format,
            window_name="pool_size", name=name, seed=None, dtype=None, input_shape=input_shape,
        )
        self.pool_size = self._window

    def _max_pad(self) -> tuple[int, int]:
        return (self.pool_size[0] - 1, self.pool_size[1] - 1)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        win, (n, _, _, c) = self._resolve(input_shape)
        return from_nhwc_shape((n, win.oh, win.ow, c), self.data_format)

    def get_config(self) -> dict[str, Any]:
        return {"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding,
                "data_format": self.data_format, "name": self.name}


class MaxPool2D(_Pool2D):
    """2-D max pooling layer (see :func:`convpool.max_pool2d`); no parameters.

    Parameters
    ----------
    pool_size : int or (int, int), default 2
    strides : int or (int, int), optional
        Defaults to ``pool_size``.
    padding : "valid", "same", int, (ph, pw) or ((top, bottom), (left, right))
    data_format : {"channels_last", "channels_first", None}
        None is channels_last.
    name : str, optional
        Fifth by position, as in Keras; default ``max_pooling2d`` (Keras's
        MaxPooling2D, of which MaxPool2D is the alias), numbered.

    Shape
    -----
    Input ``(N, H, W, C)``, output ``(N, OH, OW, C)`` with
    ``OH = (H + pt + pb - KH) // sh + 1``, likewise OW.

    Examples
    --------
    >>> import numpy as np
    >>> MaxPool2D(2)(np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1))[0, :, :, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    >>> MaxPool2D(2).compute_output_shape((64, 384, 216, 16))
    (64, 192, 108, 16)
    >>> MaxPool2D((3, 2), strides=(2, 1), padding="same").compute_output_shape((1, 7, 5, 3))
    (1, 4, 5, 3)
    """

    _keras_class = "MaxPooling2D"

    def __init__(
        self,
        pool_size: IntPair = (2, 2),
        strides: IntPair | None = None,
        padding: Padding = "valid",
        data_format: str | None = None,
        name: str | None = None,
        *,
        input_shape: ShapeLike | None = None,
    ) -> None:
        super().__init__(pool_size, strides, padding, check_data_format(data_format), name=name,
                         input_shape=input_shape)

    def _call(self, x: NDArray[Any]) -> FloatArray:
        return functional.max_pool2d(
            x, self.pool_size, self.strides, self.padding, data_format=self.data_format
        )

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        if not input_grad:
            return None, []
        return functional.max_pool2d_backward(
            grad_out, x, self.pool_size, self.strides, self.padding, data_format=self.data_format,
            through_relu=self._through_relu,
        ), []

    #: backward() also takes the gradient through the ReLU that produced x
    #: (set around one call by Sequential.backward; see backward_through_relu).
    _through_relu = False

    def backward_through_relu(self, grad_out: ArrayLike) -> NDArray[Any]:
        """:meth:`backward`, and on through the ReLU whose output this layer pooled.

        The previous layer's fused ReLU (a Conv2D or Dense with
        ``activation="relu"``) is applied in the same pass; give the result
        to that layer's ``backward(..., pre_activation=True)``.
        :meth:`Sequential.backward` pairs them so.

        Parameters
        ----------
        grad_out : array_like of the output's shape

        Returns
        -------
        ndarray of the input's shape
            ``where(x > 0, grad_x, 0)`` for the input x of the last forward.
        """
        self._through_relu = True
        try:
            grad = self.backward(grad_out)
        finally:
            self._through_relu = False
        assert grad is not None
        return grad


class AvgPool2D(_Pool2D):
    """2-D average pooling layer (see :func:`convpool.avg_pool2d`); no parameters.

    Parameters
    ----------
    pool_size : int or (int, int), default 2
    strides : int or (int, int), optional
        Defaults to ``pool_size``.
    padding : "valid", "same", int, (ph, pw) or ((top, bottom), (left, right))
    data_format : {"channels_last", "channels_first", None}
        None is channels_last.
    count_include_pad : bool, default False
        Keras's rule (False) divides by the real cells of each window.
        (Fifth by position, where Keras's AveragePooling2D has ``name``.)
    name : str, optional
        Default ``average_pooling2d`` (Keras's AveragePooling2D, of which
        AvgPool2D is the alias), numbered.

    Shape
    -----
    As :class:`MaxPool2D`.

    Examples
    --------
    >>> import numpy as np
    >>> AvgPool2D(2)(np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1))[0, :, :, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    """

    _keras_class = "AveragePooling2D"

    def __init__(
        self,
        pool_size: IntPair = (2, 2),
        strides: IntPair | None = None,
        padding: Padding = "valid",
        data_format: str | None = None,
        count_include_pad: bool | np.bool_ = False,
        *,
        name: str | None = None,
        input_shape: ShapeLike | None = None,
    ) -> None:
        super().__init__(pool_size, strides, padding, check_data_format(data_format), name=name,
                         input_shape=input_shape)
        self.count_include_pad = check_bool(count_include_pad, "count_include_pad")

    def _call(self, x: NDArray[Any]) -> FloatArray:
        return functional.avg_pool2d(
            x, self.pool_size, self.strides, self.padding, data_format=self.data_format,
            count_include_pad=self.count_include_pad,
        )

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        if not input_grad:
            return None, []
        return functional.avg_pool2d_backward(
            grad_out, x, self.pool_size, self.strides, self.padding,
            data_format=self.data_format, count_include_pad=self.count_include_pad,
        ), []

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "count_include_pad": self.count_include_pad}


class _GlobalPool2D(Layer):
    """Common part of GlobalAveragePooling2D and GlobalMaxPooling2D."""

    _forward_fn: Any
    _backward_fn: Any

    def __init__(self, data_format: str | None = None, keepdims: bool | np.bool_ = False,
                 *, name: str | None = None, input_shape: ShapeLike | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self.data_format = check_data_format(data_format)
        self.keepdims = check_bool(keepdims, "keepdims")

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(f"{type(self).__name__} expects a 4-D input, got shape {input_shape}")
        n, h, w, c = to_nhwc_shape(input_shape, self.data_format)
        if (h is not None and h < 1) or (w is not None and w < 1):
            raise ValueError(f"{type(self).__name__} needs H and W of at least 1, "
                             f"got input shape {input_shape}")
        if self.keepdims:
            return from_nhwc_shape((n, 1, 1, c), self.data_format)
        return (n, c)

    def _call(self, x: NDArray[Any]) -> FloatArray:
        return cast(FloatArray, type(self)._forward_fn(x, self.keepdims, self.data_format))

    def _backward(
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        if not input_grad:
            return None, []
        return type(self)._backward_fn(grad_out, x, self.keepdims, self.data_format), []

    def receptive_field(
        self, field: OptionalPair, jump: OptionalPair, input_shape: ShapeLike
    ) -> tuple[OptionalPair, OptionalPair]:
        return None, None  # every output sees the whole image

    def get_config(self) -> dict[str, Any]:
        return {"data_format": self.data_format, "keepdims": self.keepdims, "name": self.name}


class GlobalAveragePooling2D(_GlobalPool2D):
    """The mean over H and W (see :func:`convpool.global_avg_pool2d`); no parameters.

    Parameters
    ----------
    data_format : {"channels_last", "channels_first", None}
        None is channels_last.
    keepdims : bool, default False
    name : str, optional

    Shape
    -----
    Input ``(N, H, W, C)``, output ``(N, C)``, or ``(N, 1, 1, C)`` with keepdims.

    Examples
    --------
    >>> import numpy as np
    >>> GlobalAveragePooling2D()(np.ones((2, 7, 5, 3), np.float32)).shape
    (2, 3)
    >>> GlobalAveragePooling2D(keepdims=True).compute_output_shape((None, 7, 5, 3))
    (None, 1, 1, 3)
    """

    _forward_fn = staticmethod(functional.global_avg_pool2d)
    _backward_fn = staticmethod(functional.global_avg_pool2d_backward)


class GlobalMaxPooling2D(_GlobalPool2D):
    """The maximum over H and W (see :func:`convpool.global_max_pool2d`); no parameters.

    Parameters, shapes: as :class:`GlobalAveragePooling2D`.

    Examples
    --------
    >>> import numpy as np
    >>> GlobalMaxPooling2D(data_format="channels_first")(np.ones((2, 3, 7, 5), np.float32)).shape
    (2, 3)
    """

    _forward_fn = staticmethod(functional.global_max_pool2d)
    _backward_fn = staticmethod(functional.global_max_pool2d_backward)
