"""Every example of the seed tutorial (docs/seed-tutorial.md), in convpool.

The tutorial's code is TensorFlow; each test runs the same steps with convpool
and checks the shapes, weight shapes and parameter counts it prints.
"""

import numpy as np
import pytest

from convpool import Conv2D, Dense, Flatten, MaxPool2D, Sequential
from convpool.__main__ import validate


def test_dense_two_steps_squeeze():
    # Steps 1 and 2 of the first example: Dense(1) twice, squeezing the last axis after each.
    boxes = np.zeros((64, 4, 2), np.float32)
    first = Dense(units=1, use_bias=False)
    first_out = np.squeeze(first(boxes), axis=-1)
    assert boxes.shape == (64, 4, 2)
    assert first_out.shape == (64, 4)
    assert first.weights[0].shape == (2, 1)
    second = Dense(units=1, use_bias=False)
    second_out = np.squeeze(second(first_out), axis=-1)
    assert second_out.shape == (64,)
    assert second.weights[0].shape == (4, 1)


@pytest.mark.parametrize("use_bias, total", [(False, 13), (True, 18)], ids=["no_bias-13", "bias-18"])
def test_dense_three_steps_parameter_count(use_bias, total):
    boxes = np.zeros((64, 4, 2), np.float32)
    first = Dense(units=3, use_bias=use_bias)
    first_out = first(boxes)
    assert first_out.shape == (64, 4, 3)
    assert first.weights[0].shape == (2, 3)
    second = Dense(units=1, use_bias=use_bias)
    second_out = np.squeeze(second(first_out), axis=-1)
    assert second_out.shape == (64, 4)
    assert second.weights[0].shape == (3, 1)
    third = Dense(units=1, use_bias=use_bias)
    third_out = np.squeeze(third(second_out), axis=-1)
    assert third_out.shape == (64,)
    assert third.weights[0].shape == (4, 1)
    assert first.count_params() + second.count_params() + third.count_params() == total


def test_fullhd_conv_flatten_dense_shapes_and_counts():
    """The full-HD Conv2D example, on a real (zero) batch of 64 as in the tutorial."""
    pic = np.zeros((64, 1920, 1080, 3), np.float32)
    conv_layer = Conv2D(filters=16, kernel_size=(5, 5), strides=5, use_bias=False)
    conv_out = conv_layer(pic)
    assert conv_out.shape == (64, 384, 216, 16)
    assert conv_layer.count_params() == 1200
    assert not conv_out.any()  # zeros in, zeros out
    flatten_out = Flatten()(conv_out)
    assert flatten_out.shape == (64, 1327104)
    linear_layer = Dense(units=1, use_bias=False)
    linear_out = linear_layer(flatten_out)
    assert linear_out.shape == (64, 1)
    assert linear_layer.count_params() == 1327104


def test_pooling_grows_receptive_field_without_parameters():
    model = Sequential(
        [Conv2D(16, (5, 5), strides=5, use_bias=False), MaxPool2D(2), Flatten(), Dense(1, use_bias=False)],
        input_shape=(None, 1920, 1080, 3),
    )
    table = model.summary_table()
    conv, pool, flat, dense = table.rows
    assert conv["output_shape"] == (None, 384, 216, 16) and conv["params"] == 1200
    assert conv["receptive_field"] == (5, 5) and conv["jump"] == (5, 5)
    # Pooling: no parameters, and the receptive field doubles (2 positions 5 apart + 5).
    assert pool["params"] == 0
    assert pool["receptive_field"] == (10, 10) and pool["jump"] == (10, 10)
    assert flat["output_shape"] == (None, 192 * 108 * 16)
    # After Flatten, a Dense output sees the whole frame.
    assert dense["receptive_field"] is None and dense["whole_input"] == (1920, 1080)
    assert dense["params"] == 192 * 108 * 16
    assert table.total_params == model.count_params() == 1200 + 192 * 108 * 16


@pytest.mark.fullhd
def test_fullhd_batch_validates_against_reference(capsys):
    """`python -m convpool validate` on the seed's full batch: convpool agrees with the reference."""
    status = validate(["--repeat", "1", "--seed", "3"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "(64, 384, 216, 16), 1200 parameters" in printed
    assert "RESULT: convpool agrees with the reference" in printed
