"""Keras's model files: ``.keras`` (Keras 3) and legacy ``.h5``, read and written
with h5py only (convpool.models.keras_format).

Without TensorFlow: round trips through both formats (bitwise), what save
refuses, and every way a file can be bad (each a ValueError naming the file,
raised before anything is allocated from the file's numbers).  With
TensorFlow and Keras 3 importable: models built and trained briefly by Keras,
saved by Keras and loaded by convpool (predictions within 1e-4 relative of
Keras's), and convpool's files loaded by ``keras.saving.load_model`` (the
same weights bit for bit, the same predictions to rounding).  The functional
tests wait for ``convpool.models.Model`` (skipped until it exists).
"""

from __future__ import annotations

import io
import json
import pickle
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import convpool
import convpool.models
from convpool.keras import layers as L
from convpool.keras.models import load_model, save_model
from convpool.models import keras_format

Model = getattr(convpool.models, "Model", None)
needs_model = pytest.mark.skipif(Model is None, reason="convpool.models has no functional Model "
                                                       "yet (the functional API is on main)")


@pytest.fixture
def h5py():
    return pytest.importorskip("h5py")


@pytest.fixture(scope="module")
def keras():
    """Keras 3 on TensorFlow (imported only by the tests that ask for it)."""
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras", minversion="3.0")
    return keras


def _randomize(model, rng):
    """Random weights everywhere (positive variances), so that a weight put in the
    wrong place shows in the predictions."""
    for layer in model.layers:
        if not layer.weights:
            continue
        new = [rng.uniform(-1, 1, w.shape).astype(w.dtype) for w in layer.get_weights()]
        if type(layer).__name__ == "BatchNormalization":
            new[-1] = rng.uniform(0.5, 2, new[-1].shape).astype(new[-1].dtype)
        layer.set_weights(new)
    return model


def _cnn(rng, dtype=None):
    """A Sequential of every layer both formats carry (the Keras kinds convpool has)."""
    model = convpool.Sequential([
        L.Input((9, 8, 3)),
        L.Conv2D(4, (3, 2), padding="same", activation="relu", seed=1, name="c1", dtype=dtype),
        L.BatchNormalization(dtype=dtype),
        L.DepthwiseConv2D(3, depth_multiplier=2, dilation_rate=(1, 2), padding="same", seed=2,
                          dtype=dtype),
        # Equal strides: TensorFlow's CPU depthwise kernel refused unequal ones
        # (InvalidArgumentError, TensorFlow 2.21 on Zen 3), and Keras runs this model.
        L.SeparableConv2D(5, (2, 3), strides=2, activation="swish", seed=3, dtype=dtype),
        L.Conv2DTranspose(3, 2, strides=2, padding="same", seed=4, dtype=dtype),
        L.ZeroPadding2D(((1, 0), (0, 2))),
        L.UpSampling2D((1, 2)),
        L.AveragePooling2D(2, padding="same"),
        L.MaxPooling2D((2, 1), strides=(1, 2)),
        L.Activation("tanh"),
        L.ReLU(),
        L.Dropout(0.3, seed=5),
        L.Conv2D(6, 1, groups=3, use_bias=False, seed=6, dtype=dtype),
        L.GlobalMaxPooling2D(keepdims=True),
        L.Flatten(),
        L.Reshape((2, 3)),
        L.Dense(4, activation="gelu", seed=7, dtype=dtype),
        L.Flatten(),
        L.Dense(3, seed=8, dtype=dtype),
    ], name="cnn")
    return _randomize(model, rng)


def _x(rng, shape=(5, 9, 8, 3)):
    return rng.standard_normal(shape).astype(np.float32)


def _relative(ours, theirs):
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


# ----------------------------------------------------------------- round trips
@pytest.mark.parametrize("suffix", [".keras", ".h5", ".hdf5"])
def test_roundtrip_predicts_the_same_bits(tmp_path, rng, h5py, suffix):
    model = _cnn(rng)
    path = tmp_path / f"m{suffix}"
    model.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left
    loaded = load_model(path)
    x = _x(rng)
    assert loaded.predict(x).tobytes() == model.predict(x).tobytes()
    assert loaded.name == "cnn" and loaded.input_shape == (None, 9, 8, 3)
    assert [(type(a).__name__, a.name) for a in loaded.layers] == [
        (type(b).__name__, b.name) for b in model.layers]
    for a, b in zip(loaded.layers, model.layers):
        assert a.get_config() | {"seed": None} == b.get_config() | {"seed": None}
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_conv_algorithm_is_not_written_to_keras_files(tmp_path, rng, h5py, suffix):
    """Conv2D's algorithm= (how convpool computes the same convolution) has no
    Keras key: it is left out, and the loaded layer takes the default."""
    model = convpool.Sequential([L.Input((8, 8, 16)),
                                 L.Conv2D(16, 3, padding="same", algorithm="direct", seed=0)])
    model.save(tmp_path / f"m{suffix}")
    loaded = load_model(tmp_path / f"m{suffix}")
    assert loaded.layers[0].algorithm == "auto"
    x = rng.standard_normal((2, 8, 8, 16)).astype(np.float32)
    direct = model.predict(x)
    assert np.allclose(loaded.predict(x), direct, rtol=0, atol=2e-5 * np.abs(direct).max())


