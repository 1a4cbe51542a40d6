// The JSON ABI v1 exports (docs/abi.md). `wasmdeck build` compiles
// this file as a second entry beside the plugin's own, so a plugin never
// writes them; they hand over to the kit (index.ts).

import {
  __wasmdeck_execute,
  __wasmdeck_init,
  __wasmdeck_restore_state,
  __wasmdeck_save_state,
} from "wasmdeck";

// Memory for the host to write a request into. It comes from the allocator
// directly (heap.alloc), outside the garbage collector's reach: it stays put
// and alive, however long the host keeps it, until dealloc.
export function alloc(len: i32): i32 {
  return <i32>heap.alloc(len > 0 ? <usize>len : 1);
}

export function dealloc(ptr: i32, len: i32): void {
  if (ptr != 0) heap.free(<usize>ptr);
}

// The metadata JSON, packed as (ptr << 32) | len.
export function init(): i64 {
  return __wasmdeck_init();
}

// Run one request (JSON at ptr/len); 0 on success, 1 after error().
export function execute(ptr: i32, len: i32): i32 {
  return __wasmdeck_execute(<usize>ptr, <usize>len);
}

// The state pair of a live reload (docs/reload.md): empty state unless the
// plugin called Plugin.state(save, restore).
export function save_state(): i64 {
  return __wasmdeck_save_state();
}

export function restore_state(ptr: i32, len: i32): i32 {
  return __wasmdeck_restore_state(<usize>ptr, len > 0 ? <usize>len : 0);
}
