#include "caead.h"
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

/* Key material: the session keys live in libsodium guarded pages (SecretSlab); a call hands the key
   to EVP, which copies it into the context's heap state, and this thread's state keeps a copy of the
   last key each context took, to tell whether the next message needs a re-key. Both copies stay
   until a later call re-keys the context or the thread exits. That is acceptable because they are
   no more exposed than the slab itself: they live in this process's private heap only, never reach
   a log, a store or an event, and the daemon sets PR_SET_DUMPABLE 0 (no core dump, no ptrace by
   another uid). When a thread ends, both are wiped (OPENSSL_cleanse) before they are freed; when the
   process ends, its memory goes with it. The packet threads live as long as the daemon. */

/* One direction's EVP context and the key it holds. Starting a message with the key as well as the
   nonce costs 3-6 % more of a 1,420-byte frame (measured), and a peer's frames come in long runs
   under one key, so a context is re-keyed only when the key changes. */
struct caead_context {
    EVP_CIPHER_CTX *evp;
    uint8_t key[32];
    int keyed;
};

struct caead_thread {
    struct caead_context seal;
    struct caead_context open;
};

static _Thread_local struct caead_thread *current;
/* Set when this thread could not create its contexts (no memory, or OpenSSL's configuration refuses
   the cipher): it is not retried, so such a thread does not allocate and fail per message; its
   messages go to the caller's other implementation. */
static _Thread_local int unavailable;
static pthread_key_t exitKey;
static pthread_once_t processInitOnce = PTHREAD_ONCE_INIT;
static int exitKeyReady;

static void caead_thread_free(void *p) {
    struct caead_thread *t = p;
    if (current == t) current = NULL;
    EVP_CIPHER_CTX_free(t->seal.evp);
    EVP_CIPHER_CTX_free(t->open.evp);
    OPENSSL_cleanse(t, sizeof *t);
    free(t);
}

/* Once per process, before any other OpenSSL call: OpenSSL's own defaults, not the system's
   openssl.cnf. This AEAD is always the default provider's ChaCha20-Poly1305 (libsodium, the other
   implementation, reads no configuration either); a configuration that restricts providers would
   only send every frame back to libsodium, and loading one costs the daemon most of a megabyte. */
static void caead_process_init(void) {
    exitKeyReady = OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL) == 1
        && pthread_key_create(&exitKey, caead_thread_free) == 0;
}

/* This thread's contexts, created on first use; NULL if that failed, then and ever after. */
static struct caead_thread *caead_thread_state(void) {
    struct caead_thread *t = current;
    if (t) return t;
    if (unavailable) return NULL;
    unavailable = 1;
    pthread_once(&processInitOnce, caead_process_init);
    if (!exitKeyReady) return NULL;
    t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->seal.evp = EVP_CIPHER_CTX_new();
    t->open.evp = EVP_CIPHER_CTX_new();
    if (!t->seal.evp || !t->open.evp
        || EVP_EncryptInit_ex(t->seal.evp, EVP_chacha20_poly1305(), NULL, NULL, NULL) != 1
        || EVP_DecryptInit_ex(t->open.evp, EVP_chacha20_poly1305(), NULL, NULL, NULL) != 1
        || pthread_setspecific(exitKey, t) != 0) {
        caead_thread_free(t);
        return NULL;
    }
    current = t;
    unavailable = 0;
    return t;
}

/* Starts a message: the nonce always, the key only when it is not the one the context holds. The
   default IV length of EVP_chacha20_poly1305 is 12 bytes: the RFC 8439 nonce. */
static int caead_start(struct caead_context *c, int encrypt, const uint8_t *nonce, const uint8_t *key) {
    if (c->keyed && CRYPTO_memcmp(c->key, key, sizeof c->key) == 0)
        return EVP_CipherInit_ex(c->evp, NULL, NULL, NULL, nonce, encrypt) == 1;
    /* The old key goes now: if the new one fails to go in, no copy of either is left here. */
    OPENSSL_cleanse(c->key, sizeof c->key);
    c->keyed = 0;
    if (EVP_CipherInit_ex(c->evp, NULL, NULL, key, nonce, encrypt) != 1) return 0;
    memcpy(c->key, key, sizeof c->key);
    c->keyed = 1;
    return 1;
}

int caead_seal(uint8_t *text, size_t length, uint8_t *tag, const uint8_t *ad, size_t adLength,
               const uint8_t *nonce, const uint8_t *key) {
    if (length > INT_MAX || adLength > INT_MAX) return CAEAD_UNAVAILABLE;
    struct caead_thread *t = caead_thread_state();
    if (!t) return CAEAD_UNAVAILABLE;
    EVP_CIPHER_CTX *c = t->seal.evp;
    int n;
    if (!caead_start(&t->seal, 1, nonce, key)) return CAEAD_UNAVAILABLE;
    if (adLength > 0 && EVP_EncryptUpdate(c, NULL, &n, ad, (int)adLength) != 1) return CAEAD_UNAVAILABLE;
    if (length > 0 && EVP_EncryptUpdate(c, text, &n, text, (int)length) != 1) return CAEAD_REJECTED;
    /* Final writes nothing for a stream cipher; it completes the Poly1305 tag. */
    if (EVP_EncryptFinal_ex(c, text + length, &n) != 1) return CAEAD_REJECTED;
    /* The tag through the parameter itself rather than EVP_CIPHER_CTX_ctrl, which builds the same
       parameter and then looks the control up. */
    OSSL_PARAM out[2] = { OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, 16),
                          OSSL_PARAM_construct_end() };
    if (EVP_CIPHER_CTX_get_params(c, out) != 1) return CAEAD_REJECTED;
    return CAEAD_OK;
}

int caead_open(uint8_t *text, size_t length, const uint8_t *tag, const uint8_t *ad, size_t adLength,
               const uint8_t *nonce, const uint8_t *key) {
    if (length > INT_MAX || adLength > INT_MAX) return CAEAD_UNAVAILABLE;
    struct caead_thread *t = caead_thread_state();
    if (!t) return CAEAD_UNAVAILABLE;
    EVP_CIPHER_CTX *c = t->open.evp;
    int n;
    if (!caead_start(&t->open, 0, nonce, key)) return CAEAD_UNAVAILABLE;
    if (adLength > 0 && EVP_DecryptUpdate(c, NULL, &n, ad, (int)adLength) != 1) return CAEAD_UNAVAILABLE;
    OSSL_PARAM expected[2] = { OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, (void *)tag, 16),
                               OSSL_PARAM_construct_end() };
    /* EVP decrypts while it authenticates: until Final has compared the tag (in constant time)
       the text is unauthenticated. Any failure from here on zeroes it. */
    if ((length > 0 && EVP_DecryptUpdate(c, text, &n, text, (int)length) != 1)
        || EVP_CIPHER_CTX_set_params(c, expected) != 1
        || EVP_DecryptFinal_ex(c, text + length, &n) != 1) {
        memset(text, 0, length);
        return CAEAD_REJECTED;
    }
    return CAEAD_OK;
}
