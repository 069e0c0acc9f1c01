"""The seed's Conv2D + MaxPool2D over more full-HD frames than the workers' memory, with Dask.

    pip install ".[dask]"
    python examples/dask_fullhd.py            # 256 frames (6.4 GB), 2 workers x 1.5 GiB
    python examples/dask_fullhd.py --frames 400 --chunk 16 --memory-limit 1GiB

1. Writes ``--frames`` random full-HD frames, (N, 1920, 1080, 3) float32, to
   an .npy stack on disk (one memory-mappable .npy file per chunk of
   ``--chunk`` frames, ``dask.array.to_npy_stack``), more data than the
   cluster's total memory limit.
2. On a ``LocalCluster`` of ``--workers`` processes x 1 thread, each with
   ``--memory-limit``: reads the stack memory-mapped, runs the seed's model
   (``Conv2D(16, 5, strides=5, use_bias=False)`` then ``MaxPool2D(2)``) with
   ``convpool.dask.apply``, and writes the result, (N, 192, 108, 16), back
   to an .npy stack.  Timed from the first read to the last write.
3. The same model, in this process, on an in-memory batch of ``--batch``
   frames (the tutorial's 64) with every core: the throughput to match.
4. The same reads, model and writes in plain processes (one per worker, one
   thread each), without Dask: what the data path allows.

The three are timed in turn, ``--repeat`` rounds, and the medians compared.
Prints the throughputs (frames/s), the ratios, each worker's peak resident
memory during a run (which includes the input pages it mapped) and before
it, and checks the first chunk's output against the in-memory model.  The
stack's files are fresh, so the reads come from the page cache; a cold cache
would make the run as fast as the disk.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

FRAME = (1920, 1080, 3)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=256, help="frames on disk (default 256: 6.4 GB)")
    p.add_argument("--chunk", type=int, default=32, help="frames per chunk and task (default 32)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--memory-limit", default="1.5GiB", help="per worker (default 1.5GiB)")
    p.add_argument("--batch", type=int, default=64, help="in-memory batch (default 64)")
    p.add_argument("--repeat", type=int, default=7, help="timed runs of each (default 7)")
    p.add_argument("--dir", default=None, help="where to write the stacks (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the stacks on disk")
    return p.parse_args(argv)


def make_model():
    from convpool import Conv2D, MaxPool2D, Sequential

    model = Sequential([Conv2D(16, 5, strides=5, use_bias=False, seed=0), MaxPool2D(2)])
    model.build((None,) + FRAME)
    return model


def peak_rss_bytes() -> int:
    """This process's peak resident memory since the last :func:`reset_peak_rss` (VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # pragma: no cover


