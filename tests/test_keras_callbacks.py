"""Callbacks on a fake model and scripted epoch logs: History, EarlyStopping,
ModelCheckpoint, ReduceLROnPlateau, the dispatching _CallbackList, argument
checks, and (where Keras is importable) the same decisions as Keras 3's
callbacks on random scripted runs."""

from __future__ import annotations

import doctest
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

import convpool.callbacks
from convpool.callbacks import (
    Callback,
    EarlyStopping,
    History,
    ModelCheckpoint,
    ReduceLROnPlateau,
    _CallbackList,
)


class FakeModel:
    """What the callbacks use of a model, with a record of the calls."""

    def __init__(self, learning_rate=0.1):
        self.stop_training = False
        self.optimizer = SimpleNamespace(learning_rate=learning_rate)
        self.weights = [np.zeros(2), np.zeros(3)]
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]

    def save(self, path, **kwargs):
        self.saved.append(("save", path))

    def save_weights(self, path, **kwargs):
        self.saved.append(("save_weights", path))


def run(callbacks, logs, model=None, batches=0):
    """A scripted fit: epoch e sets every weight to e, then reports logs[e].

    Returns the epochs run.  Hooks are called as Keras's fit calls them.
    """
    model = model or FakeModel()
    if not isinstance(callbacks, list):
        callbacks = [callbacks]
    for c in callbacks:
        c.set_model(model)
    model.stop_training = False
    for c in callbacks:
        c.on_train_begin({})
    ran = []
    last = None
    for epoch, epoch_logs in enumerate(logs):
        for c in callbacks:
            c.on_epoch_begin(epoch, {})
        for batch in range(batches):
            for c in callbacks:
                c.on_train_batch_begin(batch, {})
            for c in callbacks:
                c.on_train_batch_end(batch, dict(epoch_logs))
        model.weights = [np.full_like(w, epoch) for w in model.weights]
        last = dict(epoch_logs)
        for c in callbacks:
            c.on_epoch_end(epoch, last)
        ran.append(epoch)
        if model.stop_training:
            break
    for c in callbacks:
        c.on_train_end(last)
    return ran


def val_losses(*values):
    return [{"loss": 1.0, "val_loss": v} for v in values]


# -------------------------------------------------------------- base, History
def test_base_hooks_are_no_ops():
    c = Callback()
    assert c.model is None and c.params is None
    c.set_model("m")
    c.set_params({"epochs": 2})
    assert c.model == "m" and c.params == {"epochs": 2}
    for hook in ("on_train_begin", "on_train_end", "on_test_begin", "on_test_end"):
        assert getattr(c, hook)({"loss": 1.0}) is None
    for hook in ("on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end",
                 "on_test_batch_begin", "on_test_batch_end"):
        assert getattr(c, hook)(0, {"loss": 1.0}) is None


def test_history_records_and_reads_as_a_mapping():
    h = History()
    model = FakeModel()
    run(h, [{"loss": 3.0, "accuracy": 0.5}, {"loss": 2.0, "accuracy": 0.75}], model)
    assert h.history == {"loss": [3.0, 2.0], "accuracy": [0.5, 0.75]}
    assert h.epoch == [0, 1] and model.history is h
    assert h["loss"] == [3.0, 2.0] and "accuracy" in h and "val_loss" not in h
    assert list(h.keys()) == ["loss", "accuracy"] and len(h) == 2 and set(h) == {"loss", "accuracy"}
    assert dict(h) == h.history and h == {"loss": [3.0, 2.0], "accuracy": [0.5, 0.75]}
    assert h.get("val_loss") is None
    with pytest.raises(KeyError):
        h["val_loss"]
    with pytest.raises(TypeError):
        h["loss"] = []  # read-only
    # Keras keeps the records across fits; only the epoch list restarts
    run(h, [{"loss": 1.0, "accuracy": 1.0}], model)
    assert h.epoch == [0] and h["loss"] == [3.0, 2.0, 1.0]


