"""Shared fixtures.  Pure helpers live in ``_helpers.py`` (``from _helpers import ...``)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import convpool

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # make `from _helpers import ...` work under any import mode
    sys.path.insert(0, _HERE)


@pytest.fixture
def rng(request):
    """A NumPy Generator seeded from the test's node id: reproducible, distinct per test."""
    seed = sum(ord(ch) * (i + 1) for i, ch in enumerate(request.node.nodeid)) % (2**32)
    return np.random.default_rng(seed)


@pytest.fixture
def num_threads():
    """``convpool.set_num_threads``, with the default restored however the test ends."""
    try:
        yield convpool.set_num_threads
    finally:
        convpool.set_num_threads(None)


@pytest.fixture(autouse=True)
def _threads_restored():
    """No test may leak a thread-count override into the next one."""
    yield
    convpool.set_num_threads(None)
