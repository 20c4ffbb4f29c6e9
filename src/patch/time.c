/*
 * time.c — sleep usleep nanosleep clock_nanosleep (and __nanosleep) as
 * green_sleep in a green thread.
 *
 * Durations are rounded up to the hub's millisecond; a zero sleep yields to the other
 * ready green threads (gevent.sleep(0)). A sleep cut short — the scoped deadline of
 * green_timeout_push, or a kill — reports the time left where libc's interface has room
 * for it (nanosleep's rem, sleep's return value) and fails with ETIMEDOUT or ECANCELED
 * rather than EINTR: code that loops `while (nanosleep(&t, &t) && errno == EINTR)` would
 * otherwise spin in a killed green thread, whose every wait ends at once. All four are
 * cancellation points (patch.h).
 */
#include "io.h"

/* Sleep ms (>= 0): 0, or -1 + errno with *left_ms the time left. A cancelled green
 * pthread leaves here. */
static int sleep_ms(int64_t ms, int64_t *left_ms)
{
    *left_ms = 0;
    patch_parking();
    if (ms == 0)
        return green_yield() == 0 ? 0 : (patch_testcancel(), -1);
    int64_t until = green_after(ms);
    if (green_sleep_until(until) == 0)
        return 0;
    if (errno == ECANCELED)
        patch_testcancel();
    int64_t left = until - green_now();
    *left_ms = left > 0 ? left : 0;
    return -1;
}

static void ms_to_ts(int64_t ms, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ms / 1000);
    ts->tv_nsec = (long)(ms % 1000) * 1000000L;
}

int nanosleep(const struct timespec *req, struct timespec *rem)
{
    patch_cancel_point();
    if (!patch_here() || !req)
        return patch_real()->nanosleep(req, rem);
    int64_t ms = patch_ts_ms(req), left;
    if (ms < 0)
        return -1;
    int e = errno;
    if (sleep_ms(ms, &left) != 0) {
        if (rem)
            ms_to_ts(left, rem);
        return -1;
    }
    errno = e;
    return 0;
}
GREEN_PATCH(nanosleep);

int __nanosleep(const struct timespec *req, struct timespec *rem) { return nanosleep(req, rem); }
GREEN_PATCH(__nanosleep);

/* The clocks a green sleep can stand for; CPU-time clocks go to libc. */
static int wall_clock(clockid_t c)
{
    return c == CLOCK_REALTIME || c == CLOCK_MONOTONIC || c == CLOCK_BOOTTIME || c == CLOCK_TAI;
}

/* Returns an error number, and leaves errno alone, as POSIX says. */
int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req, struct timespec *rem)
{
    patch_cancel_point();
    if (!patch_here() || !req || !wall_clock(clk))
        return patch_real()->clock_nanosleep(clk, flags, req, rem);
    int e = errno;
    int64_t ms = patch_ts_ms(req);
    if (ms < 0) {
        errno = e;
        return EINVAL;
    }
    if (flags & TIMER_ABSTIME) {
        struct timespec now;
        clock_gettime(clk, &now);
        int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
        ms = ms > now_ms ? ms - now_ms : 0;
        rem = NULL; /* an absolute sleep has nothing to report */
    }
    int64_t left;
    int r = sleep_ms(ms, &left) == 0 ? 0 : errno;
    if (r && rem)
        ms_to_ts(left, rem);
    errno = e;
    return r;
}
GREEN_PATCH(clock_nanosleep);

/* The seconds left (rounded up) when cut short, with errno set; 0 otherwise. */
unsigned int sleep(unsigned int seconds)
{
    patch_cancel_point();
    if (!patch_here())
        return patch_real()->sleep(seconds);
    int e = errno;
    int64_t left;
    if (sleep_ms((int64_t)seconds * 1000, &left) != 0) {
        unsigned int s = (unsigned int)((left + 999) / 1000);
        return s ? s : 1; /* cut short: never 0, which would say it slept it all */
    }
    errno = e;
    return 0;
}
GREEN_PATCH(sleep);

int usleep(useconds_t usec)
{
    patch_cancel_point();
    if (!patch_here())
        return patch_real()->usleep(usec);
    int e = errno;
    int64_t left;
    if (sleep_ms(((int64_t)usec + 999) / 1000, &left) != 0)
        return -1;
    errno = e;
    return 0;
}
GREEN_PATCH(usleep);
