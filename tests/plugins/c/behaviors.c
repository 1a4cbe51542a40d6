/*
 * behaviors: a C plugin with one action per behaviour the tests need, the
 * good (echo, context, params, count, log, env, big, read, write) and the bad (spin,
 * bomb, recurse, trap, divzero, burn, fail).
 */
#include <errno.h>

#include "wasmdeck.h"

WASMDECK_METADATA(
    "{\"name\":\"behaviors\",\"version\":\"0.1.0\","
    "\"description\":\"Test plugin: every behaviour the tests need\"}")

static int count;
static volatile int sink;

static int recurse(int depth) { /* unbounded on purpose */
    volatile char frame[256];
    frame[0] = (char)depth;
    return recurse(depth + 1) + frame[0];
}

int wasmdeck_execute(const wd_request *req) {
    if (wd_action_is(req, "ok")) return wd_output_str("ok");
    if (wd_action_is(req, "echo")) return wd_output(req->raw.p, req->raw.n);
    if (wd_action_is(req, "context")) {
        wd_buf out = {0};
        wd_buf_puts(&out, "{\"velocity\":");
        if (req->velocity < 0) wd_buf_puts(&out, "null");
        else wd_buf_printf(&out, "%d", req->velocity);
        wd_buf_puts(&out, ",\"mode\":");
        if (req->has_mode) wd_buf_printf(&out, "%lld", (long long)req->mode);
        else wd_buf_puts(&out, "null");
        wd_buf_printf(&out, ",\"timestamp\":%lld}", (long long)req->timestamp);
        wd_output_buf(&out);
        wd_buf_free(&out);
        return 0;
    }
    if (wd_action_is(req, "params")) return wd_output(req->params.p, req->params.n);
    if (wd_action_is(req, "count")) return wd_outputf("%d", ++count);
    if (wd_action_is(req, "log")) {
        printf("first line\npartial");
        return wd_output_str("ok");
    }
    if (wd_action_is(req, "env")) {
        char name[128];
        wd_string(wd_get(req->params, "name"), name, sizeof name);
        const char *value = getenv(name);
        if (!value) return wd_error("%s is not set", name);
        return wd_output_str(value);
    }
    if (wd_action_is(req, "read") || wd_action_is(req, "write")) {
        char path[512];
        wd_string(wd_get(req->params, "path"), path, sizeof path);
        bool writing = wd_action_is(req, "write");
        FILE *file = fopen(path, writing ? "w" : "r");
        if (!file) return wd_error("cannot open %s: %s", path, strerror(errno));
        wd_buf data = {0};
        if (writing) {
            char *text = wd_string_dup(wd_get(req->params, "text"));
            fputs(text ? text : "", file);
            free(text);
        } else {
            char chunk[256];
            size_t n;
            while ((n = fread(chunk, 1, sizeof chunk, file)) > 0) wd_buf_add(&data, chunk, n);
        }
        fclose(file);
        wd_output_buf(&data);
        wd_buf_free(&data);
        return 0;
    }
    if (wd_action_is(req, "big")) {
        size_t n = (size_t)wd_int(wd_get(req->params, "bytes"), 0);
        char *data = malloc(n ? n : 1);
        memset(data, 'x', n);
        wd_output(data, n);
        free(data);
        return 0;
    }
    if (wd_action_is(req, "fail")) {
        char reason[256];
        wd_string(wd_get(req->params, "reason"), reason, sizeof reason);
        return wd_error("failed on purpose: %s", reason);
    }
    if (wd_action_is(req, "spin")) {
        for (;;) sink++;
    }
    if (wd_action_is(req, "burn")) {
        int64_t n = wd_int(wd_get(req->params, "n"), 0);
        for (int64_t i = 0; i < n; i++) sink += (int)i;
        return wd_outputf("%d", sink);
    }
    if (wd_action_is(req, "bomb")) {
        for (;;) {
            volatile char *block = malloc(1 << 20);
            if (!block) __builtin_trap(); /* out of memory: the usual end of a leak */
            block[0] = 1;
            sink += (int)(uintptr_t)block; /* keeps the allocation from being elided */
        }
    }
    if (wd_action_is(req, "recurse")) return recurse(0);
    if (wd_action_is(req, "trap")) __builtin_trap();
    if (wd_action_is(req, "divzero")) {
        volatile int zero = 0, seven = 7; /* 1 / x would compile to a select */
        return seven / zero;
    }
    return wd_error("unknown action");
}
