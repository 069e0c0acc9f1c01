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
#define CP_ISA avx2

static int cp_isa_supported__avx2(void)
{
    __builtin_cpu_init(); /* checks XGETBV too: the OS must save the YMM state */
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#define CP_TARGET_ISA "avx2,fma"
#include "cp_target.h"
#include <immintrin.h>

#define CP_SIMD_HEADER "cp_simd_avx2.h"
#define CP_ISA_EMULATED 0
#define CP_F32_WIDE_MR 6
#define CP_F32_WIDE_NV 2
#define CP_F32_NARROW_MR 12
#define CP_F32_NARROW_NV 1
#define CP_F64_WIDE_MR 6
#define CP_F64_WIDE_NV 2
#define CP_F64_NARROW_MR 12
#define CP_F64_NARROW_NV 1
/* Taps per pass of the direct weight gradient: one accumulator each, of 16 registers. */
#define CP_WGRAD_TAPS 12
#include "cp_tpl_simd_isa.h"

#include "cp_target_end.h"
#else
const cp_isa_config cp_isa_config__avx2 = {.name = "avx2", .compiled = 0};
#endif
