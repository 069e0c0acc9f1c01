"""Thread count, determinism and run-time configuration.

Every output is summed in a fixed order, so results must be bitwise identical
for any thread count, batch split or layout: a promise that PyTorch,
TensorFlow, MKL and oneDNN do not make (they are reproducible at most for one
thread count and environment).
The inputs here are large enough that a call really runs on several threads:
at least 32768 multiply-adds and several work units (im2col tiles of ~48 kB,
or output rows for pooling).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import convpool
from convpool._kernels import _core
from _helpers import assert_bitwise_equal, case_id, to_layout

threadpoolctl = pytest.importorskip("threadpoolctl")

THREAD_COUNTS = (1, 2, 3, 5, 8)
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
OPENMP = convpool._config.config()["openmp"]


# ------------------------------------------------------------- set / get_num_threads
def test_set_and_get_num_threads(num_threads):
    default = convpool.get_num_threads()
    assert default >= 1
    for n in (1, 3, np.int64(2), 7):
        num_threads(n)
        assert convpool.get_num_threads() == (int(n) if OPENMP else 1)
    num_threads(None)
    assert convpool.get_num_threads() == default


@pytest.mark.parametrize(
    "value, exc, pattern",
    [
        (0, ValueError, r"n must be a positive int or None, got 0"),
        (-1, ValueError, r"n must be a positive int or None, got -1"),
        (1.5, TypeError, r"n must be a positive int or None, got 1\.5"),
        (True, TypeError, r"n must be a positive int or None, got the bool True"),
        (False, TypeError, r"got the bool False"),
        ("2", TypeError, r"n must be a positive int or None, got '2'"),
    ],
    ids=repr,
)
def test_set_num_threads_rejects(value, exc, pattern, num_threads):
    num_threads(2)
    with pytest.raises(exc, match=pattern):
        num_threads(value)
    assert convpool.get_num_threads() == (2 if OPENMP else 1), "a rejected value changed the count"


# ----------------------------------------------------------- bitwise across thread counts
CONV_CASES = [
    dict(n=2, h=64, w=64, c=16, oc=33, kernel=(3, 3), strides=1, padding="same", dilation=1,
         groups=1, dtype=np.float32, bias=True),
    dict(n=3, h=33, w=37, c=8, oc=18, kernel=(3, 2), strides=(2, 1), padding=((1, 2), (0, 1)),
         dilation=(1, 2), groups=2, dtype=np.float64, bias=False),
    dict(n=2, h=75, w=73, c=6, oc=12, kernel=(3, 3), strides=1, padding="same", dilation=1,
         groups=6, dtype=np.float32, bias=True),  # depthwise, multiplier 2
    dict(n=2, h=47, w=43, c=5, oc=17, kernel=(2, 5), strides=3, padding=2, dilation=1,
         groups=1, dtype=np.float64, bias=True),
]


def _conv_inputs(cfg, rng):
    x = rng.standard_normal((cfg["n"], cfg["h"], cfg["w"], cfg["c"])).astype(cfg["dtype"])
    kh, kw = cfg["kernel"]
    kshape = (kh, kw, cfg["c"] // cfg["groups"], cfg["oc"])
    kernel = rng.standard_normal(kshape).astype(cfg["dtype"])
    bias = rng.standard_normal(cfg["oc"]).astype(cfg["dtype"]) if cfg["bias"] else None
    kwargs = dict(strides=cfg["strides"], padding=cfg["padding"], dilation_rate=cfg["dilation"],
                  groups=cfg["groups"])
    return x, kernel, bias, kwargs


@pytest.mark.parametrize("cfg", [pytest.param(c, id=case_id(**c)) for c in CONV_CASES])
def test_conv2d_bitwise_across_thread_counts(cfg, rng, num_threads):
    x, kernel, bias, kwargs = _conv_inputs(cfg, rng)
    results = {}
    for n in THREAD_COUNTS:
        num_threads(n)
        results[n] = convpool.conv2d(x, kernel, bias, **kwargs)
    for n in THREAD_COUNTS[1:]:
        assert_bitwise_equal(results[n], results[1], cfg, what=f"{n} threads vs 1 thread")


POOL_CASES = [
    dict(n=2, h=64, w=64, c=16, pool=3, strides=2, padding="same", dtype=np.float32),
    dict(n=3, h=40, w=41, c=3, pool=(2, 3), strides=1, padding=((1, 0), (2, 1)), dtype=np.float64),
    dict(n=2, h=37, w=35, c=17, pool=(3, 2), strides=(1, 3), padding="valid", dtype=np.float32),
    dict(n=1, h=61, w=600, c=1, pool=2, strides=(2, 1), padding=1, dtype=np.float64),
]


@pytest.mark.parametrize("is_max", [True, False], ids=["max", "avg"])
@pytest.mark.parametrize("cfg", [pytest.param(c, id=case_id(**c)) for c in POOL_CASES])
def test_pools_bitwise_across_thread_counts(cfg, is_max, rng, num_threads):
    x = rng.standard_normal((cfg["n"], cfg["h"], cfg["w"], cfg["c"])).astype(cfg["dtype"])
    x.flat[::97] = np.nan  # NaN handling must not depend on the split either
    results = {}
    for n in THREAD_COUNTS:
        num_threads(n)
        if is_max:
            results[n] = convpool.max_pool2d(x, cfg["pool"], cfg["strides"], cfg["padding"])
        else:
            results[n] = convpool.avg_pool2d(x, cfg["pool"], cfg["strides"], cfg["padding"],
                                             count_include_pad=True)
    for n in THREAD_COUNTS[1:]:
        assert_bitwise_equal(results[n], results[1], cfg, what=f"{n} threads vs 1 thread")


# ------------------------------------------------------------------ batch invariance
@pytest.mark.parametrize("cfg", [pytest.param(c, id=case_id(**c)) for c in CONV_CASES[1:]])
def test_conv2d_batch_invariance(cfg, rng, num_threads):
    """f(x)[i] == f(x[i:i+1])[0] bitwise: tiles that straddle two images change nothing."""
    x, kernel, bias, kwargs = _conv_inputs(cfg, rng)
    num_threads(3)
    full = convpool.conv2d(x, kernel, bias, **kwargs)
    for i in range(x.shape[0]):
        one = convpool.conv2d(x[i:i + 1], kernel, bias, **kwargs)
        assert_bitwise_equal(full[i], one[0], cfg, what=f"sample {i} alone vs in the batch")
    split = convpool.conv2d(x[1:], kernel, bias, **kwargs)
    assert_bitwise_equal(full[1:], split, cfg, what="batch split")


@pytest.mark.parametrize("cfg", [pytest.param(c, id=case_id(**c)) for c in POOL_CASES[:3]])
def test_pools_batch_invariance(cfg, rng):
    x = rng.standard_normal((cfg["n"], cfg["h"], cfg["w"], cfg["c"])).astype(cfg["dtype"])
    for fn in (convpool.max_pool2d, convpool.avg_pool2d):
        full = fn(x, cfg["pool"], cfg["strides"], cfg["padding"])
        for i in range(x.shape[0]):
            one = fn(x[i:i + 1], cfg["pool"], cfg["strides"], cfg["padding"])
            assert_bitwise_equal(full[i], one[0], cfg, what=f"{fn.__name__} sample {i}")


# ----------------------------------------------------------------- layout invariance
@pytest.mark.parametrize("cfg", [pytest.param(c, id=case_id(**c)) for c in CONV_CASES])
def test_conv2d_layout_invariance(cfg, rng):
    x, kernel, bias, kwargs = _conv_inputs(cfg, rng)
    last = convpool.conv2d(x, kernel, bias, **kwargs)
    first = convpool.conv2d(to_layout(x, "channels_first"), kernel, bias,
                            data_format="channels_first", **kwargs)
    assert_bitwise_equal(first, to_layout(last, "channels_first"), cfg, what="NCHW vs NHWC")


@pytest.mark.parametrize("cfg", [pytest.param(c, id=case_id(**c)) for c in POOL_CASES])
def test_pools_layout_invariance(cfg, rng):
    x = rng.standard_normal((cfg["n"], cfg["h"], cfg["w"], cfg["c"])).astype(cfg["dtype"])
    xf = to_layout(x, "channels_first")
    for fn in (convpool.max_pool2d, convpool.avg_pool2d):
        last = fn(x, cfg["pool"], cfg["strides"], cfg["padding"])
        first = fn(xf, cfg["pool"], cfg["strides"], cfg["padding"], "channels_first")
        assert_bitwise_equal(first, to_layout(last, "channels_first"), cfg, what=fn.__name__)


# ------------------------------------------------------------- concurrent Python threads
def test_concurrent_calls_from_python_threads(rng):
    """Calls from several Python threads at once (pt#16828) give the serial bits."""
    cases = [_conv_inputs(c, rng) for c in CONV_CASES[1:]]
    pool_x = rng.standard_normal((2, 64, 64, 16)).astype(np.float32)
    jobs = [lambda c=c: convpool.conv2d(c[0], c[1], c[2], **c[3]) for c in cases]
    jobs += [lambda: convpool.max_pool2d(pool_x, 3, 2, "same"),
             lambda: convpool.avg_pool2d(pool_x, 3, 2, "same")]
    expected = [job() for job in jobs]
    results, errors = {}, []

    def worker(k):
        try:
            for rep in range(3):
                results[(k, rep)] = jobs[k % len(jobs)]()
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2 * len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 3 * len(threads)
    for (k, rep), got in results.items():
        assert_bitwise_equal(got, expected[k % len(jobs)], (k, rep), what="concurrent vs serial")


# ------------------------------------------------------------------------ threadpoolctl
def test_threadpool_limits_one_means_one_thread(num_threads, rng):
    if not OPENMP:
        pytest.skip("built without OpenMP: always one thread")
    default = convpool.get_num_threads()
    x, kernel, bias, kwargs = _conv_inputs(CONV_CASES[0], rng)
    outside = convpool.conv2d(x, kernel, bias, **kwargs)
    with threadpoolctl.threadpool_limits(1):
        assert convpool.get_num_threads() == 1
        inside = convpool.conv2d(x, kernel, bias, **kwargs)
        if default > 1:
            # An explicit request inside the block waits for its end.  (With a
            # default of one thread a limit of one lowers nothing, so it cannot
            # be told apart from the default: documented in convpool._threads.)
            num_threads(4)
            assert convpool.get_num_threads() == 1
    if default > 1:
        assert convpool.get_num_threads() == 4
    assert_bitwise_equal(inside, outside, "threadpool_limits(1)")
    num_threads(None)
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert convpool.get_num_threads() == 1


def _run_python(code: str, **env_over) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(env_over)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
        text=True, timeout=120,
    )


