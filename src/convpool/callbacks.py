"""Callbacks for :meth:`Sequential.fit`, as Keras 3's.

A callback is told of the training's progress through its hooks
(``on_train_begin``, ``on_epoch_begin``, ``on_train_batch_begin``,
``on_train_batch_end``, ``on_epoch_end``, ``on_train_end``, and the
``on_test_*`` ones of an evaluation), each with a ``logs`` dict of the
metrics so far.  Callbacks talk to the model through a few attributes only
(duck typing: any object that has them will do):

========================  ==============================================
Callback                  uses on the model
========================  ==============================================
:class:`History`          sets ``model.history`` (to itself)
:class:`EarlyStopping`    sets ``model.stop_training = True``; with
                          ``restore_best_weights``, ``get_weights()`` and
                          ``set_weights(weights)``
:class:`ModelCheckpoint`  ``save(path)``, or ``save_weights(path)`` with
                          ``save_weights_only``
:class:`ReduceLROnPlateau` reads and sets ``model.optimizer.learning_rate``
========================  ==============================================

The semantics are Keras 3's (``keras/src/callbacks``), line by line: the
same counters, the same order of the checks, the same warning when the
monitored value is missing from the logs.  Where they differ, it is said in
the class's docstring.

Examples
--------
A scripted run: the validation loss stops improving after the third epoch.

>>> from types import SimpleNamespace
>>> from convpool.callbacks import EarlyStopping, History, _CallbackList
>>> model = SimpleNamespace(stop_training=False)
>>> stop, history = EarlyStopping(patience=2), History()
>>> callbacks = _CallbackList([stop, history], model, {"epochs": 10})
>>> callbacks.on_train_begin()
>>> for epoch, val_loss in enumerate([0.9, 0.7, 0.6, 0.65, 0.61, 0.62, 0.5]):
...     callbacks.on_epoch_begin(epoch)
...     callbacks.on_epoch_end(epoch, {"loss": 1.0, "val_loss": val_loss})
...     if model.stop_training:
...         break
>>> callbacks.on_train_end()
>>> stop.stopped_epoch, history.epoch, history["val_loss"]
(4, [0, 1, 2, 3, 4], [0.9, 0.7, 0.6, 0.65, 0.61])
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from ._checks import check_bool, check_int, check_number

__all__ = [
    "Callback",
    "History",
    "EarlyStopping",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
]

Logs = dict[str, Any]


class Callback:
    """Base of the callbacks: every hook is a no-op.

    Attributes
    ----------
    model : object or None
        The model being trained (set by :meth:`set_model`).
    params : dict or None
        The training's parameters (``epochs``, ``steps``, ``verbose``, ...;
        set by :meth:`set_params`).
    """

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] | None = None

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any] | None) -> None:
        self.params = params

    def on_train_begin(self, logs: Logs | None = None) -> None:
        """At the start of ``fit``."""

    def on_train_end(self, logs: Logs | None = None) -> None:
        """At the end of ``fit``, with the last epoch's logs."""

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        """At the start of epoch ``epoch`` (counted from 0)."""

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        """At the end of epoch ``epoch``, with its metrics (``val_*`` too)."""

    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        """Before training step ``batch`` (counted from 0 in each epoch)."""

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """After training step ``batch``, with the epoch's running metrics."""

    def on_test_begin(self, logs: Logs | None = None) -> None:
        """At the start of an evaluation (the validation of an epoch, too)."""

    def on_test_end(self, logs: Logs | None = None) -> None:
        """At the end of an evaluation, with its metrics."""

    def on_test_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        """Before evaluation step ``batch``."""

    def on_test_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """After evaluation step ``batch``."""


