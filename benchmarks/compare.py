"""convpool against what a user would use instead, each library in its own process.

    python benchmarks/compare.py                 # every workload, every installed peer
    python benchmarks/compare.py --quick         # 3 rounds of 3 calls, no NumPy reference
    python benchmarks/compare.py --only conv3x3_64 pool_max
    python benchmarks/compare.py --shared        # all libraries in this one process

Peers (optional, ``pip install .[bench]`` plus ``pip install ai-edge-litert``):
ONNX Runtime (a one-node model built with the ``onnx`` helper API, fed NCHW
prepared in advance, its fastest layout), PyTorch (channels_last view of the
same NHWC buffer), TensorFlow (NHWC), LiteRT (a one-op ``.tflite`` model, NHWC,
run by ``ai_edge_litert``'s interpreter, else ``tf.lite.Interpreter``, on its
XNNPACK delegate), plus ``convpool.reference`` as the NumPy implementation.
Missing peers are skipped.

Modes:

- isolated (the default): for each workload, each round starts one fresh
  process per implementation, in turn (A round 1, B round 1, ..., A round 2,
  ...).  Such a worker imports NumPy and that one library only, loads the
  inputs (written once to a temporary directory), warms up, times up to
  ``--calls`` calls back to back and reports their median.  The table quotes
  the median over the rounds.  No other runtime's threads are alive in the
  worker, as in a user's program that uses one library.
- shared (``--shared``): every implementation in this one process; after one
  warm-up call each, ``--repeat`` rounds run each implementation once in turn,
  each call preceded by a short pause (SETTLE_S) so that thread pools still
  spinning after the previous call (OpenMP's, ONNX Runtime's, PyTorch's,
  TensorFlow's) do not take cores from the next one; ONNX Runtime's spinning
  is switched off.  Two runtimes in one process still disturb each other, so
  this mode can make a library look slower than it is alone.

Each call allocates its output, as a user's call would.  The first output of
each implementation is reduced to (sum, sum of |y|, sum of y**2) per returned
array, numbers that do not depend on the layout, and compared with convpool's:
a mismatch is printed.

Floors: the input read once plus the output written once at the streaming
bandwidth measured here, or the FLOPs at the CPU's float32 peak, whichever is
larger.  The peak is NumPy's float32 matmul (sgemm), measured in a subprocess
of its own whose environment lacks OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
(either can hold OpenBLAS below the CPU's widest vector ISA); the rest of the
run keeps the environment it was given.  The OpenBLAS core that subprocess
ran, the vector ISA that core uses and the CPU's flags are printed and
recorded.

Also measured: thread scaling (1 -> all threads) on the 64 -> 64 3x3 conv, and
the peak memory of the full-HD conv in a fresh process, over its input (the
peak resident set, VmHWM, reset once the input exists).

Writes a JSON file, a text copy of the table and a PNG bar chart (matplotlib)
into ``--outdir``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- workloads
def _conv(name, title, n, h, w, c, oc, k, stride, padding, groups=1, backward=False):
    return dict(name=name, title=title, op="conv", shape=(n, h, w, c), oc=oc, k=k,
                stride=stride, padding=padding, groups=groups, backward=backward)


def _pool(name, title, op, n, h, w, c, k, backward=False, stride=None, padding="valid",
          dilation=1, ceil_mode=False):
    return dict(name=name, title=title, op=op, shape=(n, h, w, c), k=k,
                stride=k if stride is None else stride, padding=padding, backward=backward,
                dilation=dilation, ceil_mode=ceil_mode)


def _tconv(name, title, n, h, w, c, oc, k, stride, padding, output_padding):
    """A transposed conv: kernel (k, k, oc, c), PyTorch's numeric padding."""
    return dict(name=name, title=title, op="tconv", shape=(n, h, w, c), oc=oc, k=k, stride=stride,
                padding=padding, output_padding=output_padding, groups=1, backward=False)


def _global(name, title, n, h, w, c):
    return dict(name=name, title=title, op="gap", shape=(n, h, w, c), k=None, stride=1,
                padding="valid", backward=False)


WORKLOADS = [
    _conv("fullhd_conv5x5s5", "full-HD conv 5x5/5, 3->16, N=64", 64, 1920, 1080, 3, 16, 5, 5, "valid"),
    _pool("pool_max", "full-HD max_pool2d 2x2, N=64", "max", 64, 1920, 1080, 3, 2),
    _pool("pool_avg", "full-HD avg_pool2d 2x2, N=64", "avg", 64, 1920, 1080, 3, 2),
    _conv("fullhd_conv3x3", "full-HD conv 3x3 same, 3->16, N=8", 8, 1920, 1080, 3, 16, 3, 1, "same"),
    _conv("conv3x3_64", "conv 3x3 same, 64->64, (8,112,112,64)", 8, 112, 112, 64, 64, 3, 1, "same"),
    _conv("conv3x3_128", "conv 3x3 same, 128->128, (8,56,56,128)", 8, 56, 56, 128, 128, 3, 1, "same"),
    _conv("conv3x3_256", "conv 3x3 same, 256->256, (8,28,28,256)", 8, 28, 28, 256, 256, 3, 1, "same"),
    _conv("conv1x1_64_128", "conv 1x1, 64->128, (8,112,112,64)", 8, 112, 112, 64, 128, 1, 1, "valid"),
    _conv("depthwise3x3", "depthwise 3x3 same, groups=64, (8,112,112,64)", 8, 112, 112, 64, 64, 3, 1,
          "same", groups=64),
    # Backward passes: every gradient, from (grad_out, x, kernel).
    _conv("conv3x3_64_backward", "conv 3x3 64->64 backward (grad x, kernel, bias)", 8, 112, 112, 64,
          64, 3, 1, "same", backward=True),
    _pool("pool_max_backward", "full-HD max_pool2d 2x2 backward, N=64", "max", 64, 1920, 1080, 3, 2,
          backward=True),
    # The conv/pool family beyond Keras's basics (issue 12).
    _tconv("tconv3x3s2", "conv_transpose 3x3/2 p1 op1, 128->64, (8,56,56,128)", 8, 56, 56, 128, 64,
           3, 2, 1, 1),
    _global("global_avg", "global average pool, (64,56,56,256)", 64, 56, 56, 256),
    _pool("pool_max3x3s2", "max_pool2d 3x3/2 p1, (8,112,112,64)", "max", 8, 112, 112, 64, 3,
          stride=2, padding=1),
    _pool("pool_max3x3s2_ceil", "max_pool2d 3x3/2 ceil_mode, (8,112,112,64)", "max", 8, 112, 112,
          64, 3, stride=2, ceil_mode=True),
    _pool("pool_max3x3s2_dil2", "max_pool2d 3x3/2 p1 dilation 2, (8,112,112,64)", "max", 8, 112,
          112, 64, 3, stride=2, padding=1, dilation=2),
]


