# cython: language_level=3
"""Compiled core of convpool: the OpenMP loops around the C kernels.

Private.  Every function here trusts its arguments: shapes agree, sizes are
positive, geometry is valid, arrays are C-contiguous NHWC and ``y`` does not
overlap the inputs.  ``convpool.functional`` checks all of that first.

Each call takes everything it needs (packed weights, one scratch block per
thread) *before* the parallel loop, from the workspace blocks kept between
calls or freshly allocated, so an allocation failure raises MemoryError with
nothing written; then it releases the GIL and runs one
``prange`` over independent units of work (output rows or pixel tiles for
conv, see cp_conv.c; output rows for pooling) with a static schedule.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport erfc
from libc.stdint cimport int64_t
from libc.string cimport memcmp, memcpy, memset

cdef extern from "cp_kernels.h" nogil:
    ctypedef struct cp_conv_geom:
        int64_t n, h, w, c, oh, ow, oc, kh, kw, sh, sw, dh, dw, pt, pl
        int64_t groups, cg, ocg, k, gemm, mr, nr, panels, tile
        int64_t algorithm, units, nseg, kseg, ow_lo, ow_hi, stream, relu, pad_mode
        int64_t wg_th, wg_tw, wg_block

    ctypedef struct cp_pool_geom:
        int64_t n, h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl
        int64_t pb, pr, count_include_pad, divisor, tile, stream, relu

    int CP_ALIGN, CP_CONV_ALGORITHMS, CP_GEMM_KINDS, CP_STORE_STREAM, CP_STORE_RELU
    int CP_CONV_AUTO, CP_CONV_AUTO_DIRECT
    int CP_PAD_ZEROS, CP_PAD_REFLECT, CP_PAD_REPLICATE, CP_PAD_CIRCULAR
    int64_t cp_stream_threshold
    int64_t cp_rows_prefetch_threshold

    void *cp_aligned_alloc(size_t nbytes)
    void cp_aligned_free(void *p)

    int cp_isa_count()
    const char *cp_isa_name(int isa)
    int cp_isa_compiled(int isa)
    int cp_isa_supported(int isa)
    int cp_isa_emulated(int isa)
    void cp_isa_select(int isa)
    int cp_isa_selected()
    void cp_gemm_shape(int64_t itemsize, int64_t kind, int64_t *mr, int64_t *nr)
    void cp_gemm_call_f32(int isa, int64_t kind, int64_t m, int64_t nseg, const float *const *seg,
                          int64_t lda, int64_t kseg, const float *b, float *c, int64_t ldc,
                          int64_t nr, const float *bias, int flags)
    void cp_gemm_call_f64(int isa, int64_t kind, int64_t m, int64_t nseg,
                          const double *const *seg, int64_t lda, int64_t kseg, const double *b,
                          double *c, int64_t ldc, int64_t nr, const double *bias, int flags)

    const char *cp_conv_algorithm_name(int64_t algorithm)
    int cp_conv_algorithm_exact(int64_t algorithm)
    int cp_conv_plan(cp_conv_geom *g, int64_t itemsize, int64_t algorithm)
    void cp_conv_set_output(cp_conv_geom *g, const void *y, int64_t itemsize)
    int64_t cp_conv_scratch_elems(const cp_conv_geom *g)
    int cp_conv_nonfinite(const cp_conv_geom *g, const void *scratch)
    int64_t cp_conv_packed_elems(const cp_conv_geom *g)
    int64_t cp_conv_pack_units(const cp_conv_geom *g)
    void cp_conv_pack_f32(const cp_conv_geom *g, const float *kernel, float *packed,
                          int64_t part)
    void cp_conv_pack_f64(const cp_conv_geom *g, const double *kernel, double *packed,
                          int64_t part)
    void cp_conv2d_nhwc_unit_f32(const cp_conv_geom *g, const float *x, const float *packed,
                                 const float *bias, float *y, int64_t unit, float *scratch)
    void cp_conv2d_nhwc_unit_f64(const cp_conv_geom *g, const double *x, const double *packed,
                                 const double *bias, double *y, int64_t unit, double *scratch)

    void cp_pool_plan(cp_pool_geom *g, int64_t itemsize)
    int64_t cp_pool_scratch_bytes(const cp_pool_geom *g, int64_t itemsize)
    void cp_maxpool2d_nhwc_row_f32(const cp_pool_geom *g, const float *x, float *y,
                                   int64_t row, float *scratch)
    void cp_maxpool2d_nhwc_row_f64(const cp_pool_geom *g, const double *x, double *y,
                                   int64_t row, double *scratch)
    void cp_avgpool2d_nhwc_row_f32(const cp_pool_geom *g, const float *x, float *y,
                                   int64_t row, float *scratch)
    void cp_avgpool2d_nhwc_row_f64(const cp_pool_geom *g, const double *x, double *y,
                                   int64_t row, double *scratch)
    void cp_maxpool2d_direct_row_f32(const cp_pool_geom *g, const float *x, float *y,
                                     int64_t *idx, int64_t row)
    void cp_maxpool2d_direct_row_f64(const cp_pool_geom *g, const double *x, double *y,
                                     int64_t *idx, int64_t row)

cdef extern from "cp_kernels.h" nogil:
    ctypedef struct cp_convbwd_geom:
        cp_conv_geom f
        int64_t itemsize, kwcg, dx_gemm, dx_mr, dx_nr, dx_panels
        int64_t dw_gemm, dw_mr, dw_nr, dx_tile, wt_tile, chunks, chunk, dx_relu

    void cp_convbwd_plan(cp_convbwd_geom *b, int64_t itemsize)

    ctypedef struct cp_wgw_geom:
        cp_conv_geom f
        int64_t tiles, passes, chunks, jobs
        int64_t pass_ "pass"

    int cp_wgw_plan(cp_wgw_geom *w, int64_t itemsize)
    int64_t cp_wgw_v_elems(const cp_wgw_geom *w)
    int64_t cp_wgw_m_elems(const cp_wgw_geom *w)
    int64_t cp_wgw_du_elems(const cp_wgw_geom *w)
    int64_t cp_wgw_scratch_elems(const cp_wgw_geom *w)
    void cp_wgw_chunk_f32(const cp_wgw_geom *w, const float *x, const float *gy, float *vt,
                          float *dm, float *bias_part, int64_t p, int64_t chunk,
                          float *scratch)
    void cp_wgw_chunk_f64(const cp_wgw_geom *w, const double *x, const double *gy,
                          double *vt, double *dm, double *bias_part, int64_t p,
                          int64_t chunk, double *scratch)
    void cp_wgw_gemm_f32(const cp_wgw_geom *w, const float *vt, const float *dm, float *du,
                         int64_t job, int first)
    void cp_wgw_gemm_f64(const cp_wgw_geom *w, const double *vt, const double *dm,
                         double *du, int64_t job, int first)
    void cp_wgw_kernel_f32(const cp_wgw_geom *w, const float *du, float *gk, int64_t c)
    void cp_wgw_kernel_f64(const cp_wgw_geom *w, const double *du, double *gk, int64_t c)
    int64_t cp_convbwd_dx_packed_elems(const cp_convbwd_geom *b)
    int64_t cp_convbwd_dx_scratch_elems(const cp_convbwd_geom *b)
    int64_t cp_convbwd_dw_scratch_elems(const cp_convbwd_geom *b)
    int64_t cp_convbwd_partial_elems(const cp_convbwd_geom *b)
    void cp_convbwd_pack_dx_f32(const cp_convbwd_geom *b, const float *kernel, float *packed)
    void cp_convbwd_pack_dx_f64(const cp_convbwd_geom *b, const double *kernel, double *packed)
    void cp_conv2d_bwd_data_row_f32(const cp_convbwd_geom *b, const float *gy,
                                    const float *packed, const float *bias, float *gx,
                                    int64_t row, float *dcol)
    void cp_conv2d_bwd_data_row_f64(const cp_convbwd_geom *b, const double *gy,
                                    const double *packed, const double *bias, double *gx,
                                    int64_t row, double *dcol)
    void cp_conv2d_bwd_weight_chunk_f32(const cp_convbwd_geom *b, const float *gy, const float *x,
                                        float *partial, int64_t chunk, float *scratch)
    void cp_conv2d_bwd_weight_chunk_f64(const cp_convbwd_geom *b, const double *gy,
                                        const double *x, double *partial, int64_t chunk,
                                        double *scratch)
    void cp_conv2d_bwd_weight_reduce_f32(const cp_convbwd_geom *b, const float *partials,
                                         float *gk, float *gb, int64_t k)
    void cp_conv2d_bwd_weight_reduce_f64(const cp_convbwd_geom *b, const double *partials,
                                         double *gk, double *gb, int64_t k)

    void cp_relu_grad_f32(const float *gy, const float *y, float *gx, int64_t lo, int64_t hi)
    void cp_relu_grad_f64(const double *gy, const double *y, double *gx, int64_t lo, int64_t hi)
    void cp_adam_update_f32(float *w, const float *g, float *m, float *v, int64_t lo, int64_t hi,
                            float b1, float c1, float b2, float c2, float eps, float lr_t)
    void cp_adam_update_f64(double *w, const double *g, double *m, double *v, int64_t lo,
                            int64_t hi, double b1, double c1, double b2, double c2, double eps,
                            double lr_t)
    int64_t cp_poolbwd_units(const cp_pool_geom *g)
    int64_t cp_poolbwd_scratch_bytes(const cp_pool_geom *g)
    void cp_maxpool2d_bwd_unit_f32(const cp_pool_geom *g, const float *x, const float *gy,
                                   float *gx, int64_t unit, void *scratch)
    void cp_maxpool2d_bwd_unit_f64(const cp_pool_geom *g, const double *x, const double *gy,
                                   double *gx, int64_t unit, void *scratch)
    void cp_avgpool2d_bwd_unit_f32(const cp_pool_geom *g, const float *gy, float *gx,
                                   int64_t unit, void *scratch)
    void cp_avgpool2d_bwd_unit_f64(const cp_pool_geom *g, const double *gy, double *gx,
                                   int64_t unit, void *scratch)

# OpenMP without `cimport openmp`, so a build without OpenMP still compiles.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define CP_OPENMP_ENABLED 1
    #define CP_OPENMP_VERSION _OPENMP
    #else
    #define CP_OPENMP_ENABLED 0
    #define CP_OPENMP_VERSION 0
    static int omp_get_max_threads(void) { return 1; }
    static void omp_set_num_threads(int n) { (void)n; }
    #endif
    """
    int CP_OPENMP_ENABLED
    int CP_OPENMP_VERSION
    int omp_get_max_threads() nogil
    void omp_set_num_threads(int n) nogil

