"""``keras.layers``: convpool's layers under Keras's names (the aliases included)."""

from ..layers import (
    Activation,
    Add,
    Average,
    Concatenate,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    BatchNormalization,
    AvgPool2D,
    Conv2D,
    Conv2DTranspose,
    Dense,
    DepthwiseConv2D,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    Input,
    Layer,
    MaxPool2D,
    ReLU,
    Reshape,
    SeparableConv2D,
    UpSampling2D,
    ZeroPadding2D,
)

#: Keras's other spellings of the same layers.
MaxPooling2D = MaxPool2D
AveragePooling2D = AvgPool2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D

__all__ = [
    "Add", "Average", "Concatenate", "Maximum", "Minimum", "Multiply", "Subtract",
    "Activation", "AvgPool2D", "BatchNormalization", "AveragePooling2D", "Conv2D", "Conv2DTranspose", "Dense",
    "DepthwiseConv2D",
    "Dropout", "Flatten", "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPool2D",
    "GlobalMaxPooling2D", "Input", "Layer", "MaxPool2D", "MaxPooling2D", "ReLU", "Reshape",
    "SeparableConv2D",
    "UpSampling2D", "ZeroPadding2D",
]
