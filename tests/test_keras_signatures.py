"""Keras's positional order and default names: Conv2D and Conv2DTranspose in
Keras 3's order (convpool's earlier order still taken, deprecated), the other
layers' orders and the names Keras gives a layer by default."""

import inspect
import re
import warnings

import numpy as np
import pytest

from convpool.layers import (
    Activation,
    AvgPool2D,
    BatchNormalization,
    Conv2D,
    Conv2DTranspose,
    Dense,
    DepthwiseConv2D,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Reshape,
    SeparableConv2D,
    UpSampling2D,
    ZeroPadding2D,
)


def _no_warning(make):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return make()


def _attrs(layer):
    return (layer.strides, layer.padding, layer.data_format, layer.dilation_rate,
            getattr(layer, "groups", None), layer.activation, layer.use_bias)


# ------------------------------------------------------------------ Conv2D
def test_conv2d_takes_keras_positional_order():
    layer = _no_warning(lambda: Conv2D(8, (3, 2), (2, 1), "same", "channels_first", (1, 2), 2,
                                       "relu", False, "he_normal", "ones"))
    assert _attrs(layer) == ((2, 1), "same", "channels_first", (1, 2), 2, "relu", False)
    assert layer.get_config()["kernel_initializer"] == "he_normal"
    assert _no_warning(lambda: Conv2D(8, 3, 1, "valid", None)).data_format == "channels_last"
    assert Conv2D(8, 3).data_format == "channels_last"  # None: Keras's image_data_format


LEGACY = {  # positional values in convpool's earlier order, from the fifth on
    "d": ((2,), dict(dilation_rate=(2, 2))),
    "d-g": ((2, 2), dict(dilation_rate=(2, 2), groups=2)),
    "d-g-bias": (((1, 2), 2, False), dict(dilation_rate=(1, 2), groups=2, use_bias=False)),
    "d-g-bias-fmt": ((1, 1, True, "channels_first"), dict(data_format="channels_first")),
    "d-g-bias-fmt-act": ((3, 1, False, "channels_last", "tanh"),
                         dict(dilation_rate=(3, 3), use_bias=False, activation="tanh")),
}


@pytest.mark.parametrize("case", LEGACY, ids=LEGACY.keys())
def test_conv2d_earlier_positional_order_is_deprecated_but_works(case):
    """A fifth positional that is not a str or None is convpool's earlier
    ``dilation_rate``: the positional values are mapped to their earlier names."""
    values, want = LEGACY[case]
    with pytest.warns(DeprecationWarning, match=r"Keras's order is Conv2D\(filters, kernel_size, "
                                                r"strides, padding, data_format, dilation_rate"):
        layer = Conv2D(4, 3, 1, "same", *values)
    by_name = Conv2D(4, 3, 1, "same", **want)
    assert _attrs(layer) == _attrs(by_name)
    # With later arguments by keyword, as earlier code wrote them.
    with pytest.warns(DeprecationWarning):
        mixed = Conv2D(4, 3, 1, "same", 2, data_format="channels_first", use_bias=False)
    assert _attrs(mixed) == ((1, 1), "same", "channels_first", (2, 2), 1, None, False)
    with pytest.raises(TypeError, match="multiple values for argument 'groups'"):
        Conv2D(4, 3, 1, "same", 2, 2, groups=2)
    with pytest.raises(TypeError, match="at most 9 positional arguments"):
        Conv2D(4, 3, 1, "same", 2, 1, True, "channels_last", None, "extra")


def test_conv2d_transpose_keras_order_and_earlier_one():
    layer = _no_warning(lambda: Conv2DTranspose(4, 3, 2, "same", None, "channels_first", 2,
                                                "relu", False))
    assert (layer.data_format, layer.dilation_rate, layer.activation, layer.use_bias) == (
        "channels_first", (2, 2), "relu", False)
    with pytest.warns(DeprecationWarning, match=r"Keras's order is Conv2DTranspose\(filters, "
                                                r"kernel_size, strides, padding, output_padding, "
                                                r"data_format"):
        legacy = Conv2DTranspose(4, 3, 2, "same", None, 2, False, "relu", "channels_first")
    assert (legacy.data_format, legacy.dilation_rate, legacy.activation, legacy.use_bias) == (
        "channels_first", (2, 2), "relu", False)


def test_conv2d_earlier_order_builds_the_same_weights(rng):
    x = rng.standard_normal((1, 9, 9, 4)).astype(np.float32)
    with pytest.warns(DeprecationWarning):
        legacy = Conv2D(4, 3, 1, "same", 2, 2, True, "channels_last", "relu", seed=3)
    keras_order = Conv2D(4, 3, 1, "same", "channels_last", 2, 2, "relu", True, seed=3)
    np.testing.assert_array_equal(legacy(x), keras_order(x))


