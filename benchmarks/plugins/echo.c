/* The wasmdeck side of the call-overhead benchmark: echo the request back.
 * Written against the bare ABI (no kit), as lean as the Extism echo beside it. */
#include <stdint.h>
#include <stdlib.h>

__attribute__((import_module("wasmdeck"), import_name("set_output")))
void set_output(const void *ptr, uint32_t len);

static const char METADATA[] =
    "{\"name\":\"echo\",\"version\":\"1.0.0\",\"description\":\"echoes its request\","
    "\"actions\":[{\"name\":\"echo\",\"description\":\"return the request as output\"}]}";

__attribute__((export_name("alloc"))) void *wd_alloc(int32_t len) { return malloc(len ? len : 1); }
__attribute__((export_name("dealloc"))) void wd_dealloc(void *ptr, int32_t len) { (void)len; free(ptr); }
__attribute__((export_name("init"))) uint64_t wd_init(void) {
    return ((uint64_t)(uintptr_t)METADATA << 32) | (sizeof METADATA - 1);
}
__attribute__((export_name("execute"))) int32_t wd_execute(const char *ptr, int32_t len) {
    set_output(ptr, (uint32_t)len);
    return 0;
}
/* For the raw-wasmtime reference: the cheapest call there is. */
__attribute__((export_name("add"))) int32_t add(int32_t a, int32_t b) { return a + b; }