def test_threadpool_limits_wins_when_default_is_one_thread():
    proc = _run_python(
        """
        import convpool
        from threadpoolctl import threadpool_limits
        convpool.set_num_threads(4)
        with threadpool_limits(1):
            print(convpool.get_num_threads())
        """,
        OMP_NUM_THREADS="1",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1"]


# ----------------------------------------------------------------- dispatch and config
_DISPATCH_SCRIPT = """
import json, sys
sys.path.insert(0, {tests_dir!r})
import numpy as np
import convpool
from convpool import reference
from _helpers import conv_tolerance

rng = np.random.default_rng(7)
report = {{"selected": convpool.show_config()["simd_selected"]}}
for dtype in (np.float32, np.float64):
    name = np.dtype(dtype).name
    x = rng.standard_normal((2, 13, 11, 5)).astype(dtype)
    k = rng.standard_normal((3, 2, 5, 19)).astype(dtype)
    b = rng.standard_normal(19).astype(dtype)
    kw = dict(strides=(2, 1), padding="same", dilation_rate=(1, 2))
    got = convpool.conv2d(x, k, b, **kw)
    ref = reference.conv2d(x.astype(np.float64), k.astype(np.float64), b.astype(np.float64), **kw)
    tol = conv_tolerance(x, k, dtype, bias=b, **kw)
    report["conv_" + name] = bool(np.all(np.abs(got - ref) <= tol))
    xi = rng.integers(-8, 9, size=(2, 9, 10, 5)).astype(dtype)
    ki = rng.integers(-8, 9, size=(2, 3, 5, 17)).astype(dtype)
    report["conv_exact_" + name] = bool(np.array_equal(
        convpool.conv2d(xi, ki, padding=1), reference.conv2d(xi.astype(np.float64),
                                                             ki.astype(np.float64), padding=1)))
    x[0, 3, 4, :] = np.nan
    for c in (1, 3, 8, 9):
        xc = np.ascontiguousarray(x[..., :c])
        report["max_%s_c%d" % (name, c)] = bool(np.array_equal(
            convpool.max_pool2d(xc, (3, 2), 1, "same"),
            reference.max_pool2d(xc, (3, 2), 1, "same"), equal_nan=True))
        report["avg_%s_c%d" % (name, c)] = bool(np.array_equal(
            convpool.avg_pool2d(xi[..., :c], (3, 2), 1, "same"),
            reference.avg_pool2d(xi[..., :c].astype(np.float64), (3, 2), 1, "same").astype(dtype)))
    big = rng.standard_normal((2, 40, 40, 16)).astype(dtype)
    kb = rng.standard_normal((3, 3, 16, 17)).astype(dtype)
    convpool.set_num_threads(1)
    one = convpool.conv2d(big, kb, padding="same")
    convpool.set_num_threads(3)
    three = convpool.conv2d(big, kb, padding="same")
    report["threads_" + name] = bool(np.array_equal(one.view(np.uint8), three.view(np.uint8)))
print(json.dumps(report))
"""


@pytest.mark.parametrize("isa", _core.isa_names())
def test_dispatch_variant_matches_reference(isa):
    """CONVPOOL_DISPATCH forces a variant at import; it must agree with the reference."""
    if isa not in convpool._config.config()["simd_supported"]:
        pytest.skip(f"this CPU cannot run the {isa} variant")
    proc = _run_python(_DISPATCH_SCRIPT.format(tests_dir=TESTS_DIR), CONVPOOL_DISPATCH=isa)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report.pop("selected") == isa
    assert len(report) == 2 * (2 + 8 + 1)
    failed = sorted(k for k, ok in report.items() if not ok)
    assert not failed, f"CONVPOOL_DISPATCH={isa}: mismatches in {failed}"


def test_dispatch_unknown_variant_fails_at_import():
    proc = _run_python("import convpool", CONVPOOL_DISPATCH="sse9")
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr
    names = ", ".join(_core.isa_names()[::-1])
    assert f"CONVPOOL_DISPATCH='sse9' is not one of {names}" in proc.stderr


def test_dispatch_unsupported_variant_fails_at_import():
    """Forcing a variant this CPU cannot run is an ImportError, not a crash."""
    missing = [n for n in _core.isa_names() if not _core.isa_supported(n)]
    if not missing:
        pytest.skip("this CPU runs every variant")
    proc = _run_python("import convpool", CONVPOOL_DISPATCH=missing[0])
    assert proc.returncode != 0
    assert f"CONVPOOL_DISPATCH={missing[0]!r}, but this build or CPU cannot run it" in proc.stderr


def test_show_config_prints_and_returns(capsys):
    cfg = convpool.show_config()
    printed = capsys.readouterr().out
    for key in ("openmp", "simd_selected", "simd_compiled", "simd_supported", "num_threads"):
        assert key in cfg
        assert key in printed
    assert isinstance(cfg["openmp"], bool)
    assert cfg["simd_selected"] in cfg["simd_supported"]
    assert cfg["simd_selected"] in cfg["simd_compiled"]
    assert "baseline" in cfg["simd_compiled"]
    assert cfg["num_threads"] == convpool.get_num_threads()
    assert cfg["convpool"] == convpool.__version__
    want = os.environ.get("CONVPOOL_DISPATCH")
    if want:
        assert cfg["simd_selected"] == want.strip().lower()


# ------------------------------------------------------------ OpenMP waiting policy
_WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

_WAIT_SCRIPT = """
import contextlib, ctypes, hashlib, io, json, os, sys
import numpy as np

def openmp_mapped():
    with open("/proc/self/maps") as maps:
        return any(name in line for line in maps for name in ("libgomp", "libomp", "libiomp"))

preload = {preload!r}
if preload:
    ctypes.CDLL(preload, mode=ctypes.RTLD_GLOBAL)
before = openmp_mapped()
import convpool
from convpool._kernels import WAIT_POLICY
libc = ctypes.CDLL(None)
libc.getenv.restype = ctypes.c_char_p
with contextlib.redirect_stdout(io.StringIO()) as printed:
    shown = convpool.show_config()
x = np.random.default_rng(3).standard_normal((2, 40, 40, 16)).astype(np.float32)
k = np.random.default_rng(4).standard_normal((3, 3, 16, 17)).astype(np.float32)
convpool.set_num_threads(2)
y = convpool.conv2d(x, k, padding="same")
print(json.dumps({{
    "openmp_before_import": before,
    "wait_policy": WAIT_POLICY,
    "config": convpool._config.config()["openmp_wait"],
    "shown": shown.get("openmp_wait"),
    "printed": [line for line in printed.getvalue().splitlines() if "openmp_wait" in line],
    "environ": {{name: os.environ.get(name) for name in {variables!r}}},
    "c_environ": {{name: (libc.getenv(name.encode()) or b"").decode() or None
                   for name in {variables!r}}},
    "conv_sha256": hashlib.sha256(y.tobytes()).hexdigest(),
}}))
"""


def _wait_policy_child(preload: str = "", **env_over) -> dict:
    """Run the script above in a child whose environment has neither waiting
    variable except those in ``env_over``; return its report."""
    env = {k: v for k, v in os.environ.items() if k not in _WAIT_VARIABLES}
    env.update(env_over)
    proc = subprocess.run(
        [sys.executable, "-c", _WAIT_SCRIPT.format(preload=preload, variables=_WAIT_VARIABLES)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _expected_conv_sha256() -> str:
    import hashlib

    x = np.random.default_rng(3).standard_normal((2, 40, 40, 16)).astype(np.float32)
    k = np.random.default_rng(4).standard_normal((3, 3, 16, 17)).astype(np.float32)
    return hashlib.sha256(convpool.conv2d(x, k, padding="same").tobytes()).hexdigest()


needs_openmp = pytest.mark.skipif(not _core.openmp_enabled(),
                                  reason="built without OpenMP: no waiting policy")


def _assert_reported(report, policy):
    """WAIT_POLICY, config() and show_config() (returned and printed) all say ``policy``."""
    assert report["wait_policy"] == policy, report
    assert report["config"] == policy and report["shown"] == policy, report
    assert len(report["printed"]) == 1 and report["printed"][0].split(None, 1)[1] == policy, report


@needs_openmp
def test_wait_policy_default_is_convpools_short_spin():
    from convpool._kernels import SPIN_COUNT

    report = _wait_policy_child()
    if report["openmp_before_import"]:
        pytest.skip("an OpenMP runtime is loaded before convpool here (NumPy's BLAS?)")
    _assert_reported(report, f"GOMP_SPINCOUNT={SPIN_COUNT} (convpool's default)")
    # the variable was set only while libgomp loaded: gone from os.environ and from
    # the C environment (so child processes see what the user gave)
    assert report["environ"] == {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None}, report
    assert report["c_environ"] == {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None}, report
    assert report["conv_sha256"] == _expected_conv_sha256(), "the policy changed the bits"


@needs_openmp
@pytest.mark.parametrize("env, policy", [
    (dict(OMP_WAIT_POLICY="passive"), "OMP_WAIT_POLICY=passive (from the environment)"),
    (dict(GOMP_SPINCOUNT="500"), "GOMP_SPINCOUNT=500 (from the environment)"),
    (dict(OMP_WAIT_POLICY="active", GOMP_SPINCOUNT="7"),
     "OMP_WAIT_POLICY=active GOMP_SPINCOUNT=7 (from the environment)"),
], ids=["passive", "spincount", "both"])
def test_wait_policy_from_the_environment_is_kept(env, policy):
    report = _wait_policy_child(**env)
    _assert_reported(report, policy)
    # the user's own variables are left as they were, and nothing is added
    want = {name: env.get(name) for name in _WAIT_VARIABLES}
    assert report["environ"] == want and report["c_environ"] == want, report
    assert report["conv_sha256"] == _expected_conv_sha256(), "the policy changed the bits"


@needs_openmp
def test_wait_policy_when_the_runtime_was_loaded_first():
    runtime = convpool._config.config()["openmp_runtime"]
    if not os.path.isfile(runtime) or "libgomp" not in os.path.basename(runtime):
        pytest.skip(f"the OpenMP runtime is not a libgomp file here: {runtime}")
    report = _wait_policy_child(preload=runtime)
    assert report["openmp_before_import"], report
    _assert_reported(report, "the runtime's default (it was loaded before convpool)")
    assert report["environ"] == {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None}, report


def test_show_config_has_openmp_wait(capsys):
    from convpool._kernels import WAIT_POLICY

    cfg = convpool.show_config()
    assert "openmp_wait" in cfg and cfg["openmp_wait"] == WAIT_POLICY
    assert isinstance(WAIT_POLICY, str) and WAIT_POLICY
    assert any(line.startswith("openmp_wait") and line.endswith(WAIT_POLICY)
               for line in capsys.readouterr().out.splitlines())
