// 8-bit ADC for a group of up to 32 queries at once (PQGroupTable in SextantKernels).
//
// Each query's float table is quantized to bytes (per sub-space minimum, one scale per query,
// as the 4-bit fast scan does) and the group's tables are interleaved: entry (j, c) of the 32
// lanes sits at lut[(j * 256 + c) * 32 + lane], 32 bytes. A code then costs one 32-byte read per
// sub-space for all 32 queries, instead of 32 scattered floats, and the interleaved table of
// m = 48 sub-spaces (384 KiB) stays in L2. Sums are integers (16-bit lanes; m <= 257 keeps them
// from wrapping), so every path gives the same sums.
#include "sextant_simd.h"
#include <string.h>

#pragma clang fp contract(off)

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SEXTANT_ADC8_X86 1

// Codes are read once per block of queries: fetched past L2 (non-temporal), so that they do
// not evict the interleaved table, which every code reads from.
static inline void prefetch_nta(const void *p, size_t bytes) {
    uintptr_t line = (uintptr_t)p & ~(uintptr_t)63, last = (uintptr_t)p + bytes - 1;
    for (; line <= last; line += 64) __builtin_prefetch((const void *)line, 0, 0);
}

// One entry's 32 bytes widened to 16-bit lanes and added to the accumulators. Lane order in
// the accumulators is that of _mm256_unpack{lo,hi}_epi8 (bytes 0-7 and 16-23 in lo, 8-15 and
// 24-31 in hi); the stores below undo it.
#define ADD_ENTRY(lo, hi, p) do { \
        __m256i x_ = _mm256_load_si256((const __m256i *)(p)); \
        lo = _mm256_add_epi16(lo, _mm256_unpacklo_epi8(x_, zero)); \
        hi = _mm256_add_epi16(hi, _mm256_unpackhi_epi8(x_, zero)); \
    } while (0)

__attribute__((target("avx2")))
static inline void store_lanes(uint16_t *out, __m256i lo, __m256i hi) {
    // lo = lanes 0-7 | 16-23, hi = 8-15 | 24-31: recombine the 128-bit halves in lane order.
    _mm256_storeu_si256((__m256i *)out, _mm256_permute2x128_si256(lo, hi, 0x20));
    _mm256_storeu_si256((__m256i *)(out + 16), _mm256_permute2x128_si256(lo, hi, 0x31));
}

__attribute__((target("avx2")))
static void group32_avx2(const uint8_t *lut, size_t m, const void *const *codes, size_t count, uint16_t *out) {
    const __m256i zero = _mm256_setzero_si256();
    size_t i = 0;
    // Two codes at a time, even and odd sub-spaces apart: eight independent addition chains.
    for (; i + 2 <= count; i += 2) {
        if (i + 9 < count) { prefetch_nta(codes[i + 8], m); prefetch_nta(codes[i + 9], m); }
        const uint8_t *c0 = (const uint8_t *)codes[i], *c1 = (const uint8_t *)codes[i + 1];
        __m256i a0 = zero, a1 = zero, b0 = zero, b1 = zero, e0 = zero, e1 = zero, f0 = zero, f1 = zero;
        size_t j = 0;
        for (; j + 2 <= m; j += 2) {
            const uint8_t *t = lut + j * 8192;
            ADD_ENTRY(a0, a1, t + ((size_t)c0[j] << 5));
            ADD_ENTRY(b0, b1, t + 8192 + ((size_t)c0[j + 1] << 5));
            ADD_ENTRY(e0, e1, t + ((size_t)c1[j] << 5));
            ADD_ENTRY(f0, f1, t + 8192 + ((size_t)c1[j + 1] << 5));
        }
        if (j < m) {
            const uint8_t *t = lut + j * 8192;
            ADD_ENTRY(a0, a1, t + ((size_t)c0[j] << 5));
            ADD_ENTRY(e0, e1, t + ((size_t)c1[j] << 5));
        }
        store_lanes(out + i * 32, _mm256_add_epi16(a0, b0), _mm256_add_epi16(a1, b1));
        store_lanes(out + i * 32 + 32, _mm256_add_epi16(e0, f0), _mm256_add_epi16(e1, f1));
    }
    for (; i < count; i++) {
        const uint8_t *c = (const uint8_t *)codes[i];
        __m256i a0 = zero, a1 = zero;
        for (size_t j = 0; j < m; j++) ADD_ENTRY(a0, a1, lut + j * 8192 + ((size_t)c[j] << 5));
        store_lanes(out + i * 32, a0, a1);
    }
}

