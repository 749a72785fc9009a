#include "caead.h"
#include "ccpufeatures.h"
#include "chacha20_8blocks.h"
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <openssl/crypto.h>

/* The two primitives, from the static libcrypto (libcrypto.a, linked into the binary): OpenSSL's
   assembly for this CPU (AVX-512, AVX2 or SSE, chosen from CPUID when the process starts). They
   are libcrypto's own internal entry points, not in its public headers, so they are declared here.
   Its public EVP interface wraps them but costs 200-260 ns more per 1,420-byte frame on this
   project's VM, a fifth to a quarter of its seal. A self-test runs before first use (caead_ready):
   if the archive ever changed them, every message would go to libsodium instead. */
void ChaCha20_ctr32(unsigned char *out, const unsigned char *inp, size_t len, const unsigned int key[8],
                    const unsigned int counter[4]);
size_t Poly1305_ctx_size(void);
void Poly1305_Init(void *ctx, const unsigned char key[32]);
void Poly1305_Update(void *ctx, const unsigned char *inp, size_t len);
void Poly1305_Final(void *ctx, unsigned char mac[16]);

/* One message's secrets, on the caller's stack and wiped before the call returns: the key and the
   nonce as ChaCha20 takes them (32-bit little-endian words) and the Poly1305 state, whose first
   32 bytes of key come from ChaCha20's block 0. Nothing of this file's outlives the call. (OpenSSL's
   scalar ChaCha20, which a CPU without SSSE3 gets, leaves the key words in its own dead stack frame,
   as libsodium's leaves them in its.) */
/* Every wipe is explicit_bzero: glibc's vector memset, which the compiler may not drop as a dead
   store. (OPENSSL_cleanse stores 8 bytes at a time: 1 % of the daemons' samples under a TCP stream.) */
struct caead_message {
    unsigned int key[8];
    unsigned int counter[4];
    _Alignas(16) unsigned char poly[256];
};

static unsigned int caead_word(const uint8_t *p) {
    return (unsigned int)p[0] | (unsigned int)p[1] << 8 | (unsigned int)p[2] << 16 | (unsigned int)p[3] << 24;
}

/* RFC 8439 section 2.8: the key words, and the nonce after block counter 0. */
static void caead_begin(struct caead_message *m, const uint8_t *nonce, const uint8_t *key) {
    for (int i = 0; i < 8; i++) m->key[i] = caead_word(key + 4 * i);
    m->counter[0] = 0;
    for (int i = 0; i < 3; i++) m->counter[1 + i] = caead_word(nonce + 4 * i);
}

/* Poly1305's key is ChaCha20's block 0, and the text takes the keystream from block 1 on. OpenSSL's
   ChaCha20 works on 4 or 16 blocks at once, so block 0 alone costs as much as 4 (about 110 ns here,
   15 % of a 1,420-byte frame's seal); in the text's own call it is nearly free, unless it makes
   that call take one more 16-block stride. So a text that fits the scratch and does not end in the
   last 64 bytes of a 1,024-byte stride goes through one call behind 64 zero bytes: in place when
   the caller lends the 64 bytes before it (saved, zeroed, restored), else as a copy behind them in
   a stack scratch. */
enum { CAEAD_SCRATCH = 2048, CAEAD_BLOCK = 64, CAEAD_STRIDE = 1024, CAEAD_EIGHT_BLOCKS = 512, CAEAD_SHORT = 256 };

/* Whether caead_chacha20_8blocks may be used: the CPU has AVX-512 VL and BW, and the kernel gave
   OpenSSL's keystream when first checked. Set once, before the first message (caead_check). */
static int eightBlocks;

/* ChaCha20 over `length` bytes from block counter[0] on. On an AVX-512 CPU OpenSSL works on 16
   blocks (1,024 bytes) at a time and a part of a stride costs as much as a whole one, as do 257-512
   bytes on their own: a joined 1,420-byte frame (1,484 bytes) takes 380 ns, as long as 2,048
   bytes would. So the whole strides go to OpenSSL, and a rest of up to 512 bytes behind them to a
   call of its own: the 8-block kernel from 257 bytes (120 ns), OpenSSL's short code below (100 ns).
   That frame then takes about 320 ns. Where the kernel is not used, one call as before. */
