// Nearest-centroid search for k-means training and PQ encoding.
#include "sextant_simd.h"
#include <stdlib.h>

// Results must not depend on the instruction set: forbid fusing a*b+c into FMA anywhere here.
#pragma clang fp contract(off)

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SEXTANT_X86 1
#else
#define SEXTANT_X86 0
#endif

// Picks the smallest value over lanes, the smallest index among equal values.
static inline int32_t best_of(const float *v, const int32_t *idx, int lanes) {
    float bv = v[0];
    int32_t bi = idx[0];
    for (int l = 1; l < lanes; l++) {
        if (v[l] < bv || (v[l] == bv && idx[l] < bi)) { bv = v[l]; bi = idx[l]; }
    }
    return bi;
}

// Portable: one point at a time against blocks of 16 centroids (contiguous in the transposed
// table, so a block's rows stream through the cache), with the vector versions' per-centroid
// operation order.
static void nearest_portable(const float *points, size_t count, size_t stride, size_t dim,
                             const float *ct, const float *norms, size_t k, int32_t *out) {
    for (size_t p = 0; p < count; p++) {
        float bv = __builtin_inff();
        int32_t bi = 0;
        for (size_t c0 = 0; c0 < k; c0 += 16) {
            size_t n = k - c0 < 16 ? k - c0 : 16;
            float acc[16];
            for (size_t c = 0; c < n; c++) acc[c] = norms[c0 + c];
            for (size_t i = 0; i < dim; i++) {
                float x = -2.0f * points[i * stride + p];
                const float *row = ct + i * k + c0;
                for (size_t c = 0; c < n; c++) acc[c] = acc[c] + x * row[c];
            }
            for (size_t c = 0; c < n; c++) {
                if (acc[c] < bv) { bv = acc[c]; bi = (int32_t)(c0 + c); }
            }
        }
        out[p] = bi;
    }
}

#if SEXTANT_X86
// Eight points at a time share every centroid load; their -2x coordinates are broadcast once
// per group into a table (on the stack up to MAX_DIM coordinates, on the heap above: a coarse
// quantizer's full vectors). A partial group repeats its last point and drops the extra results.
// Per lane the running minimum uses strict "<", so the earliest centroid wins ties within a
// lane; best_of() then resolves across lanes.
#define GROUP 8
#define MAX_DIM 32

static void nearest_sse2(const float *points, size_t count, size_t stride, size_t dim,
                         const float *ct, const float *norms, size_t k, int32_t *out) {
    __m128 stack[MAX_DIM * GROUP];
    __m128 *xb = dim <= MAX_DIM ? stack : aligned_alloc(sizeof(__m128), dim * GROUP * sizeof(__m128));
    if (!xb) {
        nearest_portable(points, count, stride, dim, ct, norms, k, out);
        return;
    }
    for (size_t p = 0; p < count; p += GROUP) {
        size_t np = count - p < GROUP ? count - p : GROUP;
        for (size_t i = 0; i < dim; i++)
            for (size_t j = 0; j < GROUP; j++)
                xb[i * GROUP + j] = _mm_set1_ps(-2.0f * points[i * stride + p + (j < np ? j : np - 1)]);
        __m128 best[GROUP];
        __m128i bidx[GROUP];
        for (int j = 0; j < GROUP; j++) { best[j] = _mm_set1_ps(__builtin_inff()); bidx[j] = _mm_setzero_si128(); }
        for (size_t b = 0; b < k; b += 4) {
            __m128 acc[GROUP];
            __m128 base = _mm_loadu_ps(norms + b);
            for (int j = 0; j < GROUP; j++) acc[j] = base;
            for (size_t i = 0; i < dim; i++) {
                __m128 c = _mm_loadu_ps(ct + i * k + b);
                for (int j = 0; j < GROUP; j++) acc[j] = _mm_add_ps(acc[j], _mm_mul_ps(xb[i * GROUP + j], c));
            }
            __m128i ci = _mm_add_epi32(_mm_set1_epi32((int)b), _mm_setr_epi32(0, 1, 2, 3));
            for (int j = 0; j < GROUP; j++) {
                __m128 lt = _mm_cmplt_ps(acc[j], best[j]);
                best[j] = _mm_or_ps(_mm_and_ps(lt, acc[j]), _mm_andnot_ps(lt, best[j]));
                __m128i m = _mm_castps_si128(lt);
                bidx[j] = _mm_or_si128(_mm_and_si128(m, ci), _mm_andnot_si128(m, bidx[j]));
            }
        }
        for (size_t j = 0; j < np; j++) {
            float v[4];
            int32_t idx[4];
            _mm_storeu_ps(v, best[j]);
            _mm_storeu_si128((__m128i *)idx, bidx[j]);
            out[p + j] = best_of(v, idx, 4);
        }
    }
    if (xb != stack) free(xb);
}

