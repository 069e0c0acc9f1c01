"""``keras.models``: the Sequential model."""

from ..models import Sequential

__all__ = ["Sequential"]
