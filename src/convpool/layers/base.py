"""The base of every layer (weights, building, shapes, parameter counts), the
kernel/bias pair and the sliding-window common part, and the helpers they share."""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias, TypeVar, cast

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from .. import _random, activations, initializers
from .._checks import (
    as_array,
    cast_weights,
    check_activation,
    check_bool,
    check_data_format,
    compute_dtype,
    to_nhwc_shape,
)
from .._shapes import (
    IntPair,
    Padding,
    Window2D,
    as_pair,
    receptive_field_step,
    resolve_padding,
    window_2d,
)


#: A shape as the layers see it: the batch axis (or any other) may be None.
Shape: TypeAlias = tuple[int | None, ...]
#: A shape as the layers take it: any sequence of ints and Nones.
ShapeLike: TypeAlias = Sequence[int | None]
#: A (height, width) pair, or None (receptive fields once positions are mixed).
#: Ints, or Fractions after a transposed conv (its outputs are 1/stride of an
#: input pixel apart).
OptionalPair: TypeAlias = tuple[Any, Any] | None

_L = TypeVar("_L", bound="Layer")


_name_counters: defaultdict[str, itertools.count[int]] = defaultdict(itertools.count)


def _sample_shape(input_shape: object) -> Shape | None:
    """``(None,) + input_shape`` for Keras's per-sample ``input_shape`` argument."""
    if input_shape is None:
        return None
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (input_shape,)
    if not isinstance(input_shape, (tuple, list)) or not all(
            d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0)
            for d in input_shape):
        raise TypeError(f"input_shape must be a tuple of non-negative ints (or None), one "
                        f"sample's shape without the batch axis, got {input_shape!r}")
    return (None,) + tuple(None if d is None else int(d) for d in input_shape)


def _default_name(cls_name: str) -> str:
    # Keras's to_snake_case: Conv2DTranspose -> conv2d_transpose, ReLU -> re_lu.
    snake = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", re.sub(r"\W+", "", cls_name))
    snake = re.sub("([a-z])([A-Z])", r"\1_\2", snake).lower()
    n = next(_name_counters[snake])
    return snake if n == 0 else f"{snake}_{n}"


def _float_dtype(dtype: DTypeLike | None) -> np.dtype[np.floating[Any]] | None:
    if dtype is None:
        return None
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32, float64 or None, got {dtype}")
    return cast("np.dtype[np.floating[Any]]", dtype)  # float32 or float64, checked above


def _check_padding_form(padding: Padding) -> None:
    """Reject an unknown or negative padding at construction time."""
    resolve_padding(padding, (1, 1), (1, 1), (1, 1))


def _relu_inplace(y: NDArray[Any]) -> NDArray[Any]:
    """max(0, y) in place, keeping NaN (as the fused conv kernel does)."""
    y[y < 0] = 0
    return y


class _WeightInit:
    """One weight's initializer, from a layer's Keras argument (``kernel_initializer=``, ...).

    None is Keras's ``add_weight`` default, glorot_uniform (for a bias too, as
    in Keras); the config keeps None.
    """

    def __init__(self, argument: str, identifier: object) -> None:
        self.argument = argument
        self._identifier = identifier
        init = initializers._get(identifier, argument)
        self.initializer = init if init is not None else initializers.GlorotUniform()

    def config(self) -> object:
        """What get_config writes: a name as given, None, Keras's dict for an object;
        a custom callable as itself (it has no JSON form: such a model cannot be saved)."""
        if self._identifier is None or isinstance(self._identifier, str):
            return self._identifier
        if isinstance(self.initializer, initializers.Initializer):
            return initializers.serialize(self.initializer)
        return self.initializer

    def draw(self, shape: tuple[int, ...], dtype: np.dtype[np.floating[Any]],
             rng: np.random.Generator) -> NDArray[Any]:
        """A new weight of ``shape`` and ``dtype`` (a custom callable's output checked)."""
        if isinstance(self.initializer, initializers.Initializer):
            return self.initializer(shape, dtype, rng)
        values = np.asarray(self.initializer(shape, dtype=dtype.name))  # Keras's fn(shape, dtype)
        if values.shape != shape:
            raise ValueError(f"{self.argument} returned an array of shape {values.shape} for a "
                             f"weight of shape {shape}")
        if values.dtype.kind not in "biuf":
            raise TypeError(f"{self.argument} returned an array of dtype {values.dtype}, "
                            f"expected real numbers")
        return np.array(values, dtype=dtype, copy=True)


