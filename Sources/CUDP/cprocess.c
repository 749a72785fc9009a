#define _GNU_SOURCE
#include "cprocess.h"
#include <errno.h>
#include <linux/capability.h>
#include <malloc.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Version 3 headers carry two 32-bit words per set (capabilities 0..63). */
int cprocess_capget(struct cprocess_caps *out) {
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0) return -errno;
    out->effective = (uint64_t)data[1].effective << 32 | data[0].effective;
    out->permitted = (uint64_t)data[1].permitted << 32 | data[0].permitted;
    out->inheritable = (uint64_t)data[1].inheritable << 32 | data[0].inheritable;
    return 0;
}

int cprocess_capset(const struct cprocess_caps *caps) {
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2] = {
        { .effective = (uint32_t)caps->effective, .permitted = (uint32_t)caps->permitted,
          .inheritable = (uint32_t)caps->inheritable },
        { .effective = (uint32_t)(caps->effective >> 32), .permitted = (uint32_t)(caps->permitted >> 32),
          .inheritable = (uint32_t)(caps->inheritable >> 32) },
    };
    return syscall(SYS_capset, &header, data) == 0 ? 0 : -errno;
}

int cprocess_bounding_has(int cap) {
    int r = prctl(PR_CAPBSET_READ, (unsigned long)cap, 0UL, 0UL, 0UL);
    return r < 0 ? -errno : r;
}

int cprocess_bounding_drop(int cap) {
    return prctl(PR_CAPBSET_DROP, (unsigned long)cap, 0UL, 0UL, 0UL) == 0 ? 0 : -errno;
}

int cprocess_set_no_new_privs(void) {
    return prctl(PR_SET_NO_NEW_PRIVS, 1UL, 0UL, 0UL, 0UL) == 0 ? 0 : -errno;
}

int cprocess_no_new_privs(void) {
    int r = prctl(PR_GET_NO_NEW_PRIVS, 0UL, 0UL, 0UL, 0UL);
    return r < 0 ? -errno : r;
}

int cprocess_set_dumpable(int on) {
    return prctl(PR_SET_DUMPABLE, (unsigned long)on, 0UL, 0UL, 0UL) == 0 ? 0 : -errno;
}

int cprocess_dumpable(void) {
    int r = prctl(PR_GET_DUMPABLE, 0UL, 0UL, 0UL, 0UL);
    return r < 0 ? -errno : r;
}

int cprocess_heap_trim(void) {
    return malloc_trim(0);
}

int cprocess_cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -errno;
    return CPU_COUNT(&set);
}