# -------------------------------------------------------------- EarlyStopping
@pytest.mark.parametrize(
    "kwargs, values, ran, stopped",
    [
        ({}, (1.0, 0.9, 0.95), [0, 1, 2], 2),                     # patience 0: first miss stops
        ({"patience": 2}, (1.0, 0.9, 0.95, 0.92, 0.8), [0, 1, 2, 3], 3),
        ({"patience": 2}, (1.0, 0.9, 0.95, 0.8, 0.85, 0.7), [0, 1, 2, 3, 4, 5], 0),
        ({"patience": 1, "min_delta": 0.1}, (1.0, 0.95, 0.7, 0.65), [0, 1], 1),
        ({"patience": 1, "start_from_epoch": 2}, (1.0, 2.0, 3.0, 4.0, 5.0), [0, 1, 2, 3], 3),
        # a baseline never beaten: improvements do not reset the wait (though an
        # improving epoch never stops), so the first miss after `patience` epochs stops
        ({"patience": 3, "baseline": 0.5}, (1.0, 0.9, 0.8, 0.85, 0.7), [0, 1, 2, 3], 3),
        ({"patience": 3}, (1.0, 0.9, 0.8, 0.85, 0.7), [0, 1, 2, 3, 4], 0),
        ({"patience": 3, "baseline": 0.5}, (1.0, 0.9, 0.8, 0.7, 0.6), [0, 1, 2, 3, 4], 0),
        ({"patience": 2, "baseline": 0.95}, (1.0, 0.9, 0.91, 0.92, 0.93), [0, 1, 2, 3], 3),
    ],
    ids=["patience0", "patience2", "recovers", "min-delta", "warm-up", "baseline-missed",
         "no-baseline", "baseline-improving", "baseline-beaten"],
)
def test_early_stopping_on_val_loss(kwargs, values, ran, stopped):
    stop = EarlyStopping(**kwargs)
    model = FakeModel()
    assert run(stop, val_losses(*values), model) == ran
    assert stop.stopped_epoch == stopped and model.stop_training == bool(stopped)


def test_early_stopping_mode_auto_maximises_accuracy_names():
    for monitor in ("val_accuracy", "acc", "val_sparse_categorical_accuracy", "val_auc"):
        stop = EarlyStopping(monitor=monitor, patience=1)
        logs = [{monitor: v} for v in (0.5, 0.6, 0.55, 0.58, 0.9)]
        assert run(stop, logs) == [0, 1, 2], monitor
        assert stop.best == 0.6
    # explicit modes win; "loss" without val_ is minimised
    stop = EarlyStopping(monitor="val_accuracy", mode="min")
    assert run(stop, [{"val_accuracy": v} for v in (0.5, 0.6)]) == [0, 1]
    stop = EarlyStopping(monitor="loss", mode="auto")
    assert run(stop, val_losses(1, 1)) == [0, 1]
    stop = EarlyStopping(monitor="val_mse", mode="max")
    assert run(stop, [{"val_mse": v} for v in (1.0, 2.0, 3.0)]) == [0, 1, 2]


@pytest.mark.parametrize(
    "values, best_epoch",
    [((1.0, 0.5, 0.7, 0.8), 1),          # stopped early: epoch 1's weights come back
     ((1.0, 0.5, 0.7, 0.4, 0.45), 3)],   # not stopped: Keras 3 restores the best too
)
def test_restore_best_weights(values, best_epoch):
    stop = EarlyStopping(patience=2, restore_best_weights=True)
    model = FakeModel()
    run(stop, val_losses(*values), model)
    assert stop.best_epoch == best_epoch
    assert all(np.all(w == best_epoch) for w in model.weights)


def test_restore_best_weights_without_any_monitored_epoch_does_nothing():
    stop = EarlyStopping(restore_best_weights=True, start_from_epoch=5)
    model = FakeModel()
    run(stop, val_losses(1.0, 2.0))
    assert stop.best_weights is None and all(np.all(w == 0) for w in model.weights)