def with_geometry(wl):
    """The workload plus its output shape and explicit pads, from convpool's own shape arithmetic.

    Computed once here (the workers get the result and never import convpool
    unless they time it).
    """
    from convpool import _shapes

    n, h, w, c = wl["shape"]
    if wl["op"] == "gap":
        return dict(wl, out_shape=(n, 1, 1, c), pads=(0, 0, 0, 0))
    if wl["op"] == "tconv":
        tw = _shapes.transpose_window_2d((h, w), (wl["k"], wl["k"]), wl["stride"], wl["padding"],
                                         wl["output_padding"])
        return dict(wl, out_shape=(n, tw.oh, tw.ow, wl["oc"]), pads=(tw.pt, tw.pb, tw.pl, tw.pr))
    win = _shapes.window_2d((h, w), wl["k"], wl["stride"], wl["padding"], wl.get("dilation", 1),
                            ceil_mode=wl.get("ceil_mode", False))
    return dict(wl, out_shape=(n, win.oh, win.ow, wl["oc"] if wl["op"] == "conv" else c),
                pads=(win.pt, win.pb, win.pl, win.pr))


def flops(wl):
    """Multiply-adds x 2 (the backward pass does the forward's work twice)."""
    if wl["op"] == "tconv":  # every input pixel times the whole kernel
        n, h, w, c = wl["shape"]
        return 2 * n * h * w * c * wl["oc"] * wl["k"] ** 2
    if wl["op"] != "conv":
        return 0
    n, oh, ow, oc = wl["out_shape"]
    cin_g = wl["shape"][3] // wl["groups"]
    return (2 if wl["backward"] else 1) * 2 * n * oh * ow * oc * cin_g * wl["k"] ** 2


def traffic_bytes(wl):
    """Inputs read once and results written once (backward: x and grad_out in, grad_x out)."""
    x, y = int(np.prod(wl["shape"])), int(np.prod(wl["out_shape"]))
    return 4 * (2 * x + y if wl["backward"] else x + y)


def make_kernel(wl):
    """The conv's kernel, (KH, KW, C_in // groups, C_out), or the transposed conv's,
    (KH, KW, C_out, C_in), float32 (None for pooling)."""
    rng = np.random.default_rng(1)
    if wl["op"] == "tconv":
        return (rng.random((wl["k"], wl["k"], wl["oc"], wl["shape"][3]), dtype=np.float32)
                - 0.5) * 0.2
    if wl["op"] != "conv":
        return None
    cin_g = wl["shape"][3] // wl["groups"]
    return (rng.random((wl["k"], wl["k"], cin_g, wl["oc"]), dtype=np.float32) - 0.5) * 0.2


def make_inputs(wl):
    """x, the kernel (conv) and grad_out (backward workloads), float32."""
    inputs = {"x": np.random.default_rng(0).random(wl["shape"], dtype=np.float32)}
    if wl["op"] in ("conv", "tconv"):
        inputs["kernel"] = make_kernel(wl)
    if wl["backward"]:
        inputs["grad"] = np.random.default_rng(2).standard_normal(wl["out_shape"], dtype=np.float32)
    return inputs


# ---------------------------------------------------------- implementations
# Each impl_<name>(wl, inputs, threads, shared, info) returns a function of no
# argument that runs the workload once, or None when it does not measure that
# workload.  ``shared`` is True when other runtimes live in the same process;
# ``info`` collects facts to record (delegate used, SIMD variant, ...).
def _convpool_like(module, wl, inputs, algorithm=None):
    """The workload as calls of convpool's functions (or the same in convpool.reference);
    ``algorithm`` is convpool's conv2d algorithm= (None: its default)."""
    x, kernel, g = inputs["x"], inputs.get("kernel"), inputs.get("grad")
    if wl["op"] == "tconv":
        return lambda: module.conv2d_transpose(x, kernel, strides=wl["stride"],
                                               padding=wl["padding"],
                                               output_padding=wl["output_padding"])
    if wl["op"] == "gap":
        return lambda: module.global_avg_pool2d(x, keepdims=True)
    if wl["op"] == "conv":
        conv_kw = dict(strides=wl["stride"], padding=wl["padding"], groups=wl["groups"])
        if algorithm is not None:
            conv_kw["algorithm"] = algorithm
        if wl["backward"]:
            return lambda: module.conv2d_backward(g, x, kernel, **conv_kw)
        return lambda: module.conv2d(x, kernel, **conv_kw)
    name = "max_pool2d" if wl["op"] == "max" else "avg_pool2d"
    if wl["backward"]:
        return lambda: getattr(module, name + "_backward")(g, x, wl["k"])
    extra = {}
    if wl.get("dilation", 1) != 1:
        extra["dilation_rate"] = wl["dilation"]
    if wl.get("ceil_mode"):
        extra["ceil_mode"] = True
    return lambda: getattr(module, name)(x, wl["k"], wl["stride"], wl["padding"], **extra)


