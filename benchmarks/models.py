"""Whole small CNNs, predict and train: convpool against tf.keras and PyTorch.

    python benchmarks/models.py                          # every net, both tasks, every installed library
    python benchmarks/models.py --quick                  # 1/10 of the images, 1 round: a smoke test
    python benchmarks/models.py --nets mnist --tasks train --impls convpool torch --rounds 5
    python benchmarks/models.py --profile                # convpool only: per-layer times of one training step

Nets (float32, NHWC for convpool and Keras; PyTorch runs NCHW tensors in the
channels_last memory format, so it sees the same bytes in the same order):

- mnist: Keras's "Simple MNIST convnet" without its dropout: Conv 32 3x3 relu,
  MaxPool 2, Conv 64 3x3 relu, MaxPool 2, Flatten, Dense 10; 28x28x1, batch 128,
  6,400 images.
- cifar: VGG-style: Conv 32, Conv 32, MaxPool, Conv 64, Conv 64, MaxPool,
  Conv 128, MaxPool, Flatten, Dense 10 (3x3 'same' relu convs); 32x32x3,
  batch 64, 2,560 images.
- mobilenet: Conv 32 3x3 stride 2 relu, then three depthwise-separable blocks
  (depthwise 3x3 relu, pointwise 1x1 relu: 32->64, 64->128, MaxPool, 128->128,
  MaxPool), Flatten, Dense 10; 32x32x3, batch 64, 2,560 images.

Tasks: ``predict`` (the library's batched inference over every image) and
``train`` (one epoch of Adam, lr 1e-3, softmax cross-entropy on logits with
integer labels, samples shuffled each epoch).  Every library gets the same
data: ``numpy.random.default_rng(0)``, standard normal images, labels in
[0, 10).  Each library draws its own initial weights.

Isolated mode (the only timing mode): for each (net, task), each round starts
one fresh process per library (``--worker``), the libraries taking turns in an
order that alternates between rounds (forward in odd rounds, reversed in even
ones).  A worker imports NumPy and that one library, sets its thread count,
builds the net, warms up (a predict on two batches; a fit on three batches,
which also makes Keras trace its train function and every optimizer create
its state), then times ``--calls`` runs of the task back to back and keeps
the fastest.  The table quotes the median over rounds of those.  Workers
report as compare.py's do (an ``@@RESULT`` JSON line); the helpers come from
compare.py.

``--profile`` runs convpool alone, in this process: the layers' forward and
backward passes, the loss, the metric and the optimizer step of one training
step, each timed on its own (median over steps), mirroring Sequential.fit.

Writes ``models.txt``, ``models.json`` and ``models.png`` (matplotlib) into
``--out`` (``models_profile.txt`` / ``.json`` with ``--profile``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # compare.py is a script in this folder, not a package module
    sys.path.insert(0, HERE)

from compare import _cpu_model, _cpu_name, _installed, _print_result, _result_line  # noqa: E402

# ---------------------------------------------------------------- the nets
# A net is a list of layer specs, built by each library below:
#   ("conv", name, filters, kernel, stride, padding)   Conv2D + ReLU
#   ("dw", name, kernel, stride, padding)              depthwise conv (groups = channels) + ReLU
#   ("pool", name, size)                               MaxPool size x size, stride size
#   ("flatten", name)
#   ("dense", name, units)                             no activation: the logits
# Every layer has a bias.  Padding is "valid" or "same" (TensorFlow's rule).


def _conv(name, filters, k, stride=1, padding="same"):
    return ("conv", name, filters, k, stride, padding)


NETS = {
    "mnist": dict(
        title="Keras simple MNIST convnet (no dropout)", input=(28, 28, 1), batch=128, images=6400,
        layers=[_conv("conv1", 32, 3, padding="valid"), ("pool", "pool1", 2),
                _conv("conv2", 64, 3, padding="valid"), ("pool", "pool2", 2),
                ("flatten", "flatten"), ("dense", "dense", 10)]),
    "cifar": dict(
        title="VGG-style CIFAR net", input=(32, 32, 3), batch=64, images=2560,
        layers=[_conv("conv1", 32, 3), _conv("conv2", 32, 3), ("pool", "pool1", 2),
                _conv("conv3", 64, 3), _conv("conv4", 64, 3), ("pool", "pool2", 2),
                _conv("conv5", 128, 3), ("pool", "pool3", 2),
                ("flatten", "flatten"), ("dense", "dense", 10)]),
    "mobilenet": dict(
        title="MobileNet-style depthwise-separable net", input=(32, 32, 3), batch=64, images=2560,
        layers=[_conv("conv1", 32, 3, stride=2),
                ("dw", "dw1", 3, 1, "same"), _conv("pw1", 64, 1, padding="valid"),
                ("dw", "dw2", 3, 1, "same"), _conv("pw2", 128, 1, padding="valid"),
                ("pool", "pool1", 2),
                ("dw", "dw3", 3, 1, "same"), _conv("pw3", 128, 1, padding="valid"),
                ("pool", "pool2", 2),
                ("flatten", "flatten"), ("dense", "dense", 10)]),
}
TASKS = ("predict", "train")
IMPLS = ("convpool", "convpool-direct", "tensorflow", "torch")
CLASSES = 10
PREDICT_WARMUP_BATCHES = 2
TRAIN_WARMUP_BATCHES = 3
WORKER_TIMEOUT_S = 1800  # a worker that hangs is dropped, not waited for
# The rest of the machine's CPU seconds per wall second above which a timed run
# counts as disturbed by other jobs (a 2-core host where another job holds a
# core reads about 1).
DISTURBED = 0.1
# Variables that change how the libraries' thread pools behave, shown as given.
THREAD_ENV_PREFIXES = ("OMP_", "GOMP_", "OPENBLAS_", "MKL_", "KMP_")


def _out_size(size, k, stride, padding):
    return -(-size // stride) if padding == "same" else (size - k) // stride + 1


def net_shapes(net):
    """Per layer: (output shape without the batch axis, parameter count), from the specs alone."""
    h, w, c = net["input"]
    out = []
    for spec in net["layers"]:
        kind = spec[0]
        if kind == "conv":
            _, _, f, k, s, p = spec
            params = k * k * c * f + f
            h, w, c = _out_size(h, k, s, p), _out_size(w, k, s, p), f
            out.append(((h, w, c), params))
        elif kind == "dw":
            _, _, k, s, p = spec
            out.append(((_out_size(h, k, s, p), _out_size(w, k, s, p), c), k * k * c + c))
            h, w = out[-1][0][:2]
        elif kind == "pool":
            h, w = h // spec[2], w // spec[2]
            out.append(((h, w, c), 0))
        elif kind == "flatten":
            c, h, w = h * w * c, None, None
            out.append(((c,), 0))
        elif kind == "dense":
            out.append(((spec[2],), c * spec[2] + spec[2]))
            c = spec[2]
        else:
            raise ValueError(f"unknown layer kind {kind!r}")
    return out


def net_params(net):
    return sum(p for _, p in net_shapes(net))


def make_data(net, images):
    """The same images and labels for every library: default_rng(0), NHWC float32, int64 labels."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((images, *net["input"]), dtype=np.float32)
    y = rng.integers(0, CLASSES, images, dtype=np.int64)
    return x, y


