/*
 * {{name}}: a wasmdeck plugin in C, with the parts most plugins grow:
 *
 * - several actions, routed by name, each with a JSON Schema for its params
 *   (checked here before use);
 * - configuration given by the user, read through the host (`greeting`);
 * - logging to the host's log, and errors shown to the user (wd_error);
 * - state kept on the instance between calls (across a live reload too with
 *   WASMDECK_STATE(save, restore): docs/reload.md);
 * - test cases in tests.json: `wasmdeck test` builds and runs them.
 *
 * To use a host API behind a capability (HTTP, WebSocket, processes,
 * key-value state), declare it in "capabilities" and call its wd_* helper;
 * the user grants it with --grant.
 */
#include "wasmdeck.h"

WASMDECK_METADATA(
    "{\"name\":\"{{name}}\",\"version\":\"0.1.0\","
    "\"description\":\"Greets people and counts how often it did\","
    "\"author\":\"you\",\"license\":\"MIT\","
    "\"actions\":["
    "{\"name\":\"greet\",\"description\":\"Greet someone, with the greeting from the "
    "configuration\",\"params\":{\"type\":\"object\",\"properties\":{\"who\":{\"type\":"
    "\"string\"}},\"required\":[\"who\"]}},"
    "{\"name\":\"stats\",\"description\":\"How many greetings this instance has made\"}]}")

static int greeted;

/* `pattern` with every "$who" replaced by `who`, appended to `out`. */
static void fill(wd_buf *out, const char *pattern, const char *who) {
    for (const char *p = pattern; *p;) {
        if (strncmp(p, "$who", 4) == 0) {
            wd_buf_puts(out, who);
            p += 4;
        } else {
            wd_buf_add(out, p++, 1);
        }
    }
}

static int greet(const wd_request *req) {
    char who[256];
    if (wd_string(wd_get(req->params, "who"), who, sizeof who) <= 0)
        return wd_error("greet needs a non-empty 'who'");
    char *configured = wd_config_string("greeting");
    wd_buf text = {0};
    fill(&text, configured ? configured : "Hello, $who!", who);
    free(configured);
    greeted++;
    if (req->velocity < 0) wd_log(WD_INFO, "greeted %s (velocity none)", who);
    else wd_log(WD_INFO, "greeted %s (velocity %d)", who, req->velocity);
    wd_buf out = {0};
    wd_buf_puts(&out, "{\"text\":");
    wd_buf_json_string(&out, text.data ? text.data : "", text.len);
    wd_buf_printf(&out, ",\"greeted\":%d}", greeted);
    wd_output_buf(&out);
    wd_buf_free(&out);
    wd_buf_free(&text);
    return 0;
}

static int stats(const wd_request *req) {
    (void)req;
    return wd_outputf("{\"greeted\":%d}", greeted);
}

int wasmdeck_execute(const wd_request *req) {
    if (wd_action_is(req, "greet")) return greet(req);
    if (wd_action_is(req, "stats")) return stats(req);
    return wd_error("unknown action");
}
