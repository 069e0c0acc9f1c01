"""Where the random generators of layers, initializers and ``fit`` come from.

A generator is seeded by the caller's ``seed`` when one is given.  Otherwise,
after :func:`convpool.utils.set_random_seed`, it is the next child of that
seed's :class:`numpy.random.SeedSequence` (so a script that sets the seed once
draws the same weights, dropout masks and shuffles on every run, in the order
it creates them); otherwise it is seeded from the operating system's entropy.
"""

from __future__ import annotations

import threading

import numpy as np

_lock = threading.Lock()
_root: np.random.SeedSequence | None = None
_seed: int | None = None


def set_global_seed(seed: int | None) -> None:
    """Start the sequence of generators handed out for ``seed=None`` anew from
    ``seed`` (an int already checked by the caller), or end it (None)."""
    global _root, _seed
    with _lock:
        _root = None if seed is None else np.random.SeedSequence(seed)
        _seed = seed


def global_seed() -> int | None:
    """The seed given to :func:`set_global_seed`, or None."""
    return _seed


def generator(seed: int | None) -> np.random.Generator:
    """A generator for ``seed``: ``default_rng(seed)`` when given, else the next
    child of the global seed when one is set, else fresh entropy."""
    if seed is not None:
        return np.random.default_rng(seed)
    with _lock:
        child = None if _root is None else _root.spawn(1)[0]
    return np.random.default_rng(child)
