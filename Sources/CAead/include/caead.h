#ifndef JVPN_CAEAD_H
#define JVPN_CAEAD_H
#include <stddef.h>
#include <stdint.h>

/* ChaCha20-Poly1305, RFC 8439 (IETF: 32-byte key, 12-byte nonce, 16-byte tag), through OpenSSL 3's
   libcrypto EVP. Byte for byte the same construction as libsodium's
   crypto_aead_chacha20poly1305_ietf_*_detached; used for transport frames because OpenSSL's
   ChaCha20 and Poly1305 are faster on long messages.

   Each thread owns one sealing and one opening EVP_CIPHER_CTX, created on its first call and freed
   when the thread exits: no allocation and no lock per call. */

enum {
    CAEAD_OK = 0,
    /* open: the tag does not match (forged, corrupted, wrong key, nonce or AAD), or OpenSSL failed
       after touching the text; the text is zeroed. seal: OpenSSL failed after touching the text,
       which is garbage now. Either way the message is lost. */
    CAEAD_REJECTED = -1,
    /* The thread's contexts could not be created or OpenSSL refused to start: the text is
       untouched and the caller may use another implementation for this message. */
    CAEAD_UNAVAILABLE = -2,
};

/* Encrypts `length` bytes at `text` in place and writes the 16-byte tag to `tag`. Returns CAEAD_*. */
int caead_seal(uint8_t *text, size_t length, uint8_t *tag, const uint8_t *ad, size_t adLength,
               const uint8_t *nonce, const uint8_t *key);

/* Verifies `tag` over `ad` and the `length` ciphertext bytes at `text` and decrypts them in place.
   Returns CAEAD_*; on CAEAD_REJECTED the region is zeroed: unauthenticated plaintext never stays
   behind. */
int caead_open(uint8_t *text, size_t length, const uint8_t *tag, const uint8_t *ad, size_t adLength,
               const uint8_t *nonce, const uint8_t *key);

#endif