def _draw_weights(layer: Layer, inits: dict[str, _WeightInit], shapes: list[tuple[int, ...]],
                  dtype: np.dtype[np.floating[Any]]) -> None:
    """``layer``'s weights, in :attr:`Layer.weights`' order, each drawn by its
    initializer from one generator seeded by the layer's seed."""
    rng = _random.generator(layer.seed)
    for name, shape in zip(layer._weight_names, shapes):
        layer._weights[name] = inits[name].draw(shape, dtype, rng)


def _inits_config(inits: dict[str, _WeightInit]) -> dict[str, object]:
    """The initializer arguments of a layer's config."""
    return {init.argument: init.config() for init in inits.values()}


def _none_only(**arguments: object) -> None:
    """Keras's regularizer and constraint arguments: None, else a ValueError."""
    for argument, value in arguments.items():
        if value is not None:
            what = "constraints" if argument.endswith("constraint") else "regularizers"
            raise ValueError(f"{argument}={value!r}: convpool's layers do not support {what}; "
                             f"pass None (the default)")


class SymbolicTensor:
    """A placeholder with a shape and a dtype and no values (Keras's KerasTensor).

    :func:`~convpool.layers.Input` makes one; a layer called on one returns
    another, recording the call, so that :class:`~convpool.models.Model`
    can be built from a model's inputs and outputs (Keras's functional API).
    A :class:`~convpool.Sequential` given an Input as its first element is
    built for its shape.

    Attributes
    ----------
    shape : tuple
        With the batch axis first (None when any batch size goes).
    dtype : numpy.dtype
    name : str
    layer : Layer or None
        The layer whose output this is; None for an Input.
    inputs : tuple of SymbolicTensor
        What that layer was called on (empty for an Input).
    """

    def __init__(self, shape: Shape, dtype: np.dtype[Any], name: str,
                 layer: Layer | None = None, inputs: tuple[SymbolicTensor, ...] = ()) -> None:
        self.shape = shape
        self.dtype = dtype
        self.name = name
        self.layer = layer
        self.inputs = inputs

    def __repr__(self) -> str:
        return f"<SymbolicTensor shape={self.shape}, dtype={self.dtype.name}, name={self.name}>"


