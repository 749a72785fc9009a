#ifndef JVPN_CAEAD_CHACHA20_8BLOCKS_H
#define JVPN_CAEAD_CHACHA20_8BLOCKS_H
#include <stddef.h>

/* ChaCha20 (RFC 8439) over up to 8 blocks: XORs `length` <= 512 bytes at `in` with the keystream
   from block counter[0] on and writes them to `out` (which may be `in`). `key` and `counter` as
   OpenSSL's ChaCha20_ctr32 takes them: 32-bit little-endian words, the block counter first and
   then the nonce; the counter wraps at 2^32 as there. Only for a CPU with CCPU_AVX512VL_BW.
   Nothing of the keystream is left in memory: it stays in registers, and the last, partial block
   is XORed through masked loads and stores. */
#if defined(__x86_64__)
void caead_chacha20_8blocks(unsigned char *out, const unsigned char *in, size_t length, const unsigned int key[8],
                            const unsigned int counter[4]);
#endif

#endif