# Below this many multiply-adds a call runs on one thread: starting the team
# costs more than it saves.
cdef double SERIAL_WORK = 32768.0


def isa_names():
    """The ISA variants this source knows, from the most portable (the C registry's order)."""
    return tuple(cp_isa_name(i).decode() for i in range(cp_isa_count()))


ISA_NAMES = {name: i for i, name in enumerate(isa_names())}
CONV_ALGORITHMS = tuple(cp_conv_algorithm_name(i).decode() for i in range(CP_CONV_ALGORITHMS))
#: The algorithms that keep the micro-kernel contract's exact order ("direct").
EXACT_ALGORITHMS = tuple(name for i, name in enumerate(CONV_ALGORITHMS)
                         if cp_conv_algorithm_exact(i))
#: What conv2d's algorithm= takes besides a name: the preferred of all
#: algorithms, or of the direct ones.
CONV_CHOICES = {"auto": CP_CONV_AUTO, "direct": CP_CONV_AUTO_DIRECT}
#: conv2d's padding modes (PyTorch's names) and the C kernels' values for them.
PAD_MODES = {"zeros": CP_PAD_ZEROS, "reflect": CP_PAD_REFLECT, "replicate": CP_PAD_REPLICATE,
             "circular": CP_PAD_CIRCULAR}


cdef extern from *:
    """
    #if defined(__clang__)
    #define CP_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
    #define CP_COMPILER "gcc " __VERSION__
    #elif defined(_MSC_VER)
    #define CP_COMPILER "msvc"
    #else
    #define CP_COMPILER "unknown"
    #endif
    """
    const char *CP_COMPILER


def compiler():
    """The compiler that built the extension, as it names itself."""
    return CP_COMPILER.decode()


def openmp_enabled():
    """True if the extension was compiled with OpenMP."""
    return bool(CP_OPENMP_ENABLED)


def openmp_version():
    """The ``_OPENMP`` date macro the extension was compiled with (0 without OpenMP)."""
    return CP_OPENMP_VERSION


def omp_max_threads():
    """``omp_get_max_threads()`` in the calling thread (1 without OpenMP)."""
    return omp_get_max_threads()


def omp_set_max_threads(int n):
    """``omp_set_num_threads(n)`` for the calling thread (no-op without OpenMP)."""
    omp_set_num_threads(n)


def _set_stream_threshold(int64_t nbytes):
    """Outputs of at least ``nbytes`` use non-temporal stores; returns the old value (tests)."""
    global cp_stream_threshold
    old = cp_stream_threshold
    cp_stream_threshold = nbytes
    return old


def _set_rows_prefetch_threshold(int64_t nbytes):
    """ROWS prefetches the next output row's input rows from inputs of at least
    ``nbytes``; returns the old value (tests)."""
    global cp_rows_prefetch_threshold
    old = cp_rows_prefetch_threshold
    cp_rows_prefetch_threshold = nbytes
    return old


def isa_supported(str name):
    """Can this CPU run the variant ``name``?"""
    return bool(cp_isa_supported(ISA_NAMES[name]))


def isa_compiled(str name):
    """Was the variant ``name`` compiled into this build?"""
    return bool(cp_isa_compiled(ISA_NAMES[name]))


def isa_emulated(str name):
    """Is the variant ``name`` built on an emulation of its intrinsics (a test build)?"""
    return bool(cp_isa_emulated(ISA_NAMES[name]))


def isa_select(str name):
    """Use the variant ``name`` from now on; ValueError if this build or CPU cannot run it.

    Not thread-safe with kernel calls running: the tests switch between calls.
    """
    if not (cp_isa_compiled(ISA_NAMES[name]) and cp_isa_supported(ISA_NAMES[name])):
        raise ValueError(f"the {name} variant is not compiled into this build or not "
                         f"supported by this CPU")
    cp_isa_select(ISA_NAMES[name])