static void caead_chacha20(unsigned char *out, const unsigned char *in, size_t length, const unsigned int key[8],
                           const unsigned int counter[4]) {
#if defined(__x86_64__)
    size_t rest = length % CAEAD_STRIDE, whole = length - rest;
    if (eightBlocks && rest > 0 && rest <= CAEAD_EIGHT_BLOCKS) {
        if (whole > 0) ChaCha20_ctr32(out, in, whole, key, counter);
        /* The block counter wraps at 2^32 as in OpenSSL's own strides (never reached: a message
           is shorter than 2^32 blocks and starts at block 0). */
        const unsigned int next[4] = { counter[0] + (unsigned int)(whole / CAEAD_BLOCK), counter[1], counter[2],
                                       counter[3] };
        if (rest > CAEAD_SHORT) caead_chacha20_8blocks(out + whole, in + whole, rest, key, next);
        else ChaCha20_ctr32(out + whole, in + whole, rest, key, next);
        return;
    }
#endif
    ChaCha20_ctr32(out, in, length, key, counter);
}

static int caead_joins_block0(size_t length) {
    size_t inStride = length % CAEAD_STRIDE;
    return length <= CAEAD_SCRATCH - CAEAD_BLOCK && inStride != 0 && inStride <= CAEAD_STRIDE - CAEAD_BLOCK;
}

/* Block 0 alone keys Poly1305; the text's call then starts at block 1. */
static void caead_key_poly_alone(struct caead_message *m) {
    unsigned char block[CAEAD_BLOCK] = { 0 };
    ChaCha20_ctr32(block, block, sizeof block, m->key, m->counter);
    Poly1305_Init(m->poly, block);
    explicit_bzero(block, sizeof block);
    m->counter[0] = 1;
}

/* [64 zero bytes][text] through one call into `out` (64 + length bytes, which may be the input
   itself): block 0 keys Poly1305 and is wiped, and the text XORed with the keystream is left at
   out + 64. `joined` starts with the 64 zero bytes and the text right behind them. */
static void caead_joined(struct caead_message *m, unsigned char *joined, size_t length, unsigned char *out) {
    caead_chacha20(out, joined, CAEAD_BLOCK + length, m->key, m->counter);
    Poly1305_Init(m->poly, out);
    explicit_bzero(out, CAEAD_BLOCK);
}

/* Without lent bytes: [64 zero bytes][a copy of the text] in `scratch`, which it returns. */
static unsigned char *caead_behind_zeros(unsigned char *scratch, const uint8_t *text, size_t length) {
    memset(scratch, 0, CAEAD_BLOCK);
    memcpy(scratch + CAEAD_BLOCK, text, length);
    return scratch;
}

/* The 64 bytes the caller lent before the text, kept while they hold the zeros. They may be
   another frame's plaintext, so the copy is wiped once they are put back. */
struct caead_lent {
    unsigned char *at;
    unsigned char saved[CAEAD_BLOCK];
};

static void caead_borrow(struct caead_lent *lent, uint8_t *text) {
    lent->at = text - CAEAD_BLOCK;
    memcpy(lent->saved, lent->at, CAEAD_BLOCK);
    memset(lent->at, 0, CAEAD_BLOCK);
}

static void caead_give_back(struct caead_lent *lent) {
    memcpy(lent->at, lent->saved, CAEAD_BLOCK);
    explicit_bzero(lent->saved, CAEAD_BLOCK);
}

/* The tag over the AAD and the ciphertext, each padded to 16 bytes, then their lengths. OpenSSL's
   Poly1305 holds back a call's partial last block and takes it alone through its one-block code
   later: 25-40 ns more per 1,420-byte frame than whole blocks. So whole blocks go straight from the
   message (the AAD and the ciphertext in one call when they are adjacent and the AAD is whole
   blocks, as a frame's 16-byte header is), and the ciphertext's partial block, its padding and the
   lengths go together in one call from a 32-byte block on the stack (public bytes only). */
