/*
 * wasmdeck.h - the C plugin development kit for wasmdeck (JSON ABI v1).
 *
 * One header, no other files. It provides the exports the host needs
 * (alloc, dealloc, init, execute), parses the request, and wraps the host
 * functions (output, errors, logging, configuration, HTTP, WebSocket,
 * processes, key-value state). A plugin provides two things:
 *
 *     #include "wasmdeck.h"
 *
 *     WASMDECK_METADATA(
 *         "{\"name\":\"hello\",\"version\":\"0.1.0\",\"description\":\"Says hello\","
 *         "\"actions\":[{\"name\":\"greet\",\"description\":\"Greets someone\"}]}")
 *
 *     int wasmdeck_execute(const wd_request *req) {
 *         char who[64];
 *         wd_string(wd_get(req->params, "who"), who, sizeof who);
 *         return wd_outputf("hello, %s", who);
 *     }
 *
 * Build (wasmdeck build does this):
 *     python -m ziglang cc -target wasm32-wasi -O2 -s -mexec-model=reactor \
 *         -I sdk/c plugin.c -o plugin.wasm
 *
 * A trigger plugin (docs/teamwork.md, "Trigger plugins"), which the host polls:
 * WASMDECK_TRIGGER_METADATA("tick", 20, "{...}") in place of WASMDECK_METADATA
 * adds "type": "trigger" and "poll" {"action": "tick", "interval_ms": 20} to the
 * metadata; wd_event_publish_json(topic, payload) publishes from the poll.
 *
 * State that survives a live reload (docs/reload.md): WASMDECK_STATE(save, restore)
 * exports save_state/restore_state; `save` appends the state to a wd_buf,
 * `restore` gets the bytes the old version saved and returns 0 (or wd_error()).
 *
 * Values are passed as slices of the request's JSON text (wd_json); nothing
 * is copied until you ask (wd_string, wd_int, ...). Host functions that the
 * plugin never calls are not imported, so a plugin that uses none of them
 * needs no capability.
 */
#ifndef WASMDECK_H
#define WASMDECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WASMDECK_ABI_VERSION 1

#define WD_IMPORT(name) __attribute__((import_module("wasmdeck"), import_name(name)))
#define WD_EXPORT(name) __attribute__((export_name(name)))

/* ---- host imports (module "wasmdeck") --------------------------------- */

WD_IMPORT("set_output") void wd__set_output(const void *ptr, size_t len);
WD_IMPORT("set_error") void wd__set_error(const void *ptr, size_t len);
WD_IMPORT("log") void wd__log(int32_t level, const void *ptr, size_t len);
WD_IMPORT("response_read") int32_t wd__response_read(void *ptr, size_t len);
WD_IMPORT("config_get") int32_t wd__config_get(const void *ptr, size_t len);
WD_IMPORT("http_request") int32_t wd__http_request(const void *ptr, size_t len);
WD_IMPORT("ws_connect") int32_t wd__ws_connect(const void *ptr, size_t len);
WD_IMPORT("ws_send") int32_t wd__ws_send(const void *ptr, size_t len);
WD_IMPORT("ws_recv") int32_t wd__ws_recv(const void *ptr, size_t len);
WD_IMPORT("ws_close") int32_t wd__ws_close(const void *ptr, size_t len);
WD_IMPORT("process_run") int32_t wd__process_run(const void *ptr, size_t len);
WD_IMPORT("kv_get") int32_t wd__kv_get(const void *ptr, size_t len);
WD_IMPORT("kv_set") int32_t wd__kv_set(const void *ptr, size_t len);
WD_IMPORT("kv_delete") int32_t wd__kv_delete(const void *ptr, size_t len);
WD_IMPORT("kv_list") int32_t wd__kv_list(const void *ptr, size_t len);
WD_IMPORT("event_publish") int32_t wd__event_publish(const void *ptr, size_t len);
WD_IMPORT("plugin_call") int32_t wd__plugin_call(const void *ptr, size_t len);
WD_IMPORT("state_get") int32_t wd__state_get(const void *ptr, size_t len);
WD_IMPORT("state_set") int32_t wd__state_set(const void *ptr, size_t len);
WD_IMPORT("state_delete") int32_t wd__state_delete(const void *ptr, size_t len);
WD_IMPORT("state_list") int32_t wd__state_list(const void *ptr, size_t len);

