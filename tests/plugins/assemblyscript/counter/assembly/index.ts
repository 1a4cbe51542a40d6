// A count that survives live reloads, through the AssemblyScript kit's
// Plugin.state(save, restore): the contract of tests/test_live_reload.py.
import { Json, Plugin, Request, error, outputJson } from "wasmdeck";

const MAX_SEQ: i32 = 65536;
// count, duplicates, highest, generation; then the poison's length and text; then the bitmap
let count: i64 = 0;
let duplicates: i64 = 0;
let highest: i64 = -1;
let generation: i64 = 0;
let poison = "";
let seen = new Uint8Array(MAX_SEQ / 8);

function countOne(req: Request): void {
  const seq = req.params.getInteger("seq", -1);
  if (seq < 0 || seq >= MAX_SEQ) {
    error("seq must be 0-65535");
    return;
  }
  const at = <i32>seq;
  const bit: i32 = 1 << (at % 8);
  if (<i32>seen[at / 8] & bit) duplicates++;
  else {
    seen[at / 8] = <u8>(<i32>seen[at / 8] | bit);
    count++;
  }
  if (seq > highest) highest = seq;
  outputJson(Json.obj().setInt("count", count));
}

function report(req: Request): void {
  let missing: i64 = 0;
  for (let s: i32 = 0; <i64>s <= highest; s++) if (!(<i32>seen[s / 8] & (1 << (s % 8)))) missing++;
  outputJson(
    Json.obj()
      .setInt("count", count)
      .setInt("duplicates", duplicates)
      .setInt("missing", missing)
      .setInt("generation", generation)
      .setString("version", "1.0.0"),
  );
}

function save(): ArrayBuffer {
  if (poison == "big") return new ArrayBuffer(5 << 20); // over the host's max_state (4 MiB)
  const text = String.UTF8.encode(poison);
  const out = new ArrayBuffer(33 + text.byteLength + seen.length);
  const view = new DataView(out);
  view.setInt64(0, count, true);
  view.setInt64(8, duplicates, true);
  view.setInt64(16, highest, true);
  view.setInt64(24, generation, true);
  view.setUint8(32, <u8>text.byteLength);
  memory.copy(changetype<usize>(out) + 33, changetype<usize>(text), text.byteLength);
  memory.copy(changetype<usize>(out) + 33 + text.byteLength, seen.dataStart, seen.length);
  return out;
}

function restore(state: ArrayBuffer): void {
  if (state.byteLength < 33) {
    error("the state is too short");
    return;
  }
  const view = new DataView(state);
  const size = <i32>view.getUint8(32);
  const how = String.UTF8.decodeUnsafe(changetype<usize>(state) + 33, size);
  if (how == "trap") unreachable();
  if (how == "refuse") {
    error("poisoned state refused");
    return;
  }
  if (how == "spin") {
    let i: i64 = 0;
    while (true) i++;
  }
  count = view.getInt64(0, true);
  duplicates = view.getInt64(8, true);
  highest = view.getInt64(16, true);
  generation = view.getInt64(24, true) + 1;
  poison = how;
  seen = Uint8Array.wrap(state.slice(33 + size));
}

Plugin.define("as-counter", "1.0.0", "Counts events; the count survives a live reload")
  .action("count", "Count one event", countOne)
  .action("report", "What was counted", report)
  .action("poison", "Make the next restore fail", (req: Request): void => {
    poison = req.params.getString("how");
    outputJson(Json.obj());
  })
  .action("cure", "Undo poison", (req: Request): void => {
    poison = "";
    outputJson(Json.obj());
  })
  .state(save, restore);
