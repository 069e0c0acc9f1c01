"""convpool against what a user would use instead, in one process, interleaved.

    python benchmarks/compare.py                 # every workload, every installed peer
    python benchmarks/compare.py --quick         # fewer repeats, no NumPy reference
    python benchmarks/compare.py --only conv3x3_64 pool_max

Peers (optional, ``pip install .[bench]``): ONNX Runtime (a one-node model built
with the ``onnx`` helper API, fed NCHW prepared in advance, its fastest
layout), PyTorch (channels_last view of the same NHWC buffer) and TensorFlow
(NHWC), plus ``convpool.reference`` as the NumPy implementation.  Missing peers
are skipped.

Method: for each workload every implementation runs once to warm up, then
``--repeat`` rounds run each implementation once in turn (interleaved), so
machine noise hits all of them alike; the table quotes medians and ratios.
Each call allocates its output, as a user's call would.  Floors: the input
read once plus the output written once at the streaming bandwidth measured
here, or the FLOPs at the float32 matmul rate measured here, whichever is
larger.

Also measured: thread scaling (1 -> all threads) on the 64 -> 64 3x3 conv, and
the peak memory of the full-HD conv in a fresh process, over its input (the
peak resident set, VmHWM, reset once the input exists).

Each timed call is preceded by a short pause (SETTLE_S), so that thread pools
still spinning after the previous call (OpenMP's, ONNX Runtime's, PyTorch's,
TensorFlow's) do not take cores from the next one; ONNX Runtime's spinning is
also switched off.

Writes a JSON file and a PNG bar chart (matplotlib) into ``--outdir``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- workloads
def _conv(name, title, n, h, w, c, oc, k, stride, padding, groups=1, backward=False):
    return dict(name=name, title=title, op="conv", shape=(n, h, w, c), oc=oc, k=k,
                stride=stride, padding=padding, groups=groups, backward=backward)


def _pool(name, title, op, n, h, w, c, k, backward=False):
    return dict(name=name, title=title, op=op, shape=(n, h, w, c), k=k, stride=k, padding="valid",
                backward=backward)


WORKLOADS = [
    _conv("fullhd_conv5x5s5", "full-HD conv 5x5/5, 3->16, N=64", 64, 1920, 1080, 3, 16, 5, 5, "valid"),
    _pool("pool_max", "full-HD max_pool2d 2x2, N=64", "max", 64, 1920, 1080, 3, 2),
    _pool("pool_avg", "full-HD avg_pool2d 2x2, N=64", "avg", 64, 1920, 1080, 3, 2),
    _conv("fullhd_conv3x3", "full-HD conv 3x3 same, 3->16, N=8", 8, 1920, 1080, 3, 16, 3, 1, "same"),
    _conv("conv3x3_64", "conv 3x3 same, 64->64, (8,112,112,64)", 8, 112, 112, 64, 64, 3, 1, "same"),
    _conv("conv1x1_64_128", "conv 1x1, 64->128, (8,112,112,64)", 8, 112, 112, 64, 128, 1, 1, "valid"),
    _conv("depthwise3x3", "depthwise 3x3 same, groups=64, (8,112,112,64)", 8, 112, 112, 64, 64, 3, 1,
          "same", groups=64),
    # Backward passes (issue 4): every gradient, from (grad_out, x, kernel).
    _conv("conv3x3_64_backward", "conv 3x3 64->64 backward (grad x, kernel, bias)", 8, 112, 112, 64,
          64, 3, 1, "same", backward=True),
    _pool("pool_max_backward", "full-HD max_pool2d 2x2 backward, N=64", "max", 64, 1920, 1080, 3, 2,
          backward=True),
]


def out_shape(wl):
    n, h, w, c = wl["shape"]
    k, s = wl["k"], wl["stride"]
    if wl["padding"] == "same":
        oh, ow = -(-h // s), -(-w // s)
    else:
        oh, ow = (h - k) // s + 1, (w - k) // s + 1
    return (n, oh, ow, wl["oc"] if wl["op"] == "conv" else c)


def flops(wl):
    """Multiply-adds x 2 (the backward pass does the forward's work twice)."""
    if wl["op"] != "conv":
        return 0
    n, oh, ow, oc = out_shape(wl)
    cin_g = wl["shape"][3] // wl["groups"]
    return (2 if wl["backward"] else 1) * 2 * n * oh * ow * oc * cin_g * wl["k"] ** 2


def traffic_bytes(wl):
    """Inputs read once and results written once (backward: x and grad_out in, grad_x out)."""
    x, y = int(np.prod(wl["shape"])), int(np.prod(out_shape(wl)))
    return 4 * (2 * x + y if wl["backward"] else x + y)


def make_inputs(wl, seed=0):
    """x, the kernel (conv) and grad_out (backward workloads), float32."""
    rng = np.random.default_rng(seed)
    inputs = {"x": rng.random(wl["shape"], dtype=np.float32)}
    if wl["op"] == "conv":
        cin_g = wl["shape"][3] // wl["groups"]
        inputs["kernel"] = (rng.random((wl["k"], wl["k"], cin_g, wl["oc"]), dtype=np.float32)
                            - 0.5) * 0.2
    if wl["backward"]:
        inputs["grad"] = rng.standard_normal(out_shape(wl), dtype=np.float32)
    return inputs


# ---------------------------------------------------------- implementations
def _convpool_like(module, wl, inputs):
    """The workload as calls of convpool's functions (or the same in convpool.reference)."""
    x, kernel, g = inputs["x"], inputs.get("kernel"), inputs.get("grad")
    if wl["op"] == "conv":
        conv_kw = dict(strides=wl["stride"], padding=wl["padding"], groups=wl["groups"])
        if wl["backward"]:
            return lambda: module.conv2d_backward(g, x, kernel, **conv_kw)
        return lambda: module.conv2d(x, kernel, **conv_kw)
    name = "max_pool2d" if wl["op"] == "max" else "avg_pool2d"
    if wl["backward"]:
        return lambda: getattr(module, name + "_backward")(g, x, wl["k"])
    return lambda: getattr(module, name)(x, wl["k"])


def impl_convpool(wl, inputs, threads):
    import convpool

    convpool.set_num_threads(threads)
    return _convpool_like(convpool, wl, inputs)


def impl_reference(wl, inputs, threads):
    from convpool import reference

    return _convpool_like(reference, wl, inputs)


def impl_onnxruntime(wl, inputs, threads):
    import onnx  # noqa: F401
    import onnxruntime as ort
    from onnx import TensorProto, helper

    if wl["backward"]:
        return None  # an inference engine: no gradients
    x, kernel = inputs["x"], inputs.get("kernel")
    x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # prepared in advance
    k, s = wl["k"], wl["stride"]
    pad = (k - 1) // 2 if wl["padding"] == "same" else 0
    attrs = dict(kernel_shape=[k, k], strides=[s, s], pads=[pad, pad, pad, pad])
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x_nchw.shape))]
    n, oh, ow, oc = out_shape(wl)
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, oc, oh, ow])]
    inits = []
    if wl["op"] == "conv":
        w_oihw = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
        inits.append(helper.make_tensor("W", TensorProto.FLOAT, w_oihw.shape, w_oihw.ravel()))
        node = helper.make_node("Conv", ["X", "W"], ["Y"], group=wl["groups"], **attrs)
    elif wl["op"] == "max":
        node = helper.make_node("MaxPool", ["X"], ["Y"], **attrs)
    else:
        node = helper.make_node("AveragePool", ["X"], ["Y"], count_include_pad=0, **attrs)
    graph = helper.make_graph([node], "g", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Idle worker threads must not spin into the next implementation's turn.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, {"X": x_nchw})[0]


def impl_torch(wl, inputs, threads):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    x, kernel = inputs["x"], inputs.get("kernel")
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)  # NCHW view, channels_last memory
    k, s = wl["k"], wl["stride"]
    pad = (k - 1) // 2 if wl["padding"] == "same" else 0
    if wl["backward"]:
        # Time only the backward: autograd on a graph built once (retained).
        gt = torch.from_numpy(inputs["grad"]).permute(0, 3, 1, 2)
        xg = xt.detach().requires_grad_(True)
        if wl["op"] == "conv":
            wg = (torch.from_numpy(kernel).permute(3, 2, 0, 1)
                  .contiguous(memory_format=torch.channels_last).requires_grad_(True))
            bg = torch.zeros(wl["oc"], requires_grad=True)
            yt = F.conv2d(xg, wg, bg, stride=s, padding=pad, groups=wl["groups"])
            wrt = (xg, wg, bg)
        else:
            yt = (F.max_pool2d if wl["op"] == "max" else F.avg_pool2d)(xg, k, s)
            wrt = (xg,)
        return lambda: torch.autograd.grad(yt, wrt, gt, retain_graph=True)
    if wl["op"] == "conv":
        wt = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)

        def run():
            with torch.inference_mode():
                return F.conv2d(xt, wt, stride=s, padding=pad, groups=wl["groups"])
        return run
    fn = F.max_pool2d if wl["op"] == "max" else F.avg_pool2d

    def run_pool():
        with torch.inference_mode():
            return fn(xt, k, s)
    return run_pool


