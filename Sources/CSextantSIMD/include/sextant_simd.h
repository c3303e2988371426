// 4-bit product-quantization fast-scan accumulation (PQFastScan style) for SextantKernels.
//
// Layout of the codes ("blocks"): vectors are grouped 32 to a block; a block holds, for each
// sub-quantizer q in 0..<m, 16 bytes in which byte i carries the code of vector i in its low
// nibble and the code of vector i + 16 in its high nibble. A block is therefore m * 16 bytes,
// and blocks follow each other contiguously.
//
// The lookup table holds m rows of 16 unsigned bytes (row q at lut + 16 * q). The result for a
// vector is the sum over q of lut[q][code(vector, q)], accumulated in 16 bits: callers keep
// m * 255 <= 65535 (m <= 257) so sums never wrap. Both paths compute the same integers.
#ifndef SEXTANT_SIMD_H
#define SEXTANT_SIMD_H

#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Nonzero when the running CPU supports AVX2 (checked once, then cached).
int sextant_cpu_has_avx2(void);

/// Portable reference: writes 32 sums per block (block b's vector i to out[32 * b + i]).
/// `m` must be even.
void sextant_fastscan_accumulate_scalar(const uint8_t *blocks, size_t block_count, size_t m,
                                        const uint8_t *lut, uint16_t *out);

/// Nonzero when the running CPU supports SSSE3 (128-bit pshufb; checked once, then cached).
int sextant_cpu_has_ssse3(void);

/// SSSE3 (128-bit `pshufb`) version, one sub-quantizer per step, for x86 CPUs without AVX2;
/// only call it when sextant_cpu_has_ssse3() is nonzero.
void sextant_fastscan_accumulate_ssse3(const uint8_t *blocks, size_t block_count, size_t m,
                                       const uint8_t *lut, uint16_t *out);

/// AVX2 (`vpshufb`) version; only call it when sextant_cpu_has_avx2() is nonzero.
void sextant_fastscan_accumulate_avx2(const uint8_t *blocks, size_t block_count, size_t m,
                                      const uint8_t *lut, uint16_t *out);

/// Two tables over the same blocks (sums identical to two calls of the one-table kernel, each
/// code load and nibble split shared); only call it when sextant_cpu_has_avx2() is nonzero.
void sextant_fastscan_accumulate2_avx2(const uint8_t *blocks, size_t block_count, size_t m,
                                       const uint8_t *lut0, const uint8_t *lut1, uint16_t *out0, uint16_t *out1);

/// Picks AVX2, else SSSE3, else the scalar path, by what the CPU supports.
void sextant_fastscan_accumulate(const uint8_t *blocks, size_t block_count, size_t m,
                                 const uint8_t *lut, uint16_t *out);

/// Packs 32 codes of `size` bytes (4-bit sub-quantizers, two per byte; `codes[i]` is vector
/// i's) into one fast-scan block of `32 * size` bytes at `dst`: for byte j of a code, bytes
/// 32j..32j+15 hold sub-space 2j of vectors 0..15 (low nibble) and 16..31 (high nibble), bytes
/// 32j+16..32j+31 sub-space 2j+1 likewise. Overwrites `dst`. SSE2 byte transposes on x86
/// (always present there), a scalar loop elsewhere; both give the same bytes.
void sextant_fastscan_pack32(const uint8_t *const *codes, size_t size, uint8_t *dst);

/// The scalar version of sextant_fastscan_pack32, for tests.
void sextant_fastscan_pack32_scalar(const uint8_t *const *codes, size_t size, uint8_t *dst);

/// Writes to `out` the indices i (ascending) with values[i] <= limit and returns how many;
/// `out` must have room for `count` indices. The top-k filter after a fast scan: with a
/// tight limit almost every 16-lane group is rejected by one compare.
size_t sextant_u16_at_most(const uint16_t *values, size_t count, uint16_t limit, uint32_t *out);

/// Nearest centroid of each of `count` points by squared L2 (ties to the smaller index),
/// ranking centroids by ||c||^2 - 2 x.c.
///
/// `points` is dimension-major: coordinate i of point p at points[i * stride + p].
/// `centroids_t` is dimension-major too (dimension x k, k a multiple of 8) and `norms` holds
/// ||c||^2 per centroid. Writes the index of point p's nearest centroid to out[p]. The SSE2 and
/// AVX2 versions perform the same per-lane multiply and add in the same order (no FMA), so
/// they give identical results; the AVX2 one is picked at run time when available.
void sextant_nearest_centroids(const float *points, size_t count, size_t stride, size_t dimension,
                               const float *centroids_t, const float *norms, size_t k, int32_t *out);

