"""Keras scripts run on convpool with only their imports rewritten.

Each script below is Keras code as its authors wrote it (keras.io's "Simple
MNIST convnet", and a script in the style of the tally's binary classifiers),
with the dataset lines replaced by generated data, since nothing can be
downloaded here.  The test rewrites its import lines, checks that nothing
else changed, runs it, and checks what it learned.
"""

import re

import numpy as np
import pytest

# keras.io/examples/vision/mnist_convnet (Keras 3), its data lines replaced.
MNIST_CONVNET = '''
import numpy as np
import keras
from keras import layers

num_classes = 10
input_shape = (28, 28, 1)

(x_train, y_train), (x_test, y_test) = make_data()

x_train = x_train.astype("float32") / 255
x_test = x_test.astype("float32") / 255
x_train = np.expand_dims(x_train, -1)
x_test = np.expand_dims(x_test, -1)
print("x_train shape:", x_train.shape)

y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
)

model.summary()

batch_size = 128
epochs = 4

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])

history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1)

score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])
'''

# The tally's other common shape: Sequential.add with input_shape=, an
# Activation layer with a sigmoid unit, binary cross-entropy, RMSprop and callbacks.
BINARY_CLASSIFIER = '''
from tensorflow import keras
from tensorflow.keras.models import Sequential
from tensorflow.keras.layers import Conv2D, MaxPooling2D, Flatten, Dense, Dropout, Activation
from tensorflow.keras.callbacks import EarlyStopping, ReduceLROnPlateau
from tensorflow.keras.optimizers import RMSprop

(x_train, y_train), (x_val, y_val) = make_data()

model = Sequential()
model.add(Conv2D(16, (3, 3), padding="same", input_shape=(16, 16, 1)))
model.add(Activation("relu"))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Flatten())
model.add(Dense(32))
model.add(Activation("relu"))
model.add(Dropout(0.25))
model.add(Dense(1))
model.add(Activation("sigmoid"))

model.compile(loss="binary_crossentropy", optimizer=RMSprop(learning_rate=1e-3),
              metrics=["accuracy"])
callbacks = [EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True),
             ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2)]
history = model.fit(x_train, y_train, batch_size=32, epochs=12,
                    validation_data=(x_val, y_val), callbacks=callbacks, verbose=2)
loss, acc = model.evaluate(x_val, y_val, verbose=0)
print("val accuracy", acc)
'''

# keras.io/examples/vision/autoencoder (Keras 3): the functional conv
# autoencoder with Conv2DTranspose, its dataset lines replaced (its plots left out).
AUTOENCODER = '''
import numpy as np

from keras import layers
from keras.models import Model


def preprocess(array):
    array = array.astype("float32") / 255.0
    array = np.reshape(array, (len(array), 28, 28, 1))
    return array


(train_data, _), (test_data, _) = make_data()

train_data = preprocess(train_data)
test_data = preprocess(test_data)

input = layers.Input(shape=(28, 28, 1))

# Encoder
x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(input)
x = layers.MaxPooling2D((2, 2), padding="same")(x)
x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(x)
x = layers.MaxPooling2D((2, 2), padding="same")(x)

# Decoder
x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
x = layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)

# Autoencoder
autoencoder = Model(input, x)
autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
autoencoder.summary()

autoencoder.fit(
    x=train_data,
    y=train_data,
    epochs=50,
    batch_size=128,
    shuffle=True,
    validation_data=(test_data, test_data),
)

predictions = autoencoder.predict(test_data)
'''

_IMPORT = re.compile(r"^(\s*)(import keras\b|from tensorflow import keras\b|"
                     r"from (?:tensorflow\.)?keras(\.[\w.]+)? import )")


def port(script):
    """Rewrite a Keras script's import lines for convpool, and only those."""
    out = []
    for line in script.splitlines():
        m = _IMPORT.match(line)
        if m is None:
            out.append(line)
        elif m.group(2).startswith("import keras"):
            out.append(line.replace("import keras", "from convpool import keras", 1))
        elif m.group(2).startswith("from tensorflow import keras"):
            out.append(line.replace("from tensorflow import keras", "from convpool import keras", 1))
        else:
            out.append(re.sub(r"from (?:tensorflow\.)?keras", "from convpool.keras", line, count=1))
    return "\n".join(out)


def _changed_lines(before, after):
    return [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]


def test_port_changes_import_lines_only():
    for script in (MNIST_CONVNET, BINARY_CLASSIFIER, AUTOENCODER):
        ported = port(script)
        changed = _changed_lines(script, ported)
        assert changed and all("import" in a and "convpool" in b for a, b in changed)
        assert len(ported.splitlines()) == len(script.splitlines())


def _digits(rng, n, size=28):
    """Ten classes of 28x28 uint8 glyphs: a bar at one of five positions, horizontal
    or vertical, with jitter and noise (a stand-in for MNIST, which cannot be
    downloaded here)."""
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, size, size)).astype(np.float64)
    for i, label in enumerate(labels):
        pos = 3 + 5 * (label % 5) + rng.integers(-1, 2)
        start, length = rng.integers(2, 8), rng.integers(14, 19)
        if label < 5:
            images[i, pos : pos + 3, start : start + length] += 180
        else:
            images[i, start : start + length, pos : pos + 3] += 180
    return np.clip(images, 0, 255).astype(np.uint8), labels


