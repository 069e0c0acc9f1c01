"""The training loop: predict, evaluate and fit (mini-batch gradient descent)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .. import _random
from .._checks import as_array, check_bool, check_int, check_number
from ..layers import Layer
from ..optimizers import Adam

if TYPE_CHECKING:
    from ..callbacks import History


class Trainer:
    """The training loop of a model: predict, evaluate and fit.

    A model class inherits it and provides ``layers``, ``forward(x,
    training)``, ``backward(grad_out)``, ``weights`` and ``grads``.
    """

    layers: list[Layer]

    def forward(self, x: ArrayLike, training: bool = False) -> NDArray[Any]:  # pragma: no cover
        raise NotImplementedError

    def backward(self, grad_out: ArrayLike, *,
                 pre_activation: bool = False) -> None:  # pragma: no cover
        raise NotImplementedError

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:  # pragma: no cover
        raise NotImplementedError

    @property
    def weights(self) -> list[NDArray[Any]]:  # pragma: no cover
        raise NotImplementedError

    @property
    def grads(self) -> list[NDArray[Any]]:  # pragma: no cover
        raise NotImplementedError

    @property
    def trainable_weights(self) -> list[NDArray[Any]]:  # pragma: no cover
        raise NotImplementedError

    # ---- compile --------------------------------------------------------------
    def compile(
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        loss_weights: object = None,
        metrics: Iterable[object] | None = None,
        **kwargs: Any,
    ) -> None:
        """Set the optimizer, the loss and the metrics that :meth:`fit` and
        :meth:`evaluate` use, as Keras's ``compile``.

        Parameters
        ----------
        optimizer : str or Optimizer, default "rmsprop"
            "adam", "sgd", "rmsprop", "adagrad" (Keras's defaults), or an
            instance (:mod:`convpool.optimizers`).
        loss : str, loss object or callable
            A Keras loss name ("categorical_crossentropy",
            "sparse_categorical_crossentropy", "binary_crossentropy", "mse",
            "mae"), an instance from :mod:`convpool.losses`, or convpool's
            ``f(output, y) -> (loss, grad)``.
        loss_weights : None
            Keras's argument for multi-output models; a single output takes None.
        metrics : list, optional
            Names or callables (:func:`convpool.metrics.get`); "accuracy"
            picks the kind the loss and output call for, as Keras does.
        **kwargs
            Keras's execution options (``run_eagerly``, ``jit_compile``,
            ``steps_per_execution``, ``weighted_metrics=None``,
            ``auto_scale_loss``) are accepted and ignored; anything else is a
            TypeError naming it.
        """
        from .. import losses as L
        from .. import optimizers as O

        unknown = sorted(set(kwargs) - _IGNORED_COMPILE)
        if unknown:
            raise TypeError(f"compile() got unexpected keyword arguments {unknown}")
        if kwargs.get("weighted_metrics") is not None or loss_weights is not None:
            raise ValueError("loss_weights and weighted_metrics are for multi-output models; "
                             "convpool's models have one output")
        self.optimizer = O.get(optimizer)
        self.loss = None if loss is None else L.get(loss)
        if isinstance(metrics, (str, bytes)) or (metrics is not None and callable(metrics)):
            metrics = [metrics]
        self._metric_ids = list(metrics) if metrics is not None else []
        self.compiled = True

    # ---- predict / evaluate --------------------------------------------------------
    def predict(self, x: ArrayLike, batch_size: int | None = None, verbose: object = "auto",
                steps: None = None, callbacks: None = None) -> NDArray[Any]:
        """The model's output for ``x``, computed ``batch_size`` samples at a time.

        Parameters
        ----------
        x : array_like of shape (N, ...)
        batch_size : int, optional
            Default: the whole batch in one call (Keras's default is 32;
            convpool's kernels are fastest on whole batches).
        verbose : "auto", 0, 1 or 2
            1 or 2 print one line when done; "auto" prints nothing here
            (predict is often called in loops beside NumPy code).
        steps, callbacks : None
            Keras's arguments, not supported (a ValueError if given).

        Returns
        -------
        ndarray of shape (N, ...)
        """
        _unsupported(steps=steps, callbacks=callbacks)
        level = _verbosity(verbose, auto=0)
        x = as_array(x, "x")
        started = time.perf_counter()
        if batch_size is None or x.shape[0] <= batch_size:
            out = self.forward(x)
            steps_done = 1
        else:
            batch_size = check_int(batch_size, "batch_size")
            out = np.concatenate(
                [self.forward(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
            )
            steps_done = -(-x.shape[0] // batch_size)
        if level:
            _KerasProgress(level, steps_done).end(steps_done, started, {})
        return out

    def evaluate(
        self,
        x: ArrayLike,
        y: ArrayLike,
        batch_size: int | None = None,
        verbose: object = "auto",
        sample_weight: None = None,
        steps: None = None,
        callbacks: None = None,
        return_dict: bool = False,
        *,
        loss: Any = None,
    ) -> Any:
        """The loss (and the compiled metrics) on ``(x, y)``, as Keras's ``evaluate``.

        Parameters
        ----------
        x, y : array_like
        batch_size : int, optional
            Default: the whole set at once (see :meth:`predict`).
        verbose : "auto", 0, 1 or 2
            "auto" prints one line (Keras's) for a compiled model.
        return_dict : bool, default False
            Return ``{"loss": ..., "<metric>": ...}``.
        loss : keyword-only, optional
            Override the compiled loss.
        sample_weight, steps, callbacks : None
            Keras's arguments, not supported.

        Returns
        -------
        float, list of float, dict, or (loss, accuracy)
            With a compiled model: the loss alone when no metric was
            compiled, else ``[loss, metric, ...]`` (Keras's).  An uncompiled
            model keeps convpool's earlier result: ``(loss, accuracy)`` with
            softmax cross-entropy (or ``loss``) and the argmax accuracy.
        """
        _unsupported(sample_weight=sample_weight, steps=steps, callbacks=callbacks)
        return_dict = check_bool(return_dict, "return_dict")
        output = self.predict(x, batch_size)
        spec = self._training_spec(loss, output.shape)
        logs = spec.score(output, y)
        if _verbosity(verbose, auto=1 if getattr(self, "compiled", False) else 0):
            _KerasProgress(1, 1).end(1, time.perf_counter(), logs)
        if return_dict:
            return logs
        if spec.legacy:
            return logs["loss"], logs["accuracy"]
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    # ---- fit ------------------------------------------------------------------------
    def fit(
        self,
        x: ArrayLike,
        y: ArrayLike,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: object = "auto",
        callbacks: Any = None,
        validation_split: float = 0.0,
        validation_data: tuple[ArrayLike, ArrayLike] | None = None,
        shuffle: bool = True,
        class_weight: None = None,
        sample_weight: None = None,
        initial_epoch: int = 0,
        steps_per_epoch: None = None,
        validation_steps: None = None,
        validation_batch_size: int | None = None,
        validation_freq: int = 1,
        *,
        optimizer: Any = None,
        loss: Any = None,
        seed: int | None = None,
    ) -> History:
        """Train the model by mini-batch gradient descent, as Keras's ``fit``
        (its positional order: ``x, y, batch_size, epochs``).

        Parameters
        ----------
        x : array_like of shape (N, ...)
        y : array_like of shape (N,) (class indices) or (N, K)
        batch_size : int, default 32
        epochs : int, default 1
            Train until epoch ``epochs`` (from ``initial_epoch``).
        verbose : "auto", 0, 1, 2 (or a bool)
            Keras's: 1 ("auto", True) a progress bar per epoch on stdout, 2 one
            line per epoch, 0 (False) nothing.
        callbacks : list of convpool.callbacks.Callback, optional
            EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, your own.
        validation_split : float in [0, 1)
            Hold out this fraction of the samples, the last ones (before any
            shuffling, as Keras), and evaluate on them after every epoch.
        validation_data : (x_val, y_val), optional
            Evaluated after every epoch (takes precedence over the split).
        shuffle : bool, default True
            Shuffle the samples every epoch (``numpy.random.default_rng(seed)``).
        initial_epoch : int, default 0
        validation_batch_size : int, optional
        validation_freq : int, default 1
            Validate every this many epochs.
        optimizer, loss : keyword-only, optional
            Override compile's (convpool's earlier way to pass them; an
            uncompiled model defaults to ``Adam()`` and softmax cross-entropy
            on logits).  Keep passing the same optimizer to continue training.
        seed : int, keyword-only, optional
            The shuffling seed; by default the next generator of
            :func:`convpool.utils.set_random_seed`'s seed when one is set,
            else fresh entropy.
        class_weight, sample_weight, steps_per_epoch, validation_steps : None
            Keras's arguments, not supported (a ValueError if given).

        Returns
        -------
        History
            ``.history``: per-epoch ``loss`` and each metric (means over the
            epoch's batches), and ``val_loss`` / ``val_<metric>`` with
            validation.  It also reads as that dict (``history["loss"]``).

        Notes
        -----
        With a probability loss after the activation it expects (categorical
        cross-entropy after a softmax, binary after a sigmoid) the gradient
        with respect to the logits is computed directly, ``(p - t) / N``:
        stable where p is near 0 or 1 (Keras fuses the same pair).
        """
        from .. import callbacks as C
        from .. import optimizers as O

        _unsupported(class_weight=class_weight, sample_weight=sample_weight,
                     steps_per_epoch=steps_per_epoch, validation_steps=validation_steps)
        x = as_array(x, "x")
        y = as_array(y, "y")
        if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y must have the same length, got {x.shape} and {y.shape}")
        epochs = check_int(epochs, "epochs")
        initial_epoch = check_int(initial_epoch, "initial_epoch", minimum=0)
        batch_size = 32 if batch_size is None else check_int(batch_size, "batch_size")
        validation_freq = check_int(validation_freq, "validation_freq")
        level = _verbosity(verbose, auto=1)
        shuffle = check_bool(shuffle, "shuffle")
        if optimizer is None:
            optimizer = getattr(self, "optimizer", None)
        opt = Adam() if optimizer is None else O.get(optimizer)
        self.optimizer = opt
        if validation_data is None and validation_split:
            split = _split_at(validation_split, x.shape[0])
            x, y, validation_data = x[:split], y[:split], (x[split:], y[split:])
        elif validation_data is not None:
            validation_data = _pair(validation_data)
        val_batch = batch_size if validation_batch_size is None else check_int(
            validation_batch_size, "validation_batch_size")
        spec = self._training_spec(loss, (None,) + tuple(self.compute_output_shape(x.shape))[1:])
        rng = _random.generator(seed)
        n = x.shape[0]
        steps = -(-n // batch_size) if n else 0
        self.stop_training = False
        cbs = C._CallbackList(callbacks, self, {"epochs": epochs, "steps": steps,
                                                 "verbose": level})
        progress = _KerasProgress(level, steps)
        x_batch = np.empty((min(batch_size, n),) + x.shape[1:], x.dtype)
        epoch_logs: dict[str, float] = {}
        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch)
            progress.begin(epoch, epochs)
            order = rng.permutation(n) if shuffle else np.arange(n)
            started = time.perf_counter()
            totals: dict[str, float] = {}
            seen = 0
            for step in range(steps):
                cbs.on_train_batch_begin(step)
                idx = order[step * batch_size : (step + 1) * batch_size]
                # The batch is gathered into one buffer reused every step
                # (the layers need it only until this step's backward).
                xb = np.take(x, idx, axis=0, out=x_batch[: len(idx)])
                yb = y[idx]
                out = self.forward(xb, training=True)
                value, grad, pre_activation = spec.loss_and_grad(out, yb)
                self.backward(grad, pre_activation=pre_activation)
                opt.apply(self.trainable_weights, self.grads)
                seen += len(idx)
                batch_logs = spec.metric_values(out, yb, value)
                for key, v in batch_logs.items():
                    totals[key] = totals.get(key, 0.0) + v * len(idx)
                running = {key: t / seen for key, t in totals.items()}
                cbs.on_train_batch_end(step, running)
                progress.step(step + 1, started, running)
                if self.stop_training:
                    break
            epoch_logs = {key: t / max(seen, 1) for key, t in totals.items()}
            if validation_data is not None and (epoch + 1) % validation_freq == 0:
                val_out = self.predict(validation_data[0], val_batch)
                for key, v in spec.score(val_out, validation_data[1]).items():
                    epoch_logs["val_" + key] = v
            progress.end(steps, started, epoch_logs)
            cbs.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        cbs.on_train_end(epoch_logs)
        for layer in self.layers:  # what backward kept is no longer needed
            layer._saved = None
        assert cbs.history is not None
        return cbs.history

    def _training_spec(self, loss: Any, output_shape: tuple[Any, ...]) -> _Spec:
        """The loss and metrics a call uses: its own loss, else compile's, else
        convpool's earlier default (softmax cross-entropy and argmax accuracy)."""
        from .. import losses as L
        from .. import metrics as M

        compiled = getattr(self, "compiled", False)
        if compiled:
            chosen = loss if loss is not None else getattr(self, "loss", None)
            if chosen is None:
                raise ValueError("the model was compiled without a loss: pass loss= to compile")
        else:
            chosen = "softmax_cross_entropy" if loss is None else loss
        loss_obj = L.get(chosen)
        if compiled:
            pairs = [M.get(m, loss=loss_obj, output_shape=output_shape)
                     for m in getattr(self, "_metric_ids", [])]
        elif isinstance(loss_obj, L.KerasLoss):
            pairs = [M.get("accuracy", loss=loss_obj, output_shape=output_shape)]
        else:  # convpool's earlier accuracy: the argmax against the labels
            pairs = [("accuracy", lambda y, out: _argmax_accuracy(out, y))]
        last = self.layers[-1] if self.layers else None
        fused = (loss_obj.fused(getattr(last, "activation", None))
                 if isinstance(loss_obj, L.KerasLoss) else None)
        return _Spec(loss_obj, pairs, fused, legacy=not compiled)


_IGNORED_COMPILE = frozenset({"run_eagerly", "jit_compile", "steps_per_execution",
                              "weighted_metrics", "auto_scale_loss"})


class _Spec:
    """A fit / evaluate call's loss, fused gradient and metrics ``fn(y_true,
    y_pred) -> float``; ``legacy``: an uncompiled model (evaluate returns
    convpool's earlier ``(loss, accuracy)``)."""

    def __init__(self, loss: Any, metrics: list[tuple[str, Any]], fused: Any,
                 legacy: bool) -> None:
        self.loss = loss
        # convpool's order f(output, y) -> (loss, grad); a KerasLoss is called
        # through value_and_grad (its __call__ takes Keras's (y_true, y_pred)).
        self.value_and_grad = getattr(loss, "value_and_grad", loss)
        self.metrics = metrics
        self.fused = fused
        self.legacy = legacy

    def loss_and_grad(self, out: NDArray[Any], y: NDArray[Any]
                      ) -> tuple[float, NDArray[Any], bool]:
        """(loss, gradient, whether it is the gradient before the output activation)."""
        if self.fused is not None:
            value, grad = self.fused(out, y)
            return float(value), grad, True
        value, grad = self.value_and_grad(out, y)
        return float(value), grad, False

    def metric_values(self, out: NDArray[Any], y: NDArray[Any], value: float) -> dict[str, float]:
        logs = {"loss": value}
        for name, fn in self.metrics:
            logs[name] = float(fn(y, out))
        return logs

    def score(self, out: NDArray[Any], y: ArrayLike) -> dict[str, float]:
        """The loss and the metrics on a whole set (evaluate, validation)."""
        y = as_array(y, "y")
        if self.fused is not None:
            value = float(self.fused(out, y)[0])
        else:
            value = float(self.value_and_grad(out, y)[0])
        return self.metric_values(out, y, value)


class _KerasProgress:
    """Keras's display: "Epoch e/E", then a bar (verbose 1, redrawn on a
    terminal) or one line (verbose 2) per epoch, on stdout."""

    def __init__(self, level: int, steps: int) -> None:
        self.level, self.steps = level, steps
        self.stream = sys.stdout
        self.tty = self.stream.isatty()

    def begin(self, epoch: int, epochs: int) -> None:
        if self.level:
            self.stream.write(f"Epoch {epoch + 1}/{epochs}\n")

    def _line(self, done: int, started: float, logs: dict[str, float], bar: bool) -> str:
        elapsed = time.perf_counter() - started
        per_step = elapsed / max(done, 1)
        metrics = "".join(f" - {k}: {v:.4f}" for k, v in sorted(logs.items()))
        width = len(str(self.steps))
        head = f"{done:>{width}}/{self.steps}"
        if bar:
            filled = int(20 * done / max(self.steps, 1))
            head += " " + "\u2501" * filled + " " * (20 - filled)
            return f"{head} {elapsed:.0f}s {per_step * 1e3:.0f}ms/step{metrics}"
        return f"{head} - {elapsed:.0f}s - {per_step * 1e3:.0f}ms/step{metrics}"

    def step(self, done: int, started: float, logs: dict[str, float]) -> None:
        if self.level == 1 and self.tty:
            self.stream.write("\r" + self._line(done, started, logs, True))
            self.stream.flush()

    def end(self, done: int, started: float, logs: dict[str, float]) -> None:
        if not self.level:
            return
        prefix = "\r" if self.level == 1 and self.tty else ""
        self.stream.write(prefix + self._line(done, started, logs, self.level == 1) + "\n")
        self.stream.flush()


def _verbosity(verbose: object, auto: int) -> int:
    """Keras's verbose: "auto" (``auto``), 0, 1, 2; a bool is 1 or 0."""
    if verbose == "auto":
        return auto
    if isinstance(verbose, (bool, np.bool_)):
        return int(verbose)
    if isinstance(verbose, (int, np.integer)) and verbose in (0, 1, 2):
        return int(verbose)
    raise ValueError(f"verbose must be 'auto', 0, 1, 2 or a bool, got {verbose!r}")


def _unsupported(**arguments: object) -> None:
    given = [name for name, value in arguments.items() if value is not None]
    if given:
        raise ValueError(f"convpool does not support {', '.join(given)} yet (Keras's "
                         f"argument{'s' if len(given) > 1 else ''}); leave it None")


def _split_at(validation_split: object, n: int) -> int:
    fraction = check_number(validation_split, "validation_split", low=0, high=1, high_open=True)
    split = int(n * (1 - fraction))  # Keras's: the last samples are held out
    if split == 0 or split == n:
        raise ValueError(f"validation_split={validation_split} of {n} samples leaves "
                         f"{split} for training and {n - split} for validation")
    return split


def _pair(validation_data: object) -> tuple[NDArray[Any], NDArray[Any]]:
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError("validation_data must be a pair (x_val, y_val)")
    xv, yv = as_array(validation_data[0], "x_val"), as_array(validation_data[1], "y_val")
    if xv.ndim == 0 or yv.ndim == 0 or xv.shape[0] != yv.shape[0]:
        raise ValueError(f"x_val and y_val must have the same length, got {xv.shape} and "
                         f"{yv.shape}")
    return xv, yv


def _argmax_accuracy(output: ArrayLike, y: ArrayLike) -> float:
    """Share of rows whose argmax matches the label (class index or one-hot row):
    convpool's accuracy for uncompiled models."""
    output = np.asarray(output)
    y = np.asarray(y)
    if output.ndim != 2 or len(output) == 0:
        return float("nan")
    labels = y.argmax(axis=1) if y.ndim == 2 else y
    return float(np.mean(output.argmax(axis=1) == labels))
