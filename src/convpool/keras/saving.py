"""``keras.saving``: load_model and save_model (Keras's .keras and .h5 files)."""

from ..models import load_model, save_model

__all__ = ["load_model", "save_model"]
