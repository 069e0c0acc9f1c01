"""Optimizers: RMSprop and Adagrad against their formulas, Keras 3's defaults,
get(), the legacy lr keyword, a settable learning rate, and (where Keras is
importable) 20-step trajectories against Keras 3's optimizers."""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pytest

import convpool.optimizers
from convpool import optimizers
from convpool.optimizers import SGD, Adagrad, Adam, RMSprop


def _rmsprop_reference(w, grads, lr, rho, momentum, eps, centered):
    w = w.copy()
    v = np.zeros_like(w)
    m = np.zeros_like(w)
    a = np.zeros_like(w)
    for g in grads:
        v = rho * v + (1 - rho) * g * g
        if centered:
            a = rho * a + (1 - rho) * g
            step = lr * g / np.sqrt(v - a * a + eps)
        else:
            step = lr * g / np.sqrt(v + eps)
        if momentum > 0:
            m = momentum * m + step
            w = w - m
        else:
            w = w - step
    return w


@pytest.mark.parametrize("momentum", [0.0, 0.5])
@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_follows_the_formula(rng, momentum, centered):
    w = rng.normal(size=(4, 3))
    grads = [rng.normal(size=(4, 3)) for _ in range(5)]
    opt = RMSprop(0.01, rho=0.8, momentum=momentum, epsilon=1e-6, centered=centered)
    got = w.copy()
    for g in grads:
        opt.apply([got], [g])
    expected = _rmsprop_reference(w, grads, 0.01, 0.8, momentum, 1e-6, centered)
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-15)
    assert opt.iterations == 5


def test_adagrad_follows_the_formula(rng):
    w = rng.normal(size=7)
    opt = Adagrad(0.1, initial_accumulator_value=0.5, epsilon=1e-6)
    expected, acc = w.copy(), np.full(7, 0.5)
    for _ in range(5):
        g = rng.normal(size=7)
        acc = acc + g * g
        expected = expected - 0.1 * g / np.sqrt(acc + 1e-6)
        opt.apply([w], [g])
    np.testing.assert_allclose(w, expected, rtol=1e-14)


@pytest.mark.parametrize("cls", [SGD, Adam, RMSprop, Adagrad])
def test_float32_weights_stay_float32(rng, cls):
    w = rng.normal(size=(3, 3)).astype(np.float32)
    opt = cls()
    for _ in range(3):
        opt.apply([w], [rng.normal(size=(3, 3))])  # float64 gradients are cast
    assert w.dtype == np.float32 and np.all(np.isfinite(w))


def test_keras_defaults_and_get():
    defaults = {"sgd": (SGD, 0.01), "adam": (Adam, 0.001), "rmsprop": (RMSprop, 0.001),
                "adagrad": (Adagrad, 0.001)}
    for name, (cls, lr) in defaults.items():
        for spelling in (name, name.upper(), cls.__name__):
            opt = optimizers.get(spelling)
            assert type(opt) is cls and opt.learning_rate == lr, spelling
        assert cls().learning_rate == lr
    assert optimizers.get("adam") is not optimizers.get("adam")
    rms = RMSprop()
    assert (rms.rho, rms.momentum, rms.epsilon, rms.centered) == (0.9, 0.0, 1e-7, False)
    ada = Adagrad()
    assert (ada.initial_accumulator_value, ada.epsilon) == (0.1, 1e-7)
    sgd = SGD()
    assert (sgd.momentum, sgd.nesterov) == (0.0, False)
    opt = Adam(0.5)
    assert optimizers.get(opt) is opt
    assert set(optimizers.__all__) >= {"Optimizer", "SGD", "Adam", "RMSprop", "Adagrad", "get"}


def test_get_rejects_unknown_names_and_types():
    with pytest.raises(ValueError, match="unknown optimizer 'nadam'; known names: sgd, adam"):
        optimizers.get("nadam")
    with pytest.raises(TypeError, match="got NoneType"):
        optimizers.get(None)
    with pytest.raises(TypeError, match="got type"):
        optimizers.get(Adam)