class History(Callback, Mapping[str, list[Any]]):
    """Records every epoch's logs: what ``fit`` returns.

    Also a read-only mapping over :attr:`history` (``h["loss"]``,
    ``"loss" in h``, ``h.keys()``, ``len(h)``, ``dict(h)``), so code that
    took ``fit``'s result for a dict keeps working.  Like Keras's, it keeps
    its records across ``fit`` calls (only :attr:`epoch` restarts); ``fit``
    makes a new one each time unless one is passed in ``callbacks``.

    Attributes
    ----------
    history : dict of str to list
        One list per logged name, one entry per epoch.
    epoch : list of int
        The epochs recorded by the current ``fit``.
    params : dict or None
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[Any]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self  # Keras: the latest state, after every epoch

    def __getitem__(self, key: str) -> list[Any]:
        return self.history[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.history)

    def __len__(self) -> int:
        return len(self.history)

    def __repr__(self) -> str:
        return f"History(epoch={self.epoch}, history={self.history})"


def _accuracy_like(name: str) -> bool:
    return any(part in name for part in ("acc", "accuracy", "auc"))


class _MonitorCallback(Callback):
    """Keras's MonitorCallback: the monitored name, its direction and the
    improvement test ``monitor_op(current - min_delta, best)``."""

    def __init__(self, monitor: str, mode: str, baseline: float | None, min_delta: float) -> None:
        super().__init__()
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a str, got {monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.mode = mode
        self.best: float | None = _number_or_none(baseline, "baseline")
        self.min_delta = abs(_number(min_delta, "min_delta"))
        self.monitor_op: Any = None

    def _set_monitor_op(self) -> None:
        if self.mode == "min":
            self.monitor_op = np.less
        elif self.mode == "max":
            self.monitor_op = np.greater
        else:
            name = self.monitor.removeprefix("val_")
            self.monitor_op = (np.greater if name != "loss" and _accuracy_like(name)
                               else np.less)
        if self.monitor_op is np.less:
            self.min_delta *= -1

    def _is_improvement(self, monitor_value: float, reference_value: float | None) -> bool:
        if reference_value is None:
            return True
        return bool(self.monitor_op(monitor_value - self.min_delta, reference_value))


def _number(value: object, name: str) -> float:
    return check_number(value, name)


def _number_or_none(value: object, name: str) -> float | None:
    return None if value is None else _number(value, name)


class EarlyStopping(_MonitorCallback):
    """Stop training when a monitored metric has stopped improving, as Keras 3's.

    After each epoch from ``start_from_epoch`` on: the wait counter grows by
    one; an improvement (by more than ``min_delta`` over the best so far)
    records the new best and resets the counter, but only if it also beats
    ``baseline`` when one is given; otherwise, once the counter reaches
    ``patience`` (and the epoch is not the first), it sets
    ``model.stop_training = True``.  With ``restore_best_weights`` the
    weights of the best epoch are kept (``model.get_weights()``) and put
    back at the end of training (``model.set_weights``), whether it stopped
    early or not, as Keras 3 does (Keras 2 restored only on an early stop).

    Parameters
    ----------
    monitor : str, default "val_loss"
    min_delta : float, default 0
        The absolute change that counts as an improvement.
    patience : int >= 0, default 0
        Epochs without improvement before stopping.
    verbose : int, default 0
        1 prints when it stops and when it restores the weights.
    mode : {"auto", "min", "max"}, default "auto"
        "auto" maximises a monitor whose name (without "val_") contains
        "acc", "accuracy" or "auc", and minimises anything else.  (Keras 3
        looks the direction up on the model's metric objects and refuses a
        name it cannot find; an unknown mode is a ValueError here, a warning
        and "auto" in Keras.)
    baseline : float, optional
        The value to beat for the counter to reset.
    restore_best_weights : bool, default False
    start_from_epoch : int >= 0, default 0
        Epochs of warm-up during which nothing is monitored.

    Attributes
    ----------
    wait, stopped_epoch, best, best_epoch, best_weights
        As Keras's (``stopped_epoch`` is 0 when training was not stopped).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__(monitor, mode, baseline, min_delta)
        self.patience = check_int(patience, "patience", minimum=0)
        self.verbose = check_int(verbose, "verbose", minimum=0)
        self.baseline = self.best
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = check_bool(restore_best_weights, "restore_best_weights")
        self.best_weights: Any = None
        self.best_epoch = 0
        self.start_from_epoch = check_int(start_from_epoch, "start_from_epoch", minimum=0)

    def on_train_begin(self, logs: Logs | None = None) -> None:
        # Re-usable across fit calls.  (Keras resets best to None here too:
        # the baseline only decides whether an improvement resets the wait.)
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # Never set yet: the current weights are the best.
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # Restart the wait only when beating both the baseline and the best.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs: Logs | None) -> Any:
        """``logs[monitor]``, or None with a warning listing what the logs hold."""
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(
                f"Early stopping conditioned on metric `{self.monitor}` which is not "
                f"available. Available metrics are: {','.join(list(logs.keys()))}",
                stacklevel=2,
            )
        return value


