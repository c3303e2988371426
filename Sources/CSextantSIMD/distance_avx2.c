// AVX2 + FMA float distance kernels for graph traversal, picked at run time.
//
// They do not follow the Swift kernels' canonical accumulation order (FMA rounds once per
// multiply-add; the lanes are summed differently), so results differ from Distance's in the
// last bits; the bound is in sextant_simd.h. Only traversal uses them: exact plans keep the
// Swift kernels, whose results are identical however a pair is batched.
#include "sextant_simd.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SEXTANT_X86 1
#else
#define SEXTANT_X86 0
#endif

#include <stdlib.h>

// -1 = not yet known. A benign race: every thread computes the same answer.
static volatile int fast_cached = -1;
// Per thread, so a test forcing the portable path does not switch the kernels under searches
// running on other threads.
static _Thread_local int force_portable = 0;

int sextant_cpu_has_avx2_fma(void) {
#if SEXTANT_X86
    int v = fast_cached;
    if (v < 0) {
        __builtin_cpu_init();
        v = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
        const char *env = getenv("SEXTANT_PORTABLE_KERNELS");
        if (env && env[0] == '1') v = 0;
        fast_cached = v;
    }
    return v;
#else
    return 0;
#endif
}

int sextant_distance_dispatch(void) {
    return force_portable ? 0 : sextant_cpu_has_avx2_fma();
}

void sextant_distance_force_portable(int force) { force_portable = force; }

#if SEXTANT_X86

// Lanes 0..<r of a mask for _mm256_maskload_ps (r < 8): masked-off lanes are not read, so a
// vector that ends at the end of a mapping is never over-read.
__attribute__((target("avx2,fma")))
static inline __m256i tail_mask(size_t r) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), lanes);
}

__attribute__((target("avx2,fma")))
static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#define LD(p, i) _mm256_loadu_ps((const float *)(p) + (i))
#define LDM(p, i, m) _mm256_maskload_ps((const float *)(p) + (i), (m))

// One 8-lane accumulator per pair, 8 floats a step, a masked last step, then hsum: the order
// the four-vector kernels use too, so a pair scores the same alone or batched. (Two
// accumulators would shorten the FMA chain, but traversal is bound by cache misses.)
__attribute__((target("avx2,fma")))
float sextant_l2sq_avx2(const void *a, const void *b, size_t d) {
    __m256 s = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        __m256 t = _mm256_sub_ps(LD(a, i), LD(b, i));
        s = _mm256_fmadd_ps(t, t, s);
    }
    if (i < d) {
        __m256i m = tail_mask(d - i);
        __m256 t = _mm256_sub_ps(LDM(a, i, m), LDM(b, i, m));
        s = _mm256_fmadd_ps(t, t, s);
    }
    return hsum(s);
}

__attribute__((target("avx2,fma")))
float sextant_dot_avx2(const void *a, const void *b, size_t d) {
    __m256 s = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= d; i += 8) s = _mm256_fmadd_ps(LD(a, i), LD(b, i), s);
    if (i < d) {
        __m256i m = tail_mask(d - i);
        s = _mm256_fmadd_ps(LDM(a, i, m), LDM(b, i, m), s);
    }
    return hsum(s);
}

__attribute__((target("avx2,fma")))
void sextant_dot_norm_avx2(const void *q, const void *x, size_t d, float *dot, float *norm_squared) {
    __m256 s = _mm256_setzero_ps(), n = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        __m256 v = LD(x, i);
        s = _mm256_fmadd_ps(LD(q, i), v, s);
        n = _mm256_fmadd_ps(v, v, n);
    }
    if (i < d) {
        __m256i m = tail_mask(d - i);
        __m256 v = LDM(x, i, m);
        s = _mm256_fmadd_ps(LDM(q, i, m), v, s);
        n = _mm256_fmadd_ps(v, v, n);
    }
    *dot = hsum(s);
    *norm_squared = hsum(n);
}

