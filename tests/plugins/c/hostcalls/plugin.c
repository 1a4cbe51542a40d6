/*
 * c-hostcalls: every host API through the C kit's helpers, one action each.
 * It implements the hostcalls contract of tests/test_pdk_hostcalls.py, which
 * calls it against the real host.
 */
#include "wasmdeck.h"

WASMDECK_METADATA(
    "{\"name\":\"c-hostcalls\",\"version\":\"0.1.0\","
    "\"description\":\"Calls every host API through the C kit\","
    "\"capabilities\":[\"kv\",\"network\",\"process\"],"
    "\"actions\":["
    "{\"name\":\"kv\",\"description\":\"kv_set (when a value is given) then kv_get\"},"
    "{\"name\":\"kv-more\",\"description\":\"binary values, kv_list, kv_delete\"},"
    "{\"name\":\"config\",\"description\":\"a configuration value as text\"},"
    "{\"name\":\"http-get\",\"description\":\"GET a URL\"},"
    "{\"name\":\"http-post\",\"description\":\"POST JSON to a URL\"},"
    "{\"name\":\"log\",\"description\":\"log a message at warning level\"},"
    "{\"name\":\"denied\",\"description\":\"an ungranted request, handled\"},"
    "{\"name\":\"fail-host\",\"description\":\"an ungranted request, not handled\"},"
    "{\"name\":\"process\",\"description\":\"run a process\"},"
    "{\"name\":\"ws-echo\",\"description\":\"a WebSocket session with an echo server\"},"
    "{\"name\":\"context\",\"description\":\"the request as the kit parsed it\"},"
    "{\"name\":\"count\",\"description\":\"state kept between calls\"}]}")

static int calls;

/* A string param, malloc'ed; NULL (after reporting the error) when it is not a string. */
static char *need(const wd_request *req, const char *name) {
    char *value = wd_string_dup(wd_get(req->params, name));
    if (!value) wd_error("'%s' must be a string", name);
    return value;
}

/* The kind of a failed host call ("denied", "closed", ...). */
static void error_kind(const wd_response *r, char *out, size_t cap) {
    wd_string(wd_get(wd_get(r->json, "error"), "kind"), out, cap);
}

/* Report a failed host call as the plugin's error; returns 1. */
static int fail(wd_response *r) {
    int code = wd_error("%s", r->error);
    wd_response_free(r);
    return code;
}

/* {"key":<key>} plus `extra` (a JSON fragment starting with a comma, or ""). */
static void key_request(wd_buf *req, const char *key, const char *extra) {
    wd_buf_puts(req, "{\"key\":");
    wd_buf_json_str(req, key);
    wd_buf_puts(req, extra);
    wd_buf_puts(req, "}");
}

static wd_response kv_get(const char *key) {
    wd_buf req = {0};
    key_request(&req, key, "");
    wd_response r = wd_kv_get(&req);
    wd_buf_free(&req);
    return r;
}

static wd_response kv_delete(const char *key) {
    wd_buf req = {0};
    key_request(&req, key, "");
    wd_response r = wd_kv_delete(&req);
    wd_buf_free(&req);
    return r;
}

static int kv(const wd_request *req) {
    char *key = need(req, "key");
    if (!key) return 1;
    wd_json value = wd_get(req->params, "value");
    if (!wd_is_null(value)) {
        char *text = need(req, "value");
        if (!text) return free(key), 1;
        wd_buf set = {0};
        wd_buf_puts(&set, "{\"key\":");
        wd_buf_json_str(&set, key);
        wd_buf_puts(&set, ",\"value\":");
        wd_buf_json_str(&set, text);
        wd_buf_puts(&set, "}");
        free(text);
        wd_response r = wd_kv_set(&set);
        wd_buf_free(&set);
        if (!r.ok) return free(key), fail(&r);
        wd_response_free(&r);
    }
    wd_response r = kv_get(key);
    free(key);
    if (!r.ok) return fail(&r);
    char *got = wd_string_dup(wd_get(r.json, "value"));
    wd_output_str(got ? got : "(none)");
    free(got);
    wd_response_free(&r);
    return 0;
}