/// Same, forcing the 128-bit (SSE2 or portable) version, for tests.
void sextant_nearest_centroids_baseline(const float *points, size_t count, size_t stride, size_t dimension,
                                        const float *centroids_t, const float *norms, size_t k, int32_t *out);

/// Same, forcing the scalar version (the path of CPUs without SSE2), for tests.
void sextant_nearest_centroids_portable(const float *points, size_t count, size_t stride, size_t dimension,
                                        const float *centroids_t, const float *norms, size_t k, int32_t *out);

/// nearest[p] = min(nearest[p], ||point p - centroid||^2) for dimension-major points (as above,
/// stride = count). Lane-wise identical on every path.
void sextant_update_nearest(const float *points, size_t count, size_t dimension,
                            const float *centroid, float *nearest);

/// Nonzero when the running CPU supports AVX2 and FMA and the environment variable
/// SEXTANT_PORTABLE_KERNELS is not "1" (checked once, then cached).
int sextant_cpu_has_avx2_fma(void);

/// Nonzero when graph traversal should use the AVX2 + FMA distance kernels below:
/// sextant_cpu_has_avx2_fma() and the calling thread has not forced the portable path. Zero
/// means: use the portable Swift kernels (SextantKernels' Distance).
int sextant_distance_dispatch(void);

/// One pair in the canonical order with AVX2 (see sextant_tile_rows_avx2): the raw sum of
/// (q - x)^2 terms (`l2` nonzero) or q * x terms over `d` floats.
float sextant_pair_avx2(int l2, const float *q, const float *x, size_t d);

/// Raw sums of the Swift kernels' canonical order (PairKernels.swift), bit for bit, with AVX2:
/// out0[j] = sum over query q0 and vector j (`vectors + j * stride_bytes`, `dimension` floats),
/// out1[j] likewise for q1 (NULL q1: one query; out1 unused). `l2` nonzero: (q - x)^2 terms,
/// zero: q * x. Only call it when sextant_distance_dispatch() is nonzero. Reads no float past
/// `dimension` of any vector.
void sextant_tile_rows_avx2(int l2, const float *q0, const float *q1, const void *vectors, size_t stride_bytes,
                            size_t count, size_t dimension, float *out0, float *out1);

/// sextant_tile_rows_avx2 with vector j at `vectors[j]` (any float alignment): rows scattered
/// through a map are scored where they lie instead of being copied together first.
void sextant_tile_list_avx2(int l2, const float *q0, const float *q1, const void *const *vectors, size_t count,
                            size_t dimension, float *out0, float *out1);

/// Test hook: nonzero forces sextant_distance_dispatch() to 0 on the calling thread (the
/// portable path); zero undoes it.
void sextant_distance_force_portable(int force);

// AVX2 + FMA float kernels over `d` floats at any byte alignment (never read past them). Call
// only when sextant_distance_dispatch() is nonzero. They sum in another order than the Swift
// kernels and with fused multiply-adds, so results may differ from those in the last bits:
// with u = 2^-24 and t_i the exact per-element terms ((a_i - b_i)^2 or a_i b_i), each result
// is within (ceil(d/8) + 8) u sum|t_i| of the exact value (tested against the Swift kernels).
// Among themselves they agree bit for bit: a pair scores the same alone or in a batch.

/// Squared L2 distance.
float sextant_l2sq_avx2(const void *a, const void *b, size_t d);
/// Inner product.
float sextant_dot_avx2(const void *a, const void *b, size_t d);
/// Inner product q.x and ||x||^2 in one pass over x.
void sextant_dot_norm_avx2(const void *q, const void *x, size_t d, float *dot, float *norm_squared);
/// out[i] = squared L2 distance from q to x[i] for i < n, four vectors at a time, prefetching
/// the next four while scoring the current ones.
void sextant_l2sq_batch_avx2(const void *q, const void *const *x, size_t n, size_t d, float *out);
/// out[i] = q.x[i] for i < n (as sextant_l2sq_batch_avx2).
void sextant_dot_batch_avx2(const void *q, const void *const *x, size_t n, size_t d, float *out);

/// A one-byte spin lock for the parallel graph build, whose critical sections (one node's
/// neighbour list) are short and almost never contended: an uncontended lock is one atomic
/// exchange, where a mutex is a library call. A waiter that spins long yields its CPU, so a
/// holder that lost its time slice gets it back.
static inline void sextant_spin_lock(uint8_t *lock) {
    unsigned spins = 0;
    while (__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE)) {
        while (__atomic_load_n(lock, __ATOMIC_RELAXED)) {
            if (++spins < 256) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#elif defined(__aarch64__)
                __asm__ __volatile__("yield");
#endif
            } else {
                spins = 0;
                sched_yield();
            }
        }
    }
}