// best_of() for 8 lanes without a branchy loop in the common case: one lane holds the minimum.
__attribute__((target("avx2")))
static inline int32_t best_of_avx2(__m256 v, __m256i idx) {
    __m256 t = _mm256_min_ps(v, _mm256_permute2f128_ps(v, v, 1));
    t = _mm256_min_ps(t, _mm256_shuffle_ps(t, t, _MM_SHUFFLE(1, 0, 3, 2)));
    t = _mm256_min_ps(t, _mm256_shuffle_ps(t, t, _MM_SHUFFLE(2, 3, 0, 1)));
    unsigned mask = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, t, _CMP_EQ_OQ));
    float vs[8];
    int32_t is[8];
    _mm256_storeu_si256((__m256i *)is, idx);
    if (mask != 0 && (mask & (mask - 1)) == 0) return is[__builtin_ctz(mask)];
    _mm256_storeu_ps(vs, v);
    return best_of(vs, is, 8);
}

__attribute__((target("avx2")))
static void nearest_avx2(const float *points, size_t count, size_t stride, size_t dim,
                         const float *ct, const float *norms, size_t k, int32_t *out) {
    __m256 stack[MAX_DIM * GROUP];
    __m256 *xb = dim <= MAX_DIM ? stack : aligned_alloc(sizeof(__m256), dim * GROUP * sizeof(__m256));
    if (!xb) {
        nearest_portable(points, count, stride, dim, ct, norms, k, out);
        return;
    }
    for (size_t p = 0; p < count; p += GROUP) {
        size_t np = count - p < GROUP ? count - p : GROUP;
        for (size_t i = 0; i < dim; i++)
            for (size_t j = 0; j < GROUP; j++)
                xb[i * GROUP + j] = _mm256_set1_ps(-2.0f * points[i * stride + p + (j < np ? j : np - 1)]);
        __m256 best[GROUP];
        __m256i bidx[GROUP];
        for (int j = 0; j < GROUP; j++) { best[j] = _mm256_set1_ps(__builtin_inff()); bidx[j] = _mm256_setzero_si256(); }
        for (size_t b = 0; b < k; b += 8) {
            __m256 acc[GROUP];
            __m256 base = _mm256_loadu_ps(norms + b);
            for (int j = 0; j < GROUP; j++) acc[j] = base;
            for (size_t i = 0; i < dim; i++) {
                __m256 c = _mm256_loadu_ps(ct + i * k + b);
                for (int j = 0; j < GROUP; j++) acc[j] = _mm256_add_ps(acc[j], _mm256_mul_ps(xb[i * GROUP + j], c));
            }
            __m256i ci = _mm256_add_epi32(_mm256_set1_epi32((int)b), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            for (int j = 0; j < GROUP; j++) {
                __m256 lt = _mm256_cmp_ps(acc[j], best[j], _CMP_LT_OQ);
                best[j] = _mm256_blendv_ps(best[j], acc[j], lt);
                bidx[j] = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(bidx[j]), _mm256_castsi256_ps(ci), lt));
            }
        }
        for (size_t j = 0; j < np; j++) out[p + j] = best_of_avx2(best[j], bidx[j]);
    }
    if (xb != stack) free(xb);
}
#endif


void sextant_nearest_centroids_baseline(const float *points, size_t count, size_t stride, size_t dimension,
                                        const float *centroids_t, const float *norms, size_t k, int32_t *out) {
#if SEXTANT_X86
    nearest_sse2(points, count, stride, dimension, centroids_t, norms, k, out);
#else
    nearest_portable(points, count, stride, dimension, centroids_t, norms, k, out);
#endif
}

void sextant_nearest_centroids_portable(const float *points, size_t count, size_t stride, size_t dimension,
                                        const float *centroids_t, const float *norms, size_t k, int32_t *out) {
    nearest_portable(points, count, stride, dimension, centroids_t, norms, k, out);
}

void sextant_nearest_centroids(const float *points, size_t count, size_t stride, size_t dimension,
                               const float *centroids_t, const float *norms, size_t k, int32_t *out) {
#if SEXTANT_X86
    if (sextant_cpu_has_avx2()) {
        nearest_avx2(points, count, stride, dimension, centroids_t, norms, k, out);
        return;
    }
#endif
    sextant_nearest_centroids_baseline(points, count, stride, dimension, centroids_t, norms, k, out);
}

void sextant_update_nearest(const float *points, size_t count, size_t dim,
                            const float *centroid, float *nearest) {
    // Blocks of 64 points, coordinates outer and points inner so the compiler vectorises the
    // contiguous inner loop; each point still sums its terms in coordinate order.
    float acc[64];
    for (size_t p0 = 0; p0 < count; p0 += 64) {
        size_t n = count - p0 < 64 ? count - p0 : 64;
        for (size_t p = 0; p < n; p++) acc[p] = 0.0f;
        for (size_t i = 0; i < dim; i++) {
            const float *row = points + i * count + p0;
            float c = centroid[i];
            for (size_t p = 0; p < n; p++) {
                float d = row[p] - c;
                float sq = d * d;
                acc[p] = acc[p] + sq;
            }
        }
        for (size_t p = 0; p < n; p++) {
            if (acc[p] < nearest[p0 + p]) nearest[p0 + p] = acc[p];
        }
    }
}