def isa_selected():
    """Name of the variant in use."""
    return cp_isa_name(cp_isa_selected()).decode()


cdef inline int _team_size(int n_threads, int64_t units, double work) noexcept:
    if work < SERIAL_WORK or units < 2:
        return 1
    if n_threads > units:
        return <int>units
    return n_threads if n_threads > 0 else 1


cdef inline int64_t _lines(int64_t nbytes) noexcept nogil:
    return (nbytes + CP_ALIGN - 1) // CP_ALIGN * CP_ALIGN


# The workspace cap (bytes a call may allocate besides its result), and what
# the last call needed (for the tests of the documented bounds).
cdef int64_t _workspace_limit = 1 << 30
cdef object _last_workspace = 0


def data_address(object a):
    """The address of the first byte of ``a``, a C-contiguous buffer (a NumPy
    array): what ``a.ctypes.data`` gives, in a tenth of the time."""
    cdef Py_buffer view
    PyObject_GetBuffer(a, &view, PyBUF_SIMPLE)
    cdef size_t address = <size_t> view.buf
    PyBuffer_Release(&view)
    return address


def set_workspace_limit(int64_t nbytes):
    """Cap the workspace of one call at ``nbytes`` (validated by convpool._memory)."""
    global _workspace_limit
    _workspace_limit = nbytes


def get_workspace_limit():
    return _workspace_limit


def last_workspace_bytes():
    """Workspace bytes the last kernel call (from any thread) needed."""
    return _last_workspace


cdef int _reserve(str op, object total, str detail, tuple parts) except -1:
    """Check a call's workspace against the cap before anything is allocated.

    ``total`` is a Python int: threads x scratch may pass int64 even when one
    thread's scratch does not.  ``detail.format(*parts)`` tells what it is
    made of, formatted only for the error.
    """
    global _last_workspace
    _last_workspace = total
    if total > _workspace_limit:
        raise MemoryError(
            f"convpool.{op} needs {total} bytes of workspace ({detail.format(*parts)}), more than the "
            f"limit of {_workspace_limit} bytes: raise it with convpool.set_workspace_limit")
    return 0


# Workspace blocks kept between calls, so that a training loop, whose calls
# come back with the same few sizes every step, stops mapping fresh memory
# after its first step.  (A fresh block costs a page fault per page as it is
# zeroed: a CIFAR-sized net's backward pass of one (64, 8, 8, 64) -> 128 3x3
# layer took 3.6 ms called alone and 6.5 ms between the other layers' calls,
# each freeing and mapping its blocks again; 2-core Xeon.)  Blocks are taken
# and given back with the GIL held; a call that finds none large enough
# allocates its own.  At most KEEP_BLOCKS blocks of at most KEEP_MAX_BYTES
# each and _keep_total_bytes in all (convpool.set_buffer_cache) are kept,
# the largest first.
DEF KEEP_BLOCKS = 16
cdef char *_kept[KEEP_BLOCKS]
cdef int64_t _kept_bytes[KEEP_BLOCKS]
cdef int64_t KEEP_MAX_BYTES = 256 * 1024 * 1024
cdef int64_t _keep_total_bytes = 1024 * 1024 * 1024
cdef int64_t _kept_total = 0
cdef int64_t _fresh_blocks = 0  # blocks allocated because none kept was large enough


cdef char *_workspace_take(int64_t nbytes, str what, int64_t *got, bint zero=True) except NULL:
    """A block of at least ``nbytes`` (its real size in ``*got``): the smallest
    kept one that is large enough, else a new one.  ``zero``: its first
    ``nbytes`` are zero, as a new block's (cp_aligned_alloc) are."""
    global _kept_total, _fresh_blocks
    cdef int i, best = -1
    cdef char *p
    for i in range(KEEP_BLOCKS):
        if (_kept[i] != NULL and _kept_bytes[i] >= nbytes
                and (best < 0 or _kept_bytes[i] < _kept_bytes[best])):
            best = i
    if best >= 0:
        p = _kept[best]
        got[0] = _kept_bytes[best]
        _kept_total -= got[0]
        _kept[best] = NULL
        if zero:
            memset(p, 0, <size_t>nbytes)
        return p
    got[0] = nbytes
    p = <char *> _alloc_or_raise(nbytes, what)
    _fresh_blocks += 1
    return p


cdef void _workspace_give(char *p, int64_t nbytes) noexcept:
    """Keep ``p`` (``nbytes``: the size _workspace_take reported) if there is
    room, making room by freeing smaller kept blocks; else free it."""
    global _kept_total
    cdef int i, slot, smallest
    if p == NULL:
        return
    if nbytes > KEEP_MAX_BYTES:
        cp_aligned_free(p)
        return
    while True:
        slot = -1
        for i in range(KEEP_BLOCKS):
            if _kept[i] == NULL:
                slot = i
                break
        if slot >= 0 and _kept_total + nbytes <= _keep_total_bytes:
            _kept[slot] = p
            _kept_bytes[slot] = nbytes
            _kept_total += nbytes
            return
        smallest = _smallest_kept()
        if smallest < 0 or _kept_bytes[smallest] >= nbytes:
            cp_aligned_free(p)  # nothing smaller to make room with
            return
        _drop_kept(smallest)


cdef int _smallest_kept() noexcept:
    """The slot of the smallest kept block, or -1."""
    cdef int i, smallest = -1
    for i in range(KEEP_BLOCKS):
        if _kept[i] != NULL and (smallest < 0 or _kept_bytes[i] < _kept_bytes[smallest]):
            smallest = i
    return smallest


cdef void _drop_kept(int slot) noexcept:
    global _kept_total
    _kept_total -= _kept_bytes[slot]
    cp_aligned_free(_kept[slot])
    _kept[slot] = NULL


def workspace_stats():
    """The workspace blocks kept between calls: ``{"blocks", "bytes",
    "max_bytes", "allocations"}`` (allocations: blocks allocated so far
    because no kept one was large enough)."""
    cdef int i, count = 0
    for i in range(KEEP_BLOCKS):
        if _kept[i] != NULL:
            count += 1
    return {"blocks": count, "bytes": _kept_total, "max_bytes": _keep_total_bytes,
            "allocations": _fresh_blocks}


def set_workspace_keep(int64_t max_bytes):
    """Keep at most ``max_bytes`` of workspace blocks between calls (0: none),
    freeing the smallest kept blocks until they fit."""
    global _keep_total_bytes
    _keep_total_bytes = max_bytes
    while _kept_total > _keep_total_bytes:
        _drop_kept(_smallest_kept())
    if max_bytes < _wg_total():
        winograd_cache_clear()


