"""Keras's model files, read and written with h5py alone (no TensorFlow, no Keras).

Two formats, as Keras 3.15 and tf_keras 2.21 write them:

``.keras`` (Keras 3's native format)
    A zip of ``metadata.json`` (``{"keras_version", "date_saved"}``),
    ``config.json`` (the model:
    ``{"module", "class_name", "config": {"name", "layers": [...], ...},
    "registered_name", "build_config", "compile_config"}``; each layer an
    object of the same form) and ``model.weights.h5``.  In the weights file
    each layer's variables are the datasets ``layers/<path>/vars/0``,
    ``.../1``, ... in the layer's variable order (trainable ones first), where
    ``<path>`` is *not* the layer's name but the snake-case of its class,
    numbered in the order of ``model.layers`` (``conv2d``, ``conv2d_1``,
    ``batch_normalization``, ...: Keras's ``_save_container_state``).  A
    Sequential's ``model.layers`` leaves out its InputLayer; a functional
    model's includes them (``input_layer``, ``input_layer_1``).  Keras 3 puts
    the layer's name in the ``vars`` group's ``name`` attribute (tf_keras
    does not); the model's own (empty) ``vars`` group and the optimizer's
    ``optimizer/vars`` sit beside ``layers``.
``.h5`` / ``.hdf5`` (the legacy HDF5 format, Keras 2's)
    The root's ``model_config`` attribute holds the config as JSON (layer
    entries ``{"class_name", "config"}``, plus ``"name"`` and
    ``"inbound_nodes"`` in a functional model); the group ``model_weights``
    has a ``layer_names`` attribute and one group per layer, whose
    ``weight_names`` attribute lists the variables in order as paths under
    it: ``model_weights/conv2d/conv2d/kernel:0`` in Keras 2,
    ``model_weights/c1/sequential/c1/kernel`` in Keras 3.  Attributes too
    long for an HDF5 header are split as ``layer_names0``, ``layer_names1``...

Every file is untrusted input.  Nothing is unpickled and no code from the
file runs: a ``Lambda`` layer, a custom class or function (a ``module`` or
``registered_name`` outside Keras) is refused.  Each Keras layer config is
mapped key by key to a convpool constructor (one table per layer, below);
a key that changes nothing convpool computes (``trainable``, a float32
dtype policy, the initializers of a layer whose weights are loaded) is
checked and dropped, and any other key or value convpool does not compute
(a regularizer, a constraint, ``mixed_float16``) is a ValueError naming it
and the layer.  Each stored array's shape and dtype are checked against the
shapes the configuration implies (:meth:`Layer.weight_shapes`) before it is
read, and the arrays read never total more bytes than the file holds, so a
configuration asking for ``filters=10**12`` allocates nothing.  Zip members
are size-checked before they are read (config.json at most 64 MiB);
compressed, external, virtual or linked HDF5 datasets are refused.  Any
failure is a ValueError naming the file.
"""

from __future__ import annotations

import datetime
import importlib
import inspect
import json
import math
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeGuard

import numpy as np

from .. import activations
from .. import layers as _layers
from ..layers import Layer
from .saving import load as _load_npz
from .saving import replace_atomically, save_npz

__all__ = ["load_model", "save_model"]

#: The Keras version whose layouts this module writes (and was checked against).
KERAS_VERSION = "3.15.1"
#: The largest config.json (or model_config attribute) read, in bytes.
MAX_JSON_BYTES = 64 * 2**20
#: The largest metadata.json read.
_MAX_METADATA_BYTES = 2**20
#: A zip member whose uncompressed size exceeds this multiple of its
#: compressed size (plus 1 MiB) is taken for a zip bomb.
_MAX_RATIO = 100
#: The most entries a name-list attribute (layer_names, weight_names) may have.
_MAX_NAMES = 1_000_000

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class _Refused(ValueError):
    """A file's content that convpool does not load (the message says why)."""


def _h5py() -> Any:
    """h5py, imported when first needed (an optional dependency)."""
    try:
        return importlib.import_module("h5py")
    except ImportError:
        raise ImportError("reading and writing Keras's .keras and .h5 model files needs h5py: "
                          "pip install convpool[keras]") from None


def _show(value: object, limit: int = 120) -> str:
    """A repr of ``value`` for an error message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# =============================================================================
# Values of Keras configs: each check takes the value and its key, returns
# what convpool's constructor takes, and raises _Refused otherwise.
# =============================================================================
def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: object, key: str) -> int:
    if not _is_int(value):
        raise _Refused(f"{key} must be an int, got {_show(value)}")
    return int(value)


def _opt_int(value: object, key: str) -> int | None:
    return None if value is None else _int(value, key)


def _pair(value: object, key: str) -> int | tuple[int, int]:
    if _is_int(value):
        return int(value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(map(_is_int, value)):
        return (int(value[0]), int(value[1]))
    raise _Refused(f"{key} must be an int or a pair of ints, got {_show(value)}")


def _opt_pair(value: object, key: str) -> int | tuple[int, int] | None:
    return None if value is None else _pair(value, key)


def _bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise _Refused(f"{key} must be true or false, got {_show(value)}")
    return value


def _number(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Refused(f"{key} must be a number, got {_show(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise _Refused(f"{key} must be a finite number, got {_show(value)}") from None
    if not math.isfinite(number):
        raise _Refused(f"{key} must be a finite number, got {_show(value)}")
    return number


def _choice(*choices: str) -> Callable[[object, str], str]:
    def check(value: object, key: str) -> str:
        if not isinstance(value, str) or value.lower() not in choices:
            raise _Refused(f"{key} must be one of {', '.join(map(repr, choices))} (what convpool "
                           f"computes), got {_show(value)}")
        return value.lower()
    return check


_padding = _choice("valid", "same")


def _data_format(value: object, key: str) -> str:
    return "channels_last" if value is None else _choice("channels_last", "channels_first")(
        value, key)


def _string(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise _Refused(f"{key} must be a string, got {_show(value)}")
    return value


def _activation(value: object, key: str) -> str:
    """A Keras activation name convpool computes (custom functions are refused)."""
    if value is None:
        return "linear"
    if not isinstance(value, str):
        raise _Refused(f"{key}={_show(value)} is not one of Keras's activations by name "
                       f"(custom functions are never loaded)")
    try:
        activations.get(value)
    except ValueError:
        names = sorted(set(activations.ACTIVATIONS) | {"silu"})
        raise _Refused(f"{key}={value!r} is not supported: convpool computes "
                       f"{', '.join(names)}") from None
    return value


def _shape_list(value: object, key: str, *, none: bool = True,
                minimum: int = 0) -> tuple[int | None, ...]:
    if not isinstance(value, (list, tuple)) or not all(
            (d is None and none) or (_is_int(d) and d >= minimum) for d in value):
        raise _Refused(f"{key} must be a list of {'ints or nulls' if none else 'ints'}, got "
                       f"{_show(value)}")
    return tuple(value)


def _noise_shape(value: object, key: str) -> tuple[int | None, ...] | None:
    return None if value is None else _shape_list(value, key)


def _target_shape(value: object, key: str) -> tuple[int, ...]:
    return tuple(int(d) for d in _shape_list(value, key, none=False, minimum=-1)
                 if d is not None)


def _bn_axis(value: object, key: str) -> int:
    """An int, or Keras 2's list of one axis."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise _Refused(f"{key}={_show(value)}: convpool normalises over one axis")
        value = value[0]
    return _int(value, key)


def _zero_padding(value: object, key: str) -> object:
    if _is_int(value):
        return int(value)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        if all(map(_is_int, value)):
            return (int(value[0]), int(value[1]))
        if all(isinstance(p, (list, tuple)) and len(p) == 2 and all(map(_is_int, p))
               for p in value):
            return tuple((int(p[0]), int(p[1])) for p in value)
    raise _Refused(f"{key} must be an int, a pair or ((top, bottom), (left, right)), got "
                   f"{_show(value)}")


def _keras_module(module: object) -> bool:
    """Whether ``module`` names Keras itself: Keras 3's ``keras``, tf.keras 2's
    ``tf_keras`` (None: unspecified, as in Keras 2's .h5 configs).  Only a name
    compared: nothing is imported."""
    return module is None or (isinstance(module, str) and any(
        module == root or module.startswith(root + ".") for root in ("keras", "tf_keras")))


def _check_object(value: dict[str, Any], key: str) -> None:
    """A serialized Keras object must be one of Keras's own, not a custom one."""
    module, registered = value.get("module"), value.get("registered_name")
    class_name = value.get("class_name")
    if not isinstance(class_name, str):
        raise _Refused(f"{key} has no class_name: {_show(value)}")
    if (not _keras_module(module) or registered not in (None, class_name)
            or class_name.startswith("__") or ">" in class_name):
        raise _Refused(f"{key} is a custom object (class_name {class_name!r}, module "
                       f"{module!r}, registered_name {registered!r}): convpool builds Keras's "
                       f"own objects only and never runs code from a file")