def impl_convpool(wl, inputs, threads, shared, info):
    import contextlib
    import io

    import convpool

    convpool.set_num_threads(threads)
    with contextlib.redirect_stdout(io.StringIO()):
        cfg = convpool.show_config()
    info.update(simd=cfg.get("simd_selected"), openmp=cfg.get("openmp"), threads=cfg.get("num_threads"))
    return _convpool_like(convpool, wl, inputs)


def impl_convpool_direct(wl, inputs, threads, shared, info):
    """convpool with algorithm="direct": the exact-order algorithms, no Winograd
    (only where the default would choose otherwise: 3x3 stride-1 convs)."""
    if wl["op"] != "conv" or wl["k"] != 3 or wl["stride"] != 1 or wl["groups"] != 1:
        return None
    import convpool

    convpool.set_num_threads(threads)
    return _convpool_like(convpool, wl, inputs, algorithm="direct")


def impl_reference(wl, inputs, threads, shared, info):
    from convpool import reference

    return _convpool_like(reference, wl, inputs)


def impl_onnxruntime(wl, inputs, threads, shared, info):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    if wl["backward"]:
        return None  # an inference engine: no gradients
    x, kernel = inputs["x"], inputs.get("kernel")
    x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # prepared in advance
    k, s = wl["k"], wl["stride"]
    pt, pb, pl, pr = wl["pads"]
    attrs = dict(kernel_shape=[k, k], strides=[s, s], pads=[pt, pl, pb, pr])
    graph_in = [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x_nchw.shape))]
    n, oh, ow, oc = wl["out_shape"]
    graph_out = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, oc, oh, ow])]
    inits = []
    if wl["op"] == "tconv":
        w_iohw = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))  # (C_in, C_out, KH, KW)
        inits.append(helper.make_tensor("W", TensorProto.FLOAT, w_iohw.shape, w_iohw.ravel()))
        op = wl["output_padding"]
        node = helper.make_node("ConvTranspose", ["X", "W"], ["Y"], output_padding=[op, op],
                                **attrs)
    elif wl["op"] == "gap":
        node = helper.make_node("GlobalAveragePool", ["X"], ["Y"])
    elif wl["op"] == "conv":
        w_oihw = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
        inits.append(helper.make_tensor("W", TensorProto.FLOAT, w_oihw.shape, w_oihw.ravel()))
        node = helper.make_node("Conv", ["X", "W"], ["Y"], group=wl["groups"], **attrs)
    elif wl["op"] == "max":
        d = wl.get("dilation", 1)
        node = helper.make_node("MaxPool", ["X"], ["Y"], dilations=[d, d],
                                ceil_mode=int(wl.get("ceil_mode", False)), **attrs)
    else:
        node = helper.make_node("AveragePool", ["X"], ["Y"], count_include_pad=0, **attrs)
    graph = helper.make_graph([node], "g", graph_in, graph_out, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if shared:
        # Idle worker threads must not spin into the next implementation's turn.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    info.update(providers=sess.get_providers(), spinning=not shared)
    return lambda: sess.run(None, {"X": x_nchw})[0]


def impl_torch(wl, inputs, threads, shared, info):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    x, kernel = inputs["x"], inputs.get("kernel")
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)  # NCHW view, channels_last memory
    k, s = wl["k"], wl["stride"]
    pt, pb, pl, pr = wl["pads"]
    if wl["op"] == "gap":
        def run_gap():
            with torch.inference_mode():
                return F.adaptive_avg_pool2d(xt, 1)
        return run_gap
    if wl["op"] == "tconv":
        wt = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)

        def run_tconv():
            with torch.inference_mode():
                return F.conv_transpose2d(xt, wt, stride=s, padding=wl["padding"],
                                          output_padding=wl["output_padding"])
        return run_tconv
    if (pt, pl) != (pb, pr) and not wl.get("ceil_mode"):
        return None  # F.conv2d and the pools pad both sides alike
    pad = (pt, pl)
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
            yt = (F.max_pool2d if wl["op"] == "max" else F.avg_pool2d)(xg, k, s, pad)
            wrt = (xg,)
        return lambda: torch.autograd.grad(yt, wrt, gt, retain_graph=True)
    if wl["op"] == "conv":
        wt = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)

        def run():
            with torch.inference_mode():
                return F.conv2d(xt, wt, stride=s, padding=pad, groups=wl["groups"])
        return run
    if wl["op"] == "max":
        d, ceil = wl.get("dilation", 1), wl.get("ceil_mode", False)

        def run_max():
            with torch.inference_mode():
                return F.max_pool2d(xt, k, s, pad, d, ceil_mode=ceil)
        return run_max

    def run_pool():
        with torch.inference_mode():
            return F.avg_pool2d(xt, k, s, pad)
    return run_pool


