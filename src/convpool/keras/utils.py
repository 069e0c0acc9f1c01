"""``keras.utils``: :func:`to_categorical`, :func:`set_random_seed`, :func:`get_random_seed`."""

from ..utils import get_random_seed, set_random_seed, to_categorical

__all__ = ["get_random_seed", "set_random_seed", "to_categorical"]
