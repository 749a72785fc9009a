#ifndef JVPN_CAEAD_H
#define JVPN_CAEAD_H
#include <stddef.h>
#include <stdint.h>

/* ChaCha20-Poly1305, RFC 8439 (IETF: 32-byte key, 12-byte nonce, 16-byte tag), from OpenSSL 3's
   ChaCha20 and Poly1305 assembly (the static libcrypto), with this target's own 8-block AVX-512
   ChaCha20 for the last 257-512 bytes behind OpenSSL's 1,024-byte strides. Byte for byte the same
   construction as libsodium's crypto_aead_chacha20poly1305_ietf_*_detached, and faster on this
   project's machines at every frame length.

   No state between calls: the key schedule and the Poly1305 state live on the caller's stack for
   one message and are wiped before the call returns. No allocation, no lock. */

enum {
    CAEAD_OK = 0,
    /* open only: the tag does not match (forged, corrupted, wrong key, nonce or AAD). The text was
       not decrypted, and it is zeroed as libsodium zeroes it. */
    CAEAD_REJECTED = -1,
    /* The primitives failed their self-test (RFC 8439's vector, once per process) or the message is
       longer than INT_MAX: the text is untouched and the caller may use another implementation. */
    CAEAD_UNAVAILABLE = -2,
};

/* `roomBefore`: how many bytes right before `text` the call may borrow (64 are enough; 0 lends
   none). Lent bytes must be writable memory that nothing else reads or writes during the call;
   they may hold the AAD. They are saved, overwritten and restored, so they hold the same bytes
   when the call returns, and a frame sealed or opened with them saves one to two copies of its
   text through a stack scratch. */

/* Encrypts `length` bytes at `text` in place and writes the 16-byte tag to `tag`. Returns CAEAD_OK
   or CAEAD_UNAVAILABLE. */
int caead_seal(uint8_t *text, size_t length, uint8_t *tag, const uint8_t *ad, size_t adLength,
               const uint8_t *nonce, const uint8_t *key, size_t roomBefore);

/* Verifies `tag` over `ad` and the `length` ciphertext bytes at `text`, then decrypts them in place.
   Returns CAEAD_*; on CAEAD_REJECTED the region is zeroed. */
int caead_open(uint8_t *text, size_t length, const uint8_t *tag, const uint8_t *ad, size_t adLength,
               const uint8_t *nonce, const uint8_t *key, size_t roomBefore);

/* 1 when ChaCha20's last 257-512 bytes behind whole strides go to the 8-block AVX-512 kernel in
   this process (the CPU has AVX-512 VL and BW, and the kernel gave OpenSSL's keystream when
   checked before the first message), else 0. */
int caead_uses_eight_blocks(void);

#endif