def test_mnist_convnet_runs_with_its_imports_rewritten(rng, capsys):
    def make_data():
        return _digits(rng, 2400), _digits(rng, 600)

    scope = {"make_data": make_data}
    exec(compile(port(MNIST_CONVNET), "mnist_convnet.py", "exec"), scope)
    printed = capsys.readouterr().out
    model, history, score = scope["model"], scope["history"], scope["score"]
    assert model.count_params() == 34826  # keras.io's summary says 34,826
    assert "Total params: 34,826" in printed and "Epoch 4/4" in printed
    assert "x_train shape: (2400, 28, 28, 1)" in printed
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 4
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert isinstance(score, list) and len(score) == 2
    assert score[1] >= 0.95, f"test accuracy {score[1]:.3f}"


def test_binary_classifier_with_callbacks_runs_with_its_imports_rewritten(rng, capsys):
    def make_data():
        def batch(n):
            y = rng.integers(0, 2, n)
            x = rng.normal(0, 0.3, (n, 16, 16, 1)).astype(np.float32)
            for i, label in enumerate(y):  # a bright square top-left or bottom-right
                r = 2 if label == 0 else 10
                x[i, r : r + 4, r : r + 4, 0] += 1.5
            return x, y.astype(np.float32)
        return batch(600), batch(200)

    scope = {"make_data": make_data}
    exec(compile(port(BINARY_CLASSIFIER), "binary.py", "exec"), scope)
    printed = capsys.readouterr().out
    history, acc = scope["history"], scope["acc"]
    assert 1 <= len(history.epoch) <= 12 and "val_loss" in history.history
    assert "learning_rate" in history.history  # ReduceLROnPlateau's log
    assert " - val_accuracy: " in printed  # verbose=2: one line per epoch
    assert acc >= 0.95, f"validation accuracy {acc:.3f}"
    assert scope["model"].layers[-1].activation == "sigmoid"


def test_functional_conv_autoencoder_runs_with_its_imports_rewritten(rng, capsys):
    def make_data():
        return (_digits(rng, 256)[0], None), (_digits(rng, 64)[0], None)

    scope = {"make_data": make_data}
    exec(compile(port(AUTOENCODER), "autoencoder.py", "exec"), scope)
    printed = capsys.readouterr().out
    model, test_data = scope["autoencoder"], scope["test_data"]
    assert "Connected to" in printed and "Epoch 50/50" in printed
    assert model.count_params() == 28353  # keras.io's summary says 28,353
    predictions = scope["predictions"]
    assert predictions.shape == test_data.shape

    # It learned to reconstruct: 100 Adam steps bring the error well below
    # predicting every pixel's mean (about 0.6 of it; tf.keras's loss curve on
    # these images is the same to two digits).
    baseline = float(np.mean((scope["train_data"].mean() - test_data) ** 2))
    assert float(np.mean((predictions - test_data) ** 2)) < 0.75 * baseline


def test_fused_softmax_cross_entropy_is_stable_where_the_chain_rule_is_not(rng):
    """A saturated softmax output: the fused (p - t)/N gradient stays finite
    and equals the chain rule's where that one is finite."""
    from convpool import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax",
                                                                    seed=0)])
    model.layers[0].set_weights([np.eye(4, 3, dtype=np.float32) * 60, np.zeros(3, np.float32)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                  loss="categorical_crossentropy")
    x = np.array([[1, 0, 0, 0]], np.float32)  # p = softmax(60, 0, 0): p[1] underflows
    y = np.array([[0, 1, 0]], np.float32)
    history = model.fit(x, y, epochs=1, batch_size=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert not np.array_equal(model.get_weights()[0], np.eye(4, 3, dtype=np.float32) * 60)


def test_compile_fit_evaluate_argument_errors(rng):
    from convpool import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['metric'\\]"):
        model.compile(loss="mse", metric=["accuracy"])
    model.compile(loss="mse", optimizer="sgd", run_eagerly=True)  # Keras's options: ignored
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    assert isinstance(model.evaluate(x, y, verbose=0), float)  # no metric: the loss alone
    assert set(model.evaluate(x, y, verbose=0, return_dict=True)) == {"loss"}
    with pytest.raises(ValueError, match="does not support sample_weight"):
        model.fit(x, y, sample_weight=np.ones(8), verbose=0)
    with pytest.raises(ValueError, match="x and y must have the same length"):
        model.fit(x, y[:5], verbose=0)
    with pytest.raises(ValueError, match="validation_split=0.9 of 8 samples leaves 0 for training"):
        model.fit(x, y, validation_split=0.9, verbose=0)
    bare = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    bare.compile(optimizer="adam")
    with pytest.raises(ValueError, match="compiled without a loss"):
        bare.fit(x, y, verbose=0)