_TF_THREADS = None


def impl_tensorflow(wl, inputs, threads):
    global _TF_THREADS
    if wl["backward"]:
        return None  # not measured: the goals compare the backward passes with PyTorch
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    if _TF_THREADS is None:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        _TF_THREADS = threads
    elif _TF_THREADS != threads:
        return None  # TF fixes its thread count once per process
    x, kernel = inputs["x"], inputs.get("kernel")
    xt = tf.constant(x)
    k, s = wl["k"], wl["stride"]
    pad = wl["padding"].upper()
    if wl["op"] == "conv":
        if wl["groups"] == wl["shape"][3] and wl["groups"] > 1:
            wt = tf.constant(kernel.transpose(0, 1, 3, 2))  # (k, k, C, 1)
            return lambda: tf.nn.depthwise_conv2d(xt, wt, [1, s, s, 1], pad).numpy()
        wt = tf.constant(kernel)
        return lambda: tf.nn.conv2d(xt, wt, s, pad).numpy()
    fn = tf.nn.max_pool2d if wl["op"] == "max" else tf.nn.avg_pool2d
    return lambda: fn(xt, k, s, pad).numpy()


IMPLS = {
    "convpool": impl_convpool,
    "onnxruntime": impl_onnxruntime,
    "torch": impl_torch,
    "tensorflow": impl_tensorflow,
    "numpy": impl_reference,
}


