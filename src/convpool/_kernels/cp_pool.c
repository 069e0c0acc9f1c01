/*
 * Pooling kernels: the row functions of cp_pool_impl.h compiled once per ISA,
 * plus the plan and the dispatching entry points.
 */
#include <math.h>

#include "cp_internal.h"

/* Elements of the vertical-pass buffer one tile aims for (32 KiB of float32). */
#define CP_POOL_SPAN_ELEMS 8192

#define CP_POOL_ISA baseline
#define CP_POOL_ATTR
#include "cp_pool_impl.h"
#undef CP_POOL_ISA
#undef CP_POOL_ATTR

#if CP_BUILD_AVX2
#define CP_POOL_ISA avx2
#define CP_POOL_ATTR CP_TARGET_AVX2
#include "cp_pool_impl.h"
#undef CP_POOL_ISA
#undef CP_POOL_ATTR
#endif

void cp_pool_plan(cp_pool_geom *g)
{
    int64_t tile = 1;
    /* With stride > pool size the vertical pass would also cover the columns
     * between windows; one pixel per tile avoids that. */
    if (g->sw <= g->kw && CP_POOL_SPAN_ELEMS / g->c > g->kw)
        tile = (CP_POOL_SPAN_ELEMS / g->c - g->kw) / g->sw + 1;
    if (tile > g->ow)
        tile = g->ow;
    g->tile = tile;
}

/* v (span * C) and u (span * C) for the widest tile. */
int64_t cp_pool_scratch_elems(const cp_pool_geom *g)
{
    return 2 * ((g->tile - 1) * g->sw + g->kw) * g->c;
}

void cp_maxpool2d_nhwc_row_f32(const cp_pool_geom *g, const float *x, float *y, int64_t row,
                               float *scratch)
{
    cp_active.maxpool_f32(g, x, y, row, scratch);
}

void cp_maxpool2d_nhwc_row_f64(const cp_pool_geom *g, const double *x, double *y, int64_t row,
                               double *scratch)
{
    cp_active.maxpool_f64(g, x, y, row, scratch);
}

void cp_avgpool2d_nhwc_row_f32(const cp_pool_geom *g, const float *x, float *y, int64_t row,
                               float *scratch)
{
    cp_active.avgpool_f32(g, x, y, row, scratch);
}

void cp_avgpool2d_nhwc_row_f64(const cp_pool_geom *g, const double *x, double *y, int64_t row,
                               double *scratch)
{
    cp_active.avgpool_f64(g, x, y, row, scratch);
}
