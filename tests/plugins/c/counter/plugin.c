/*
 * c-counter: the live-reload contract (tests/test_live_reload.py).
 *
 * count {"seq": N}   (or an event whose payload has "seq": its subscription to
 *                    count.*) marks event N seen (a bitmap of MAX_SEQ bits): counts it,
 *                    and a second sighting as a duplicate
 * report             {"count", "duplicates", "missing" (unseen below the highest
 *                    seen), "generation" (restores so far), "version"}
 * poison {"how"}     the next reload's restore fails: "trap", "refuse", "spin",
 *                    or "big" (save_state returns more than max_state allows)
 * cure               clears the poison
 *
 * Its state (WASMDECK_STATE) is everything above, so it survives reloads.
 */
#include "wasmdeck.h"

#ifndef COUNTER_VERSION
#define COUNTER_VERSION "1.0.0"
#endif
#define MAX_SEQ 65536

WASMDECK_METADATA(
    "{\"name\":\"c-counter\",\"version\":\"" COUNTER_VERSION "\","
    "\"description\":\"Counts events; the count survives a live reload\","
    "\"actions\":[{\"name\":\"count\",\"description\":\"Count one event\"},"
    "{\"name\":\"report\",\"description\":\"What was counted\"},"
    "{\"name\":\"poison\",\"description\":\"Make the next restore fail\"},"
    "{\"name\":\"cure\",\"description\":\"Undo poison\"}],"
    "\"subscribe\":[{\"topic\":\"count.*\",\"action\":\"count\"}]}")

typedef struct {
    int64_t count, duplicates, highest, generation;
    char poison[8];
    unsigned char seen[MAX_SEQ / 8];
} counter_state;

static counter_state state = {0, 0, -1, 0, "", {0}};

static void save(wd_buf *out) {
    if (strcmp(state.poison, "big") == 0) {
        /* more than the host's max_state (4 MiB by default) */
        if (wd_buf_reserve(out, 5u << 20)) out->len = 5u << 20;
        return;
    }
    wd_buf_add(out, &state, sizeof state);
}

static int restore(const char *data, size_t len) {
    if (len != sizeof state) return wd_error("state of %lu bytes, expected %lu", (unsigned long)len,
                                             (unsigned long)sizeof state);
    counter_state incoming;
    memcpy(&incoming, data, sizeof incoming);
    if (strcmp(incoming.poison, "trap") == 0) __builtin_trap();
    if (strcmp(incoming.poison, "refuse") == 0) return wd_error("poisoned state refused");
    if (strcmp(incoming.poison, "spin") == 0) {
        for (volatile int64_t i = 0;; i++) {
        }
    }
    state = incoming;
    state.generation += 1;
    return 0;
}

WASMDECK_STATE(save, restore)

int wasmdeck_execute(const wd_request *req) {
    if (wd_action_is(req, "count")) {
        wd_json given = wd_get(req->params, "seq");
        if (wd_type_of(given) != WD_NUMBER) given = wd_get(wd_get(req->params, "payload"), "seq");
        int64_t seq = wd_int(given, -1);
        if (seq < 0 || seq >= MAX_SEQ) return wd_error("seq must be 0-%d", MAX_SEQ - 1);
        unsigned char bit = (unsigned char)(1u << (seq % 8));
        if (state.seen[seq / 8] & bit) {
            state.duplicates++;
        } else {
            state.seen[seq / 8] |= bit;
            state.count++;
        }
        if (seq > state.highest) state.highest = seq;
        return wd_outputf("{\"count\":%lld}", (long long)state.count);
    }
    if (wd_action_is(req, "report")) {
        int64_t missing = 0;
        for (int64_t s = 0; s <= state.highest; s++)
            if (!(state.seen[s / 8] & (1u << (s % 8)))) missing++;
        return wd_outputf("{\"count\":%lld,\"duplicates\":%lld,\"missing\":%lld,"
                          "\"generation\":%lld,\"version\":\"%s\"}",
                          (long long)state.count, (long long)state.duplicates, (long long)missing,
                          (long long)state.generation, COUNTER_VERSION);
    }
    if (wd_action_is(req, "poison")) {
        wd_string(wd_get(req->params, "how"), state.poison, sizeof state.poison);
        return wd_output_str("{}");
    }
    if (wd_action_is(req, "cure")) {
        state.poison[0] = 0;
        return wd_output_str("{}");
    }
    return wd_error("unknown action");
}