def test_float64_weights_stay_float64(tmp_path, rng, h5py):
    model = convpool.Sequential([L.Input((6,)), L.Dense(3, dtype="float64", seed=0),
                                 L.Dense(2, dtype="float64", seed=1)])
    _randomize(model, rng)
    for suffix in (".keras", ".h5"):
        model.save(tmp_path / f"m{suffix}")
        loaded = load_model(tmp_path / f"m{suffix}")
        assert [w.dtype for w in loaded.weights] == [np.float64] * 4
        x = rng.standard_normal((3, 6))
        assert loaded.predict(x).tobytes() == model.predict(x).tobytes()


def test_keras_file_layout(tmp_path, rng, h5py):
    """The layout Keras 3 reads: weights under layers/<snake-case class, numbered>/vars."""
    model = _cnn(rng)
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        assert sorted(zf.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        config = json.loads(zf.read("config.json"))
        weights = zf.read("model.weights.h5")
    assert config["class_name"] == "Sequential"
    classes = [e["class_name"] for e in config["config"]["layers"]]
    assert classes[:3] == ["InputLayer", "Conv2D", "BatchNormalization"]
    assert "MaxPooling2D" in classes and "AveragePooling2D" in classes
    with h5py.File(io.BytesIO(weights), "r") as f:
        assert f["layers/conv2d/vars"].attrs["name"] == "c1"
        assert f["layers/conv2d/vars/0"].shape == (3, 2, 3, 4)
        assert f["layers/conv2d_1/vars/0"].shape == (1, 1, 1, 6)  # groups=3 on 3 channels
        assert list(f["layers/batch_normalization/vars"]) == ["0", "1", "2", "3"]
        assert f["layers/separable_conv2d/vars/1"].shape == (1, 1, 8, 5)
        assert len(f["layers/re_lu/vars"]) == 0


def test_legacy_file_layout(tmp_path, rng, h5py):
    model = _cnn(rng)
    model.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        config = json.loads(f.attrs["model_config"])
        assert config["class_name"] == "Sequential"
        group = f["model_weights"]
        assert list(group.attrs["layer_names"]) == [layer.name for layer in model.layers]
        assert list(group["c1"].attrs["weight_names"]) == ["c1/kernel", "c1/bias"]
        assert group["c1/c1/kernel"].shape == (3, 2, 3, 4)


def test_load_model_reads_convpool_npz(tmp_path, rng):
    model = _cnn(rng)
    model.save(tmp_path / "m.npz")
    x = _x(rng)
    assert load_model(tmp_path / "m.npz").predict(x).tobytes() == model.predict(x).tobytes()


def test_namespaces():
    from convpool.keras import saving

    assert saving.load_model is load_model is convpool.models.load_model
    assert saving.save_model is save_model


@pytest.mark.parametrize("layer, message", [
    (L.Conv2D(2, 3, padding=1), "padding=1 has no Keras equivalent"),
    (L.Conv2D(2, 3, padding_mode="reflect", padding="same"), "padding_mode='reflect'"),
    (L.AveragePooling2D(2, count_include_pad=True), "count_include_pad=True"),
    (L.MaxPooling2D(2, padding=((1, 0), (0, 1))), "padding=((1, 0), (0, 1))"),
    (L.Conv2DTranspose(4, 3, groups=2), "groups=2"),
])
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_refuses_what_keras_lacks(tmp_path, h5py, layer, message, suffix):
    model = convpool.Sequential([L.Input((8, 8, 4)), layer])
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        model.save(tmp_path / f"m{suffix}")
    assert repr(layer.name) in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_duplicate_names(tmp_path, h5py):
    model = convpool.Sequential([L.Input((4,)), L.Dense(2, name="d"), L.Dense(2, name="d")])
    with pytest.raises(ValueError, match="two layers are named 'd'"):
        model.save(tmp_path / "m.keras")


def test_save_model_arguments(tmp_path, rng, h5py):
    model = _cnn(rng)
    save_model(model, tmp_path / "m.keras", include_optimizer=False)
    with pytest.raises(FileExistsError):
        save_model(model, tmp_path / "m.keras", overwrite=False)
    with pytest.raises(ValueError, match="zipped"):
        save_model(model, tmp_path / "n.keras", zipped=False)
    with pytest.raises(TypeError, match="save_format"):
        save_model(model, tmp_path / "n.keras", save_format="tf")
    with pytest.raises(ValueError, match="custom_objects"):
        load_model(tmp_path / "m.keras", custom_objects={"f": print})
    with pytest.raises(ValueError, match="not built"):
        convpool.Sequential([L.Dense(2)]).save(tmp_path / "u.keras")


def test_a_failed_save_keeps_the_earlier_file(tmp_path, rng, h5py, monkeypatch):
    model = _cnn(rng)
    path = tmp_path / "m.keras"
    model.save(path)
    before = path.read_bytes()

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(keras_format, "_write_v3_weights", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]


def test_without_h5py_the_error_says_what_to_install(tmp_path, rng, monkeypatch):
    model = _cnn(rng)
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now fails
    for name in ("m.keras", "m.h5"):
        with pytest.raises(ImportError, match=r"pip install convpool\[keras\]"):
            model.save(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ bad files
def _saved_keras(tmp_path, rng):
    """A convpool .keras file's members: {name: bytes}, and its config."""
    model = _cnn(rng)
    model.save(tmp_path / "good.keras")
    with zipfile.ZipFile(tmp_path / "good.keras") as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    return members, json.loads(members["config.json"])


def _write_zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _edit_h5(h5py, data, tmp_path, edit):
    """``edit(file)`` on a copy of the HDF5 bytes ``data``; the new bytes."""
    scratch = tmp_path / "scratch.h5"
    scratch.write_bytes(data)
    with h5py.File(scratch, "r+") as f:
        edit(f)
    out = scratch.read_bytes()
    scratch.unlink()
    return out


def _layer(config, class_name, n=0):
    return [e for e in config["config"]["layers"] if e["class_name"] == class_name][n]


def _expect_refused(path, match=None):
    """load_model raises a ValueError naming the file (and ``match``), at once,
    allocating little."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(ValueError) as err:
            load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - start < 5
    assert peak < 64 * 2**20, peak
    message = str(err.value)
    assert repr(str(path)) in message, message
    if match is not None:
        assert match in message, message
    return message


def _config_change(name):
    """(what, edit of the config dict, phrase expected in the message)."""
    def conv(config):
        return _layer(config, "Conv2D")["config"]

    changes = {
        "filters=10**12": (lambda c: conv(c).update(filters=10**12), "shape"),
        "kernel_size=10**9": (lambda c: conv(c).update(kernel_size=[10**9, 10**9]), "shape"),
        "units=10**12": (lambda c: _layer(c, "Dense", 1)["config"].update(units=10**12),
                         "shape"),
        "Lambda layer": (lambda c: c["config"]["layers"].insert(2, {
            "module": "keras.layers", "class_name": "Lambda", "registered_name": None,
            "config": {"name": "lam", "function": {"class_name": "__lambda__", "config": {
                "code": "4wEAAAAAAAA=", "defaults": None, "closure": None}}}}), "Lambda"),
        "unknown class": (lambda c: _layer(c, "ReLU").update(class_name="Conv3D"), "Conv3D"),
        "regularizer": (lambda c: conv(c).update(kernel_regularizer={
            "module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.01},
            "registered_name": None}), "kernel_regularizer"),
        "constraint": (lambda c: conv(c).update(kernel_constraint={
            "module": "keras.constraints", "class_name": "NonNeg", "config": {},
            "registered_name": None}), "kernel_constraint"),
        "mixed precision": (lambda c: conv(c)["dtype"]["config"].update(name="mixed_float16"),
                            "mixed_float16"),
        "custom layer": (lambda c: _layer(c, "ReLU").update(
            module="my_package.layers", registered_name="my_package>ReLU"), "custom object"),
        "custom initializer": (lambda c: conv(c).update(kernel_initializer={
            "module": "my_package", "class_name": "Mine", "config": {},
            "registered_name": "Custom>Mine"}), "custom object"),
        "custom activation": (lambda c: conv(c).update(activation={
            "module": "builtins", "class_name": "function", "config": "print",
            "registered_name": "function"}), "activation"),
        "activation convpool lacks": (lambda c: conv(c).update(activation="relu6"), "relu6"),
        "unknown argument": (lambda c: conv(c).update(kernel_gamma=3), "kernel_gamma"),
        "missing argument": (lambda c: conv(c).pop("filters"), "filters"),
        "bad value": (lambda c: conv(c).update(padding="causal"), "causal"),
        "bool for int": (lambda c: conv(c).update(filters=True), "filters"),
        "nested model": (lambda c: _layer(c, "ReLU").update(class_name="Sequential"),
                         "nested"),
        "model class": (lambda c: c.update(class_name="MyModel"), "MyModel"),
        "layers not a list": (lambda c: c["config"].update(layers={"0": 1}), "list of layers"),
        "input shape": (lambda c: _layer(c, "InputLayer")["config"].update(
            batch_shape=[None, 9, 8, "3"]), "batch_shape"),
        "InputLayer later": (lambda c: c["config"]["layers"].append(
            {**c["config"]["layers"][0], "config": {**c["config"]["layers"][0]["config"],
                                                    "name": "late"}}), "InputLayer"),
        "layer order": (lambda c: c["config"]["layers"].insert(
            1, c["config"]["layers"].pop(2)), None),
        "renamed layer": (lambda c: conv(c).update(name="other"), "other"),
    }
    return changes[name]


@pytest.mark.parametrize("change", [
    "filters=10**12", "kernel_size=10**9", "units=10**12", "Lambda layer", "unknown class",
    "regularizer", "constraint", "mixed precision", "custom layer", "custom initializer",
    "custom activation", "activation convpool lacks", "unknown argument", "missing argument",
    "bad value", "bool for int", "nested model", "model class", "layers not a list",
    "input shape", "InputLayer later", "layer order", "renamed layer"])
def test_bad_configs_are_refused(tmp_path, rng, h5py, change):
    """Each is a ValueError naming the file (and what is wrong), raised before any
    weight is allocated from the configuration: a config asking for 10**12
    filters is refused by its stored weights' shapes."""
    members, config = _saved_keras(tmp_path, rng)
    edit, phrase = _config_change(change)
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    _expect_refused(_write_zip(tmp_path / "bad.keras", members), phrase)


@pytest.mark.parametrize("change", [
    "filters=10**12", "Lambda layer", "regularizer", "custom layer", "unknown class"])
def test_bad_legacy_configs_are_refused(tmp_path, rng, h5py, change):
    model = _cnn(rng)
    path = tmp_path / "bad.h5"
    model.save(path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit, phrase = _config_change(change)
        edit(config)
        f.attrs["model_config"] = json.dumps(config)
    _expect_refused(path, phrase)


def test_bad_zips_are_refused(tmp_path, rng, h5py, monkeypatch):
    members, config = _saved_keras(tmp_path, rng)
    good = (tmp_path / "good.keras").read_bytes()
    cases = {}
    cut = tmp_path / "cut.keras"
    cut.write_bytes(good[: len(good) // 2])
    cases[cut] = None
    text = tmp_path / "text.keras"
    text.write_text("not a zip")
    cases[text] = "not a zip"
    cases[_write_zip(tmp_path / "nojson.keras", {**members, "config.json": b"{not json"})] = (
        "config.json is not JSON")
    cases[_write_zip(tmp_path / "deep.keras", {**members, "config.json": b"[" * 100000})] = (
        "config.json is not JSON")
    cases[_write_zip(tmp_path / "noconfig.keras",
                     {k: v for k, v in members.items() if k != "config.json"})] = "config.json"
    cases[_write_zip(tmp_path / "noweights.keras",
                     {k: v for k, v in members.items() if k != "model.weights.h5"})] = (
        "model.weights.h5")
    cases[_write_zip(tmp_path / "notweights.keras",
                     {**members, "model.weights.h5": b"\x89HDF garbage"})] = "HDF5"
    # A zip bomb: 20 MB of JSON whitespace deflates to about 20 kB.
    bomb = {**members, "config.json": members["config.json"] + b" " * (20 * 2**20)}
    cases[_write_zip(tmp_path / "bomb.keras", bomb, zipfile.ZIP_DEFLATED)] = "zip bomb"
    cases[_write_zip(tmp_path / "meta.keras", {**members, "metadata.json": b"[1]"})] = (
        "metadata.json")
    for path, phrase in cases.items():
        _expect_refused(path, phrase)
    # config.json above the cap is refused by its declared size, before reading.
    monkeypatch.setattr(keras_format, "MAX_JSON_BYTES", 1000)
    _expect_refused(tmp_path / "good.keras", "more than the 1000")


def _weights_change(name, h5py):
    pickled = np.frombuffer(pickle.dumps({"a": 1}), dtype=np.uint8)

    def replace(f, key, make):
        del f[key]
        make(f, key)

    changes = {
        "missing weight": lambda f: f.__delitem__("layers/conv2d/vars/1"),
        "extra weight": lambda f: f["layers/conv2d/vars"].create_dataset("2", data=np.zeros(4)),
        "wrong shape": lambda f: replace(f, "layers/conv2d/vars/0", lambda f, k: f.create_dataset(
            k, data=np.zeros((3, 2, 3, 5), np.float32))),
        "int weights": lambda f: replace(f, "layers/conv2d/vars/1", lambda f, k: f.create_dataset(
            k, data=np.zeros(4, np.int32))),
        "pickled object": lambda f: replace(f, "layers/conv2d/vars/1", lambda f, k: f.create_dataset(
            k, data=np.void(pickled.tobytes()))),
        "bytes object": lambda f: replace(f, "layers/conv2d/vars/1", lambda f, k: f.create_dataset(
            k, shape=(1,), dtype=h5py.vlen_dtype(np.uint8)).__setitem__(0, pickled)),
        "compressed": lambda f: replace(f, "layers/conv2d/vars/1", lambda f, k: f.create_dataset(
            k, data=np.zeros(4, np.float32), compression="gzip")),
        "external link": lambda f: replace(f, "layers/conv2d/vars/1", lambda f, k: f.__setitem__(
            k, h5py.ExternalLink("/etc/other.h5", "/data"))),
        "soft link": lambda f: replace(f, "layers/conv2d/vars/1", lambda f, k: f.__setitem__(
            k, h5py.SoftLink("/layers/dense/vars/1"))),
        "unallocated": lambda f: replace(f, "layers/conv2d/vars/1", lambda f, k: f.create_dataset(
            k, shape=(4,), dtype=np.float32)),
        "layer of another name": lambda f: f["layers/conv2d/vars"].attrs.__setitem__(
            "name", "dense"),
        "weights of no layer": lambda f: f.create_group("layers/conv2d_9/vars").create_dataset(
            "0", data=np.zeros(3)),
        "group where a dataset is": lambda f: replace(f, "layers/conv2d/vars/1",
                                                      lambda f, k: f.create_group(k)),
        "no layers group": lambda f: f.__delitem__("layers"),
    }
    return changes[name]


@pytest.mark.parametrize("change", [
    "missing weight", "extra weight", "wrong shape", "int weights", "pickled object",
    "bytes object", "compressed", "external link", "soft link", "unallocated",
    "layer of another name", "weights of no layer", "group where a dataset is",
    "no layers group"])
def test_bad_keras_weights_are_refused(tmp_path, rng, h5py, change):
    members, _ = _saved_keras(tmp_path, rng)
    members["model.weights.h5"] = _edit_h5(h5py, members["model.weights.h5"], tmp_path,
                                           _weights_change(change, h5py))
    _expect_refused(_write_zip(tmp_path / "bad.keras", members))


def test_forged_dataset_sizes_are_refused(tmp_path, rng, h5py):
    """A weights file declaring more values than it holds is refused before reading
    (the budget: never more bytes than the file has)."""
    members, config = _saved_keras(tmp_path, rng)
    _layer(config, "Dense", 1)["config"]["units"] = 3 * 10**6

    def edit(f):
        d_in = f["layers/dense_1/vars/0"].shape[0]
        for key in ("0", "1"):
            del f[f"layers/dense_1/vars/{key}"]
        # Chunked and never written: the declared shape costs nothing in the file.
        f.create_dataset("layers/dense_1/vars/0", shape=(d_in, 3 * 10**6), dtype=np.float32,
                         chunks=(d_in, 1000))
        f.create_dataset("layers/dense_1/vars/1", shape=(3 * 10**6,), dtype=np.float32,
                         chunks=(1000,))

    members["model.weights.h5"] = _edit_h5(h5py, members["model.weights.h5"], tmp_path, edit)
    members["config.json"] = json.dumps(config).encode()
    _expect_refused(_write_zip(tmp_path / "forged.keras", members), "bytes than the file holds")


def _legacy_change(name):
    def replace_names(f, names):
        f["model_weights/c1"].attrs["weight_names"] = np.array(names, dtype=object)

    changes = {
        "no model_config": lambda f: f.attrs.__delitem__("model_config"),
        "model_config not JSON": lambda f: f.attrs.__setitem__("model_config", "{nope"),
        "model_config pickled": lambda f: f.attrs.__setitem__(
            "model_config", np.void(pickle.dumps({"a": 1}))),
        "no model_weights": lambda f: f.__delitem__("model_weights"),
        "weights swapped": lambda f: replace_names(f, ["c1/bias", "c1/kernel"]),
        "weight missing": lambda f: replace_names(f, ["c1/kernel", "c1/gone"]),
        "absolute weight name": lambda f: replace_names(f, ["/model_weights/dense/dense/kernel",
                                                            "c1/bias"]),
        "dotted weight name": lambda f: replace_names(f, ["c1/../c1/kernel", "c1/bias"]),
        "one weight short": lambda f: replace_names(f, ["c1/kernel"]),
        "weights of no layer": lambda f: f["model_weights"].create_group("ghost").attrs.__setitem__(
            "weight_names", np.array(["ghost/kernel"], dtype=object)),
        "wrong shape": lambda f: (f["model_weights/c1/c1"].__delitem__("bias"),
                                  f["model_weights/c1/c1"].create_dataset("bias", data=np.zeros(5))),
    }
    return changes[name]


@pytest.mark.parametrize("change", [
    "no model_config", "model_config not JSON", "model_config pickled", "no model_weights",
    "weights swapped", "weight missing", "absolute weight name", "dotted weight name",
    "one weight short", "weights of no layer", "wrong shape"])
def test_bad_legacy_files_are_refused(tmp_path, rng, h5py, change):
    path = tmp_path / "bad.h5"
    _cnn(rng).save(path)
    with h5py.File(path, "r+") as f:
        _legacy_change(change)(f)
    _expect_refused(path)


def test_not_model_files(tmp_path, rng, h5py):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    _expect_refused(text, "not a model file")
    truncated = tmp_path / "cut.h5"
    truncated.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    _expect_refused(truncated, "HDF5")
    _cnn(rng).save(tmp_path / "whole.h5")
    whole = (tmp_path / "whole.h5").read_bytes()
    for fraction in (0.5, 0.99):
        truncated.write_bytes(whole[: int(len(whole) * fraction)])
        _expect_refused(truncated, "truncated")
    with pytest.raises(ValueError, match="directory"):
        load_model(tmp_path)


def test_load_does_not_modify_the_file(tmp_path, rng, h5py):
    for name in ("m.keras", "m.h5"):
        path = tmp_path / name
        _cnn(rng).save(path)
        before = path.read_bytes()
        load_model(path)
        assert path.read_bytes() == before


def test_keras2_style_legacy_file(tmp_path, rng, h5py):
    """What tf.keras 2 writes: variables named ``kernel:0`` under ``<layer>/<layer>/``,
    a BatchNormalization axis as a list, and no InputLayer (the first layer's
    batch_input_shape)."""
    model = _cnn(rng)
    path = tmp_path / "k2.h5"
    model.save(path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        layers = config["config"]["layers"]
        first = layers.pop(0)
        layers[0]["config"]["batch_input_shape"] = first["config"]["batch_input_shape"]
        _layer(config, "BatchNormalization")["config"]["axis"] = [3]
        f.attrs["model_config"] = json.dumps(config)
        for name in f["model_weights"].attrs["layer_names"]:
            group = f["model_weights"][name]
            names = [str(n) for n in group.attrs["weight_names"]] if len(
                group.attrs["weight_names"]) else []
            for n in names:
                group.move(n, n + ":0")
            if names:
                group.attrs["weight_names"] = np.array([n + ":0" for n in names], dtype=object)
    x = _x(rng)
    assert load_model(path).predict(x).tobytes() == model.predict(x).tobytes()


# --------------------------------------------------------- against Keras itself
def _keras_cnn(keras, rng):
    """A small CNN built and trained briefly by Keras (the BatchNormalization
    moving statistics move), on 16 random samples."""
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((12, 10, 3)),
        layers.Conv2D(8, (3, 2), padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(2),
        layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu"),
        layers.SeparableConv2D(8, 3, strides=2, padding="valid"),  # equal: see _cnn
        layers.BatchNormalization(center=False),
        layers.Dropout(0.25),
        layers.Conv2D(6, 1, activation="elu"),
        layers.GlobalAveragePooling2D(keepdims=True),
        layers.Flatten(),
        layers.Dense(16, activation="tanh"),
        layers.Dropout(0.5),
        layers.Dense(4),
    ])
    model.compile("adam", "mse")
    x = _x(rng, (16, 12, 10, 3))
    model.fit(x, rng.standard_normal((16, 4)).astype(np.float32), epochs=2, batch_size=8,
              verbose=0)
    return model


def _keras_upsampling(keras, rng):
    """Keras's other layer kinds convpool reads, in a Sequential."""
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((7, 6, 4)),
        layers.ZeroPadding2D(((1, 2), (0, 1))),
        layers.Conv2DTranspose(5, (3, 2), strides=(2, 1), padding="same", activation="sigmoid"),
        layers.Conv2DTranspose(3, 3, strides=2, padding="valid", output_padding=1),
        layers.UpSampling2D((2, 1)),
        layers.AveragePooling2D(3, strides=2, padding="same"),
        layers.Activation("swish"),
        layers.ReLU(),
        layers.GlobalMaxPooling2D(),
        layers.Reshape((3, 1)),
        layers.Dense(2, activation="softmax"),
        layers.Flatten(),
        layers.Dense(3, use_bias=False),
    ])
    _randomize_keras(model, rng)
    return model


def _randomize_keras(model, rng):
    model.set_weights([rng.uniform(-1, 1, w.shape).astype(np.float32)
                       for w in model.get_weights()])


@pytest.mark.parametrize("build", [_keras_cnn, _keras_upsampling])
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_files_load_with_keras_predictions(tmp_path, rng, h5py, keras, build, suffix):
    model = build(keras, rng)
    path = tmp_path / f"k{suffix}"
    model.save(path)
    ours = load_model(path)
    x = _x(rng, (6,) + tuple(model.input_shape[1:]))
    theirs = np.asarray(model.predict(x, verbose=0))
    assert _relative(ours.predict(x), theirs) < 1e-4
    assert [layer.name for layer in ours.layers] == [layer.name for layer in model.layers]
    for a, b in zip(ours.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_convpool_files_load_in_keras(tmp_path, rng, h5py, keras, suffix):
    model = _cnn(rng)
    path = tmp_path / f"m{suffix}"
    model.save(path)
    theirs = keras.saving.load_model(path)
    assert [layer.name for layer in theirs.layers] == [layer.name for layer in model.layers]
    for a, b in zip(theirs.get_weights(), model.get_weights()):
        assert a.tobytes() == b.tobytes()
    x = _x(rng)
    assert _relative(np.asarray(theirs.predict(x, verbose=0)), model.predict(x)) < 1e-5


def test_keras_float64_policy(tmp_path, rng, h5py, keras):
    layers = keras.layers
    model = keras.Sequential([keras.Input((5,), dtype="float64"),
                              layers.Dense(3, dtype="float64", activation="tanh"),
                              layers.Dense(2, dtype="float64")])
    _randomize_keras(model, rng)
    model.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    assert [w.dtype for w in ours.weights] == [np.float64] * 4
    x = rng.standard_normal((4, 5))
    # A direct call: Keras's predict() casts float64 data to float32 on the way in.
    assert _relative(ours.predict(x), np.asarray(model(x))) < 1e-12


def test_keras_unsupported_is_named(tmp_path, h5py, keras):
    layers = keras.layers
    cases = {
        "kernel_regularizer": layers.Dense(2, kernel_regularizer="l2"),
        "mixed_float16": layers.Dense(2, dtype="mixed_float16"),
        "LayerNormalization": layers.LayerNormalization(),
        "relu6": layers.Dense(2, activation="relu6"),
    }
    for phrase, layer in cases.items():
        model = keras.Sequential([keras.Input((4,)), layer])
        path = tmp_path / f"{phrase}.keras"
        model.save(path)
        message = _expect_refused(path, phrase)
        assert repr(layer.name) in message


# ------------------------------------------------------------ functional models
def _keras_functional(keras, rng):
    layers = keras.layers
    image = keras.Input((8, 8, 3), name="img")
    aux = keras.Input((16, 16, 2), name="aux")
    a = layers.Conv2D(4, 3, padding="same", activation="relu")(image)
    b = layers.Conv2D(4, 1)(image)
    s = layers.Add()([a, b])
    s = layers.Average()([layers.Subtract()([s, a]), layers.Maximum()([a, b]),
                          layers.Multiply()([a, layers.Minimum()([s, b])])])
    p = layers.ZeroPadding2D(1)(s)
    p = layers.Conv2D(4, 3)(p)
    up = layers.UpSampling2D(2)(p)
    t = layers.Conv2DTranspose(2, 2, strides=2)(s)
    c = layers.Concatenate(axis=-1)([up, t, aux])
    out = layers.Conv2D(3, 1, name="head")(c)
    pooled = layers.GlobalAveragePooling2D()(c)
    model = keras.Model([image, aux], [out, pooled], name="net")
    _randomize_keras(model, rng)
    return model


@needs_model
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_functional_files_load(tmp_path, rng, h5py, keras, suffix):
    model = _keras_functional(keras, rng)
    path = tmp_path / f"f{suffix}"
    model.save(path)
    ours = load_model(path)
    x = [_x(rng, (3, 8, 8, 3)), _x(rng, (3, 16, 16, 2))]
    theirs = model.predict(x, verbose=0)
    for a, b in zip(ours.predict(x), theirs):
        assert _relative(a, np.asarray(b)) < 1e-4


@needs_model
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_convpool_functional_files_load_in_keras(tmp_path, rng, h5py, keras, suffix):
    """Keras numbers the weight paths in its own layer order (map_graph's): a
    graph whose layers were made in another order still loads right."""
    image = L.Input(shape=(8, 8, 3), name="img")
    side = L.Conv2D(4, 1, name="side", seed=0)(image)
    main = L.Conv2D(4, 3, padding="same", name="main", seed=1)(image)
    deep = L.Conv2D(4, 3, padding="same", name="deep", seed=2)(main)
    added = L.Add(name="add")([side, deep])
    both = L.Concatenate(axis=-1, name="cat")([added, main])
    model = Model(inputs=image, outputs=both, name="net")
    _randomize(model, rng)
    path = tmp_path / f"m{suffix}"
    model.save(path)
    x = _x(rng, (2, 8, 8, 3))
    theirs = keras.saving.load_model(path)
    # Keras orders the layers by depth ("main" before "side"), convpool depth first.
    keras_order = [layer.name for layer in theirs.layers if layer.name != "img"]
    assert keras_order == ["main", "side", "deep", "add", "cat"]
    assert [layer.name for layer in model.layers] != keras_order
    ours = {layer.name: layer for layer in model.layers}
    for layer in theirs.layers:
        for a, b in zip(layer.get_weights(), ours[layer.name].get_weights() if layer.weights
                        else []):
            assert a.tobytes() == b.tobytes()
    assert _relative(np.asarray(theirs.predict(x, verbose=0)), model.predict(x)) < 1e-5
    back = load_model(path)
    assert back.predict(x).tobytes() == model.predict(x).tobytes()


def _convpool_functional(rng):
    image = L.Input(shape=(6, 6, 2), name="img")
    aux = L.Input(shape=(6, 6, 3), name="aux")
    a = L.Conv2D(3, 3, padding="same", seed=0)(image)
    b = L.DepthwiseConv2D(1, depth_multiplier=1)(aux)
    merged = [L.Add()([a, b]), L.Subtract()([a, b]), L.Multiply()([a, b]),
              L.Average()([a, b]), L.Maximum()([a, b]), L.Minimum()([a, b])]
    cat = L.Concatenate(axis=-1, name="cat")(merged)
    out = L.Dense(2, name="head")(L.GlobalAveragePooling2D()(L.BatchNormalization()(cat)))
    model = Model(inputs=[image, aux], outputs=[out, cat], name="two_heads")
    return _randomize(model, rng)


@needs_model
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_functional_roundtrip_predicts_the_same_bits(tmp_path, rng, h5py, suffix):
    model = _convpool_functional(rng)
    path = tmp_path / f"f{suffix}"
    model.save(path)
    loaded = load_model(path)
    assert type(loaded).__name__ == "Model" and loaded.name == "two_heads"
    assert sorted(layer.name for layer in loaded.layers) == sorted(
        layer.name for layer in model.layers)
    x = [_x(rng, (3, 6, 6, 2)), _x(rng, (3, 6, 6, 3))]
    for a, b in zip(loaded(x), model(x)):
        assert a.tobytes() == b.tobytes()


def _functional_change(name):
    def entry(config, layer_name):
        return next(e for e in config["config"]["layers"] if e["name"] == layer_name)

    def history(config, layer_name):
        return entry(config, layer_name)["inbound_nodes"][0]["args"][0]["config"]["keras_history"]

    changes = {
        "shared layer": (lambda c: entry(c, "head")["inbound_nodes"].append(
            entry(c, "head")["inbound_nodes"][0]), "shared layers"),
        "forward reference": (lambda c: c["config"]["layers"].append(
            c["config"]["layers"].pop(2)), "comes later"),
        "call arguments": (lambda c: entry(c, "head")["inbound_nodes"][0].update(
            kwargs={"training": True}), "call arguments"),
        "unknown output": (lambda c: c["config"].update(output_layers=[["nope", 0, 0]]),
                           "nope"),
        "second call": (lambda c: history(c, "head").__setitem__(1, 1), "call 1"),
        "merge on one tensor": (lambda c: entry(c, "cat")["inbound_nodes"][0]["args"].__setitem__(
            0, entry(c, "cat")["inbound_nodes"][0]["args"][0][0]), "does not take"),
        "not a tensor": (lambda c: entry(c, "head")["inbound_nodes"][0]["args"].__setitem__(
            0, {"class_name": "__lambda__", "config": {}}), "not a tensor"),
    }
    return changes[name]


@needs_model
@pytest.mark.parametrize("change", ["shared layer", "forward reference", "call arguments",
                                    "unknown output", "second call", "merge on one tensor",
                                    "not a tensor"])
def test_bad_functional_configs_are_refused(tmp_path, rng, h5py, change):
    _convpool_functional(rng).save(tmp_path / "good.keras")
    with zipfile.ZipFile(tmp_path / "good.keras") as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(members["config.json"])
    edit, phrase = _functional_change(change)
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    _expect_refused(_write_zip(tmp_path / "bad.keras", members), phrase)


# ------------------------------------------------------ tf.keras 2 (tf_keras)
@pytest.fixture(scope="module")
def tf_keras():
    """Keras 2 (the tf_keras package), when installed."""
    pytest.importorskip("tensorflow")
    return pytest.importorskip("tf_keras")


def test_tf_keras_files(tmp_path, rng, h5py, tf_keras):
    layers = tf_keras.layers
    model = tf_keras.Sequential([
        layers.Conv2D(6, 3, padding="same", activation="relu", input_shape=(10, 10, 3)),
        layers.BatchNormalization(),
        layers.DepthwiseConv2D(3, depth_multiplier=2),
        layers.SeparableConv2D(4, 3, padding="same"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.2),
        layers.Dense(3),
    ])
    model.compile("adam", "mse")
    model.fit(_x(rng, (8, 10, 10, 3)), np.zeros((8, 3), np.float32), epochs=1, verbose=0)
    x = _x(rng, (4, 10, 10, 3))
    theirs = model.predict(x, verbose=0)
    for suffix in (".h5", ".keras"):
        model.save(tmp_path / f"k2{suffix}")
        assert _relative(load_model(tmp_path / f"k2{suffix}").predict(x), theirs) < 1e-4
    ours = _cnn(rng)
    ours.save(tmp_path / "cp.h5")
    back = tf_keras.models.load_model(tmp_path / "cp.h5", compile=False)
    x = _x(rng)
    assert _relative(np.asarray(back.predict(x, verbose=0)), ours.predict(x)) < 1e-5


@needs_model
def test_tf_keras_functional_files(tmp_path, rng, h5py, tf_keras):
    layers = tf_keras.layers
    image = tf_keras.Input((8, 8, 3), name="img")
    a = layers.Conv2D(4, 3, padding="same")(image)
    b = layers.Conv2D(4, 1)(image)
    joined = layers.Concatenate()([layers.Add()([a, b]), layers.UpSampling2D(1)(a)])
    model = tf_keras.Model(image, layers.Conv2DTranspose(2, 2, strides=2)(joined))
    _randomize_keras(model, rng)
    x = _x(rng, (3, 8, 8, 3))
    theirs = model.predict(x, verbose=0)
    for suffix in (".h5", ".keras"):
        model.save(tmp_path / f"k2f{suffix}")
        assert _relative(load_model(tmp_path / f"k2f{suffix}").predict(x), theirs) < 1e-4
