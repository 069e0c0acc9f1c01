"""Model: Keras's functional API, a graph of layers from inputs to outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from numpy.typing import ArrayLike, NDArray

from .._checks import as_array, to_nhwc_shape
from ..layers import Layer, OptionalPair, Shape, SymbolicTensor
from ..layers.base import _default_name
from ..layers.merging import _Merge
from .base import ModelBase
from .summary import SummaryTable


class _Node:
    """One layer call of the graph: its input tensors and its output, by index."""

    __slots__ = ("layer", "inputs", "output")

    def __init__(self, layer: Layer, inputs: tuple[int, ...], output: int) -> None:
        self.layer = layer
        self.inputs = inputs
        self.output = output


class Model(ModelBase):
    """A model from its inputs to its outputs, Keras's functional API.

    Call layers on the :class:`~convpool.layers.SymbolicTensor` an
    :func:`~convpool.layers.Input` returns, then make a Model of the inputs
    and the outputs.  The layers may branch and join again (Add,
    Concatenate, ...): residual and U-Net-style nets.

    Parameters
    ----------
    inputs : SymbolicTensor or list of SymbolicTensor
        :func:`~convpool.layers.Input` placeholders.
    outputs : SymbolicTensor or list of SymbolicTensor
        What layers called on them returned.
    name : str, optional
    trainable : bool, optional
        Keras's argument; only True.

    Attributes
    ----------
    layers : list of Layer
        Every layer of the graph once, in an order where each comes after
        the layers it takes its input from (the order of :attr:`weights`).
    inputs, outputs : list of SymbolicTensor

    Notes
    -----
    ``fit``, ``evaluate`` and ``predict`` take models of one input and one
    output; a model of several inputs or outputs is called on a list of
    arrays and returns a list (``model([a, b])``).  A layer is used once in
    the graph (Keras's shared layers are a ValueError).  The gradient of a
    tensor read by several layers is the sum of theirs, added in the
    reverse of :attr:`layers`' order: the same bits for any thread count.

    Examples
    --------
    A residual block:

    >>> import numpy as np
    >>> from convpool.layers import Input, Conv2D, Add, GlobalAveragePooling2D, Dense
    >>> x = Input(shape=(16, 16, 8))
    >>> h = Conv2D(8, 3, padding="same", activation="relu")(x)
    >>> h = Conv2D(8, 3, padding="same")(h)
    >>> y = Dense(10, activation="softmax")(GlobalAveragePooling2D()(Add()([x, h])))
    >>> model = Model(x, y)
    >>> model.count_params(), model.predict(np.zeros((4, 16, 16, 8), np.float32)).shape
    (1258, (4, 10))
    """

    def __init__(
        self,
        inputs: SymbolicTensor | Sequence[SymbolicTensor] | None = None,
        outputs: SymbolicTensor | Sequence[SymbolicTensor] | None = None,
        name: str | None = None,
        trainable: bool = True,
    ) -> None:
        if inputs is None or outputs is None:
            raise TypeError("Model(inputs, outputs) needs the symbolic inputs and outputs of a "
                            "graph of layers (Keras's functional API); subclassing Model with "
                            "a call() method is not supported")
        if trainable is not True:
            raise ValueError("Model(trainable=False) is not supported")
        self.name = name if name is not None else _default_name("Functional")
        self._single_input = isinstance(inputs, SymbolicTensor)
        self._single_output = isinstance(outputs, SymbolicTensor)
        self.inputs = _tensor_list(inputs, "inputs")
        self.outputs = _tensor_list(outputs, "outputs")
        for t in self.inputs:
            if t.layer is not None:
                raise ValueError(f"inputs must be Input placeholders; {t.name!r} is the output of "
                                 f"layer {t.layer.name!r}")
        if len({id(t) for t in self.inputs}) != len(self.inputs):
            raise ValueError("inputs lists an Input twice")
        self._tensors, self._nodes = _graph(self.inputs, self.outputs)
        self.layers = [node.layer for node in self._nodes]
        self._out_index = [self._tensors.index(t) for t in self.outputs]
        # How many nodes (and outputs) read each tensor: a forward pass frees
        # an intermediate value after its last reader.
        readers = [0] * len(self._tensors)
        for node in self._nodes:
            for i in node.inputs:
                readers[i] += 1
        for i in self._out_index:
            readers[i] += 1
        self._readers = readers

    # ---- shapes -----------------------------------------------------------------
    @property
    def built(self) -> bool:
        return True  # every layer was built when it was called on its input

    @property
    def input_shape(self) -> Any:
        """The input's shape (batch axis first), or a list of them."""
        shapes = [t.shape for t in self.inputs]
        return shapes[0] if self._single_input else shapes

    @property
    def output_shape(self) -> Any:
        """The output's shape (batch axis first), or a list of them."""
        shapes = [t.shape for t in self.outputs]
        return shapes[0] if self._single_output else shapes

    def compute_output_shape(self, input_shape: Any) -> Any:
        """The output shape(s) for a batch of ``input_shape`` (its batch axis is
        carried over; the rest must be the inputs' shapes)."""
        shapes = [tuple(input_shape)] if self._single_input else [tuple(s) for s in input_shape]
        self._check_shapes(shapes)
        batch = shapes[0][0] if shapes and shapes[0] else None
        out = [(batch,) + tuple(t.shape[1:]) for t in self.outputs]
        return out[0] if self._single_output else out

    def _check_shapes(self, shapes: Sequence[Shape]) -> None:
        if len(shapes) != len(self.inputs):
            raise ValueError(f"model {self.name!r} takes {len(self.inputs)} inputs, got "
                             f"{len(shapes)}")
        batches = set()
        for t, shape in zip(self.inputs, shapes):
            ok = len(shape) == len(t.shape) and all(
                want is None or got == want for want, got in zip(t.shape, shape))
            if not ok:
                raise ValueError(f"model {self.name!r}: input {t.name!r} has shape {t.shape}, "
                                 f"got an input of shape {tuple(shape)}")
            batches.add(shape[0])
        if len(batches) > 1:
            raise ValueError(f"model {self.name!r}: the inputs' batch sizes differ: "
                             f"{[tuple(s) for s in shapes]}")

    # ---- calling and training -----------------------------------------------------------
    def __call__(self, x: Any) -> Any:
        if isinstance(x, SymbolicTensor):
            raise TypeError(f"model {self.name!r} cannot be called on a symbolic tensor: "
                            f"nesting models in a functional graph is not supported")
        return self.forward(x)

    def _arrays(self, x: Any) -> list[NDArray[Any]]:
        if self._single_input:
            xs = [as_array(x, "x")]
        else:
            if not isinstance(x, (list, tuple)):
                raise TypeError(f"model {self.name!r} takes {len(self.inputs)} inputs: pass a "
                                f"list of arrays, got {type(x).__name__}")
            xs = [as_array(v, f"x[{i}]") for i, v in enumerate(x)]
        self._check_shapes([v.shape for v in xs])
        return xs

    def forward(self, x: Any, training: bool = False) -> Any:
        """The model's output; ``training=True`` keeps what :meth:`backward` needs.

        Parameters
        ----------
        x : array_like, or a list of them (one per input)
        training : bool, default False

        Returns
        -------
        ndarray, or a list of them (one per output)
        """
        values: list[Any] = [None] * len(self._tensors)
        for i, v in enumerate(self._arrays(x)):
            values[i] = v
        left = list(self._readers)
        for node in self._nodes:
            args = [values[i] for i in node.inputs]
            values[node.output] = node.layer.forward(
                args if node.layer._takes_list else args[0], training=training)
            for i in node.inputs:  # intermediates go once read by their last layer
                left[i] -= 1
                if left[i] == 0:
                    values[i] = None
        outs = [values[i] for i in self._out_index]
        return outs[0] if self._single_output else outs

    def backward(self, grad_out: ArrayLike, *, pre_activation: bool = False) -> None:
        """Back-propagate through the graph of the last ``forward(x, training=True)``.

        The weights' gradients go to each layer's ``.grads`` (and
        :attr:`grads`); the inputs' gradients are not computed.

        Parameters
        ----------
        grad_out : array_like of the output's shape
            The model must have one output.
        pre_activation : bool, keyword-only, default False
            ``grad_out`` is the gradient before the output layer's activation
            (see :meth:`Layer.backward`).
        """
        if not self._single_output:
            raise ValueError(f"model {self.name!r} has {len(self.outputs)} outputs: backward "
                             f"takes models of one output")
        grads: list[Any] = [None] * len(self._tensors)
        grads[self._out_index[0]] = grad_out
        n_inputs = len(self.inputs)
        last = self._nodes[-1] if self._nodes else None
        for node in reversed(self._nodes):
            grad = grads[node.output]
            grads[node.output] = None
            # Every node leads to the output, so its gradient is set.
            need = any(i >= n_inputs for i in node.inputs)
            got = node.layer.backward(grad, input_grad=need,
                                      pre_activation=pre_activation and node is last)
            if not need:
                continue
            parts = cast("list[NDArray[Any]]", got if node.layer._takes_list else [got])
            for i, g in zip(node.inputs, parts):
                if i >= n_inputs:
                    grads[i] = g if grads[i] is None else grads[i] + g

    def predict(self, x: Any, batch_size: int | None = None, verbose: object = "auto",
                steps: None = None, callbacks: None = None) -> Any:
        """The model's output for ``x`` (see :meth:`Trainer.predict`); a model
        of several inputs or outputs takes and returns lists, in one call."""
        if self._single_input and self._single_output:
            return super().predict(x, batch_size, verbose, steps, callbacks)
        if steps is not None or callbacks is not None:
            raise ValueError("predict's steps and callbacks are not supported")
        return self.forward(x)

    def fit(self, x: ArrayLike, y: ArrayLike, *args: Any, **kwargs: Any) -> Any:
        self._one_in_one_out("fit")
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x: ArrayLike, y: ArrayLike, *args: Any, **kwargs: Any) -> Any:
        self._one_in_one_out("evaluate")
        return super().evaluate(x, y, *args, **kwargs)

    fit.__doc__ = ModelBase.fit.__doc__
    evaluate.__doc__ = ModelBase.evaluate.__doc__

    def _one_in_one_out(self, what: str) -> None:
        if not (self._single_input and self._single_output):
            raise ValueError(f"{what} takes models of one input and one output; model "
                             f"{self.name!r} has {len(self.inputs)} and {len(self.outputs)}")

    # ---- summary and saving --------------------------------------------------------------
    def summary_table(self) -> SummaryTable:
        """The table :meth:`summary` prints, as data: one row per input and
        per layer, with ``connected_to`` naming the layers (or inputs) each
        takes its input from, and the receptive field on the (first) input."""
        first = self.inputs[0].shape
        table = SummaryTable(self.name, first)
        data_format = cast(str, next(
            (getattr(layer, "data_format", None) for layer in self.layers
             if getattr(layer, "data_format", None)), "channels_last"))
        fields: list[OptionalPair] = []
        jumps: list[OptionalPair] = []
        wholes: list[Any] = []
        for t in self.inputs:
            image = len(t.shape) == 4
            whole = to_nhwc_shape(t.shape, data_format)[1:3] if image else None
            fields.append((1, 1) if image else None)
            jumps.append((1, 1) if image else None)
            wholes.append(whole)
            table.rows.append({"name": t.name, "type": "InputLayer", "output_shape": t.shape,
                               "params": 0, "receptive_field": fields[-1], "jump": jumps[-1],
                               "whole_input": None, "connected_to": []})
        for node in self._nodes:
            layer = node.layer
            if isinstance(layer, _Merge):
                rf, jump = layer.merge_receptive_field([fields[i] for i in node.inputs],
                                                       [jumps[i] for i in node.inputs])
            elif fields[node.inputs[0]] is None:
                rf, jump = None, None
            else:
                rf, jump = layer.receptive_field(fields[node.inputs[0]], jumps[node.inputs[0]],
                                                 self._tensors[node.inputs[0]].shape)
            whole = wholes[node.inputs[0]]
            fields.append(rf)
            jumps.append(jump)
            wholes.append(whole)
            params = layer.count_params()
            table.rows.append({
                "name": layer.name, "type": type(layer).__name__,
                "output_shape": self._tensors[node.output].shape, "params": params,
                "receptive_field": rf, "jump": jump,
                "whole_input": whole if rf is None else None,
                "connected_to": [self._tensors[i].name for i in node.inputs],
            })
            table.total_params += params
            table.trainable_params += sum(int(w.size) for w in layer.trainable_weights)
        return table

    def get_config(self) -> dict[str, Any]:
        """The graph: the inputs, every layer's class, arguments and input
        tensors, and the outputs.  Tensors are numbered: the inputs first, then
        each layer's output in :attr:`layers`' order."""
        return {
            "name": self.name,
            "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype.name}
                       for t in self.inputs],
            "layers": [{"class": type(n.layer).__name__, "config": n.layer.get_config(),
                        "inbound": list(n.inputs)} for n in self._nodes],
            "outputs": list(self._out_index),
            "single_input": self._single_input,
            "single_output": self._single_output,
        }


