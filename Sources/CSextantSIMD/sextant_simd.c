#include "sextant_simd.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SEXTANT_X86 1
#else
#define SEXTANT_X86 0
#endif

int sextant_cpu_has_avx2(void) {
#if SEXTANT_X86
    // -1 = not yet known. A benign race: every thread computes the same answer.
    static volatile int cached = -1;
    int v = cached;
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") ? 1 : 0;
        cached = v;
    }
    return v;
#else
    return 0;
#endif
}

int sextant_cpu_has_ssse3(void) {
#if SEXTANT_X86
    static volatile int cached = -1;
    int v = cached;
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("ssse3") ? 1 : 0;
        cached = v;
    }
    return v;
#else
    return 0;
#endif
}

void sextant_fastscan_accumulate_scalar(const uint8_t *blocks, size_t block_count, size_t m,
                                        const uint8_t *lut, uint16_t *out) {
    for (size_t b = 0; b < block_count; b++) {
        const uint8_t *block = blocks + b * m * 16;
        uint16_t acc[32] = {0};
        for (size_t q = 0; q < m; q++) {
            const uint8_t *row = lut + q * 16;
            const uint8_t *c = block + q * 16;
            for (int i = 0; i < 16; i++) {
                acc[i] = (uint16_t)(acc[i] + row[c[i] & 15]);
                acc[i + 16] = (uint16_t)(acc[i + 16] + row[c[i] >> 4]);
            }
        }
        for (int i = 0; i < 32; i++) out[32 * b + i] = acc[i];
    }
}

#if SEXTANT_X86
// The four accumulators of one block (see below) into 32 sums: low-byte sums recovered,
// the two lanes folded (even + odd sub-quantizers), even/odd vectors interleaved.
__attribute__((target("avx2")))
static inline void fastscan_fold_store(__m256i lo_whole, __m256i lo_high, __m256i hi_whole, __m256i hi_high, uint16_t *o) {
    __m256i lo_even = _mm256_sub_epi16(lo_whole, _mm256_slli_epi16(lo_high, 8)), lo_odd = lo_high;
    __m256i hi_even = _mm256_sub_epi16(hi_whole, _mm256_slli_epi16(hi_high, 8)), hi_odd = hi_high;
    __m128i le = _mm_add_epi16(_mm256_castsi256_si128(lo_even), _mm256_extracti128_si256(lo_even, 1));
    __m128i lodd = _mm_add_epi16(_mm256_castsi256_si128(lo_odd), _mm256_extracti128_si256(lo_odd, 1));
    __m128i he = _mm_add_epi16(_mm256_castsi256_si128(hi_even), _mm256_extracti128_si256(hi_even, 1));
    __m128i hodd = _mm_add_epi16(_mm256_castsi256_si128(hi_odd), _mm256_extracti128_si256(hi_odd, 1));
    _mm_storeu_si128((__m128i *)(o + 0), _mm_unpacklo_epi16(le, lodd));
    _mm_storeu_si128((__m128i *)(o + 8), _mm_unpackhi_epi16(le, lodd));
    _mm_storeu_si128((__m128i *)(o + 16), _mm_unpacklo_epi16(he, hodd));
    _mm_storeu_si128((__m128i *)(o + 24), _mm_unpackhi_epi16(he, hodd));
}

