/*
 * flood: writes far more log than any host should keep (issue 9, item 10).
 *
 *   stdout {"mib": N}  N MiB of 64-byte lines to WASI stdout, then outputs "done"
 *   log    {"lines": N} N messages through the log host function, then "done"
 */
#include <stdio.h>
#include <string.h>

#include "wasmdeck.h"

WASMDECK_METADATA(
    "{\"name\":\"flood\",\"version\":\"1.0.0\","
    "\"description\":\"Floods stdout or the log\",\"actions\":[\"stdout\",\"log\"]}")

int wasmdeck_execute(const wd_request *req) {
    if (wd_action_is(req, "stdout")) {
        static char block[64 * 1024];
        for (size_t i = 0; i < sizeof block; i += 64) {
            memset(block + i, 'x', 63);
            block[i + 63] = '\n';
        }
        int64_t blocks = wd_int(wd_get(req->params, "mib"), 1) * 16;
        for (int64_t i = 0; i < blocks; i++) fwrite(block, 1, sizeof block, stdout);
        fflush(stdout);
        return wd_outputf("done");
    }
    if (wd_action_is(req, "log")) {
        int64_t lines = wd_int(wd_get(req->params, "lines"), 1);
        for (int64_t i = 0; i < lines; i++) wd_log(1, "log line %lld", (long long)i);
        return wd_outputf("done");
    }
    return wd_error("unknown action");
}
