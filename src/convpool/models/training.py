"""The training loop: predict, evaluate and fit (mini-batch gradient descent)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._checks import as_array, check_int
from .._progress import Progress
from ..layers import Layer
from ..losses import LOSSES, Loss
from ..optimizers import Adam, Optimizer


class Trainer:
    """The training loop of a model: predict, evaluate and fit.

    A model class inherits it and provides ``layers``, ``forward(x,
    training)``, ``backward(grad_out)``, ``weights`` and ``grads``.
    """

    layers: list[Layer]

    def forward(self, x: ArrayLike, training: bool = False) -> NDArray[Any]:  # pragma: no cover
        raise NotImplementedError

    def backward(self, grad_out: ArrayLike) -> None:  # pragma: no cover
        raise NotImplementedError

    @property
    def weights(self) -> list[NDArray[Any]]:  # pragma: no cover
        raise NotImplementedError

    @property
    def grads(self) -> list[NDArray[Any]]:  # pragma: no cover
        raise NotImplementedError

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