static void caead_tag(struct caead_message *m, const uint8_t *ad, size_t adLength, const uint8_t *cipher,
                      size_t length, uint8_t tag[16]) {
    static const unsigned char zeros[16] = { 0 };
    size_t whole = length & ~(size_t)15, partial = length - whole;
    if ((uintptr_t)ad + adLength == (uintptr_t)cipher && adLength % 16 == 0) {
        Poly1305_Update(m->poly, ad, adLength + whole);
    } else {
        Poly1305_Update(m->poly, ad, adLength);
        if (adLength % 16) Poly1305_Update(m->poly, zeros, 16 - adLength % 16);
        Poly1305_Update(m->poly, cipher, whole);
    }
    unsigned char last[32] = { 0 };
    memcpy(last, cipher + whole, partial);
    unsigned char *lengths = partial > 0 ? last + 16 : last;
    for (int i = 0; i < 8; i++) {
        lengths[i] = (unsigned char)((uint64_t)adLength >> (8 * i));
        lengths[8 + i] = (unsigned char)((uint64_t)length >> (8 * i));
    }
    Poly1305_Update(m->poly, last, (size_t)(lengths - last) + 16);
    Poly1305_Final(m->poly, tag);
}

static void caead_seal_message(uint8_t *text, size_t length, uint8_t *tag, const uint8_t *ad, size_t adLength,
                               const uint8_t *nonce, const uint8_t *key, size_t roomBefore) {
    struct caead_message m;
    caead_begin(&m, nonce, key);
    if (caead_joins_block0(length) && roomBefore >= CAEAD_BLOCK) {
        /* Block 0 lands in the lent bytes and is wiped there by giving them back. The AAD may lie
           among them, so the tag comes after. */
        struct caead_lent lent;
        caead_borrow(&lent, text);
        caead_joined(&m, lent.at, length, lent.at);
        caead_give_back(&lent);
    } else if (caead_joins_block0(length)) {
        _Alignas(64) unsigned char scratch[CAEAD_SCRATCH];
        caead_joined(&m, caead_behind_zeros(scratch, text, length), length, scratch);
        memcpy(text, scratch + CAEAD_BLOCK, length);
    } else {
        caead_key_poly_alone(&m);
        if (length > 0) caead_chacha20(text, text, length, m.key, m.counter);
    }
    caead_tag(&m, ad, adLength, text, length, tag);
    explicit_bzero(&m, sizeof m);
}

/* The tag is checked before the text is decrypted in place (through the scratch, the plaintext
   reaches `text` only once the tag matched); a rejected text is zeroed all the same, as libsodium
   does, so both implementations leave the same bytes behind. With the 64 bytes before the text
   lent, the joined call reads the ciphertext where it lies instead of a copy of it. */
static int caead_open_message(uint8_t *text, size_t length, const uint8_t *tag, const uint8_t *ad,
                              size_t adLength, const uint8_t *nonce, const uint8_t *key, size_t roomBefore) {
    struct caead_message m;
    uint8_t expected[16];
    _Alignas(64) unsigned char scratch[CAEAD_SCRATCH];
    int joined = caead_joins_block0(length);
    caead_begin(&m, nonce, key);
    if (joined && roomBefore >= CAEAD_BLOCK) {
        struct caead_lent lent;
        caead_borrow(&lent, text);
        caead_joined(&m, lent.at, length, scratch);
        caead_give_back(&lent);
    } else if (joined) {
        caead_joined(&m, caead_behind_zeros(scratch, text, length), length, scratch);
    } else {
        caead_key_poly_alone(&m);
    }
    caead_tag(&m, ad, adLength, text, length, expected);
    int rc = CRYPTO_memcmp(expected, tag, sizeof expected) == 0 ? CAEAD_OK : CAEAD_REJECTED;
    if (rc == CAEAD_OK) {
        if (joined) memcpy(text, scratch + CAEAD_BLOCK, length);
        else if (length > 0) caead_chacha20(text, text, length, m.key, m.counter);
    } else {
        memset(text, 0, length);
    }
    /* The scratch's copy of the text (plaintext, or a forgery's garbage) does not stay on the
       stack either; explicit_bzero is glibc's vector memset, a few ns for a frame, and is not
       removed as a dead store. */
    if (joined) explicit_bzero(scratch + CAEAD_BLOCK, length);
    explicit_bzero(&m, sizeof m);
    explicit_bzero(expected, sizeof expected);
    return rc;
}