def available_impls(requested):
    found = []
    for name in requested:
        module = {"onnxruntime": "onnxruntime", "torch": "torch", "tensorflow": "tensorflow"}.get(name)
        if module is None:
            found.append(name)
            continue
        try:
            __import__(module)
            found.append(name)
        except ImportError:
            print(f"  ({name} not installed: skipped)", file=sys.stderr)
    return found


# --------------------------------------------------------------- machine
def measure_machine(threads):
    """Streaming read bandwidth (GB/s) and float32 matmul rate (GFLOP/s), measured here.

    The bandwidth is measured again within each workload's rounds (reading its
    input), and the larger of the two is used for that workload's floor.
    """
    big = np.random.default_rng(1).random(100_000_000, dtype=np.float32)  # 400 MB
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        big.max()
        times.append(time.perf_counter() - t0)
    bandwidth = big.nbytes / min(times) / 1e9
    del big
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        threadpool_limits = None
    a = np.random.default_rng(2).random((4096, 4096), dtype=np.float32)
    b = np.random.default_rng(3).random((4096, 4096), dtype=np.float32)
    ctx = threadpool_limits(threads, user_api="blas") if threadpool_limits else None
    if ctx:
        ctx.__enter__()
    a @ b
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    if ctx:
        ctx.__exit__(None, None, None)
    peak = 2 * 4096**3 / min(times) / 1e9
    return bandwidth, peak


# ------------------------------------------------------------------ runs
# Pause before each timed call: the thread pools of OpenMP, ONNX Runtime,
# PyTorch and TensorFlow spin for a while after a call, and a pool still
# spinning would take cores from whichever implementation runs next.
SETTLE_S = 0.2

