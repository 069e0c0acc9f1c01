"""convpool.initializers (Keras 3's initializers by name, class and config) and the
weighted layers' ``*_initializer`` arguments: defaults that keep the weights
convpool always drew, Keras's fans on Keras's kernel layouts, configs that
survive JSON and a model file, and regularizers / constraints refused."""

import inspect
import json
import math

import numpy as np
import pytest

import convpool
from convpool import initializers, keras
from convpool.initializers import (
    Constant,
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    Identity,
    LecunNormal,
    LecunUniform,
    Ones,
    Orthogonal,
    RandomNormal,
    RandomUniform,
    TruncatedNormal,
    VarianceScaling,
    Zeros,
    compute_fans,
)
from convpool.layers import (
    BatchNormalization,
    Conv2D,
    Conv2DTranspose,
    Dense,
    DepthwiseConv2D,
    Input,
    SeparableConv2D,
)

F32_EPS = np.finfo(np.float32).eps

# (scale, mode, distribution) of the presets, written out from Keras 3's classes.
PRESETS = {
    "GlorotUniform": (1.0, "fan_avg", "uniform"), "GlorotNormal": (1.0, "fan_avg", "normal"),
    "HeUniform": (2.0, "fan_in", "uniform"), "HeNormal": (2.0, "fan_in", "normal"),
    "LecunUniform": (1.0, "fan_in", "uniform"), "LecunNormal": (1.0, "fan_in", "normal"),
}
# Weight shapes in Keras's layouts: Dense (d_in, units), Conv2D (KH, KW, C_in, filters),
# a bias, and a shape with a zero-size fan-free receptive field.
SHAPES = {"dense-5x7": (5, 7), "conv-k3x2-c4-f8": (3, 2, 4, 8), "bias-9": (9,),
          "conv-k1x1-c6-f2": (1, 1, 6, 2), "conv-k5x5-c1-f3": (5, 5, 1, 3)}


def _truncated_moments(a=2.0):
    """E[z^2] and E[z^4] of a standard normal truncated to [-a, a] (integration by parts)."""
    pdf = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(a / math.sqrt(2))
    m2 = 1 - 2 * a * pdf / mass
    return m2, 3 - (2 * a**3 + 6 * a) * pdf / mass


_M2, _M4 = _truncated_moments()
#: E[z^4] / E[z^2]^2 of the truncated normal (2.36...), for the sample-variance error.
TRUNCATED_KURTOSIS = _M4 / _M2**2
assert abs(math.sqrt(_M2) - 0.87962566103423978) < 1e-15  # Keras's constant


def _fans(shape):
    """Keras's rule, written independently of convpool.initializers.compute_fans."""
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape
    rf = int(np.prod(shape[:-2]))
    return rf * shape[-2], rf * shape[-1]


def _n(shape, mode):
    fan_in, fan_out = _fans(shape)
    return max(1.0, {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode])


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_compute_fans_is_keras_rule(shape):
    assert compute_fans(shape) == tuple(_fans(shape))
    assert compute_fans((2, 3, 4), input_axes=[0, 1], output_axes=[2]) == (6, 4)
    assert compute_fans(()) == (1, 1)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("name", PRESETS)
