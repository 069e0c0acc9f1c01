"""Model files: Sequential.save writes atomically and never renames a suffix;
convpool.load treats the file as untrusted input (no pickle, the layout and
every weight shape checked before anything is allocated from its numbers)."""

import io
import json
import os
import time
import zipfile

import numpy as np
import pytest

import convpool
from convpool.layers import Activation, Conv2D, Dense, Dropout, Flatten, Input, MaxPool2D
from convpool.models.saving import save_npz


def _model():
    return convpool.Sequential([Input((8, 8, 2)), Conv2D(4, 3, activation="relu", seed=1),
                                MaxPool2D(2), Flatten(), Dropout(0.2, seed=2),
                                Dense(3, activation="softmax", seed=3)])


def _write(path, config, arrays):
    np.savez(path, config=np.array(json.dumps(config)), **arrays)


def _saved(tmp_path):
    model = _model()
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path) as data:
        config = json.loads(str(data["config"]))
        arrays = {name: data[name] for name in data.files if name != "config"}
    return model, config, arrays


def test_roundtrip_predicts_the_same_bits(tmp_path, rng):
    model, _, _ = _saved(tmp_path)
    loaded = convpool.load(tmp_path / "m.npz")
    x = rng.standard_normal((5, 8, 8, 2)).astype(np.float32)
    assert loaded.predict(x).tobytes() == model.predict(x).tobytes()
    assert [type(layer).__name__ for layer in loaded.layers] == [
        "Conv2D", "MaxPool2D", "Flatten", "Dropout", "Dense"]


def test_save_suffixes(tmp_path):
    """save() writes .npz for no suffix or .npz (Keras's .keras and .h5 go to
    tests/test_keras_files.py); any other suffix is refused, never renamed, and
    save_npz itself keeps refusing Keras's suffixes."""
    model = _model()
    model.save(tmp_path / "plain")  # no suffix: .npz added, as before
    assert (tmp_path / "plain.npz").exists()
    for name in ("m.pt", "m.npy", "m.json"):
        with pytest.raises(ValueError, match="saves models as .keras, .h5"):
            model.save(tmp_path / name)
    for name in ("m.h5", "m.keras", "m.weights.h5"):
        with pytest.raises(ValueError, match="saves models as .npz files"):
            save_npz(model, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.npz"]


def test_a_failed_save_keeps_the_earlier_file(tmp_path, monkeypatch):
    model = _model()
    path = tmp_path / "m.npz"
    model.save(path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary left behind


def test_malformed_files_are_value_errors(tmp_path):
    _, config, arrays = _saved(tmp_path)
    cases = {}
    bad = tmp_path / "text.npz"
    bad.write_text("not a zip")
    cases["not a zip"] = bad
    full = (tmp_path / "m.npz").read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(full[: len(full) // 2])
    cases["truncated"] = cut
    one = tmp_path / "one.npy"
    np.save(one, np.zeros(3))
    cases["a single array"] = one
    no_config = tmp_path / "no_config.npz"
    np.savez(no_config, **arrays)
    cases["no config"] = no_config
    garbage = tmp_path / "garbage.npz"
    np.savez(garbage, config=np.array("{not json"), **arrays)
    cases["config not JSON"] = garbage
    extra = tmp_path / "extra.npz"
    _write(extra, config, {**arrays, "weight_9": np.zeros(1, np.float32)})
    cases["an entry out of sequence"] = extra
    obj = tmp_path / "pickle.npz"
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(obj, "w") as z:
        z.writestr("config.npy", buf.getvalue())
    cases["a pickled member"] = obj
    for what, path in cases.items():
        with pytest.raises(ValueError, match=str(path.name)):
            convpool.load(path)


@pytest.mark.parametrize("change", ["filters=10**12", "units=10**12", "missing weight",
                                    "extra weight", "int weights", "layer class", "input_shape",
                                    "unknown argument", "layers not a list"])
def test_config_and_weights_must_agree(tmp_path, change):
    """Each mismatch is a ValueError raised at once: a configuration that asks
    for 10**12 filters is refused by its stored weights' shapes, before any
    weight is allocated from it."""
    _, config, arrays = _saved(tmp_path)
    layers = config["layers"]
    if change == "filters=10**12":
        layers[0]["config"]["filters"] = 10**12
    elif change == "units=10**12":
        layers[4]["config"]["units"] = 10**12
    elif change == "missing weight":
        del arrays[f"weight_{len(arrays) - 1}"]
    elif change == "extra weight":
        arrays[f"weight_{len(arrays)}"] = np.zeros(3, np.float32)
    elif change == "int weights":
        arrays["weight_0"] = arrays["weight_0"].astype(np.int32)
    elif change == "layer class":
        layers[1]["class"] = "Lambda"
    elif change == "input_shape":
        config["input_shape"] = [None, 8, 8, "2"]
    elif change == "unknown argument":
        layers[0]["config"]["kernel_initialiser"] = "he_normal"  # misspelt: not an argument
    else:
        config["layers"] = {"0": layers[0]}
    path = tmp_path / "changed.npz"
    _write(path, config, arrays)
    start = time.monotonic()
    with pytest.raises(ValueError, match="changed.npz"):
        convpool.load(path)
    assert time.monotonic() - start < 5


def test_load_does_not_modify_the_file(tmp_path):
    _saved(tmp_path)
    path = tmp_path / "m.npz"
    before = (path.read_bytes(), os.stat(path).st_mtime_ns)
    convpool.load(path)
    assert (path.read_bytes(), os.stat(path).st_mtime_ns) == before


def test_activation_dense_model_roundtrip(tmp_path, rng):
    model = convpool.Sequential([Dense(4, activation="gelu", seed=0, input_shape=(6,)),
                                 Activation("tanh")])
    model.save(tmp_path / "d.npz")
    loaded = convpool.load(tmp_path / "d.npz")
    x = rng.standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