def _tf_op(tf, wl, kernel):
    """The forward workload as a TensorFlow function of x (NHWC), or None.

    The kernel becomes a constant where this is called: eager, or inside a
    traced tf.function (as for the .tflite models).
    """
    if wl["op"] == "gap":
        return lambda x: tf.reduce_mean(x, axis=(1, 2), keepdims=True)
    if wl["op"] == "tconv" or wl.get("dilation", 1) != 1 or wl.get("ceil_mode"):
        return None  # PyTorch's crops, dilated or ceil_mode pooling: no TF op of that meaning
    k, s = wl["k"], wl["stride"]
    if not isinstance(wl["padding"], str):
        return None
    pad = wl["padding"].upper()
    if wl["op"] == "conv":
        groups, c = wl["groups"], wl["shape"][3]
        if groups == c and groups > 1:
            wt = tf.constant(kernel.transpose(0, 1, 3, 2))  # (k, k, C, 1)
            return lambda x: tf.nn.depthwise_conv2d(x, wt, [1, s, s, 1], pad)
        if groups != 1:
            return None
        wt = tf.constant(kernel)
        return lambda x: tf.nn.conv2d(x, wt, s, pad)
    fn = tf.nn.max_pool2d if wl["op"] == "max" else tf.nn.avg_pool2d
    return lambda x: fn(x, k, s, pad)


_TF_THREADS = None


def impl_tensorflow(wl, inputs, threads, shared, info):
    global _TF_THREADS
    if wl["backward"]:
        return None  # only PyTorch is compared on the backward passes
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    if _TF_THREADS is None:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        _TF_THREADS = threads
    elif _TF_THREADS != threads:
        return None  # TF fixes its thread count once per process
    op = _tf_op(tf, wl, inputs.get("kernel"))
    if op is None:
        return None
    xt = tf.constant(inputs["x"])
    return lambda: op(xt).numpy()


def _capture_fd2(fn):
    """Run fn() with the process's file descriptor 2 sent to a file; return (result, text).

    LiteRT's C++ code logs (for example the XNNPACK delegate's creation) to
    stderr directly, not through Python's sys.stderr.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            result = fn()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    return result, text


_XNNPACK_LOGGED = False


def impl_litert(wl, inputs, threads, shared, info):
    path = wl.get("tflite")
    if not path:
        return None  # no model for this workload (backward, grouped conv, or no converter)
    try:
        from ai_edge_litert.interpreter import Interpreter
        api = "ai_edge_litert"
    except ImportError:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        Interpreter, api = tf.lite.Interpreter, "tf.lite"

    def make():
        interp = Interpreter(model_path=path, num_threads=threads)
        interp.allocate_tensors()
        return interp

    global _XNNPACK_LOGGED
    interp, log = _capture_fd2(make)
    # With a delegate, the graph gains a DELEGATE node that runs the ops it
    # took; the XNNPACK delegate logs its creation (once per process).
    _XNNPACK_LOGGED = _XNNPACK_LOGGED or "XNNPACK" in log
    ops = [d["op_name"] for d in interp._get_ops_details()]
    info.update(api=api, ops=ops, delegate_node="DELEGATE" in ops, xnnpack_logged=_XNNPACK_LOGGED,
                xnnpack="DELEGATE" in ops and _XNNPACK_LOGGED)
    if not info["xnnpack"]:
        print(f"  (litert on {wl['name']}: XNNPACK not confirmed; ops {ops}; log {log.strip()!r})",
              file=sys.stderr)
    x_in = interp.get_input_details()[0]["index"]
    y_out = interp.get_output_details()[0]["index"]
    interp.set_tensor(x_in, inputs["x"])  # prepared in advance, like ONNX Runtime's NCHW copy

    def run():
        interp.invoke()
        return interp.get_tensor(y_out)  # a copy: the call allocates its output
    return run


def impl_read_input(wl, inputs, threads, shared, info):
    """Not an implementation: NumPy reading the input once, for the bandwidth floor."""
    return inputs["x"].max


IMPLS = {
    "convpool": impl_convpool,
    "convpool-direct": impl_convpool_direct,
    "onnxruntime": impl_onnxruntime,
    "torch": impl_torch,
    "tensorflow": impl_tensorflow,
    "litert": impl_litert,
    "numpy": impl_reference,
}
READ = "(read input)"
ALL_IMPLS = dict(IMPLS, **{READ: impl_read_input})

# Top-level modules each peer needs (looked up, not imported, by this process).
PEER_MODULES = {"onnxruntime": ["onnxruntime", "onnx"], "torch": ["torch"], "tensorflow": ["tensorflow"]}


def _installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def available_impls(requested):
    found = []
    for name in requested:
        if name == "litert":
            # The models are built with TensorFlow's converter; they run on
            # ai_edge_litert's interpreter, or TensorFlow's own.
            if not _installed("tensorflow"):
                print("  (litert needs tensorflow to build its models: skipped)", file=sys.stderr)
                continue
            if not _installed("ai_edge_litert"):
                print("  (ai_edge_litert not installed: litert runs on tf.lite.Interpreter)",
                      file=sys.stderr)
            found.append(name)
            continue
        missing = [m for m in PEER_MODULES.get(name, []) if not _installed(m)]
        if missing:
            print(f"  ({name} not installed: skipped)", file=sys.stderr)
            continue
        found.append(name)
    return found


def _checksum(y):
    """Per returned array: (sum, sum of |y|, sum of y**2) in float64, independent of the layout."""
    arrays = y if isinstance(y, (tuple, list)) else [y]
    sums = []
    for a in arrays:
        if a is None:
            continue
        if hasattr(a, "detach"):  # a torch tensor (NCHW view, any memory format)
            a = a.detach().numpy()
        a = np.asarray(a)
        parts = a if a.ndim > 1 else [a]
        s = sa = sq = 0.0
        for p in parts:  # one image at a time bounds the float64 temporaries
            p64 = p.astype(np.float64)
            s += float(p64.sum())
            sa += float(np.abs(p64).sum())
            sq += float(np.square(p64).sum())
        sums.append([s, sa, sq])
    return sums


def checksum_mismatch(a, b, rtol=1e-3):
    """Why two _checksum results differ, or None when they agree."""
    if len(a) != len(b):
        return None  # different sets of results (e.g. no bias gradient): not comparable
    for i, ((s1, sa1, sq1), (s2, sa2, sq2)) in enumerate(zip(a, b)):
        scale = max(sa1, sa2, 1e-30)
        if (abs(s1 - s2) > rtol * scale or abs(sa1 - sa2) > rtol * scale
                or abs(sq1 - sq2) > rtol * max(sq1, sq2)):
            return (f"result {i}: sum {s1:.6g} vs {s2:.6g}, sum|y| {sa1:.6g} vs {sa2:.6g}, "
                    f"sum y^2 {sq1:.6g} vs {sq2:.6g}")
    return None


# --------------------------------------------------------------- machine
def measure_bandwidth():
    """Streaming read bandwidth (GB/s): NumPy's max over 400 MB, best of 15.

    The bandwidth is measured again within each workload's rounds (reading its
    input), and the larger of the two is used for that workload's floor.
    """
    big = np.random.default_rng(1).random(100_000_000, dtype=np.float32)
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        big.max()
        times.append(time.perf_counter() - t0)
    return big.nbytes / min(times) / 1e9


# Variables that can hold OpenBLAS below the CPU's widest ISA: a forced core
# type, and a cache size that goes with it.  Removed for the peak probe only.
BLAS_CAPS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
PROBE_TIMEOUT_S = 300

PEAK_PROBE = r"""
import json, sys, time
import numpy as np
threads, n, reps = map(int, sys.argv[1:4])
try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:
    threadpool_info = threadpool_limits = None
