/*
 * {{name}}: a wasmdeck plugin in C that takes JSON params and returns JSON.
 *
 *   wasmdeck run build/{{name}}.wasm scale --params '{"max": 254}' --context '{"velocity": 100}'
 *   -> {"value":200,"velocity":100}
 */
#include "wasmdeck.h"

WASMDECK_METADATA(
    "{\"name\":\"{{name}}\",\"version\":\"0.1.0\","
    "\"description\":\"Scales the trigger's velocity\","
    "\"actions\":[{\"name\":\"scale\",\"description\":\"Scale the velocity (0-127) to 0..max\","
    "\"params\":{\"type\":\"object\",\"properties\":{\"max\":{\"type\":\"integer\",\"minimum\":1}},"
    "\"additionalProperties\":false}}]}")

static int scale(const wd_request *req) {
    wd_json max = wd_get(req->params, "max");
    int64_t maximum = 127;
    if (max.p) {
        double value = wd_number(max, 0);
        if (wd_type_of(max) != WD_NUMBER || value < 1 || value != (double)(int64_t)value)
            return wd_error("max must be a positive integer, not %.*s", (int)max.n, max.p);
        maximum = (int64_t)value;
    }
    int velocity = req->velocity < 0 ? 127 : req->velocity;
    int64_t value = (2 * velocity * maximum + 127) / 254; /* velocity * max / 127, rounded */
    return wd_outputf("{\"value\":%lld,\"velocity\":%d}", (long long)value, velocity);
}

int wasmdeck_execute(const wd_request *req) {
    if (wd_action_is(req, "scale")) return scale(req);
    return wd_error("unknown action");
}