def test_early_stopping_warns_on_a_missing_monitor():
    stop = EarlyStopping(monitor="val_loss")
    with pytest.warns(UserWarning, match=r"`val_loss` which is not available. "
                                         r"Available metrics are: loss,accuracy"):
        ran = run(stop, [{"loss": 1.0, "accuracy": 0.5}] * 3)
    assert ran == [0, 1, 2]


def test_early_stopping_is_reusable_across_fits():
    stop = EarlyStopping(patience=0)
    run(stop, val_losses(1.0, 2.0))
    assert stop.stopped_epoch == 1
    assert run(stop, val_losses(5.0, 4.0, 3.0)) == [0, 1, 2]  # best was reset
    assert stop.stopped_epoch == 0 and stop.wait == 0


# ---------------------------------------------------------- ReduceLROnPlateau
def test_reduce_lr_on_plateau_patience_cooldown_and_floor():
    model = FakeModel(learning_rate=1.0)
    reduce = ReduceLROnPlateau(patience=2, factor=0.5, cooldown=1, min_lr=0.2, min_delta=0)
    rates = []

    class Record(Callback):
        def on_epoch_end(self, epoch, logs=None):
            rates.append((logs["learning_rate"], model.optimizer.learning_rate))

    # A flat loss: the first epoch is the best, two misses -> 0.5.  Keras counts
    # the cooldown down *before* its test in the same epoch, so cooldown=1 holds
    # the count at 0 for one epoch: the next cuts come every 2 epochs as well,
    # 0.25, then max(0.125, min_lr) = 0.2, then nothing (lr is at min_lr).
    run([reduce, Record()], val_losses(*[1.0] * 10), model)
    logged = [r[0] for r in rates]
    after = [r[1] for r in rates]
    assert after == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2]
    assert logged == [1.0] + after[:-1]  # the logs hold the rate the epoch ran with
    model = FakeModel(learning_rate=1.0)
    run(ReduceLROnPlateau(patience=1, factor=0.5, cooldown=2), val_losses(*[1.0] * 7), model)
    assert model.optimizer.learning_rate == 0.125  # cuts at epochs 1, 3 and 5


def test_reduce_lr_resets_on_improvement_and_respects_min_delta():
    model = FakeModel(learning_rate=0.1)
    reduce = ReduceLROnPlateau(patience=1, min_delta=0.05)
    run(reduce, val_losses(1.0, 0.9, 0.88), model)  # 0.88 is within min_delta of 0.9
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    model = FakeModel(learning_rate=0.1)
    run(ReduceLROnPlateau(patience=1, min_delta=0.05), val_losses(1.0, 0.9, 0.8, 0.7), model)
    assert model.optimizer.learning_rate == 0.1


def test_reduce_lr_changes_a_convpool_optimizer():
    from convpool.optimizers import Adam

    model = FakeModel()
    model.optimizer = Adam(1e-3)
    run(ReduceLROnPlateau(patience=0), val_losses(1.0, 1.5), model)
    assert model.optimizer.learning_rate == pytest.approx(1e-4)


def test_reduce_lr_warns_on_a_missing_monitor():
    with pytest.warns(UserWarning, match="Available metrics are: loss,learning_rate"):
        run(ReduceLROnPlateau(), [{"loss": 1.0}])


# ------------------------------------------------------------ ModelCheckpoint
def test_checkpoint_formats_the_path_with_epoch_and_logs(tmp_path):
    model = FakeModel()
    pattern = str(tmp_path / "sub" / "m-{epoch:02d}-{val_loss:.2f}.npz")
    run(ModelCheckpoint(pattern), val_losses(0.5, 0.25), model)
    assert model.saved == [("save", str(tmp_path / "sub" / "m-01-0.50.npz")),
                           ("save", str(tmp_path / "sub" / "m-02-0.25.npz"))]
    assert (tmp_path / "sub").is_dir()


