"""Shared fixtures.  Pure helpers live in ``_helpers.py`` (``from _helpers import ...``)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import convpool
from convpool import _random
from convpool._kernels import _core

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


@pytest.fixture(autouse=True)
def _global_seed_cleared():
    """No test may leak a ``convpool.utils.set_random_seed`` into the next one."""
    yield
    _random.set_global_seed(None)


def _runnable(name: str) -> bool:
    return _core.isa_compiled(name) and _core.isa_supported(name)


@pytest.fixture(params=_core.isa_names())
def isa(request):
    """Each ISA variant of the C registry in turn, selected in this process.

    A variant this build lacks or this CPU cannot run is skipped (on a CPU
    without AVX-512 the avx512 cases skip).  The variant selected at import is
    restored however the test ends.
    """
    name = request.param
    if not _runnable(name):
        pytest.skip(f"the {name} variant is not compiled here or this CPU cannot run it")
    old = _core.isa_selected()
    _core.isa_select(name)
    try:
        yield name
    finally:
        _core.isa_select(old)


@pytest.fixture
def simd_isas():
    """Every runnable SIMD variant (all but the baseline): their results must be
    bitwise equal.  Skips the test when fewer than two run here."""
    names = [n for n in _core.isa_names() if n != "baseline" and _runnable(n)]
    if len(names) < 2:
        pytest.skip(f"only {names} of the SIMD variants run on this CPU")
    old = _core.isa_selected()
    try:
        yield names
    finally:
        _core.isa_select(old)
