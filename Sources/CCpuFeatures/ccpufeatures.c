#include "ccpufeatures.h"
#if defined(__x86_64__)
#include <cpuid.h>
#include <stddef.h>

/* XCR0: the state the kernel saves. SSE and AVX (bits 1, 2) for YMM registers; AVX-512's opmask,
   the upper halves of ZMM0-15, and ZMM16-31 whole (bits 5, 6, 7) for any AVX-512 instruction. */
enum { XCR0_YMM = 0x06, XCR0_AVX512 = 0xe0 };

static int ccpu_detect(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || !(c & bit_AVX)) return 0;
    unsigned xcr0Low, xcr0High;
    __asm__ volatile("xgetbv" : "=a"(xcr0Low), "=d"(xcr0High) : "c"(0));
    if ((xcr0Low & XCR0_YMM) != XCR0_YMM || __get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    int features = 0;
    if (b & bit_AVX2) features |= CCPU_AVX2;
    unsigned avx512 = bit_AVX512F | bit_AVX512VL | bit_AVX512BW;
    if ((features & CCPU_AVX2) && (b & avx512) == avx512 && (xcr0Low & XCR0_AVX512) == XCR0_AVX512)
        features |= CCPU_AVX512VL_BW;
    return features;
}
#else
static int ccpu_detect(void) { return 0; }
#endif

int ccpu_known_features;

int ccpu_detect_features(void) {
    int known = ccpu_detect() | 1;
    __atomic_store_n(&ccpu_known_features, known, __ATOMIC_RELAXED);
    return known;
}