# ------------------------------------------------------------ the libraries
# Each build_<impl>(net, threads, info) sets the library's threads, builds the
# net and returns a Runner; ``info`` collects what the report records (thread
# counts as the library reports them, versions, build options).
class Runner:
    """A net in one library: predict(x), train_epoch(x, y) and its parameter count."""

    def __init__(self, predict, train_epoch, params):
        self.predict = predict
        self.train_epoch = train_epoch
        self.params = params


def build_convpool(net, threads, info, algorithm="auto"):
    import contextlib
    import io

    import convpool
    from convpool.layers import Conv2D, Dense, Flatten, MaxPool2D
    from convpool.models import Sequential
    from convpool.optimizers import Adam

    convpool.set_num_threads(threads)
    # NumPy's BLAS threads too, for whatever runs on NumPy's matmul (Dense did, before
    # convpool had a GEMM of its own).
    _limit_blas(threads, info)
    with contextlib.redirect_stdout(io.StringIO()):
        cfg = convpool.show_config()
    info.update(simd=cfg.get("simd_selected"), openmp=cfg.get("openmp"),
                threads=convpool.get_num_threads())
    if cfg.get("openmp_wait"):  # how libgomp's idle threads wait (spin count), where reported
        info["openmp_wait"] = cfg["openmp_wait"]
    model = Sequential(convpool_layers(net, Conv2D, Dense, Flatten, MaxPool2D, algorithm),
                       input_shape=(None, *net["input"]), name=net["name"])
    optimizer = Adam(learning_rate=1e-3)
    bs = net["batch"]

    def predict(x):
        return model.predict(x, batch_size=bs)

    def train_epoch(x, y):
        model.fit(x, y, epochs=1, batch_size=bs, optimizer=optimizer, shuffle=True, verbose=False)

    return Runner(predict, train_epoch, model.count_params())


def build_convpool_direct(net, threads, info):
    """convpool with every conv on its direct (exact-order) algorithms: no Winograd."""
    return build_convpool(net, threads, info, algorithm="direct")


def convpool_layers(net, Conv2D, Dense, Flatten, MaxPool2D, algorithm="auto"):
    """convpool layers for the specs (the classes passed in, so --profile and the worker
    share it); ``algorithm`` is the Conv2D layers' (auto: Winograd where it pays)."""
    layers = []
    c = net["input"][2]
    for i, spec in enumerate(net["layers"]):
        kind, name = spec[0], spec[1]
        if kind == "conv":
            _, _, f, k, s, p = spec
            layers.append(Conv2D(f, k, strides=s, padding=p, activation="relu", name=name, seed=i,
                                 algorithm=algorithm))
            c = f
        elif kind == "dw":
            _, _, k, s, p = spec
            layers.append(Conv2D(c, k, strides=s, padding=p, groups=c, activation="relu", name=name,
                                 seed=i))
        elif kind == "pool":
            layers.append(MaxPool2D(spec[2], name=name))
        elif kind == "flatten":
            layers.append(Flatten(name=name))
        elif kind == "dense":
            layers.append(Dense(spec[2], name=name, seed=i))
    return layers