/* ---- JSON values ------------------------------------------------------- */

/* A JSON value: a slice of JSON text. `p == NULL` means absent. */
typedef struct {
    const char *p;
    size_t n;
} wd_json;

typedef enum {
    WD_ABSENT,
    WD_NULL,
    WD_BOOL,
    WD_NUMBER,
    WD_STRING,
    WD_ARRAY,
    WD_OBJECT,
    WD_INVALID
} wd_type;

/* One request, as the host sent it. */
typedef struct {
    wd_json action;  /* a JSON string; see wd_action_is() */
    wd_json params;  /* a JSON object ({} when there are none) */
    wd_json context; /* the trigger context object */
    int velocity;    /* 0-127, or -1 when the trigger had none */
    bool has_mode;
    int64_t mode;
    int64_t timestamp; /* milliseconds since the Unix epoch */
    wd_json raw;       /* the whole request */
} wd_request;

/* The plugin's entry point: 0 on success; non-zero after wd_error(). */
int wasmdeck_execute(const wd_request *req);

static inline const char *wd__ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* The end of the JSON value starting at p (after leading space), or NULL. */
static inline const char *wd__skip(const char *p, const char *end) {
    int depth = 0;
    p = wd__ws(p, end);
    do {
        if (p >= end) return NULL;
        char c = *p;
        if (c == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\') p++;
            if (p >= end) return NULL;
            p++;
        } else if (c == '{' || c == '[') {
            depth++;
            p++;
        } else if (c == '}' || c == ']') {
            if (--depth < 0) return NULL;
            p++;
        } else if (c == ',' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            if (depth == 0) return NULL;
            p++;
        } else {
            while (p < end && (*p == '-' || *p == '+' || *p == '.' || (*p >= '0' && *p <= '9') ||
                               (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
                p++;
        }
    } while (depth > 0);
    return p;
}

static inline wd_type wd_type_of(wd_json v) {
    if (v.p == NULL) return WD_ABSENT;
    if (v.n == 0) return WD_INVALID;
    switch (v.p[0]) {
    case 'n': return WD_NULL;
    case 't': case 'f': return WD_BOOL;
    case '"': return WD_STRING;
    case '[': return WD_ARRAY;
    case '{': return WD_OBJECT;
    default: return (v.p[0] == '-' || (v.p[0] >= '0' && v.p[0] <= '9')) ? WD_NUMBER : WD_INVALID;
    }
}

static inline bool wd_is_null(wd_json v) { return v.p == NULL || wd_type_of(v) == WD_NULL; }

/* Does the JSON string `s` equal the C string `text`? (escapes compared raw) */
static inline bool wd_equals(wd_json s, const char *text) {
    size_t n = strlen(text);
    return wd_type_of(s) == WD_STRING && s.n == n + 2 && memcmp(s.p + 1, text, n) == 0;
}

/*
 * Iterate over an object's members: start with *cursor = 0; each call sets
 * key (a JSON string) and value and returns true, until there are no more.
 */
static inline bool wd_object_next(wd_json obj, size_t *cursor, wd_json *key, wd_json *value) {
    if (wd_type_of(obj) != WD_OBJECT) return false;
    const char *end = obj.p + obj.n;
    const char *p = wd__ws(obj.p + (*cursor ? *cursor : 1), end);
    if (p < end && *p == ',') p = wd__ws(p + 1, end);
    if (p >= end || *p != '"') return false;
    const char *k = p;
    p = wd__skip(p, end);
    if (!p) return false;
    key->p = k;
    key->n = (size_t)(p - k);
    p = wd__ws(p, end);
    if (p >= end || *p != ':') return false;
    const char *v = wd__ws(p + 1, end);
    p = wd__skip(v, end);
    if (!p) return false;
    value->p = v;
    value->n = (size_t)(p - v);
    *cursor = (size_t)(p - obj.p);
    return true;
}

/* The value of `key` in an object, or an absent value. */
static inline wd_json wd_get(wd_json obj, const char *key) {
    size_t cursor = 0;
    wd_json name, value;
    while (wd_object_next(obj, &cursor, &name, &value))
        if (wd_equals(name, key)) return value;
    wd_json none = {NULL, 0};
    return none;
}

/* The number of elements of an array (0 for anything else). */
static inline size_t wd_array_len(wd_json arr) {
    if (wd_type_of(arr) != WD_ARRAY) return 0;
    const char *p = wd__ws(arr.p + 1, arr.p + arr.n), *end = arr.p + arr.n;
    size_t count = 0;
    while (p < end && *p != ']') {
        p = wd__skip(p, end);
        if (!p) return count;
        count++;
        p = wd__ws(p, end);
        if (p < end && *p == ',') p = wd__ws(p + 1, end);
    }
    return count;
}

/* Element `i` of an array, or an absent value. */
static inline wd_json wd_array_at(wd_json arr, size_t i) {
    wd_json none = {NULL, 0};
    if (wd_type_of(arr) != WD_ARRAY) return none;
    const char *p = wd__ws(arr.p + 1, arr.p + arr.n), *end = arr.p + arr.n;
    for (size_t k = 0; p < end && *p != ']'; k++) {
        const char *start = p;
        p = wd__skip(p, end);
        if (!p) return none;
        if (k == i) {
            wd_json found = {start, (size_t)(p - start)};
            return found;
        }
        p = wd__ws(p, end);
        if (p < end && *p == ',') p = wd__ws(p + 1, end);
    }
    return none;
}

/* An integer value, or `fallback` when absent, null or not a number. */
static inline int64_t wd_int(wd_json v, int64_t fallback) {
    if (wd_type_of(v) != WD_NUMBER) return fallback;
    char text[40];
    size_t n = v.n < sizeof text - 1 ? v.n : sizeof text - 1;
    memcpy(text, v.p, n);
    text[n] = 0;
    if (strpbrk(text, ".eE") == NULL) return (int64_t)strtoll(text, NULL, 10); /* exact */
    double d = strtod(text, NULL);
    return d >= 9223372036854775807.0 ? INT64_MAX : d <= -9223372036854775808.0 ? INT64_MIN : (int64_t)d;
}

static inline double wd_number(wd_json v, double fallback) {
    if (wd_type_of(v) != WD_NUMBER) return fallback;
    char text[64];
    size_t n = v.n < sizeof text - 1 ? v.n : sizeof text - 1;
    memcpy(text, v.p, n);
    text[n] = 0;
    return strtod(text, NULL);
}

static inline bool wd_bool(wd_json v, bool fallback) {
    if (wd_type_of(v) != WD_BOOL) return fallback;
    return v.p[0] == 't';
}

static inline void wd__utf8(char *out, size_t cap, size_t *k, uint32_t cp) {
    char b[4];
    size_t n;
    if (cp < 0x80) { b[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { b[0] = (char)(0xC0 | cp >> 6); b[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | cp >> 12); b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        b[0] = (char)(0xF0 | cp >> 18); b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); b[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    for (size_t i = 0; i < n; i++, (*k)++)
        if (*k + 1 < cap) out[*k] = b[i];
}

static inline uint32_t wd__hex4(const char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v = v * 16 + (uint32_t)(c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0');
    }
    return v;
}

/*
 * Copy a JSON string's text, unescaped and NUL-terminated, into out[cap].
 * Returns the full length it needs (like snprintf), or -1 if `v` is not a
 * string; the copy is truncated when that is >= cap.
 */
static inline long wd_string(wd_json v, char *out, size_t cap) {
    if (cap) out[0] = 0;
    if (wd_type_of(v) != WD_STRING) return -1;
    const char *p = v.p + 1, *end = v.p + v.n - 1;
    size_t k = 0;
    while (p < end) {
        char c = *p++;
        if (c != '\\') {
            if (k + 1 < cap) out[k] = c;
            k++;
            continue;
        }
        if (p >= end) break;
        c = *p++;
        switch (c) {
        case 'n': c = '\n'; break;
        case 't': c = '\t'; break;
        case 'r': c = '\r'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'u': {
            if (end - p < 4) return -1;
            uint32_t cp = wd__hex4(p);
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                uint32_t low = wd__hex4(p + 2);
                if (low >= 0xDC00 && low < 0xE000) { /* else: a lone surrogate, like any other */
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                    p += 6;
                }
            }
            if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD; /* a lone surrogate is not UTF-8 */
            wd__utf8(out, cap, &k, cp);
            continue;
        }
        default: break; /* \" \\ \/ */
        }
        if (k + 1 < cap) out[k] = c;
        k++;
    }
    if (cap) out[k < cap ? k : cap - 1] = 0;
    return (long)k;
}

/* A JSON string's text in a new malloc'ed buffer (free it), or NULL. */
static inline char *wd_string_dup(wd_json v) {
    long n = wd_string(v, NULL, 0);
    if (n < 0) return NULL;
    char *s = (char *)malloc((size_t)n + 1);
    if (s) wd_string(v, s, (size_t)n + 1);
    return s;
}

/* ---- building output: a growable buffer -------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
} wd_buf;

static inline void wd_buf_free(wd_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static inline bool wd_buf_reserve(wd_buf *b, size_t more) {
    if (b->len + more + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + more + 1) cap *= 2;
    char *data = (char *)realloc(b->data, cap);
    if (!data) return false;
    b->data = data;
    b->cap = cap;
    return true;
}

static inline void wd_buf_add(wd_buf *b, const void *p, size_t n) {
    if (!wd_buf_reserve(b, n)) return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

static inline void wd_buf_puts(wd_buf *b, const char *s) { wd_buf_add(b, s, strlen(s)); }

static inline void wd_buf_vprintf(wd_buf *b, const char *fmt, va_list args) {
    va_list again;
    va_copy(again, args);
    int n = vsnprintf(NULL, 0, fmt, args);
    if (n > 0 && wd_buf_reserve(b, (size_t)n)) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
        b->len += (size_t)n;
    }
    va_end(again);
}

static inline void wd_buf_printf(wd_buf *b, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    wd_buf_vprintf(b, fmt, args);
    va_end(args);
}

/* Append `s` (n bytes of UTF-8) as a quoted JSON string. */
static inline void wd_buf_json_string(wd_buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    wd_buf_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            wd_buf_add(b, esc, 2);
        } else if (c == '\n') {
            wd_buf_add(b, "\\n", 2);
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            wd_buf_add(b, esc, 6);
        } else {
            wd_buf_add(b, &s[i], 1);
        }
    }
    wd_buf_add(b, "\"", 1);
}

static inline void wd_buf_json_str(wd_buf *b, const char *s) { wd_buf_json_string(b, s, strlen(s)); }

static inline void wd_buf_json(wd_buf *b, wd_json v) {
    if (v.p) wd_buf_add(b, v.p, v.n);
    else wd_buf_puts(b, "null");
}

/* ---- results ----------------------------------------------------------- */

/* Hand the output payload to the host (it is copied at once). Returns 0. */
static inline int wd_output(const void *p, size_t n) {
    wd__set_output(p, n);
    return 0;
}

static inline int wd_output_str(const char *s) { return wd_output(s, strlen(s)); }

static inline int wd_output_buf(const wd_buf *b) { return wd_output(b->data ? b->data : "", b->len); }

static inline int wd_outputf(const char *fmt, ...) {
    wd_buf b = {0};
    va_list args;
    va_start(args, fmt);
    wd_buf_vprintf(&b, fmt, args);
    va_end(args);
    wd_output_buf(&b);
    wd_buf_free(&b);
    return 0;
}

/* Report an error message to the user; returns 1, for `return wd_error(...)`. */
static inline int wd_error(const char *fmt, ...) {
    wd_buf b = {0};
    va_list args;
    va_start(args, fmt);
    wd_buf_vprintf(&b, fmt, args);
    va_end(args);
    wd__set_error(b.data ? b.data : "", b.len);
    wd_buf_free(&b);
    return 1;
}

/* ---- logging ----------------------------------------------------------- */

enum { WD_DEBUG = 0, WD_INFO = 1, WD_WARNING = 2, WD_ERROR = 3 };

static inline void wd_log(int level, const char *fmt, ...) {
    wd_buf b = {0};
    va_list args;
    va_start(args, fmt);
    wd_buf_vprintf(&b, fmt, args);
    va_end(args);
    wd__log(level, b.data ? b.data : "", b.len);
    wd_buf_free(&b);
}

/* ---- host calls -------------------------------------------------------- */

/*
 * A host call's response: JSON text (owned; free with wd_response_free).
 * `ok` is false when the host answered {"error": {...}}; then `error` is
 * the message (or "out of memory").
 */
typedef struct {
    bool ok;
    wd_json json;  /* the whole response object */
    char *text;    /* the storage behind json */
    char error[256];
} wd_response;

static inline void wd_response_free(wd_response *r) {
    free(r->text);
    r->text = NULL;
    r->json.p = NULL;
    r->json.n = 0;
}

static inline wd_response wd__finish(int32_t n) {
    wd_response r;
    memset(&r, 0, sizeof r);
    r.text = (char *)malloc(n > 0 ? (size_t)n + 1 : 1);
    if (!r.text) {
        strcpy(r.error, "out of memory");
        return r;
    }
    int32_t got = wd__response_read(r.text, (size_t)(n > 0 ? n : 0));
    r.text[got] = 0;
    r.json.p = r.text;
    r.json.n = (size_t)got;
    wd_json err = wd_get(r.json, "error");
    if (err.p && !wd_is_null(err)) {
        wd_string(wd_get(err, "message"), r.error, sizeof r.error);
        if (!r.error[0]) wd_string(wd_get(err, "kind"), r.error, sizeof r.error);
        return r;
    }
    r.ok = true;
    return r;
}

/* Host functions taking a JSON request; see docs/host-api.md. */
typedef int32_t (*wd__host_fn)(const void *, size_t);

static inline wd_response wd_host_call(wd__host_fn fn, const wd_buf *request) {
    return wd__finish(fn(request->data ? request->data : "{}", request->data ? request->len : 2));
}

#define wd_config_get(req) wd_host_call(wd__config_get, (req))
#define wd_http_request(req) wd_host_call(wd__http_request, (req))
#define wd_ws_connect(req) wd_host_call(wd__ws_connect, (req))
#define wd_ws_send(req) wd_host_call(wd__ws_send, (req))
#define wd_ws_recv(req) wd_host_call(wd__ws_recv, (req))
#define wd_ws_close(req) wd_host_call(wd__ws_close, (req))
#define wd_process_run(req) wd_host_call(wd__process_run, (req))
#define wd_kv_get(req) wd_host_call(wd__kv_get, (req))
#define wd_kv_set(req) wd_host_call(wd__kv_set, (req))
#define wd_kv_delete(req) wd_host_call(wd__kv_delete, (req))
#define wd_kv_list(req) wd_host_call(wd__kv_list, (req))
/* Events (`events:publish:PATTERN`): {"topic", "payload"} -> {"delivered"}. */
#define wd_event_publish(req) wd_host_call(wd__event_publish, (req))
/* Another plugin's action (`plugins:NAME`): {"plugin", "action", "params"} -> {"output"}. */
#define wd_plugin_call(req) wd_host_call(wd__plugin_call, (req))
/* Shared state (`state:NAMESPACE[:ro]`): {"namespace", "key", ...}; set and delete
 * take an optional "version" (compare-and-swap: 0 means "absent"). */
#define wd_state_get(req) wd_host_call(wd__state_get, (req))
#define wd_state_set(req) wd_host_call(wd__state_set, (req))
#define wd_state_delete(req) wd_host_call(wd__state_delete, (req))
#define wd_state_list(req) wd_host_call(wd__state_list, (req))

/*
 * Publish the event `topic` with `payload`, JSON text (NULL: null), e.g.
 * wd_event_publish_json("ticker.tick", "{\"n\":1}"); the response has
 * "delivered", or the error (needs `events:publish:PATTERN`).
 */
static inline wd_response wd_event_publish_json(const char *topic, const char *payload) {
    wd_buf req = {0};
    wd_buf_puts(&req, "{\"topic\":");
    wd_buf_json_str(&req, topic);
    wd_buf_puts(&req, ",\"payload\":");
    wd_buf_puts(&req, payload ? payload : "null");
    wd_buf_puts(&req, "}");
    wd_response r = wd_event_publish(&req);
    wd_buf_free(&req);
    return r;
}

/* A configuration value as a newly malloc'ed string (free it), or NULL. */
static inline char *wd_config_string(const char *key) {
    wd_buf req = {0};
    wd_buf_puts(&req, "{\"key\":");
    wd_buf_json_str(&req, key);
    wd_buf_puts(&req, "}");
    wd_response r = wd_config_get(&req);
    wd_buf_free(&req);
    char *value = r.ok ? wd_string_dup(wd_get(r.json, "value")) : NULL;
    wd_response_free(&r);
    return value;
}

/* GET `url`; the response carries status, headers and body (needs `network`). */
static inline wd_response wd_http_get(const char *url) {
    wd_buf req = {0};
    wd_buf_puts(&req, "{\"method\":\"GET\",\"url\":");
    wd_buf_json_str(&req, url);
    wd_buf_puts(&req, "}");
    wd_response r = wd_http_request(&req);
    wd_buf_free(&req);
    return r;
}

/*
 * Send `body` (JSON text) with `method` to `url`. `headers` is a JSON object
 * of extra headers, or NULL; Content-Type: application/json is added unless
 * it names one.
 */
static inline wd_response wd_http_send_json(const char *method, const char *url, const char *body,
                                     const char *headers) {
    wd_buf req = {0};
    wd_buf_puts(&req, "{\"method\":");
    wd_buf_json_str(&req, method);
    wd_buf_puts(&req, ",\"url\":");
    wd_buf_json_str(&req, url);
    wd_buf_puts(&req, ",\"body\":");
    wd_buf_json_str(&req, body);
    wd_buf_puts(&req, ",\"headers\":[");
    bool typed = false;
    wd_json h = {headers, headers ? strlen(headers) : 0};
    size_t cursor = 0;
    wd_json key, value;
    while (wd_object_next(h, &cursor, &key, &value)) {
        char name[64];
        wd_string(key, name, sizeof name);
        typed = typed || strcasecmp(name, "Content-Type") == 0;
        wd_buf_puts(&req, "[");
        wd_buf_json(&req, key);
        wd_buf_puts(&req, ",");
        wd_buf_json(&req, value);
        wd_buf_puts(&req, "],");
    }
    if (!typed) wd_buf_puts(&req, "[\"Content-Type\",\"application/json\"],");
    req.data[req.len - 1] = ']'; /* in place of the last pair's comma: there is always one */
    wd_buf_puts(&req, "}");
    wd_response r = wd_http_request(&req);
    wd_buf_free(&req);
    return r;
}

/* ---- the ABI exports ---------------------------------------------------- */

__attribute__((weak)) WD_EXPORT("alloc") void *wasmdeck_alloc(int32_t len) { return malloc(len > 0 ? (size_t)len : 1); }

__attribute__((weak)) WD_EXPORT("dealloc") void wasmdeck_dealloc(void *ptr, int32_t len) {
    (void)len;
    free(ptr);
}

/* Declare the plugin's metadata (a JSON string literal) and export init. */
#define WASMDECK_METADATA(json)                                                  \
    static const char wd__metadata[] = json;                                     \
    WD_EXPORT("init") int64_t wasmdeck_init(void) {                              \
        return ((int64_t)(uintptr_t)wd__metadata << 32) | (sizeof wd__metadata - 1); \
    }

/* The poll interval a trigger plugin may ask for, as the host checks it
 * (src/wasmdeck/_metadata.py): 10 ms to a day. */
#define WD_MIN_POLL_MS 10
#define WD_MAX_POLL_MS 86400000

/*
 * Declare a trigger plugin's metadata (docs/teamwork.md, "Trigger plugins"):
 * `json` (a JSON object literal, as for WASMDECK_METADATA) with "type":
 * "trigger" and "poll": {"action": poll_action, "interval_ms": interval_ms}
 * added. The host then calls the action `poll_action` (a string literal; it
 * must be among the declared actions) every `interval_ms` milliseconds, an
 * integer constant checked at compile time. The metadata is put together on
 * the first `init`.
 */
#define WASMDECK_TRIGGER_METADATA(poll_action, interval_ms, json)                   \
    _Static_assert((interval_ms) >= WD_MIN_POLL_MS && (interval_ms) <= WD_MAX_POLL_MS, \
                   "WASMDECK_TRIGGER_METADATA: interval_ms must be 10-86400000 (milliseconds)"); \
    _Static_assert(sizeof(poll_action) > 1,                                          \
                   "WASMDECK_TRIGGER_METADATA: poll_action must name an action");    \
    static const char wd__metadata_json[] = json;                                    \
    WD_EXPORT("init") int64_t wasmdeck_init(void) {                                  \
        static wd_buf metadata;                                                      \
        if (!metadata.len)                                                           \
            wd__trigger_metadata(&metadata, wd__metadata_json, poll_action, (interval_ms)); \
        return ((int64_t)(uintptr_t)metadata.data << 32) | (int64_t)metadata.len;     \
    }

/* `json` with the trigger's two members added before its closing brace; a
 * `json` that is not an object is kept as it is, for the host to refuse. */
static inline void wd__trigger_metadata(wd_buf *out, const char *json, const char *action,
                                        long interval_ms) {
    size_t n = strlen(json);
    while (n > 0 && strchr(" \t\r\n", json[n - 1])) n--;
    const char *open = wd__ws(json, json + n);
    if (open >= json + n || *open != '{' || json[n - 1] != '}') {
        wd_buf_add(out, json, strlen(json));
        return;
    }
    wd_buf_add(out, json, n - 1);
    if (wd__ws(open + 1, json + n - 1) < json + n - 1) wd_buf_puts(out, ",");
    wd_buf_puts(out, "\"type\":\"trigger\",\"poll\":{\"action\":");
    wd_buf_json_str(out, action);
    wd_buf_printf(out, ",\"interval_ms\":%ld}}", interval_ms);
}

/*
 * Keep the plugin's state across a live reload (docs/reload.md). `save` is
 * `void save(wd_buf *out)`: append the state (any bytes) to `out`. `restore`
 * is `int restore(const char *data, size_t len)`: the bytes the old version
 * saved, given to the new one before its first call; return 0, or
 * wd_error("...") to refuse them (the reload fails and the old version runs on).
 */
#define WASMDECK_STATE(save, restore)                                             \
    static wd_buf wd__state;                                                      \
    WD_EXPORT("save_state") int64_t wasmdeck_save_state(void) {                   \
        wd__state.len = 0;                                                        \
        save(&wd__state);                                                         \
        return ((int64_t)(uintptr_t)wd__state.data << 32) | (int64_t)wd__state.len; \
    }                                                                             \
    WD_EXPORT("restore_state") int32_t wasmdeck_restore_state(const char *ptr, int32_t len) { \
        int code = restore(ptr, len > 0 ? (size_t)len : 0);                        \
        fflush(stdout);                                                           \
        fflush(stderr);                                                           \
        return code;                                                              \
    }

/* Is the request's action the one named? */
static inline bool wd_action_is(const wd_request *req, const char *name) {
    return wd_equals(req->action, name);
}

__attribute__((weak)) WD_EXPORT("execute") int32_t wasmdeck_execute_export(const char *ptr, int32_t len) {
    wd_request req;
    memset(&req, 0, sizeof req);
    if (!ptr || len < 0) return wd_error("wasmdeck: bad request buffer (length %ld)", (long)len);
    req.raw.p = ptr;
    req.raw.n = (size_t)len;
    req.action = wd_get(req.raw, "action");
    if (wd_type_of(req.action) != WD_STRING) return wd_error("wasmdeck: bad request: no action");
    req.params = wd_get(req.raw, "params");
    if (wd_type_of(req.params) != WD_OBJECT) {
        req.params.p = "{}";
        req.params.n = 2;
    }
    req.context = wd_get(req.raw, "context");
    wd_json velocity = wd_get(req.context, "velocity");
    req.velocity = wd_type_of(velocity) == WD_NUMBER ? (int)wd_int(velocity, -1) : -1;
    wd_json mode = wd_get(req.context, "mode");
    req.has_mode = wd_type_of(mode) == WD_NUMBER;
    req.mode = wd_int(mode, 0);
    req.timestamp = wd_int(wd_get(req.context, "timestamp"), 0);
    int code = wasmdeck_execute(&req);
    fflush(stdout);
    fflush(stderr);
    return code;
}

#endif /* WASMDECK_H */