rng = np.random.default_rng(2)
a = rng.random((n, n), dtype=np.float32)
b = rng.random((n, n), dtype=np.float32)
times = []
blas = []
def run():
    a @ b
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
if threadpool_limits is None:
    run()
else:
    with threadpool_limits(threads, user_api="blas"):
        run()
        blas = [{k: i.get(k) for k in ("internal_api", "architecture", "version", "num_threads")}
                for i in threadpool_info() if i.get("user_api") == "blas"]
print(json.dumps(dict(gflops=2 * n**3 / min(times) / 1e9, n=n, reps=reps, blas=blas)))
"""

# OpenBLAS core names (as threadpoolctl reports them, lower-cased) -> vector ISA of its kernels.
_CORE_ISA = {
    **dict.fromkeys(("skylakex", "cooperlake", "sapphirerapids"), "AVX-512"),
    **dict.fromkeys(("haswell", "zen", "excavator"), "AVX2+FMA"),
    **dict.fromkeys(("sandybridge", "bulldozer", "piledriver", "steamroller"), "AVX"),
}
_ISA_RANK = {"SSE": 0, "AVX": 1, "AVX2+FMA": 2, "AVX-512": 3}


def cpu_flags():
    """The vector-ISA flags of /proc/cpuinfo that decide the float32 peak."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [fl for fl in ("avx", "avx2", "fma", "avx512f") if fl in have]
    except OSError:
        pass
    return None


def cpu_isa(flags):
    if flags is None:
        return "unknown"
    if "avx512f" in flags:
        return "AVX-512"
    if "avx2" in flags and "fma" in flags:
        return "AVX2+FMA"
    return "AVX" if "avx" in flags else "SSE"


def measure_peak(threads, n=4096, reps=5):
    """Float32 peak (GFLOP/s): NumPy's sgemm in a subprocess free of BLAS_CAPS; and what it ran on."""
    env = {k: v for k, v in os.environ.items() if k not in BLAS_CAPS}
    removed = {k: os.environ[k] for k in BLAS_CAPS if k in os.environ}
    flags = cpu_flags()
    widest = cpu_isa(flags)
    method = (f"NumPy float32 matmul {n}^3, best of {reps}, {threads} threads, in a subprocess "
              f"without {' and '.join(BLAS_CAPS)}")
    try:
        proc = subprocess.run([sys.executable, "-c", PEAK_PROBE, str(threads), str(n), str(reps)],
                              capture_output=True, text=True, env=env, timeout=PROBE_TIMEOUT_S)
        res = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None
        why = f"exit code {proc.returncode}: {proc.stderr.strip()[-300:]}"
    except subprocess.TimeoutExpired:
        res, why = None, f"no answer in {PROBE_TIMEOUT_S} s"
    if res is None:  # the FLOP floors are left out; the bandwidth floors remain
        return dict(gflops=None, method=method, blas=[], openblas_core=None, blas_isa="unknown",
                    cpu_flags=flags, cpu_isa=widest, removed_from_probe_env=removed,
                    note=f"the peak probe failed ({why}): no FLOP floors")
    openblas = [b for b in res["blas"] if b.get("internal_api") == "openblas"]
    core = openblas[0].get("architecture") if openblas else None
    blas_isa = _CORE_ISA.get(str(core).lower(), "SSE or unknown") if core else "unknown"
    note = None
    if core is None:
        apis = ", ".join(str(b.get("internal_api")) for b in res["blas"]) or "not reported"
        note = f"NumPy's BLAS ({apis}) is not OpenBLAS: the ISA of its kernels is not known here"
    elif _ISA_RANK.get(blas_isa, -1) < _ISA_RANK.get(widest, -1):
        note = (f"OpenBLAS ran its {core} kernels ({blas_isa}) but the CPU has {widest}: "
                f"the peak, and so the FLOP floors, may be too low")
    return dict(gflops=res["gflops"], method=method, blas=res["blas"], openblas_core=core,
                blas_isa=blas_isa, cpu_flags=flags, cpu_isa=widest, removed_from_probe_env=removed,
                note=note)


