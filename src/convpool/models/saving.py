"""Saving and loading a Sequential model: one ``.npz`` file of its config and weights."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from ..layers import LAYERS


if TYPE_CHECKING:
    from .sequential import Sequential


def save_npz(model: Sequential, path: str | os.PathLike[str]) -> None:
    """Save ``model``'s architecture and weights to one ``.npz`` file (see :func:`load`)."""
    if not model.built:
        raise ValueError("the model is not built: there are no weights to save")
    # Any: numpy's stub types savez's **kwds against its allow_pickle (bool) too.
    arrays: dict[str, Any] = {f"weight_{i}": w for i, w in enumerate(model.weights)}
    np.savez(path, config=np.array(json.dumps(model.get_config())), **arrays)


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
    from .sequential import Sequential

    model = Sequential(layers, input_shape=None if input_shape is None else tuple(input_shape),
                       name=config["name"])
    model.set_weights(weights)
    return model


def _tuples(value: object) -> object:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
