"""conv2d benchmarks: convpool's kernels against the NumPy reference.

Run with ``pytest benchmarks/ --benchmark-only`` (see benchmarks/README.md).
One benchmark group per workload (``conv2d-<name>``); ids come from
``case_id`` (``tests/_helpers.py``) plus ``impl=`` and, for the thread-scaling
case, ``threads=``.  Inputs are built outside the timed code, once per
(case, dtype); every call allocates its output, as a user's call would.

``extra_info`` holds ``flops`` (2 per multiply-add), ``gflops`` (flops over the
median time, in 1e9/s), ``median_s`` and ``threads``.  The assertions are cheap
(shape, dtype); correctness lives in ``tests/``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

import convpool  # noqa: E402
from _helpers import case_id  # noqa: E402  (benchmarks/conftest.py puts tests/ on sys.path)
from _bench import fullhd_batch  # noqa: E402
from convpool import reference  # noqa: E402



#: Batch of the full-HD 5x5/5 conv (the seed uses 64); the 3x3 same conv,
#: 6x more work per image, uses a quarter of it.
BATCH = fullhd_batch()

IMPLS = {"convpool": convpool.conv2d, "reference": reference.conv2d}
DTYPES = (np.float32, np.float64)

# name -> (geometry for case_id, fullhd, rounds for convpool, rounds for reference)
CASES = {
    "fullhd-5x5s5": (
        dict(n=BATCH, h=1920, w=1080, c=3, oc=16, kernel=5, strides=5, padding="valid",
             dilation=1, groups=1),
        True, 5, 0,
    ),
    "fullhd-3x3-same": (
        dict(n=max(1, BATCH // 4), h=1920, w=1080, c=3, oc=16, kernel=3, strides=1,
             padding="same", dilation=1, groups=1),
        True, 5, 0,
    ),
    "3x3-same-64x64": (
        dict(n=8, h=112, w=112, c=64, oc=64, kernel=3, strides=1, padding="same",
             dilation=1, groups=1),
        False, 20, 3,
    ),
    "1x1-64x128": (
        dict(n=8, h=112, w=112, c=64, oc=128, kernel=1, strides=1, padding="valid",
             dilation=1, groups=1),
        False, 20, 5,
    ),
    "depthwise3x3-same-64": (
        dict(n=8, h=112, w=112, c=64, oc=64, kernel=3, strides=1, padding="same",
             dilation=1, groups=64),
        False, 20, 3,
    ),
    "3x3-d2s2g4-32x64": (
        dict(n=4, h=56, w=56, c=32, oc=64, kernel=3, strides=2, padding="same",
             dilation=2, groups=4),
        False, 50, 10,
    ),
}

#: The case measured at 1 and 2 threads (convpool only) instead of the default count.
THREADS_CASE = "3x3-same-64x64"
THREADS = (1, 2)


def _params():
    """Every (case, dtype) once per impl (and thread count), adjacent so inputs are reused."""
    out = []
    for name, (geom, fullhd, _, _) in CASES.items():
        for dtype in DTYPES:
            cfg = dict(geom, dtype=np.dtype(dtype), data_format="channels_last")
            group = pytest.mark.benchmark(group=f"conv2d-{name}")
            threads = THREADS if name == THREADS_CASE else (None,)
            for t in threads:
                extra = {} if t is None else {"threads": t}
                out.append(pytest.param(name, cfg, "convpool", t, marks=group,
                                        id=case_id(**cfg, **extra, impl="convpool")))
            marks = [group]
            if fullhd:
                marks.append(pytest.mark.skip(reason="the NumPy reference is too slow on full-HD"))
            out.append(pytest.param(name, cfg, "reference", None, marks=marks,
                                    id=case_id(**cfg, impl="reference")))
    return out


def _pair(v):
    return (v, v) if np.ndim(v) == 0 else tuple(v)


def _out_shape(cfg):
    kh, kw = _pair(cfg["kernel"])
    sh, sw = _pair(cfg["strides"])
    dh, dw = _pair(cfg["dilation"])
    if cfg["padding"] == "same":
        oh, ow = -(-cfg["h"] // sh), -(-cfg["w"] // sw)
    else:
        oh = (cfg["h"] - dh * (kh - 1) - 1) // sh + 1
        ow = (cfg["w"] - dw * (kw - 1) - 1) // sw + 1
    return (cfg["n"], oh, ow, cfg["oc"])


def _flops(cfg):
    kh, kw = _pair(cfg["kernel"])
    n, oh, ow, oc = _out_shape(cfg)
    return 2 * n * oh * ow * oc * kh * kw * (cfg["c"] // cfg["groups"])


@pytest.mark.parametrize("name, cfg, impl, threads", _params())
def test_conv2d(benchmark, inputs, record_rate, name, cfg, impl, threads):
    _, _, rounds_fast, rounds_ref = CASES[name]
    kh, kw = _pair(cfg["kernel"])
    x, kernel = inputs.get(
        case_id(**cfg),
        [(cfg["n"], cfg["h"], cfg["w"], cfg["c"]), (kh, kw, cfg["c"] // cfg["groups"], cfg["oc"])],
        cfg["dtype"],
    )
    kwargs = dict(strides=cfg["strides"], padding=cfg["padding"], dilation_rate=cfg["dilation"],
                  groups=cfg["groups"], data_format=cfg["data_format"])
    if threads is not None:
        convpool.set_num_threads(threads)
    fn = IMPLS[impl]
    flops = _flops(cfg)
    benchmark.extra_info.update(flops=flops, impl=impl, threads=convpool.get_num_threads()
                                if impl == "convpool" else None)

    y = benchmark.pedantic(fn, args=(x, kernel), kwargs=kwargs, warmup_rounds=1, iterations=1,
                           rounds=rounds_fast if impl == "convpool" else rounds_ref)

    record_rate("gflops", flops)
    assert y.shape == _out_shape(cfg), (y.shape, case_id(**cfg))
    assert y.dtype == cfg["dtype"], (y.dtype, case_id(**cfg))
