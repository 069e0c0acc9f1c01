"""Shared fixtures for the pytest-benchmark suite (``pytest benchmarks/``).

Only an explicit ``pytest benchmarks/`` collects this directory: pyproject's
``testpaths`` is ``tests``, and nothing here adds to it.

The benchmark ids come from ``case_id`` in ``tests/_helpers.py`` so they read
like the test ids; this file puts ``tests/`` on ``sys.path`` for
``from _helpers import case_id``.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import convpool

_TESTS = str(Path(__file__).resolve().parents[1] / "tests")
if _TESTS not in sys.path:  # `from _helpers import case_id` under any import mode
    sys.path.insert(0, _TESTS)


@pytest.fixture(autouse=True)
def _threads_restored():
    """No benchmark may leak a ``set_num_threads`` override into the next one."""
    yield
    convpool.set_num_threads(None)


class LastInputs:
    """Arrays for one configuration at a time, built outside the timed code.

    The parametrizations list every run of one (case, dtype) next to each
    other, so each input is built once and freed before the next one is
    built: the full-HD batches are never all alive at once.
    """

    def __init__(self) -> None:
        self._key = None
        self._arrays = None

    def get(self, key, shapes, dtype):
        """Standard-normal arrays of ``shapes`` in ``dtype``, seeded from ``key``.

        Parameters
        ----------
        key : str
            Identifies the configuration (the case id); same key, same arrays.
        shapes : sequence of tuple
        dtype : dtype-like

        Returns
        -------
        tuple of ndarray, C-contiguous
        """
        if key != self._key:
            self.clear()  # free the previous arrays before allocating new ones
            rng = np.random.default_rng(zlib.crc32(key.encode()))
            self._arrays = tuple(rng.standard_normal(s, dtype=np.dtype(dtype)) for s in shapes)
            self._key = key
        return self._arrays

    def clear(self) -> None:
        self._key = None
        self._arrays = None


@pytest.fixture(scope="module")
def inputs():
    """A :class:`LastInputs` for the module, emptied when the module ends."""
    cache = LastInputs()
    yield cache
    cache.clear()


@pytest.fixture
def record_rate(benchmark):
    """Record ``extra_info[name] = amount / median seconds / 1e9`` after the run.

    Call it after ``benchmark.pedantic``: ``record_rate("gflops", flops)``.
    Also stores the median in ``extra_info["median_s"]``.  Under
    ``--benchmark-disable`` (the function ran once, untimed) it records nothing.
    """

    def record(name: str, amount: float) -> None:
        stats = getattr(benchmark, "stats", None)
        if stats is None:
            return
        median = float(stats.stats.median)
        benchmark.extra_info["median_s"] = median
        benchmark.extra_info[name] = amount / median / 1e9 if median > 0 else float("inf")

    return record
