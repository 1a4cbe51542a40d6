/*
 * allocator: a C plugin that asks malloc for the number of bytes in its
 * params, for the memory-limit classification tests
 * (tests/test_limits_classification.py). "take" aborts when malloc fails, as
 * most code does; "try" reports the failure as an error message instead.
 */
#include <stdlib.h>

#include "wasmdeck.h"

WASMDECK_METADATA(
    "{\"name\":\"allocator\",\"version\":\"0.1.0\","
    "\"description\":\"Test plugin: allocates what it is asked for\"}")

static volatile char sink;

int wasmdeck_execute(const wd_request *req) {
    int64_t bytes = wd_int(wd_get(req->params, "bytes"), 0);
    if (wd_action_is(req, "take") || wd_action_is(req, "try")) {
        char *block = malloc((size_t)bytes);
        if (!block) {
            if (wd_action_is(req, "try")) return wd_error("out of memory");
            abort();
        }
        block[bytes - 1] = 1; /* touch the last byte: the memory is really there */
        sink = block[0];
        free(block);
        return wd_outputf("%lld", (long long)bytes);
    }
    return wd_error("unknown action");
}
