"""Sequential: a stack of layers, with Keras's count_params and summary.

``summary()`` also reports what the seed tutorial reasons about: for every
layer, its receptive field on the network input (how many input pixels one
output value sees) and its jump (the distance on the input between
neighbouring outputs, i.e. the product of the strides so far).  Pooling grows
the receptive field without adding a parameter; a Dense after Flatten sees the
whole input.

The package is split as Keras's ``models``: :mod:`.sequential` (the stack),
:mod:`.functional` (``Model(inputs, outputs)``, a graph of layers),
:mod:`.base` (what the two share), :mod:`.training` (predict, evaluate,
fit), :mod:`.summary` (the table), :mod:`.saving` (``.npz`` files) and
:mod:`.keras_format` (Keras's ``.keras`` and ``.h5`` files: :func:`load_model`,
:func:`save_model`).
"""

from .functional import Model
from .keras_format import load_model, save_model
from .saving import load
from .sequential import Sequential
from .summary import SummaryRow, SummaryTable

__all__ = ["Model", "Sequential", "SummaryRow", "SummaryTable", "load", "load_model",
           "save_model"]
