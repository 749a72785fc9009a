#ifndef CCOUNTERS_H
#define CCOUNTERS_H
#include <stdint.h>

/* A counter with one writer: a relaxed load and store, no locked instruction. Readers on other
 * threads see whole values (relaxed atomic loads), possibly a moment old. */
static inline void ccounter_add(uint64_t *counter, uint64_t value) {
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + value, __ATOMIC_RELAXED);
}

static inline uint64_t ccounter_load(const uint64_t *counter) {
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

#endif