def test_variance_scaling_presets_draw_keras_distribution(name, shape):
    """Uniform presets: exactly ``rng.uniform(-limit, limit)`` with ``limit =
    sqrt(3 scale / n)``.  Normal presets: a normal truncated at 2 stddev with
    ``stddev = sqrt(scale / n) / .8796``, checked on a large sample: every value
    within the truncation, and the sample variance ``scale / n`` within 6 of its
    standard errors (the variance of a sample variance is ``(m4 - s^4) / N``)."""
    scale, mode, dist = PRESETS[name]
    init = initializers.get(name)
    n = _n(shape, mode)
    if dist == "uniform":
        limit = math.sqrt(3 * scale / n)
        got = init(shape, "float64", np.random.default_rng(7))
        want = np.random.default_rng(7).uniform(-limit, limit, size=shape)
        np.testing.assert_array_equal(got, want)
        assert np.abs(got).max() <= limit
        assert init(shape, rng=np.random.default_rng(7)).dtype == np.float32  # Keras's floatx
        return
    values = np.concatenate([init(shape, "float64", np.random.default_rng(i)).ravel()
                             for i in range(max(1, 20000 // int(np.prod(shape))))])
    stddev = math.sqrt(scale / n) / 0.87962566103423978
    assert np.abs(values).max() <= 2 * stddev
    var = scale / n
    se = math.sqrt((TRUNCATED_KURTOSIS - 1) / values.size) * var
    assert abs(values.var() - var) < 6 * se, (values.var(), var, se)
    assert abs(values.mean()) < 6 * math.sqrt(var / values.size)


@pytest.mark.parametrize("dist", ["uniform", "truncated_normal", "untruncated_normal"])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
def test_variance_scaling_variance(mode, dist):
    shape = (3, 2, 4, 8)
    init = VarianceScaling(scale=0.5, mode=mode, distribution=dist)
    values = np.concatenate([init(shape, "float64", np.random.default_rng(i)).ravel()
                             for i in range(200)])
    var = 0.5 / _n(shape, mode)
    kurtosis = {"uniform": 1.8, "truncated_normal": TRUNCATED_KURTOSIS,
                "untruncated_normal": 3.0}[dist]
    se = math.sqrt((kurtosis - 1) / values.size) * var
    assert abs(values.var() - var) < 6 * se
    if dist == "uniform":
        assert np.abs(values).max() <= math.sqrt(3 * var)
    if dist == "truncated_normal":
        assert np.abs(values).max() <= 2 * math.sqrt(var) / 0.87962566103423978


def test_random_normal_uniform_truncated_and_constants():
    rng = np.random.default_rng
    np.testing.assert_array_equal(RandomNormal(1.0, 2.0)((3, 4), "float64", rng(1)),
                                  rng(1).normal(1.0, 2.0, (3, 4)))
    np.testing.assert_array_equal(RandomUniform(-1.0, 3.0)((5,), "float64", rng(2)),
                                  rng(2).uniform(-1.0, 3.0, 5))
    t = TruncatedNormal(0.5, 0.1)((20000,), "float64", rng(3))
    assert np.abs(t - 0.5).max() <= 0.2 and abs(t.std() - 0.1 * 0.87962566103423978) < 0.002
    assert Zeros()((2, 3)).tolist() == [[0.0] * 3] * 2 and Ones()((2,), "float64").dtype == np.float64
    np.testing.assert_array_equal(Constant(2.5)((2, 2)), np.full((2, 2), 2.5, np.float32))
    np.testing.assert_array_equal(Identity(3.0)((2, 3)), 3 * np.eye(2, 3, dtype=np.float32))
    with pytest.raises(ValueError, match="2-D matrices only"):
        Identity()((2, 2, 2))


@pytest.mark.parametrize("shape", [(4, 4), (6, 3), (3, 6), (3, 3, 2, 5)],
                         ids=["square-4", "tall-6x3", "wide-3x6", "conv-k3x3-c2-f5"])
def test_orthogonal(shape):
    w = Orthogonal(gain=2.0)(shape, "float64", np.random.default_rng(0))
    flat = w.reshape(-1, shape[-1])
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(gram, 4 * np.eye(gram.shape[0]), atol=1e-12)
    with pytest.raises(ValueError, match="rank >= 2"):
        Orthogonal()((3,))


def test_seed_of_the_initializer_wins_over_the_layer_generator():
    a = HeNormal(seed=3)((4, 5), rng=np.random.default_rng(0))
    b = HeNormal(seed=3)((4, 5), rng=np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)  # Keras: a seeded initializer repeats itself
    np.testing.assert_array_equal(a, HeNormal(seed=3)((4, 5)))
    assert not np.array_equal(HeNormal()((4, 5), rng=np.random.default_rng(0)),
                              HeNormal()((4, 5), rng=np.random.default_rng(1)))


def test_get_resolves_keras_identifiers():
    g = initializers.get
    assert type(g("glorot_uniform")) is GlorotUniform and type(g("GlorotUniform")) is GlorotUniform
    for alias, cls in [("normal", RandomNormal), ("uniform", RandomUniform), ("one", Ones),
                       ("zero", Zeros), ("he_normal", HeNormal), ("lecun_uniform", LecunUniform)]:
        assert type(g(alias)) is cls
    inst = GlorotNormal(seed=1)
    assert g(inst) is inst and type(g(HeUniform)) is HeUniform and g(None) is None

    def fn(shape, dtype=None):  # Keras's callable protocol
        return np.ones(shape)

    assert g(fn) is fn
    keras_dict = {"module": "keras.initializers", "class_name": "HeNormal",
                  "config": {"seed": 3, "input_axes": None, "output_axes": None},
                  "registered_name": None}
    got = g(keras_dict)
    assert type(got) is HeNormal and got.seed == 3
    assert g({"class_name": "Constant", "config": {"value": 2}}).value == 2.0
    assert type(g({"class_name": "Zeros"})) is Zeros
    with pytest.raises(ValueError, match=r"unknown initializer 'he_normall'; the known names are "
                                         r".*'glorot_uniform'.*'zeros'"):
        g("he_normall")
    with pytest.raises(ValueError, match="unknown initializer class 'Foo'"):
        g({"class_name": "Foo", "config": {}})
    with pytest.raises(ValueError, match="HeNormal takes no scale"):
        g({"class_name": "HeNormal", "config": {"scale": 2.0}})
    with pytest.raises(ValueError, match="a dict must be Keras's"):
        g({"name": "zeros"})
    with pytest.raises(ValueError, match="'config' of 'Zeros' must be a dict"):
        g({"class_name": "Zeros", "config": []})
    with pytest.raises(TypeError, match="initializer must be an initializer name"):
        g(3.0)


@pytest.mark.parametrize("init", [
    Zeros(), Ones(), Constant(-1.5), Identity(0.5), RandomNormal(0.1, 0.2, seed=4),
    RandomUniform(-2.0, 1.0), TruncatedNormal(stddev=0.3, seed=9),
    VarianceScaling(2.0, "fan_out", "uniform", seed=1, input_axes=(0, 1), output_axes=(2,)),
    GlorotUniform(seed=5), GlorotNormal(), HeNormal(seed=0), HeUniform(), LecunNormal(),
    LecunUniform(seed=2), Orthogonal(gain=1.5, seed=8),
], ids=lambda init: type(init).__name__)
def test_serialize_round_trips_through_json(init):
    config = json.loads(json.dumps(initializers.serialize(init)))
    assert set(config) == {"class_name", "config"} and config["class_name"] == type(init).__name__
    again = initializers.get(config)
    assert type(again) is type(init) and initializers.serialize(again) == config
    assert initializers.deserialize(config).get_config() == init.get_config()
    shape = (3, 2, 4) if not isinstance(init, Identity) else (3, 4)
    np.testing.assert_array_equal(again(shape, rng=np.random.default_rng(0)),
                                  init(shape, rng=np.random.default_rng(0)))
    assert repr(init).startswith(type(init).__name__ + "(")


@pytest.mark.parametrize("make, exc, match", [
    (lambda: VarianceScaling(scale=0), ValueError, "scale must be positive"),
    (lambda: VarianceScaling(mode="fan_max"), ValueError, "mode must be one of"),
    (lambda: VarianceScaling(distribution="gamma"), ValueError, "distribution must be one of"),
    (lambda: RandomUniform(1.0, -1.0), ValueError, "minval must not exceed maxval"),
    (lambda: RandomNormal(stddev=-1), ValueError, "stddev must lie in"),
    (lambda: RandomNormal(mean="0"), TypeError, "mean must be a number"),
    (lambda: HeNormal(seed=-1), ValueError, "seed must be a non-negative int"),
    (lambda: HeNormal(seed=True), TypeError, "seed must be a non-negative int"),
    (lambda: GlorotUniform()((2, -1)), TypeError, "shape must be a tuple"),
    (lambda: GlorotUniform()((2, 2), "int32"), TypeError, "dtype must be float32"),
    (lambda: GlorotUniform()((2, 2), rng=0), TypeError, "rng must be a numpy.random.Generator"),
], ids=["scale-0", "mode", "distribution", "minval>maxval", "stddev<0", "mean-str",
        "seed<0", "seed-bool", "shape<0", "dtype-int", "rng-int"])
def test_initializer_argument_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_keras_namespace_is_convpool_initializers():
    assert keras.initializers is not initializers  # a namespace module, the same objects
    for name in keras.initializers.__all__:
        assert getattr(keras.initializers, name) is getattr(initializers, name)
    assert keras.initializers.glorot_uniform is GlorotUniform
    assert "initializers" in keras.__all__ and "initializers" in convpool.__all__


# ------------------------------------------------------------------ the layers
def _glorot(rng, shape, fan_in, fan_out):
    """The draw convpool's layers made before initializers existed."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 11])
def test_default_weights_are_the_earlier_bits(seed, dtype):
    """The default initializers draw exactly what the layers drew before (saved
    models and seeded tests rely on it): one generator per layer, kernels
    first, Keras's fans on Keras's layouts, zero biases."""
    def rng():
        return np.random.default_rng(seed)

    d = Dense(7, seed=seed, dtype=dtype)
    d.build((None, 5))
    np.testing.assert_array_equal(d.kernel, _glorot(rng(), (5, 7), 5, 7).astype(dtype))
    c = Conv2D(6, (3, 2), groups=2, seed=seed, dtype=dtype)
    c.build((None, 9, 9, 4))
    np.testing.assert_array_equal(c.kernel, _glorot(rng(), (3, 2, 2, 6), 12, 36).astype(dtype))
    t = Conv2DTranspose(6, (3, 2), strides=2, groups=3, seed=seed, dtype=dtype)
    t.build((None, 5, 5, 3))
    np.testing.assert_array_equal(t.kernel, _glorot(rng(), (3, 2, 2, 3), 12, 18).astype(dtype))
    w = DepthwiseConv2D(3, depth_multiplier=2, seed=seed, dtype=dtype)
    w.build((None, 8, 8, 4))
    np.testing.assert_array_equal(w.kernel, _glorot(rng(), (3, 3, 4, 2), 36, 18).astype(dtype))
    s = SeparableConv2D(5, (3, 2), depth_multiplier=3, seed=seed, dtype=dtype)
    s.build((None, 8, 8, 4))
    r = rng()
    depthwise = _glorot(r, (3, 2, 4, 3), 24, 18).astype(dtype)
    pointwise = _glorot(r, (1, 1, 12, 5), 12, 5).astype(dtype)
    np.testing.assert_array_equal(s.weights[0], depthwise)
    np.testing.assert_array_equal(s.weights[1], pointwise)
    for layer in (d, c, t, w, s):
        assert not layer.bias.any() and layer.bias.dtype == dtype
    bn = BatchNormalization(dtype=dtype)
    bn.build((None, 3))
    assert [w.tolist() for w in bn.weights] == [[1.0] * 3, [0.0] * 3, [0.0] * 3, [1.0] * 3]


LAYER_CASES = {
    "Dense": (lambda **kw: Dense(4, **kw), (None, 6), {"kernel": (6, 4), "bias": (4,)}),
    "Conv2D-k3x2-g2": (lambda **kw: Conv2D(4, (3, 2), groups=2, **kw), (None, 7, 7, 6),
                       {"kernel": (3, 2, 3, 4), "bias": (4,)}),
    "Conv2DTranspose-k2x3": (lambda **kw: Conv2DTranspose(4, (2, 3), strides=2, **kw),
                             (None, 5, 5, 3), {"kernel": (2, 3, 4, 3), "bias": (4,)}),
}


@pytest.mark.parametrize("case", LAYER_CASES, ids=LAYER_CASES.keys())
@pytest.mark.parametrize("kernel_init", ["he_normal", "lecun_uniform", "orthogonal"])
def test_kernel_and_bias_initializers(case, kernel_init):
    """Each weight is its initializer's draw on the Keras-layout shape, kernel
    then bias from one generator seeded by the layer's seed."""
    make, input_shape, shapes = LAYER_CASES[case]
    layer = make(kernel_initializer=kernel_init, bias_initializer="random_normal", seed=3)
    layer.build(input_shape)
    rng = np.random.default_rng(3)
    want_kernel = initializers.get(kernel_init)(shapes["kernel"], "float32", rng)
    want_bias = RandomNormal()(shapes["bias"], "float32", rng)
    np.testing.assert_array_equal(layer.kernel, want_kernel)
    np.testing.assert_array_equal(layer.bias, want_bias)
    assert layer.get_config()["kernel_initializer"] == kernel_init
    assert layer.get_config()["bias_initializer"] == "random_normal"


def test_depthwise_separable_and_batch_norm_initializers():
    dw = DepthwiseConv2D(3, depthwise_initializer=Constant(0.5), bias_initializer="ones")
    dw.build((None, 6, 6, 2))
    assert (dw.kernel == 0.5).all() and (dw.bias == 1).all()
    assert dw.get_config()["depthwise_initializer"] == {"class_name": "Constant",
                                                        "config": {"value": 0.5}}
    sep = SeparableConv2D(3, 2, depthwise_initializer="zeros", pointwise_initializer="ones",
                          bias_initializer=Constant(2.0))
    sep.build((None, 5, 5, 2))
    dk, pk, b = sep.weights
    assert not dk.any() and (pk == 1).all() and (b == 2).all()
    bn = BatchNormalization(beta_initializer="ones", gamma_initializer=Constant(3.0),
                            moving_mean_initializer="random_uniform",
                            moving_variance_initializer=Constant(4.0), seed=5)
    bn.build((None, 4))
    np.testing.assert_array_equal(bn.weights[0], np.full(4, 3.0, np.float32))  # gamma
    np.testing.assert_array_equal(bn.weights[1], np.ones(4, np.float32))       # beta
    np.testing.assert_array_equal(bn.moving_mean,
                                  RandomUniform()((4,), "float32", np.random.default_rng(5)))
    assert (bn.moving_variance == 4).all()
    cfg = bn.get_config()
    assert cfg["gamma_initializer"] == {"class_name": "Constant", "config": {"value": 3.0}}
    assert cfg["beta_initializer"] == "ones" and cfg["seed"] == 5


def test_none_initializer_is_keras_add_weight_default():
    """Keras 3: ``kernel_initializer=None`` (or a bias's) is add_weight's default,
    glorot_uniform, and the config keeps None."""
    layer = Dense(3, kernel_initializer=None, bias_initializer=None, seed=2)
    layer.build((None, 4))
    rng = np.random.default_rng(2)
    np.testing.assert_array_equal(layer.kernel, _glorot(rng, (4, 3), 4, 3).astype(np.float32))
    np.testing.assert_array_equal(layer.bias, _glorot(rng, (3,), 3, 3).astype(np.float32))
    assert layer.get_config()["bias_initializer"] is None


def test_custom_callable_initializer():
    seen = []

    def halves(shape, dtype=None):
        seen.append((shape, dtype))
        return np.full(shape, 0.5)

    layer = Conv2D(2, 3, kernel_initializer=halves)
    layer.build((None, 5, 5, 1))
    assert seen == [((3, 3, 1, 2), "float32")] and (layer.kernel == 0.5).all()
    assert layer.kernel.dtype == np.float32 and layer.get_config()["kernel_initializer"] is halves
    bad = Dense(2, kernel_initializer=lambda shape, dtype=None: np.zeros((1,)))
    with pytest.raises(ValueError, match=r"kernel_initializer returned an array of shape \(1,\)"):
        bad.build((None, 3))


def test_a_model_with_a_custom_callable_initializer_cannot_be_saved(tmp_path):
    model = convpool.Sequential([Input((3,)), Dense(2, kernel_initializer=lambda s, dtype=None:
                                                       np.ones(s))])
    with pytest.raises(TypeError, match="not JSON serializable"):
        model.save(tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cls, config", [
    (Dense, dict(units=3, kernel_initializer=HeNormal(seed=1), bias_initializer="ones")),
    (Conv2D, dict(filters=2, kernel_size=(3, 2), strides=(2, 1),
                  kernel_initializer={"class_name": "VarianceScaling",
                                      "config": {"scale": 0.5, "input_axes": (0, 1, 2),
                                                 "output_axes": (3,)}})),
    (Conv2DTranspose, dict(filters=2, kernel_size=3, kernel_initializer="lecun_normal")),
    (DepthwiseConv2D, dict(kernel_size=(1, 3), depthwise_initializer=Orthogonal(seed=2))),
    (SeparableConv2D, dict(filters=4, kernel_size=2, pointwise_initializer="he_uniform")),
    (BatchNormalization, dict(gamma_initializer=RandomNormal(1.0, 0.1))),
], ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_layer_config_round_trips_through_json(cls, config):
    """get_config -> JSON (tuples become lists) -> from_config: the same config."""
    layer = cls(**config)
    cfg = layer.get_config()
    restored = cls.from_config(json.loads(json.dumps(cfg)))
    assert json.loads(json.dumps(restored.get_config())) == json.loads(json.dumps(cfg))


def test_model_with_initializers_saves_and_loads(tmp_path, rng):
    model = convpool.Sequential([
        Input((6, 6, 2)),
        Conv2D(3, 3, kernel_initializer=HeNormal(seed=1), bias_initializer=Constant(0.1)),
        DepthwiseConv2D(2, depthwise_initializer="lecun_normal", seed=2),
        BatchNormalization(gamma_initializer="random_uniform", seed=3),
        SeparableConv2D(2, 2, depthwise_initializer=Orthogonal(), seed=4),
        convpool.Flatten(), Dense(2, kernel_initializer="glorot_normal", seed=5)])
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = convpool.load(path)
    for a, b in zip(model.layers, loaded.layers):
        assert a.get_config() == b.get_config()
    x = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


REFUSED = {
    Dense: ["kernel_regularizer", "bias_regularizer", "activity_regularizer",
            "kernel_constraint", "bias_constraint"],
    Conv2D: ["kernel_regularizer", "bias_regularizer", "activity_regularizer",
             "kernel_constraint", "bias_constraint"],
    Conv2DTranspose: ["kernel_regularizer", "bias_regularizer", "activity_regularizer",
                      "kernel_constraint", "bias_constraint"],
    DepthwiseConv2D: ["depthwise_regularizer", "bias_regularizer", "activity_regularizer",
                      "depthwise_constraint", "bias_constraint"],
    SeparableConv2D: ["depthwise_regularizer", "pointwise_regularizer", "bias_regularizer",
                      "activity_regularizer", "depthwise_constraint", "pointwise_constraint",
                      "bias_constraint"],
    BatchNormalization: ["beta_regularizer", "gamma_regularizer", "beta_constraint",
                         "gamma_constraint"],
}
REFUSED_CASES = [(cls, arg) for cls, args in REFUSED.items() for arg in args]


@pytest.mark.parametrize("cls, argument", REFUSED_CASES,
                         ids=[f"{c.__name__}-{a}" for c, a in REFUSED_CASES])
def test_regularizers_and_constraints_refused(cls, argument):
    args = {Dense: (2,), Conv2D: (2, 3), Conv2DTranspose: (2, 3), DepthwiseConv2D: (3,),
            SeparableConv2D: (2, 3), BatchNormalization: ()}[cls]
    cls(*args, **{argument: None})  # Keras's default: accepted
    what = "constraints" if argument.endswith("constraint") else "regularizers"
    with pytest.raises(ValueError, match=rf"^{argument}='l2': convpool's layers do not support "
                                         rf"{what}; pass None"):
        cls(*args, **{argument: "l2"})


def test_unknown_initializer_name_on_a_layer_names_the_argument():
    with pytest.raises(ValueError, match="^bias_initializer: unknown initializer 'zero_'"):
        Conv2D(2, 3, bias_initializer="zero_")
    with pytest.raises(TypeError, match="^depthwise_initializer must be"):
        DepthwiseConv2D(3, depthwise_initializer=1.0)


# ------------------------------------------------------------------ against Keras
def _keras():
    return pytest.importorskip("keras")


KERAS_NAMES = ["zeros", "ones", "constant", "identity", "random_normal", "random_uniform",
               "truncated_normal", "variance_scaling", "glorot_uniform", "glorot_normal",
               "he_normal", "he_uniform", "lecun_normal", "lecun_uniform", "orthogonal",
               "GlorotUniform", "HeNormal", "normal", "uniform", "one", "zero"]


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_names_and_default_configs_match_keras(name):
    k = _keras()
    ours = initializers.get(name)
    if name == "constant":  # Keras 3.15's get("constant") fails (Constant.from_config({}))
        theirs = k.initializers.Constant()
    else:
        theirs = k.initializers.get(name)
    assert type(ours).__name__ == type(theirs).__name__
    # Keras 3.15's Identity has no get_config (its gain is lost on a round trip);
    # ours writes it.
    want = {"gain": 1.0} if name == "identity" else theirs.get_config()
    assert ours.get_config() == want
    assert list(inspect.signature(type(ours)).parameters) == list(
        inspect.signature(type(theirs)).parameters)
    assert type(k.initializers.get(initializers.serialize(ours))) is type(theirs)


@pytest.mark.parametrize("shape", [(64, 48), (3, 3, 16, 32), (5, 2, 8, 4)],
                         ids=["dense-64x48", "conv-k3x3-c16-f32", "conv-k5x2-c8-f4"])
@pytest.mark.parametrize("name", ["glorot_uniform", "glorot_normal", "he_normal", "he_uniform",
                                  "lecun_normal", "lecun_uniform", "truncated_normal",
                                  "random_normal", "random_uniform", "orthogonal"])
def test_value_distribution_matches_keras(name, shape):
    """Keras's values (its own generator) and ours: the same bounds and, within
    sampling error, the same variance, on Keras's fans of the same shape."""
    k = _keras()
    ours = np.concatenate([initializers.get(name)(shape, rng=np.random.default_rng(i)).ravel()
                           for i in range(8)]).astype(np.float64)
    theirs = np.concatenate([np.asarray(k.initializers.get({"class_name": name, "config":
                                                            {"seed": i}})(shape)).ravel()
                             for i in range(8)]).astype(np.float64)
    # Both are samples of one distribution: their variances agree to within 6
    # standard errors of the difference (kurtosis <= 3 for all of these).
    var = theirs.var()
    se = math.sqrt(2 * (3 - 1) / ours.size) * var
    assert abs(ours.var() - var) < 6 * se, (ours.var(), var)
    # Bounded distributions: the same bound, reached by both to sampling precision.
    if name.endswith("uniform") or ("normal" in name and name != "random_normal"):
        assert np.abs(ours).max() <= np.abs(theirs).max() * (1 + 0.05) + 8 * F32_EPS


def test_keras_layer_config_initializers_load_in_convpool():
    k = _keras()
    klayer = k.layers.Conv2D(4, 3, kernel_initializer=k.initializers.HeNormal(seed=3),
                             bias_initializer=k.initializers.Constant(0.25))
    kcfg = json.loads(json.dumps(klayer.get_config()))
    layer = Conv2D(4, 3, kernel_initializer=kcfg["kernel_initializer"],
                   bias_initializer=kcfg["bias_initializer"], seed=0)
    layer.build((None, 8, 8, 2))
    assert (layer.bias == 0.25).all()
    np.testing.assert_array_equal(layer.kernel, HeNormal(seed=3)((3, 3, 2, 4)))
    assert layer.get_config()["kernel_initializer"] == {
        "class_name": "HeNormal", "config": {"seed": 3, "input_axes": None, "output_axes": None}}
