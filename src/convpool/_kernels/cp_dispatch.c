/*
 * Memory helpers and the run-time choice of SIMD variants.
 *
 * The extension is compiled for the baseline x86-64 (or whatever the target
 * is); AVX2+FMA variants are compiled per function with target attributes and
 * chosen here after asking the CPU (and the OS, which must save YMM state:
 * __builtin_cpu_supports checks XGETBV for the AVX levels).
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

int64_t cp_stream_threshold = (int64_t)64 << 20;

static const cp_dispatch_table table_baseline = {
    cp_gemm_6x16_f32__baseline,      cp_gemm_6x8_f64__baseline,
    cp_dwconv2d_nhwc_f32__baseline,  cp_dwconv2d_nhwc_f64__baseline,
    cp_maxpool2d_nhwc_f32__baseline, cp_maxpool2d_nhwc_f64__baseline,
    cp_avgpool2d_nhwc_f32__baseline, cp_avgpool2d_nhwc_f64__baseline,
    NULL,                            NULL,
};

#if CP_BUILD_AVX2
static const cp_dispatch_table table_avx2 = {
    cp_gemm_6x16_f32__avx2,      cp_gemm_6x8_f64__avx2,
    cp_dwconv2d_nhwc_f32__avx2,  cp_dwconv2d_nhwc_f64__avx2,
    cp_maxpool2d_nhwc_f32__avx2, cp_maxpool2d_nhwc_f64__avx2,
    cp_avgpool2d_nhwc_f32__avx2, cp_avgpool2d_nhwc_f64__avx2,
    cp_maxpool2d_bwd_run_f32__avx2, cp_maxpool2d_bwd_run_f64__avx2,
};
#endif

cp_dispatch_table cp_active = {
    cp_gemm_6x16_f32__baseline,      cp_gemm_6x8_f64__baseline,
    cp_dwconv2d_nhwc_f32__baseline,  cp_dwconv2d_nhwc_f64__baseline,
    cp_maxpool2d_nhwc_f32__baseline, cp_maxpool2d_nhwc_f64__baseline,
    cp_avgpool2d_nhwc_f32__baseline, cp_avgpool2d_nhwc_f64__baseline,
    NULL,                            NULL,
};
static int active_isa = CP_ISA_BASELINE;

int cp_isa_compiled(int isa)
{
    if (isa == CP_ISA_BASELINE)
        return 1;
    if (isa == CP_ISA_AVX2)
        return CP_BUILD_AVX2;
    return 0;
}

int cp_isa_supported(int isa)
{
    if (isa == CP_ISA_BASELINE)
        return 1;
#if CP_BUILD_AVX2
    if (isa == CP_ISA_AVX2) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
#endif
    return 0;
}

void cp_isa_select(int isa)
{
#if CP_BUILD_AVX2
    if (isa == CP_ISA_AVX2) {
        cp_active = table_avx2;
        active_isa = CP_ISA_AVX2;
        return;
    }
#endif
    cp_active = table_baseline;
    active_isa = CP_ISA_BASELINE;
}

int cp_isa_selected(void) { return active_isa; }

const char *cp_isa_name(int isa)
{
    switch (isa) {
    case CP_ISA_BASELINE:
        return "baseline";
    case CP_ISA_AVX2:
        return "avx2";
    default:
        return "unknown";
    }
}