# Winograd's transformed kernels, kept between calls.  The transform costs
# about 40 operations per packed value and writes 4x the kernel, so a small
# call paid it again every time: (1, 8, 8, 256) -> 256 took 1.17 ms with
# Winograd, 0.52 direct (2-core Xeon).  An entry holds a copy of the kernel's
# bytes, and is used only when the call's kernel has the same bytes (memcmp:
# whatever array they come from, and any change, a training step's included,
# repacks).  Entries are found and claimed with the GIL held: a call reading
# one counts in ``busy``; one repacking it needs it idle and clears ``valid``
# first, so no call reads a half-written entry.  At most WG_KEEP_MAX_BYTES
# of entries (kernel copy and transform), the least recently used dropped
# first, and none when convpool.set_buffer_cache keeps no workspace.
cdef int64_t WG_KEEP_MAX_BYTES = 64 * 1024 * 1024


cdef class _WgEntry:
    cdef tuple key
    cdef char *kernel
    cdef char *packed
    cdef int64_t kernel_bytes, packed_bytes
    cdef int busy
    cdef bint valid

    def __dealloc__(self):
        cp_aligned_free(self.kernel)
        cp_aligned_free(self.packed)


cdef list _wg_entries = []  # least recently used first


cdef int64_t _wg_total() noexcept:
    cdef int64_t total = 0
    cdef _WgEntry e
    for e in _wg_entries:
        total += e.kernel_bytes + e.packed_bytes
    return total


cdef _WgEntry _wg_claim(tuple key, const char *kernel, int64_t kernel_bytes,
                        int64_t packed_bytes, bint *hit):
    """The entry a Winograd call uses (busy counted), or None: then it packs
    into workspace as without the cache.  ``hit``: the entry holds this
    kernel's transform; else the caller packs into it, then copies the
    kernel's bytes in and sets ``valid``."""
    cdef _WgEntry e, old
    cdef int64_t cap = min(WG_KEEP_MAX_BYTES, _keep_total_bytes)
    hit[0] = False
    if kernel_bytes + packed_bytes > cap:
        return None
    for e in _wg_entries:
        if e.key == key:
            _wg_entries.remove(e)
            _wg_entries.append(e)
            if e.valid and memcmp(e.kernel, kernel, <size_t>kernel_bytes) == 0:
                e.busy += 1
                hit[0] = True
                return e
            if e.busy:
                return None
            e.valid = False
            e.busy = 1
            return e
    while _wg_total() + kernel_bytes + packed_bytes > cap:
        for old in _wg_entries:
            if not old.busy:
                _wg_entries.remove(old)
                break
        else:
            return None
    e = _WgEntry()
    e.key = key
    e.kernel = <char *> cp_aligned_alloc(kernel_bytes)
    e.packed = <char *> cp_aligned_alloc(packed_bytes)
    if e.kernel == NULL or e.packed == NULL:
        return None
    e.kernel_bytes, e.packed_bytes = kernel_bytes, packed_bytes
    e.busy = 1
    _wg_entries.append(e)
    return e


def winograd_cache_clear():
    """Drop the kept Winograd kernel transforms that no call is using."""
    cdef _WgEntry e
    _wg_entries[:] = [e for e in _wg_entries if e.busy]


def winograd_cache_bytes():
    """Bytes of kept Winograd kernel transforms (with their kernel copies)."""
    return _wg_total()


cdef void *_alloc_or_raise(size_t nbytes, str what) except NULL:
    cdef void *p = cp_aligned_alloc(nbytes)
    if p == NULL:
        raise MemoryError(f"convpool could not allocate {nbytes} bytes for {what}")
    return p


cdef int _plan_or_raise(cp_conv_geom *g, int64_t itemsize, str algorithm) except -1:
    cdef int64_t forced = CP_CONV_AUTO
    if algorithm in CONV_CHOICES:
        forced = CONV_CHOICES[algorithm]
    elif algorithm is not None:
        if algorithm not in CONV_ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(CONV_CHOICES)}, "
                             f"{', '.join(CONV_ALGORITHMS)} or None, got {algorithm!r}")
        forced = CONV_ALGORITHMS.index(algorithm)
    if cp_conv_plan(g, itemsize, forced) != 0:
        raise ValueError(f"the {algorithm} algorithm cannot compute this convolution")
    return 0


def conv_plan(Py_ssize_t n, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c,
              Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t oc, Py_ssize_t oh, Py_ssize_t ow,
              Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw,
              Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t groups, int itemsize,
              str algorithm=None, int pad_mode=0):
    """The plan conv2d_nhwc makes for this geometry with the selected ISA, as a dict.

    Keys: algorithm, exact, isa, tile (MR, NR), units, panels, pixel_tile.
    """
    cdef cp_conv_geom g
    g.n, g.h, g.w, g.c, g.kh, g.kw, g.oc, g.oh, g.ow = n, h, w, c, kh, kw, oc, oh, ow
    g.sh, g.sw, g.dh, g.dw, g.pt, g.pl, g.groups = sh, sw, dh, dw, pt, pl, groups
    g.pad_mode = pad_mode
    _plan_or_raise(&g, itemsize, algorithm)
    return {"algorithm": CONV_ALGORITHMS[g.algorithm],
            "exact": bool(cp_conv_algorithm_exact(g.algorithm)), "isa": isa_selected(),
            "tile": (g.mr, g.nr), "units": g.units, "panels": g.panels,
            "pixel_tile": g.tile}


def gemm_shape(int itemsize, int kind):
    """(MR, NR) of the selected ISA's micro-kernel ``kind`` (0 wide, 1 narrow)."""
    cdef int64_t mr = 0, nr = 0
    cp_gemm_shape(itemsize, kind, &mr, &nr)
    return mr, nr


@cython.boundscheck(False)
@cython.wraparound(False)
def gemm_ukernel(str isa, int kind, const floating[:, ::1] a, Py_ssize_t nseg,
                 Py_ssize_t kseg, const floating[:, ::1] b, floating[:, ::1] c,
                 Py_ssize_t nr, const floating[::1] bias, bint relu, bint stream):
    """Call one micro-kernel directly (the micro-kernel tests): C = A @ B (+ bias).

    a (m, lda): segment s is the columns [s * kseg, (s + 1) * kseg) of every
    row; b (nseg * kseg, NR): a packed panel, 64-byte aligned; c (m, ldc): OUT,
    columns < nr written.  The caller matches NR to the ISA's tile ``kind``.
    """
    cdef int i = ISA_NAMES[isa]
    if not (cp_isa_compiled(i) and cp_isa_supported(i)):
        raise ValueError(f"the {isa} variant cannot run here")
    cdef int64_t m = a.shape[0]
    cdef int flags = (CP_STORE_RELU if relu else 0) | (CP_STORE_STREAM if stream else 0)
    cdef const floating *seg[256]
    if nseg > 256 or m == 0:
        raise ValueError("need 1 <= nseg <= 256 and m >= 1")
    cdef Py_ssize_t s
    for s in range(nseg):
        seg[s] = &a[0, s * kseg]
    cdef const floating *bp = NULL
    if bias is not None:
        bp = &bias[0]
    if floating is float:
        cp_gemm_call_f32(i, kind, m, nseg, seg, a.shape[1], kseg, &b[0, 0], &c[0, 0],
                         c.shape[1], nr, bp, flags)
    else:
        cp_gemm_call_f64(i, kind, m, nseg, seg, a.shape[1], kseg, &b[0, 0], &c[0, 0],
                         c.shape[1], nr, bp, flags)