static inline void sextant_spin_unlock(uint8_t *lock) {
    __atomic_store_n(lock, 0, __ATOMIC_RELEASE);
}

/// Hints the CPU to fetch `bytes` bytes at `p` into cache (a no-op where unsupported). Swift has
/// no prefetch of its own; graph traversal uses it to overlap the next neighbours' cache misses.
static inline void sextant_prefetch(const void *p, size_t bytes) {
#if defined(__GNUC__) || defined(__clang__)
    // Every line the range touches: from p's line to the line of its last byte. (Stepping 64
    // bytes from p itself misses the last line of a range that starts inside a line, as every
    // vector in a block does: LMDB puts an overflow page's data 16 bytes past the page.)
    if (bytes == 0) return;
    uintptr_t line = (uintptr_t)p & ~(uintptr_t)63, last = (uintptr_t)p + bytes - 1;
    for (; line <= last; line += 64) __builtin_prefetch((const void *)line, 0, 3);
#else
    (void)p; (void)bytes;
#endif
}

/// 8-bit scalar-quantized rows against a query widened to int16: out[j] = sum over i < d of
/// (q[i] - x[j][i])^2 when l2 is nonzero, else q[i] * x[j][i]. Exact integer sums (identical to
/// any other order); only call it when sextant_cpu_has_avx2() is nonzero. |q[i]|, |x[j][i]| <= 127
/// and d <= 32,768 keep every sum within int32.
void sextant_sq8_batch_avx2(int l2, const int16_t *q, const int8_t *const *x, size_t n, size_t d, int32_t *out);

/// 8-bit ADC of listed codes for 32 queries at once: `lut` holds the queries' byte-quantized
/// tables interleaved (entry c of sub-space j for lane l at lut[(j * 256 + c) * 32 + l], 32-byte
/// aligned), `codes[i]` points at code i (`m` bytes, any alignment, m <= 257), and
/// out[i * 32 + l] gets lane l's sum of its entries. Integer sums: every path agrees. AVX2 when
/// the CPU has it, else the scalar loop.
void sextant_adc8_group32(const uint8_t *lut, size_t m, const void *const *codes, size_t count, uint16_t *out);

/// The scalar path of sextant_adc8_group32, for tests.
void sextant_adc8_group32_scalar(const uint8_t *lut, size_t m, const void *const *codes, size_t count, uint16_t *out);

/// The group scan's selection: writes i * 32 + l (ascending) for every sums[i * 32 + l] <=
/// limits[l] (32 limits, one per lane) over `rows` rows of 32 sums, and returns how many; `out`
/// must have room for rows * 32. AVX2 when the CPU has it, else a scalar loop (same output).
size_t sextant_lanes_at_most(const uint16_t *sums, size_t rows, const uint16_t *limits, uint32_t *out);

/// Interleaves 32 byte tables of `entries` bytes: dst[e * 32 + l] = tables[l][e] (a table may
/// be passed for several lanes). SSE2 16 x 16 transposes on x86, a loop elsewhere.
void sextant_interleave32(const uint8_t *const *tables, size_t entries, uint8_t *dst);

/// Quantizes an ADC table of `m` rows of `k` floats to bytes: entry = round((v - min of its row)
/// * scale), scale = 255 / (the widest row's max - min), so that a code's float distance is
/// within m / (2 * scale) of sum / scale + offset (offset = the sum of the row minima, to which
/// the caller adds the table's bias).
void sextant_quantize_table(const float *values, size_t m, size_t k, uint8_t *out, float *scale, float *offset);

/// ADC table of a query: out[j * k + c] = sum over i < dsub of (x - q)^2 (`l2` nonzero) or the
/// running acc - q * x (else), x = centroids_t[(j * k * dsub) + i * k + c] (sub-space j's
/// centroids dimension-major), q = query[j * dsub + i] * scale, each step a separate IEEE
/// operation in order i = 0, 1, ...: every path gives the same floats. AVX2 (8 centroids at a
/// time) when the CPU has it and k is a multiple of 8, else the scalar loop.
void sextant_pq_table(const float *centroids_t, size_t m, size_t k, size_t dsub, const float *query, float scale, int l2,
                      float *out);

/// The scalar path of sextant_pq_table, for tests.
void sextant_pq_table_scalar(const float *centroids_t, size_t m, size_t k, size_t dsub, const float *query, float scale, int l2,
                             float *out);

#ifdef __cplusplus
}
#endif

#endif