def time_workload(wl, impls, threads, repeat, progress):
    inputs = make_inputs(wl)
    # The bandwidth floor, measured in the same rounds: NumPy reading the input
    # once (one core draws about the whole memory bandwidth of this machine).
    fns = {"(read input)": inputs["x"].max}
    for name in impls:
        fn = IMPLS[name](wl, inputs, threads)
        if fn is None:
            continue
        fn()  # warm-up (and first-touch of any cached state)
        fns[name] = fn
    times = {name: [] for name in fns}
    for r in range(repeat):
        for name, fn in fns.items():
            progress(f"{wl['name']}: round {r + 1}/{repeat} {name}")
            time.sleep(SETTLE_S)
            t0 = time.perf_counter()
            y = fn()
            times[name].append(time.perf_counter() - t0)
            del y
    return times


def thread_scaling(wl, repeat, threads, progress):
    import convpool

    inputs = make_inputs(wl)
    x, kernel = inputs["x"], inputs["kernel"]
    t = {1: [], threads: []}
    for r in range(repeat):
        for nt in (1, threads):
            progress(f"thread scaling: round {r + 1}/{repeat}, {nt} thread(s)")
            convpool.set_num_threads(nt)  # no settle pause: only convpool runs here
            t0 = time.perf_counter()
            convpool.conv2d(x, kernel, padding="same")
            t[nt].append(time.perf_counter() - t0)
    convpool.set_num_threads(None)
    return statistics.median(t[1]) / statistics.median(t[threads])


MEMORY_PROBE = r"""
import sys, numpy as np
impl = sys.argv[1]
x = np.random.default_rng(0).random((64, 1920, 1080, 3), dtype=np.float32)
k = (np.random.default_rng(1).random((5, 5, 3, 16), dtype=np.float32) - 0.5) * 0.2
def status_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
if impl == "convpool":
    import convpool
    run = lambda: convpool.conv2d(x, k, strides=5)
elif impl == "torch":
    import torch, torch.nn.functional as F
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    wt = torch.from_numpy(k).permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
    def run():
        with torch.inference_mode():
            return F.conv2d(xt, wt, stride=5)
before = status_mib("VmRSS")
with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
    f.write("5")
y = run()
peak = status_mib("VmHWM")
print(peak - before, y.nbytes / 2**20 if hasattr(y, "nbytes") else y.numel() * 4 / 2**20)
"""