@pytest.mark.parametrize("cls", [SGD, Adam, RMSprop, Adagrad])
def test_legacy_lr_keyword(cls):
    with pytest.warns(DeprecationWarning, match="lr is deprecated, use learning_rate"):
        opt = cls(lr=0.25)
    assert opt.learning_rate == 0.25
    with pytest.raises(TypeError, match="both learning_rate and the legacy lr"):
        cls(learning_rate=0.1, lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cls(0.3).learning_rate == 0.3  # no warning without lr


def test_learning_rate_is_settable_and_used(rng):
    w = np.zeros(3)
    g = np.ones(3)
    opt = SGD(0.1)
    opt.apply([w], [g])
    opt.learning_rate = 0.01
    opt.apply([w], [g])
    np.testing.assert_allclose(w, -0.11, rtol=1e-15)
    for bad, exc in ((0.0, ValueError), (-1.0, ValueError), ("0.1", TypeError),
                     (True, TypeError), (None, TypeError)):
        with pytest.raises(exc, match="learning_rate"):
            opt.learning_rate = bad
    assert opt.learning_rate == 0.01
    opt.learning_rate = np.float32(0.5)
    assert type(opt.learning_rate) is float


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: RMSprop(rho=1.0), "rho must lie in"),
        (lambda: RMSprop(momentum=-0.1), "momentum must lie in"),
        (lambda: RMSprop(epsilon=0), "epsilon must be positive"),
        (lambda: RMSprop(centered=1), "centered must be a bool"),
        (lambda: Adagrad(initial_accumulator_value=-1), "initial_accumulator_value must be >= 0"),
        (lambda: Adagrad(epsilon=-1e-7), "epsilon must be positive"),
        (lambda: Adagrad(0), "learning_rate must be positive"),
    ],
)
def test_bad_arguments(make, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        make()


def test_gradients_are_not_modified(rng):
    for cls in (SGD, Adam, RMSprop, Adagrad):
        g = rng.normal(size=5)
        g.flags.writeable = False
        g0 = g.copy()
        opt = cls(momentum=0.9) if cls in (SGD, RMSprop) else cls()
        opt.apply([np.zeros(5)], [g])
        np.testing.assert_array_equal(g, g0)


def test_docstring_examples():
    result = doctest.testmod(convpool.optimizers)
    assert result.attempted > 2 and result.failed == 0


# ----------------------------------------------------- cross-check with Keras
# Hyperparameters that float32 holds exactly: Keras turns a Python float into a
# float32 tensor before casting it to the weight's dtype, so a float64 run with
# learning_rate=1e-3 would use 0.0010000000474974513 (and momentum 0.9,
# 0.89999997615814209).  Keras's own defaults are checked in float32.
EPS = 2.0**-23
KERAS_CASES = [
    ("sgd", {"learning_rate": 2.0**-5}),
    ("sgd", {"learning_rate": 2.0**-5, "momentum": 0.875}),
    ("sgd", {"learning_rate": 2.0**-5, "momentum": 0.875, "nesterov": True}),
    ("adam", {"learning_rate": 2.0**-7, "beta_1": 0.875, "beta_2": 1 - 2.0**-9, "epsilon": EPS}),
    ("rmsprop", {"learning_rate": 2.0**-7, "rho": 0.875, "epsilon": EPS}),
    ("rmsprop", {"learning_rate": 2.0**-7, "rho": 0.875, "momentum": 0.5, "epsilon": EPS}),
    ("rmsprop", {"learning_rate": 2.0**-7, "rho": 0.875, "centered": True, "epsilon": EPS}),
    ("rmsprop", {"learning_rate": 2.0**-7, "rho": 0.75, "momentum": 0.875, "centered": True,
                 "epsilon": EPS}),
    ("adagrad", {"learning_rate": 2.0**-4, "initial_accumulator_value": 0.125, "epsilon": EPS}),
    ("adagrad", {"learning_rate": 2.0**-4, "initial_accumulator_value": 0.5, "epsilon": EPS}),
]
DEFAULT_CASES = [(name, {}) for name in ("sgd", "adam", "rmsprop", "adagrad")] + [
    ("sgd", {"momentum": 0.9, "nesterov": True}),
    ("rmsprop", {"momentum": 0.9, "centered": True}),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TensorFlow's __array__ on NumPy 2
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_trajectories_match_keras(dtype):
    keras = pytest.importorskip("keras")
    classes = {"sgd": (SGD, keras.optimizers.SGD), "adam": (Adam, keras.optimizers.Adam),
               "rmsprop": (RMSprop, keras.optimizers.RMSprop),
               "adagrad": (Adagrad, keras.optimizers.Adagrad)}
    rng = np.random.default_rng(7)
    target = rng.normal(size=(3, 4)).astype(dtype)
    scale = rng.uniform(0.5, 2, size=(3, 4)).astype(dtype)
    noise = [rng.normal(scale=0.1, size=(3, 4)).astype(dtype) for _ in range(20)]
    start = rng.normal(size=(3, 4)).astype(dtype)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    cases = KERAS_CASES + (DEFAULT_CASES if dtype == "float32" else [])
    for name, kwargs in cases:
        ours_cls, theirs_cls = classes[name]
        ours, theirs = ours_cls(**kwargs), theirs_cls(**kwargs)
        w = start.copy()
        variable = keras.Variable(start.copy(), dtype=dtype)
        for step in range(20):
            # a quadratic bowl with a scripted noise: each gradient depends on the path
            ours.apply([w], [scale * (w - target) + noise[step]])
            v = keras.ops.convert_to_numpy(variable)
            theirs.apply([keras.ops.convert_to_tensor(scale * (v - target) + noise[step])],
                         [variable])
            theirs_w = keras.ops.convert_to_numpy(variable)
            if name == "adam":
                # convpool's Adam orders its operations as before (m = b1 m + (1 - b1) g;
                # Keras: m += (g - m)(1 - b1)): equal to rounding only.
                np.testing.assert_allclose(w, theirs_w, rtol=rtol, atol=rtol * 1e-2,
                                           err_msg=f"{name} {kwargs} step {step}")
            else:  # the same operations in the same order: the same bits
                np.testing.assert_array_equal(w, theirs_w, err_msg=f"{name} {kwargs} step {step}")
        assert w.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_compiled_step_gives_the_numpy_steps_bits(dtype, rng):
    """Adam's compiled pass (contiguous arrays) against its NumPy code (the
    same operations, taken for any other layout): the same bits over steps,
    with gradients spanning many magnitudes, zeros and a large learning rate."""
    shape = (3, 3, 5, 37)
    w0 = rng.standard_normal(shape).astype(dtype)
    grads = [(rng.standard_normal(shape) * 10.0 ** rng.integers(-8, 3, shape)).astype(dtype)
             for _ in range(5)]
    grads[2][0] = 0
    fast, slow = Adam(0.3), Adam(0.3)
    w_fast, w_slow = w0.copy(), w0.copy()
    for g in grads:
        fast.apply([w_fast], [g])
        slow.iterations += 1  # as apply does, then the NumPy code's step
        if slow._state is None:
            slow._state = [slow._new_state(w_slow)]
        lr_t = float(slow.learning_rate * np.sqrt(1 - slow.beta_2 ** slow.iterations)
                     / (1 - slow.beta_1 ** slow.iterations))
        slow._update_numpy(w_slow, g, slow._state[0], lr_t)
        np.testing.assert_array_equal(w_fast, w_slow)
        np.testing.assert_array_equal(fast._state[0][0], slow._state[0][0])
        np.testing.assert_array_equal(fast._state[0][1], slow._state[0][1])
    assert not np.array_equal(w_fast, w0)


def test_adam_on_a_strided_weight_takes_the_numpy_steps(rng):
    """A non-contiguous weight (a view) is updated in place, as a contiguous one."""
    base = rng.standard_normal((8, 6)).astype(np.float32)
    view = base[:, ::2]
    g = rng.standard_normal(view.shape).astype(np.float32)
    want = view.copy()
    Adam(0.1).apply([want], [g])
    Adam(0.1).apply([view], [g])
    np.testing.assert_array_equal(view, want)
    np.testing.assert_array_equal(base[:, ::2], want)