# ------------------------------------------------------------ .tflite models
def tflite_models(workloads, impls_dir):
    """Build a one-op float32 .tflite model per forward workload (in a subprocess importing TF).

    Returns {workload name: path}.  The kernel is a constant of the model,
    the input signature fixed to the workload's shape.
    """
    todo = [wl for wl in workloads if not wl["backward"]]
    if not todo:
        return {}
    spec = dict(workloads=todo, outdir=impls_dir)
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--build-tflite"],
                          input=json.dumps(spec), capture_output=True, text=True, env=env)
    paths = _result_line(proc.stdout)
    if proc.returncode != 0 or paths is None:
        print(f"  (litert: building the .tflite models failed: skipped)\n{proc.stderr[-2000:]}",
              file=sys.stderr)
        return {}
    return paths


def _tf_model(tf, wl, kernel):
    """The forward workload as a tf.function of a fixed input signature."""
    def model(x):
        return _tf_op(tf, wl, kernel)(x)  # traced: the kernel becomes a graph constant
    return tf.function(model, input_signature=[tf.TensorSpec(wl["shape"], tf.float32)])


def _build_tflite_main():
    spec = json.load(sys.stdin)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    paths = {}
    for wl in spec["workloads"]:
        kernel = make_kernel(wl)
        if _tf_op(tf, wl, kernel) is None:
            continue

        model = _tf_model(tf, wl, kernel)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
        path = os.path.join(spec["outdir"], wl["name"] + ".tflite")
        with open(path, "wb") as f:
            f.write(converter.convert())
        paths[wl["name"]] = path
    _print_result(paths)


# ------------------------------------------------------------------ runs
# Shared mode: a pause before each timed call, as the thread pools of OpenMP,
# ONNX Runtime, PyTorch and TensorFlow spin for a while after a call, and a
# pool still spinning would take cores from whichever implementation runs next.
SETTLE_S = 0.2


def time_workload_shared(wl, impls, threads, repeat, progress):
    """Every implementation in this process, interleaved: {impl: [seconds per round]}, info, checks."""
    inputs = make_inputs(wl)
    # The bandwidth floor, measured in the same rounds: NumPy reading the input
    # once (one core draws about the whole memory bandwidth of this machine).
    fns, info, checks = {READ: inputs["x"].max}, {}, {}
    for name in impls:
        info[name] = {}
        fn = IMPLS[name](wl, inputs, threads, True, info[name])
        if fn is None:
            del info[name]
            continue
        checks[name] = _checksum(fn())  # the warm-up call (and first-touch of any cached state)
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
    return times, info, checks


def _print_result(obj):
    print("@@RESULT " + json.dumps(obj), flush=True)


def _result_line(stdout):
    for line in reversed(stdout.splitlines()):
        if line.startswith("@@RESULT "):
            return json.loads(line[len("@@RESULT "):])
    return None


def _worker_main():
    """One (workload, implementation, round): load the inputs, warm up, time up to `calls` calls."""
    spec = json.load(sys.stdin)
    wl = spec["workload"]
    inputs = {k: np.load(p) for k, p in spec["inputs"].items()}
    info = {}
    fn = ALL_IMPLS[spec["impl"]](wl, inputs, spec["threads"], False, info)
    if fn is None:
        _print_result(dict(skip=True))
        return
    t0 = time.perf_counter()
    y = fn()
    first = time.perf_counter() - t0
    check = _checksum(y) if spec["impl"] != READ else None
    del y
    if first < 0.5:
        fn()  # a second warm-up call where it is cheap
    times, total = [], 0.0
    for _ in range(spec["calls"]):
        t0 = time.perf_counter()
        y = fn()
        dt = time.perf_counter() - t0
        del y
        times.append(dt)
        total += dt
        if total >= spec["budget"]:
            break  # a slow implementation (the NumPy reference): fewer calls this round
    _print_result(dict(times=times, info=info, check=check))


def save_inputs(wl, workdir):
    """Write the workload's inputs as .npy files, once, for the workers; return {name: path}."""
    d = os.path.join(workdir, wl["name"])
    os.makedirs(d, exist_ok=True)
    paths = {}
    for key, arr in make_inputs(wl).items():
        paths[key] = os.path.join(d, key + ".npy")
        np.save(paths[key], arr)
    return paths


WORKER_TIMEOUT_S = 1800  # a worker that hangs is dropped, not waited for


def time_workload_isolated(wl, entries, rounds, calls, budget, input_paths, progress):
    """Each (entry, round) in a fresh process, entries alternating within a round.

    entries: [(key, impl, threads)].  Returns {key: [[seconds per call] per round]}, info, checks.
    """
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    times = {key: [] for key, _, _ in entries}
    info, checks, dropped = {}, {}, set()
    for r in range(rounds):
        for key, impl, threads in entries:
            if key in dropped:
                continue
            progress(f"{wl['name']}: round {r + 1}/{rounds} {key}")
            spec = dict(workload=wl, impl=impl, threads=threads, calls=calls, budget=budget,
                        inputs=input_paths)
            try:
                proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker"],
                                      input=json.dumps(spec), capture_output=True, text=True, env=env,
                                      timeout=WORKER_TIMEOUT_S)
                res, err = _result_line(proc.stdout), proc.stderr[-2000:]
            except subprocess.TimeoutExpired:
                proc, res, err = None, None, f"no answer in {WORKER_TIMEOUT_S} s"
            if proc is None or proc.returncode != 0 or res is None:
                print(f"\n  ({key} failed on {wl['name']}: dropped)\n{err}", file=sys.stderr)
                dropped.add(key)
                continue
            if res.get("skip"):
                dropped.add(key)
                continue
            times[key].append(res["times"])
            info.setdefault(key, res["info"])
            if res["check"] is not None:
                checks.setdefault(key, res["check"])
    return {k: v for k, v in times.items() if v and k not in dropped}, info, checks


