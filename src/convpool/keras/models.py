"""``keras.models``: the Sequential and functional models."""

from ..models import Model, Sequential

__all__ = ["Model", "Sequential"]
