/* The Extism side of the call-overhead benchmark: echo the input back, through
 * Extism's kernel imports (what its C PDK does), in 8-byte steps. */
#include <stdint.h>
#define IMP(n) __attribute__((import_module("extism:host/env"), import_name(n)))
IMP("input_length") uint64_t input_length(void);
IMP("input_load_u8") uint32_t input_load_u8(uint64_t);
IMP("input_load_u64") uint64_t input_load_u64(uint64_t);
IMP("alloc") uint64_t ext_alloc(uint64_t);
IMP("store_u8") void store_u8(uint64_t, uint32_t);
IMP("store_u64") void store_u64(uint64_t, uint64_t);
IMP("output_set") void output_set(uint64_t, uint64_t);
__attribute__((export_name("echo"))) int32_t echo(void){
  uint64_t n = input_length();
  uint64_t off = ext_alloc(n);
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) store_u64(off + i, input_load_u64(i));
  for (; i < n; i++) store_u8(off + i, input_load_u8(i));
  output_set(off, n);
  return 0;
}
