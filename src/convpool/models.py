"""Sequential: a stack of layers, with Keras's count_params and summary.

``summary()`` also reports what the seed tutorial reasons about: for every
layer, its receptive field on the network input (how many input pixels one
output value sees) and its jump (the distance on the input between
neighbouring outputs, i.e. the product of the strides so far).  Pooling grows
the receptive field without adding a parameter; a Dense after Flatten sees the
whole input.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._checks import as_array, check_int, to_nhwc_shape
from ._progress import Progress
from .layers import LAYERS, Layer, OptionalPair, Shape, ShapeLike, SymbolicTensor
from .layers.base import _default_name
from .losses import LOSSES, Loss
from .optimizers import Adam, Optimizer

__all__ = ["Sequential", "SummaryTable", "load"]

#: summary()'s default print_fn: print (an explicit None keeps the old meaning).
_PRINT: Any = object()


def _fmt_pair(pair: tuple[int | None, int | None] | None) -> str:
    return "-" if pair is None else f"{pair[0]}x{pair[1]}"


def _fmt_shape(shape: Shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (
        ",)" if len(shape) == 1 else ")"
    )


class SummaryRow(TypedDict):
    """One layer's row of :class:`SummaryTable` (see there)."""

    name: str
    type: str
    output_shape: Shape
    params: int
    receptive_field: OptionalPair
    jump: OptionalPair
    whole_input: tuple[int | None, int | None] | None


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
    input_shape: Shape
    rows: list[SummaryRow] = field(default_factory=list)
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

        def line(cells: tuple[str, ...]) -> str:
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
            next_shape = layer.compute_output_shape(shape)  # validates before appending
            del next_shape
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
        x = as_array(x, "x")
        if not self.built:
            self.compute_output_shape(x.shape)  # validate every layer first
            self.input_shape = (None,) + tuple(x.shape[1:])
        for layer in self.layers:
            x = layer(x)
        return x

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

    def backward(self, grad_out: ArrayLike) -> None:
        """Back-propagate through every layer of the last ``forward(x, training=True)``.

        The weights' gradients go to each layer's ``.grads`` (and :attr:`grads`);
        the first layer's input gradient is not computed.

        Parameters
        ----------
        grad_out : array_like of the model output's shape

        Returns
        -------
        None
        """
        grad: ArrayLike | None = grad_out
        for i in range(len(self.layers) - 1, -1, -1):
            # None only from the first layer (input_grad=False), the last step.
            grad = self.layers[i].backward(cast("ArrayLike", grad), input_grad=i > 0)

    @property
    def grads(self) -> list[NDArray[Any]]:
        """The weights' gradients from the last :meth:`backward`, aligned with :attr:`weights`."""
        return [g for layer in self.layers for g in layer.grads]

    def predict(self, x: ArrayLike, batch_size: int | None = None) -> NDArray[Any]:
        """The model's output for ``x``, computed ``batch_size`` samples at a time.

        Parameters
        ----------
        x : array_like of shape (N, ...)
        batch_size : int, optional
            Default: the whole batch in one call.

        Returns
        -------
        ndarray of shape (N, ...)
        """
        x = as_array(x, "x")
        if batch_size is None or x.shape[0] <= batch_size:
            return self.forward(x)
        batch_size = check_int(batch_size, "batch_size")
        return np.concatenate(
            [self.forward(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
        )

    def evaluate(
        self,
        x: ArrayLike,
        y: ArrayLike,
        batch_size: int | None = None,
        loss: str | Loss = "softmax_cross_entropy",
    ) -> tuple[float, float]:
        """Mean loss and accuracy (argmax of the output against the labels) on ``(x, y)``.

        Returns
        -------
        (loss, accuracy) : tuple of float
        """
        logits = self.predict(x, batch_size)
        loss_fn = _loss(loss)
        value, _ = loss_fn(logits, y)
        return value, _accuracy(logits, y)

    def fit(
        self,
        x: ArrayLike,
        y: ArrayLike,
        epochs: int = 1,
        batch_size: int = 32,
        optimizer: Optimizer | None = None,
        loss: str | Loss = "softmax_cross_entropy",
        validation_data: tuple[ArrayLike, ArrayLike] | None = None,
        shuffle: bool = True,
        seed: int | None = None,
        verbose: bool = True,
    ) -> dict[str, list[float]]:
        """Train the model by mini-batch gradient descent.

        Parameters
        ----------
        x : array_like of shape (N, ...)
        y : array_like of shape (N,) (class indices) or (N, K)
        epochs : int, default 1
        batch_size : int, default 32
        optimizer : Optimizer, optional
            Default ``Adam()``.  Keep passing the same one to continue training.
        loss : str or callable, default "softmax_cross_entropy"
            A name from ``convpool.losses.LOSSES`` or ``f(output, y) -> (loss, grad)``.
        validation_data : (x_val, y_val), optional
            Evaluated after every epoch.
        shuffle : bool, default True
            Shuffle the samples every epoch (with ``numpy.random.default_rng(seed)``).
        seed : int, optional
        verbose : bool, default True
            A progress bar per epoch on stderr, with the running loss and accuracy.

        Returns
        -------
        dict
            Per-epoch ``loss`` and ``accuracy`` (means over the epoch's batches),
            and ``val_loss`` / ``val_accuracy`` with validation data.
        """
        x = as_array(x, "x")
        y = as_array(y, "y")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y must have the same length, got {x.shape} and {y.shape}")
        epochs = check_int(epochs, "epochs")
        batch_size = check_int(batch_size, "batch_size")
        optimizer = Adam() if optimizer is None else optimizer
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a convpool Optimizer, got {type(optimizer).__name__}")
        loss_fn = _loss(loss)
        rng = np.random.default_rng(seed)
        history: dict[str, list[float]] = {"loss": [], "accuracy": []}
        if validation_data is not None:
            history["val_loss"], history["val_accuracy"] = [], []
        progress = Progress() if verbose else None
        n = x.shape[0]
        steps = -(-n // batch_size)
        x_batch = np.empty((min(batch_size, n),) + x.shape[1:], x.dtype)
        for epoch in range(epochs):
            order = rng.permutation(n) if shuffle else np.arange(n)
            started = time.perf_counter()
            losses: list[float] = []
            hits: float = 0
            for step in range(steps):
                idx = order[step * batch_size : (step + 1) * batch_size]
                # The batch is gathered into one buffer reused every step
                # (the layers need it only until this step's backward).
                xb = np.take(x, idx, axis=0, out=x_batch[: len(idx)])
                out = self.forward(xb, training=True)
                value, grad = loss_fn(out, y[idx])
                self.backward(grad)
                optimizer.apply(self.weights, self.grads)
                losses.append(value * len(idx))
                hits += _accuracy(out, y[idx]) * len(idx)
                if progress is not None:
                    seen = min((step + 1) * batch_size, n)
                    progress.update(f"epoch {epoch + 1}/{epochs}", step + 1, steps, started,
                                    f"loss {sum(losses) / seen:.4f}  acc {hits / seen:.4f}")
            history["loss"].append(sum(losses) / n)
            history["accuracy"].append(hits / n)
            if validation_data is not None:
                val_loss, val_acc = self.evaluate(*validation_data, batch_size=batch_size,
                                                  loss=loss_fn)
                history["val_loss"].append(val_loss)
                history["val_accuracy"].append(val_acc)
                if progress is not None:
                    progress.stream.write(f"  val_loss {val_loss:.4f}  val_acc {val_acc:.4f}\n")
        for layer in self.layers:  # what backward kept is no longer needed
            layer._saved = None
        return history

    # ---- saving -----------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The architecture: every layer's class and constructor arguments."""
        return {
            "name": self.name,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "layers": [{"class": type(l).__name__, "config": l.get_config()} for l in self.layers],
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the architecture and the weights to one ``.npz`` file (see :func:`load`)."""
        if not self.built:
            raise ValueError("the model is not built: there are no weights to save")
        # Any: numpy's stub types savez's **kwds against its allow_pickle (bool) too.
        arrays: dict[str, Any] = {f"weight_{i}": w for i, w in enumerate(self.weights)}
        np.savez(path, config=np.array(json.dumps(self.get_config())), **arrays)

    @property
    def weights(self) -> list[NDArray[Any]]:
        """All layers' weights, in layer order."""
        return [w for layer in self.layers for w in layer.weights]

    def get_weights(self) -> list[NDArray[Any]]:
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights: Iterable[ArrayLike]) -> None:
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

    def summary(self, line_length: int | None = None, positions: Any = None,
                print_fn: Any = _PRINT, **kwargs: Any) -> SummaryTable | None:
        """Print a table of the layers, as Keras's ``summary()`` (and return None).

        For each layer: its output shape, its parameter count, and its
        receptive field and jump on the input (for image inputs; per axis, in
        input pixels).  Totals at the end.  :meth:`summary_table` returns the
        same as data.

        Parameters
        ----------
        line_length, positions, **kwargs :
            Keras's layout arguments (``expand_nested``, ``show_trainable``,
            ...), accepted and ignored: the table sizes its columns itself.
        print_fn : callable, optional
            Called with each line (Keras's meaning; default: print).  An
            explicit ``print_fn=None`` keeps convpool's earlier meaning, deprecated:
            print nothing and return the table (use :meth:`summary_table`).

        Returns
        -------
        None
        """
        if print_fn is None:
            warnings.warn("summary(print_fn=None) returning the table is deprecated: "
                          "use summary_table()", DeprecationWarning, stacklevel=2)
            return self.summary_table()
        table = self.summary_table()
        emit = print if print_fn is _PRINT else print_fn
        for text in str(table).split("\n"):
            emit(text)
        return None

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
            shape = out_shape
        return table


def _loss(loss: str | Loss) -> Loss:
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)} or a callable, got {loss!r}")
    return LOSSES[loss]


def _accuracy(output: ArrayLike, y: ArrayLike) -> float:
    """Share of rows whose argmax matches the label (class index or one-hot row)."""
    output = np.asarray(output)
    y = np.asarray(y)
    if output.ndim != 2 or len(output) == 0:
        return float("nan")
    labels = y.argmax(axis=1) if y.ndim == 2 else y
    return float(np.mean(output.argmax(axis=1) == labels))


def load(path: str | os.PathLike[str]) -> Sequential:
    """A Sequential model saved by :meth:`Sequential.save`, with its weights.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file.

    Returns
    -------
    Sequential
    """
    with np.load(path, allow_pickle=False) as data:
        config = json.loads(str(data["config"]))
        weights = [data[f"weight_{i}"] for i in range(len(data.files) - 1)]
    layers = []
    for entry in config["layers"]:
        cls = LAYERS.get(entry["class"])
        if cls is None:
            raise ValueError(f"unknown layer class {entry['class']!r} in {path}")
        cfg = dict(entry["config"])
        for key in ("kernel_size", "strides", "dilation_rate", "pool_size"):
            if isinstance(cfg.get(key), list):
                cfg[key] = tuple(cfg[key])
        if isinstance(cfg.get("padding"), list):
            cfg["padding"] = _tuples(cfg["padding"])
        layers.append(cls.from_config(cfg))
    input_shape = config["input_shape"]
    model = Sequential(layers, input_shape=None if input_shape is None else tuple(input_shape),
                       name=config["name"])
    model.set_weights(weights)
    return model


def _tuples(value: object) -> object:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