def _tensor_list(value: object, name: str) -> list[SymbolicTensor]:
    items = [value] if isinstance(value, SymbolicTensor) else value
    if not isinstance(items, (list, tuple)) or not items or not all(
            isinstance(t, SymbolicTensor) for t in items):
        raise TypeError(f"{name} must be a symbolic tensor (from Input or a layer called on one) "
                        f"or a non-empty list of them, got {value!r}")
    return list(items)


def _graph(inputs: list[SymbolicTensor], outputs: list[SymbolicTensor]
           ) -> tuple[list[SymbolicTensor], list[_Node]]:
    """The tensors (inputs first) and the layer calls from ``inputs`` to
    ``outputs``, each call after the calls it reads from (depth first, the
    outputs and each call's inputs in order)."""
    tensors: list[SymbolicTensor] = list(inputs)
    index = {id(t): i for i, t in enumerate(tensors)}
    nodes: list[_Node] = []
    used: dict[int, str] = {}
    # An explicit stack (not recursion): a deep net must not hit Python's limit.
    for out in outputs:
        stack: list[tuple[SymbolicTensor, bool]] = [(out, False)]
        on_path: set[int] = set()
        while stack:
            t, expanded = stack.pop()
            if id(t) in index and not expanded:
                continue
            if t.layer is None:
                raise ValueError(f"the outputs depend on Input {t.name!r}, which is not one of "
                                 f"the model's inputs")
            if not expanded:
                if id(t) in on_path:  # pragma: no cover - symbolic calls cannot make cycles
                    raise ValueError("the layer graph has a cycle")
                on_path.add(id(t))
                stack.append((t, True))
                for src in reversed(t.inputs):
                    if id(src) not in index:
                        stack.append((src, False))
                continue
            on_path.discard(id(t))
            if id(t) in index:
                continue
            layer = t.layer
            if id(layer) in used:
                raise ValueError(f"layer {layer.name!r} is called at two places of the graph; "
                                 f"convpool's Model does not share layers")
            used[id(layer)] = layer.name
            index[id(t)] = len(tensors)
            tensors.append(t)
            nodes.append(_Node(layer, tuple(index[id(s)] for s in t.inputs), index[id(t)]))
    return tensors, nodes


