#include "chacha20_8blocks.h"
#if defined(__x86_64__)
#include <immintrin.h>

/* Eight blocks side by side: vector i holds word i of blocks 0-7, one per 32-bit lane, so a
   quarter round is 12 instructions for all eight (AVX-512's rotate is one). */
#define CAEAD_TARGET __attribute__((target("avx2,avx512f,avx512vl,avx512bw")))
#define CAEAD_QUARTER(a, b, c, d)                                                                                      \
    a = _mm256_add_epi32(a, b); d = _mm256_rol_epi32(_mm256_xor_si256(d, a), 16);                                   \
    c = _mm256_add_epi32(c, d); b = _mm256_rol_epi32(_mm256_xor_si256(b, c), 12);                                   \
    a = _mm256_add_epi32(a, b); d = _mm256_rol_epi32(_mm256_xor_si256(d, a), 8);                                    \
    c = _mm256_add_epi32(c, d); b = _mm256_rol_epi32(_mm256_xor_si256(b, c), 7);

/* "expand 32-byte k" */
static const unsigned int caead_sigma[4] = { 0x61707865, 0x3320646e, 0x79622d32, 0x6b206574 };

/* Words w..w+7 of blocks 0-7 (x[0..7], one word per vector) into blocks 0-7's 32 bytes of those
   words (x[j] = block j), through 32-bit, 64-bit and 128-bit interleaves. */
CAEAD_TARGET static inline void caead_transpose8(__m256i *x) {
    __m256i t0 = _mm256_unpacklo_epi32(x[0], x[1]), t1 = _mm256_unpackhi_epi32(x[0], x[1]);
    __m256i t2 = _mm256_unpacklo_epi32(x[2], x[3]), t3 = _mm256_unpackhi_epi32(x[2], x[3]);
    __m256i t4 = _mm256_unpacklo_epi32(x[4], x[5]), t5 = _mm256_unpackhi_epi32(x[4], x[5]);
    __m256i t6 = _mm256_unpacklo_epi32(x[6], x[7]), t7 = _mm256_unpackhi_epi32(x[6], x[7]);
    /* Per 128-bit half: u0 holds words w..w+3 of blocks 0 and 4, u1 of 1 and 5, u2 of 2 and 6,
       u3 of 3 and 7; v0-v3 words w+4..w+7 of the same. */
    __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    __m256i v0 = _mm256_unpacklo_epi64(t4, t6), v1 = _mm256_unpackhi_epi64(t4, t6);
    __m256i v2 = _mm256_unpacklo_epi64(t5, t7), v3 = _mm256_unpackhi_epi64(t5, t7);
    x[0] = _mm256_permute2x128_si256(u0, v0, 0x20); x[4] = _mm256_permute2x128_si256(u0, v0, 0x31);
    x[1] = _mm256_permute2x128_si256(u1, v1, 0x20); x[5] = _mm256_permute2x128_si256(u1, v1, 0x31);
    x[2] = _mm256_permute2x128_si256(u2, v2, 0x20); x[6] = _mm256_permute2x128_si256(u2, v2, 0x31);
    x[3] = _mm256_permute2x128_si256(u3, v3, 0x20); x[7] = _mm256_permute2x128_si256(u3, v3, 0x31);
}

/* out = in XOR keystream for the first min(n, 32) bytes; bytes past them are neither read nor
   written (a masked-off load does not fault). */
CAEAD_TARGET static inline void caead_xor32(unsigned char *out, const unsigned char *in, __m256i keystream, size_t n) {
    __mmask32 m = n >= 32 ? 0xffffffffu : (1u << n) - 1;
    _mm256_mask_storeu_epi8(out, m, _mm256_xor_si256(_mm256_maskz_loadu_epi8(m, in), keystream));
}

/* Block j's 64 bytes, if the text reaches it: x[j] is its first half, x[8 + j] its second. Spelled
   out per block, with constant indexes, so that x stays in registers (an indexed x would be
   spilled to the stack, and the keystream with it). */
#define CAEAD_XOR_BLOCK(j)                                                                                             \
    if (length > 64 * (j)) {                                                                                           \
        size_t n = length - 64 * (j);                                                                                  \
        caead_xor32(out + 64 * (j), in + 64 * (j), x[j], n);                                                           \
        if (n > 32) caead_xor32(out + 64 * (j) + 32, in + 64 * (j) + 32, x[8 + (j)], n - 32);                          \
    }

