"""``keras.optimizers``: :mod:`convpool.optimizers`."""

from ..optimizers import SGD, Adagrad, Adam, Optimizer, RMSprop, get

__all__ = ["Adagrad", "Adam", "Optimizer", "RMSprop", "SGD", "get"]
