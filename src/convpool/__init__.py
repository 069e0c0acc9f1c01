"""convpool: fast 2-D convolution and pooling on NumPy arrays.

Compiled (Cython + C) kernels parallel over the CPU cores with OpenMP, a
plain-NumPy reference of each (:mod:`convpool.reference`), and thin Keras-style
layers.  See README.md.
"""

from . import reference
from ._config import show_config
from ._memory import get_buffer_cache, get_workspace_limit, set_buffer_cache, set_workspace_limit
from ._threads import get_num_threads, set_num_threads
from .functional import (
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    adaptive_max_pool2d,
    adaptive_max_pool2d_backward,
    avg_pool2d,
    avg_pool2d_backward,
    conv2d,
    conv2d_backward,
    conv2d_plan,
    conv2d_transpose,
    conv2d_transpose_backward,
    dense,
    dense_backward,
    global_avg_pool2d,
    global_avg_pool2d_backward,
    global_max_pool2d,
    global_max_pool2d_backward,
    lp_pool2d,
    lp_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
    max_unpool2d,
)
from . import activations, callbacks, losses, metrics, optimizers, utils
from .layers import (
    Activation,
    AvgPool2D,
    BatchNormalization,
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
from .losses import softmax_cross_entropy
from .models import Model, Sequential, load
from .optimizers import SGD, Adagrad, Adam, RMSprop
from . import keras  # noqa: E402 - Keras's namespaces over the names above

__version__ = "0.1.0"

__all__ = [
    "conv2d",
    "conv2d_plan",
    "conv2d_transpose",
    "conv2d_transpose_backward",
    "dense",
    "dense_backward",
    "max_pool2d",
    "avg_pool2d",
    "conv2d_backward",
    "max_pool2d_backward",
    "avg_pool2d_backward",
    "global_avg_pool2d",
    "global_max_pool2d",
    "global_avg_pool2d_backward",
    "global_max_pool2d_backward",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d_backward",
    "max_unpool2d",
    "lp_pool2d",
    "lp_pool2d_backward",
    "reference",
    "set_num_threads",
    "get_num_threads",
    "show_config",
    "set_buffer_cache",
    "get_buffer_cache",
    "set_workspace_limit",
    "get_workspace_limit",
    "Layer",
    "Dense",
    "Conv2D",
    "Conv2DTranspose",
    "MaxPool2D",
    "AvgPool2D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "Flatten",
    "ReLU",
    "Activation",
    "BatchNormalization",
    "Dropout",
    "Input",
    "Model",
    "Sequential",
    "load",
    "softmax_cross_entropy",
    "SGD",
    "Adam",
    "RMSprop",
    "Adagrad",
    "activations",
    "callbacks",
    "keras",
    "losses",
    "metrics",
    "optimizers",
    "utils",
]