def thread_scaling_shared(wl, repeat, threads, progress):
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
    pk = machine["peak"]
    flags = ", ".join(pk["cpu_flags"]) if pk["cpu_flags"] is not None else "unknown"
    lines.append(f"machine: {machine['cpu']}, {machine['threads']} threads; measured streaming read "
                 f"{machine['bandwidth_gbs']:.1f} GB/s")
    removed = ", ".join(f"{k}={v}" for k, v in pk["removed_from_probe_env"].items()) or "neither was set"
    gf = f"{pk['gflops']:.0f} GFLOP/s" if pk["gflops"] else "unknown"
    lines.append(f"float32 peak: {gf}, NumPy sgemm in a subprocess without "
                 f"{' and '.join(BLAS_CAPS)} ({removed}); OpenBLAS core {pk['openblas_core']} = "
                 f"{pk['blas_isa']}; CPU flags {flags} = {pk['cpu_isa']}")
    if pk["note"]:
        lines.append(f"NOTE: {pk['note']}")
    if machine["mode"] == "isolated":
        lines.append(f"mode: isolated: a fresh process per (workload, implementation, round), "
                     f"{machine['rounds']} rounds alternating between implementations, up to "
                     f"{machine['calls']} timed calls per process; 'median s' = median over rounds of "
                     f"each round's median")
    else:
        lines.append(f"mode: shared: every implementation in one process, {machine['rounds']} "
                     f"interleaved rounds of one call each (pause {SETTLE_S} s before each call); "
                     f"'median s' = median over rounds")
    lines.append("floor = max(input + output bytes at the streaming bandwidth measured in the "
                 "workload's rounds, FLOPs at the float32 peak); 'x best' = time / the fastest "
                 "implementation's time; 'spread' = (max - min) / median over rounds")
    tw = max(len(r["workload"]["title"]) for r in results) + 2 if results else 10
    head = (f"{'workload':<{tw}}{'impl':<13}{'median s':>10}{'GFLOP/s':>9}{'GB/s':>7}{'x floor':>9}"
            f"{'x best':>8}{'spread':>8}")
    lines.append(head)
    lines.append("-" * len(head))
    for res in results:
        wl = res["workload"]
        first = True
        best = min(res["median"].values()) if res["median"] else float("nan")
        for name in impls:
            if name not in res["median"]:
                continue
            med = res["median"][name]
            per_round = res["round_medians"][name]
            spread = (max(per_round) - min(per_round)) / med if len(per_round) > 1 else float("nan")
            gf = res["flops"] / med / 1e9 if res["flops"] else float("nan")
            gbs = res["bytes"] / med / 1e9
            row = f"{wl['title'] if first else '':<{tw}}{name:<13}{med:>10.4f}"
            row += f"{gf:>9.1f}" if res["flops"] else f"{'-':>9}"
            row += f"{gbs:>7.1f}{med / res['floor_s']:>9.2f}{med / best:>8.2f}{spread:>7.0%} "
            lines.append(row.rstrip())
            first = False
        for name, why in res.get("mismatch", {}).items():
            lines.append(f"{'':<{tw}}MISMATCH {name} vs convpool: {why}")
    lite = [(r["workload"]["name"], r["info"]["litert"]) for r in results if "litert" in r.get("info", {})]
    if lite:
        ok = [n for n, i in lite if i.get("xnnpack")]
        bad = [n for n, i in lite if not i.get("xnnpack")]
        lines.append(f"litert ({lite[0][1].get('api')}): XNNPACK delegate confirmed (a DELEGATE node in "
                     f"the graph and the delegate's creation logged) on {len(ok)} of {len(lite)} workloads"
                     + (f"; NOT on {', '.join(bad)}" if bad else ""))
    if scaling is not None:
        lines.append(f"thread scaling, conv 3x3 64->64: {scaling:.2f}x from 1 to "
                     f"{machine['threads']} threads")
    for name, m in memory.items():
        lines.append(f"peak memory, full-HD conv, {name}: +{m['over_input_mib']:.0f} MiB over the input "
                     f"(output {m['output_mib']:.0f} MiB)")
    return "\n".join(lines)