// Four vectors against one query: each query chunk is loaded once, and the four vectors'
// loads (scattered cache misses in a traversal) are in flight together.
#define FOUR_KERNEL(NAME, TERM)                                                                  \
__attribute__((target("avx2,fma")))                                                             \
static void NAME(const void *q, const void *const *x, size_t d, float *out) {                   \
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();                                  \
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();                                  \
    const void *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];                                  \
    size_t i = 0;                                                                               \
    for (; i + 8 <= d; i += 8) {                                                                \
        __m256 v = LD(q, i);                                                                    \
        s0 = TERM(v, LD(x0, i), s0);                                                            \
        s1 = TERM(v, LD(x1, i), s1);                                                            \
        s2 = TERM(v, LD(x2, i), s2);                                                            \
        s3 = TERM(v, LD(x3, i), s3);                                                            \
    }                                                                                           \
    if (i < d) {                                                                                \
        __m256i m = tail_mask(d - i);                                                           \
        __m256 v = LDM(q, i, m);                                                                \
        s0 = TERM(v, LDM(x0, i, m), s0);                                                        \
        s1 = TERM(v, LDM(x1, i, m), s1);                                                        \
        s2 = TERM(v, LDM(x2, i, m), s2);                                                        \
        s3 = TERM(v, LDM(x3, i, m), s3);                                                        \
    }                                                                                           \
    out[0] = hsum(s0); out[1] = hsum(s1); out[2] = hsum(s2); out[3] = hsum(s3);                 \
}

#define L2_TERM(q, x, s) ({ __m256 t_ = _mm256_sub_ps((q), (x)); _mm256_fmadd_ps(t_, t_, (s)); })
#define DOT_TERM(q, x, s) _mm256_fmadd_ps((q), (x), (s))

FOUR_KERNEL(l2sq_four, L2_TERM)
FOUR_KERNEL(dot_four, DOT_TERM)

// Prefetches the vectors of group g + 1 while group g is scored: its addresses are known, and
// the group after is what the CPU would otherwise stall on.
static inline void prefetch_group(const void *const *x, size_t from, size_t n, size_t bytes) {
    size_t end = from + 4 < n ? from + 4 : n;
    for (size_t j = from; j < end; j++) sextant_prefetch(x[j], bytes);
}

__attribute__((target("avx2,fma")))
void sextant_l2sq_batch_avx2(const void *q, const void *const *x, size_t n, size_t d, float *out) {
    size_t bytes = 4 * d;
    prefetch_group(x, 0, n, bytes);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        prefetch_group(x, i + 4, n, bytes);
        l2sq_four(q, x + i, d, out + i);
    }
    for (; i < n; i++) out[i] = sextant_l2sq_avx2(q, x[i], d);
}

__attribute__((target("avx2,fma")))
void sextant_dot_batch_avx2(const void *q, const void *const *x, size_t n, size_t d, float *out) {
    size_t bytes = 4 * d;
    prefetch_group(x, 0, n, bytes);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        prefetch_group(x, i + 4, n, bytes);
        dot_four(q, x + i, d, out + i);
    }
    for (; i < n; i++) out[i] = sextant_dot_avx2(q, x[i], d);
}

#else

// Never called (sextant_distance_dispatch() is 0 off x86); scalar so the symbols exist.
float sextant_l2sq_avx2(const void *a, const void *b, size_t d) {
    const float *x = a, *y = b;
    float s = 0;
    for (size_t i = 0; i < d; i++) s += (x[i] - y[i]) * (x[i] - y[i]);
    return s;
}

float sextant_dot_avx2(const void *a, const void *b, size_t d) {
    const float *x = a, *y = b;
    float s = 0;
    for (size_t i = 0; i < d; i++) s += x[i] * y[i];
    return s;
}

void sextant_dot_norm_avx2(const void *q, const void *x, size_t d, float *dot, float *norm_squared) {
    *dot = sextant_dot_avx2(q, x, d);
    *norm_squared = sextant_dot_avx2(x, x, d);
}

void sextant_l2sq_batch_avx2(const void *q, const void *const *x, size_t n, size_t d, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = sextant_l2sq_avx2(q, x[i], d);
}

void sextant_dot_batch_avx2(const void *q, const void *const *x, size_t n, size_t d, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = sextant_dot_avx2(q, x[i], d);
}

#endif
