"""Result buffers: alignment and recycling (convpool._memory)."""

import gc

import numpy as np
import pytest

import convpool
from convpool import _memory, reference


@pytest.fixture
def small_cache(monkeypatch):
    """Recycle results from 64 KiB up, with a 16 MiB cache, for one test."""
    monkeypatch.setattr(_memory, "MIN_CACHED_BYTES", 64 << 10)
    old = convpool.get_buffer_cache()["max_bytes"]
    convpool.set_buffer_cache(16 << 20)
    convpool.set_buffer_cache(0)  # start empty
    convpool.set_buffer_cache(16 << 20)
    yield
    convpool.set_buffer_cache(0)
    convpool.set_buffer_cache(old)


def _pool_input(rng, n=2):
    return rng.standard_normal((n, 128, 128, 8)).astype(np.float32)  # 1 MiB in, 256 KiB out


def test_results_are_cache_line_aligned(rng):
    for shape in [(1, 5, 7, 3), (3, 64, 64, 16)]:
        y = convpool.max_pool2d(rng.standard_normal(shape).astype(np.float32), 1)
        assert y.ctypes.data % 64 == 0 and y.flags.c_contiguous and y.flags.writeable


def test_dropped_result_is_reused_and_correct(rng, small_cache):
    x = _pool_input(rng)
    y = convpool.max_pool2d(x, 2)
    assert convpool.get_buffer_cache()["buffers"] == 0
    del y
    gc.collect()
    assert convpool.get_buffer_cache()["buffers"] == 1
    z = convpool.avg_pool2d(x, 2)  # the same size: takes the cached buffer
    assert convpool.get_buffer_cache()["buffers"] == 0
    np.testing.assert_allclose(z, reference.avg_pool2d(x, 2), rtol=1e-6, atol=1e-7)
    assert z.ctypes.data % 64 == 0


def test_live_results_never_share_memory(rng, small_cache):
    x = _pool_input(rng)
    results = [convpool.max_pool2d(x, 2) for _ in range(3)]
    del results[1]
    gc.collect()
    results.append(convpool.max_pool2d(x, 2))  # reuses the dropped one only
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            assert not np.shares_memory(results[i], results[j])


def test_a_view_keeps_the_buffer(rng, small_cache):
    """A view of a dropped result still owns its memory: nothing may reuse it."""
    x = _pool_input(rng)
    y = convpool.max_pool2d(x, 2)
    view = y[1, ::2]
    expected = view.copy()
    del y
    gc.collect()
    assert convpool.get_buffer_cache()["buffers"] == 0  # still in use by the view
    other = convpool.max_pool2d(-x, 2)  # same size: must get fresh memory
    assert not np.shares_memory(other, view)
    np.testing.assert_array_equal(view, expected)
    del view
    gc.collect()
    assert convpool.get_buffer_cache()["buffers"] == 1


def test_cache_limit_and_disable(rng, small_cache):
    x = _pool_input(rng, n=8)  # 1 MiB results
    ys = [convpool.max_pool2d(x, 2) for _ in range(20)]
    del ys
    gc.collect()
    state = convpool.get_buffer_cache()
    assert 0 < state["cached_bytes"] <= 16 << 20
    convpool.set_buffer_cache(0)
    assert convpool.get_buffer_cache() == {"max_bytes": 0, "cached_bytes": 0, "buffers": 0}
    y = convpool.max_pool2d(x, 2)  # without the cache: a plain aligned array
    del y
    gc.collect()
    assert convpool.get_buffer_cache()["buffers"] == 0


def test_results_through_out_and_layouts_still_work(rng, small_cache):
    x = rng.standard_normal((2, 8, 130, 130)).astype(np.float32)  # NCHW
    y = convpool.max_pool2d(x, 2, data_format="channels_first")
    assert y.shape == (2, 8, 65, 65) and y.flags.c_contiguous
    np.testing.assert_array_equal(y, reference.max_pool2d(x, 2, data_format="channels_first"))


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_set_buffer_cache_rejects(bad, exc):
    with pytest.raises(exc, match="max_bytes"):
        convpool.set_buffer_cache(bad)