class Layer:
    """Base of all layers: weights, building, shapes, parameter counts.

    Subclasses set ``_weight_names`` and implement ``_build_weights(input_shape,
    dtype)``, ``_call(x)``, ``_backward(grad_out, x, y, input_grad)``,
    ``compute_output_shape(input_shape)`` and ``get_config()``.

    Parameters
    ----------
    name : str, optional
        Defaults to the snake-case class name, numbered like Keras (``conv2d_1``).
    seed : int or None
        Seed of the weight initialiser.
    dtype : {None, "float32", "float64"}
        Weight dtype; None takes the compute dtype of the first input.
    input_shape : tuple, optional
        Keras's argument: the shape of one sample, without the batch axis
        (``input_shape=(28, 28, 1)``).  A :class:`~convpool.Sequential` whose
        first layer has it is built at once for ``(None,) + input_shape``.
    """

    _weight_names: tuple[str, ...] = ()
    #: The Keras class a default name is made from, when it is not this class's
    #: own name (read from the class itself, not inherited: a subclass is named
    #: after itself).
    _keras_class: str
    #: The weights a backward pass gives gradients for (default: all of them;
    #: BatchNormalization's moving statistics are not).
    _trainable_names: tuple[str, ...] | None = None

    def __init__(
        self, *, name: str | None = None, seed: int | None = None, dtype: DTypeLike | None = None,
        input_shape: ShapeLike | None = None,
    ) -> None:
        # Named after Keras's class (MaxPool2D is Keras's MaxPooling2D), numbered like Keras.
        self.name = name if name is not None else _default_name(
            vars(type(self)).get("_keras_class", type(self).__name__))
        self.seed = seed
        self.dtype = _float_dtype(dtype)
        self.built = False
        self.input_shape: Shape | None = None
        #: ``(None,) + input_shape`` when the constructor was given one.
        self.batch_input_shape: Shape | None = _sample_shape(input_shape)
        self._weights: dict[str, NDArray[Any]] = {}
        self.grads: list[NDArray[Any]] = []  # set by backward, aligned with weights
        # (x, y) of the last forward(training=True)
        self._saved: tuple[NDArray[Any], NDArray[Any]] | None = None

    # ---- weights ------------------------------------------------------------
    @property
    def weights(self) -> list[NDArray[Any]]:
        """The weight arrays (kernel first, then bias if any); empty before build."""
        return [self._weights[n] for n in self._weight_names if n in self._weights]

    @property
    def trainable_weights(self) -> list[NDArray[Any]]:
        """The weights :attr:`grads` is aligned with, that an optimizer updates."""
        names = self._weight_names if self._trainable_names is None else self._trainable_names
        return [self._weights[n] for n in names if n in self._weights]

    @property
    def non_trainable_weights(self) -> list[NDArray[Any]]:
        """The other weights (updated by the forward pass itself, if at all)."""
        if self._trainable_names is None:
            return []
        return [self._weights[n] for n in self._weight_names
                if n in self._weights and n not in self._trainable_names]

    def get_weights(self) -> list[NDArray[Any]]:
        """Copies of :attr:`weights`."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Iterable[ArrayLike]) -> None:
        """Replace the weights with copies of ``weights`` (same count and shapes).

        Raises
        ------
        ValueError
            If the layer is not built, or the count or a shape differs.
        """
        if not self.built:
            raise ValueError(
                f"layer {self.name!r} is not built: call it on an input or "
                f"build(input_shape) before set_weights"
            )
        current = self.weights
        weights = list(weights)
        if len(weights) != len(current):
            raise ValueError(
                f"layer {self.name!r} has {len(current)} weight arrays, got {len(weights)}"
            )
        new = []
        for name, old, w in zip(self._weight_names, current, weights):
            w = as_array(w, name)
            if w.shape != old.shape:
                raise ValueError(
                    f"{name} of layer {self.name!r} has shape {old.shape}, got {w.shape}"
                )
            if w.dtype.kind not in "biuf":
                raise TypeError(f"{name} has dtype {w.dtype}, expected a real number dtype")
            new.append(np.array(w, dtype=old.dtype, copy=True))
        for name, w in zip(self._weight_names, new):
            self._weights[name] = w

    def count_params(self) -> int:
        """Number of weights (kernel and bias elements).

        Raises
        ------
        ValueError
            If the layer has weights but is not built yet.
        """
        if self._weight_names and not self.built:
            raise ValueError(
                f"layer {self.name!r} is not built, so its parameter count is not "
                f"known yet: call it on an input or build(input_shape)"
            )
        return int(sum(w.size for w in self.weights))

    # ---- building and calling ------------------------------------------------
    def build(self, input_shape: ShapeLike) -> None:
        """Create the weights for inputs of ``input_shape`` (batch may be None)."""
        input_shape = tuple(input_shape)
        self.compute_output_shape(input_shape)  # validates the shape
        dtype = self.dtype if self.dtype is not None else np.dtype(np.float32)
        self._build_weights(input_shape, dtype)
        self.dtype = dtype
        self.input_shape = input_shape
        self.built = True

    #: Merge layers (Add, Concatenate) take a list of inputs.
    _takes_list = False

    def __call__(self, x: Any) -> Any:
        """The layer's output for ``x`` (inference: nothing is kept for backward).

        Called on a :class:`SymbolicTensor` (Keras's functional API), it
        builds the layer for that shape and returns the symbolic output.
        """
        if isinstance(x, SymbolicTensor) or (
                isinstance(x, (list, tuple)) and x and all(isinstance(t, SymbolicTensor) for t in x)):
            return self._connect(x)
        return self.forward(x)

    def _connect(self, x: SymbolicTensor | Sequence[SymbolicTensor]) -> SymbolicTensor:
        """The symbolic output of calling this layer on ``x`` (built on the way)."""
        if isinstance(x, SymbolicTensor) == self._takes_list:
            what = "a list of symbolic tensors" if self._takes_list else "one symbolic tensor"
            raise TypeError(f"layer {self.name!r} ({type(self).__name__}) takes {what}, got "
                            f"{x!r}")
        inputs = (x,) if isinstance(x, SymbolicTensor) else tuple(x)
        shape: Any = [t.shape for t in inputs] if self._takes_list else inputs[0].shape
        out_shape = self.compute_output_shape(shape)  # validates before building
        if not self.built:
            if self.dtype is None:
                self.dtype = cast("np.dtype[np.floating[Any]]", inputs[0].dtype)
            self.build(shape)
        dtype = self.dtype if self.dtype is not None else inputs[0].dtype
        return SymbolicTensor(tuple(out_shape), np.dtype(dtype), self.name, self, inputs)

    def forward(self, x: ArrayLike, training: bool = False) -> NDArray[Any]:
        """The layer's output for ``x``; ``training=True`` keeps what backward needs.

        Parameters
        ----------
        x : array_like
        training : bool, default False
            Keep ``x`` and the output for the next :meth:`backward`.

        Returns
        -------
        ndarray
        """
        x = as_array(x, "x")
        compute = compute_dtype(x, "x")
        if not self.built:
            self.compute_output_shape(x.shape)  # validate before creating weights
            if self.dtype is None:
                self.dtype = compute
            self.build(x.shape)
        y = self._activate(self._call(x), training)
        self._saved = (x, y) if training else None
        return y

    def _activate(self, z: NDArray[Any], training: bool) -> NDArray[Any]:
        """The output from what ``_call`` computed (layers with an activation override)."""
        return z

    def _activation_backward(self, grad_out: NDArray[Any], y: NDArray[Any],
                             pre_activation: bool) -> NDArray[Any]:
        """grad_out through the activation :meth:`_activate` applied (none here)."""
        return grad_out

    def backward(self, grad_out: ArrayLike, input_grad: bool = True, *,
                 pre_activation: bool = False) -> NDArray[Any] | None:
        """Back-propagate ``grad_out`` through the last ``forward(x, training=True)``.

        Parameters
        ----------
        grad_out : array_like of the output's shape
            Gradient of the loss with respect to this layer's output.
        input_grad : bool, default True
            False skips the input's gradient (e.g. for a network's first layer).
        pre_activation : bool, keyword-only, default False
            ``grad_out`` is already the gradient with respect to the value
            before the layer's ``activation`` (a loss fused with a final
            softmax or sigmoid computes it directly, stably; a max pool after
            a fused ReLU takes it through the ReLU, see
            :meth:`MaxPool2D.backward_through_relu`).

        Returns
        -------
        ndarray of the input's shape, or None when ``input_grad`` is False
            Gradient of the loss with respect to this layer's input.  The
            weights' gradients go to :attr:`grads`.
        """
        if self._saved is None:
            raise RuntimeError(
                f"layer {self.name!r}: backward() needs a forward(x, training=True) first"
            )
        x, y = self._saved
        grad_out = as_array(grad_out, "grad_out")
        if grad_out.shape != y.shape:
            raise ValueError(
                f"layer {self.name!r}: grad_out must have the output's shape {y.shape}, "
                f"got {grad_out.shape}"
            )
        grad_out = cast_weights(grad_out, "grad_out", compute_dtype(y, "output"))
        grad_out = self._activation_backward(grad_out, y, pre_activation)
        grad_x, grads = self._backward(grad_out, x, y, input_grad)
        self.grads = [g.astype(w.dtype, copy=False)
                      for g, w in zip(grads, self.trainable_weights)]
        return grad_x

    def _backward(  # pragma: no cover - abstract
        self, grad_out: NDArray[Any], x: NDArray[Any], y: NDArray[Any], input_grad: bool
    ) -> tuple[NDArray[Any] | None, list[NDArray[Any]]]:
        raise NotImplementedError

    def _weight(self, name: str, dtype: np.dtype[Any]) -> NDArray[Any]:
        w = self._weights[name]
        return w if w.dtype == dtype else w.astype(dtype)

    def _build_weights(self, input_shape: Shape, dtype: np.dtype[np.floating[Any]]) -> None:
        pass

    def weight_shapes(self, input_shape: ShapeLike) -> list[tuple[int, ...]]:
        """The shapes of the weights :meth:`build` would make for ``input_shape``
        (in :attr:`weights`' order), computed without allocating them."""
        return []

    def _adopt_weights(self, input_shape: ShapeLike, weights: list[NDArray[Any]]) -> None:
        """Build the layer with ``weights`` (checked against :meth:`weight_shapes`
        before anything is allocated; float32 or float64, one dtype)."""
        input_shape = tuple(input_shape)
        self.compute_output_shape(input_shape)
        want = self.weight_shapes(input_shape)
        got = [tuple(w.shape) for w in weights]
        if got != want:
            raise ValueError(f"layer {self.name!r} takes weights of shapes {want} for input "
                             f"shape {input_shape}, got {got}")
        dtypes = {w.dtype for w in weights}
        if len(dtypes) > 1 or any(d not in (np.float32, np.float64) for d in dtypes):
            raise ValueError(f"layer {self.name!r}: weights must be float32 or float64, one "
                             f"dtype, got {sorted(d.name for d in dtypes)}")
        for name, w in zip(self._weight_names, weights):
            self._weights[name] = np.array(w, copy=True)
        if weights:
            self.dtype = cast("np.dtype[np.floating[Any]]", weights[0].dtype)
        elif self.dtype is None:
            self.dtype = np.dtype(np.float32)
        self.input_shape = input_shape
        self.built = True

    def _call(self, x: NDArray[Any]) -> NDArray[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:  # pragma: no cover - abstract
        raise NotImplementedError

    def receptive_field(
        self, field: OptionalPair, jump: OptionalPair, input_shape: ShapeLike
    ) -> tuple[OptionalPair, OptionalPair]:
        """Receptive field and jump on the network input after this layer.

        Parameters
        ----------
        field, jump : (int, int) or None
            Of this layer's input; None once the spatial axes are mixed away.
        input_shape : tuple
            This layer's input shape.

        Returns
        -------
        (field, jump)
            Unchanged for layers that act on each position separately.
        """
        return field, jump

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this layer (JSON-friendly)."""
        return {"name": self.name}

    def _identity_config(self) -> dict[str, Any]:
        """The name, seed and weight dtype entries of a weighted layer's config."""
        return {"name": self.name, "seed": self.seed,
                "dtype": None if self.dtype is None else self.dtype.name}

    @classmethod
    def from_config(cls: type[_L], config: dict[str, Any]) -> _L:
        """A new layer from :meth:`get_config`'s output (weights not included)."""
        return cls(**config)

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({cfg + ', ' if cfg else ''}name={self.name!r})"


class _KernelBias:
    """The ``kernel`` / ``bias`` pair of Dense and Conv2D (``use_bias`` decides the bias)."""

    # Declared for the type checker; Layer defines them.
    _weights: dict[str, NDArray[Any]]
    _weight_names: tuple[str, ...]

    def _init_kernel_bias(self, use_bias: bool | np.bool_, activation: object) -> None:
        self.use_bias = check_bool(use_bias, "use_bias")
        self._weight_names = ("kernel", "bias") if self.use_bias else ("kernel",)
        act = activations.get(activation)
        #: The activation's name; None for linear (no activation).
        self.activation: str | None = None if act.name == "linear" else act.name
        #: What the kernel applies as it stores the output ("relu" or None) ...
        self._fused = check_activation(self.activation) if act.name == "relu" else None
        #: ... and what runs after it (None when nothing does).
        self._post = act if act.name not in ("linear", "relu") else None
        self._pre_out: NDArray[Any] | None = None  # the kernel's output, when _post needs it
        #: The ReLU _backward applies to grad_out (None when grad_out is already past it).
        self._grad_relu: str | None = self._fused

    def _activate(self, z: NDArray[Any], training: bool) -> NDArray[Any]:
        if self._post is None:
            return z
        self._pre_out = z if training and self._post.needs_input else None
        return self._post.fn(z)

    def _activation_backward(self, grad_out: NDArray[Any], y: NDArray[Any],
                             pre_activation: bool) -> NDArray[Any]:
        # A fused ReLU is applied by _backward's kernel, unless grad_out is
        # already the gradient before it (a max pool after the layer took it
        # through the ReLU: Sequential.backward).
        self._grad_relu = None if pre_activation else self._fused
        if self._post is None or pre_activation:
            if pre_activation and self._post is None and self._fused is None:
                raise ValueError(f"layer {getattr(self, 'name', '?')!r}: pre_activation=True "
                                 f"needs an activation (this layer has none)")
            return grad_out
        z = self._pre_out
        self._pre_out = None
        return self._post.grad(grad_out, z if z is not None else y, y)

    @property
    def kernel(self) -> NDArray[Any] | None:
        """The kernel ndarray, or None before build."""
        return self._weights.get("kernel")

    @property
    def bias(self) -> NDArray[Any] | None:
        """The bias ndarray of shape (units or filters,), or None (not built or no bias)."""
        return self._weights.get("bias")


class _Spatial(Layer):
    """Common part of the sliding-window layers (Conv2D and the pools)."""

    def __init__(
        self,
        window: IntPair,
        strides: IntPair | None,
        padding: Padding,
        data_format: str,
        *,
        window_name: str,
        name: str | None,
        seed: int | None,
        dtype: DTypeLike | None,
        input_shape: ShapeLike | None = None,
    ) -> None:
        super().__init__(name=name, seed=seed, dtype=dtype, input_shape=input_shape)
        self._window_name = window_name
        self._window = as_pair(window, window_name)
        self.strides = as_pair(strides, "strides") if strides is not None else self._window
        _check_padding_form(padding)
        self.padding = padding
        self.data_format = check_data_format(data_format)
        self.dilation_rate = (1, 1)

    def _resolve(
        self, input_shape: ShapeLike
    ) -> tuple[Window2D, tuple[int | None, int, int, int | None]]:
        """The Window2D of this layer on ``input_shape`` (validates the shape)."""
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            layout = "(N, H, W, C)" if self.data_format == "channels_last" else "(N, C, H, W)"
            raise ValueError(
                f"{type(self).__name__} expects a 4-D input {layout}, got shape {input_shape}"
            )
        n, h, w, c = to_nhwc_shape(input_shape, self.data_format)
        if h is None or w is None:
            raise ValueError(f"{type(self).__name__} needs known H and W, got {input_shape}")
        win = window_2d(
            (h, w), self._window, self.strides, self.padding, self.dilation_rate,
            window_name=self._window_name,
            context=f"layer {self.name!r}, input shape {input_shape}",
            max_pad=self._max_pad(),
        )
        return win, (n, h, w, c)

    def _max_pad(self) -> tuple[int, int] | None:
        return None

    def receptive_field(
        self, field: OptionalPair, jump: OptionalPair, input_shape: ShapeLike
    ) -> tuple[OptionalPair, OptionalPair]:
        if field is None:
            return None, None
        win, _ = self._resolve(input_shape)
        # jump is None only together with field (see Sequential.summary).
        return receptive_field_step(field, cast("tuple[int, int]", jump), win)
