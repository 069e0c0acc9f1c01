"""max_pool2d / avg_pool2d benchmarks: convpool's kernels against the NumPy reference.

Run with ``pytest benchmarks/ --benchmark-only`` (see benchmarks/README.md).
One benchmark group per operation and workload (``max_pool2d-<name>``,
``avg_pool2d-<name>``); ids come from ``case_id`` (``tests/_helpers.py``) plus
``impl=``.  Inputs are built outside the timed code, once per (case, dtype);
every call allocates its output.

``extra_info`` holds ``bytes`` (input read once plus output written once),
``gbps`` (bytes over the median time, in 1e9/s), ``median_s`` and ``threads``.
The assertions are cheap (shape, dtype); correctness lives in ``tests/``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

import convpool  # noqa: E402
from _helpers import case_id  # noqa: E402  (benchmarks/conftest.py puts tests/ on sys.path)
from _bench import fullhd_batch  # noqa: E402
from convpool import reference  # noqa: E402



#: Batch of the full-HD 2x2 pools (the seed uses 64).
BATCH = fullhd_batch()

IMPLS = {
    "max": {"convpool": convpool.max_pool2d, "reference": reference.max_pool2d},
    "avg": {"convpool": convpool.avg_pool2d, "reference": reference.avg_pool2d},
}
DTYPES = (np.float32, np.float64)

# name -> (geometry for case_id, fullhd, rounds for convpool, rounds for reference)
CASES = {
    "fullhd-2x2": (dict(n=BATCH, h=1920, w=1080, c=3, pool=2, strides=2, padding="valid"),
                   True, 5, 0),
    "3x3s2-same-c3": (dict(n=8, h=112, w=112, c=3, pool=3, strides=2, padding="same"),
                      False, 50, 10),
    "3x3s2-same-c64": (dict(n=8, h=112, w=112, c=64, pool=3, strides=2, padding="same"),
                       False, 20, 5),
}


def _params(op):
    out = []
    for name, (geom, fullhd, _, _) in CASES.items():
        for dtype in DTYPES:
            cfg = dict(geom, dtype=np.dtype(dtype), data_format="channels_last")
            if op == "avg":
                cfg["cip"] = False
            group = pytest.mark.benchmark(group=f"{op}_pool2d-{name}")
            out.append(pytest.param(name, cfg, "convpool", marks=group,
                                    id=case_id(**cfg, impl="convpool")))
            marks = [group]
            if fullhd:
                marks.append(pytest.mark.skip(reason="the NumPy reference is too slow on full-HD"))
            out.append(pytest.param(name, cfg, "reference", marks=marks,
                                    id=case_id(**cfg, impl="reference")))
    return out


def _out_shape(cfg):
    k, s = cfg["pool"], cfg["strides"]
    if cfg["padding"] == "same":
        oh, ow = -(-cfg["h"] // s), -(-cfg["w"] // s)
    else:
        oh, ow = (cfg["h"] - k) // s + 1, (cfg["w"] - k) // s + 1
    return (cfg["n"], oh, ow, cfg["c"])


def _run(op, benchmark, inputs, record_rate, name, cfg, impl):
    _, _, rounds_fast, rounds_ref = CASES[name]
    geom = {k: v for k, v in cfg.items() if k != "cip"}  # max and avg share the inputs
    (x,) = inputs.get(case_id(**geom), [(cfg["n"], cfg["h"], cfg["w"], cfg["c"])], cfg["dtype"])
    kwargs = dict(strides=cfg["strides"], padding=cfg["padding"], data_format=cfg["data_format"])
    if op == "avg":
        kwargs["count_include_pad"] = cfg["cip"]
    shape = _out_shape(cfg)
    nbytes = x.nbytes + int(np.prod(shape)) * x.itemsize
    benchmark.extra_info.update(bytes=nbytes, impl=impl, threads=convpool.get_num_threads()
                                if impl == "convpool" else None)

    y = benchmark.pedantic(IMPLS[op][impl], args=(x, cfg["pool"]), kwargs=kwargs,
                           warmup_rounds=1, iterations=1,
                           rounds=rounds_fast if impl == "convpool" else rounds_ref)

    record_rate("gbps", nbytes)
    assert y.shape == shape, (y.shape, case_id(**cfg))
    assert y.dtype == cfg["dtype"], (y.dtype, case_id(**cfg))


@pytest.mark.parametrize("name, cfg, impl", _params("max"))
def test_max_pool2d(benchmark, inputs, record_rate, name, cfg, impl):
    _run("max", benchmark, inputs, record_rate, name, cfg, impl)


@pytest.mark.parametrize("name, cfg, impl", _params("avg"))
def test_avg_pool2d(benchmark, inputs, record_rate, name, cfg, impl):
    _run("avg", benchmark, inputs, record_rate, name, cfg, impl)