def peak_memory(impls):
    result = {}
    for name in impls:
        if name not in ("convpool", "torch"):
            continue
        proc = subprocess.run([sys.executable, "-c", MEMORY_PROBE, name], capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.strip():
            over, out_mib = map(float, proc.stdout.split())
            result[name] = {"over_input_mib": over, "output_mib": out_mib}
    return result


# ---------------------------------------------------------------- report
def render(results, machine, scaling, memory, impls):
    lines = []
    bw, peak = machine["bandwidth_gbs"], machine["matmul_gflops"]
    lines.append(f"machine: {machine['cpu']}, {machine['threads']} threads; measured streaming "
                 f"read {bw:.1f} GB/s, float32 matmul {peak:.0f} GFLOP/s")
    lines.append("floor = max(input + output bytes at the streaming bandwidth measured in the "
                 "workload's rounds, FLOPs at the matmul rate); 'cp/X' = convpool's time / X's time")
    head = f"{'workload':<46}{'impl':<13}{'median s':>10}{'GFLOP/s':>9}{'GB/s':>7}{'x floor':>9}"
    peers = [p for p in impls if p != "convpool"]
    head += "".join(f"{'cp/' + p[:6]:>11}" for p in peers)
    lines.append(head)
    lines.append("-" * len(head))
    for res in results:
        wl = res["workload"]
        cp = res["median"].get("convpool")
        for name in impls:
            if name not in res["median"]:
                continue
            med = res["median"][name]
            gf = res["flops"] / med / 1e9 if res["flops"] else float("nan")
            gbs = res["bytes"] / med / 1e9
            row = f"{wl['title'] if name == impls[0] else '':<46}{name:<13}{med:>10.4f}"
            row += f"{gf:>9.1f}" if res["flops"] else f"{'-':>9}"
            row += f"{gbs:>7.1f}{med / res['floor_s']:>9.2f}"
            if name == "convpool":
                row += "".join(
                    f"{cp / res['median'][p]:>11.2f}" if p in res["median"] else f"{'-':>11}"
                    for p in peers
                )
            lines.append(row)
    if scaling is not None:
        lines.append(f"thread scaling, conv 3x3 64->64: {scaling:.2f}x from 1 to {machine['threads']} threads")
    for name, m in memory.items():
        lines.append(f"peak memory, full-HD conv, {name}: +{m['over_input_mib']:.0f} MiB over the input "
                     f"(output {m['output_mib']:.0f} MiB)")
    return "\n".join(lines)


def chart(results, impls, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (matplotlib not installed: no chart)", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(11, 5))
    width = 0.8 / len(impls)
    for i, name in enumerate(impls):
        vals = [r["median"].get(name, np.nan) / r["median"]["convpool"] for r in results]
        ax.bar(np.arange(len(results)) + i * width, vals, width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(results)) + width * (len(impls) - 1) / 2)
    ax.set_xticklabels([r["workload"]["name"] for r in results], rotation=20, ha="right")
    ax.set_ylabel("time / convpool's time (log; higher = slower than convpool)")
    ax.set_title("convpool vs peers, float32, median of interleaved runs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=list(IMPLS))
    parser.add_argument("--only", nargs="+", help="workload names to run")
    parser.add_argument("--quick", action="store_true", help="3 rounds, no NumPy reference, no memory probe")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory probe")
    parser.add_argument("--outdir", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = min(args.repeat, 3)
        args.impls = [i for i in args.impls if i != "numpy"]
        args.no_memory = True
    impls = available_impls(args.impls)
    if "convpool" not in impls:
        parser.error("convpool must be one of --impls")
    impls = ["convpool"] + [i for i in impls if i != "convpool"]
    workloads = [w for w in WORKLOADS if not args.only or w["name"] in args.only]

    def progress(msg):
        print(f"\r  {msg:<70}", end="", file=sys.stderr, flush=True)

    progress("measuring the machine (bandwidth, matmul)")
    bw, peak = measure_machine(args.threads)
    machine = dict(cpu=_cpu_name(), threads=args.threads, bandwidth_gbs=bw, matmul_gflops=peak,
                   python=sys.version.split()[0], platform=platform.platform())
    results = []
    for i, wl in enumerate(workloads):
        progress(f"[{i + 1}/{len(workloads)}] {wl['name']}")
        times = time_workload(wl, impls, args.threads, args.repeat, progress)
        fl, by = flops(wl), traffic_bytes(wl)
        read = times.pop("(read input)")
        wl_bw = max(bw, 4 * np.prod(wl["shape"]) / statistics.median(read) / 1e9)
        floor = max(by / (wl_bw * 1e9), fl / (peak * 1e9))
        results.append(dict(workload=wl, flops=fl, bytes=by, floor_s=floor, times=times,
                            bandwidth_gbs=wl_bw,
                            median={k: statistics.median(v) for k, v in times.items()}))
    scaling = None
    if not args.only or "conv3x3_64" in args.only:
        scaling = thread_scaling(next(w for w in WORKLOADS if w["name"] == "conv3x3_64"),
                                 args.repeat, args.threads, progress)
    memory = {} if args.no_memory else peak_memory(impls)
    print("\r" + " " * 80 + "\r", end="", file=sys.stderr)
    text = render(results, machine, scaling, memory, impls)
    print(text)
    os.makedirs(args.outdir, exist_ok=True)
    with open(os.path.join(args.outdir, "compare.json"), "w") as f:
        json.dump(dict(machine=machine, results=results, thread_scaling=scaling, memory=memory,
                       versions=_versions(impls)), f, indent=1, default=str)
    chart(results, impls, os.path.join(args.outdir, "compare.png"))
    with open(os.path.join(args.outdir, "compare.txt"), "w") as f:
        f.write(text + "\n")


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _versions(impls):
    out = {}
    for name, module in [("numpy", "numpy"), ("convpool", "convpool"), ("onnxruntime", "onnxruntime"),
                         ("torch", "torch"), ("tensorflow", "tensorflow")]:
        if name in impls or name == "numpy":
            try:
                out[name] = __import__(module).__version__
            except Exception:  # noqa: BLE001
                pass
    return out


if __name__ == "__main__":
    main()