// ADC table entries for 8 centroids at a time, in the portable loop's order (below).
__attribute__((target("avx2")))
static void pq_table_avx2(const float *centroids_t, size_t m, size_t k, size_t dsub, const float *query, float scale, int l2,
                          float *out) {
    for (size_t j = 0; j < m; j++) {
        const float *book = centroids_t + j * k * dsub;
        for (size_t b = 0; b < k; b += 8) {
            __m256 acc = _mm256_setzero_ps();
            for (size_t i = 0; i < dsub; i++) {
                __m256 c = _mm256_loadu_ps(book + i * k + b);
                __m256 q = _mm256_set1_ps(query[j * dsub + i] * scale);
                if (l2) {
                    __m256 d = _mm256_sub_ps(c, q);
                    acc = _mm256_add_ps(acc, _mm256_mul_ps(d, d));
                } else {
                    acc = _mm256_sub_ps(acc, _mm256_mul_ps(q, c));
                }
            }
            _mm256_storeu_ps(out + j * k + b, acc);
        }
    }
}

__attribute__((target("avx2")))
static size_t lanes_at_most_avx2(const uint16_t *sums, size_t rows, const uint16_t *limits, uint32_t *out) {
    const __m256i l0 = _mm256_loadu_si256((const __m256i *)limits), l1 = _mm256_loadu_si256((const __m256i *)(limits + 16));
    size_t found = 0;
    for (size_t i = 0; i < rows; i++) {
        const uint16_t *r = sums + i * 32;
        __m256i x0 = _mm256_loadu_si256((const __m256i *)r), x1 = _mm256_loadu_si256((const __m256i *)(r + 16));
        // x <= limit exactly when max(x, limit) == limit; two mask bits per 16-bit lane.
        unsigned m0 = (unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi16(_mm256_max_epu16(x0, l0), l0));
        unsigned m1 = (unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi16(_mm256_max_epu16(x1, l1), l1));
        if (!(m0 | m1)) continue;
        for (unsigned half = 0; half < 2; half++) {
            unsigned mask = half ? m1 : m0;
            while (mask) {
                unsigned bit = (unsigned)__builtin_ctz(mask);
                out[found++] = (uint32_t)(i * 32 + half * 16 + bit / 2);
                mask &= mask - 1;
                mask &= mask - 1;
            }
        }
    }
    return found;
}

// 16 x 16 bytes transposed with SSE2 (always present on x86-64): rows r[0..15] in, columns out.
static inline void transpose16(__m128i *r) {
    __m128i t[16];
    for (int k = 0; k < 8; k++) { t[k] = _mm_unpacklo_epi8(r[2 * k], r[2 * k + 1]); t[k + 8] = _mm_unpackhi_epi8(r[2 * k], r[2 * k + 1]); }
    for (int k = 0; k < 4; k++) {
        r[k] = _mm_unpacklo_epi16(t[2 * k], t[2 * k + 1]); r[k + 4] = _mm_unpackhi_epi16(t[2 * k], t[2 * k + 1]);
        r[k + 8] = _mm_unpacklo_epi16(t[8 + 2 * k], t[8 + 2 * k + 1]); r[k + 12] = _mm_unpackhi_epi16(t[8 + 2 * k], t[8 + 2 * k + 1]);
    }
    for (int k = 0; k < 2; k++)
        for (int g = 0; g < 4; g++) {
            t[g * 4 + 2 * k] = _mm_unpacklo_epi32(r[g * 4 + 2 * k], r[g * 4 + 2 * k + 1]);
            t[g * 4 + 2 * k + 1] = _mm_unpackhi_epi32(r[g * 4 + 2 * k], r[g * 4 + 2 * k + 1]);
        }
    // t now holds, per group g of four, columns in the order needed below.
    for (int g = 0; g < 4; g++) {
        __m128i a = t[g * 4], b = t[g * 4 + 1], c = t[g * 4 + 2], d = t[g * 4 + 3];
        r[g * 4] = _mm_unpacklo_epi64(a, c); r[g * 4 + 1] = _mm_unpackhi_epi64(a, c);
        r[g * 4 + 2] = _mm_unpacklo_epi64(b, d); r[g * 4 + 3] = _mm_unpackhi_epi64(b, d);
    }
}
#endif

void sextant_adc8_group32(const uint8_t *lut, size_t m, const void *const *codes, size_t count, uint16_t *out) {
#ifdef SEXTANT_ADC8_X86
    if (sextant_cpu_has_avx2()) { group32_avx2(lut, m, codes, count, out); return; }
#endif
    sextant_adc8_group32_scalar(lut, m, codes, count, out);
}

void sextant_adc8_group32_scalar(const uint8_t *lut, size_t m, const void *const *codes, size_t count, uint16_t *out) {
    for (size_t i = 0; i < count; i++) {
        const uint8_t *c = (const uint8_t *)codes[i];
        uint16_t acc[32] = {0};
        for (size_t j = 0; j < m; j++) {
            const uint8_t *e = lut + (j * 256 + c[j]) * 32;
            for (size_t l = 0; l < 32; l++) acc[l] = (uint16_t)(acc[l] + e[l]);
        }
        memcpy(out + i * 32, acc, sizeof acc);
    }
}