__attribute__((target("avx2")))
void sextant_fastscan_accumulate_avx2(const uint8_t *blocks, size_t block_count, size_t m,
                                      const uint8_t *lut, uint16_t *out) {
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    for (size_t b = 0; b < block_count; b++) {
        const uint8_t *block = blocks + b * m * 16;
        // 16-bit accumulators. Lane 0 carries even sub-quantizers, lane 1 odd ones. "whole"
        // adds each 16-bit slot as is (low byte + 256 * high byte, wrapping), "high" adds the
        // high bytes alone; the low-byte sums are then whole - 256 * high, exact modulo 2^16
        // and hence exact (they never exceed 65535). One AND fewer per lookup than masking.
        __m256i lo_whole = _mm256_setzero_si256(), lo_high = _mm256_setzero_si256();
        __m256i hi_whole = _mm256_setzero_si256(), hi_high = _mm256_setzero_si256();
        for (size_t q = 0; q < m; q += 2) {
            // Sub-quantizers q and q + 1: their code rows and table rows are adjacent, so one
            // 32-byte load brings both and vpshufb (in-lane) pairs each row with its table.
            __m256i c = _mm256_loadu_si256((const __m256i *)(block + q * 16));
            __m256i t = _mm256_loadu_si256((const __m256i *)(lut + q * 16));
            __m256i lo = _mm256_and_si256(c, low4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), low4);
            __m256i rlo = _mm256_shuffle_epi8(t, lo);
            __m256i rhi = _mm256_shuffle_epi8(t, hi);
            lo_whole = _mm256_add_epi16(lo_whole, rlo);
            lo_high = _mm256_add_epi16(lo_high, _mm256_srli_epi16(rlo, 8));
            hi_whole = _mm256_add_epi16(hi_whole, rhi);
            hi_high = _mm256_add_epi16(hi_high, _mm256_srli_epi16(rhi, 8));
        }
        fastscan_fold_store(lo_whole, lo_high, hi_whole, hi_high, out + 32 * b);
    }
}
// Two queries over the same blocks: each 32-byte code load and its nibble split serve both
// tables, and a batch's shared pass streams its chunk of blocks once per pair instead of once
// per query. Per query the arithmetic is that of sextant_fastscan_accumulate_avx2, so the sums
// are identical.

__attribute__((target("avx2")))
void sextant_fastscan_accumulate2_avx2(const uint8_t *blocks, size_t block_count, size_t m,
                                       const uint8_t *lut0, const uint8_t *lut1, uint16_t *out0, uint16_t *out1) {
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    for (size_t b = 0; b < block_count; b++) {
        const uint8_t *block = blocks + b * m * 16;
        __m256i a_lw = _mm256_setzero_si256(), a_lh = a_lw, a_hw = a_lw, a_hh = a_lw;
        __m256i b_lw = a_lw, b_lh = a_lw, b_hw = a_lw, b_hh = a_lw;
        for (size_t q = 0; q < m; q += 2) {
            __m256i c = _mm256_loadu_si256((const __m256i *)(block + q * 16));
            __m256i lo = _mm256_and_si256(c, low4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), low4);
            __m256i t = _mm256_loadu_si256((const __m256i *)(lut0 + q * 16));
            __m256i rlo = _mm256_shuffle_epi8(t, lo), rhi = _mm256_shuffle_epi8(t, hi);
            a_lw = _mm256_add_epi16(a_lw, rlo);
            a_lh = _mm256_add_epi16(a_lh, _mm256_srli_epi16(rlo, 8));
            a_hw = _mm256_add_epi16(a_hw, rhi);
            a_hh = _mm256_add_epi16(a_hh, _mm256_srli_epi16(rhi, 8));
            t = _mm256_loadu_si256((const __m256i *)(lut1 + q * 16));
            rlo = _mm256_shuffle_epi8(t, lo);
            rhi = _mm256_shuffle_epi8(t, hi);
            b_lw = _mm256_add_epi16(b_lw, rlo);
            b_lh = _mm256_add_epi16(b_lh, _mm256_srli_epi16(rlo, 8));
            b_hw = _mm256_add_epi16(b_hw, rhi);
            b_hh = _mm256_add_epi16(b_hh, _mm256_srli_epi16(rhi, 8));
        }
        fastscan_fold_store(a_lw, a_lh, a_hw, a_hh, out0 + 32 * b);
        fastscan_fold_store(b_lw, b_lh, b_hw, b_hh, out1 + 32 * b);
    }
}