def _limit_blas(threads, info):
    """Hold NumPy's BLAS to ``threads`` for the rest of the process (threadpoolctl, if installed)."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        info["blas"] = "threadpoolctl not installed: NumPy's BLAS keeps its default threads"
        return
    global _BLAS_LIMIT
    _BLAS_LIMIT = threadpool_limits(threads, user_api="blas")
    info["blas"] = [{k: i.get(k) for k in ("internal_api", "num_threads", "architecture")}
                    for i in threadpool_info() if i.get("user_api") == "blas"]


_BLAS_LIMIT = None  # kept alive: the limit lasts while the object does


def build_tensorflow(net, threads, info):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf

    # Before any TF op: TF fixes its thread pools at the first one.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    keras.utils.set_random_seed(0)
    layers = [keras.Input(shape=net["input"])]
    for spec in net["layers"]:
        kind, name = spec[0], spec[1]
        if kind == "conv":
            _, _, f, k, s, p = spec
            layers.append(keras.layers.Conv2D(f, k, strides=s, padding=p, activation="relu", name=name))
        elif kind == "dw":
            _, _, k, s, p = spec
            layers.append(keras.layers.DepthwiseConv2D(k, strides=s, padding=p, activation="relu",
                                                       name=name))
        elif kind == "pool":
            layers.append(keras.layers.MaxPooling2D(spec[2], name=name))
        elif kind == "flatten":
            layers.append(keras.layers.Flatten(name=name))
        elif kind == "dense":
            layers.append(keras.layers.Dense(spec[2], name=name))
    model = keras.Sequential(layers, name=net["name"])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    bs = net["batch"]
    info.update(intra_op=tf.config.threading.get_intra_op_parallelism_threads(),
                inter_op=tf.config.threading.get_inter_op_parallelism_threads(),
                keras=keras.__version__, backend=keras.backend.backend(),
                jit_compile=bool(getattr(model, "jit_compile", False)))

    def predict(x):
        return model.predict(x, batch_size=bs, verbose=0)

    def train_epoch(x, y):
        model.fit(x, y, batch_size=bs, epochs=1, verbose=0, shuffle=True)

    return Runner(predict, train_epoch, model.count_params())


def build_torch(net, threads, info):
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError as e:  # only allowed before any inter-op work
        info["interop_error"] = str(e)
    torch.manual_seed(0)
    mods = []
    c = net["input"][2]
    shapes = net_shapes(net)
    for j, spec in enumerate(net["layers"]):
        kind = spec[0]
        if kind in ("conv", "dw"):
            if kind == "conv":
                _, _, f, k, s, p = spec
                groups = 1
            else:
                _, _, k, s, p = spec
                f, groups = c, c
            # 'same' as k // 2 on both sides: equal to TensorFlow's rule at stride 1.  At
            # stride 2 on an even size (mobilenet's conv1) TF pads 0 before and 1 after,
            # PyTorch 1 and 1 (then drops the last padded column): same shape, same work.
            pad = k // 2 if p == "same" else 0
            mods += [nn.Conv2d(c, f, k, stride=s, padding=pad, groups=groups), nn.ReLU(inplace=True)]
            c = f
        elif kind == "pool":
            mods.append(nn.MaxPool2d(spec[2]))
        elif kind == "flatten":
            # Flattens in (C, H, W) order where convpool and Keras flatten (H, W, C): the
            # Dense weights' rows are permuted, which changes neither their count nor the
            # work.  (On a channels_last tensor this reshape is a copy.)
            mods.append(nn.Flatten())
        elif kind == "dense":
            (in_features,) = shapes[j - 1][0]  # the Flatten's output
            mods.append(nn.Linear(in_features, spec[2]))
    model = nn.Sequential(*mods).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)  # Keras's epsilon
    bs = net["batch"]
    gen = torch.Generator().manual_seed(0)
    info.update(threads=torch.get_num_threads(), interop=torch.get_num_interop_threads(),
                mkldnn=torch.backends.mkldnn.is_available())
    # torch.from_numpy shares the NumPy array's memory (no copy), once per call.  The
    # tensor stays NHWC, so xt[i:j] and xt[idx] are NHWC batches and .permute(0, 3, 1, 2)
    # turns each into an NCHW tensor in the channels_last memory format, without a copy.

    def predict(x):
        xt = torch.from_numpy(x)
        model.eval()
        with torch.inference_mode():
            out = [model(xt[i : i + bs].permute(0, 3, 1, 2)) for i in range(0, len(xt), bs)]
            return torch.cat(out).numpy()

    def train_epoch(x, y):
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), bs):
            idx = order[i : i + bs]
            xb = xt[idx].permute(0, 3, 1, 2)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yt[idx])
            loss.backward()
            optimizer.step()

    return Runner(predict, train_epoch, sum(p.numel() for p in model.parameters()))


BUILDERS = {"convpool": build_convpool, "convpool-direct": build_convpool_direct,
            "tensorflow": build_tensorflow, "torch": build_torch}
# Top-level modules each library needs (looked up, not imported, by the main process).
MODULES = {"convpool": ["convpool"], "convpool-direct": ["convpool"],
           "tensorflow": ["tensorflow", "keras"], "torch": ["torch"]}


def available_impls(requested):
    found = []
    for name in requested:
        missing = [m for m in MODULES[name] if not _installed(m)]
        if missing:
            print(f"  ({name}: {', '.join(missing)} not installed: skipped)", file=sys.stderr)
            continue
        found.append(name)
    return found


# ------------------------------------------------------------------ worker
def _threads_alive():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _machine_busy_s():
    """CPU seconds every process on the machine has spent so far (/proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait.
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


def _worker_main():
    """One (net, task, library, round): build, warm up, time `calls` runs; print @@RESULT."""
    spec = json.load(sys.stdin)
    net = dict(NETS[spec["net"]], name=spec["net"])
    bs = net["batch"]
    x, y = make_data(net, spec["images"])
    info = {}
    t0 = time.perf_counter()
    runner = BUILDERS[spec["impl"]](net, spec["threads"], info)
    built = time.perf_counter()
    expected = net_params(net)
    if runner.params != expected:
        raise SystemExit(f"{spec['impl']} built {runner.params:,} parameters for {spec['net']}, "
                         f"the specs give {expected:,}")
    if spec["task"] == "predict":
        out = runner.predict(x[: PREDICT_WARMUP_BATCHES * bs])
        if tuple(out.shape) != (PREDICT_WARMUP_BATCHES * bs, CLASSES):
            raise SystemExit(f"{spec['impl']}: predict gave shape {tuple(out.shape)}")

        def task():
            runner.predict(x)
    else:
        k = TRAIN_WARMUP_BATCHES * bs
        runner.train_epoch(x[:k], y[:k])

        def task():
            runner.train_epoch(x, y)
    warm = time.perf_counter()
    times, cpu, others = [], [], []
    for _ in range(spec["calls"]):
        m0, c0, w0 = _machine_busy_s(), time.process_time(), time.perf_counter()
        task()
        w1, c1, m1 = time.perf_counter(), time.process_time(), _machine_busy_s()
        times.append(w1 - w0)
        cpu.append((c1 - c0) / (w1 - w0))  # CPU seconds of every thread per wall second
        # What the rest of the machine ran meanwhile (other users' jobs on a shared host);
        # /proc/stat counts in clock ticks (10 ms), so short runs read coarsely.
        others.append(None if m0 is None else max(0.0, (m1 - m0) - (c1 - c0)) / (w1 - w0))
    _print_result(dict(times=times, cpu_per_wall=cpu, others_per_wall=others,
                       params=runner.params, info=info,
                       import_build_s=built - t0, warmup_s=warm - built,
                       threads_alive=_threads_alive(), since_start_s=time.perf_counter() - T_START))


T_START = time.perf_counter()


def run_worker(net_name, task, impl, threads, calls, images):
    """One fresh worker process; returns (result dict or None, error text)."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    spec = dict(net=net_name, task=task, impl=impl, threads=threads, calls=calls, images=images)
    try:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker"], check=False,
                              input=json.dumps(spec), capture_output=True, text=True, env=env,
                              timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, f"no answer in {WORKER_TIMEOUT_S} s"
    res = _result_line(proc.stdout)
    if proc.returncode != 0 or res is None:
        return None, f"exit code {proc.returncode}: {proc.stderr.strip()[-2000:]}"
    return res, ""


def time_isolated(nets, tasks, impls, threads, rounds, calls, scale, progress):
    """{(net, task): result} from fresh workers; libraries alternate their order between rounds."""
    results = []
    for net_name in nets:
        net = NETS[net_name]
        images = max(net["batch"], round(net["images"] * scale / net["batch"]) * net["batch"])
        for task in tasks:
            per = {impl: [] for impl in impls}
            dropped = {}
            for r in range(rounds):
                order = impls if r % 2 == 0 else impls[::-1]
                for impl in order:
                    if impl in dropped:
                        continue
                    progress(f"{net_name} {task}: round {r + 1}/{rounds} {impl}")
                    res, err = run_worker(net_name, task, impl, threads, calls, images)
                    if res is None:
                        print(f"\n  ({impl} failed on {net_name} {task}: dropped)\n{err}",
                              file=sys.stderr)
                        dropped[impl] = err.splitlines()[-1] if err else "failed"
                        continue
                    per[impl].append(res)
            entry = dict(net=net_name, task=task, images=images, batch=net["batch"],
                         params=net_params(net), rounds={}, best={}, median={}, spread={},
                         params_by_impl={}, cpu_per_wall={}, others_per_wall={}, import_build_s={},
                         warmup_s={}, threads_alive={}, disturbed={}, info={}, workers={},
                         dropped=dropped)
            for impl, runs in per.items():
                if not runs or impl in dropped:
                    continue
                best = [min(r["times"]) for r in runs]
                entry["rounds"][impl] = [r["times"] for r in runs]
                entry["best"][impl] = best
                entry["median"][impl] = statistics.median(best)
                entry["spread"][impl] = max(best) / min(best) if len(best) > 1 else None
                entry["params_by_impl"][impl] = runs[0]["params"]
                fastest = [r["times"].index(min(r["times"])) for r in runs]
                entry["cpu_per_wall"][impl] = statistics.median(
                    r["cpu_per_wall"][j] for r, j in zip(runs, fastest, strict=True))
                others = [r["others_per_wall"][j] for r, j in zip(runs, fastest, strict=True)]
                entry["others_per_wall"][impl] = (None if None in others
                                                  else statistics.median(others))
                entry["disturbed"][impl] = (None if None in others
                                            else sum(o > DISTURBED for o in others))
                entry["workers"][impl] = [{k: v for k, v in r.items() if k != "info"} for r in runs]
                entry["import_build_s"][impl] = statistics.median(r["import_build_s"] for r in runs)
                entry["warmup_s"][impl] = statistics.median(r["warmup_s"] for r in runs)
                entry["threads_alive"][impl] = runs[0]["threads_alive"]
                entry["info"][impl] = runs[0]["info"]
            counts = set(entry["params_by_impl"].values())
            assert counts <= {entry["params"]}, (
                f"parameter counts differ on {net_name}: {entry['params_by_impl']} "
                f"(specs: {entry['params']})")
            results.append(entry)
    return results


# ---------------------------------------------------------------- report
def _versions(impls):
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    dists = {"numpy": ["numpy"], "convpool": ["convpool"], "torch": ["torch"],
             "tensorflow": ["tensorflow-cpu", "tensorflow"], "keras": ["keras"]}
    for name, candidates in dists.items():
        lib = "tensorflow" if name == "keras" else name
        if lib in IMPLS and lib not in impls:
            continue
        for dist in candidates:
            try:
                out[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                pass
    return out


def machine_info(threads):
    model = _cpu_model() or {}
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    return dict(cpu=_cpu_name(), cpu_model=model, cpus=os.cpu_count(), usable_cpus=usable,
                threads=threads, platform=platform.platform(),
                thread_env={k: v for k, v in sorted(os.environ.items())
                            if k.startswith(THREAD_ENV_PREFIXES)},
                load_average_start=os.getloadavg())


def _header(command, machine, versions):
    m = machine["cpu_model"]
    fam = (f" ({m.get('vendor_id')} family {m.get('cpu family')} model {m.get('model')} stepping "
           f"{m.get('stepping')})") if m else ""
    env = ", ".join(f"{k}={v}" for k, v in machine["thread_env"].items()) or (
        "none set (" + ", ".join(p + "*" for p in THREAD_ENV_PREFIXES) + ")")
    load = ", ".join(f"{x:.2f}" for x in machine["load_average_start"])
    lines = [f"command: {command}",
             (f"machine: {machine['cpu']}{fam}; {machine['cpus']} CPUs ({machine['usable_cpus']} "
              f"usable); {machine['threads']} threads per library; load average at start {load}"),
             "versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
             f"threading environment: {env}"]
    return lines


def render(results, machine, versions, impls, args, command):
    lines = _header(command, machine, versions)
    lines.append(
        f"method: isolated: a fresh process per (net, task, library, round); {args.rounds} round(s), "
        f"the libraries in turn, in an order alternating between rounds; each process warms up "
        f"(predict: {PREDICT_WARMUP_BATCHES} batches; train: a fit on {TRAIN_WARMUP_BATCHES} "
        f"batches), times {args.calls} run(s) of the task back to back and keeps the fastest; "
        f"'s' = median over rounds of those; 'spread' = max / min over rounds; 'convpool / best "
        f"peer' = convpool's s over the fastest other library's s (> 1: convpool is slower)")
    for name in dict.fromkeys(r["net"] for r in results):
        net = NETS[name]
        shapes = net_shapes(net)
        lines.append(f"net {name}: {net['title']}, input {net['input']}, {net_params(net):,} "
                     f"parameters in every library; output shapes "
                     + " -> ".join("x".join(map(str, s)) for s, _ in shapes))
    cols = [i for i in impls if any(i in r["median"] for r in results)]
    head = f"{'net':<10}{'task':<9}{'images':>7}{'batch':>6}"
    head += "".join(f"{i + ' s':>14}{'spread':>8}" for i in cols)
    head += f"{'convpool / best peer':>22}"
    lines += ["", head, "-" * len(head)]
    for r in results:
        row = f"{r['net']:<10}{r['task']:<9}{r['images']:>7}{r['batch']:>6}"
        for i in cols:
            if i in r["median"]:
                sp = r["spread"][i]
                row += f"{r['median'][i]:>14.3f}" + (f"{sp:>8.2f}" if sp is not None else f"{'-':>8}")
            else:
                row += f"{'-':>14}{'':>8}"
        peers = [v for k, v in r["median"].items() if not k.startswith("convpool")]
        if "convpool" in r["median"] and peers:
            row += f"{r['median']['convpool'] / min(peers):>22.2f}"
        lines.append(row.rstrip())
        for impl, why in r["dropped"].items():
            lines.append(f"  {impl} dropped on {r['net']} {r['task']}: {why}")
    counts = [(n, len(r["best"][i])) for r in results for i, n in r["disturbed"].items()
              if n is not None]
    hit = sum(n for n, _ in counts)
    if hit:
        lines.append(f"NOTE: other jobs disturbed {hit} of {sum(t for _, t in counts)} timed rounds "
                     f"(the rest of the machine ran over {DISTURBED} CPU s per wall s; see "
                     f"'disturbed' below): these times are not quotable")
    lines += ["", ("per worker, median over rounds: import + build s; warm-up s (Keras traces its "
                   "functions here); in the fastest timed run, the worker's CPU s / wall s (about "
                   "the threads it kept busy) and the rest of the machine's ('others': other "
                   f"jobs); 'disturbed' = rounds whose 'others' exceeded {DISTURBED}; threads "
                   "alive at the end; the library's own settings")]
    head2 = (f"{'net':<10}{'task':<9}{'library':<12}{'import+build s':>15}{'warm-up s':>11}"
             f"{'CPU/wall':>10}{'others':>8}{'disturbed':>11}{'threads':>9}  settings")
    lines += [head2, "-" * len(head2)]
    for r in results:
        for i in cols:
            if i not in r["median"]:
                continue
            info = r["info"][i]
            settings = ", ".join(f"{k}={v}" for k, v in info.items() if k != "blas")
            lines.append(f"{r['net']:<10}{r['task']:<9}{i:<12}{r['import_build_s'][i]:>15.2f}"
                         f"{r['warmup_s'][i]:>11.2f}{r['cpu_per_wall'][i]:>10.2f}"
                         f"{_num(r['others_per_wall'][i]):>8}{_disturbed(r, i):>11}"
                         f"{r['threads_alive'][i] or '-':>9}  {settings}")
    return "\n".join(lines)


def _num(value, fmt=".2f"):
    return "-" if value is None else format(value, fmt)


def _disturbed(result, impl):
    n = result["disturbed"].get(impl)
    return "-" if n is None else f"{n}/{len(result['best'][impl])}"


def chart(results, impls, path, threads):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (matplotlib not installed: no chart)", file=sys.stderr)
        return False
    cols = [i for i in impls if any(i in r["median"] for r in results)]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(results) + 2), 4.8))
    width = 0.8 / max(1, len(cols))
    xs = np.arange(len(results))
    top = 1.0
    for j, impl in enumerate(cols):
        rel, secs = [], []
        for r in results:
            best = min(r["median"].values()) if r["median"] else math.nan
            s = r["median"].get(impl, math.nan)
            rel.append(s / best)
            secs.append(s)
        top = max([top] + [v for v in rel if not math.isnan(v)])
        bars = ax.bar(xs + j * width, rel, width, label=impl)
        for b, s in zip(bars, secs, strict=True):
            if not math.isnan(s):
                ax.annotate(f"{s:.2f}s", (b.get_x() + b.get_width() / 2, b.get_height()),
                            ha="center", va="bottom", fontsize=7, rotation=90,
                            xytext=(0, 2), textcoords="offset points")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_ylim(0, top * 1.25)
    ax.set_xticks(xs + width * (len(cols) - 1) / 2)
    ax.set_xticklabels([f"{r['net']}\n{r['task']} ({r['images']} img)" for r in results])
    ax.set_ylabel("time / fastest library's time (lower is faster)")
    ax.set_title(f"Whole-model predict and train, float32, {threads} threads, isolated processes "
                 f"(median over rounds)", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --------------------------------------------------------------- profile
def profile_net(net_name, threads, steps, warmup):
    """convpool's training step on one net, piece by piece, as Sequential.fit runs it.

    fit's step: ``out = model.forward(x[idx], training=True)`` (each layer's
    ``forward(x, training=True)``); ``value, grad = loss_fn(out, y[idx])``;
    ``model.backward(grad)`` (each layer's ``backward(grad, input_grad=i > 0)``,
    last to first, a max pool after a fused ReLU taking the gradient through
    it and the layer before it then ``pre_activation=True``);
    ``optimizer.apply(model.weights, model.grads)``; then its running
    accuracy.  Each piece is timed on its own; the medians over
    ``steps`` steps (after ``warmup`` untimed ones) are returned.
    """
    import convpool
    import convpool.models as cp_models
    from convpool.layers import Conv2D, Dense, Flatten, MaxPool2D
    from convpool.losses import LOSSES
    from convpool.models import Sequential
    from convpool.optimizers import Adam

    convpool.set_num_threads(threads)
    net = dict(NETS[net_name], name=net_name)
    bs = net["batch"]
    total = warmup + steps
    x, y = make_data(net, total * bs)
    model = Sequential(convpool_layers(net, Conv2D, Dense, Flatten, MaxPool2D),
                       input_shape=(None, *net["input"]), name=net_name)
    optimizer = Adam(learning_rate=1e-3)
    loss_fn = LOSSES["softmax_cross_entropy"]  # fit's default loss
    accuracy = getattr(cp_models, "_accuracy", None)  # fit's running metric, where it still is
    # Sequential.backward's pairing of a max pool with the ReLU before it, where it exists
    pools_a_relu = getattr(getattr(cp_models, "sequential", None), "_pools_a_relu", None)
    layers = model.layers
    fwd = [[] for _ in layers]
    bwd = [[] for _ in layers]
    rows = {"gather": [], "loss": [], "metric": [], "optimizer": [], "step": []}
    shapes = [None] * len(layers)
    order = np.random.default_rng(0).permutation(total * bs)
    clock = time.perf_counter
    for s in range(total):
        keep = s >= warmup
        t_step = clock()
        t0 = clock()
        idx = order[s * bs : (s + 1) * bs]
        xb, yb = x[idx], y[idx]
        t1 = clock()
        h = xb
        for i, layer in enumerate(layers):
            a = clock()
            h = layer.forward(h, training=True)
            b = clock()
            if keep:
                fwd[i].append(b - a)
            shapes[i] = h.shape
        out = h
        a = clock()
        _value, grad = loss_fn(out, yb)
        b = clock()
        g = grad
        past_relu = False
        for i in range(len(layers) - 1, -1, -1):
            c = clock()
            if pools_a_relu is not None and pools_a_relu(layers, i):
                g = layers[i].backward_through_relu(g)  # as Sequential.backward pairs them
                past_relu = True
            else:
                g = layers[i].backward(g, input_grad=i > 0, pre_activation=past_relu)
                past_relu = False
            d = clock()
            if keep:
                bwd[i].append(d - c)
        e = clock()
        optimizer.apply(model.weights, model.grads)
        f = clock()
        if accuracy is not None:
            accuracy(out, yb)
        m = clock()
        if keep:
            rows["gather"].append(t1 - t0)
            rows["loss"].append(b - a)
            rows["optimizer"].append(f - e)
            rows["metric"].append(m - f)
            rows["step"].append(m - t_step)
    # fit() itself over a few steps, to check the mirror (its per-step time should match 'step').
    k = min(total, 5) * bs
    t0 = clock()
    model.fit(x[:k], y[:k], epochs=1, batch_size=bs, optimizer=optimizer, shuffle=True, verbose=False)
    fit_step = (clock() - t0) / (k // bs)
    med = statistics.median
    table = [dict(name=layer.name, type=type(layer).__name__, output_shape=list(shapes[i]),
                  forward_ms=1e3 * med(fwd[i]), backward_ms=1e3 * med(bwd[i]),
                  input_grad=i > 0)
             for i, layer in enumerate(layers)]
    return dict(net=net_name, batch=bs, steps=steps, warmup=warmup, threads=threads, layers=table,
                gather_ms=1e3 * med(rows["gather"]), loss_ms=1e3 * med(rows["loss"]),
                metric_ms=1e3 * med(rows["metric"]) if accuracy is not None else None,
                optimizer_ms=1e3 * med(rows["optimizer"]), step_ms=1e3 * med(rows["step"]),
                fit_step_ms=1e3 * fit_step, params=model.count_params())


def render_profile(profiles):
    lines = []
    for p in profiles:
        lines += ["", (f"convpool {p['net']}: one training step, batch {p['batch']}, "
                       f"{p['threads']} threads, median of {p['steps']} steps after {p['warmup']} "
                       f"warm-up steps; {p['params']:,} parameters")]
        head = f"{'layer':<22}{'type':<24}{'output shape':<20}{'forward ms':>11}{'backward ms':>12}"
        lines += [head, "-" * len(head)]
        lines.append(f"{'batch x[idx], y[idx]':<22}{'(gather)':<24}{'':<20}{p['gather_ms']:>11.2f}")
        fsum = bsum = 0.0
        for r in p["layers"]:
            shape = "(" + ", ".join(map(str, r["output_shape"])) + ")"
            note = "" if r["input_grad"] else " (no input grad)"
            lines.append(f"{r['name']:<22}{(r['type'] + note):<24}{shape:<20}"
                         f"{r['forward_ms']:>11.2f}{r['backward_ms']:>12.2f}")
            fsum += r["forward_ms"]
            bsum += r["backward_ms"]
        lines.append(f"{'loss':<22}{'softmax_cross_entropy':<24}{'':<20}{p['loss_ms']:>11.2f}")
        if p["metric_ms"] is not None:
            lines.append(f"{'metric':<22}{'accuracy (fit keeps it)':<24}{'':<20}{p['metric_ms']:>11.2f}")
        lines.append(f"{'optimizer':<22}{'Adam.apply':<24}{'':<20}{p['optimizer_ms']:>11.2f}")
        lines.append("-" * len(head))
        parts = fsum + bsum + p["gather_ms"] + p["loss_ms"] + (p["metric_ms"] or 0) + p["optimizer_ms"]
        lines.append(f"{'layers':<66}{fsum:>11.2f}{bsum:>12.2f}")
        lines.append(f"total (sum of the medians above): {parts:.2f} ms; whole step (median): "
                     f"{p['step_ms']:.2f} ms; Sequential.fit per step: {p['fit_step_ms']:.2f} ms")
        if "cpu_per_wall" in p:
            lines.append(f"CPU s / wall s over this net's profile: this process {p['cpu_per_wall']:.2f}, "
                         f"the rest of the machine {_num(p['others_per_wall'])} (above about 0.1: "
                         f"other jobs disturbed the timing)")
    return "\n".join(lines)


# ------------------------------------------------------------------ main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", nargs="+", choices=list(NETS), default=list(NETS))
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS))
    parser.add_argument("--threads", type=int, default=2, help="threads per library (default 2)")
    parser.add_argument("--rounds", type=int, help="fresh processes per library, net and task "
                        "(default 3, --quick 1; the table quotes the median)")
    parser.add_argument("--calls", type=int, help="timed runs of the task per process, the "
                        "fastest kept (default 2, --quick 1)")
    parser.add_argument("--scale", type=float, help="fraction of each net's images, rounded to "
                        "whole batches (default 1, --quick 0.1)")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 1/10 of the images, "
                        "1 round, 1 call (--profile: 5 steps); explicit options still win")
    parser.add_argument("--profile", action="store_true",
                        help="convpool only, in this process: per-layer times of one training step")
    parser.add_argument("--steps", type=int, help="--profile: timed steps per net (default 10, "
                        "--quick 5; after 3 warm-up steps)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"),
                        help="folder for models.txt, models.json, models.png (default "
                             "benchmarks/results)")
    args = parser.parse_args(argv)
    defaults = dict(rounds=1, calls=1, scale=0.1, steps=5) if args.quick else dict(
        rounds=3, calls=2, scale=1.0, steps=10)
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("threads", "rounds", "calls", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if not args.scale > 0:
        parser.error("--scale must be positive")
    given = sys.argv[1:] if argv is None else argv
    # Recorded without this machine's paths: the interpreter as "python", the
    # script relative to the checkout.
    root = os.path.dirname(HERE)
    command = shlex.join(["python", os.path.relpath(os.path.abspath(__file__), root), *given])
    os.makedirs(args.out, exist_ok=True)
    if args.profile:
        return _profile_main(args, command)
    impls = available_impls(args.impls)
    if not impls:
        parser.error("none of --impls is installed")
    machine = machine_info(args.threads)
    versions = _versions(impls)

    def progress(msg):
        print(f"\r  {msg:<70}", end="", file=sys.stderr, flush=True)

    started = time.perf_counter()
    results = time_isolated(args.nets, args.tasks, impls, args.threads, args.rounds, args.calls,
                            args.scale, progress)
    print("\r" + " " * 80 + "\r", end="", file=sys.stderr)
    machine["load_average_end"] = os.getloadavg()
    machine["run_s"] = time.perf_counter() - started
    text = render(results, machine, versions, impls, args, command)
    print(text)
    with open(os.path.join(args.out, "models.txt"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "models.json"), "w") as f:
        json.dump(dict(command=command, args=_recorded_args(args), machine=machine, versions=versions,
                       nets={n: dict(NETS[n], params=net_params(NETS[n])) for n in args.nets},
                       results=results), f, indent=1, default=str)
    if chart(results, impls, os.path.join(args.out, "models.png"), args.threads):
        print(f"wrote {args.out}/models.txt, models.json, models.png", file=sys.stderr)
    else:
        print(f"wrote {args.out}/models.txt, models.json", file=sys.stderr)
    return 0


def _recorded_args(args):
    """The options as JSON records them: --out relative to the checkout when inside it."""
    record = dict(vars(args))
    out = os.path.abspath(args.out)
    root = os.path.dirname(HERE)
    if os.path.commonpath([out, root]) == root:
        record["out"] = os.path.relpath(out, root)
    return record


def _profile_main(args, command):
    if not _installed("convpool"):
        raise SystemExit("--profile needs convpool")
    machine = machine_info(args.threads)
    versions = _versions(["convpool"])
    _limit_blas(args.threads, {})
    profiles = []
    for name in args.nets:
        print(f"  profiling {name} ...", file=sys.stderr, flush=True)
        m0, c0, w0 = _machine_busy_s(), time.process_time(), time.perf_counter()
        p = profile_net(name, args.threads, args.steps, warmup=3)
        w1, c1, m1 = time.perf_counter(), time.process_time(), _machine_busy_s()
        p["cpu_per_wall"] = (c1 - c0) / (w1 - w0)
        p["others_per_wall"] = None if m0 is None else max(0.0, (m1 - m0) - (c1 - c0)) / (w1 - w0)
        profiles.append(p)
    text = "\n".join(_header(command, machine, versions)) + "\n" + render_profile(profiles)
    print(text)
    with open(os.path.join(args.out, "models_profile.txt"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "models_profile.json"), "w") as f:
        json.dump(dict(command=command, machine=machine, versions=versions, profiles=profiles), f,
                  indent=1, default=str)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        _worker_main()
    else:
        sys.exit(main())
