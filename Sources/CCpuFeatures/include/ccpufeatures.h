#ifndef JVPN_CCPUFEATURES_H
#define JVPN_CCPUFEATURES_H

/* The vector instruction sets this process may use: the CPU has them (CPUID) and the kernel saves
   their registers on a context switch (XCR0). Looked at once, on the first call; threads that race
   on it store the same value. On other architectures: none. */
enum {
    CCPU_AVX2 = 1 << 1,
    /* AVX-512 F, VL and BW on 256-bit registers: rotates, masked loads and stores, and 32 vector
       registers. */
    CCPU_AVX512VL_BW = 1 << 2,
};

/* What ccpu_features returns, with bit 0 set once it is known (0 before the first look). */
extern int ccpu_known_features;

/* Looks (CPUID, XGETBV), stores the result in ccpu_known_features and returns it. */
int ccpu_detect_features(void);

/* A mask of CCPU_* flags. Inline, since kernels that are chosen per call (a checksum per segment)
   ask every time: after the first call it is one relaxed load. */
static inline int ccpu_features(void) {
    int known = __atomic_load_n(&ccpu_known_features, __ATOMIC_RELAXED);
    return (known != 0 ? known : ccpu_detect_features()) & ~1;
}

#endif
