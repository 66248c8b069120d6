/*
 * LD_PRELOAD library for the benchmark's Janus: report the loopback interface
 * as an ordinary one.
 *
 * Janus 1.1.2 and libnice leave out every interface whose IFF_LOOPBACK flag is
 * set when they gather ICE candidates, so inside a network namespace that has
 * only "lo" Janus would offer no candidate at all. This wrapper calls the real
 * getifaddrs() and clears that flag in the list it returns; nothing else
 * changes, and packets still go over lo.
 *
 * Build: gcc -shared -fPIC -O2 -o loopback_ice.so loopback_ice.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stddef.h>

typedef int (*getifaddrs_function)(struct ifaddrs **);

int getifaddrs(struct ifaddrs **list)
{
    static getifaddrs_function next_getifaddrs = NULL;
    if (next_getifaddrs == NULL) {
        next_getifaddrs = (getifaddrs_function)dlsym(RTLD_NEXT, "getifaddrs");
        if (next_getifaddrs == NULL) {
            return -1;
        }
    }
    int result = next_getifaddrs(list);
    if (result != 0) {
        return result;
    }
    for (struct ifaddrs *entry = *list; entry != NULL; entry = entry->ifa_next) {
        entry->ifa_flags &= ~IFF_LOOPBACK;
    }
    return 0;
}
