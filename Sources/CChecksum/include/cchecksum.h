#ifndef JVPN_CCHECKSUM_H
#define JVPN_CCHECKSUM_H
#include <stddef.h>
#include <stdint.h>

/* The Internet checksum's (RFC 1071) running sum over `length` bytes at `p`, in native byte order:
   a 64-bit value whose end-around-carry fold is the ones'-complement sum of the bytes read as
   native-order 16-bit words (an odd last byte padded with zero after it). Swapped to big-endian
   once folded, it is the RFC's sum. Sums of regions that meet at an even offset add.
   With AVX2 when the CPU has it (checked once), else plain 64-bit words. Pure: no allocation, no
   lock, no state but the CPU check. */
uint64_t cchecksum_sum(const void *p, size_t length);

/* Copies `length` bytes from `source` to `destination` (which must not overlap) and returns the
   same value as cchecksum_sum over them: one pass over the bytes instead of two. */
uint64_t cchecksum_copy_sum(void *destination, const void *source, size_t length);

/* The portable kernels, which the two above use on a CPU without AVX2; declared so that the tests
   hold both to RFC 1071 on any machine. */
uint64_t cchecksum_sum_words(const void *p, size_t length);
uint64_t cchecksum_copy_sum_words(void *destination, const void *source, size_t length);

#endif