__attribute__((target("ssse3")))
void sextant_fastscan_accumulate_ssse3(const uint8_t *blocks, size_t block_count, size_t m,
                                       const uint8_t *lut, uint16_t *out) {
    const __m128i low4 = _mm_set1_epi8(0x0f);
    const __m128i low8 = _mm_set1_epi16(0x00ff);
    for (size_t b = 0; b < block_count; b++) {
        const uint8_t *block = blocks + b * m * 16;
        __m128i lo_even = _mm_setzero_si128(), lo_odd = _mm_setzero_si128();
        __m128i hi_even = _mm_setzero_si128(), hi_odd = _mm_setzero_si128();
        for (size_t q = 0; q < m; q++) {
            __m128i c = _mm_loadu_si128((const __m128i *)(block + q * 16));
            __m128i t = _mm_loadu_si128((const __m128i *)(lut + q * 16));
            __m128i rlo = _mm_shuffle_epi8(t, _mm_and_si128(c, low4));
            __m128i rhi = _mm_shuffle_epi8(t, _mm_and_si128(_mm_srli_epi16(c, 4), low4));
            lo_even = _mm_add_epi16(lo_even, _mm_and_si128(rlo, low8));
            lo_odd = _mm_add_epi16(lo_odd, _mm_srli_epi16(rlo, 8));
            hi_even = _mm_add_epi16(hi_even, _mm_and_si128(rhi, low8));
            hi_odd = _mm_add_epi16(hi_odd, _mm_srli_epi16(rhi, 8));
        }
        uint16_t *o = out + 32 * b;
        _mm_storeu_si128((__m128i *)(o + 0), _mm_unpacklo_epi16(lo_even, lo_odd));
        _mm_storeu_si128((__m128i *)(o + 8), _mm_unpackhi_epi16(lo_even, lo_odd));
        _mm_storeu_si128((__m128i *)(o + 16), _mm_unpacklo_epi16(hi_even, hi_odd));
        _mm_storeu_si128((__m128i *)(o + 24), _mm_unpackhi_epi16(hi_even, hi_odd));
    }
}
#else
void sextant_fastscan_accumulate_ssse3(const uint8_t *blocks, size_t block_count, size_t m,
                                       const uint8_t *lut, uint16_t *out) {
    sextant_fastscan_accumulate_scalar(blocks, block_count, m, lut, out);
}

void sextant_fastscan_accumulate_avx2(const uint8_t *blocks, size_t block_count, size_t m,
                                      const uint8_t *lut, uint16_t *out) {
    sextant_fastscan_accumulate_scalar(blocks, block_count, m, lut, out);
}

void sextant_fastscan_accumulate2_avx2(const uint8_t *blocks, size_t block_count, size_t m,
                                       const uint8_t *lut0, const uint8_t *lut1, uint16_t *out0, uint16_t *out1) {
    sextant_fastscan_accumulate_scalar(blocks, block_count, m, lut0, out0);
    sextant_fastscan_accumulate_scalar(blocks, block_count, m, lut1, out1);
}
#endif

#if SEXTANT_X86
__attribute__((target("avx2")))
static size_t at_most_avx2(const uint16_t *values, size_t count, uint16_t limit, uint32_t *out) {
    const __m256i lim = _mm256_set1_epi16((short)limit);
    size_t found = 0, i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(values + i));
        // v <= limit  <=>  min(v, limit) == v  (unsigned).
        unsigned mask = (unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi16(_mm256_min_epu16(v, lim), v));
        while (mask) {
            unsigned bit = (unsigned)__builtin_ctz(mask);
            out[found++] = (uint32_t)(i + bit / 2);
            mask &= ~(3u << bit);
        }
    }
    for (; i < count; i++) if (values[i] <= limit) out[found++] = (uint32_t)i;
    return found;
}
#endif