CAEAD_TARGET void caead_chacha20_8blocks(unsigned char *out, const unsigned char *in, size_t length,
                                         const unsigned int key[8], const unsigned int counter[4]) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i x[16];
    for (int i = 0; i < 4; i++) x[i] = _mm256_set1_epi32((int)caead_sigma[i]);
    for (int i = 0; i < 8; i++) x[4 + i] = _mm256_set1_epi32((int)key[i]);
    x[12] = _mm256_add_epi32(_mm256_set1_epi32((int)counter[0]), lanes);
    for (int i = 1; i < 4; i++) x[12 + i] = _mm256_set1_epi32((int)counter[i]);
    for (int round = 0; round < 10; round++) {
        CAEAD_QUARTER(x[0], x[4], x[8], x[12]) CAEAD_QUARTER(x[1], x[5], x[9], x[13])
        CAEAD_QUARTER(x[2], x[6], x[10], x[14]) CAEAD_QUARTER(x[3], x[7], x[11], x[15])
        CAEAD_QUARTER(x[0], x[5], x[10], x[15]) CAEAD_QUARTER(x[1], x[6], x[11], x[12])
        CAEAD_QUARTER(x[2], x[7], x[8], x[13]) CAEAD_QUARTER(x[3], x[4], x[9], x[14])
    }
    /* The input words are added back from memory rather than kept: keeping them would take 16 more
       registers, and the spill would put the key on the stack. */
    for (int i = 0; i < 4; i++) x[i] = _mm256_add_epi32(x[i], _mm256_set1_epi32((int)caead_sigma[i]));
    for (int i = 0; i < 8; i++) x[4 + i] = _mm256_add_epi32(x[4 + i], _mm256_set1_epi32((int)key[i]));
    x[12] = _mm256_add_epi32(x[12], _mm256_add_epi32(_mm256_set1_epi32((int)counter[0]), lanes));
    for (int i = 1; i < 4; i++) x[12 + i] = _mm256_add_epi32(x[12 + i], _mm256_set1_epi32((int)counter[i]));
    caead_transpose8(x);
    caead_transpose8(x + 8);
    CAEAD_XOR_BLOCK(0) CAEAD_XOR_BLOCK(1) CAEAD_XOR_BLOCK(2) CAEAD_XOR_BLOCK(3)
    CAEAD_XOR_BLOCK(4) CAEAD_XOR_BLOCK(5) CAEAD_XOR_BLOCK(6) CAEAD_XOR_BLOCK(7)
    /* The key words and the keystream are still in vector registers, and anything that saves the
       register state (a signal frame, the lazy binder's XSAVE) would write them to memory: clear
       them all (vzeroall leaves ymm16-31). */
    __asm__ volatile("vzeroall\n\t"
                     "vpxord %%ymm16, %%ymm16, %%ymm16\n\tvpxord %%ymm17, %%ymm17, %%ymm17\n\t"
                     "vpxord %%ymm18, %%ymm18, %%ymm18\n\tvpxord %%ymm19, %%ymm19, %%ymm19\n\t"
                     "vpxord %%ymm20, %%ymm20, %%ymm20\n\tvpxord %%ymm21, %%ymm21, %%ymm21\n\t"
                     "vpxord %%ymm22, %%ymm22, %%ymm22\n\tvpxord %%ymm23, %%ymm23, %%ymm23\n\t"
                     "vpxord %%ymm24, %%ymm24, %%ymm24\n\tvpxord %%ymm25, %%ymm25, %%ymm25\n\t"
                     "vpxord %%ymm26, %%ymm26, %%ymm26\n\tvpxord %%ymm27, %%ymm27, %%ymm27\n\t"
                     "vpxord %%ymm28, %%ymm28, %%ymm28\n\tvpxord %%ymm29, %%ymm29, %%ymm29\n\t"
                     "vpxord %%ymm30, %%ymm30, %%ymm30\n\tvpxord %%ymm31, %%ymm31, %%ymm31"
                     :
                     :
                     : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                       "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19",
                       "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29",
                       "xmm30", "xmm31");
}
#endif
