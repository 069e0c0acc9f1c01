/*
 * The baseline variant: portable C for whatever target the extension is
 * compiled for (SSE2 on x86-64).  Always compiled, always supported.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cp_internal.h"

#define CP_ISA baseline

#define CP_TEMPLATE "cp_tpl_baseline.h"
#include "cp_each_dtype.h"

static int supported(void) { return 1; }

const cp_isa_config cp_isa_config__baseline = {
    .name = "baseline",
    .compiled = 1,
    .supported = supported,
    .gemm_f32 = cp_gemm_tiles_f32__baseline,
    .gemm_f64 = cp_gemm_tiles_f64__baseline,
    .depthwise_f32 = cp_dwconv2d_nhwc_f32__baseline,
    .depthwise_f64 = cp_dwconv2d_nhwc_f64__baseline,
    .winograd_f32 = cp_winograd_unit_f32__baseline,
    .winograd_f64 = cp_winograd_unit_f64__baseline,
    .wgw_chunk_f32 = cp_wgw_chunk_f32__baseline,
    .wgw_chunk_f64 = cp_wgw_chunk_f64__baseline,
    .maxpool_f32 = cp_maxpool2d_nhwc_f32__baseline,
    .maxpool_f64 = cp_maxpool2d_nhwc_f64__baseline,
    .avgpool_f32 = cp_avgpool2d_nhwc_f32__baseline,
    .avgpool_f64 = cp_avgpool2d_nhwc_f64__baseline,
    .maxpool_direct_f32 = cp_maxpool2d_direct_f32__baseline,
    .maxpool_direct_f64 = cp_maxpool2d_direct_f64__baseline,
    .transpose_f32 = cp_transpose_f32__baseline,
    .transpose_f64 = cp_transpose_f64__baseline,
};