def _initializer(value: object, key: str) -> None:
    """An initializer: accepted (loaded weights replace what it would draw)."""
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, dict) or not isinstance(value.get("config", {}), (dict, type(None))):
        raise _Refused(f"{key} is not a Keras initializer: {_show(value)}")
    _check_object(value, key)


def _dtype_policy(value: object, key: str = "dtype") -> str:
    """The dtype a Keras dtype policy computes in: float32 or float64 only."""
    if value is None:
        return "float32"
    name: object = value
    if isinstance(value, dict):
        _check_object(value, key)
        if value["class_name"] not in ("DTypePolicy", "FloatDTypePolicy", "Policy"):
            raise _Refused(f"{key} policy {value['class_name']!r} is not supported (float32 and "
                           f"float64 only)")
        config = value.get("config")
        name = config.get("name") if isinstance(config, dict) else None
    if name not in ("float32", "float64"):
        raise _Refused(f"{key} {_show(name)} is not supported: convpool computes in float32 or "
                       f"float64 (no mixed precision, float16 or bfloat16)")
    return str(name)


# =============================================================================
# The layer tables: Keras's config keys <-> convpool's constructor arguments.
# =============================================================================
_REQUIRED: Any = object()


def _plain(value: object) -> object:
    """A convpool config value as JSON (tuples become lists)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _save_padding(value: object) -> object:
    if not isinstance(value, str) or value.lower() not in ("valid", "same"):
        raise _Refused(f"padding={_show(value)} has no Keras equivalent (Keras pads 'valid' or "
                       f"'same'; use a ZeroPadding2D layer)")
    return value.lower()


def _save_activation(value: object) -> object:
    return "linear" if value is None else value


@dataclass(frozen=True)
class _Arg:
    """One computational argument: Keras's key, convpool's argument, the check
    of a Keras value, the value written for a convpool one, Keras's default
    (taken when a file lacks the key), and older Keras spellings of the key."""

    keras: str
    convpool: str
    load: Callable[[object, str], object]
    save: Callable[[object], object] = _plain
    default: Any = _REQUIRED
    aliases: tuple[str, ...] = ()


#: Keras's default initializers (what a saved file names; loading ignores them).
_Init: TypeAlias = "tuple[str, dict[str, Any]]"
_GLOROT: _Init = ("GlorotUniform", {"seed": None})
_ZEROS: _Init = ("Zeros", {})
_ONES: _Init = ("Ones", {})


@dataclass(frozen=True)
class _Spec:
    """How one Keras layer class maps to a convpool layer, both ways.

    ``fixed`` keys must hold their (neutral, Keras-default) value when a file
    has them, and are written with it; ``optional`` ones likewise but are not
    written; ``ignored`` ones do not change the computation, any valid value
    is accepted, and the value given is written.  ``convpool_fixed`` are the
    convpool arguments a layer needs to have a Keras equivalent;
    ``old_initializers`` are initializer keys older Keras versions write
    (tf.keras 2's SeparableConv2D has a ``kernel_initializer``);
    ``weight_aliases`` are other Keras names of convpool's weights (checked
    against a legacy file's ``weight_names``); ``children`` are groups a
    layer's path in model.weights.h5 may hold beside ``vars`` (state that
    computes nothing).
    """

    keras: str
    convpool: str
    args: tuple[_Arg, ...] = ()
    initializers: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    optional: dict[str, Any] = field(default_factory=dict)
    ignored: dict[str, tuple[Callable[[object, str], object], Any]] = field(default_factory=dict)
    #: initializer keys older Keras versions write (accepted, never written)
    old_initializers: tuple[str, ...] = ()
    convpool_fixed: dict[str, Any] = field(default_factory=dict)
    weighted: bool = False
    merge: bool = False
    weight_aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    children: tuple[str, ...] = ()


def _regularizers(*prefixes: str) -> dict[str, None]:
    return {f"{p}_{kind}": None for p in prefixes for kind in ("regularizer", "constraint")}


_LORA = {"lora_rank": None, "lora_alpha": None}
_WINDOW = (
    _Arg("strides", "strides", _pair, default=1),
    _Arg("padding", "padding", _padding, _save_padding, default="valid"),
    _Arg("data_format", "data_format", _data_format, default=None),
    _Arg("dilation_rate", "dilation_rate", _pair, default=1),
)
_ACT_BIAS = (
    _Arg("activation", "activation", _activation, _save_activation, default=None),
    _Arg("use_bias", "use_bias", _bool, default=True),
)
_POOL = (
    _Arg("pool_size", "pool_size", _pair, default=2),
    _Arg("strides", "strides", _opt_pair, default=None),
    _Arg("padding", "padding", _padding, _save_padding, default="valid"),
    _Arg("data_format", "data_format", _data_format, default=None),
)

_SPECS: tuple[_Spec, ...] = (
    _Spec("Conv2D", "Conv2D",
          (_Arg("filters", "filters", _int), _Arg("kernel_size", "kernel_size", _pair),
           *_WINDOW, _Arg("groups", "groups", _int, default=1), *_ACT_BIAS),
          initializers={"kernel_initializer": _GLOROT, "bias_initializer": _ZEROS},
          fixed={**_regularizers("kernel", "bias"), "activity_regularizer": None},
          optional=_LORA, convpool_fixed={"padding_mode": "zeros"}, weighted=True),
    _Spec("Conv2DTranspose", "Conv2DTranspose",
          (_Arg("filters", "filters", _int), _Arg("kernel_size", "kernel_size", _pair),
           _WINDOW[0], _WINDOW[1],
           _Arg("output_padding", "output_padding", _opt_pair, default=None),
           *_WINDOW[2:], *_ACT_BIAS),
          initializers={"kernel_initializer": _GLOROT, "bias_initializer": _ZEROS},
          fixed={**_regularizers("kernel", "bias"), "activity_regularizer": None},
          optional={**_LORA, "groups": 1}, convpool_fixed={"groups": 1}, weighted=True),
    _Spec("DepthwiseConv2D", "DepthwiseConv2D",
          (_Arg("kernel_size", "kernel_size", _pair), *_WINDOW,
           _Arg("depth_multiplier", "depth_multiplier", _int, default=1), *_ACT_BIAS),
          initializers={"depthwise_initializer": _GLOROT, "bias_initializer": _ZEROS},
          fixed={**_regularizers("depthwise", "bias"), "activity_regularizer": None},
          optional={**_LORA, "groups": 1}, weighted=True,
          weight_aliases={"kernel": ("depthwise_kernel",)}),
    _Spec("SeparableConv2D", "SeparableConv2D",
          (_Arg("filters", "filters", _int), _Arg("kernel_size", "kernel_size", _pair),
           *_WINDOW, _Arg("depth_multiplier", "depth_multiplier", _int, default=1),
           *_ACT_BIAS),
          initializers={"depthwise_initializer": _GLOROT, "pointwise_initializer": _GLOROT,
                        "bias_initializer": _ZEROS},
          fixed={**_regularizers("depthwise", "pointwise", "bias"),
                 "activity_regularizer": None},
          optional={**_LORA, "groups": 1, **_regularizers("kernel")},
          old_initializers=("kernel_initializer",), weighted=True),
    _Spec("Dense", "Dense",
          (_Arg("units", "units", _int), *_ACT_BIAS),
          initializers={"kernel_initializer": _GLOROT, "bias_initializer": _ZEROS},
          fixed=_regularizers("kernel", "bias"),
          optional={**_LORA, "activity_regularizer": None, "quantization_config": None},
          weighted=True),
    _Spec("MaxPooling2D", "MaxPool2D", _POOL),
    _Spec("AveragePooling2D", "AvgPool2D", _POOL, convpool_fixed={"count_include_pad": False}),
    _Spec("GlobalAveragePooling2D", "GlobalAveragePooling2D",
          (_Arg("data_format", "data_format", _data_format, default=None),
           _Arg("keepdims", "keepdims", _bool, default=False))),
    _Spec("GlobalMaxPooling2D", "GlobalMaxPooling2D",
          (_Arg("data_format", "data_format", _data_format, default=None),
           _Arg("keepdims", "keepdims", _bool, default=False))),
    _Spec("Flatten", "Flatten", (_Arg("data_format", "data_format", _data_format, default=None),)),
    _Spec("Reshape", "Reshape", (_Arg("target_shape", "target_shape", _target_shape),)),
    _Spec("Dropout", "Dropout",
          (_Arg("rate", "rate", _number), _Arg("noise_shape", "noise_shape", _noise_shape,
                                                default=None),
           _Arg("seed", "seed", _opt_int, default=None)),
          children=("seed_generator",)),
    _Spec("Activation", "Activation", (_Arg("activation", "activation", _activation),)),
    _Spec("ReLU", "ReLU", fixed={"max_value": None, "negative_slope": 0.0, "threshold": 0.0}),
    _Spec("LeakyReLU", "LeakyReLU",
          (_Arg("negative_slope", "negative_slope", _number, default=0.3, aliases=("alpha",)),)),
    _Spec("BatchNormalization", "BatchNormalization",
          (_Arg("axis", "axis", _bn_axis, default=-1),
           _Arg("momentum", "momentum", _number, default=0.99),
           _Arg("epsilon", "epsilon", _number, default=1e-3),
           _Arg("center", "center", _bool, default=True),
           _Arg("scale", "scale", _bool, default=True)),
          initializers={"beta_initializer": _ZEROS, "gamma_initializer": _ONES,
                        "moving_mean_initializer": _ZEROS,
                        "moving_variance_initializer": _ONES},
          fixed={**_regularizers("beta", "gamma"), "renorm": False, "renorm_clipping": None},
          # synchronized: the statistics of a batch split across devices (one here).
          ignored={"synchronized": (_bool, False), "renorm_momentum": (_number, 0.99)},
          weighted=True),
    _Spec("ZeroPadding2D", "ZeroPadding2D",
          (_Arg("padding", "padding", _zero_padding, default=1),
           _Arg("data_format", "data_format", _data_format, default=None))),
    _Spec("UpSampling2D", "UpSampling2D",
          (_Arg("size", "size", _pair, default=2),
           _Arg("data_format", "data_format", _data_format, default=None),
           _Arg("interpolation", "interpolation", _string, default="nearest"))),
    _Spec("Add", "Add", merge=True),
    _Spec("Subtract", "Subtract", merge=True),
    _Spec("Multiply", "Multiply", merge=True),
    _Spec("Average", "Average", merge=True),
    _Spec("Maximum", "Maximum", merge=True),
    _Spec("Minimum", "Minimum", merge=True),
    _Spec("Concatenate", "Concatenate", (_Arg("axis", "axis", _int, default=-1),), merge=True),
)
_BY_KERAS = {spec.keras: spec for spec in _SPECS}
_BY_CONVPOOL = {spec.convpool: spec for spec in _SPECS}

#: Keras layers whose config holds Python code (never run).
_CODE_LAYERS = ("Lambda", "TFOpLambda", "SlicingOpLambda")
_MODELS = ("Sequential", "Functional", "Model")
_LAYER_ENTRY_KEYS = {"module", "class_name", "config", "registered_name", "build_config",
                     "name", "inbound_nodes", "compile_config"}


def _convpool_class(spec: _Spec) -> type[Layer]:
    cls = getattr(_layers, spec.convpool, None)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise _Refused(f"Keras's {spec.keras} layer is not supported by this version of convpool")
    return cls


def _snake(name: str) -> str:
    """Keras's ``naming.to_snake_case`` (what names a layer's path in model.weights.h5)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _unique(name: str, used: dict[str, int]) -> str:
    """Keras's ``_get_unique_name``: ``conv2d``, ``conv2d_1``, ..."""
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


