"""Saving and loading a model (Sequential or functional): one ``.npz`` file of
its config and weights."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..layers import LAYERS, Layer

if TYPE_CHECKING:
    from .base import ModelBase
    from .functional import Model
    from .sequential import Sequential


def replace_atomically(target: str, suffix: str, write: Callable[[str], None]) -> None:
    """``write(tmp)`` to a temporary file beside ``target``, synced, then
    renamed over ``target``: an earlier file survives a failed save, and no
    temporary is left behind.  ``suffix`` ends the temporary's name (before
    ".tmp"); ``write`` must write exactly the path it is given."""
    folder = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(prefix=".convpool-", suffix=suffix + ".tmp", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_npz(model: ModelBase, path: str | os.PathLike[str]) -> None:
    """Save ``model``'s architecture and weights to one ``.npz`` file (see :func:`load`).

    The file is written beside its destination, then renamed over it, so a
    crash during the save loses no earlier file.  ``path`` ends in ".npz"
    (or has no suffix, which gets ".npz", as NumPy's savez does); any other
    suffix (".h5", ".keras") is a ValueError, never silently renamed.
    """
    if not model.built:
        raise ValueError("the model is not built: there are no weights to save")
    target = os.fspath(path)
    suffix = os.path.splitext(target)[1]
    if suffix == "":
        target += ".npz"
    elif suffix.lower() != ".npz":
        raise ValueError(f"convpool saves models as .npz files; {os.fspath(path)!r} has the "
                         f"suffix {suffix!r} (Keras's .keras and .h5 files: model.save() or "
                         f"convpool.keras.models.save_model)")
    # Any: numpy's stub types savez's **kwds against its allow_pickle (bool) too.
    arrays: dict[str, Any] = {f"weight_{i}": w for i, w in enumerate(model.weights)}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file: savez would append ".npz" to the name
            np.savez(f, config=np.array(json.dumps(model.get_config())), **arrays)

    replace_atomically(target, ".npz", write)


def load(path: str | os.PathLike[str]) -> Sequential | Model:
    """A model saved by :meth:`Sequential.save` or :meth:`Model.save`, with its weights.

    The file is untrusted input: it is read without pickle; its configuration
    must have the layout save writes; each layer is rebuilt from its
    arguments (validated as a constructor call) and takes the stored arrays
    only when their shapes are the ones its configuration implies, checked
    before any weight is allocated from configuration sizes.  Anything else
    is a ValueError naming the file.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file.

    Returns
    -------
    Sequential or Model
    """
    where = os.fspath(path)
    with open(path, "rb") as f:  # opened here, so a failed np.load leaves no file open
        try:
            data = np.load(f, allow_pickle=False)
        except Exception as err:  # not an .npy/.npz: a ValueError, OSError, BadZipFile...
            raise ValueError(f"{where!r} is not a convpool model file (.npz): "
                             f"{type(err).__name__}: {err}") from None
        if not hasattr(data, "files"):
            raise ValueError(f"{where!r} holds one array, not a convpool model (.npz of a "
                             f"config and weights)")
        with data:
            try:
                files = set(data.files)
                if "config" not in files:
                    raise ValueError("no 'config' entry")
                k = len(files) - 1
                if files != {"config"} | {f"weight_{i}" for i in range(k)}:
                    raise ValueError(f"unexpected entries {sorted(files)}")
                config = json.loads(str(data["config"]))
                weights = [data[f"weight_{i}"] for i in range(k)]
            except Exception as err:  # JSON, a pickled member, a truncated member...
                raise ValueError(f"{where!r} is not a valid convpool model file: "
                                 f"{type(err).__name__}: {err}") from None
    try:
        return _from_config(config, weights)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where!r}: {err}") from None


def _from_config(config: object, weights: list[Any]) -> Sequential | Model:
    from .functional import model_from_config
    from .sequential import Sequential

    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError("its config is not a model's: a dict with a 'layers' list")
    if "inputs" in config:  # a functional Model's graph
        return model_from_config(config, weights)
    name, input_shape = config.get("name"), config.get("input_shape")
    if not isinstance(name, str):
        raise ValueError(f"its config's name must be a string, got {name!r}")
    if not isinstance(input_shape, list) or not all(
            d is None or (type(d) is int and d >= 0) for d in input_shape):
        raise ValueError(f"its config's input_shape must be a list of non-negative ints or "
                         f"nulls, got {input_shape!r}")
    layers = [_layer_from_entry(entry, i, LAYERS) for i, entry in enumerate(config["layers"])]
    shape: tuple[Any, ...] = tuple(input_shape)
    at = 0
    for layer in layers:  # weights checked against each layer's shapes, then adopted
        count = len(layer.weight_shapes(shape))
        layer._adopt_weights(shape, weights[at : at + count])
        at += count
        shape = layer.compute_output_shape(shape)
    if at != len(weights):
        raise ValueError(f"the layers take {at} weight arrays, the file holds {len(weights)}")
    return Sequential(layers, input_shape=tuple(input_shape), name=name)


def _layer_from_entry(entry: object, i: int, classes: dict[str, type[Layer]]) -> Layer:
    """Layer ``i`` of a config, ``{"class": name, "config": {...}}``, made by
    its constructor (which validates the arguments); weights not included."""
    if not (isinstance(entry, dict) and isinstance(entry.get("class"), str)
            and isinstance(entry.get("config"), dict)):
        raise ValueError(f"layer {i} of its config is not {{'class': ..., 'config': {{...}}}}")
    cls = classes.get(entry["class"])
    if cls is None:
        raise ValueError(f"unknown layer class {entry['class']!r} (layer {i})")
    cfg = dict(entry["config"])
    for key in ("kernel_size", "strides", "dilation_rate", "pool_size", "output_padding"):
        if isinstance(cfg.get(key), list):
            cfg[key] = tuple(cfg[key])
    if isinstance(cfg.get("padding"), list):
        cfg["padding"] = _tuples(cfg["padding"])
    try:
        return cls.from_config(cfg)
    except (ValueError, TypeError) as err:
        raise ValueError(f"layer {i} ({entry['class']}): {err}") from None


def _tuples(value: object) -> object:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