size_t sextant_u16_at_most(const uint16_t *values, size_t count, uint16_t limit, uint32_t *out) {
#if SEXTANT_X86
    if (sextant_cpu_has_avx2()) return at_most_avx2(values, count, limit, out);
#endif
    size_t found = 0;
    for (size_t i = 0; i < count; i++) if (values[i] <= limit) out[found++] = (uint32_t)i;
    return found;
}

void sextant_fastscan_accumulate(const uint8_t *blocks, size_t block_count, size_t m,
                                 const uint8_t *lut, uint16_t *out) {
    if (sextant_cpu_has_avx2()) {
        sextant_fastscan_accumulate_avx2(blocks, block_count, m, lut, out);
    } else if (sextant_cpu_has_ssse3()) {
        sextant_fastscan_accumulate_ssse3(blocks, block_count, m, lut, out);
    } else {
        sextant_fastscan_accumulate_scalar(blocks, block_count, m, lut, out);
    }
}

// Fast-scan packing: one code byte j of vectors i and i + 16 gives the low-nibble sub-space
// byte (a & 15) | (b & 15) << 4 and the high-nibble one (a >> 4) | (b & 0xF0).
static void pack32_scalar_from(const uint8_t *const *codes, size_t from, size_t size, uint8_t *dst) {
    for (size_t j = from; j < size; j++) {
        uint8_t *out = dst + 32 * j;
        for (size_t i = 0; i < 16; i++) {
            uint8_t a = codes[i][j], b = codes[i + 16][j];
            out[i] = (uint8_t)((a & 15) | ((b & 15) << 4));
            out[16 + i] = (uint8_t)((a >> 4) | (b & 0xF0));
        }
    }
}

void sextant_fastscan_pack32_scalar(const uint8_t *const *codes, size_t size, uint8_t *dst) {
    pack32_scalar_from(codes, 0, size, dst);
}

#if SEXTANT_X86
// Transposes 16 rows of 16 bytes in place: afterwards r[j] holds byte j of rows 0..15. Four
// rounds of the perfect shuffle (row i with row i + 8, interleaved byte by byte).
static inline void transpose16x16(__m128i r[16]) {
    for (int round = 0; round < 4; round++) {
        __m128i x[16];
        for (int i = 0; i < 8; i++) {
            x[2 * i] = _mm_unpacklo_epi8(r[i], r[i + 8]);
            x[2 * i + 1] = _mm_unpackhi_epi8(r[i], r[i + 8]);
        }
        for (int i = 0; i < 16; i++) r[i] = x[i];
    }
}
#endif

void sextant_fastscan_pack32(const uint8_t *const *codes, size_t size, uint8_t *dst) {
    size_t j0 = 0;
#if SEXTANT_X86
    const __m128i low = _mm_set1_epi8(0x0F), high = _mm_set1_epi8((char)0xF0);
    for (; j0 + 16 <= size; j0 += 16) {
        __m128i a[16], b[16];
        for (int i = 0; i < 16; i++) {
            a[i] = _mm_loadu_si128((const __m128i *)(codes[i] + j0));
            b[i] = _mm_loadu_si128((const __m128i *)(codes[i + 16] + j0));
        }
        transpose16x16(a);
        transpose16x16(b);
        for (int t = 0; t < 16; t++) {
            // Nibbles are masked before the 16-bit shifts, so no bit crosses into a neighbour byte.
            __m128i lo = _mm_or_si128(_mm_and_si128(a[t], low), _mm_slli_epi16(_mm_and_si128(b[t], low), 4));
            __m128i hi = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(a[t], 4), low), _mm_and_si128(b[t], high));
            _mm_storeu_si128((__m128i *)(dst + 32 * (j0 + t)), lo);
            _mm_storeu_si128((__m128i *)(dst + 32 * (j0 + t) + 16), hi);
        }
    }
#endif
    pack32_scalar_from(codes, j0, size, dst);
}