# =============================================================================
# Keras config -> convpool layer
# =============================================================================
@dataclass
class _Entry:
    """One layer entry of a Keras model config, checked."""

    class_name: str
    name: str
    config: dict[str, Any]
    raw: dict[str, Any]


def _entry(raw: object, index: int) -> _Entry:
    if not isinstance(raw, dict) or not isinstance(raw.get("class_name"), str):
        raise _Refused(f"layer {index} of the config is not {{'class_name': ..., 'config': ...}}")
    class_name = raw["class_name"]
    config = raw.get("config")
    if not isinstance(config, dict):
        raise _Refused(f"layer {index} ({class_name}) has no config object")
    name = config.get("name", raw.get("name"))
    if not isinstance(name, str):
        raise _Refused(f"layer {index} ({class_name}) has no name")
    where = f"layer {name!r} ({class_name})"
    if class_name in _CODE_LAYERS:
        raise _Refused(f"{where}: {class_name} layers hold Python code, which convpool never "
                       f"runs from a file")
    unknown = set(raw) - _LAYER_ENTRY_KEYS
    if unknown:
        raise _Refused(f"{where}: unexpected entries {sorted(unknown)}")
    try:
        _check_object(raw, "the layer")
    except _Refused as err:
        raise _Refused(f"{where}: {err}") from None
    if class_name in _MODELS:
        raise _Refused(f"{where}: nested models are not supported (convpool's models hold "
                       f"layers only)")
    if class_name != "InputLayer" and class_name not in _BY_KERAS:
        raise _Refused(f"{where}: Keras's {class_name} layer is not supported by convpool "
                       f"(supported: {', '.join(sorted(_BY_KERAS))}, InputLayer)")
    return _Entry(class_name, name, config, raw)


def _layer_from_keras(entry: _Entry, *, first: bool = False
                      ) -> tuple[Layer, _Spec, tuple[int | None, ...] | None]:
    """The convpool layer for ``entry`` (not built), its spec, and the batch input
    shape a Keras 2 first layer may carry."""
    spec = _BY_KERAS[entry.class_name]
    where = f"layer {entry.name!r} ({entry.class_name})"
    try:
        cls = _convpool_class(spec)
        kwargs: dict[str, Any] = {"name": entry.name}
        by_key = {key: arg for arg in spec.args for key in (arg.keras, *arg.aliases)}
        given: dict[str, Any] = {}
        batch_shape = None
        for key, value in entry.config.items():
            if key == "name":
                continue
            if key == "trainable":
                _bool(value, key)  # freezing changes fit, not what the layer computes
            elif key == "dtype":
                policy = _dtype_policy(value)
                if spec.weighted:
                    kwargs["dtype"] = policy
            elif key in by_key:
                arg = by_key[key]
                if arg.keras in given:
                    raise _Refused(f"{key} given twice (as {arg.keras} and an older spelling)")
                given[arg.keras] = arg.load(value, key)
            elif key in spec.initializers or key in spec.old_initializers:
                _initializer(value, key)
            elif key in spec.fixed or key in spec.optional:
                want = spec.fixed.get(key, spec.optional.get(key))
                if value != want or isinstance(value, bool) != isinstance(want, bool):
                    what = ("regularizers and constraints" if key.endswith(
                        ("_regularizer", "_constraint")) else "this")
                    raise _Refused(f"{key}={_show(value)} is not supported (convpool computes "
                                   f"{key}={want!r} only; {what} not supported)")
            elif key in spec.ignored:
                spec.ignored[key][0](value, key)
            elif first and key in ("batch_input_shape", "batch_shape"):
                batch_shape = _shape_list(value, key)
            else:
                raise _Refused(f"argument {key}={_show(value)} is not supported by convpool")
        signature = inspect.signature(cls)
        for arg in spec.args:
            if arg.keras not in given:
                if arg.default is _REQUIRED:
                    raise _Refused(f"its config lacks {arg.keras}")
                given[arg.keras] = arg.load(arg.default, arg.keras)
            if arg.convpool not in signature.parameters:
                raise _Refused(f"{arg.keras} is not supported by this version of convpool's "
                               f"{cls.__name__}")
            kwargs[arg.convpool] = given[arg.keras]
        return cls(**kwargs), spec, batch_shape
    except (ValueError, TypeError) as err:
        raise _Refused(f"{where}: {err}") from None


def _input_layer(entry: _Entry) -> tuple[tuple[int | None, ...], str]:
    """The batch shape and dtype of an InputLayer entry."""
    where = f"layer {entry.name!r} (InputLayer)"
    shape = None
    dtype = "float32"
    try:
        for key, value in entry.config.items():
            if key in ("batch_shape", "batch_input_shape"):
                if shape is not None:
                    raise _Refused("both batch_shape and batch_input_shape")
                shape = _shape_list(value, key)
                if not shape:
                    raise _Refused(f"{key} must have a batch axis, got {value!r}")
            elif key == "dtype":
                dtype = _dtype_policy(value)
            elif key in ("sparse", "ragged", "optional"):
                if value not in (False, None):
                    raise _Refused(f"{key}={_show(value)} is not supported")
            elif key != "name":
                raise _Refused(f"argument {key}={_show(value)} is not supported")
        if shape is None:
            raise _Refused("no batch_shape")
    except _Refused as err:
        raise _Refused(f"{where}: {err}") from None
    return shape, dtype


