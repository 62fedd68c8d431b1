/* LD_PRELOAD shim for the tests: shifts CLOCK_REALTIME (the wall clock) of
 * one process, leaving the monotonic clock alone. The shift, in seconds
 * (negative: back), is HISSRV_TEST_WALL_OFFSET_S, or, to step the clock under
 * a running process, the number in the file HISSRV_TEST_WALL_OFFSET_FILE,
 * read again at every call. A gateway without an RTC that boots at 1970 is an
 * offset of minus "now". Built by tests/common/clock_shim.rs with gcc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long long file_offset(const char *path, long long fallback) {
    char buf[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return fallback;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        return fallback;
    }
    buf[n] = 0;
    return atoll(buf);
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *) = 0;
    static long long offset = 0;
    static const char *file = 0;
    static int ready = 0;
    if (!ready) {
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
        const char *o = getenv("HISSRV_TEST_WALL_OFFSET_S");
        offset = o ? atoll(o) : 0;
        file = getenv("HISSRV_TEST_WALL_OFFSET_FILE");
        ready = 1;
    }
    int r = real(id, ts);
    if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        ts->tv_sec += file ? file_offset(file, offset) : offset;
    }
    return r;
}