def reset_peak_rss() -> int:
    """Start this process's peak resident memory afresh (Linux: clear_refs 5); the RSS now."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def _write_frames(path: str, frames: int, chunk: int) -> None:
    import dask.array as da

    x = da.random.default_rng(0).random((frames,) + FRAME, chunks=(chunk, -1, -1, -1),
                                        dtype=np.float32)
    da.to_npy_stack(path, x, axis=0)


def _load_chunk(src: str, block_info=None) -> np.ndarray:
    """One chunk of the stack, memory-mapped (no copy): the i-th file for block i."""
    i = block_info[None]["chunk-location"][0]
    return np.load(os.path.join(src, f"{i}.npy"), mmap_mode="r")


def _save_block(y: np.ndarray, dst: str, block_info=None) -> np.ndarray:
    """Save one block as the i-th file of an .npy stack; a token (one zero) per block."""
    i = block_info[None]["chunk-location"][0]
    np.save(os.path.join(dst, f"{i}.npy"), y)
    return np.zeros((1,) * y.ndim, np.int8)


def write_stack(y, dst: str) -> None:
    """``dask.array.to_npy_stack(dst, y)``, with the writes fused into the tasks that compute.

    ``to_npy_stack`` saves each block in a task of its own, so a computed
    block waits in the worker's memory for it.  Saving inside ``map_blocks``
    lets Dask fuse read, compute and write into one task per chunk; the
    stack reads back with ``dask.array.from_npy_stack``.
    """
    import pickle

    y = y.rechunk((y.chunks[0],) + tuple((s,) for s in y.shape[1:]))
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(dst, "info"), "wb") as f:
        pickle.dump({"chunks": y.chunks, "dtype": y.dtype, "axis": 0}, f)
    y.map_blocks(_save_block, dst, chunks=tuple((1,) * len(c) for c in y.chunks),
                 dtype=np.int8).compute()


def read_stack(src: str):
    """The .npy stack as a dask array whose reads fuse with what follows.

    ``dask.array.from_npy_stack`` makes each read a task of its own, whose
    result (a memory-mapped chunk) then sits in the worker's memory
    accounting, counted at its full size, until the next task takes it.
    Reading inside a ``map_blocks`` layer instead lets Dask fuse the read
    with the model's ``map_blocks`` into one task per chunk: the mapping is
    read once, by the kernel, and dropped when the task ends.
    """
    import pickle

    import dask.array as da

    with open(os.path.join(src, "info"), "rb") as f:
        info = pickle.load(f)
    return da.map_blocks(_load_chunk, src, chunks=info["chunks"], dtype=info["dtype"],
                         meta=np.empty((0,) * len(info["chunks"]), info["dtype"]))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import dask.array as da
    from dask.utils import format_bytes, parse_bytes
    from distributed import Client, LocalCluster

    import convpool
    import convpool.dask as cpd

    frame_bytes = int(np.prod(FRAME)) * 4
    data_bytes = args.frames * frame_bytes
    limit = parse_bytes(args.memory_limit)
    root = args.dir or tempfile.mkdtemp(prefix="convpool-dask-")
    os.makedirs(root, exist_ok=True)
    src, dst = os.path.join(root, "frames"), os.path.join(root, "out")
    model = make_model()
    print(f"data: {args.frames} frames {FRAME} float32 = {format_bytes(data_bytes)} on disk; "
          f"cluster: {args.workers} workers x 1 thread x {format_bytes(limit)} "
          f"= {format_bytes(args.workers * limit)}; chunk {args.chunk} frames "
          f"= {format_bytes(args.chunk * frame_bytes)}")
    if data_bytes <= args.workers * limit:
        print("note: the data fits in the cluster's memory limit; raise --frames to exceed it")
    try:
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, memory_limit=limit,
                          processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            t = time.perf_counter()
            for d in (src, dst):
                shutil.rmtree(d, ignore_errors=True)
            _write_frames(src, args.frames, args.chunk)
            print(f"wrote the frames in {time.perf_counter() - t:.1f} s")

            # The in-memory batch, read from the same frames, in this process.
            batch = np.ascontiguousarray(read_stack(src)[: args.batch].compute(scheduler="sync"))
            model(batch)  # warm up: threads, and the result buffers (recycled from then on)
            # Warm up every worker (imports, OpenMP threads, the model) with
            # one untimed run.  (Not on a slice: slicing adds a task between
            # the read and the model, which holds the mapped chunk in the
            # worker's memory and may move it to another worker.)
            write_stack(cpd.apply(model, read_stack(src)), dst)
            # The same work without Dask: one plain process per worker, each
            # mapping its chunks and running the model on one thread.  The
            # data path's own ceiling, for comparison.
            n_chunks = len(read_stack(src).chunks[0])
            plain = ProcessPoolExecutor(args.workers, mp_context=get_context("spawn"))
            shares = [list(range(i, n_chunks, args.workers)) for i in range(args.workers)]
            list(plain.map(_plain_process, [src] * args.workers, [dst + "-plain"] * args.workers,
                           [s[:1] for s in shares]))  # warm up
            runs, mem_runs, plain_runs = [], [], []
            for r in range(args.repeat):  # interleaved: Dask, plain processes, in memory
                shutil.rmtree(dst, ignore_errors=True)
                before = client.run(reset_peak_rss)
                t = time.perf_counter()
                write_stack(cpd.apply(model, read_stack(src)), dst)
                runs.append(time.perf_counter() - t)
                peaks = client.run(peak_rss_bytes)
                t = time.perf_counter()
                list(plain.map(_plain_process, [src] * args.workers,
                               [dst + "-plain"] * args.workers, shares))
                plain_runs.append(time.perf_counter() - t)
                t = time.perf_counter()
                model(batch)
                mem_runs.append(time.perf_counter() - t)
                print(f"run {r + 1}: Dask {runs[-1]:.2f} s = {args.frames / runs[-1]:.0f} "
                      f"frames/s, worker peak RSS "
                      + ", ".join(f"{format_bytes(v)} (from {format_bytes(before[w])})"
                                  for w, v in peaks.items())
                      + f"; plain processes {args.frames / plain_runs[-1]:.0f} frames/s"
                      + f"; in memory {mem_runs[-1]:.3f} s = {args.batch / mem_runs[-1]:.0f} frames/s")
            dask_fps = args.frames / statistics.median(runs)
            mem_fps = args.batch / statistics.median(mem_runs)
            plain_fps = args.frames / statistics.median(plain_runs)
            plain.shutdown()
            threads = client.submit(_task_threads, cpd._cluster_plan(), pure=False).result()

        out = np.load(os.path.join(dst, "0.npy"), mmap_mode="r")
        want = model(batch[: min(args.chunk, len(batch))])
        same = bool(np.array_equal(np.asarray(out[: len(want)]), want))
    finally:
        shutil.rmtree(dst + "-plain", ignore_errors=True)
        if not args.keep and args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"convpool threads per task on the cluster: {threads}; "
          f"in this process: {convpool.get_num_threads()}")
    print(f"first chunk's output equals the in-memory model's: {same}")
    print(f"Dask, from disk to disk : {dask_fps:7.0f} frames/s (median of {args.repeat}, interleaved)")
    print(f"plain processes, no Dask: {plain_fps:7.0f} frames/s (the same reads and writes)")
    print(f"in memory, batch {args.batch:3d}  : {mem_fps:7.0f} frames/s (median of {args.repeat})")
    print(f"ratio Dask / in memory  : {dask_fps / mem_fps:7.2f}x "
          f"(plain processes / in memory: {plain_fps / mem_fps:.2f}x)")
    return 0 if same else 1


def _plain_process(src: str, dst: str, chunks: list[int]) -> None:
    """Map chunks of the stack, run the model on one thread, save: no Dask."""
    import convpool

    convpool.set_num_threads(1)
    model = make_model()  # seeded: the same weights
    os.makedirs(dst, exist_ok=True)
    for i in chunks:
        x = np.load(os.path.join(src, f"{i}.npy"), mmap_mode="r")
        np.save(os.path.join(dst, f"{i}.npy"), model(x))
        del x


def _task_threads(plan) -> int:
    """convpool's thread count in a task on this cluster, as convpool.dask decides it."""
    import convpool.dask as cpd

    return cpd._threads_here(None, plan)


if __name__ == "__main__":
    sys.exit(main())
