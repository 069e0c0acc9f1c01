"""Keras's namespaces over convpool's own classes: port a Keras script by
rewriting its imports only.

========================================= ==========================================
Keras                                     convpool
========================================= ==========================================
``import keras``                          ``from convpool import keras``
``from tensorflow import keras``          ``from convpool import keras``
``from keras import layers``              ``from convpool.keras import layers``
``from keras.layers import Conv2D``       ``from convpool.keras.layers import Conv2D``
``from tensorflow.keras.X import Y``      ``from convpool.keras.X import Y``
========================================= ==========================================

Everything here is the same object as convpool's own API (``keras.layers.Conv2D
is convpool.Conv2D``): no second implementation.  The submodules are
:mod:`.layers`, :mod:`.models`, :mod:`.activations`, :mod:`.optimizers`,
:mod:`.losses`, :mod:`.metrics`, :mod:`.callbacks`, :mod:`.saving`, :mod:`.utils`
and :mod:`.initializers`.  README.md ("Keras scripts on convpool") lists what
is covered and what is not yet.
"""

from . import (activations, callbacks, initializers, layers, losses, metrics, models, optimizers,
               saving, utils)
from .layers import Input, Layer
from .models import Model, Sequential

__all__ = ["Input", "Layer", "Model", "Sequential", "activations", "callbacks", "initializers",
           "layers", "losses", "metrics", "models", "optimizers", "saving", "utils"]
