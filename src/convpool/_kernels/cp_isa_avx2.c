/*
 * The AVX2 + FMA variant (x86-64 CPUs since Haswell and Zen 1): 256-bit
 * vectors, 16 registers.  Micro-kernel tiles: float32 6x16 (12 accumulators)
 * and 12x8 for layers of at most 8 output channels; float64 6x8 and 12x4.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cp_internal.h"

#if CP_BUILD_X86_SIMD
#define CP_TARGET_ISA "avx2,fma"
#include "cp_target.h"
#include <immintrin.h>

#define CP_ISA avx2

#define CP_T float
#define CP_SFX f32
#define CP_F64 0
#include "cp_simd_avx2.h"
#define CP_WIDE_MR 6
#define CP_WIDE_NV 2
#define CP_NARROW_MR 12
#define CP_NARROW_NV 1
#include "cp_tpl_isa.h"
#undef CP_T
#undef CP_SFX
#undef CP_F64

#define CP_T double
#define CP_SFX f64
#define CP_F64 1
#include "cp_simd_avx2.h"
#define CP_WIDE_MR 6
#define CP_WIDE_NV 2
#define CP_NARROW_MR 12
#define CP_NARROW_NV 1
#include "cp_tpl_isa.h"
#undef CP_T
#undef CP_SFX
#undef CP_F64

static int supported(void)
{
    __builtin_cpu_init(); /* checks XGETBV too: the OS must save the YMM state */
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

const cp_isa_config cp_isa_config__avx2 = {
    .name = "avx2",
    .compiled = 1,
    .supported = supported,
    .gemm_f32 = cp_gemm_tiles_f32__avx2,
    .gemm_f64 = cp_gemm_tiles_f64__avx2,
    .depthwise_f32 = cp_dwconv2d_nhwc_f32__avx2,
    .depthwise_f64 = cp_dwconv2d_nhwc_f64__avx2,
    .maxpool_f32 = cp_maxpool2d_nhwc_f32__avx2,
    .maxpool_f64 = cp_maxpool2d_nhwc_f64__avx2,
    .avgpool_f32 = cp_avgpool2d_nhwc_f32__avx2,
    .avgpool_f64 = cp_avgpool2d_nhwc_f64__avx2,
    .maxpool_bwd_run_f32 = cp_maxpool2d_bwd_run_f32__avx2,
    .maxpool_bwd_run_f64 = cp_maxpool2d_bwd_run_f64__avx2,
};
#include "cp_target_end.h"
#else
const cp_isa_config cp_isa_config__avx2 = {.name = "avx2", .compiled = 0};
#endif