@cython.boundscheck(False)
@cython.wraparound(False)
def conv2d_nhwc(const floating[:, :, :, ::1] x,
                const floating[:, :, :, ::1] kernel,
                const floating[::1] bias,
                floating[:, :, :, ::1] y,
                Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw,
                Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t groups, int n_threads,
                bint relu=False, str algorithm=None, str op="conv2d", int pad_mode=0):
    """y = conv2d(x, kernel) + bias, NHWC; every size > 0 (see the module docstring).

    x (N, H, W, C), kernel (KH, KW, C // groups, OC), bias (OC,) or None,
    y (N, OH, OW, OC): OUT.  relu: y = max(0, y) as it is written (NaN kept).
    algorithm: one of CONV_ALGORITHMS to force it (ValueError if it cannot
    compute this geometry), "direct" for the plan's choice among the exact
    ones, or None / "auto" for the plan's choice.  op: the public
    function named by a MemoryError (conv2d_backward computes its stride-1
    input gradient here).  pad_mode: one of PAD_MODES' indices, what a tap
    outside x reads (zeros, or x reflected, replicated or wrapped: then every
    pad is below H and W, at most H and W for circular).
    """
    cdef cp_conv_geom g
    g.n, g.h, g.w, g.c = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    g.kh, g.kw, g.oc = kernel.shape[0], kernel.shape[1], kernel.shape[3]
    g.oh, g.ow = y.shape[1], y.shape[2]
    g.sh, g.sw, g.dh, g.dw, g.pt, g.pl, g.groups = sh, sw, dh, dw, pt, pl, groups
    g.pad_mode = pad_mode
    _plan_or_raise(&g, sizeof(floating), algorithm)
    g.relu = relu

    cp_conv_set_output(&g, &y[0, 0, 0, 0], sizeof(floating))
    cdef int64_t units = g.units
    cdef int nt = _team_size(n_threads, units, <double>g.n * g.oh * g.ow * g.k * g.oc)
    # Per-thread scratch, rounded to whole cache lines so threads never share one.
    cdef int64_t stride = (cp_conv_scratch_elems(&g) * sizeof(floating) + CP_ALIGN - 1) // CP_ALIGN * CP_ALIGN
    cdef int64_t packed_bytes = _lines(cp_conv_packed_elems(&g) * sizeof(floating))
    _reserve(op, packed_bytes + nt * stride, "packed kernel {} + {} threads x {} scratch",
             (packed_bytes, nt, stride))
    cdef int64_t packed_got = 0, scratch_got
    cdef const floating *kp = &kernel[0, 0, 0, 0]
    cdef int64_t kernel_bytes = g.kh * g.kw * (g.c // g.groups) * g.oc * sizeof(floating)
    cdef _WgEntry wg = None
    cdef bint wg_hit = False
    if not cp_conv_algorithm_exact(g.algorithm):
        wg = _wg_claim((sizeof(floating), cp_isa_selected(), g.algorithm, g.kh, g.kw, g.c,
                        g.oc, g.groups, g.nr, packed_bytes),
                       <const char *> kp, kernel_bytes, packed_bytes, &wg_hit)
    cdef floating *packed
    if wg is not None:
        packed = <floating *> wg.packed
    else:
        # (the packing writes every element of its panels: no zeroing)
        packed = <floating *> _workspace_take(packed_bytes, "packed weights", &packed_got, False)
    cdef char *scratch
    try:
        scratch = _workspace_take(nt * stride, "im2col scratch", &scratch_got)
    except MemoryError:
        if wg is not None:
            wg.busy -= 1
        else:
            _workspace_give(<char *> packed, packed_got)
        raise

    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef const floating *bp = NULL
    if bias is not None:
        bp = &bias[0]
    cdef floating *yp = &y[0, 0, 0, 0]
    cdef int64_t t
    cdef bint spread = False
    # The packing is split by weight panel; its work is a copy per packed
    # value, or about 40 operations for Winograd's kernel transform.
    cdef int64_t pack_units = cp_conv_pack_units(&g)
    cdef double pack_work = <double>cp_conv_packed_elems(&g)
    if not cp_conv_algorithm_exact(g.algorithm):
        pack_work *= 40
    cdef int nt_pack = _team_size(n_threads, pack_units, pack_work)
    try:
        if not wg_hit:
            for t in prange(pack_units, nogil=True, schedule="static", num_threads=nt_pack):
                if floating is float:
                    cp_conv_pack_f32(&g, kp, packed, t)
                else:
                    cp_conv_pack_f64(&g, kp, packed, t)
            if wg is not None:  # the transform is whole: this kernel's from now on
                memcpy(wg.kernel, <const char *> kp, <size_t>kernel_bytes)
                wg.valid = True
        for t in prange(units, nogil=True, schedule="static", num_threads=nt):
            if floating is float:
                cp_conv2d_nhwc_unit_f32(&g, xp, packed, bp, yp, t,
                                        <float *> (scratch + threadid() * stride))
            else:
                cp_conv2d_nhwc_unit_f64(&g, xp, packed, bp, yp, t,
                                        <double *> (scratch + threadid() * stride))
        for t in range(nt):
            spread = spread or cp_conv_nonfinite(&g, scratch + t * stride)
    finally:
        _workspace_give(scratch, scratch_got)
        if wg is not None:
            wg.busy -= 1
        else:
            _workspace_give(<char *> packed, packed_got)
    if spread:
        # Winograd wrote an inf or NaN, which its transforms may have spread
        # to outputs whose window does not hold one: the direct algorithms'
        # result instead (an inf or NaN stays exactly where it belongs).
        conv2d_nhwc(x, kernel, bias, y, sh, sw, dh, dw, pt, pl, groups, n_threads, relu,
                    "direct", op, pad_mode)


@cython.boundscheck(False)
@cython.wraparound(False)
def pool2d_nhwc(const floating[:, :, :, ::1] x,
                floating[:, :, :, ::1] y,
                bint is_max,
                Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                Py_ssize_t pt, Py_ssize_t pl, bint count_include_pad, int n_threads,
                Py_ssize_t pb, Py_ssize_t pr, Py_ssize_t divisor,
                Py_ssize_t dh=1, Py_ssize_t dw=1):
    """Max (``is_max``) or average pooling, NHWC; every size > 0.

    x (N, H, W, C), y (N, OH, OW, C): OUT.  Average only: pb, pr bound the
    padded input that count_include_pad counts (ceil_mode's last windows may
    reach past it); divisor > 0 divides every window by it.  Max only: dh,
    dw dilate the window (each must hold an input cell: Python checks).
    """
    cdef cp_pool_geom g
    g.relu = 0
    g.n, g.h, g.w, g.c = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    g.oh, g.ow = y.shape[1], y.shape[2]
    g.kh, g.kw, g.sh, g.sw, g.pt, g.pl = kh, kw, sh, sw, pt, pl
    g.count_include_pad = count_include_pad
    g.pb, g.pr, g.divisor = pb, pr, divisor
    g.dh, g.dw = dh, dw
    cp_pool_plan(&g, sizeof(floating))

    cdef int64_t rows = g.n * g.oh
    cdef int nt = _team_size(n_threads, rows, <double>g.n * g.oh * g.ow * g.c * g.kh * g.kw)
    cdef int64_t stride = cp_pool_scratch_bytes(&g, sizeof(floating))
    cdef str op = "max_pool2d" if is_max else "avg_pool2d"
    if stride < 0:  # past int64: a pool width near 2**62
        raise MemoryError(
            f"convpool.{op} needs more than 2**63 bytes of workspace (pool width {g.kw}, "
            f"{g.c} channels), more than the limit of {_workspace_limit} bytes")
    stride = _lines(stride)
    _reserve(op, nt * <object>stride, "{} threads x {} scratch", (nt, stride))
    cdef int64_t scratch_got
    cdef char *scratch = _workspace_take(nt * stride, "pooling scratch", &scratch_got)
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef floating *yp = &y[0, 0, 0, 0]
    cdef int64_t r
    try:
        for r in prange(rows, nogil=True, schedule="static", num_threads=nt):
            if floating is float:
                if is_max:
                    cp_maxpool2d_nhwc_row_f32(&g, xp, yp, r, <float *> (scratch + threadid() * stride))
                else:
                    cp_avgpool2d_nhwc_row_f32(&g, xp, yp, r, <float *> (scratch + threadid() * stride))
            else:
                if is_max:
                    cp_maxpool2d_nhwc_row_f64(&g, xp, yp, r, <double *> (scratch + threadid() * stride))
                else:
                    cp_avgpool2d_nhwc_row_f64(&g, xp, yp, r, <double *> (scratch + threadid() * stride))
    finally:
        _workspace_give(scratch, scratch_got)


@cython.boundscheck(False)
@cython.wraparound(False)
def maxpool2d_direct_nhwc(const floating[:, :, :, ::1] x,
                          floating[:, :, :, ::1] y,
                          int64_t[:, :, :, ::1] idx,
                          Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                          Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t pt, Py_ssize_t pl,
                          int n_threads):
    """Max pooling visiting each window's taps (any dilation), NHWC; every size > 0.

    x (N, H, W, C), y (N, OH, OW, C): OUT; idx (N, OH, OW, C) int64: OUT, the
    winners' flat indices ih * W + iw, or None.  Every window must hold a
    real cell (Python checks the pads).
    """
    cdef cp_pool_geom g
    g.relu = 0
    g.n, g.h, g.w, g.c = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    g.oh, g.ow = y.shape[1], y.shape[2]
    g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl = kh, kw, sh, sw, dh, dw, pt, pl
    g.pb, g.pr, g.count_include_pad, g.divisor, g.tile, g.stream = 0, 0, 0, 0, 1, 0
    cdef int64_t rows = g.n * g.oh
    cdef int nt = _team_size(n_threads, rows, <double>g.n * g.oh * g.ow * g.c * g.kh * g.kw)
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef floating *yp = &y[0, 0, 0, 0]
    cdef int64_t *ip = NULL
    if idx is not None:
        ip = &idx[0, 0, 0, 0]
    cdef int64_t r
    for r in prange(rows, nogil=True, schedule="static", num_threads=nt):
        if floating is float:
            cp_maxpool2d_direct_row_f32(&g, xp, yp, ip, r)
        else:
            cp_maxpool2d_direct_row_f64(&g, xp, yp, ip, r)


@cython.boundscheck(False)
@cython.wraparound(False)
def conv2d_backward_nhwc(const floating[:, :, :, ::1] gy,
                         const floating[:, :, :, ::1] x,
                         const floating[:, :, :, ::1] kernel,
                         floating[:, :, :, ::1] gx,
                         floating[::1] gk,
                         floating[::1] gb,
                         Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw,
                         Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t groups, int n_threads,
                         const floating[::1] dx_bias=None, bint dx_relu=False,
                         str op="conv2d_backward"):
    """Gradients of conv2d, NHWC; every size > 0.

    gy (N, OH, OW, OC), x (N, H, W, C), kernel (KH, KW, C // groups, OC).
    OUT, each may be None (not computed): gx (N, H, W, C), gk (KH*KW*Cg*OC,)
    (the kernel's layout, flattened), gb (OC,).  x is read by the weight
    gradient only (with gk and gb None any array of its shape will do).

    conv2d_transpose is this data gradient: dx_bias (C,) is then added to gx
    after the sum and dx_relu applies max(0, .) (NaN kept); op names the
    public function in a MemoryError.
    """
    cdef cp_convbwd_geom b
    b.f.n, b.f.h, b.f.w, b.f.c = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    b.f.kh, b.f.kw, b.f.oc = kernel.shape[0], kernel.shape[1], kernel.shape[3]
    b.f.oh, b.f.ow = gy.shape[1], gy.shape[2]
    b.f.sh, b.f.sw, b.f.dh, b.f.dw, b.f.pt, b.f.pl, b.f.groups = sh, sw, dh, dw, pt, pl, groups
    b.f.pad_mode = 0  # the backward pass reads zero padding (explicitly padded inputs otherwise)
    cp_convbwd_plan(&b, sizeof(floating))
    cdef double work = <double>b.f.n * b.f.oh * b.f.ow * b.f.k * b.f.oc
    cdef int64_t rows = b.f.n * b.f.h
    cdef int nt_dx = _team_size(n_threads, rows, work)
    cdef int nt_dw = _team_size(n_threads, b.chunks, work)
    cdef int nt_reduce = _team_size(n_threads, b.f.k, <double>b.chunks * b.f.k * b.f.oc)
    cdef int64_t dx_stride = _lines(cp_convbwd_dx_scratch_elems(&b) * sizeof(floating))
    cdef int64_t dw_stride = _lines(cp_convbwd_dw_scratch_elems(&b) * sizeof(floating))
    cdef int64_t part_elems = cp_convbwd_partial_elems(&b)
    cdef bint want_dx = gx is not None
    cdef bint want_dw = gk is not None or gb is not None
    cdef const floating *dxbp = NULL
    if dx_bias is not None:
        dxbp = &dx_bias[0]
    b.dx_relu = dx_relu
    cdef floating *packed = NULL
    cdef char *dx_scratch = NULL
    cdef char *dw_scratch = NULL
    cdef floating *partials = NULL
    cdef int64_t packed_got = 0, dx_got = 0, dw_got = 0, part_got = 0
    cdef const floating *gyp = &gy[0, 0, 0, 0]
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef floating *gxp = NULL
    cdef floating *gkp = NULL
    cdef floating *gbp = NULL
    cdef int64_t r, ch, k
    cdef int64_t dx_packed = _lines(cp_convbwd_dx_packed_elems(&b) * sizeof(floating))
    cdef int64_t part_bytes = _lines(b.chunks * part_elems * sizeof(floating))
    _reserve(op,
             (dx_packed + nt_dx * dx_stride if want_dx else 0)
             + (nt_dw * dw_stride + part_bytes if want_dw else 0),
             "input gradient: packed kernel {} + {} threads x {}; "
             "weight gradient: {} threads x {} + {} chunk partials",
             (dx_packed, nt_dx, dx_stride, nt_dw, dw_stride, b.chunks))
    try:
        # Everything is allocated before any gradient is written.
        if want_dx:
            # (written before read: the packing writes every element, each
            # tile's GEMM its columns, each chunk its partial and scratch)
            packed = <floating *> _workspace_take(dx_packed, "packed weights", &packed_got,
                                                  False)
            dx_scratch = _workspace_take(nt_dx * dx_stride, "col2im scratch", &dx_got, False)
            gxp = &gx[0, 0, 0, 0]
        if want_dw:
            dw_scratch = _workspace_take(nt_dw * dw_stride, "im2col scratch", &dw_got, False)
            partials = <floating *> _workspace_take(part_bytes, "partial weight gradients",
                                                    &part_got, False)
            if gk is not None:
                gkp = &gk[0]
            if gb is not None:
                gbp = &gb[0]
        if want_dx:
            if floating is float:
                cp_convbwd_pack_dx_f32(&b, &kernel[0, 0, 0, 0], packed)
            else:
                cp_convbwd_pack_dx_f64(&b, &kernel[0, 0, 0, 0], packed)
            for r in prange(rows, nogil=True, schedule="static", num_threads=nt_dx):
                if floating is float:
                    cp_conv2d_bwd_data_row_f32(&b, gyp, packed, dxbp, gxp, r,
                                               <float *> (dx_scratch + threadid() * dx_stride))
                else:
                    cp_conv2d_bwd_data_row_f64(&b, gyp, packed, dxbp, gxp, r,
                                               <double *> (dx_scratch + threadid() * dx_stride))
        if want_dw:
            for ch in prange(b.chunks, nogil=True, schedule="static", num_threads=nt_dw):
                if floating is float:
                    cp_conv2d_bwd_weight_chunk_f32(&b, gyp, xp, partials + ch * part_elems, ch,
                                                   <float *> (dw_scratch + threadid() * dw_stride))
                else:
                    cp_conv2d_bwd_weight_chunk_f64(&b, gyp, xp, partials + ch * part_elems, ch,
                                                   <double *> (dw_scratch + threadid() * dw_stride))
            for k in prange(b.f.k, nogil=True, schedule="static", num_threads=nt_reduce):
                if floating is float:
                    cp_conv2d_bwd_weight_reduce_f32(&b, partials, gkp, gbp, k)
                else:
                    cp_conv2d_bwd_weight_reduce_f64(&b, partials, gkp, gbp, k)
    finally:
        _workspace_give(<char *> packed, packed_got)
        _workspace_give(dx_scratch, dx_got)
        _workspace_give(dw_scratch, dw_got)
        _workspace_give(<char *> partials, part_got)


@cython.boundscheck(False)
@cython.wraparound(False)
def conv2d_wgrad_winograd_nhwc(const floating[:, :, :, ::1] gy,
                               const floating[:, :, :, ::1] x,
                               floating[::1] gk,
                               floating[::1] gb,
                               Py_ssize_t pt, Py_ssize_t pl, int n_threads):
    """Kernel and bias gradients of a 3x3 stride-1 conv by Winograd F(4x4, 3x3).

    gy (N, OH, OW, OC), x (N, H, W, C); OUT: gk (3*3*C*OC,), the kernel's
    layout flattened, and gb (OC,).  Every size > 0; the geometry is one
    Winograd computes (3x3, stride 1, dilation 1, one group, zero pads).
    """
    cdef cp_wgw_geom w
    w.f.n, w.f.h, w.f.w, w.f.c = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    w.f.kh, w.f.kw, w.f.oc = 3, 3, gy.shape[3]
    w.f.oh, w.f.ow = gy.shape[1], gy.shape[2]
    w.f.sh, w.f.sw, w.f.dh, w.f.dw, w.f.pt, w.f.pl, w.f.groups = 1, 1, 1, 1, pt, pl, 1
    if cp_wgw_plan(&w, sizeof(floating)) != 0:
        raise ValueError("Winograd cannot compute this weight gradient")
    cdef int64_t oc = w.f.oc, rows = w.passes * w.chunks
    cdef double work = 36.0 * w.f.c * w.f.panels * w.f.nr * w.tiles
    cdef int nt_chunk = _team_size(n_threads, w.chunks, work)
    cdef int nt_gemm = _team_size(n_threads, w.jobs, work)
    cdef int nt_kernel = _team_size(n_threads, w.f.c, 324.0 * w.f.c * oc)
    cdef int64_t stride = _lines(cp_wgw_scratch_elems(&w) * sizeof(floating))
    cdef int64_t vt_bytes = _lines(cp_wgw_v_elems(&w) * sizeof(floating))
    cdef int64_t dm_bytes = _lines(cp_wgw_m_elems(&w) * sizeof(floating))
    cdef int64_t du_bytes = _lines(cp_wgw_du_elems(&w) * sizeof(floating))
    cdef int64_t part_bytes = _lines(rows * oc * sizeof(floating))
    nt = max(nt_chunk, nt_gemm, nt_kernel)
    _reserve("conv2d_backward", vt_bytes + dm_bytes + du_bytes + part_bytes + nt * stride,
             "Winograd weight gradient: transformed input {} + transformed "
             "grad_out {} + {} + partial sums {} + {} threads x {}",
             (vt_bytes, dm_bytes, du_bytes, part_bytes, nt, stride))
    cdef int64_t total = vt_bytes + dm_bytes + du_bytes + part_bytes + nt * stride
    # One block, kept for the next call of the same size or smaller (a
    # training loop calls this once per layer and step): no page faults in
    # the steady state.  Every byte the kernels read is written first.
    cdef int64_t got
    cdef char *block = _workspace_take(total, "the Winograd weight gradient's workspace", &got,
                                       False)
    cdef floating *vt = <floating *> block
    cdef floating *dm = <floating *> (block + vt_bytes)
    cdef floating *du = <floating *> (block + vt_bytes + dm_bytes)
    cdef floating *parts = <floating *> (block + vt_bytes + dm_bytes + du_bytes)
    cdef char *scratch = block + vt_bytes + dm_bytes + du_bytes + part_bytes
    cdef const floating *gyp = &gy[0, 0, 0, 0]
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef floating *gkp = &gk[0]
    cdef int64_t p, ch, job, c, r, o
    cdef int first
    try:
        for p in range(w.passes):
            for ch in prange(w.chunks, nogil=True, schedule="static", num_threads=nt_chunk):
                if floating is float:
                    cp_wgw_chunk_f32(&w, xp, gyp, vt, dm, parts + (p * w.chunks + ch) * oc, p,
                                     ch, <float *> (scratch + threadid() * stride))
                else:
                    cp_wgw_chunk_f64(&w, xp, gyp, vt, dm, parts + (p * w.chunks + ch) * oc, p,
                                     ch, <double *> (scratch + threadid() * stride))
            first = p == 0
            for job in prange(w.jobs, nogil=True, schedule="static", num_threads=nt_gemm):
                if floating is float:
                    cp_wgw_gemm_f32(&w, vt, dm, du, job, first)
                else:
                    cp_wgw_gemm_f64(&w, vt, dm, du, job, first)
        for c in prange(w.f.c, nogil=True, schedule="static", num_threads=nt_kernel):
            if floating is float:
                cp_wgw_kernel_f32(&w, du, gkp, c)
            else:
                cp_wgw_kernel_f64(&w, du, gkp, c)
        # The bias: the chunks' sums in order (pass by pass, chunk by chunk).
        for o in range(oc):
            gb[o] = 0
        for r in range(rows):
            for o in range(oc):
                gb[o] = gb[o] + parts[r * oc + o]
    finally:
        _workspace_give(block, got)


@cython.boundscheck(False)
@cython.wraparound(False)
def pool2d_backward_nhwc(const floating[:, :, :, ::1] x,
                         const floating[:, :, :, ::1] gy,
                         floating[:, :, :, ::1] gx,
                         bint is_max,
                         Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                         Py_ssize_t pt, Py_ssize_t pl, bint count_include_pad, int n_threads,
                         Py_ssize_t pb, Py_ssize_t pr, Py_ssize_t divisor,
                         bint relu=False):
    """Gradient of max (``is_max``) or average pooling (x is then not read), NHWC.

    gy (N, OH, OW, C), gx (N, H, W, C): OUT.  pb, pr, divisor: as in pool2d_nhwc.
    relu (max only): x is a ReLU's output, and the gradient goes on through it.
    """
    cdef cp_pool_geom g
    g.n, g.h, g.w, g.c = gx.shape[0], gx.shape[1], gx.shape[2], gx.shape[3]
    g.oh, g.ow = gy.shape[1], gy.shape[2]
    g.kh, g.kw, g.sh, g.sw, g.pt, g.pl = kh, kw, sh, sw, pt, pl
    g.count_include_pad = count_include_pad
    g.pb, g.pr, g.divisor = pb, pr, divisor
    g.dh, g.dw = 1, 1
    g.tile = g.ow
    g.stream = 0
    g.relu = relu and is_max
    cdef int64_t units = cp_poolbwd_units(&g)
    cdef int nt = _team_size(n_threads, units, <double>g.n * g.h * g.w * g.c * g.kh * g.kw)
    cdef int64_t stride = _lines(cp_poolbwd_scratch_bytes(&g))
    _reserve("max_pool2d_backward" if is_max else "avg_pool2d_backward", nt * stride,
             "{} threads x {} scratch", (nt, stride))
    cdef int64_t scratch_got
    cdef char *scratch = _workspace_take(nt * stride, "pooling scratch", &scratch_got)
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef const floating *gyp = &gy[0, 0, 0, 0]
    cdef floating *gxp = &gx[0, 0, 0, 0]
    cdef int64_t u
    try:
        for u in prange(units, nogil=True, schedule="static", num_threads=nt):
            if floating is float:
                if is_max:
                    cp_maxpool2d_bwd_unit_f32(&g, xp, gyp, gxp, u, scratch + threadid() * stride)
                else:
                    cp_avgpool2d_bwd_unit_f32(&g, gyp, gxp, u, scratch + threadid() * stride)
            else:
                if is_max:
                    cp_maxpool2d_bwd_unit_f64(&g, xp, gyp, gxp, u, scratch + threadid() * stride)
                else:
                    cp_avgpool2d_bwd_unit_f64(&g, gyp, gxp, u, scratch + threadid() * stride)
    finally:
        _workspace_give(scratch, scratch_got)


# Elements per unit of the elementwise kernels (a few pages: enough work per
# unit, and blocks that split evenly among the threads).
cdef int64_t ELEMENTWISE_BLOCK = 16384


@cython.boundscheck(False)
@cython.wraparound(False)
def relu_grad(const floating[::1] gy, const floating[::1] y, floating[::1] gx, int n_threads):
    """gx = y > 0 ? gy : 0, elementwise (the gradient through a ReLU of output y).

    gy, y, gx: flat, the same length; gx: OUT, sharing no memory with gy or y.
    """
    cdef int64_t size = gy.shape[0]
    if size == 0:
        return
    cdef int64_t blocks = (size + ELEMENTWISE_BLOCK - 1) // ELEMENTWISE_BLOCK
    cdef int nt = _team_size(n_threads, blocks, <double>size)
    cdef const floating *gyp = &gy[0]
    cdef const floating *yp = &y[0]
    cdef floating *gxp = &gx[0]
    cdef int64_t blk, hi
    for blk in prange(blocks, nogil=True, schedule="static", num_threads=nt):
        hi = (blk + 1) * ELEMENTWISE_BLOCK
        if hi > size:
            hi = size
        if floating is float:
            cp_relu_grad_f32(gyp, yp, gxp, blk * ELEMENTWISE_BLOCK, hi)
        else:
            cp_relu_grad_f64(gyp, yp, gxp, blk * ELEMENTWISE_BLOCK, hi)


def adam_update(floating[::1] w, const floating[::1] g, floating[::1] m, floating[::1] v,
                double b1, double c1, double b2, double c2, double eps, double lr_t,
                int n_threads):
    """One Adam step in place on flat w, m, v (the same length as g; no two
    share memory); the scalars are rounded to w's dtype first, as NumPy
    rounds Python floats (cp_adam_update_*)."""
    cdef int64_t size = w.shape[0]
    if size == 0:
        return
    cdef int64_t blocks = (size + ELEMENTWISE_BLOCK - 1) // ELEMENTWISE_BLOCK
    cdef int nt = _team_size(n_threads, blocks, 8.0 * size)
    cdef floating *wp = &w[0]
    cdef const floating *gp = &g[0]
    cdef floating *mp = &m[0]
    cdef floating *vp = &v[0]
    cdef floating fb1 = <floating>b1, fc1 = <floating>c1, fb2 = <floating>b2
    cdef floating fc2 = <floating>c2, feps = <floating>eps, flr = <floating>lr_t
    cdef int64_t blk, hi
    for blk in prange(blocks, nogil=True, schedule="static", num_threads=nt):
        hi = (blk + 1) * ELEMENTWISE_BLOCK
        if hi > size:
            hi = size
        if floating is float:
            cp_adam_update_f32(wp, gp, mp, vp, blk * ELEMENTWISE_BLOCK, hi, fb1, fc1, fb2, fc2,
                               feps, flr)
        else:
            cp_adam_update_f64(wp, gp, mp, vp, blk * ELEMENTWISE_BLOCK, hi, fb1, fc1, fb2, fc2,
                               feps, flr)


def normal_cdf(const double[::1] z, double[::1] out, int n_threads):
    """out = Phi(z) = erfc(-z / sqrt(2)) / 2, elementwise: the standard normal
    CDF through the C library's erfc (no cancellation for negative z, where
    1 + erf would round to 0).

    z, out: flat, the same length; out may be z itself (each element is read
    before it is written).
    """
    cdef int64_t size = z.shape[0]
    if size == 0:
        return
    cdef int64_t blocks = (size + ELEMENTWISE_BLOCK - 1) // ELEMENTWISE_BLOCK
    cdef int nt = _team_size(n_threads, blocks, 20.0 * size)
    cdef const double *zp = &z[0]
    cdef double *op = &out[0]
    cdef double inv_sqrt2 = 0.70710678118654752440
    cdef int64_t blk, i, hi
    for blk in prange(blocks, nogil=True, schedule="static", num_threads=nt):
        hi = (blk + 1) * ELEMENTWISE_BLOCK
        if hi > size:
            hi = size
        for i in range(blk * ELEMENTWISE_BLOCK, hi):
            op[i] = 0.5 * erfc(-zp[i] * inv_sqrt2)
