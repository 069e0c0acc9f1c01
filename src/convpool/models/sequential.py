"""Sequential: a stack of layers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from numpy.typing import ArrayLike, NDArray

from .._checks import as_array, to_nhwc_shape
from ..layers import Layer, OptionalPair, Shape, ShapeLike, SymbolicTensor
from ..layers.base import _default_name
from .base import ModelBase
from .summary import SummaryTable

if TYPE_CHECKING:
    from ..layers import MaxPool2D


class Sequential(ModelBase):
    """A linear stack of layers.

    Parameters
    ----------
    layers : list of Layer, optional
        As Keras's, it may start with an :func:`~convpool.layers.Input`
        placeholder, and its first layer may carry Keras's per-sample
        ``input_shape=``: either builds the model at once.
    input_shape : tuple, optional
        Full input shape including the batch axis (which may be None); when
        given the model is built at once, otherwise at the first call (or
        from an Input or the first layer's ``input_shape``, as above).
    name : str, optional

    Examples
    --------
    >>> from convpool.layers import Conv2D, MaxPool2D, Flatten, Dense
    >>> model = Sequential([Conv2D(16, 5, strides=5, use_bias=False), MaxPool2D(2),
    ...                     Flatten(), Dense(1, use_bias=False)],
    ...                    input_shape=(None, 1920, 1080, 3))
    >>> model.count_params()
    332976

    What ``summary()`` tabulates: the parameters and the receptive field of
    each layer (MaxPool2D doubles it without a weight; the Dense output sees
    the whole frame):

    >>> table = model.summary_table()
    >>> [(row["params"], row["receptive_field"]) for row in table.rows]
    [(1200, (5, 5)), (0, (10, 10)), (0, (10, 10)), (331776, None)]

    Built at its first call instead, here on a small batch:

    >>> import numpy as np
    >>> small = Sequential([Conv2D(16, 5, strides=5, use_bias=False), MaxPool2D(2),
    ...                     Flatten(), Dense(1, use_bias=False)])
    >>> small(np.zeros((4, 40, 30, 3), np.float32)).shape, small.count_params()
    ((4, 1), 1392)
    """

    def __init__(
        self,
        layers: Iterable[Layer] | None = None,
        input_shape: ShapeLike | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name if name is not None else _default_name("Sequential")
        self.layers: list[Layer] = []
        self.input_shape: Shape | None = None
        for layer in layers or []:
            self.add(layer)
        if input_shape is not None:
            if self.input_shape is not None and tuple(input_shape) != self.input_shape:
                raise ValueError(f"input_shape {tuple(input_shape)} differs from the model's "
                                 f"Input or first layer's {self.input_shape}")
            self.build(input_shape)

    def add(self, layer: Layer | SymbolicTensor) -> None:
        """Append ``layer``, as Keras's ``Sequential.add``.

        An :func:`~convpool.layers.Input` placeholder may come first, before
        any layer: the model is then built for its shape, as it is when the
        first layer carries ``input_shape=``.  A layer added to a built model
        is built for the current output shape.
        """
        if isinstance(layer, SymbolicTensor):
            if self.layers or self.built:
                raise ValueError("an Input can only be the first element of a Sequential model")
            self.input_shape = layer.shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential takes convpool layers, got {type(layer).__name__}")
        if self.built:
            assert self.input_shape is not None
            shape = self.compute_output_shape(self.input_shape)
            layer.compute_output_shape(shape)  # validates before appending
            if not layer.built:
                layer.build(shape)
            self.layers.append(layer)
            return
        self.layers.append(layer)
        if len(self.layers) == 1 and layer.batch_input_shape is not None:
            self.build(layer.batch_input_shape)

    @property
    def built(self) -> bool:
        return self.input_shape is not None

    def build(self, input_shape: ShapeLike) -> None:
        """Build every layer for inputs of ``input_shape`` (batch may be None)."""
        shape = tuple(input_shape)
        for layer in self.layers:
            next_shape = layer.compute_output_shape(shape)
            if not layer.built:
                layer.build(shape)
            shape = next_shape
        self.input_shape = tuple(input_shape)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        """Output shape for ``input_shape``, without building anything."""
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def __call__(self, x: ArrayLike) -> NDArray[Any]:
        if isinstance(x, SymbolicTensor):
            raise TypeError(f"model {self.name!r} cannot be called on a symbolic tensor: "
                            f"nesting models in a functional graph is not supported")
        out = as_array(x, "x")
        if not self.built:
            self.compute_output_shape(out.shape)  # validate every layer first
            self.input_shape = (None,) + tuple(out.shape[1:])
        for layer in self.layers:
            out = layer(out)
        return out

    # ---- training -------------------------------------------------------------
    def forward(self, x: ArrayLike, training: bool = False) -> NDArray[Any]:
        """The model's output; ``training=True`` keeps what :meth:`backward` needs."""
        x = as_array(x, "x")
        if not self.built:
            self.compute_output_shape(x.shape)
            self.input_shape = (None,) + tuple(x.shape[1:])
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, grad_out: ArrayLike, *, pre_activation: bool = False) -> None:
        """Back-propagate through every layer of the last ``forward(x, training=True)``.

        The weights' gradients go to each layer's ``.grads`` (and :attr:`grads`);
        the first layer's input gradient is not computed.  A MaxPool2D after
        a Conv2D or Dense with ``activation="relu"`` takes the gradient
        through that ReLU in its own pass (the same bits as layer by layer).

        Parameters
        ----------
        grad_out : array_like of the model output's shape
        pre_activation : bool, keyword-only, default False
            ``grad_out`` is the gradient before the last layer's activation
            (see :meth:`Layer.backward`).

        Returns
        -------
        None
        """
        grad: ArrayLike | None = grad_out
        last = len(self.layers) - 1
        past_relu = False  # grad is already through layer i's fused ReLU
        for i in range(last, -1, -1):
            layer = self.layers[i]
            if _pools_a_relu(self.layers, i) and not (pre_activation and i == last):
                # A max pool after a layer's fused ReLU takes the gradient
                # through both in one pass (the same bits as two).
                grad = cast("MaxPool2D", layer).backward_through_relu(cast("ArrayLike", grad))
                past_relu = True
                continue
            # None only from the first layer (input_grad=False), the last step.
            grad = layer.backward(cast("ArrayLike", grad), input_grad=i > 0,
                                  pre_activation=past_relu or (pre_activation and i == last))
            past_relu = False

    # ---- saving -----------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The architecture: every layer's class and constructor arguments."""
        return {
            "name": self.name,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "layers": [{"class": type(l).__name__, "config": l.get_config()} for l in self.layers],
        }

    def summary_table(self) -> SummaryTable:
        """The table :meth:`summary` prints, as data (a :class:`SummaryTable`).

        Raises
        ------
        ValueError
            If the model is not built.
        """
        if not self.built:
            raise ValueError(
                "the model is not built: call it on an input, or pass input_shape / call build()"
            )
        assert self.input_shape is not None  # self.built
        table = SummaryTable(self.name, self.input_shape)
        shape = self.input_shape
        image = len(shape) == 4
        whole: tuple[int | None, int | None] | None
        rf: OptionalPair
        jump: OptionalPair
        if image:
            # The first data_format a layer sets (the generator skips None).
            data_format = cast(str, next(
                (getattr(layer, "data_format", None) for layer in self.layers
                 if getattr(layer, "data_format", None)),
                "channels_last",
            ))
            _, h, w, _ = to_nhwc_shape(shape, data_format)
            whole = (h, w)
            rf, jump = (1, 1), (1, 1)
        else:
            whole, rf, jump = None, None, None
        for layer in self.layers:
            out_shape = layer.compute_output_shape(shape)
            if image and rf is not None:
                rf, jump = layer.receptive_field(rf, jump, shape)
            params = layer.count_params()
            table.rows.append(
                {
                    "name": layer.name,
                    "type": type(layer).__name__,
                    "output_shape": out_shape,
                    "params": params,
                    "receptive_field": rf,
                    "jump": jump,
                    "whole_input": whole if (image and rf is None) else None,
                }
            )
            table.total_params += params
            table.trainable_params += sum(int(w.size) for w in layer.trainable_weights)
            shape = out_shape
        return table


def _pools_a_relu(layers: list[Layer], i: int) -> bool:
    """Whether layers[i] is a max pool of the output of a Conv2D or Dense
    layer's fused ReLU (and not the first layer)."""
    from ..layers import Conv2D, Dense, MaxPool2D

    if i == 0 or type(layers[i]) is not MaxPool2D:
        return False
    prev = layers[i - 1]
    return type(prev) in (Conv2D, Dense) and getattr(prev, "_fused", None) == "relu"

