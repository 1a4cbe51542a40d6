/*
 * sleeper: a C plugin that waits through WASI (poll_oneoff) in the ways C
 * programs do, for the deadline tests: nanosleep (a relative monotonic
 * clock), clock_nanosleep with TIMER_ABSTIME on the monotonic and on the
 * realtime clock, a loop of usleep, and poll_oneoff called directly with a
 * clock and an fd subscription or with bad pointers.
 */
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

#include "wasmdeck.h"

WASMDECK_METADATA(
    "{\"name\":\"sleeper\",\"version\":\"0.1.0\","
    "\"description\":\"Test plugin: sleeps through WASI\"}")

static int64_t now_ms(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int sleep_until(clockid_t clock, int64_t ms) {
    int64_t target = now_ms(clock) + ms;
    struct timespec at = {.tv_sec = target / 1000, .tv_nsec = (target % 1000) * 1000000};
    return clock_nanosleep(clock, TIMER_ABSTIME, &at, NULL);
}

int wasmdeck_execute(const wd_request *req) {
    int64_t ms = wd_int(wd_get(req->params, "ms"), 10000);
    int64_t started = now_ms(CLOCK_MONOTONIC);
    int rc = 0;
    if (wd_action_is(req, "nanosleep")) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
        rc = nanosleep(&ts, NULL);
    } else if (wd_action_is(req, "monotonic-until")) {
        rc = sleep_until(CLOCK_MONOTONIC, ms);
    } else if (wd_action_is(req, "realtime-until")) {
        rc = sleep_until(CLOCK_REALTIME, ms);
    } else if (wd_action_is(req, "usleep-loop")) {
        for (int i = 0; i < 100; i++) usleep(100000); /* 10 s in all */
    } else if (wd_action_is(req, "clock-and-stdout")) {
        /* A clock of 10 s and stdout: stdout is ready, so no wait. */
        __wasi_subscription_t subs[2] = {0};
        __wasi_event_t events[2];
        __wasi_size_t n = 0;
        subs[0].userdata = 7;
        subs[0].u.tag = __WASI_EVENTTYPE_CLOCK;
        subs[0].u.u.clock.id = __WASI_CLOCKID_MONOTONIC;
        subs[0].u.u.clock.timeout = 10ull * 1000000000ull;
        subs[1].userdata = 9;
        subs[1].u.tag = __WASI_EVENTTYPE_FD_WRITE;
        subs[1].u.u.fd_write.file_descriptor = 1;
        __wasi_errno_t err = __wasi_poll_oneoff(subs, events, 2, &n);
        return wd_outputf("{\"errno\":%d,\"n\":%d,\"userdata\":%d,\"type\":%d}", err, (int)n,
                          (int)events[0].userdata, (int)events[0].type);
    } else if (wd_action_is(req, "bad-pointers")) {
        /* Pointers past the end of memory and a count that overflows: errno, no trap. */
        __wasi_size_t n = 0;
        __wasi_subscription_t sub = {0};
        __wasi_event_t event;
        int far = (int)wd_int(wd_get(req->params, "far"), 0);
        __wasi_errno_t a = __wasi_poll_oneoff((void *)(uintptr_t)far, &event, 1, &n);
        __wasi_errno_t b = __wasi_poll_oneoff(&sub, (void *)(uintptr_t)far, 1, &n);
        __wasi_errno_t c = __wasi_poll_oneoff(&sub, &event, 1, (void *)(uintptr_t)far);
        __wasi_errno_t d = __wasi_poll_oneoff(&sub, &event, 0x7fffffff, &n);
        __wasi_errno_t e = __wasi_poll_oneoff(&sub, &event, 0, &n);
        return wd_outputf("[%d,%d,%d,%d,%d]", a, b, c, d, e);
    } else {
        return wd_error("unknown action");
    }
    return wd_outputf("{\"rc\":%d,\"slept_ms\":%lld}", rc,
                      (long long)(now_ms(CLOCK_MONOTONIC) - started));
}
