"""What Sequential and the functional Model share: the weights of their
layers, the parameter count, summary() and save()."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from typing import Any

from numpy.typing import ArrayLike, NDArray

from ..layers import Layer
from .summary import SummaryTable
from .training import Trainer

#: summary()'s default print_fn: print (an explicit None keeps the old meaning).
_PRINT: Any = object()


class ModelBase(Trainer):
    """A model over ``layers`` (in the order their weights are listed).

    Subclasses provide ``layers``, ``built``, ``forward``, ``backward``,
    ``compute_output_shape``, ``summary_table`` and ``get_config``.
    """

    name: str
    layers: list[Layer]

    @property
    def built(self) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def summary_table(self) -> SummaryTable:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def trainable_weights(self) -> list[NDArray[Any]]:
        """All layers' trainable weights, in layer order (what :attr:`grads` aligns with)."""
        return [w for layer in self.layers for w in layer.trainable_weights]

    @property
    def grads(self) -> list[NDArray[Any]]:
        """The gradients from the last :meth:`backward`, aligned with :attr:`trainable_weights`."""
        return [g for layer in self.layers for g in layer.grads]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the architecture and the weights: ``.keras``, ``.h5`` or ``.npz`` by the
        suffix (see :func:`convpool.keras.models.save_model`)."""
        from .keras_format import save_model

        save_model(self, path)

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
