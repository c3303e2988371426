// 8-bit scalar-quantized distances for graph traversal (ScalarQuantizer in SextantKernels).
//
// Integer arithmetic: a sum of products of int16 query components and int8 codes is exact in
// any order, so these kernels and the portable Swift loops give identical results; dispatch
// only changes the speed. The query is widened to int16 once; each code row is sign-extended
// 16 components at a time and multiplied pairwise into int32 lanes (vpmaddwd).
#include "sextant_simd.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

__attribute__((target("avx2")))
static inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

__attribute__((target("avx2")))
static inline void prefetch_rows(const int8_t *const *x, size_t from, size_t n, size_t d) {
    // Every line of each row (sextant_prefetch covers the last line of a row that starts inside one).
    for (size_t j = from; j < n && j < from + 4; j++) sextant_prefetch(x[j], d);
}

__attribute__((target("avx2")))
static int32_t one_row(int l2, const int16_t *q, const int8_t *x, size_t d) {
    __m256i acc = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m256i xv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x + i)));
        __m256i qv = _mm256_loadu_si256((const __m256i *)(q + i));
        if (l2) {
            __m256i t = _mm256_sub_epi16(qv, xv);
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(t, t));
        } else {
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(qv, xv));
        }
    }
    int32_t s = hsum_epi32(acc);
    for (; i < d; i++) {
        int32_t t = (int32_t)q[i] - (int32_t)x[i];
        s += l2 ? t * t : (int32_t)q[i] * (int32_t)x[i];
    }
    return s;
}

__attribute__((target("avx2")))
void sextant_sq8_batch_avx2(int l2, const int16_t *q, const int8_t *const *x, size_t n, size_t d, int32_t *out) {
    prefetch_rows(x, 0, n, d);
    for (size_t j = 0; j < n; j++) {
        if ((j & 3) == 0) prefetch_rows(x, j + 4, n, d);
        out[j] = one_row(l2, q, x[j], d);
    }
}

#else

void sextant_sq8_batch_avx2(int l2, const int16_t *q, const int8_t *const *x, size_t n, size_t d, int32_t *out) {
    for (size_t j = 0; j < n; j++) {
        int32_t s = 0;
        for (size_t i = 0; i < d; i++) {
            int32_t t = (int32_t)q[i] - (int32_t)x[j][i];
            s += l2 ? t * t : (int32_t)q[i] * (int32_t)x[j][i];
        }
        out[j] = s;
    }
}

#endif
