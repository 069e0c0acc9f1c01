"""Keras-style layers: thin wrappers that own weights and call :mod:`convpool.functional`.

Names, positional orders and default layer names follow Keras 3:
``Dense(units, activation, use_bias)``, ``Conv2D(filters, kernel_size,
strides, padding, data_format, dilation_rate, groups, activation, use_bias,
kernel_initializer, ...)``, ``MaxPool2D`` / ``AvgPool2D(pool_size, strides,
padding, data_format)``, ``Flatten``; kernels in Keras's layout, channels_last
by default.

Weights are created at the first call (or :meth:`Layer.build`) from the
input's shape by the layer's initializers (:mod:`convpool.initializers`;
default Glorot-uniform kernels, zero biases), drawn from
``numpy.random.default_rng(seed)`` (for ``seed=None``, the next generator of
:func:`convpool.utils.set_random_seed`'s seed when one is set, else fresh
entropy).  Their dtype is ``dtype`` when given, else
the compute dtype of the first input (float64 for float64 input, float32
otherwise); a later call in the other float dtype uses a cast copy.

Every layer validates its constructor arguments at once, and its input at each
call, raising ValueError / TypeError before computing anything.

Training: ``forward(x, training=True)`` keeps what ``backward(grad_out)`` needs;
``backward`` returns the gradient for the layer's input and stores the
gradients of its weights in ``.grads``, aligned with ``.weights``.
``activation="relu"`` on Conv2D and Dense applies the ReLU as the output is
written (fused into the conv kernel's store).

The layers live by family, as Keras's own ``layers/`` package: :mod:`.base`
(Layer and the shared parts), :mod:`.core` (Dense, Input), :mod:`.convolutional`,
:mod:`.pooling`, :mod:`.reshaping`, :mod:`.activation` (Activation, ReLU) and
:mod:`.regularization` (Dropout), :mod:`.normalization`
(BatchNormalization) and :mod:`.merging` (Add, Concatenate and the other
layers of several inputs, for :class:`~convpool.models.Model`).
"""

from .activation import Activation, LeakyReLU, ReLU
from .base import Layer, OptionalPair, Shape, ShapeLike, SymbolicTensor
from .convolutional import Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D
from .core import Dense, Input
from .merging import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract
from .normalization import BatchNormalization
from .pooling import AvgPool2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPool2D
from .regularization import Dropout
from .reshaping import Flatten, Reshape, UpSampling2D, ZeroPadding2D

__all__ = [
    "Layer", "Dense", "Conv2D", "Conv2DTranspose", "MaxPool2D", "AvgPool2D",
    "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten", "ReLU", "Activation", "Dropout",
    "Input", "SymbolicTensor", "BatchNormalization", "DepthwiseConv2D",
    "SeparableConv2D", "Reshape", "UpSampling2D", "ZeroPadding2D", "LAYERS",
    "OptionalPair", "Shape", "ShapeLike",
    "Add", "Average", "Concatenate", "Maximum", "Minimum", "Multiply", "Subtract",
    "LeakyReLU",
]

#: Layer classes by name, for :meth:`Sequential.save` / :func:`convpool.load`.
LAYERS: dict[str, type[Layer]] = {
    cls.__name__: cls
    for cls in (Dense, Conv2D, Conv2DTranspose, MaxPool2D, AvgPool2D, GlobalAveragePooling2D,
                GlobalMaxPooling2D, Flatten, ReLU, Activation, Dropout, Reshape, UpSampling2D,
                ZeroPadding2D, BatchNormalization, DepthwiseConv2D, SeparableConv2D,
                Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, LeakyReLU)
}
