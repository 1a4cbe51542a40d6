/*
 * c-teamwork: the events, plugin-call and shared-state host APIs through the
 * C kit. It implements the teamwork contract of tests/test_teamwork.py.
 */
#include "wasmdeck.h"

WASMDECK_METADATA(
    "{\"name\":\"c-teamwork\",\"version\":\"0.1.0\","
    "\"description\":\"Events, plugin calls and shared state through the C kit\","
    "\"capabilities\":[\"events\",\"plugins\",\"state\"],"
    "\"subscribe\":[{\"topic\":\"*\",\"action\":\"react\"}],"
    "\"actions\":["
    "{\"name\":\"publish\",\"description\":\"event_publish with the params as the request\"},"
    "{\"name\":\"call\",\"description\":\"plugin_call with the params as the request\"},"
    "{\"name\":\"state-get\",\"description\":\"state_get with the params\"},"
    "{\"name\":\"state-set\",\"description\":\"state_set with the params\"},"
    "{\"name\":\"state-delete\",\"description\":\"state_delete with the params\"},"
    "{\"name\":\"state-list\",\"description\":\"state_list with the params\"},"
    "{\"name\":\"add\",\"description\":\"add 1 to a shared counter, times times, by compare-and-swap\"},"
    "{\"name\":\"react\",\"description\":\"an event: kept, and bounced to config bounce_to\"},"
    "{\"name\":\"seen\",\"description\":\"the events kept so far\"},"
    "{\"name\":\"echo\",\"description\":\"the params\"},"
    "{\"name\":\"spin\",\"description\":\"loops until stopped\"}]}")

static wd_buf seen;

/* Send the params as the request to `fn`; output the host's response as it is. */
static int relay(wd__host_fn fn, const wd_request *req) {
    wd_buf request = {0};
    wd_buf_json(&request, req->params);
    wd_response r = wd_host_call(fn, &request);
    wd_buf_free(&request);
    int code = r.text ? wd_output(r.json.p, r.json.n) : wd_error("%s", r.error);
    wd_response_free(&r);
    return code;
}

static int react(const wd_request *req) {
    wd_buf_puts(&seen, seen.len ? "," : "");
    wd_buf_json(&seen, req->params);
    char *to = wd_config_string("bounce_to");
    if (to) {
        wd_buf request = {0};
        wd_buf_puts(&request, "{\"topic\":");
        wd_buf_json_str(&request, to);
        wd_buf_puts(&request, ",\"payload\":");
        wd_json payload = wd_get(req->params, "payload");
        if (payload.p) wd_buf_json(&request, payload);
        else wd_buf_puts(&request, "null");
        wd_buf_puts(&request, "}");
        free(to);
        wd_response r = wd_event_publish(&request);
        wd_buf_free(&request);
        wd_response_free(&r);
    }
    return wd_output_str("ok");
}

/* {"namespace":..., "key":...} of the params, then `rest` (starting with a comma) */
static void where(wd_buf *b, const wd_request *req, const char *rest) {
    wd_buf_puts(b, "{\"namespace\":");
    wd_buf_json(b, wd_get(req->params, "namespace"));
    wd_buf_puts(b, ",\"key\":");
    wd_buf_json(b, wd_get(req->params, "key"));
    wd_buf_puts(b, rest);
}

static int add(const wd_request *req) {
    int64_t times = wd_int(wd_get(req->params, "times"), 1), retries = 0, value = 0;
    for (int64_t done = 0; done < times;) {
        wd_buf get = {0};
        where(&get, req, "}");
        wd_response now = wd_state_get(&get);
        wd_buf_free(&get);
        if (!now.ok) return wd_response_free(&now), wd_error("state_get: %s", now.error);
        char text[32] = "0";
        wd_string(wd_get(now.json, "value"), text, sizeof text);
        value = strtoll(text, NULL, 10) + 1;
        wd_buf set = {0};
        where(&set, req, "");
        wd_buf_printf(&set, ",\"value\":\"%lld\",\"version\":%lld}", (long long)value,
                      (long long)wd_int(wd_get(now.json, "version"), 0));
        wd_response_free(&now);
        wd_response r = wd_state_set(&set);
        wd_buf_free(&set);
        if (!r.ok) return wd_response_free(&r), wd_error("state_set: %s", r.error);
        if (wd_bool(wd_get(r.json, "ok"), false)) done++;
        else retries++;
        wd_response_free(&r);
    }
    return wd_outputf("{\"value\":%lld,\"retries\":%lld}", (long long)value, (long long)retries);
}

int wasmdeck_execute(const wd_request *req) {
    if (wd_action_is(req, "publish")) return relay(wd__event_publish, req);
    if (wd_action_is(req, "call")) return relay(wd__plugin_call, req);
    if (wd_action_is(req, "state-get")) return relay(wd__state_get, req);
    if (wd_action_is(req, "state-set")) return relay(wd__state_set, req);
    if (wd_action_is(req, "state-delete")) return relay(wd__state_delete, req);
    if (wd_action_is(req, "state-list")) return relay(wd__state_list, req);
    if (wd_action_is(req, "add")) return add(req);
    if (wd_action_is(req, "react")) return react(req);
    if (wd_action_is(req, "echo")) return wd_output(req->params.p, req->params.n);
    if (wd_action_is(req, "seen")) {
        wd_buf out = {0};
        wd_buf_puts(&out, "[");
        if (seen.len) wd_buf_add(&out, seen.data, seen.len);
        wd_buf_puts(&out, "]");
        int code = wd_output_buf(&out);
        wd_buf_free(&out);
        return code;
    }
    if (wd_action_is(req, "spin")) {
        for (volatile int i = 0;; i++) {
        }
    }
    char action[64];
    wd_string(req->action, action, sizeof action);
    return wd_error("unknown action '%s'", action);
}
