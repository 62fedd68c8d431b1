/* LD_PRELOAD shim for the tests: shifts CLOCK_REALTIME (the wall clock) of
 * one process by HISSRV_TEST_WALL_OFFSET_S seconds (negative: back), leaving
 * the monotonic clock alone. A gateway without an RTC that boots at 1970 is
 * an offset of minus "now". Built by tests/common/clock_shim.rs with gcc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

int clock_gettime(clockid_t id, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *) = 0;
    static long long offset = 0;
    static int ready = 0;
    if (!ready) {
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
        const char *o = getenv("HISSRV_TEST_WALL_OFFSET_S");
        offset = o ? atoll(o) : 0;
        ready = 1;
    }
    int r = real(id, ts);
    if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        ts->tv_sec += offset;
    }
    return r;
}
