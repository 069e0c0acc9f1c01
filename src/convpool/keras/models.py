"""``keras.models``: the Sequential and functional models, load_model and save_model."""

from ..models import Model, Sequential, load_model, save_model

__all__ = ["Model", "Sequential", "load_model", "save_model"]