# ------------------------------------------------------------------ default names
NAMES = [
    (lambda: Dense(2), "dense"), (lambda: Conv2D(2, 2), "conv2d"),
    (lambda: Conv2DTranspose(2, 2), "conv2d_transpose"),
    (lambda: DepthwiseConv2D(2), "depthwise_conv2d"),
    (lambda: SeparableConv2D(2, 2), "separable_conv2d"),
    (lambda: MaxPool2D(), "max_pooling2d"), (lambda: AvgPool2D(2), "average_pooling2d"),
    (lambda: GlobalAveragePooling2D(), "global_average_pooling2d"),
    (lambda: GlobalMaxPooling2D(), "global_max_pooling2d"),
    (ReLU, "re_lu"), (LeakyReLU, "leaky_re_lu"), (UpSampling2D, "up_sampling2d"),
    (ZeroPadding2D, "zero_padding2d"), (BatchNormalization, "batch_normalization"),
    (Flatten, "flatten"), (lambda: Dropout(0.1), "dropout"),
    (lambda: Activation("relu"), "activation"), (lambda: Reshape((2,)), "reshape"),
]
NAME_IDS = [want for _, want in NAMES]


@pytest.mark.parametrize("make, want", NAMES, ids=NAME_IDS)
def test_default_names_are_keras_numbered(make, want):
    first, second = make().name, make().name
    pattern = rf"^{re.escape(want)}(_\d+)?$"
    assert re.match(pattern, first) and re.match(pattern, second) and first != second
    n = int(first.rsplit("_", 1)[1]) if first != want else 0
    assert second == f"{want}_{n + 1}"


def test_subclass_is_named_after_itself():
    class MyPool(MaxPool2D):
        pass

    assert MyPool().name.startswith("my_pool") and MaxPool2D().name.startswith("max_pooling2d")
    assert MaxPool2D(2, None, "valid", None, "pool").name == "pool"  # fifth, as in Keras


# ------------------------------------------------------------------ against Keras
def _keras():
    return pytest.importorskip("keras")


# convpool class, Keras class, the arguments to make one, and what convpool adds
# or lacks against Keras's positional parameters.
KERAS_LAYERS = {
    "Dense": (Dense, "Dense", (2,)),
    "Conv2D": (Conv2D, "Conv2D", (2, 2)),
    "Conv2DTranspose": (Conv2DTranspose, "Conv2DTranspose", (2, 2)),
    "DepthwiseConv2D": (DepthwiseConv2D, "DepthwiseConv2D", (2,)),
    "SeparableConv2D": (SeparableConv2D, "SeparableConv2D", (2, 2)),
    "MaxPool2D": (MaxPool2D, "MaxPool2D", ()),
    "AvgPool2D": (AvgPool2D, "AvgPool2D", (2,)),
    "GlobalAveragePooling2D": (GlobalAveragePooling2D, "GlobalAveragePooling2D", ()),
    "GlobalMaxPooling2D": (GlobalMaxPooling2D, "GlobalMaxPooling2D", ()),
    "BatchNormalization": (BatchNormalization, "BatchNormalization", ()),
    "UpSampling2D": (UpSampling2D, "UpSampling2D", ()),
    "ZeroPadding2D": (ZeroPadding2D, "ZeroPadding2D", ()),
    "LeakyReLU": (LeakyReLU, "LeakyReLU", ()),
    "ReLU": (ReLU, "ReLU", ()),
    "Flatten": (Flatten, "Flatten", ()),
    "Dropout": (Dropout, "Dropout", (0.1,)),
    "Reshape": (Reshape, "Reshape", ((2,),)),
}
#: Where convpool's positional parameters knowingly differ from Keras 3.15's:
#: (how many leading ones agree, why).
KNOWN = {
    "AvgPool2D": (4, "Keras's fifth is name; convpool's is count_include_pad"),
    "Dense": (10, "Keras's lora_rank, lora_alpha and quantization_config are not supported"),
    "BatchNormalization": (13, ("Keras's renorm, renorm_clipping, renorm_momentum and "
                                "synchronized are not supported")),
    "ReLU": (0, "Keras's max_value, negative_slope and threshold are not supported"),
}


def _positional(cls):
    return [p.name for p in inspect.signature(cls).parameters.values()
            if p.kind == p.POSITIONAL_OR_KEYWORD]


@pytest.mark.parametrize("case", KERAS_LAYERS, ids=KERAS_LAYERS.keys())
def test_positional_order_and_default_name_match_keras(case):
    k = _keras()
    ours, theirs_name, args = KERAS_LAYERS[case]
    theirs = getattr(k.layers, theirs_name)
    mine, keras_params = _positional(ours), _positional(theirs)
    agree, _why = KNOWN.get(case, (len(keras_params), ""))
    assert mine[:agree] == keras_params[:agree], (mine, keras_params)
    if case not in KNOWN:
        assert mine == keras_params
    # Keras's defaults for those parameters (convpool's may be spelled as an int
    # pair where Keras writes a tuple, which they equal).
    our_sig, their_sig = inspect.signature(ours).parameters, inspect.signature(theirs).parameters
    for name in mine[:agree]:
        if their_sig[name].default is not inspect.Parameter.empty:
            assert our_sig[name].default == their_sig[name].default, name
    strip = re.compile(r"_\d+$")
    assert strip.sub("", ours(*args).name) == strip.sub("", theirs(*args).name)
