"""Sequential: a stack of layers, with Keras's count_params and summary.

``summary()`` also reports what the seed tutorial reasons about: for every
layer, its receptive field on the network input (how many input pixels one
output value sees) and its jump (the distance on the input between
neighbouring outputs, i.e. the product of the strides so far).  Pooling grows
the receptive field without adding a parameter; a Dense after Flatten sees the
whole input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._checks import as_array, to_nhwc_shape
from .layers import Layer, _default_name

__all__ = ["Sequential", "SummaryTable"]


def _fmt_pair(pair) -> str:
    return "-" if pair is None else f"{pair[0]}x{pair[1]}"


def _fmt_shape(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (
        ",)" if len(shape) == 1 else ")"
    )


@dataclass
class SummaryTable:
    """What :meth:`Sequential.summary` prints, as data.

    Attributes
    ----------
    name : str
        The model's name.
    input_shape : tuple
    rows : list of dict
        One per layer: ``name``, ``type``, ``output_shape``, ``params``,
        ``receptive_field`` and ``jump`` ((h, w) pairs on the input, or None
        when the layer mixes every position, or when the input is not an image).
    total_params : int
    """

    name: str
    input_shape: tuple
    rows: list = field(default_factory=list)
    total_params: int = 0

    def __str__(self) -> str:
        header = ("Layer (type)", "Output Shape", "Param #", "Receptive field", "Jump")
        body = []
        for r in self.rows:
            rf = r["receptive_field"]
            if rf is None and r.get("whole_input") is not None:
                rf_text = f"{_fmt_pair(r['whole_input'])} (all)"
            else:
                rf_text = _fmt_pair(rf)
            body.append(
                (
                    f"{r['name']} ({r['type']})",
                    _fmt_shape(r["output_shape"]),
                    f"{r['params']:,}",
                    rf_text,
                    _fmt_pair(r["jump"]),
                )
            )
        widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))

        def line(cells):
            return "  ".join(
                c.rjust(w) if i == 2 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
            ).rstrip()

        out = [f'Model: "{self.name}"', f"Input shape: {_fmt_shape(self.input_shape)}", rule,
               line(header), rule.replace("-", "=")]
        out += [line(b) for b in body]
        out += [rule, f"Total params: {self.total_params:,}",
                f"Trainable params: {self.total_params:,}", "Non-trainable params: 0"]
        return "\n".join(out)


class Sequential:
    """A linear stack of layers.

    Parameters
    ----------
    layers : list of Layer, optional
    input_shape : tuple, optional
        Full input shape including the batch axis (which may be None); when
        given the model is built at once, otherwise at the first call.
    name : str, optional

    Examples
    --------
    >>> from convpool.layers import Conv2D, MaxPool2D, Flatten, Dense
    >>> model = Sequential([Conv2D(16, 5, strides=5, use_bias=False), MaxPool2D(2),
    ...                     Flatten(), Dense(1, use_bias=False)],
    ...                    input_shape=(None, 1920, 1080, 3))
    >>> model.count_params()
    332976
    """

    def __init__(self, layers=None, input_shape=None, name=None):
        self.name = name if name is not None else _default_name("Sequential")
        self.layers: list[Layer] = []
        self.input_shape: tuple | None = None
        for layer in layers or []:
            self.add(layer)
        if input_shape is not None:
            self.build(input_shape)

    def add(self, layer: Layer) -> None:
        """Append ``layer`` (the model must not be built yet)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential takes convpool layers, got {type(layer).__name__}")
        if self.input_shape is not None:
            raise ValueError("cannot add a layer to a built model")
        self.layers.append(layer)

    @property
    def built(self) -> bool:
        return self.input_shape is not None

    def build(self, input_shape) -> None:
        """Build every layer for inputs of ``input_shape`` (batch may be None)."""
        shape = tuple(input_shape)
        for layer in self.layers:
            next_shape = layer.compute_output_shape(shape)
            if not layer.built:
                layer.build(shape)
            shape = next_shape
        self.input_shape = tuple(input_shape)

    def compute_output_shape(self, input_shape) -> tuple:
        """Output shape for ``input_shape``, without building anything."""
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def __call__(self, x):
        x = as_array(x, "x")
        if not self.built:
            self.compute_output_shape(x.shape)  # validate every layer first
            self.input_shape = (None,) + tuple(x.shape[1:])
        for layer in self.layers:
            x = layer(x)
        return x

    predict = __call__

    @property
    def weights(self) -> list[np.ndarray]:
        """All layers' weights, in layer order."""
        return [w for layer in self.layers for w in layer.weights]

    def get_weights(self) -> list[np.ndarray]:
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights) -> None:
        """Set all weights from a list in the order of :meth:`get_weights`."""
        weights = list(weights)
        expected = sum(len(layer.weights) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(f"model has {expected} weight arrays, got {len(weights)}")
        i = 0
        for layer in self.layers:
            k = len(layer.weights)
            if k:
                layer.set_weights(weights[i : i + k])
            i += k

    def count_params(self) -> int:
        """Total number of weights of all layers (the model must be built)."""
        if not self.built:
            raise ValueError(
                "the model is not built: call it on an input, or pass input_shape / call build()"
            )
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn=print) -> SummaryTable:
        """Print and return a table of the layers.

        For each layer: its output shape, its parameter count, and its
        receptive field and jump on the input (for image inputs; per axis, in
        input pixels).  Totals at the end.

        Parameters
        ----------
        print_fn : callable or None
            Called with the rendered table; None prints nothing.

        Returns
        -------
        SummaryTable
        """
        if not self.built:
            raise ValueError(
                "the model is not built: call it on an input, or pass input_shape / call build()"
            )
        table = SummaryTable(self.name, self.input_shape)
        shape = self.input_shape
        image = len(shape) == 4
        if image:
            data_format = next(
                (getattr(layer, "data_format", None) for layer in self.layers
                 if getattr(layer, "data_format", None)),
                "channels_last",
            )
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
            shape = out_shape
        if print_fn is not None:
            print_fn(str(table))
        return table
