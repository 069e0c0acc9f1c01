"""``keras.models``: the Sequential model, load_model and save_model."""

from ..models import Sequential, load_model, save_model

__all__ = ["Sequential", "load_model", "save_model"]
