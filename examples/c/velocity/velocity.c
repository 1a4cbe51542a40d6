/*
 * velocity: turns how hard a pad was hit into a choice or a value.
 *
 *   pick  {"choices": [...]}     -> {"choice": "...", "index": N}
 *   scale {"min": 0, "max": 254} -> {"value": N, "velocity": V}
 *
 * The velocity (0-127) is spread evenly over the choices or the range, so a
 * soft hit picks the first scene and a hard one the last.
 */
#include "wasmdeck.h"

WASMDECK_METADATA(
    "{\"name\":\"velocity\",\"version\":\"1.0.0\","
    "\"description\":\"Maps a pad's velocity to a choice or a value\","
    "\"author\":\"wasmdeck\",\"license\":\"MIT\","
    "\"actions\":["
    "{\"name\":\"pick\",\"description\":\"Pick one of the choices by velocity\","
    "\"params\":{\"type\":\"object\",\"required\":[\"choices\"],"
    "\"properties\":{\"choices\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}}},"
    "{\"name\":\"scale\",\"description\":\"Scale the velocity into [min, max]\","
    "\"params\":{\"type\":\"object\",\"properties\":{"
    "\"min\":{\"type\":\"integer\"},\"max\":{\"type\":\"integer\"}}}}]}")

static int pick(const wd_request *req) {
    wd_json choices = wd_get(req->params, "choices");
    size_t count = wd_array_len(choices);
    if (count == 0) return wd_error("pick needs a non-empty 'choices' list");
    int velocity = req->velocity < 0 ? 0 : req->velocity;
    size_t index = (size_t)velocity * count / 128;
    wd_json choice = wd_array_at(choices, index);
    if (wd_type_of(choice) != WD_STRING) return wd_error("choice %zu is not a string", index);
    wd_buf out = {0};
    wd_buf_puts(&out, "{\"choice\":");
    wd_buf_json(&out, choice);
    wd_buf_printf(&out, ",\"index\":%zu}", index);
    wd_output_buf(&out);
    wd_buf_free(&out);
    return 0;
}

static int scale(const wd_request *req) {
    int64_t lo = wd_int(wd_get(req->params, "min"), 0);
    int64_t hi = wd_int(wd_get(req->params, "max"), 127);
    if (hi < lo) return wd_error("max (%lld) is below min (%lld)", (long long)hi, (long long)lo);
    if (req->velocity < 0) return wd_error("scale needs a trigger with a velocity");
    int64_t value = lo + (hi - lo) * req->velocity / 127;
    return wd_outputf("{\"value\":%lld,\"velocity\":%d}", (long long)value, req->velocity);
}

int wasmdeck_execute(const wd_request *req) {
    if (wd_action_is(req, "pick")) return pick(req);
    if (wd_action_is(req, "scale")) return scale(req);
    return wd_error("unknown action");
}