size_t sextant_lanes_at_most(const uint16_t *sums, size_t rows, const uint16_t *limits, uint32_t *out) {
#ifdef SEXTANT_ADC8_X86
    if (sextant_cpu_has_avx2()) return lanes_at_most_avx2(sums, rows, limits, out);
#endif
    size_t found = 0;
    for (size_t i = 0; i < rows; i++)
        for (size_t l = 0; l < 32; l++)
            if (sums[i * 32 + l] <= limits[l]) out[found++] = (uint32_t)(i * 32 + l);
    return found;
}

void sextant_interleave32(const uint8_t *const *tables, size_t entries, uint8_t *dst) {
    size_t e = 0;
#ifdef SEXTANT_ADC8_X86
    for (; e + 16 <= entries; e += 16) {
        for (int half = 0; half < 2; half++) {
            __m128i r[16];
            for (int l = 0; l < 16; l++) r[l] = _mm_loadu_si128((const __m128i *)(tables[half * 16 + l] + e));
            transpose16(r);
            for (int k = 0; k < 16; k++) _mm_storeu_si128((__m128i *)(dst + (e + (size_t)k) * 32 + half * 16), r[k]);
        }
    }
#endif
    for (; e < entries; e++)
        for (size_t l = 0; l < 32; l++) dst[e * 32 + l] = tables[l][e];
}

void sextant_quantize_table(const float *values, size_t m, size_t k, uint8_t *out, float *scale, float *offset) {
    float widest = 0, base = 0, mins[257];
    for (size_t j = 0; j < m; j++) {
        const float *row = values + j * k;
        float lo = row[0], hi = row[0];
        size_t c = 1;
#ifdef SEXTANT_ADC8_X86
        // Four lanes at a time (SSE2); the scalar loop below finishes the row.
        if (k >= 4) {
            __m128 vlo = _mm_loadu_ps(row), vhi = vlo;
            // min/max return their second operand when unordered: a NaN entry keeps the bound.
            for (c = 4; c + 4 <= k; c += 4) { __m128 v = _mm_loadu_ps(row + c); vlo = _mm_min_ps(v, vlo); vhi = _mm_max_ps(v, vhi); }
            float l4[4], h4[4];
            _mm_storeu_ps(l4, vlo); _mm_storeu_ps(h4, vhi);
            lo = l4[0]; hi = h4[0];
            for (int t = 1; t < 4; t++) { lo = l4[t] < lo ? l4[t] : lo; hi = h4[t] > hi ? h4[t] : hi; }
        }
#endif
        for (; c < k; c++) { lo = row[c] < lo ? row[c] : lo; hi = row[c] > hi ? row[c] : hi; }
        if (hi - lo > widest) widest = hi - lo;
        if (j < 257) mins[j] = lo;
        base += lo;
    }
    // A flat (or non-finite) table quantizes to zeros whatever the scale.
    float s = widest > 0 && widest <= 3.4e38f ? 255.0f / widest : 1.0f;
    for (size_t j = 0; j < m && j < 257; j++) {
        const float *row = values + j * k;
        uint8_t *dst = out + j * k;
        float lo = mins[j];
        for (size_t c = 0; c < k; c++) {
            // Round half up; NaN fails both comparisons and becomes 0.
            float q = (row[c] - lo) * s + 0.5f;
            q = q < 255.0f ? q : 255.0f;
            q = q > 0.0f ? q : 0.0f;
            dst[c] = (uint8_t)(int32_t)q;
        }
    }
    *scale = s;
    *offset = base;
}

void sextant_pq_table_scalar(const float *centroids_t, size_t m, size_t k, size_t dsub, const float *query, float scale, int l2,
                             float *out) {
    for (size_t j = 0; j < m; j++) {
        const float *book = centroids_t + j * k * dsub;
        for (size_t c = 0; c < k; c++) {
            float acc = 0;
            for (size_t i = 0; i < dsub; i++) {
                float x = book[i * k + c], q = query[j * dsub + i] * scale;
                if (l2) { float d = x - q; acc = acc + d * d; } else { acc = acc - q * x; }
            }
            out[j * k + c] = acc;
        }
    }
}

void sextant_pq_table(const float *centroids_t, size_t m, size_t k, size_t dsub, const float *query, float scale, int l2,
                      float *out) {
#ifdef SEXTANT_ADC8_X86
    if (k % 8 == 0 && sextant_cpu_has_avx2()) { pq_table_avx2(centroids_t, m, k, dsub, query, scale, l2, out); return; }
#endif
    sextant_pq_table_scalar(centroids_t, m, k, dsub, query, scale, l2, out);
}
