#ifndef JVPN_CPROCESS_H
#define JVPN_CPROCESS_H
#include <stdint.h>

/* Process hardening syscalls Swift cannot call directly (prctl is variadic; capget/capset have
   no glibc wrapper). Each returns 0 (or the value read) on success, -errno on failure. */

/* The calling thread's capability sets as 64-bit masks (bit N = capability N). */
struct cprocess_caps {
    uint64_t effective;
    uint64_t permitted;
    uint64_t inheritable;
};

int cprocess_capget(struct cprocess_caps *out);
int cprocess_capset(const struct cprocess_caps *caps);

/* prctl(PR_CAPBSET_READ, cap): 1 if in the bounding set, 0 if not, -errno. */
int cprocess_bounding_has(int cap);
/* prctl(PR_CAPBSET_DROP, cap). Needs CAP_SETPCAP. */
int cprocess_bounding_drop(int cap);
/* prctl(PR_SET_NO_NEW_PRIVS, 1): execve can never grant privileges again. */
int cprocess_set_no_new_privs(void);
/* prctl(PR_GET_NO_NEW_PRIVS): 1, 0 or -errno. */
int cprocess_no_new_privs(void);
/* prctl(PR_SET_DUMPABLE, on): 0 = no core dumps, no ptrace attach by other users. */
int cprocess_set_dumpable(int on);
/* prctl(PR_GET_DUMPABLE): 0, 1, 2 or -errno. */
int cprocess_dumpable(void);
/* malloc_trim(0): free pages of every malloc arena back to the kernel. 1 if memory was released. */
int cprocess_heap_trim(void);

/* CPUs in the calling thread's affinity mask (sched_getaffinity), or -errno. */
int cprocess_cpu_count(void);

#endif
