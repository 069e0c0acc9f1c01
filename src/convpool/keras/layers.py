"""``keras.layers``: convpool's layers under Keras's names (the aliases included)."""

from ..layers import (
    Activation,
    AvgPool2D,
    Conv2D,
    Conv2DTranspose,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    Input,
    Layer,
    MaxPool2D,
    ReLU,
)

#: Keras's other spellings of the same layers.
MaxPooling2D = MaxPool2D
AveragePooling2D = AvgPool2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D

__all__ = [
    "Activation", "AvgPool2D", "AveragePooling2D", "Conv2D", "Conv2DTranspose", "Dense",
    "Dropout", "Flatten", "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPool2D",
    "GlobalMaxPooling2D", "Input", "Layer", "MaxPool2D", "MaxPooling2D", "ReLU",
]
