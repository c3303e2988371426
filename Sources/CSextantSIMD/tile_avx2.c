// AVX2 version of the Swift tile kernel, in its canonical accumulation order.
//
// Unlike the traversal kernels (distance_avx2.c), this one gives results bit-identical to the
// Swift kernels (PairKernels.swift): per pair one 16-lane accumulator (two YMM halves) over
// chunks of 16 floats, the last chunk zero-padded, each chunk's terms added lane-wise with a
// separate multiply and add (never fused), then lanes 0-7 + 8-15, 0-3 + 4-7, 0-1 + 2-3, 0 + 1.
// Exact plans may therefore use it: a pair's distance does not depend on the path taken.
#include "sextant_simd.h"
#include <string.h>

#pragma clang fp contract(off)

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

// Lanes 0-7 (lo) and 8-15 (hi) of the accumulator reduced in the canonical order.
__attribute__((target("avx2")))
static inline float canonical_hsum(__m256 lo, __m256 hi) {
    __m256 v8 = _mm256_add_ps(lo, hi);
    __m128 v4 = _mm_add_ps(_mm256_castps256_ps128(v8), _mm256_extractf128_ps(v8, 1));
    __m128 v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4));
    return _mm_cvtss_f32(_mm_add_ss(v2, _mm_shuffle_ps(v2, v2, 1)));
}

// One chunk's term added to a pair's accumulator: (q - x)^2 for L2, q * x for the dot.
#define TERM(l2, q, x) ((l2) ? _mm256_mul_ps(_mm256_sub_ps(q, x), _mm256_sub_ps(q, x)) : _mm256_mul_ps(q, x))

// Vector j of a tile: at `vectors + j * stride`, or at `list[j]` when a list is given.
#define ROW(j) ((const float *)(list ? list[j] : (const void *)(vectors + (j) * stride)))

// Rows 2 at a time (q1 may equal q0 when rows == 1; out1 is then unused) against `count`
// vectors, two at a time; the zero-padded tails of the queries are prepared once. Vectors are
// strided (`list` NULL) or listed by address; each caller passes one of the two as a constant,
// so the inlined copy has no per-vector branch.
__attribute__((target("avx2"), always_inline))
static inline void tile_rows(int l2, const float *q0, const float *q1, int rows, const unsigned char *vectors, size_t stride,
                             const void *const *list, size_t count, size_t d, float *out0, float *out1) {
    size_t full = d / 16 * 16, r = d - full;
    float tq0[16] = {0}, tq1[16] = {0};
    if (r) {
        memcpy(tq0, q0 + full, r * 4);
        memcpy(tq1, q1 + full, r * 4);
    }
    size_t j = 0;
    for (; j + 2 <= count; j += 2) {
        const float *x0 = ROW(j), *x1 = ROW(j + 1);
        __m256 a0l = _mm256_setzero_ps(), a0h = a0l, a1l = a0l, a1h = a0l, b0l = a0l, b0h = a0l, b1l = a0l, b1h = a0l;
        for (size_t i = 0; i < full; i += 16) {
            __m256 ul = _mm256_loadu_ps(x0 + i), uh = _mm256_loadu_ps(x0 + i + 8);
            __m256 vl = _mm256_loadu_ps(x1 + i), vh = _mm256_loadu_ps(x1 + i + 8);
            __m256 sl = _mm256_loadu_ps(q0 + i), sh = _mm256_loadu_ps(q0 + i + 8);
            a0l = _mm256_add_ps(a0l, TERM(l2, sl, ul)); a0h = _mm256_add_ps(a0h, TERM(l2, sh, uh));
            b0l = _mm256_add_ps(b0l, TERM(l2, sl, vl)); b0h = _mm256_add_ps(b0h, TERM(l2, sh, vh));
            if (rows == 2) {
                sl = _mm256_loadu_ps(q1 + i); sh = _mm256_loadu_ps(q1 + i + 8);
                a1l = _mm256_add_ps(a1l, TERM(l2, sl, ul)); a1h = _mm256_add_ps(a1h, TERM(l2, sh, uh));
                b1l = _mm256_add_ps(b1l, TERM(l2, sl, vl)); b1h = _mm256_add_ps(b1h, TERM(l2, sh, vh));
            }
        }
        if (r) {
            float t0[16] = {0}, t1[16] = {0};
            memcpy(t0, x0 + full, r * 4);
            memcpy(t1, x1 + full, r * 4);
            __m256 ul = _mm256_loadu_ps(t0), uh = _mm256_loadu_ps(t0 + 8);
            __m256 vl = _mm256_loadu_ps(t1), vh = _mm256_loadu_ps(t1 + 8);
            __m256 sl = _mm256_loadu_ps(tq0), sh = _mm256_loadu_ps(tq0 + 8);
            a0l = _mm256_add_ps(a0l, TERM(l2, sl, ul)); a0h = _mm256_add_ps(a0h, TERM(l2, sh, uh));
            b0l = _mm256_add_ps(b0l, TERM(l2, sl, vl)); b0h = _mm256_add_ps(b0h, TERM(l2, sh, vh));
            if (rows == 2) {
                sl = _mm256_loadu_ps(tq1); sh = _mm256_loadu_ps(tq1 + 8);
                a1l = _mm256_add_ps(a1l, TERM(l2, sl, ul)); a1h = _mm256_add_ps(a1h, TERM(l2, sh, uh));
                b1l = _mm256_add_ps(b1l, TERM(l2, sl, vl)); b1h = _mm256_add_ps(b1h, TERM(l2, sh, vh));
            }
        }
        out0[j] = canonical_hsum(a0l, a0h);
        out0[j + 1] = canonical_hsum(b0l, b0h);
        if (rows == 2) {
            out1[j] = canonical_hsum(a1l, a1h);
            out1[j + 1] = canonical_hsum(b1l, b1h);
        }
    }
    // The odd last vector: the same steps for one vector. (Sharing one 2x2 step function with
    // the loop above, the last vector paired with itself, measured 3-4 % slower on pypi's exact
    // batch, so the loop stays written out.)
    if (j < count) {
        const float *x0 = ROW(j);
        __m256 a0l = _mm256_setzero_ps(), a0h = a0l, a1l = a0l, a1h = a0l;
        for (size_t i = 0; i < full; i += 16) {
            __m256 ul = _mm256_loadu_ps(x0 + i), uh = _mm256_loadu_ps(x0 + i + 8);
            __m256 sl = _mm256_loadu_ps(q0 + i), sh = _mm256_loadu_ps(q0 + i + 8);
            a0l = _mm256_add_ps(a0l, TERM(l2, sl, ul)); a0h = _mm256_add_ps(a0h, TERM(l2, sh, uh));
            if (rows == 2) {
                sl = _mm256_loadu_ps(q1 + i); sh = _mm256_loadu_ps(q1 + i + 8);
                a1l = _mm256_add_ps(a1l, TERM(l2, sl, ul)); a1h = _mm256_add_ps(a1h, TERM(l2, sh, uh));
            }
        }
        if (r) {
            float t0[16] = {0};
            memcpy(t0, x0 + full, r * 4);
            __m256 ul = _mm256_loadu_ps(t0), uh = _mm256_loadu_ps(t0 + 8);
            __m256 sl = _mm256_loadu_ps(tq0), sh = _mm256_loadu_ps(tq0 + 8);
            a0l = _mm256_add_ps(a0l, TERM(l2, sl, ul)); a0h = _mm256_add_ps(a0h, TERM(l2, sh, uh));
            if (rows == 2) {
                sl = _mm256_loadu_ps(tq1); sh = _mm256_loadu_ps(tq1 + 8);
                a1l = _mm256_add_ps(a1l, TERM(l2, sl, ul)); a1h = _mm256_add_ps(a1h, TERM(l2, sh, uh));
            }
        }
        out0[j] = canonical_hsum(a0l, a0h);
        if (rows == 2) out1[j] = canonical_hsum(a1l, a1h);
    }
}