def test_checkpoint_save_best_only_and_weights_only(tmp_path):
    model = FakeModel()
    path = str(tmp_path / "best-{epoch}.npz")
    run(ModelCheckpoint(path, save_best_only=True, save_weights_only=True),
        val_losses(1.0, 0.8, 0.9, 0.7, 0.7), model)
    assert model.saved == [("save_weights", str(tmp_path / f"best-{e}.npz")) for e in (1, 2, 4)]
    model = FakeModel()
    run(ModelCheckpoint(path, monitor="val_acc", save_best_only=True),
        [{"val_acc": v} for v in (0.5, 0.4, 0.6)], model)
    assert [p for _, p in model.saved] == [str(tmp_path / f"best-{e}.npz") for e in (1, 3)]
    model = FakeModel()
    run(ModelCheckpoint(path, save_best_only=True, initial_value_threshold=0.85),
        val_losses(1.0, 0.8, 0.9), model)
    assert [p for _, p in model.saved] == [str(tmp_path / "best-2.npz")]


def test_checkpoint_by_batch(tmp_path):
    model = FakeModel()
    path = str(tmp_path / "e{epoch}-b{batch}.npz")
    run(ModelCheckpoint(path, save_freq=3), val_losses(1.0, 1.0), model, batches=4)
    # batches 0..3 of two epochs: the 3rd and 6th batch seen
    assert [p for _, p in model.saved] == [str(tmp_path / "e1-b3.npz"), str(tmp_path / "e2-b2.npz")]


def test_checkpoint_errors_and_warnings(tmp_path):
    with pytest.raises(KeyError, match="Failed to format this callback filepath.*val_acc"):
        run(ModelCheckpoint(str(tmp_path / "m-{val_acc}.npz")), val_losses(1.0))
    model = FakeModel()
    with pytest.warns(UserWarning, match="Can save best model only with val_auc available"):
        run(ModelCheckpoint(str(tmp_path / "m.npz"), monitor="val_auc", save_best_only=True),
            val_losses(1.0), model)
    assert len(model.saved) == 1  # saved anyway, as Keras does
    (tmp_path / "adir").mkdir()
    with pytest.raises(IsADirectoryError, match="must name a file"):
        run(ModelCheckpoint(str(tmp_path / "adir")), val_losses(1.0))


# ------------------------------------------------------------- _CallbackList
def test_callback_list_dispatches_in_order_with_one_copied_logs_dict():
    calls = []

    class Spy(Callback):
        def __init__(self, tag):
            super().__init__()
            self.tag = tag

        def on_epoch_end(self, epoch, logs=None):
            calls.append((self.tag, epoch, dict(logs), id(logs)))
            logs[f"seen_by_{self.tag}"] = 1.0

        def on_train_batch_end(self, batch, logs=None):
            calls.append((self.tag, batch, dict(logs), id(logs)))

    model = FakeModel()
    first, second = Spy("a"), Spy("b")
    callbacks = _CallbackList([first, second], model, {"epochs": 3, "steps": 2, "verbose": 0})
    assert callbacks.callbacks[:2] == [first, second] and isinstance(callbacks.callbacks[2], History)
    assert first.model is model and first.params == {"epochs": 3, "steps": 2, "verbose": 0}
    assert model.history is callbacks.history
    logs = {"val_loss": np.float32(0.5), "loss": np.array(2.0), "nested": {"acc": 1}, "tag": "x"}
    frozen = dict(logs)
    callbacks.on_epoch_end(0, logs)
    assert logs == frozen  # the caller's dict is never changed
    (_, _, seen_a, id_a), (_, _, seen_b, id_b) = calls
    assert seen_a == {"acc": 1.0, "loss": 2.0, "tag": "x", "val_loss": 0.5}
    assert type(seen_a["val_loss"]) is float
    assert list(seen_a) == ["loss", "acc", "tag", "val_loss"]  # sorted, nested flattened
    assert seen_b == {**seen_a, "seen_by_a": 1.0} and id_a == id_b  # one dict per call
    assert callbacks.history["seen_by_b"] == [1.0]
    callbacks.on_train_batch_end(1, None)
    assert calls[-1][2] == {} and calls[-2][2] == {}
    for hook in ("on_train_begin", "on_train_end", "on_test_begin", "on_test_end"):
        getattr(callbacks, hook)({"loss": 1.0})
    for hook in ("on_epoch_begin", "on_train_batch_begin", "on_test_batch_begin",
                 "on_test_batch_end"):
        getattr(callbacks, hook)(0, {"loss": 1.0})


