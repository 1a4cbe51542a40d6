/*
 * {{name}}: a wasmdeck trigger plugin in C. Build it with `wasmdeck build`.
 * The host calls "tick" every second (docs/teamwork.md, "Trigger plugins");
 * each poll publishes {{name}}.tick {"n": N}, which a deck binds with
 * trigger = { kind = "event", topic = "{{name}}.tick" }. Grant it
 * events:publish:{{name}}.*
 */
#include "wasmdeck.h"

/* WASMDECK_METADATA with "type": "trigger" and "poll" added (1000 ms). */
WASMDECK_TRIGGER_METADATA("tick", 1000,
    "{\"name\":\"{{name}}\",\"version\":\"0.1.0\","
    "\"description\":\"A trigger plugin: publishes {{name}}.tick every second\","
    "\"capabilities\":[\"events\"],"
    "\"actions\":[{\"name\":\"tick\",\"description\":\"The poll: publish {{name}}.tick\"}]}")

static long long ticks;

int wasmdeck_execute(const wd_request *req) {
    (void)req; /* the host only sends actions the metadata declares */
    char payload[32];
    snprintf(payload, sizeof payload, "{\"n\":%lld}", ticks + 1);
    wd_response r = wd_event_publish_json("{{name}}.tick", payload);
    if (!r.ok) return wd_response_free(&r), wd_error("event_publish: %s", r.error);
    wd_response_free(&r);
    return wd_outputf("{\"n\":%lld}", ++ticks);
}
