/*
 * The AVX-512 variant (F, VL, BW, DQ: Skylake-SP and later Xeons, AMD Zen 4
 * and Zen 5): 512-bit vectors, 32 registers, masked loads and stores for
 * every tail.  Micro-kernel tiles: float32 12x32 (24 accumulators, as MLAS's
 * and BLIS's skx kernels) and 12x16 for layers of at most 16 output
 * channels; float64 12x16 and 12x8.
 *
 * Its results are bitwise those of the AVX2 variant: every kernel keeps each
 * output's order of operations (see the contracts in cp_internal.h), only the
 * width of the vectors changes.
 *
 * CP_EMULATE_AVX512 (tools/emulate_avx512.sh) compiles this same source for
 * AVX2 against SIMDe's portable implementation of the AVX-512 intrinsics, so
 * the variant's logic can be tested on a CPU without AVX-512.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cp_internal.h"

#if CP_BUILD_X86_SIMD
#include <cpuid.h>

#define CP_ISA avx512
#if defined(CP_EMULATE_AVX512) && CP_EMULATE_AVX512
#define CP_ISA_EMULATED 1
#else
#define CP_ISA_EMULATED 0
#endif

/* The CPU has AVX-512 F, VL, BW, DQ (and AVX2, FMA), and the OS saves the
 * opmask and ZMM state (XCR0 bits 1, 2, 5, 6, 7).  The emulation only needs
 * AVX2 and FMA. */
static int cp_isa_supported__avx512(void)
{
    unsigned a, b, c, d;
    unsigned long long xcr0;
    if (CP_ISA_EMULATED) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27)) || !(c & (1u << 12)))
        return 0; /* no OSXSAVE or no FMA */
    __asm__ volatile("xgetbv" : "=a"(a), "=d"(d) : "c"(0));
    xcr0 = ((unsigned long long)d << 32) | a;
    if ((xcr0 & 0xE6) != 0xE6)
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (b & (1u << 5)) && (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) &&
           (b & (1u << 31)); /* AVX2, F, DQ, BW, VL */
}

#if CP_ISA_EMULATED
#define CP_TARGET_ISA "avx2,fma"
#include "cp_target.h"
#include "cp_avx512_emulation.h"
#else
#define CP_TARGET_ISA "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"
#include "cp_target.h"
#include <immintrin.h>
#endif

#define CP_SIMD_HEADER "cp_simd_avx512.h"
#define CP_F32_WIDE_MR 12
#define CP_F32_WIDE_NV 2
#define CP_F32_NARROW_MR 12
#define CP_F32_NARROW_NV 1
#define CP_F64_WIDE_MR 12
#define CP_F64_WIDE_NV 2
#define CP_F64_NARROW_MR 12
#define CP_F64_NARROW_NV 1
/* Taps per pass of the direct weight gradient: one accumulator each, of 32 registers. */
#define CP_WGRAD_TAPS 24
#include "cp_tpl_simd_isa.h"

#include "cp_target_end.h"
#else
const cp_isa_config cp_isa_config__avx512 = {.name = "avx512", .compiled = 0};
#endif