# =============================================================================
# Weights in the files
# =============================================================================
class _Budget:
    """The bytes of weights read so far, capped at the weights file's size: an
    uncompressed dataset's values are in the file, so a file cannot declare
    more without lying (a forged or truncated file)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def read(self, dataset: Any, what: str) -> np.ndarray[Any, Any]:
        size = int(np.prod(dataset.shape, dtype=np.int64)) * dataset.dtype.itemsize
        if self.used + size > self.limit:
            raise _Refused(f"{what}: the weights total more bytes than the file holds "
                           f"({self.used + size} > {self.limit}): truncated or forged")
        if size and dataset.id.get_storage_size() < size:
            raise _Refused(f"{what}: its values are not all stored in the file")
        self.used += size
        array = np.asarray(dataset[()])
        return array.astype(array.dtype.newbyteorder("="), copy=False)


def _child(h5py: Any, group: Any, key: str, what: str, kind: str = "group") -> Any:
    """``group[key]`` if it is a hard link to a group (or dataset), None if absent."""
    link = group.get(key, getlink=True)
    if link is None:
        return None
    if not isinstance(link, h5py.HardLink):
        raise _Refused(f"{what} is a link ({type(link).__name__}), not stored in the file")
    obj = group[key]
    cls = h5py.Group if kind == "group" else h5py.Dataset
    if not isinstance(obj, cls):
        raise _Refused(f"{what} is not an HDF5 {kind}")
    return obj


def _check_dataset(dataset: Any, shape: tuple[int, ...], what: str) -> None:
    """A weight's stored form, checked without reading it."""
    dtype = dataset.dtype
    if dtype.kind != "f" or dtype.itemsize not in (4, 8) or dtype.fields is not None:
        raise _Refused(f"{what} has dtype {dtype}, not float32 or float64")
    if tuple(dataset.shape) != tuple(shape):
        raise _Refused(f"{what} has shape {tuple(dataset.shape)}, the configuration gives "
                       f"{tuple(shape)}")
    if dataset.is_virtual or dataset.external:
        raise _Refused(f"{what} is stored outside the file")
    if dataset.id.get_create_plist().get_nfilters():
        raise _Refused(f"{what} is compressed or filtered (convpool reads Keras's plain "
                       f"datasets only)")


def _attr(h5py: Any, obj: Any, name: str) -> Any:
    """An attribute's value, its size checked first (None if absent)."""
    if name not in obj.attrs:
        return None
    attr = obj.attrs.get_id(name)
    count = int(np.prod(attr.shape, dtype=np.int64)) if attr.shape else 1
    itemsize = attr.dtype.itemsize
    if count > _MAX_NAMES or count * itemsize > MAX_JSON_BYTES:
        raise _Refused(f"attribute {name!r} is too large ({attr.shape}, {attr.dtype})")
    if attr.dtype.kind not in "SUOf" or (attr.dtype.kind == "O"
                                         and h5py.check_string_dtype(attr.dtype) is None):
        raise _Refused(f"attribute {name!r} is not text (dtype {attr.dtype})")
    return obj.attrs[name]


def _text(value: object, what: str) -> str:
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise _Refused(f"{what} is not UTF-8 text") from None
    if isinstance(value, str):
        return str(value)
    raise _Refused(f"{what} is not text")


def _names(h5py: Any, obj: Any, name: str) -> list[str] | None:
    """A list-of-names attribute, joined from Keras's chunks ``name0, name1...``
    when it was too long for one HDF5 header (None if absent)."""
    if name in obj.attrs:
        chunks = [_attr(h5py, obj, name)]
    elif f"{name}0" in obj.attrs:
        chunks = []
        while f"{name}{len(chunks)}" in obj.attrs and len(chunks) < _MAX_NAMES:
            chunks.append(_attr(h5py, obj, f"{name}{len(chunks)}"))
    else:
        return None
    out: list[str] = []
    for chunk in chunks:
        values = np.asarray(chunk)
        if values.ndim != 1:
            raise _Refused(f"attribute {name!r} is not a list of names")
        if values.size and values.dtype.kind == "f":
            raise _Refused(f"attribute {name!r} is not a list of names")
        out.extend(_text(v, f"an entry of attribute {name!r}") for v in values)
    return out