class ModelCheckpoint(_MonitorCallback):
    """Save the model (or its weights) after every epoch or every few batches, as Keras 3's.

    Parameters
    ----------
    filepath : str or path-like
        Formatted with ``epoch`` (counted from 1), ``batch`` (from 1, when
        saving by batch) and the logs: ``"m-{epoch:02d}-{val_loss:.2f}.npz"``.
        A placeholder the logs lack is a KeyError naming it.  Missing
        directories are made.  (Keras insists on a ".keras" or
        ".weights.h5" suffix; here the suffix is the model's business.)
    monitor : str, default "val_loss"
    verbose : int, default 0
    save_best_only : bool, default False
        Save only when ``monitor`` improves on the best so far (if ``monitor``
        is missing from the logs: warn, and save anyway, as Keras does).
    save_weights_only : bool, default False
        ``model.save_weights(path)`` instead of ``model.save(path)``.
    mode : {"auto", "min", "max"}, default "auto"
        As in :class:`EarlyStopping`.
    save_freq : "epoch" or int, default "epoch"
        Save at the end of every epoch, or every ``save_freq`` training batches.
    initial_value_threshold : float, optional
        With ``save_best_only``, the value to beat for the first save.
    """

    def __init__(
        self,
        filepath: str | os.PathLike[str],
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        save_freq: str | int = "epoch",
        initial_value_threshold: float | None = None,
    ) -> None:
        super().__init__(monitor, mode, initial_value_threshold, 0)
        try:
            self.filepath = os.fspath(filepath)
        except TypeError:
            raise TypeError(f"filepath must be a str or path-like, got {filepath!r}") from None
        if not isinstance(self.filepath, str):
            raise TypeError(f"filepath must be a str, not bytes: {filepath!r}")
        self.verbose = check_int(verbose, "verbose", minimum=0)
        self.save_best_only = check_bool(save_best_only, "save_best_only")
        self.save_weights_only = check_bool(save_weights_only, "save_weights_only")
        if save_freq != "epoch":
            save_freq = check_int(save_freq, "save_freq",
                                  requirement="'epoch' or a positive int")
        self.save_freq = save_freq
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen: int | None = None
        self._current_epoch = 0

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if self._should_save_on_batch(batch):
            self._save_model(epoch=self._current_epoch, batch=batch, logs=logs)

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._current_epoch = epoch

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if self.monitor_op is None:
            self._set_monitor_op()
        if self.save_freq == "epoch":
            self._save_model(epoch=epoch, batch=None, logs=logs)

    def _should_save_on_batch(self, batch: int) -> bool:
        if self.save_freq == "epoch":
            return False
        if self._last_batch_seen is None or batch <= self._last_batch_seen:
            added = batch + 1  # a new epoch: batches count from 0
        else:
            added = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += added
        self._last_batch_seen = batch
        assert isinstance(self.save_freq, int)
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def _should_save_model(self, epoch: int, logs: Logs | None, filepath: str) -> bool:
        logs = logs or {}
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        if self.monitor_op is None:  # saving by batch before the first epoch's end
            self._set_monitor_op()
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.",
                          stacklevel=3)
            return True
        if isinstance(current, np.ndarray) and current.ndim > 0:
            warnings.warn(f"Can save best model only when `monitor` is a scalar value. "
                          f"Received: {current}. Falling back to `save_best_only=False`.",
                          stacklevel=3)
            return True
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to "
                      f"{current:.5f}, saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
        return False

    def _save_model(self, epoch: int, batch: int | None, logs: Logs | None) -> None:
        filepath = self._get_file_path(epoch, batch, logs or {})
        if self._should_save_model(epoch, logs, filepath):
            directory = os.path.dirname(filepath)
            if directory:
                os.makedirs(directory, exist_ok=True)
            if os.path.isdir(filepath):
                raise IsADirectoryError(
                    f"ModelCheckpoint's filepath must name a file, got the directory {filepath}"
                )
            if self.save_weights_only:
                self.model.save_weights(filepath)
            else:
                self.model.save(filepath)
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")

    def _get_file_path(self, epoch: int, batch: int | None, logs: Logs) -> str:
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as err:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". '
                           f"Reason: {err}") from None