def model_from_config(config: dict[str, Any], weights: list[Any]) -> Model:
    """A Model from :meth:`Model.get_config` and its weights (checked as
    :func:`~convpool.models.saving.load` checks them).

    The configuration is untrusted: every tensor number must name an input
    or an earlier layer's output, and each layer's weights are checked
    against the shapes its configuration implies before it is connected.
    """
    from ..layers import LAYERS, Input
    from .saving import _layer_from_entry

    specs = config.get("inputs")
    if not isinstance(specs, list) or not specs:
        raise ValueError("its config's inputs must be a non-empty list")
    tensors: list[SymbolicTensor] = []
    for i, spec in enumerate(specs):
        if not (isinstance(spec, dict) and isinstance(spec.get("name"), str)
                and isinstance(spec.get("shape"), list) and spec.get("dtype") in
                ("float32", "float64") and spec["shape"] and all(
                    d is None or (type(d) is int and d >= 0) for d in spec["shape"])):
            raise ValueError(f"input {i} of its config is not {{'name': str, 'shape': "
                             f"[ints or nulls], 'dtype': 'float32' | 'float64'}}")
        tensors.append(Input(batch_shape=tuple(spec["shape"]), dtype=spec["dtype"],
                             name=spec["name"]))
    inputs = list(tensors)
    at = 0
    for j, entry in enumerate(config["layers"]):
        layer = _layer_from_entry(entry, j, LAYERS)
        inbound = entry.get("inbound")
        if not (isinstance(inbound, list) and inbound and all(
                type(i) is int and 0 <= i < len(tensors) for i in inbound)):
            raise ValueError(f"layer {j} of its config: inbound must list earlier tensors "
                             f"(0 to {len(tensors) - 1}), got {inbound!r}")
        args = [tensors[i] for i in inbound]
        shape: Any = [t.shape for t in args] if layer._takes_list else args[0].shape
        if not layer._takes_list and len(args) != 1:
            raise ValueError(f"layer {j} ({entry['class']}) takes one input, its config "
                             f"lists {len(args)}")
        count = len(layer.weight_shapes(shape))
        layer._adopt_weights(shape, weights[at : at + count])
        at += count
        tensors.append(layer(args if layer._takes_list else args[0]))
    if at != len(weights):
        raise ValueError(f"the layers take {at} weight arrays, the file holds {len(weights)}")
    outs = config.get("outputs")
    if not (isinstance(outs, list) and outs and all(
            type(i) is int and 0 <= i < len(tensors) for i in outs)):
        raise ValueError(f"its config's outputs must list tensors 0 to {len(tensors) - 1}, got "
                         f"{outs!r}")
    single_in, single_out = config.get("single_input"), config.get("single_output")
    if not isinstance(single_in, bool) or not isinstance(single_out, bool) or (
            single_in and len(inputs) != 1) or (single_out and len(outs) != 1):
        raise ValueError("its config's single_input / single_output must be booleans that "
                         "agree with the inputs and outputs")
    name = config.get("name")
    if not isinstance(name, str):
        raise ValueError(f"its config's name must be a string, got {name!r}")
    model = Model(inputs[0] if single_in else inputs,
                  tensors[outs[0]] if single_out else [tensors[i] for i in outs], name=name)
    if len(model.layers) != len(config["layers"]):
        raise ValueError("its config has layers that do not lead to an output")
    return model