static int kv_more(void) {
    wd_buf req = {0};
    /* Bytes that are not UTF-8 travel as base64: 00 ff fe 78. */
    wd_buf_puts(&req, "{\"key\":\"bin\",\"value_base64\":\"AP/+eA==\"}");
    wd_response r = wd_kv_set(&req);
    wd_buf_free(&req);
    if (!r.ok) return fail(&r);
    wd_response_free(&r);
    key_request(&req, "other", ",\"value\":\"text\"");
    r = wd_kv_set(&req);
    wd_buf_free(&req);
    if (!r.ok) return fail(&r);
    wd_response_free(&r);

    wd_response bin = kv_get("bin");
    if (!bin.ok) return fail(&bin);
    bool same = wd_equals(wd_get(bin.json, "value_base64"), "AP/+eA==");
    wd_response_free(&bin);

    wd_buf_puts(&req, "{\"prefix\":\"\"}");
    wd_response all = wd_kv_list(&req);
    wd_buf_free(&req);
    if (!all.ok) return fail(&all);
    wd_buf_puts(&req, "{\"prefix\":\"b\"}");
    wd_response prefixed = wd_kv_list(&req);
    wd_buf_free(&req);
    if (!prefixed.ok) return wd_response_free(&all), fail(&prefixed);

    wd_response first = kv_delete("other"), second = kv_delete("other"), gone = kv_get("other");
    wd_buf out = {0};
    if (first.ok && second.ok && gone.ok) {
        wd_buf_printf(&out, "{\"same\":%s,\"keys\":", same ? "true" : "false");
        wd_buf_json(&out, wd_get(all.json, "keys"));
        wd_buf_puts(&out, ",\"prefixed\":");
        wd_buf_json(&out, wd_get(prefixed.json, "keys"));
        wd_buf_printf(&out, ",\"deleted\":%s,\"again\":%s,\"gone\":%s}",
                      wd_bool(wd_get(first.json, "deleted"), false) ? "true" : "false",
                      wd_bool(wd_get(second.json, "deleted"), true) ? "true" : "false",
                      wd_is_null(wd_get(gone.json, "value")) ? "true" : "false");
    }
    int code = out.data ? wd_output_buf(&out)
                        : wd_error("%s", !first.ok ? first.error : !second.ok ? second.error : gone.error);
    wd_buf_free(&out);
    wd_response_free(&all);
    wd_response_free(&prefixed);
    wd_response_free(&first);
    wd_response_free(&second);
    wd_response_free(&gone);
    return code;
}

static int config(const wd_request *req) {
    char *key = need(req, "key");
    if (!key) return 1;
    char *text = wd_config_string(key); /* strings only */
    if (text) {
        wd_output_str(text);
        free(text);
        free(key);
        return 0;
    }
    wd_buf request = {0};
    key_request(&request, key, "");
    free(key);
    wd_response r = wd_config_get(&request);
    wd_buf_free(&request);
    if (!r.ok) return fail(&r);
    wd_json value = wd_get(r.json, "value");
    if (wd_is_null(value)) wd_output_str("(unset)");
    else wd_output(value.p, value.n); /* the host's compact JSON text */
    wd_response_free(&r);
    return 0;
}

static int http_get(const wd_request *req) {
    char *url = need(req, "url");
    if (!url) return 1;
    wd_response r = wd_http_get(url);
    free(url);
    if (!r.ok) return fail(&r);
    wd_json body = wd_get(r.json, "body");
    wd_buf out = {0};
    wd_buf_printf(&out, "{\"status\":%d,\"body\":", (int)wd_int(wd_get(r.json, "status"), 0));
    if (wd_type_of(body) == WD_STRING) wd_buf_json(&out, body);
    else wd_buf_puts(&out, "\"(binary)\"");
    wd_buf_puts(&out, "}");
    wd_output_buf(&out);
    wd_buf_free(&out);
    wd_response_free(&r);
    return 0;
}

/* A response header's value (a JSON string), or an absent value. */
static wd_json header(const wd_response *r, const char *name) {
    wd_json headers = wd_get(r->json, "headers");
    for (size_t i = 0; i < wd_array_len(headers); i++) {
        wd_json pair = wd_array_at(headers, i);
        char key[128];
        wd_string(wd_array_at(pair, 0), key, sizeof key);
        if (strcasecmp(key, name) == 0) return wd_array_at(pair, 1);
    }
    wd_json none = {NULL, 0};
    return none;
}