class _Weights:
    """Where a file keeps each layer's weights: ``datasets(layer, index)`` returns
    the unread datasets in Keras's order; ``finish()`` checks every stored
    weight was claimed by a layer of the configuration."""

    def datasets(self, entry: _Entry, spec: _Spec | None, position: int,
                 expected: list[str]) -> list[Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class _KerasV3Weights(_Weights):
    """model.weights.h5 of a .keras file: ``layers/<path>/vars/<i>``."""

    def __init__(self, h5py: Any, root: Any, paths: dict[int, str]) -> None:
        self.h5py = h5py
        self.paths = paths
        layers = _child(h5py, root, "layers", "the group 'layers'")
        if layers is None:  # tf.keras 2.13-2.15 named it so
            layers = _child(h5py, root, "_layer_checkpoint_dependencies",
                            "the group '_layer_checkpoint_dependencies'")
        self.layers = layers
        self.claimed: set[str] = set()

    def datasets(self, entry: _Entry, spec: _Spec | None, position: int,
                 expected: list[str]) -> list[Any]:
        path = self.paths[position]
        where = f"layer {entry.name!r} ({entry.class_name}), at layers/{path}"
        group = None if self.layers is None else _child(self.h5py, self.layers, path, where)
        if group is None:
            if expected:
                raise _Refused(f"{where}: no weights stored")
            return []
        self.claimed.add(path)
        allowed = {"vars", *(spec.children if spec else ())}
        extra = set(group.keys()) - allowed
        if extra:
            raise _Refused(f"{where}: unexpected entries {sorted(extra)}")
        variables = _child(self.h5py, group, "vars", f"{where}/vars")
        if variables is None:
            keys: list[str] = []
        else:
            stored_name = _attr(self.h5py, variables, "name")
            if stored_name is not None and _text(stored_name, "its name") != entry.name:
                raise _Refused(f"{where}: the weights stored there are layer "
                               f"{_text(stored_name, 'its name')!r}'s, not {entry.name!r}'s "
                               f"(the file's layers do not match its config)")
            keys = list(variables.keys())
        if sorted(keys) != sorted(str(i) for i in range(len(keys))):
            raise _Refused(f"{where}: unexpected entries {sorted(keys)} in vars")
        if len(keys) != len(expected):
            raise _Refused(f"{where}: the layer takes {len(expected)} weight arrays "
                           f"({', '.join(expected) or 'none'}), the file holds {len(keys)}")
        return [_child(self.h5py, variables, str(i), f"{where}/vars/{i}", "dataset")
                for i in range(len(keys))]

    def finish(self) -> None:
        if self.layers is None:
            return
        extra = set(self.layers.keys()) - self.claimed
        for path in sorted(extra):
            group = _child(self.h5py, self.layers, path, f"layers/{path}")
            variables = None if group is None else group.get("vars")
            if group is not None and (set(group.keys()) - {"vars"} or (
                    variables is not None and len(variables))):
                raise _Refused(f"weights stored at layers/{path} belong to no layer of the "
                               f"config")


class _LegacyWeights(_Weights):
    """The ``model_weights`` group of a legacy .h5 file."""

    def __init__(self, h5py: Any, group: Any) -> None:
        self.h5py = h5py
        self.group = group
        self.claimed: set[str] = set()

    def datasets(self, entry: _Entry, spec: _Spec | None, position: int,
                 expected: list[str]) -> list[Any]:
        where = f"layer {entry.name!r} ({entry.class_name})"
        if "/" in entry.name or entry.name in ("", ".", ".."):
            raise _Refused(f"{where}: a layer name cannot hold '/'")
        group = _child(self.h5py, self.group, entry.name, f"model_weights/{entry.name}")
        if group is None:
            if expected:
                raise _Refused(f"{where}: no weights stored (no group model_weights/"
                               f"{entry.name})")
            return []
        self.claimed.add(entry.name)
        names = _names(self.h5py, group, "weight_names") or []
        if len(names) != len(expected):
            raise _Refused(f"{where}: the layer takes {len(expected)} weight arrays "
                           f"({', '.join(expected) or 'none'}), the file lists {len(names)}")
        out = []
        for wanted, name in zip(expected, names):
            parts = name.split("/")
            if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
                raise _Refused(f"{where}: weight name {name!r} is not a path under its group")
            variable = parts[-1].split(":")[0]
            accepted = (wanted, *(spec.weight_aliases.get(wanted, ()) if spec else ()))
            if variable not in accepted:
                raise _Refused(f"{where}: weight {name!r} stands where {wanted!r} does "
                               f"(the file's weights are not in this layer's order)")
            node = group
            for i, part in enumerate(parts):
                kind = "dataset" if i == len(parts) - 1 else "group"
                node = _child(self.h5py, node, part, f"{where}: weight {name!r}", kind)
                if node is None:
                    raise _Refused(f"{where}: weight {name!r} is listed but not stored")
            out.append(node)
        return out

    def finish(self) -> None:
        for name in sorted(set(self.group.keys()) - self.claimed):
            group = _child(self.h5py, self.group, name, f"model_weights/{name}")
            if group is not None and _names(self.h5py, group, "weight_names"):
                raise _Refused(f"weights stored for layer {name!r}, which the config lacks")


def _adopt(layer: Layer, entry: _Entry, spec: _Spec | None, position: int,
           input_shape: tuple[int | None, ...], weights: _Weights, budget: _Budget) -> None:
    """Check the stored weights of ``layer`` against its configuration, then read
    and adopt them (nothing is allocated from configuration sizes before)."""
    where = f"layer {entry.name!r} ({entry.class_name})"
    try:
        layer.compute_output_shape(input_shape)
        shapes = layer.weight_shapes(input_shape)
    except (ValueError, TypeError) as err:
        raise _Refused(f"{where}, input shape {input_shape}: {err}") from None
    names = [n for n in layer._weight_names][: len(shapes)]
    datasets = weights.datasets(entry, spec, position, names)
    for dataset, shape, name in zip(datasets, shapes, names):
        _check_dataset(dataset, shape, f"{where}: weight {name!r}")
    arrays = [budget.read(d, f"{where}: weight {n!r}") for d, n in zip(datasets, names)]
    if layer.dtype is not None:  # the layer's dtype policy, as Keras's assign casts
        arrays = [a.astype(layer.dtype, copy=False) for a in arrays]
    if arrays or shapes:
        try:
            layer._adopt_weights(input_shape, arrays)
        except (ValueError, TypeError) as err:
            raise _Refused(f"{where}: {err}") from None


# =============================================================================
# Keras model config -> convpool model
# =============================================================================
def _model_config(top: object) -> tuple[str, Any]:
    """The class ("Sequential" or "Functional") and config of a model file's config."""
    if not isinstance(top, dict) or not isinstance(top.get("class_name"), str):
        raise _Refused("its config is not a Keras model ({'class_name': ..., 'config': ...})")
    _check_object(top, "the model")
    class_name = top["class_name"]
    unknown = set(top) - {"module", "class_name", "config", "registered_name", "build_config",
                          "compile_config", "keras_version", "backend"}
    if unknown:
        raise _Refused(f"unexpected entries {sorted(unknown)} in the model's config")
    if class_name == "Sequential":
        return "Sequential", top.get("config")
    if class_name in ("Functional", "Model"):
        return "Functional", top.get("config")
    raise _Refused(f"model class {class_name!r} is not supported (Sequential and functional "
                   f"models only)")


def _v3_paths(entries: list[_Entry], sequential: bool) -> dict[int, str]:
    """Each entry's path in model.weights.h5, as Keras names them (see the module doc)."""
    used: dict[str, int] = {}
    return {i: _unique(_snake(e.class_name), used) for i, e in enumerate(entries)
            if not (sequential and e.class_name == "InputLayer")}


def _entries(config: object, kind: str) -> tuple[str, list[_Entry], dict[str, Any]]:
    if kind == "Sequential" and isinstance(config, list):  # Keras 2.2's Sequential
        config = {"name": "sequential", "layers": config}
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise _Refused("the model's config has no list of layers")
    name = config.get("name", "sequential" if kind == "Sequential" else "model")
    if not isinstance(name, str):
        raise _Refused(f"the model's name must be a string, got {_show(name)}")
    known = ({"name", "layers", "trainable", "dtype", "build_input_shape"} if kind == "Sequential"
             else {"name", "layers", "trainable", "input_layers", "output_layers"})
    unknown = set(config) - known
    if unknown:
        raise _Refused(f"unexpected entries {sorted(unknown)} in the model's config")
    if "trainable" in config:
        _bool(config["trainable"], "the model's trainable")
    if "dtype" in config:
        _dtype_policy(config["dtype"], "the model's dtype")
    entries = [_entry(raw, i) for i, raw in enumerate(config["layers"])]
    seen: set[str] = set()
    for e in entries:
        if e.name in seen:
            raise _Refused(f"two layers are named {e.name!r}")
        seen.add(e.name)
    return name, entries, config


def _sequential_from_keras(config: object, make_weights: Callable[[dict[int, str]], _Weights],
                           budget: _Budget) -> Any:
    from .sequential import Sequential

    name, entries, cfg = _entries(config, "Sequential")
    weights = make_weights(_v3_paths(entries, sequential=True))
    input_shape: tuple[int | None, ...] | None = None
    built: list[tuple[Layer, _Spec, _Entry, int]] = []
    for i, entry in enumerate(entries):
        if entry.class_name == "InputLayer":
            if i != 0:
                raise _Refused(f"layer {entry.name!r}: an InputLayer can only come first")
            input_shape = _input_layer(entry)[0]
            continue
        layer, spec, batch_shape = _layer_from_keras(entry, first=not built)
        if batch_shape is not None:
            if input_shape is not None and batch_shape != input_shape:
                raise _Refused(f"layer {entry.name!r}: batch_input_shape {batch_shape} differs "
                               f"from the InputLayer's {input_shape}")
            input_shape = batch_shape
        built.append((layer, spec, entry, i))
    if input_shape is None and "build_input_shape" in cfg:
        input_shape = _shape_list(cfg["build_input_shape"], "build_input_shape")
    if input_shape is None and built:
        build = built[0][2].raw.get("build_config")
        if isinstance(build, dict) and "input_shape" in build:
            input_shape = _shape_list(build["input_shape"], "the first layer's input_shape")
    if input_shape is None:
        raise _Refused("the model was never built: the file gives no input shape")
    shape = input_shape
    for layer, spec, entry, i in built:
        _adopt(layer, entry, spec, i, shape, weights, budget)
        try:
            shape = layer.compute_output_shape(shape)
        except (ValueError, TypeError) as err:
            raise _Refused(f"layer {entry.name!r} ({entry.class_name}): {err}") from None
    weights.finish()
    try:
        return Sequential([b[0] for b in built], input_shape=input_shape, name=name)
    except (ValueError, TypeError) as err:
        raise _Refused(str(err)) from None


def _history(value: object, what: str) -> tuple[str, int, int]:
    """A ``[layer_name, node_index, tensor_index]`` reference."""
    if (isinstance(value, list) and len(value) in (3, 4) and isinstance(value[0], str)
            and _is_int(value[1]) and _is_int(value[2])):
        if len(value) == 4 and value[3] not in ({}, None):
            raise _Refused(f"{what}: call arguments {_show(value[3])} are not supported")
        return value[0], value[1], value[2]
    raise _Refused(f"{what}: {_show(value)} is not a [layer, node, tensor] reference")


def _inbound(entry: _Entry, merge: bool) -> tuple[list[tuple[str, int, int]], bool]:
    """The tensors ``entry``'s layer is called on, and whether as a list."""
    where = f"layer {entry.name!r} ({entry.class_name})"
    nodes = entry.raw.get("inbound_nodes")
    if not isinstance(nodes, list) or len(nodes) != 1:
        count = len(nodes) if isinstance(nodes, list) else "no"
        raise _Refused(f"{where}: called {count} times (convpool calls each layer once: shared "
                       f"layers are not supported)")
    node = nodes[0]
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        args, kwargs = node.get("args"), node.get("kwargs", {})
        if (set(node) - {"args", "kwargs"} or not isinstance(args, list) or len(args) != 1
                or not isinstance(kwargs, dict)):
            raise _Refused(f"{where}: its call is not one tensor or one list of tensors")
        if any(v is not None for v in kwargs.values()):
            raise _Refused(f"{where}: call arguments {_show(kwargs)} are not supported")
        as_list = isinstance(args[0], list)
        tensors = args[0] if as_list else [args[0]]
        refs = []
        for t in tensors:
            if not (isinstance(t, dict) and t.get("class_name") == "__keras_tensor__"
                    and isinstance(t.get("config"), dict)):
                raise _Refused(f"{where}: its call's argument {_show(t)} is not a tensor")
            refs.append(_history(t["config"].get("keras_history"), where))
    elif isinstance(node, list):  # Keras 2: [[name, node, tensor, kwargs], ...]
        refs = [_history(t, where) for t in node]
        as_list = merge
    else:
        raise _Refused(f"{where}: its inbound node {_show(node)} is not understood")
    if as_list != merge:
        raise _Refused(f"{where}: called on {'a list' if as_list else 'one tensor'}, which "
                       f"{entry.class_name} does not take")
    for ref in refs:
        if ref[1] != 0 or ref[2] != 0:
            raise _Refused(f"{where}: refers to output {ref[2]} of call {ref[1]} of layer "
                           f"{ref[0]!r} (each layer is called once, with one output)")
    if not refs:
        raise _Refused(f"{where}: called on no tensor")
    return refs, as_list


def _endpoints(value: object, what: str) -> list[str]:
    """The layer names of ``input_layers`` / ``output_layers`` (one reference or a list)."""
    if isinstance(value, list) and value and isinstance(value[0], str):
        return [_history(value, what)[0]]
    if isinstance(value, list) and value:
        return [_history(v, what)[0] for v in value]
    raise _Refused(f"the model's {what} {_show(value)} is not a list of layer references")


def _functional_from_keras(config: object, make_weights: Callable[[dict[int, str]], _Weights],
                           budget: _Budget) -> Any:
    from .. import models

    model_cls = getattr(models, "Model", None)
    if model_cls is None:
        raise _Refused("this is a functional Keras model, and this version of convpool has no "
                       "functional Model (convpool.models.Model)")
    name, entries, cfg = _entries(config, "Functional")
    weights = make_weights(_v3_paths(entries, sequential=False))
    tensors: dict[str, Any] = {}
    for i, entry in enumerate(entries):
        if entry.class_name == "InputLayer":
            shape, dtype = _input_layer(entry)
            tensors[entry.name] = _layers.Input(batch_shape=shape, dtype=dtype, name=entry.name)
            weights.datasets(entry, None, i, [])
            continue
        layer, spec, _ = _layer_from_keras(entry)
        refs, as_list = _inbound(entry, spec.merge)
        missing = [r[0] for r in refs if r[0] not in tensors]
        if missing:
            raise _Refused(f"layer {entry.name!r} is called on {missing[0]!r}, which comes "
                           f"later or nowhere in the config")
        args = [tensors[r[0]] for r in refs]
        if not spec.merge:
            _adopt(layer, entry, spec, i, tuple(args[0].shape), weights, budget)
        else:
            weights.datasets(entry, spec, i, [])
        try:
            tensors[entry.name] = layer(args if as_list else args[0])
        except (ValueError, TypeError) as err:
            raise _Refused(f"layer {entry.name!r} ({entry.class_name}): {err}") from None
    weights.finish()
    ends = []
    for key in ("input_layers", "output_layers"):
        names = _endpoints(cfg.get(key), key)
        unknown = [n for n in names if n not in tensors]
        if unknown:
            raise _Refused(f"the model's {key} name {unknown[0]!r}, which is not a layer")
        found = [tensors[n] for n in names]
        # One input (or output) in a list is still one: Keras 2 writes every
        # model's ends as lists, and Keras's predict takes and gives one array.
        ends.append(found if len(found) > 1 else found[0])
    try:
        return model_cls(inputs=ends[0], outputs=ends[1], name=name)
    except (ValueError, TypeError) as err:
        raise _Refused(str(err)) from None


def _from_keras(top: object, make_weights: Callable[[dict[int, str]], _Weights],
                budget: _Budget) -> Any:
    kind, config = _model_config(top)
    if kind == "Sequential":
        return _sequential_from_keras(config, make_weights, budget)
    return _functional_from_keras(config, make_weights, budget)


# =============================================================================
# Reading the files
# =============================================================================
def _json(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError, ints
        raise _Refused(f"{what} is not JSON: {type(err).__name__}: {err}") from None


def _member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    _check_member(info, limit)
    with zf.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise _Refused(f"{info.filename} is larger than {limit} bytes")
    return data


def _check_member(info: zipfile.ZipInfo, limit: int | None) -> None:
    if limit is not None and info.file_size > limit:
        raise _Refused(f"{info.filename} is {info.file_size} bytes, more than the {limit} read")
    if (info.compress_type != zipfile.ZIP_STORED
            and info.file_size > _MAX_RATIO * max(info.compress_size, 1) + 2**20):
        raise _Refused(f"{info.filename} expands {info.file_size / max(info.compress_size, 1):.0f}"
                       f" times (a zip bomb?)")


def _read_keras(path: str) -> Any:
    h5py = _h5py()
    with zipfile.ZipFile(path) as zf:
        infos = {info.filename: info for info in zf.infolist()}
        if "config.json" not in infos:
            raise _Refused("it has no config.json (not a .keras model file)")
        top = _json(_member(zf, infos["config.json"], MAX_JSON_BYTES), "config.json")
        if "metadata.json" in infos:
            metadata = _json(_member(zf, infos["metadata.json"], _MAX_METADATA_BYTES),
                             "metadata.json")
            if not isinstance(metadata, dict):
                raise _Refused("metadata.json is not an object")
        info = infos.get("model.weights.h5")
        if info is None:
            others = sorted(n for n in infos if n.startswith("model.weights"))
            raise _Refused("it has no model.weights.h5" + (
                f" (its weights are {others}: sharded or .npz weights are not supported)"
                if others else ""))
        _check_member(info, None)
        with zf.open(info) as raw:
            try:
                h5 = h5py.File(raw, "r")
            except Exception as err:
                raise _Refused(f"model.weights.h5 is not an HDF5 file: {err}") from None
            with h5:
                budget = _Budget(info.file_size)
                return _from_keras(top, lambda paths: _KerasV3Weights(h5py, h5, paths), budget)


def _read_legacy_h5(path: str) -> Any:
    h5py = _h5py()
    try:
        h5 = h5py.File(path, "r")
    except Exception as err:
        raise _Refused(f"not an HDF5 file: {err}") from None
    with h5:
        text = _attr(h5py, h5, "model_config")
        if text is None:
            hint = " (a weights-only file, as save_weights writes?)" if (
                "layer_names" in h5.attrs or "model_weights" in h5) else ""
            raise _Refused(f"it has no model_config attribute{hint}")
        top = _json(_text(text, "model_config"), "its model_config")
        group = _child(h5py, h5, "model_weights", "the group 'model_weights'")
        if group is None:
            raise _Refused("it has no model_weights group")
        budget = _Budget(os.path.getsize(path))
        return _from_keras(top, lambda paths: _LegacyWeights(h5py, group), budget)


def load_model(filepath: str | os.PathLike[str], custom_objects: object = None,
               compile: bool = True, safe_mode: bool = True) -> Any:
    """A model from a Keras ``.keras`` or ``.h5`` file, or a convpool ``.npz``,
    as Keras's ``keras.models.load_model``.

    Keras 3's ``.keras`` zips and the legacy HDF5 files of Keras 2 and 3 are
    read with h5py (``pip install convpool[keras]``), without TensorFlow: a
    Sequential model gives a :class:`~convpool.Sequential`, a functional one
    a ``convpool.models.Model``, of convpool's layers with the file's weights.
    The format is told by the file's content (zip or HDF5), and by its suffix
    when the content is neither.

    The file is untrusted input (see the module documentation): nothing in it
    is unpickled or run; every key of every layer config is mapped to a
    convpool argument or refused; each weight's shape and dtype are checked
    against the configuration before it is read.

    Parameters
    ----------
    filepath : str or path-like
    custom_objects : None
        Keras's argument; convpool builds its own layers only, so anything
        but None (or an empty dict) is a ValueError.
    compile : bool, default True
        Accepted for Keras's signature; the model is returned uncompiled
        (call ``compile`` before ``fit``): a file's training configuration
        is not read.
    safe_mode : bool, default True
        Accepted for Keras's signature; loading is always safe (Lambda layers
        are refused either way).

    Returns
    -------
    Sequential or Model

    Raises
    ------
    ValueError
        For a file that is not a model file, is truncated or malformed, or
        holds a layer, argument or value convpool does not compute, naming the
        file, and the layer and key where there is one.
    ImportError
        For a Keras file when h5py is not installed.
    """
    if custom_objects not in (None, {}):
        raise ValueError("custom_objects is not supported: convpool builds its own layers and "
                         "never runs code from a model file")
    for flag, value in (("compile", compile), ("safe_mode", safe_mode)):
        if not isinstance(value, bool):
            raise TypeError(f"{flag} must be a bool, got {value!r}")
    where = os.fspath(filepath)
    if os.path.isdir(where):
        raise ValueError(f"{where!r} is a directory: convpool reads .keras zips, .h5 files and "
                         f".npz files (not unzipped .keras folders or SavedModels)")
    with open(where, "rb") as f:
        head = f.read(8)
    suffix = os.path.splitext(where)[1].lower()
    try:
        if head.startswith(_ZIP_MAGIC):
            return _load_npz(where) if _is_npz(where) else _read_keras(where)
        if suffix == ".npz":
            return _load_npz(where)  # not a zip: its error names the file
        if suffix == ".keras":
            raise _Refused("not a zip file (a .keras file is a zip archive)")
        if head.startswith(_HDF5_MAGIC) or suffix in (".h5", ".hdf5"):
            return _read_legacy_h5(where)
        raise _Refused("not a model file (a .keras zip, an HDF5 .h5 file or a convpool .npz)")
    except ImportError:
        raise
    except _Refused as err:
        raise ValueError(f"{where!r}: {err}") from None
    except ValueError as err:
        if str(err).startswith(repr(where)):  # convpool.load named the file already
            raise
        raise ValueError(f"{where!r} is not a valid model file: {err}") from None
    except Exception as err:  # zipfile.BadZipFile, OSError, h5py's KeyError/TypeError...
        raise ValueError(f"{where!r} is not a valid model file: {type(err).__name__}: "
                         f"{err}") from None


def _is_npz(path: str) -> bool:
    """Whether the zip at ``path`` is NumPy's (.npy members), not a .keras file."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return "config.json" not in names and any(n.endswith(".npy") for n in names)


# =============================================================================
# convpool model -> Keras config
# =============================================================================
def _policy_config(dtype: str) -> dict[str, Any]:
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": dtype},
            "registered_name": None}


def _initializer_config(init: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"module": "keras.initializers", "class_name": init[0], "config": dict(init[1]),
            "registered_name": None}


def _layer_to_keras(layer: Layer, dtype: str, legacy: bool) -> tuple[_Spec, dict[str, Any]]:
    """The Keras class and config of a convpool layer (its arguments mapped one by
    one; an argument without a Keras equivalent is a ValueError)."""
    cls_name = type(layer).__name__
    where = f"layer {layer.name!r} ({cls_name})"
    spec = _BY_CONVPOOL.get(cls_name)
    if spec is None or getattr(_layers, spec.convpool, None) is not type(layer):
        raise _Refused(f"{where} has no Keras equivalent that convpool writes")
    ours = layer.get_config()
    policy = (layer.dtype.name if spec.weighted and layer.dtype is not None else dtype)
    out: dict[str, Any] = {"name": layer.name, "trainable": True,
                           "dtype": policy if legacy else _policy_config(policy)}
    used = {"name", "dtype"}
    if spec.weighted:
        used.add("seed")  # the initializers' seed: the weights are saved themselves
    # Conv2D's algorithm= chooses how convpool computes the same convolution
    # (Winograd or direct, equal to rounding): not written; a loaded layer
    # takes "auto".
    used.add("algorithm")
    for key, want in spec.convpool_fixed.items():
        used.add(key)
        if ours.get(key, want) != want:
            raise _Refused(f"{where}: {key}={_show(ours[key])} has no Keras equivalent (Keras's "
                           f"{spec.keras} computes {key}={want!r} only)")
    try:
        for arg in spec.args:
            used.add(arg.convpool)
            out[arg.keras] = arg.save(ours[arg.convpool])
    except _Refused as err:
        raise _Refused(f"{where}: {err}") from None
    for key, init in spec.initializers.items():
        out[key] = _initializer_config(init)
    out.update(spec.fixed)
    out.update({key: default for key, (_, default) in spec.ignored.items()})
    # convpool's initializers: Keras's defaults are written (the weights are saved).
    left = sorted(k for k in set(ours) - used if not k.endswith("_initializer"))
    if left:
        raise _Refused(f"{where}: {', '.join(f'{k}={_show(ours[k])}' for k in left)} has no "
                       f"Keras equivalent")
    return spec, out


def _shape_json(shape: object) -> Any:
    return [None if d is None else int(d) for d in shape]  # type: ignore[attr-defined]


def _model_dtype(model: Any) -> str:
    kinds = {w.dtype.name for w in model.weights}
    return kinds.pop() if len(kinds) == 1 else "float32"


@dataclass
class _Saved:
    """What both writers need: the configs and each layer's weights."""

    config: dict[str, Any]          # .keras's config.json
    legacy: dict[str, Any]          # the .h5's model_config
    layers: list[tuple[str, str, list[str], list[Any]]] = field(default_factory=list)
    #: (path in model.weights.h5, layer name, Keras variable names, arrays), in model.layers order


def _check_names(names: list[str]) -> None:
    """Keras's rules for layer names: unique, and no '/' (a path separator)."""
    for name in names:
        if names.count(name) > 1:
            raise _Refused(f"two layers are named {name!r}: Keras needs unique names")
        if "/" in name or not name:
            raise _Refused(f"layer name {name!r}: Keras's names are not empty and hold no '/'")


def _weights_of(layer: Layer) -> tuple[list[str], list[Any]]:
    names = [n for n in layer._weight_names if n in layer._weights]
    return names, [layer._weights[n] for n in names]


def _sequential_to_keras(model: Any) -> _Saved:
    dtype = _model_dtype(model)
    names = [layer.name for layer in model.layers]
    _check_names(names)
    input_name = next(n for n in (f"input_layer{'_' + str(i) if i else ''}" for i in
                                  range(len(names) + 1)) if n not in names)
    shape = tuple(model.input_shape)
    entries, legacy = [], []
    input_config = {"batch_shape": _shape_json(shape), "dtype": dtype, "sparse": False,
                    "name": input_name}
    entries.append({"module": "keras.layers", "class_name": "InputLayer",
                    "config": input_config, "registered_name": None})
    legacy.append({"class_name": "InputLayer",
                   "config": {"batch_input_shape": _shape_json(shape), "dtype": dtype,
                              "sparse": False, "name": input_name}})
    saved = _Saved({}, {})
    used: dict[str, int] = {}
    for layer in model.layers:
        spec, config = _layer_to_keras(layer, dtype, legacy=False)
        _, legacy_config = _layer_to_keras(layer, dtype, legacy=True)
        entries.append({"module": "keras.layers", "class_name": spec.keras, "config": config,
                        "registered_name": None,
                        "build_config": {"input_shape": _shape_json(shape)}})
        legacy.append({"class_name": spec.keras, "config": legacy_config})
        saved.layers.append((_unique(_snake(spec.keras), used), layer.name, *_weights_of(layer)))
        shape = layer.compute_output_shape(shape)
    input_shape = _shape_json(model.input_shape)
    saved.config = {
        "module": "keras", "class_name": "Sequential",
        "config": {"name": model.name, "trainable": True, "dtype": _policy_config(dtype),
                   "layers": entries, "build_input_shape": input_shape},
        "registered_name": None, "build_config": {"input_shape": input_shape}}
    saved.legacy = {"class_name": "Sequential",
                    "config": {"name": model.name, "trainable": True, "dtype": dtype,
                               "layers": legacy}}
    return saved


# ---- the functional graph ----------------------------------------------------
def _producer(tensor: Any) -> Any:
    """The layer whose call made ``tensor`` (None for an Input): the functional
    API's ``SymbolicTensor.layer``."""
    return getattr(tensor, "layer", None)


def _inbound_of(tensor: Any) -> tuple[list[Any], bool]:
    """What ``tensor``'s layer was called on (``SymbolicTensor.inputs``), and
    whether as a list (a merge layer's ``_takes_list``)."""
    inputs = getattr(tensor, "inputs", None)
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise _Refused(f"tensor {tensor!r} records no inputs of its layer")
    return list(inputs), bool(getattr(_producer(tensor), "_takes_list", False))


def _keras_order(inputs: list[Any], outputs: list[Any]) -> list[Any]:
    """The tensors of the graph (Inputs and layer outputs) in the order Keras 3's
    ``map_graph`` gives ``model.layers``: by decreasing depth from the outputs,
    ties broken by the first visit of a depth-first walk from the outputs.
    Keras numbers the layers' weight paths in that order, so a file written in
    another would give Keras's loader the wrong weights."""
    order: list[Any] = []          # post-order of the walk (nodes_in_decreasing_depth)
    first_seen: dict[int, int] = {}
    finished: set[int] = set()
    by_id: dict[int, Any] = {}

    def parents(t: Any) -> list[Any]:
        return [] if _producer(t) is None else _inbound_of(t)[0]

    for out in outputs:
        stack: list[tuple[Any, Iterator[Any]]] = []
        in_progress: set[int] = set()

        def enter(t: Any) -> None:
            if id(t) in in_progress:
                raise _Refused("the model's graph has a cycle")
            first_seen.setdefault(id(t), len(first_seen))
            by_id[id(t)] = t
            in_progress.add(id(t))
            stack.append((t, iter(parents(t))))

        if id(out) not in finished:
            enter(out)
        while stack:
            t, rest = stack[-1]
            nxt = next(rest, None)
            if nxt is None:
                stack.pop()
                in_progress.discard(id(t))
                finished.add(id(t))
                order.append(t)
            elif id(nxt) not in finished:
                enter(nxt)
    depth: dict[int, int] = {}
    for t in reversed(order):
        d = depth.setdefault(id(t), 0)
        for p in parents(t):
            depth[id(p)] = max(d + 1, depth.get(id(p), 0))
    for t in inputs:  # inputs no output depends on
        if id(t) not in depth:
            depth[id(t)] = 0
            first_seen[id(t)] = -1
            by_id[id(t)] = t
    keys = sorted(depth, key=lambda k: (-depth[k], first_seen[k]))
    return [by_id[k] for k in keys]


def _keras_tensor(t: Any, name: str, dtype: str) -> dict[str, Any]:
    return {"class_name": "__keras_tensor__",
            "config": {"shape": _shape_json(t.shape), "dtype": dtype,
                       "keras_history": [name, 0, 0]}}


def _functional_to_keras(model: Any) -> _Saved:
    dtype = _model_dtype(model)
    inputs = list(model.inputs) if isinstance(model.inputs, (list, tuple)) else [model.inputs]
    outputs = (list(model.outputs) if isinstance(model.outputs, (list, tuple))
               else [model.outputs])
    order = _keras_order(inputs, outputs)

    def name_of(t: Any) -> str:
        layer = _producer(t)
        return str(t.name) if layer is None else str(layer.name)

    _check_names([name_of(t) for t in order])
    entries, legacy = [], []
    saved = _Saved({}, {})
    used: dict[str, int] = {}
    for t in order:
        layer = _producer(t)
        if layer is None:
            config = {"batch_shape": _shape_json(t.shape), "dtype": dtype, "sparse": False,
                      "name": t.name}
            entries.append({"module": "keras.layers", "class_name": "InputLayer",
                            "config": config, "registered_name": None, "name": t.name,
                            "inbound_nodes": []})
            legacy.append({"class_name": "InputLayer", "name": t.name, "inbound_nodes": [],
                           "config": {**{k: v for k, v in config.items() if k != "batch_shape"},
                                      "batch_input_shape": config["batch_shape"]}})
            saved.layers.append((_unique("input_layer", used), t.name, [], []))
            continue
        spec, config = _layer_to_keras(layer, dtype, legacy=False)
        _, legacy_config = _layer_to_keras(layer, dtype, legacy=True)
        args, as_list = _inbound_of(t)
        if as_list != spec.merge:
            raise _Refused(f"layer {layer.name!r}: called on {'a list' if as_list else 'one'}")
        tensors = [_keras_tensor(a, name_of(a), dtype) for a in args]
        shapes = [_shape_json(a.shape) for a in args]
        node = {"args": [tensors if as_list else tensors[0]], "kwargs": {}}
        entries.append({"module": "keras.layers", "class_name": spec.keras, "config": config,
                        "registered_name": None,
                        "build_config": {"input_shape": shapes if as_list else shapes[0]},
                        "name": layer.name, "inbound_nodes": [node]})
        legacy.append({"class_name": spec.keras, "config": legacy_config, "name": layer.name,
                       "inbound_nodes": [node]})
        saved.layers.append((_unique(_snake(spec.keras), used), layer.name, *_weights_of(layer)))

    def ends(ts: list[Any], single: object) -> Any:
        refs = [[name_of(t), 0, 0] for t in ts]
        return refs[0] if single and len(refs) == 1 else refs

    body = {"name": model.name, "trainable": True, "layers": entries,
            "input_layers": ends(inputs, getattr(model, "_single_input", False)),
            "output_layers": ends(outputs, getattr(model, "_single_output", False))}
    saved.config = {"module": "keras.src.models.functional", "class_name": "Functional",
                    "config": body, "registered_name": "Functional",
                    "build_config": {"input_shape": None}}
    saved.legacy = {"class_name": "Functional", "config": {**body, "layers": legacy}}
    return saved


def _to_keras(model: Any) -> _Saved:
    from .sequential import Sequential

    if not getattr(model, "built", True):
        raise ValueError("the model is not built: there are no weights to save")
    if isinstance(model, Sequential):
        return _sequential_to_keras(model)
    if hasattr(model, "inputs") and hasattr(model, "outputs"):
        return _functional_to_keras(model)
    raise TypeError(f"save_model takes a convpool Sequential or Model, got "
                    f"{type(model).__name__}")


# =============================================================================
# Writing the files
# =============================================================================
def _write_v3_weights(h5py: Any, path: str, saved: _Saved, model_name: str) -> None:
    with h5py.File(path, "w") as f:
        layers = f.create_group("layers")
        for group_path, name, _, arrays in saved.layers:
            variables = layers.create_group(group_path).create_group("vars")
            variables.attrs["name"] = name
            for i, array in enumerate(arrays):
                variables.create_dataset(str(i), data=np.ascontiguousarray(array))
        f.create_group("vars").attrs["name"] = model_name


def _write_keras(model: Any, target: str) -> None:
    h5py = _h5py()
    try:
        saved = _to_keras(model)
    except _Refused as err:
        raise ValueError(f"cannot save {target!r} as a .keras file: {err}") from None
    metadata = {"keras_version": KERAS_VERSION,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}

    def write(tmp: str) -> None:
        fd, weights_tmp = tempfile.mkstemp(prefix=".convpool-", suffix=".weights.h5.tmp",
                                           dir=os.path.dirname(tmp))
        os.close(fd)
        try:
            _write_v3_weights(h5py, weights_tmp, saved, model.name)
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
                zf.writestr("metadata.json", json.dumps(metadata))
                zf.writestr("config.json", json.dumps(saved.config))
                zf.write(weights_tmp, "model.weights.h5")
        finally:
            os.unlink(weights_tmp)

    replace_atomically(target, ".keras", write)


def _set_names(h5py: Any, obj: Any, name: str, values: list[str]) -> None:
    """Keras's ``save_attributes_to_hdf5_group``: a list of names, split in chunks
    (``name0``, ``name1``...) when too long for one HDF5 object header."""
    data = np.array(values, dtype=h5py.string_dtype()) if values else np.array([], np.float64)
    limit = 64512  # Keras's HDF5_OBJECT_HEADER_LIMIT
    size = sum(len(v.encode()) + 16 for v in values)
    if size < limit:
        obj.attrs[name] = data
        return
    chunks = math.ceil(size / limit) + 1
    for i, part in enumerate(np.array_split(data, chunks)):
        obj.attrs[f"{name}{i}"] = part


def _write_legacy(model: Any, target: str) -> None:
    h5py = _h5py()
    try:
        saved = _to_keras(model)
    except _Refused as err:
        raise ValueError(f"cannot save {target!r} as an .h5 file: {err}") from None

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["backend"] = "tensorflow"
            f.attrs["keras_version"] = KERAS_VERSION
            f.attrs["model_config"] = json.dumps(saved.legacy)
            weights = f.create_group("model_weights")
            weights.attrs["backend"] = "tensorflow"
            weights.attrs["keras_version"] = KERAS_VERSION
            layer_names = [name for path, name, _, _ in saved.layers]
            _set_names(h5py, weights, "layer_names", layer_names)
            for _, name, variables, arrays in saved.layers:
                group = weights.create_group(name)
                paths = [f"{name}/{v}" for v in variables]
                _set_names(h5py, group, "weight_names", paths)
                for path, array in zip(paths, arrays):
                    group.create_dataset(path, data=np.ascontiguousarray(array))
            _set_names(h5py, weights.create_group("top_level_model_weights"),
                       "weight_names", [])

    replace_atomically(target, ".h5", write)


def save_model(model: Any, filepath: str | os.PathLike[str], overwrite: bool = True,
               zipped: bool | None = None, **kwargs: Any) -> None:
    """Save ``model`` by ``filepath``'s suffix, as Keras's ``keras.models.save_model``.

    ``.keras``: Keras 3's zip (config.json, metadata.json, model.weights.h5),
    which ``keras.saving.load_model`` loads.  ``.h5`` / ``.hdf5``: the legacy
    HDF5 layout (``model_config`` and ``model_weights``).  ``.npz`` or no
    suffix: convpool's own file (:func:`convpool.models.saving.save_npz`).
    Keras files need h5py (``pip install convpool[keras]``).  They hold the
    architecture and the weights, not the optimizer's state (as Keras's
    ``include_optimizer=False``), with Keras's default initializers.

    A layer or argument Keras has no equivalent for (a numeric ``padding``,
    ``padding_mode="reflect"``, ``count_include_pad=True``...) is a ValueError
    naming it, raised before anything is written.  The file is written beside
    its destination and renamed over it.

    Parameters
    ----------
    model : Sequential or Model
        Built.
    filepath : str or path-like
    overwrite : bool, default True
        False refuses an existing file (FileExistsError; Keras would ask).
    zipped : None or True
        Keras's unzipped folders (False) are not supported.
    **kwargs :
        ``include_optimizer`` is accepted (no optimizer state is written);
        any other is a TypeError.
    """
    target = os.fspath(filepath)
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be a bool, got {overwrite!r}")
    if zipped not in (None, True):
        raise ValueError(f"zipped={zipped!r}: convpool writes zipped .keras files only")
    include = kwargs.pop("include_optimizer", True)
    if not isinstance(include, bool):
        raise TypeError(f"include_optimizer must be a bool, got {include!r}")
    if kwargs:
        raise TypeError(f"save_model() got unexpected keyword arguments {sorted(kwargs)}")
    lower = target.lower()
    suffix = os.path.splitext(lower)[1]
    if suffix not in ("", ".npz", ".keras", ".h5", ".hdf5"):
        raise ValueError(f"convpool saves models as .keras, .h5 (or .hdf5) and .npz files; "
                         f"{target!r} has the suffix {os.path.splitext(target)[1]!r}")
    if not overwrite and os.path.exists(target if suffix else target + ".npz"):
        raise FileExistsError(f"{target!r} exists and overwrite=False")
    if suffix == ".keras":
        _write_keras(model, target)
    elif suffix in (".h5", ".hdf5"):
        _write_legacy(model, target)
    else:
        save_npz(model, target)
