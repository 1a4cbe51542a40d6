/*
 * c-ticker: a trigger plugin through the C kit (WASMDECK_TRIGGER_METADATA).
 * The host polls "tick" every 20 ms (the metadata's interval); each poll
 * publishes ticker.tick with the poll's number (wd_event_publish_json).
 * "behave" sets what the next polls do, for the tests of failing and slow
 * polls (tests/test_trigger_plugins.py).
 */
#include "wasmdeck.h"

WASMDECK_TRIGGER_METADATA("tick", 20,
    "{\"name\":\"c-ticker\",\"version\":\"0.1.0\","
    "\"description\":\"A trigger plugin: each poll publishes ticker.tick\","
    "\"capabilities\":[\"events\"],"
    "\"actions\":["
    "{\"name\":\"tick\",\"description\":\"the poll: publish ticker.tick {n}\"},"
    "{\"name\":\"behave\",\"description\":\"what the next polls do: {\\\"as\\\": ok|fail|spin}\"},"
    "{\"name\":\"ticks\",\"description\":\"how many polls published\"}]}")

static int64_t ticks;
static char behaviour[8] = "ok";

static int tick(void) {
    if (strcmp(behaviour, "fail") == 0) return wd_error("failing on purpose");
    if (strcmp(behaviour, "spin") == 0) {
        for (volatile int i = 0;; i++) {
        }
    }
    char payload[32];
    snprintf(payload, sizeof payload, "{\"n\":%lld}", (long long)(ticks + 1));
    wd_response r = wd_event_publish_json("ticker.tick", payload);
    if (!r.ok) return wd_response_free(&r), wd_error("event_publish: %s", r.error);
    wd_response_free(&r);
    ticks++;
    return wd_outputf("{\"n\":%lld}", (long long)ticks);
}

int wasmdeck_execute(const wd_request *req) {
    if (wd_action_is(req, "tick")) return tick();
    if (wd_action_is(req, "behave")) {
        wd_string(wd_get(req->params, "as"), behaviour, sizeof behaviour);
        return wd_output_str("ok");
    }
    if (wd_action_is(req, "ticks")) return wd_outputf("{\"n\":%lld}", (long long)ticks);
    char action[64];
    wd_string(req->action, action, sizeof action);
    return wd_error("unknown action '%s'", action);
}