static int http_post(const wd_request *req) {
    char *url = need(req, "url");
    if (!url) return 1;
    wd_response r = wd_http_send_json("POST", url, "{\"on\":true}", "{\"X-Test\":\"c\"}");
    free(url);
    if (!r.ok) return fail(&r);
    char *reply = wd_string_dup(wd_get(r.json, "body")); /* JSON text */
    wd_buf out = {0};
    wd_buf_printf(&out, "{\"status\":%d,\"reply\":%s,\"type\":",
                  (int)wd_int(wd_get(r.json, "status"), 0), reply && *reply ? reply : "null");
    wd_json type = header(&r, "content-type");
    if (type.p) wd_buf_json(&out, type);
    else wd_buf_puts(&out, "\"?\"");
    wd_buf_puts(&out, "}");
    wd_output_buf(&out);
    wd_buf_free(&out);
    free(reply);
    wd_response_free(&r);
    return 0;
}

static int log_message(const wd_request *req) {
    char *message = need(req, "message");
    if (!message) return 1;
    wd_log(WD_WARNING, "%s", message);
    free(message);
    return wd_output_str("logged");
}

static int denied(void) {
    wd_response r = wd_http_get("http://127.0.0.1:1/");
    if (r.ok) {
        wd_response_free(&r);
        return wd_error("the request went through");
    }
    char kind[64];
    error_kind(&r, kind, sizeof kind);
    wd_response_free(&r);
    return wd_output_str(kind);
}

static int fail_host(void) {
    wd_response r = wd_http_get("http://127.0.0.1:1/");
    if (!r.ok) return fail(&r);
    wd_response_free(&r);
    return wd_output_str("");
}

static int process(const wd_request *req) {
    wd_json argv = wd_get(req->params, "argv");
    if (wd_type_of(argv) != WD_ARRAY) return wd_error("'argv' must be a list");
    wd_buf request = {0};
    wd_buf_puts(&request, "{\"argv\":");
    wd_buf_json(&request, argv);
    wd_buf_puts(&request, ",\"stdin\":\"\",\"timeout_ms\":5000}");
    wd_response r = wd_process_run(&request);
    wd_buf_free(&request);
    if (!r.ok) return fail(&r);
    wd_buf out = {0};
    wd_buf_puts(&out, "{\"exit_code\":");
    wd_buf_json(&out, wd_get(r.json, "exit_code"));
    wd_buf_puts(&out, ",\"stdout\":");
    wd_buf_json(&out, wd_get(r.json, "stdout"));
    wd_buf_puts(&out, ",\"stderr\":");
    wd_buf_json(&out, wd_get(r.json, "stderr"));
    wd_buf_printf(&out, ",\"truncated\":%s}",
                  wd_bool(wd_get(r.json, "truncated"), false) ? "true" : "false");
    wd_output_buf(&out);
    wd_buf_free(&out);
    wd_response_free(&r);
    return 0;
}

/* ws_send / ws_recv on connection `id`, `body` being the rest of the request object. */
static wd_response ws_call(bool send, int64_t id, const char *body) {
    wd_buf request = {0};
    wd_buf_printf(&request, "{\"id\":%lld,%s}", (long long)id, body);
    wd_response r = send ? wd_ws_send(&request) : wd_ws_recv(&request);
    wd_buf_free(&request);
    return r;
}

