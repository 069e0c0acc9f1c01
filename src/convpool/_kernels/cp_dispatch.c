/*
 * Memory helpers and the registry of ISA variants.
 *
 * The registry is generated from CP_ISA_LIST (cp_isa_list.h): one config per
 * ISA, each defined in its own translation unit, cp_isa_<name>.c.  The
 * extension is compiled for the baseline target; a variant's code runs only
 * after its `supported()` said yes (the CPU has the instructions and the OS
 * saves their registers).
 */
#include <stdlib.h>
#include <string.h>

#include "cp_internal.h"

void *cp_aligned_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0)
        bytes = CP_ALIGN;
    /* Round up so the size is a multiple of the alignment (C11 aligned_alloc). */
    if (bytes > SIZE_MAX - CP_ALIGN)
        return NULL;
    bytes = (bytes + CP_ALIGN - 1) / CP_ALIGN * CP_ALIGN;
    p = aligned_alloc(CP_ALIGN, bytes);
    if (p != NULL)
        memset(p, 0, bytes);
    return p;
}

void cp_aligned_free(void *p) { free(p); }

/* 32 MiB: on the 2-core Xeon (AVX-512), 2 threads, 1x1 convs with 49 MiB
 * outputs ran 13-24% faster streamed ((8 or 16, 112, 112, 64) -> 128 or 64),
 * while 24 MiB outputs (1x1 and direct 3x3) ran 0.96-1.03x as long: about
 * even.  (64 MiB before.) */
int64_t cp_stream_threshold = (int64_t)32 << 20;
/* 32 MiB: far past the L2 caches of the two cores, as the full-HD batch. */
int64_t cp_rows_prefetch_threshold = (int64_t)32 << 20;

#define CP_ISA_ENTRY_(name) &cp_isa_config__##name,
static const cp_isa_config *const registry[CP_ISA_COUNT] = {CP_ISA_LIST(CP_ISA_ENTRY_)};
#undef CP_ISA_ENTRY_

const cp_isa_config *cp_active = &cp_isa_config__baseline;
static int active_isa = CP_ISA_baseline;

int cp_isa_count(void) { return CP_ISA_COUNT; }

static int valid(int isa) { return isa >= 0 && isa < CP_ISA_COUNT; }

const char *cp_isa_name(int isa) { return valid(isa) ? registry[isa]->name : "unknown"; }

int cp_isa_compiled(int isa) { return valid(isa) && registry[isa]->compiled; }

int cp_isa_supported(int isa)
{
    return cp_isa_compiled(isa) && registry[isa]->supported != NULL && registry[isa]->supported();
}

int cp_isa_emulated(int isa) { return cp_isa_compiled(isa) && registry[isa]->emulated; }

void cp_isa_select(int isa)
{
    if (!cp_isa_supported(isa))
        isa = CP_ISA_baseline;
    cp_active = registry[isa];
    active_isa = isa;
}

int cp_isa_selected(void) { return active_isa; }

void cp_gemm_shape(int64_t itemsize, int64_t kind, int64_t *mr, int64_t *nr)
{
    if (itemsize == 4) {
        const cp_gemm_f32_tile *t = cp_tile_f32(cp_active, kind);
        *mr = t->mr, *nr = t->nr;
    } else {
        const cp_gemm_f64_tile *t = cp_tile_f64(cp_active, kind);
        *mr = t->mr, *nr = t->nr;
    }
}

int64_t cp_gemm_kind(int64_t itemsize, int64_t cols)
{
    int64_t mr, nr;
    cp_gemm_shape(itemsize, CP_GEMM_NARROW, &mr, &nr);
    return cols <= nr ? CP_GEMM_NARROW : CP_GEMM_WIDE;
}

void cp_gemm_call_f32(int isa, int64_t kind, int64_t m, int64_t nseg, const float *const *seg,
                      int64_t lda, int64_t kseg, const float *b, float *c, int64_t ldc,
                      int64_t nr, const float *bias, int flags)
{
    cp_tile_f32(registry[isa], kind)->fn(m, nseg, seg, lda, kseg, b, c, ldc, nr, bias, flags);
}

void cp_gemm_call_f64(int isa, int64_t kind, int64_t m, int64_t nseg, const double *const *seg,
                      int64_t lda, int64_t kseg, const double *b, double *c, int64_t ldc,
                      int64_t nr, const double *bias, int flags)
{
    cp_tile_f64(registry[isa], kind)->fn(m, nseg, seg, lda, kseg, b, c, ldc, nr, bias, flags);
}
