"""Result buffers: alignment and recycling (convpool._memory)."""

import gc
import os
import sys

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
    assert convpool.get_buffer_cache() == {"max_bytes": 0, "cached_bytes": 0, "buffers": 0,
                                           "workspace_bytes": 0, "workspace_blocks": 0}
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


# ------------------------------------------------------------------- workspace
def _lines(nbytes):
    return -(-nbytes // 64) * 64


# The widest and tallest micro-kernel tile of any SIMD variant (the bounds
# hold for every variant; convpool._memory's docstring).
MAX_MR, MAX_NR_BYTES = 12, 128


def _conv_bound(x_shape, k_shape, groups, b, threads):
    """conv2d's documented workspace bound (convpool._memory's docstring)."""
    kh, kw, cg, oc = k_shape
    nr, k = MAX_NR_BYTES // b, kh * kw * cg
    packed = _lines(groups * (oc // groups + nr - 1) * k * b)  # ceil(ocg / NR) * NR <= ocg + NR - 1
    return packed + threads * _lines(max(48 << 10, MAX_MR * k * b))


def _conv_backward_bound(k_shape, groups, b, threads):
    kh, kw, cg, oc = k_shape
    nr, k, ocg = MAX_NR_BYTES // b, kh * kw * cg, oc // groups
    dx = _lines(kh * groups * (kw * cg + nr - 1) * ocg * b)
    dx += threads * _lines(max(64 << 10, MAX_MR * kw * cg * b))
    dw = threads * (_lines(max(512 << 10, 6 * (k + nr + ocg) * b)) + (k + nr + ocg * nr) * b + 128)
    dw += _lines(64 * (k + 1) * oc * b)
    return dx + dw


WORKSPACE_CASES = [
    ((2, 30, 40, 8), (3, 3, 8, 20), dict(padding="same")),        # ROWS
    ((2, 5, 7, 8), (3, 3, 8, 17), dict()),                       # GATHER
    ((2, 30, 40, 16), (1, 1, 16, 48), dict()),                   # POINTWISE
    ((2, 30, 40, 16), (3, 3, 1, 16), dict(groups=16)),           # DEPTHWISE
    ((1, 20, 30, 300), (3, 3, 75, 8), dict(groups=4, strides=2)),  # groups, long K
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("xs, ks, kw", WORKSPACE_CASES, ids=["rows", "gather", "pointwise",
                                                            "depthwise", "grouped"])
def test_workspace_within_documented_bounds(xs, ks, kw, dtype, rng):
    from convpool._kernels import _core

    b = np.dtype(dtype).itemsize
    threads = convpool.get_num_threads()
    x = rng.standard_normal(xs).astype(dtype)
    k = rng.standard_normal(ks).astype(dtype)
    y = convpool.conv2d(x, k, **kw)
    used = _core.last_workspace_bytes()
    assert 0 < used <= _conv_bound(xs, ks, kw.get("groups", 1), b, threads)
    convpool.conv2d_backward(y, x, k, **kw)
    used = _core.last_workspace_bytes()
    assert 0 < used <= _conv_backward_bound(ks, kw.get("groups", 1), b, threads)
    for pool in (convpool.max_pool2d, convpool.avg_pool2d):
        pool(x, (2, 3), padding="same")
        assert 0 < _core.last_workspace_bytes() <= threads * _lines(3 * max(8192, 3 * xs[3]) * b)
    convpool.max_pool2d_backward(convpool.max_pool2d(x, 2), x, 2)
    ow = xs[2] // 2
    assert 0 < _core.last_workspace_bytes() <= threads * _lines(max(xs[3] * 16, ow * xs[3] * 8))


def test_workspace_limit_raises_before_writing(rng):
    x = rng.standard_normal((2, 30, 40, 8)).astype(np.float32)
    k = rng.standard_normal((3, 3, 8, 20)).astype(np.float32)
    old = convpool.get_workspace_limit()
    out = np.full((2, 28, 38, 20), 7.0, np.float32)
    pooled = np.full((2, 15, 20, 8), 7.0, np.float32)
    try:
        convpool.set_workspace_limit(1000)
        with pytest.raises(MemoryError, match=r"conv2d needs \d+ bytes of workspace"):
            convpool.conv2d(x, k, out=out)
        with pytest.raises(MemoryError, match=r"max_pool2d needs \d+ bytes"):
            convpool.max_pool2d(x, 2, out=pooled)
        with pytest.raises(MemoryError, match=r"conv2d_backward needs \d+ bytes"):
            convpool.conv2d_backward(np.ones((2, 28, 38, 20), np.float32), x, k)
        assert (out == 7).all() and (pooled == 7).all()
    finally:
        convpool.set_workspace_limit(old)
    assert convpool.get_workspace_limit() == old
    convpool.conv2d(x, k, out=out)  # fits again
    assert not (out == 7).all()


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-5, ValueError), (2.5, TypeError),
                                      (True, TypeError)])
def test_set_workspace_limit_rejects(bad, exc):
    with pytest.raises(exc, match="max_bytes"):
        convpool.set_workspace_limit(bad)


# ------------------------------------------------------------- steady state
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and ru_minflt")
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="AddressSanitizer's allocator quarantines freed memory (tools/sanitize.sh)")
def test_training_and_predict_reach_a_fault_free_steady_state(rng):
    """After two warm-up epochs, a fit epoch and a predict call fault (almost)
    no fresh page and the resident set stays flat: activations, gradients,
    the batch and the optimizer's state all come back at the same sizes and
    reuse their memory (in a fresh process the first epoch faults thousands
    of pages)."""
    import resource

    from convpool.layers import Conv2D, Dense, Flatten, MaxPool2D

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def rss_pages():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1])

    x = rng.standard_normal((512, 28, 28, 1)).astype(np.float32)  # batches of 400 KB
    y = rng.integers(0, 10, 512)
    model = convpool.Sequential([Conv2D(32, 3, activation="relu", seed=1), MaxPool2D(2),
                                 Conv2D(64, 3, activation="relu", seed=2), MaxPool2D(2),
                                 Flatten(), Dense(10, seed=3)])
    opt = convpool.Adam()
    for epoch in range(2):
        model.fit(x, y, epochs=1, batch_size=128, optimizer=opt, verbose=False, seed=epoch)
        model.predict(x, batch_size=128)
    rss = rss_pages()
    per_epoch = []
    for epoch in range(3):
        before = faults()
        model.fit(x, y, epochs=1, batch_size=128, optimizer=opt, verbose=False, seed=epoch + 2)
        model.predict(x, batch_size=128)
        per_epoch.append(faults() - before)
    # With the buffer cache off, every steady-state epoch here faulted about
    # 9,000 pages.  A few faults may come from the interpreter's own allocations.
    assert sorted(per_epoch)[1] < 64, f"page faults per steady-state epoch: {per_epoch}"
    assert rss_pages() - rss < 256, f"RSS grew by {rss_pages() - rss} pages in 3 epochs"


