#ifndef JVPN_CAEAD_CHACHA20_8BLOCKS_H
#define JVPN_CAEAD_CHACHA20_8BLOCKS_H
#include <stddef.h>

/* ChaCha20 (RFC 8439) over up to 8 blocks: XORs `length` <= 512 bytes at `in` with the keystream
   from block counter[0] on and writes them to `out` (which may be `in`). `key` and `counter` as
   OpenSSL's ChaCha20_ctr32 takes them: 32-bit little-endian words, the block counter first and
   then the nonce; the counter wraps at 2^32 as there. Only for a CPU with CCPU_AVX512VL_BW.
   In an optimized build (the release build's -O2) nothing of the key or the keystream reaches
   memory but the output: they stay in registers, which are cleared before the call returns, and
   the last, partial block is XORed through masked loads and stores. (An -O0 build spills them to
   its stack.) */
#if defined(__x86_64__)
void caead_chacha20_8blocks(unsigned char *out, const unsigned char *in, size_t length, const unsigned int key[8],
                            const unsigned int counter[4]);
#endif

#endif