__attribute__((target("avx2")))
float sextant_pair_avx2(int l2, const float *q, const float *x, size_t d) {
    size_t full = d / 16 * 16, r = d - full;
    __m256 al = _mm256_setzero_ps(), ah = al;
    for (size_t i = 0; i < full; i += 16) {
        __m256 ql = _mm256_loadu_ps(q + i), qh = _mm256_loadu_ps(q + i + 8);
        __m256 xl = _mm256_loadu_ps(x + i), xh = _mm256_loadu_ps(x + i + 8);
        al = _mm256_add_ps(al, TERM(l2, ql, xl));
        ah = _mm256_add_ps(ah, TERM(l2, qh, xh));
    }
    if (r) {
        float tq[16] = {0}, tx[16] = {0};
        memcpy(tq, q + full, r * 4);
        memcpy(tx, x + full, r * 4);
        __m256 ql = _mm256_loadu_ps(tq), qh = _mm256_loadu_ps(tq + 8);
        __m256 xl = _mm256_loadu_ps(tx), xh = _mm256_loadu_ps(tx + 8);
        al = _mm256_add_ps(al, TERM(l2, ql, xl));
        ah = _mm256_add_ps(ah, TERM(l2, qh, xh));
    }
    return canonical_hsum(al, ah);
}

__attribute__((target("avx2")))
void sextant_tile_rows_avx2(int l2, const float *q0, const float *q1, const void *vectors, size_t stride_bytes,
                            size_t count, size_t dimension, float *out0, float *out1) {
    tile_rows(l2, q0, q1 ? q1 : q0, q1 ? 2 : 1, (const unsigned char *)vectors, stride_bytes, NULL, count, dimension,
              out0, out1);
}

__attribute__((target("avx2")))
void sextant_tile_list_avx2(int l2, const float *q0, const float *q1, const void *const *vectors, size_t count,
                            size_t dimension, float *out0, float *out1) {
    tile_rows(l2, q0, q1 ? q1 : q0, q1 ? 2 : 1, NULL, 0, vectors, count, dimension, out0, out1);
}

#else

// Never called (sextant_distance_dispatch() is 0 off x86).
float sextant_pair_avx2(int l2, const float *q, const float *x, size_t d) {
    (void)l2; (void)q; (void)x; (void)d;
    return 0;
}

void sextant_tile_rows_avx2(int l2, const float *q0, const float *q1, const void *vectors, size_t stride_bytes,
                            size_t count, size_t dimension, float *out0, float *out1) {
    (void)l2; (void)q0; (void)q1; (void)vectors; (void)stride_bytes; (void)count; (void)dimension; (void)out0; (void)out1;
}

void sextant_tile_list_avx2(int l2, const float *q0, const float *q1, const void *const *vectors, size_t count,
                            size_t dimension, float *out0, float *out1) {
    (void)l2; (void)q0; (void)q1; (void)vectors; (void)count; (void)dimension; (void)out0; (void)out1;
}

#endif