class ReduceLROnPlateau(_MonitorCallback):
    """Reduce the learning rate when a metric has stopped improving, as Keras 3's.

    After each epoch it adds ``learning_rate`` to the logs (so callbacks after
    it, and the :class:`History`, record it).  In cooldown the counter stays
    0; an improvement (by more than ``min_delta``) resets it; otherwise,
    outside cooldown, it grows, and on reaching ``patience`` the rate becomes
    ``max(lr * factor, min_lr)`` (if lr is still above ``min_lr``) and the
    cooldown starts.

    Parameters
    ----------
    monitor : str, default "val_loss"
    factor : float in (0, 1), default 0.1
        (Keras refuses factor >= 1 only.)
    patience : int >= 0, default 10
    verbose : int, default 0
    mode : {"auto", "min", "max"}, default "auto"
        As in :class:`EarlyStopping`.
    min_delta : float, default 1e-4
    cooldown : int >= 0, default 0
        Epochs to wait after a reduction before counting again.
    min_lr : float >= 0, default 0

    Notes
    -----
    Uses ``model.optimizer.learning_rate`` (read as a float, then set).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__(monitor, mode, None, min_delta)
        self.factor = _number(factor, "factor")
        if not 0 < self.factor < 1:
            raise ValueError(f"ReduceLROnPlateau needs 0 < factor < 1, got factor={factor}")
        self.min_lr = _number(min_lr, "min_lr")
        if not self.min_lr >= 0:
            raise ValueError(f"min_lr must be >= 0, got {min_lr}")
        self.patience = check_int(patience, "patience", minimum=0)
        self.verbose = check_int(verbose, "verbose", minimum=0)
        self.cooldown = check_int(cooldown, "cooldown", minimum=0)
        self.cooldown_counter = 0
        self.wait = 0

    def _reset(self) -> None:
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._reset()

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _reduce_lr(self, epoch: int) -> bool:
        optimizer = self.model.optimizer
        old_lr = float(optimizer.learning_rate)
        if old_lr > np.float32(self.min_lr):
            new_lr = max(old_lr * self.factor, self.min_lr)
            optimizer.learning_rate = new_lr
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
            return True
        return False

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs or {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"Learning rate reduction is conditioned on metric `{self.monitor}` which is "
                f"not available. Available metrics are: {','.join(list(logs.keys()))}.",
                stacklevel=2,
            )
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce_lr(epoch):
                self.cooldown_counter = self.cooldown
                self.wait = 0


def _pythonify(logs: Mapping[str, Any] | None) -> Logs:
    """A new dict of the logs, values made Python floats where they can be (Keras's
    ``pythonify_logs``: nested dicts are flattened, keys sorted)."""
    result: Logs = {}
    for key, value in sorted((logs or {}).items()):
        if isinstance(value, Mapping):
            result.update(_pythonify(value))
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            pass
        result[key] = value
    return result


class _CallbackList:
    """What ``fit`` calls: every hook passed to each callback in order.

    Each hook gets a new dict made from the ``logs`` it is given (so the
    caller's dict is never changed), the same dict for every callback of the
    call, so what one adds (ReduceLROnPlateau's ``learning_rate``) the next
    ones see, as in Keras.

    Parameters
    ----------
    callbacks : Callback, iterable of Callback, or None
    model : object
        Given to every callback's ``set_model``.
    params : dict, optional
        Given to every callback's ``set_params`` (Keras passes ``epochs``,
        ``steps`` and ``verbose``).
    add_history : bool, default True
        Append a :class:`History` when ``callbacks`` holds none (as Keras's
        fit does); either way it is :attr:`history`.

    Attributes
    ----------
    callbacks : list of Callback
    history : History or None
    """

    def __init__(self, callbacks: Callback | Iterable[Callback] | None, model: Any,
                 params: dict[str, Any] | None = None, *, add_history: bool = True) -> None:
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback):
            callbacks = [callbacks]
        try:
            self.callbacks = list(callbacks)
        except TypeError:
            raise TypeError(f"callbacks must be a list of Callback, got "
                            f"{type(callbacks).__name__}") from None
        for i, callback in enumerate(self.callbacks):
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks[{i}] must be a convpool.callbacks.Callback, "
                                f"got {type(callback).__name__}")
        add_history = check_bool(add_history, "add_history")
        self.history = next((c for c in self.callbacks if isinstance(c, History)), None)
        if self.history is None and add_history:
            self.history = History()
            self.callbacks.append(self.history)
        self.model = model
        self.params = params
        if model is not None:
            if self.history is not None:
                model.history = self.history
            for callback in self.callbacks:
                callback.set_model(model)
        if params:
            for callback in self.callbacks:
                callback.set_params(params)

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        logs_ = _pythonify(logs)
        for callback in self.callbacks:
            callback.on_train_begin(logs_)

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        logs_ = _pythonify(logs)
        for callback in self.callbacks:
            callback.on_train_end(logs_)

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        logs_ = _pythonify(logs)
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, logs_)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        logs_ = _pythonify(logs)
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs_)

    def on_train_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        logs_ = _pythonify(logs)
        for callback in self.callbacks:
            callback.on_train_batch_begin(batch, logs_)

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        logs_ = _pythonify(logs)
        for callback in self.callbacks:
            callback.on_train_batch_end(batch, logs_)

    def on_test_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        logs_ = _pythonify(logs)
        for callback in self.callbacks:
            callback.on_test_begin(logs_)

    def on_test_end(self, logs: Mapping[str, Any] | None = None) -> None:
        logs_ = _pythonify(logs)
        for callback in self.callbacks:
            callback.on_test_end(logs_)

    def on_test_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        logs_ = _pythonify(logs)
        for callback in self.callbacks:
            callback.on_test_batch_begin(batch, logs_)

    def on_test_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        logs_ = _pythonify(logs)
        for callback in self.callbacks:
            callback.on_test_batch_end(batch, logs_)