/* RFC 8439 section 2.8.2: the plaintext ("Ladies and Gentlemen of the class of '99: ..."), its
   AAD, key and nonce, and the tag it must give. The tag is over the ciphertext, so it checks the
   cipher as well as the MAC; opening must give the plaintext back. */
static int caead_self_test(void) {
    static const char plain[] = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
                                "future, sunscreen would be it.";
    static const uint8_t ad[12] = { 0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7 };
    static const uint8_t nonce[12] = { 0x07, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47 };
    static const uint8_t expectedTag[16] = { 0x1a, 0xe1, 0x0b, 0x59, 0x4f, 0x09, 0xe2, 0x6a,
                                             0x7e, 0x90, 0x2e, 0xcb, 0xd0, 0x60, 0x06, 0x91 };
    uint8_t key[32], text[sizeof plain - 1], tag[16];
    for (int i = 0; i < 32; i++) key[i] = (uint8_t)(0x80 + i);
    memcpy(text, plain, sizeof text);
    caead_seal_message(text, sizeof text, tag, ad, sizeof ad, nonce, key, 0);
    if (memcmp(tag, expectedTag, sizeof tag) != 0 || memcmp(text, plain, sizeof text) == 0) return 0;
    return caead_open_message(text, sizeof text, tag, ad, sizeof ad, nonce, key, 0) == CAEAD_OK
        && memcmp(text, plain, sizeof text) == 0;
}

static pthread_once_t readyOnce = PTHREAD_ONCE_INIT;
static int ready;

/* The 8-block kernel against OpenSSL's ChaCha20, which the self-test has just held to RFC 8439:
   500 bytes (a partial last block) from a block counter of 2^32 - 3 (it wraps), with the key and
   nonce of that test. */
static int caead_eight_blocks_agree(void) {
#if defined(__x86_64__)
    unsigned int key[8], counter[4] = { 0xfffffffdu, 0x07, 0x43424140, 0x47464544 };
    for (int i = 0; i < 8; i++) key[i] = 0x83828180u + 0x04040404u * (unsigned int)i;
    unsigned char text[500], theirs[500], ours[500];
    for (size_t i = 0; i < sizeof text; i++) text[i] = (unsigned char)(i * 7 + 1);
    ChaCha20_ctr32(theirs, text, sizeof text, key, counter);
    caead_chacha20_8blocks(ours, text, sizeof text, key, counter);
    return memcmp(theirs, ours, sizeof ours) == 0;
#else
    return 0;
#endif
}

static void caead_check(void) {
    ready = Poly1305_ctx_size() <= sizeof(((struct caead_message *)0)->poly) && caead_self_test();
    eightBlocks = ready && (ccpu_features() & CCPU_AVX512VL_BW) && caead_eight_blocks_agree();
}

/* Whether these primitives may be used: their state fits and they give RFC 8439's bytes. */
static int caead_ready(void) {
    pthread_once(&readyOnce, caead_check);
    return ready;
}

int caead_seal(uint8_t *text, size_t length, uint8_t *tag, const uint8_t *ad, size_t adLength,
               const uint8_t *nonce, const uint8_t *key, size_t roomBefore) {
    if (length > INT_MAX || adLength > INT_MAX || !caead_ready()) return CAEAD_UNAVAILABLE;
    caead_seal_message(text, length, tag, ad, adLength, nonce, key, roomBefore);
    return CAEAD_OK;
}

int caead_open(uint8_t *text, size_t length, const uint8_t *tag, const uint8_t *ad, size_t adLength,
               const uint8_t *nonce, const uint8_t *key, size_t roomBefore) {
    if (length > INT_MAX || adLength > INT_MAX || !caead_ready()) return CAEAD_UNAVAILABLE;
    return caead_open_message(text, length, tag, ad, adLength, nonce, key, roomBefore);
}

int caead_uses_eight_blocks(void) {
    return caead_ready() && eightBlocks;
}
