/*
 * Template: a whole SIMD ISA variant, its kernels for both dtypes and its
 * config record.  Include at the end of cp_isa_<name>.c, inside its target
 * region (cp_target.h), with
 *   CP_ISA              the name (avx2), as in cp_isa_list.h
 *   CP_SIMD_HEADER      its vector vocabulary ("cp_simd_avx2.h")
 *   CP_ISA_EMULATED     1 if the intrinsics are emulated (a test build)
 *   CP_F32_WIDE_MR, CP_F32_WIDE_NV, CP_F32_NARROW_MR, CP_F32_NARROW_NV,
 *   CP_F64_WIDE_MR, ...  the micro-kernel tiles: rows and vectors of channels
 *   CP_WGRAD_TAPS       taps per pass of the direct weight gradient
 * and `static int cp_isa_supported__<isa>(void)` defined before.  Defines
 * `const cp_isa_config cp_isa_config__<isa>`.
 */
#define CP_TEMPLATE "cp_tpl_isa.h"
#include "cp_each_dtype.h"

#define CP_STR_(x) #x
#define CP_STR(x) CP_STR_(x)

const cp_isa_config CP_ISA_FN(cp_isa_config) = {
    .name = CP_STR(CP_ISA),
    .compiled = 1,
    .emulated = CP_ISA_EMULATED,
    .supported = CP_ISA_FN(cp_isa_supported),
    .gemm_f32 = CP_ISA_FN(cp_gemm_tiles_f32),
    .gemm_f64 = CP_ISA_FN(cp_gemm_tiles_f64),
    .depthwise_f32 = CP_ISA_FN(cp_dwconv2d_nhwc_f32),
    .depthwise_f64 = CP_ISA_FN(cp_dwconv2d_nhwc_f64),
    .winograd_f32 = CP_ISA_FN(cp_winograd_unit_f32),
    .winograd_f64 = CP_ISA_FN(cp_winograd_unit_f64),
    .wgw_chunk_f32 = CP_ISA_FN(cp_wgw_chunk_f32),
    .wgw_chunk_f64 = CP_ISA_FN(cp_wgw_chunk_f64),
    .maxpool_f32 = CP_ISA_FN(cp_maxpool2d_nhwc_f32),
    .maxpool_f64 = CP_ISA_FN(cp_maxpool2d_nhwc_f64),
    .avgpool_f32 = CP_ISA_FN(cp_avgpool2d_nhwc_f32),
    .avgpool_f64 = CP_ISA_FN(cp_avgpool2d_nhwc_f64),
    .maxpool_direct_f32 = CP_ISA_FN(cp_maxpool2d_direct_f32),
    .maxpool_direct_f64 = CP_ISA_FN(cp_maxpool2d_direct_f64),
    .maxpool_bwd_run_f32 = CP_ISA_FN(cp_maxpool2d_bwd_run_f32),
    .maxpool_bwd_run_f64 = CP_ISA_FN(cp_maxpool2d_bwd_run_f64),
    .wgrad_direct_f32 = CP_ISA_FN(cp_wgrad_direct_f32),
    .wgrad_direct_f64 = CP_ISA_FN(cp_wgrad_direct_f64),
    .wgrad_depthwise_f32 = CP_ISA_FN(cp_wgrad_depthwise_f32),
    .wgrad_depthwise_f64 = CP_ISA_FN(cp_wgrad_depthwise_f64),
    .transpose_f32 = CP_ISA_FN(cp_transpose_f32),
    .transpose_f64 = CP_ISA_FN(cp_transpose_f64),
};

#undef CP_STR
#undef CP_STR_