def chart(results, impls, path, mode):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (matplotlib not installed: no chart)", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / len(impls)
    for i, name in enumerate(impls):
        vals = [r["median"].get(name, np.nan) / r["median"].get("convpool", np.nan) for r in results]
        ax.bar(np.arange(len(results)) + i * width, vals, width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(results)) + width * (len(impls) - 1) / 2)
    ax.set_xticklabels([r["workload"]["name"] for r in results], rotation=20, ha="right")
    ax.set_ylabel("time / convpool's time (log; higher = slower than convpool)")
    how = ("each library in its own processes, median over alternating rounds" if mode == "isolated"
           else "all libraries in one process, median of interleaved runs")
    ax.set_title(f"convpool vs peers, float32, {how}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--isolated", dest="shared", action="store_false",
                      help="each library in fresh processes of its own (the default)")
    mode.add_argument("--shared", dest="shared", action="store_true",
                      help="every library in this one process, interleaved")
    parser.set_defaults(shared=False)
    parser.add_argument("--repeat", type=int, default=7, help="rounds (default 7)")
    parser.add_argument("--calls", type=int, default=5,
                        help="isolated mode: timed calls per process and round (default 5)")
    parser.add_argument("--budget", type=float, default=5.0,
                        help="isolated mode: stop a process's timed calls after this many seconds "
                             "(at least one call; default 5)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=list(IMPLS))
    parser.add_argument("--only", nargs="+", choices=[w["name"] for w in WORKLOADS], metavar="WORKLOAD",
                        help="workload names to run: " + ", ".join(w["name"] for w in WORKLOADS))
    parser.add_argument("--quick", action="store_true",
                        help="3 rounds (of 3 calls, isolated), no NumPy reference, no memory probe")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory probe")
    parser.add_argument("--outdir", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = min(args.repeat, 3)
        args.calls = min(args.calls, 3)
        args.impls = [i for i in args.impls if i != "numpy"]
        args.no_memory = True
    mode = "shared" if args.shared else "isolated"
    impls = available_impls(args.impls)
    if "convpool" not in impls:
        parser.error("convpool must be one of --impls")
    impls = ["convpool"] + [i for i in impls if i != "convpool"]
    workloads = [with_geometry(w) for w in WORKLOADS if not args.only or w["name"] in args.only]

    def progress(msg):
        print(f"\r  {msg:<70}", end="", file=sys.stderr, flush=True)

    progress("measuring the machine (bandwidth, float32 peak)")
    bw = measure_bandwidth()
    peak = measure_peak(args.threads)
    machine = dict(cpu=_cpu_name(), cpu_model=_cpu_model(), threads=args.threads, bandwidth_gbs=bw,
                   matmul_gflops=peak["gflops"], peak=peak, mode=mode, rounds=args.repeat,
                   calls=args.calls if mode == "isolated" else 1,
                   blas_env={k: os.environ[k] for k in BLAS_CAPS if k in os.environ},
                   python=sys.version.split()[0], platform=platform.platform())
    workdir = tempfile.mkdtemp(prefix="convpool-compare-")
    try:
        if "litert" in impls:
            progress("litert: building the .tflite models")
            paths = tflite_models(workloads, workdir)
            if not paths:
                impls.remove("litert")
            workloads = [dict(w, tflite=paths.get(w["name"])) for w in workloads]
        results = []
        for i, wl in enumerate(workloads):
            progress(f"[{i + 1}/{len(workloads)}] {wl['name']}")
            if mode == "shared":
                times, info, checks = time_workload_shared(wl, impls, args.threads, args.repeat, progress)
                round_medians = {k: list(v) for k, v in times.items()}
            else:
                progress(f"[{i + 1}/{len(workloads)}] {wl['name']}: writing the inputs")
                input_paths = save_inputs(wl, workdir)
                entries = [(READ, READ, 1)] + [(name, name, args.threads) for name in impls]
                times, info, checks = time_workload_isolated(wl, entries, args.repeat, args.calls,
                                                             args.budget, input_paths, progress)
                shutil.rmtree(os.path.dirname(input_paths["x"]))
                round_medians = {k: [statistics.median(c) for c in v] for k, v in times.items()}
            fl, by = flops(wl), traffic_bytes(wl)
            read = round_medians.pop(READ)
            times.pop(READ)
            wl_bw = max(bw, 4 * np.prod(wl["shape"]) / statistics.median(read) / 1e9)
            floor = by / (wl_bw * 1e9)
            if peak["gflops"]:
                floor = max(floor, fl / (peak["gflops"] * 1e9))
            mismatch = {}
            if "convpool" in checks:
                for name, c in checks.items():
                    why = checksum_mismatch(checks["convpool"], c) if name != "convpool" else None
                    if why:
                        mismatch[name] = why
            results.append(dict(workload={k: v for k, v in wl.items() if k != "tflite"}, flops=fl,
                                bytes=by, floor_s=floor, times=times, round_medians=round_medians,
                                bandwidth_gbs=wl_bw, info=info, checksums=checks, mismatch=mismatch,
                                median={k: statistics.median(v) for k, v in round_medians.items()}))
        scaling = None
        if not args.only or "conv3x3_64" in args.only:
            wl = with_geometry(next(w for w in WORKLOADS if w["name"] == "conv3x3_64"))
            if mode == "shared":
                scaling = thread_scaling_shared(wl, args.repeat, args.threads, progress)
            else:
                input_paths = save_inputs(wl, workdir)
                entries = [("1", "convpool", 1), (str(args.threads), "convpool", args.threads)]
                t, _, _ = time_workload_isolated(wl, entries, args.repeat, args.calls, args.budget,
                                                 input_paths, progress)
                med = {k: statistics.median(statistics.median(c) for c in v) for k, v in t.items()}
                if len(med) == 2:
                    scaling = med["1"] / med[str(args.threads)]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    memory = {} if args.no_memory else peak_memory(impls)
    print("\r" + " " * 80 + "\r", end="", file=sys.stderr)
    text = render(results, machine, scaling, memory, impls)
    print(text)
    os.makedirs(args.outdir, exist_ok=True)
    with open(os.path.join(args.outdir, "compare.json"), "w") as f:
        json.dump(dict(machine=machine, results=results, thread_scaling=scaling, memory=memory,
                       versions=_versions(impls)), f, indent=1, default=str)
    chart(results, impls, os.path.join(args.outdir, "compare.png"), mode)
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


def _cpu_model():
    """Vendor, family, model and stepping from /proc/cpuinfo (the name alone can be vague)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        return None
    return {k: fields.get(k) for k in ("vendor_id", "cpu family", "model", "stepping")}


def _versions(impls):
    from importlib import metadata

    dists = {"numpy": ["numpy"], "convpool": ["convpool"], "onnxruntime": ["onnxruntime"],
             "torch": ["torch"], "tensorflow": ["tensorflow-cpu", "tensorflow"],
             "litert": ["ai-edge-litert", "tensorflow-cpu", "tensorflow"]}
    out = {}
    for name, candidates in dists.items():
        if name not in impls and name not in ("numpy", "convpool"):
            continue
        for dist in candidates:
            try:
                out[name if name != "litert" else f"litert ({dist})"] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                pass
    return out


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        _worker_main()
    elif sys.argv[1:] == ["--build-tflite"]:
        _build_tflite_main()
    else:
        main()
