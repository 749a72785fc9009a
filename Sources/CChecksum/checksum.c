#include "cchecksum.h"
#include "ccpufeatures.h"
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Why 32-bit halves into 64-bit sums: 2^32 is 1 modulo 2^16 - 1, so native 32-bit words add like
   the 16-bit ones, and 64-bit sums of them cannot overflow below 2^32 words (packets are at most
   64 KiB). No end-around carry is waited for from one word to the next, so the loops vectorize. */

/* The last `length` < 8 bytes, zero-padded after them: the odd last byte is then the first byte of
   a 16-bit word whose second byte is zero, in either byte order. */
static inline uint64_t cchecksum_tail(const unsigned char *p, size_t length) {
    uint64_t w = 0;
    memcpy(&w, p, length);
    return (w & 0xffffffffu) + (w >> 32);
}

/* The portable kernel: 64-bit words, two plain sums. `copy` is a constant at each call site. */
static inline __attribute__((always_inline)) uint64_t cchecksum_words(unsigned char *destination,
                                                                      const unsigned char *source, size_t length,
                                                                      int copy) {
    uint64_t low = 0, high = 0;
    size_t i = 0;
    for (; i + 8 <= length; i += 8) {
        uint64_t w;
        memcpy(&w, source + i, 8);
        if (copy) memcpy(destination + i, &w, 8);
        low += w & 0xffffffffu;
        high += w >> 32;
    }
    if (copy) memcpy(destination + i, source + i, length - i);
    return low + high + cchecksum_tail(source + i, length - i);
}

#if defined(__x86_64__)
/* Two 32-byte vectors per step, each into its own pair of sums; the rest through the words kernel. */
__attribute__((target("avx2"))) static inline __attribute__((always_inline)) uint64_t
cchecksum_avx2(unsigned char *destination, const unsigned char *source, size_t length, int copy) {
    const __m256i lowHalf = _mm256_set1_epi64x(0xffffffff);
    __m256i low0 = _mm256_setzero_si256(), high0 = _mm256_setzero_si256();
    __m256i low1 = _mm256_setzero_si256(), high1 = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 64 <= length; i += 64) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(source + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(source + i + 32));
        if (copy) {
            _mm256_storeu_si256((__m256i *)(destination + i), a);
            _mm256_storeu_si256((__m256i *)(destination + i + 32), b);
        }
        low0 = _mm256_add_epi64(low0, _mm256_and_si256(a, lowHalf));
        high0 = _mm256_add_epi64(high0, _mm256_srli_epi64(a, 32));
        low1 = _mm256_add_epi64(low1, _mm256_and_si256(b, lowHalf));
        high1 = _mm256_add_epi64(high1, _mm256_srli_epi64(b, 32));
    }
    if (i + 32 <= length) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(source + i));
        if (copy) _mm256_storeu_si256((__m256i *)(destination + i), a);
        low0 = _mm256_add_epi64(low0, _mm256_and_si256(a, lowHalf));
        high0 = _mm256_add_epi64(high0, _mm256_srli_epi64(a, 32));
        i += 32;
    }
    __m256i all = _mm256_add_epi64(_mm256_add_epi64(low0, high0), _mm256_add_epi64(low1, high1));
    __m128i pair = _mm_add_epi64(_mm256_castsi256_si128(all), _mm256_extracti128_si256(all, 1));
    uint64_t vectors = (uint64_t)_mm_cvtsi128_si64(pair) + (uint64_t)_mm_extract_epi64(pair, 1);
    return vectors + cchecksum_words(copy ? destination + i : destination, source + i, length - i, copy);
}

__attribute__((target("avx2"))) static uint64_t cchecksum_sum_avx2(const void *p, size_t length) {
    return cchecksum_avx2(NULL, p, length, 0);
}

__attribute__((target("avx2"))) static uint64_t cchecksum_copy_sum_avx2(void *destination, const void *source,
                                                                        size_t length) {
    return cchecksum_avx2(destination, source, length, 1);
}

#endif

uint64_t cchecksum_sum_words(const void *p, size_t length) {
    return cchecksum_words(NULL, p, length, 0);
}

uint64_t cchecksum_copy_sum_words(void *destination, const void *source, size_t length) {
    return cchecksum_words(destination, source, length, 1);
}

/* Headers (8 to 60 bytes) go straight to the words kernel: the vector loop would not run. */
enum { CCHECKSUM_VECTOR_MINIMUM = 64 };

uint64_t cchecksum_sum(const void *p, size_t length) {
#if defined(__x86_64__)
    if (length >= CCHECKSUM_VECTOR_MINIMUM && (ccpu_features() & CCPU_AVX2)) return cchecksum_sum_avx2(p, length);
#endif
    return cchecksum_sum_words(p, length);
}

uint64_t cchecksum_copy_sum(void *destination, const void *source, size_t length) {
#if defined(__x86_64__)
    if (length >= CCHECKSUM_VECTOR_MINIMUM && (ccpu_features() & CCPU_AVX2))
        return cchecksum_copy_sum_avx2(destination, source, length);
#endif
    return cchecksum_copy_sum_words(destination, source, length);
}
