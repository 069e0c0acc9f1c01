"""``keras.callbacks``: :mod:`convpool.callbacks`."""

from ..callbacks import Callback, EarlyStopping, History, ModelCheckpoint, ReduceLROnPlateau

__all__ = ["Callback", "EarlyStopping", "History", "ModelCheckpoint", "ReduceLROnPlateau"]