def test_callback_list_keeps_a_given_history_and_takes_one_callback():
    history = History()
    callbacks = _CallbackList([history], FakeModel())
    assert callbacks.callbacks == [history] and callbacks.history is history
    stop = EarlyStopping()
    callbacks = _CallbackList(stop, None, add_history=False)
    assert callbacks.callbacks == [stop] and callbacks.history is None and stop.model is None
    assert _CallbackList(None, FakeModel()).callbacks[0].__class__ is History


def test_history_sees_what_reduce_lr_adds():
    model = FakeModel(learning_rate=0.5)
    callbacks = _CallbackList([ReduceLROnPlateau(patience=0, factor=0.5)], model, {"epochs": 3})
    callbacks.on_train_begin()
    for epoch, value in enumerate((1.0, 1.0, 1.0)):
        callbacks.on_epoch_end(epoch, {"val_loss": value})
    assert callbacks.history["learning_rate"] == [0.5, 0.5, 0.25]
    assert model.optimizer.learning_rate == 0.125


# -------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    "make, exc, pattern",
    [
        (lambda: EarlyStopping(patience=-1), ValueError, "patience must be >= 0"),
        (lambda: EarlyStopping(patience=1.5), TypeError, "patience must be an int"),
        (lambda: EarlyStopping(mode="up"), ValueError, "mode must be 'auto', 'min' or 'max'"),
        (lambda: EarlyStopping(monitor=3), TypeError, "monitor must be a str"),
        (lambda: EarlyStopping(min_delta="0.1"), TypeError, "min_delta must be a number"),
        (lambda: EarlyStopping(baseline=[1.0]), TypeError, "baseline must be a number"),
        (lambda: EarlyStopping(restore_best_weights=1), TypeError,
         "restore_best_weights must be a bool"),
        (lambda: EarlyStopping(start_from_epoch=-2), ValueError, "start_from_epoch must be >= 0"),
        (lambda: ReduceLROnPlateau(factor=1.0), ValueError, "0 < factor < 1, got factor=1.0"),
        (lambda: ReduceLROnPlateau(factor=0), ValueError, "0 < factor < 1"),
        (lambda: ReduceLROnPlateau(min_lr=-1), ValueError, "min_lr must be >= 0"),
        (lambda: ReduceLROnPlateau(cooldown=-1), ValueError, "cooldown must be >= 0"),
        (lambda: ModelCheckpoint(3), TypeError, "filepath must be a str or path-like"),
        (lambda: ModelCheckpoint("m.npz", save_freq="batch"), TypeError,
         "save_freq must be 'epoch' or a positive int"),
        (lambda: ModelCheckpoint("m.npz", save_freq=0), ValueError, "save_freq must be 'epoch'"),
        (lambda: ModelCheckpoint("m.npz", save_best_only="yes"), TypeError,
         "save_best_only must be a bool"),
        (lambda: _CallbackList([EarlyStopping(), "not a callback"], None), TypeError,
         r"callbacks\[1\] must be a convpool.callbacks.Callback, got str"),
        (lambda: _CallbackList(5, None), TypeError, "callbacks must be a list of Callback"),
    ],
)
def test_bad_arguments(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_verbose_messages(capsys):
    run([EarlyStopping(patience=0, verbose=1, restore_best_weights=True),
         ReduceLROnPlateau(patience=0, verbose=1)], val_losses(1.0, 2.0))
    out = capsys.readouterr().out
    assert "Epoch 2: early stopping" in out
    assert "Restoring model weights from the end of the best epoch: 1." in out
    assert "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.01" in out


def test_docstring_examples():
    result = doctest.testmod(convpool.callbacks)
    assert result.attempted > 3 and result.failed == 0


# ----------------------------------------------------- cross-check with Keras
def _scripted_runs(rng, count=40, epochs=14):
    """Random runs with plateaus and ties (values rounded to 0.05)."""
    runs = []
    for _ in range(count):
        trend = np.cumsum(rng.choice([-0.1, 0.0, 0.0, 0.05], size=epochs))
        runs.append(np.round((1.0 + trend + rng.normal(0, 0.03, epochs)) / 0.05) * 0.05)
    return runs


def _trace(callback, values, monitor, model):
    """Drive one callback over a run; record what it decided after every epoch."""
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin({})
    trace = []
    for epoch, value in enumerate(values):
        callback.on_epoch_begin(epoch, {})
        model.weights = [np.full_like(w, epoch) for w in model.weights]
        callback.on_epoch_end(epoch, {"loss": 1.0, monitor: float(value)})
        trace.append((model.stop_training, float(model.optimizer.learning_rate),
                      len(model.saved)))
        if model.stop_training:
            break
    callback.on_train_end({})
    return trace, [w.copy() for w in model.weights], list(model.saved)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_decisions_match_keras(rng, tmp_path):
    keras = pytest.importorskip("keras")
    runs = _scripted_runs(rng) + [np.ones(10), np.array([1.0, 0.9, 0.8, 0.85, 0.7]),
                                  np.array([1.0, 0.9, 0.8, 0.7, 0.6]),
                                  np.array([1.0, 0.9, 0.91, 0.92, 0.93])]
    configs = [
        ("val_loss", "auto", lambda k: k.EarlyStopping(patience=2)),
        ("val_loss", "auto", lambda k: k.EarlyStopping(patience=3, min_delta=0.04,
                                                       restore_best_weights=True)),
        ("val_loss", "auto", lambda k: k.EarlyStopping(patience=2, baseline=0.9,
                                                       start_from_epoch=2)),
        ("val_accuracy", "max", lambda k: k.EarlyStopping(monitor="val_accuracy", mode="max",
                                                           patience=1)),
        ("val_loss", "auto", lambda k: k.ReduceLROnPlateau(patience=2, factor=0.5, cooldown=1,
                                                           min_lr=0.02)),
        ("val_loss", "auto", lambda k: k.EarlyStopping(patience=3, baseline=0.5)),
        ("val_loss", "auto", lambda k: k.ReduceLROnPlateau(patience=1, min_delta=0.06)),
        ("val_loss", "auto", lambda k: k.ReduceLROnPlateau(patience=1, factor=0.5, cooldown=2)),
        ("val_accuracy", "max", lambda k: k.ReduceLROnPlateau(monitor="val_accuracy", mode="max",
                                                               patience=1, factor=0.2)),
        ("val_loss", "auto", lambda k: k.ModelCheckpoint(str(tmp_path / "m{epoch}.keras"),
                                                         save_best_only=True)),
        ("val_accuracy", "max", lambda k: k.ModelCheckpoint(str(tmp_path / "m{epoch}.keras"),
                                                             monitor="val_accuracy", mode="max",
                                                             save_best_only=True)),
    ]
    compared, stops, cuts, saves = 0, 0, 0, 0
    for monitor, _, make in configs:
        for values in runs:
            ours = _trace(make(convpool.callbacks), values, monitor, FakeModel())
            theirs = _trace(make(keras.callbacks), values, monitor, FakeModel())
            stops += len(ours[0]) < len(values)
            cuts += ours[0][-1][1] < 0.1
            saves += 0 < len(ours[2]) < len(values)
            assert ours[0] == theirs[0], (make(keras.callbacks).__class__.__name__, values)
            for a, b in zip(ours[1], theirs[1]):
                np.testing.assert_array_equal(a, b)
            assert ours[2] == theirs[2]
            compared += 1
    assert compared == len(configs) * len(runs)
    assert stops > 20 and cuts > 20 and saves > 20  # the runs exercise every decision
    # the missing-monitor warning is Keras's too
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keras.callbacks.EarlyStopping().on_epoch_end(0, {"loss": 1.0})
        EarlyStopping().on_epoch_end(0, {"loss": 1.0})
    assert len({str(w.message) for w in caught}) == 1