static int ws_echo(const wd_request *req) {
    char *url = need(req, "url");
    if (!url) return 1;
    char *text = need(req, "text");
    if (!text) return free(url), 1;
    wd_buf request = {0};
    wd_buf_puts(&request, "{\"url\":");
    wd_buf_json_str(&request, url);
    wd_buf_puts(&request, ",\"subprotocols\":[\"echo.v1\"]}");
    free(url);
    wd_response connected = wd_ws_connect(&request);
    wd_buf_free(&request);
    if (!connected.ok) return free(text), fail(&connected);
    int64_t id = wd_int(wd_get(connected.json, "id"), -1);

    wd_buf_puts(&request, "\"text\":");
    wd_buf_json_str(&request, text);
    free(text);
    wd_response sent = ws_call(true, id, request.data);
    wd_buf_free(&request);
    wd_response echoed = ws_call(false, id, "\"timeout_ms\":2000");
    wd_response sent_bytes = ws_call(true, id, "\"data_base64\":\"AQL/\""); /* 01 02 ff */
    wd_response bytes = ws_call(false, id, "\"timeout_ms\":2000");
    wd_response bye = ws_call(true, id, "\"text\":\"bye\"");
    wd_response closed = ws_call(false, id, "\"timeout_ms\":2000");
    wd_response after = ws_call(true, id, "\"text\":\"anyone?\"");
    wd_buf_printf(&request, "{\"id\":%lld}", (long long)id);
    wd_response close = wd_ws_close(&request);
    wd_buf_free(&request);

    wd_response *steps[] = {&sent, &echoed, &sent_bytes, &bytes, &bye, &closed, &close};
    const wd_response *failed = NULL;
    for (size_t i = 0; i < sizeof steps / sizeof *steps && !failed; i++)
        if (!steps[i]->ok) failed = steps[i];
    int code;
    if (failed) {
        code = wd_error("%s", failed->error);
    } else {
        char after_kind[64] = "sent";
        if (!after.ok) error_kind(&after, after_kind, sizeof after_kind);
        wd_buf out = {0};
        wd_buf_puts(&out, "{\"subprotocol\":");
        wd_buf_json(&out, wd_get(connected.json, "subprotocol"));
        wd_buf_puts(&out, ",\"text\":");
        wd_json got = wd_get(echoed.json, "text");
        if (got.p) wd_buf_json(&out, got);
        else wd_buf_puts(&out, "\"?\"");
        wd_buf_printf(&out, ",\"binary\":%d,\"closed\":",
                      wd_equals(wd_get(bytes.json, "data_base64"), "AQL/") ? 3 : 0);
        wd_buf_json(&out, wd_bool(wd_get(closed.json, "closed"), false)
                              ? wd_get(closed.json, "code")
                              : wd_get(closed.json, "no such field"));
        wd_buf_puts(&out, ",\"after\":");
        wd_buf_json_str(&out, after_kind);
        wd_buf_puts(&out, "}");
        code = wd_output_buf(&out);
        wd_buf_free(&out);
    }
    wd_response *all[] = {&connected, &sent, &echoed, &sent_bytes, &bytes, &bye, &closed, &after, &close};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) wd_response_free(all[i]);
    return code;
}

static int context(const wd_request *req) {
    wd_buf out = {0};
    wd_buf_puts(&out, "{\"action\":");
    wd_buf_json(&out, req->action);
    if (req->velocity < 0) wd_buf_puts(&out, ",\"velocity\":null");
    else wd_buf_printf(&out, ",\"velocity\":%d", req->velocity);
    if (req->has_mode) wd_buf_printf(&out, ",\"mode\":%lld", (long long)req->mode);
    else wd_buf_puts(&out, ",\"mode\":null");
    wd_buf_printf(&out, ",\"timestamp\":%lld,\"params\":", (long long)req->timestamp);
    wd_buf_json(&out, req->params);
    wd_buf_puts(&out, "}");
    wd_output_buf(&out);
    wd_buf_free(&out);
    return 0;
}

int wasmdeck_execute(const wd_request *req) {
    if (wd_action_is(req, "kv")) return kv(req);
    if (wd_action_is(req, "kv-more")) return kv_more();
    if (wd_action_is(req, "config")) return config(req);
    if (wd_action_is(req, "http-get")) return http_get(req);
    if (wd_action_is(req, "http-post")) return http_post(req);
    if (wd_action_is(req, "log")) return log_message(req);
    if (wd_action_is(req, "denied")) return denied();
    if (wd_action_is(req, "fail-host")) return fail_host();
    if (wd_action_is(req, "process")) return process(req);
    if (wd_action_is(req, "ws-echo")) return ws_echo(req);
    if (wd_action_is(req, "context")) return context(req);
    if (wd_action_is(req, "count")) return wd_outputf("{\"calls\":%d}", ++calls);
    char action[64];
    wd_string(req->action, action, sizeof action);
    return wd_error("unknown action '%s'", action);
}