# ------------------------------------------------------------- kept workspace
def _alternating_layers(rng):
    """Backward passes of two conv layers of different sizes, as a training
    step calls them, and their float64 references."""
    calls = []
    for h, c, oc in [(16, 16, 16), (8, 16, 32)]:
        x = rng.standard_normal((4, h, h, c)).astype(np.float32)
        k = (rng.standard_normal((3, 3, c, oc)) * 0.2).astype(np.float32)
        g = rng.standard_normal((4, h, h, oc)).astype(np.float32)
        calls.append((g, x, k))
    return calls


def test_workspace_blocks_are_kept_and_reused(rng):
    """After one round of calls, repeating them allocates no fresh workspace
    block (each takes a kept one), and the results are the same bits as the
    first round's, computed in fresh (zeroed) blocks."""
    calls = _alternating_layers(rng)

    def round_():
        return [convpool.conv2d_backward(g, x, k, padding="same") for g, x, k in calls]

    first = round_()
    before = convpool.get_buffer_cache()
    allocations = _core_stats()["allocations"]
    for _ in range(3):
        again = round_()
        for a, b in zip(first, again):
            for u, v in zip(a, b):
                np.testing.assert_array_equal(u, v)
    assert _core_stats()["allocations"] == allocations
    assert convpool.get_buffer_cache()["workspace_blocks"] == before["workspace_blocks"] > 0
    for (g, x, k), (gx, gk, gb) in zip(calls, first):
        want = reference.conv2d_backward(g.astype(np.float64), x.astype(np.float64),
                                         k.astype(np.float64), padding="same")
        np.testing.assert_allclose(gk, want[1], rtol=2e-4, atol=2e-4 * np.abs(want[1]).max())


def test_set_buffer_cache_zero_frees_the_workspace_blocks(rng):
    old = convpool.get_buffer_cache()["max_bytes"]
    try:
        g, x, k = _alternating_layers(rng)[0]
        convpool.conv2d_backward(g, x, k, padding="same")
        assert convpool.get_buffer_cache()["workspace_bytes"] > 0
        convpool.set_buffer_cache(0)
        assert convpool.get_buffer_cache()["workspace_bytes"] == 0
        allocations = _core_stats()["allocations"]
        convpool.conv2d_backward(g, x, k, padding="same")  # nothing kept: fresh blocks
        assert _core_stats()["allocations"] > allocations
        assert convpool.get_buffer_cache()["workspace_blocks"] == 0
    finally:
        convpool.set_buffer_cache(old)


def _core_stats():
    from convpool._kernels import _core

    return _core.workspace_stats()
