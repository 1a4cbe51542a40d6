// JSON for wasmdeck plugins: a strict parser (RFC 8259) and a builder.
//
//   const v = Json.parse(`{"max": 10}`);          // JsonValue | null (see Json.lastError)
//   v!.get("max")!.asInteger()                    // 10
//   Json.obj().setInt("value", 3).setString("s", "x").toString()  // {"value":3,"s":"x"}
//
// One class, JsonValue, holds any JSON value; `kind` says which. Objects keep
// their members in order, so what you build is written in the order you built
// it. Numbers keep the text they were parsed from, so `toString()` gives back
// exactly what the host sent (`0`, `2.50`, `1e3`).

export enum JsonKind {
  Null,
  Bool,
  Number,
  String,
  Array,
  Object,
}

// Deeper nesting than this is refused rather than risking the wasm stack.
const MAX_DEPTH = 128;

export class JsonValue {
  kind: JsonKind;
  private _bool: bool = false;
  private _number: f64 = 0;
  // A string's value, or a number's JSON text.
  private _text: string = "";
  // An array's items, or an object's member values (beside _keys).
  private _items: Array<JsonValue> | null = null;
  private _keys: Array<string> | null = null;

  constructor(kind: JsonKind) {
    this.kind = kind;
    if (kind == JsonKind.Array || kind == JsonKind.Object) this._items = new Array<JsonValue>();
    if (kind == JsonKind.Object) this._keys = new Array<string>();
  }

  // -- what it is ----------------------------------------------------------

  isNull(): bool {
    return this.kind == JsonKind.Null;
  }
  isBool(): bool {
    return this.kind == JsonKind.Bool;
  }
  isNumber(): bool {
    return this.kind == JsonKind.Number;
  }
  isString(): bool {
    return this.kind == JsonKind.String;
  }
  isArray(): bool {
    return this.kind == JsonKind.Array;
  }
  isObject(): bool {
    return this.kind == JsonKind.Object;
  }
  // A number without a fractional part (2 and 2.0 are integers, as in JSON Schema).
  isInteger(): bool {
    const n = this._number;
    return this.kind == JsonKind.Number && isFinite(n) && Math.floor(n) == n;
  }

  // -- reading -------------------------------------------------------------

  asBool(fallback: bool = false): bool {
    return this.kind == JsonKind.Bool ? this._bool : fallback;
  }
  asNumber(fallback: f64 = 0): f64 {
    return this.kind == JsonKind.Number ? this._number : fallback;
  }
  // The integer value; `fallback` for anything that is not an integer.
  asInteger(fallback: i64 = 0): i64 {
    if (!this.isInteger()) return fallback;
    const n = this._number;
    if (Math.abs(n) < 9007199254740992.0) return <i64>n;
    // Beyond 2^53 a double is not exact: read the digits themselves.
    const text = this._text;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (!(c >= 48 && c <= 57) && !(i == 0 && c == 45)) return <i64>n;
    }
    return I64.parseInt(text);
  }
  // A string's text; `fallback` for anything that is not a string.
  asString(fallback: string = ""): string {
    return this.kind == JsonKind.String ? this._text : fallback;
  }

  // The number of items (array) or members (object); 0 for anything else.
  get length(): i32 {
    const items = this._items;
    return items ? items.length : 0;
  }

  // Item `index` of an array, or null.
  at(index: i32): JsonValue | null {
    const items = this._items;
    if (this.kind != JsonKind.Array || !items || index < 0 || index >= items.length) return null;
    return unchecked(items[index]);
  }

  // The member `key` of an object, or null (absent, or not an object).
  get(key: string): JsonValue | null {
    const keys = this._keys;
    if (!keys) return null;
    const items = this._items!;
    for (let i = 0, n = keys.length; i < n; i++) {
      if (unchecked(keys[i]) == key) return unchecked(items[i]);
    }
    return null;
  }

  has(key: string): bool {
    return this.get(key) != null;
  }

  // An object's keys, in order (empty for anything else).
  keys(): Array<string> {
    const keys = this._keys;
    return keys ? keys.slice(0) : new Array<string>();
  }

  // An array's items or an object's values, in order.
  values(): Array<JsonValue> {
    const items = this._items;
    return items ? items.slice(0) : new Array<JsonValue>();
  }

  getString(key: string, fallback: string = ""): string {
    const v = this.get(key);
    return v ? v.asString(fallback) : fallback;
  }
  getInteger(key: string, fallback: i64 = 0): i64 {
    const v = this.get(key);
    return v ? v.asInteger(fallback) : fallback;
  }
  getNumber(key: string, fallback: f64 = 0): f64 {
    const v = this.get(key);
    return v ? v.asNumber(fallback) : fallback;
  }
  getBool(key: string, fallback: bool = false): bool {
    const v = this.get(key);
    return v ? v.asBool(fallback) : fallback;
  }

  // -- building (objects and arrays; each returns this, for chaining) -------

  // Set member `key` (replacing one of that name, else appended).
  set(key: string, value: JsonValue): JsonValue {
    const keys = this._keys;
    if (!keys) {
      abort("JsonValue.set on a value that is not an object");
      return this;
    }
    const items = this._items!;
    for (let i = 0, n = keys.length; i < n; i++) {
      if (unchecked(keys[i]) == key) {
        items[i] = value;
        return this;
      }
    }
    keys.push(key);
    items.push(value);
    return this;
  }
  setString(key: string, value: string): JsonValue {
    return this.set(key, Json.str(value));
  }
  setInt(key: string, value: i64): JsonValue {
    return this.set(key, Json.int(value));
  }
  setNumber(key: string, value: f64): JsonValue {
    return this.set(key, Json.num(value));
  }
  setBool(key: string, value: bool): JsonValue {
    return this.set(key, Json.boolean(value));
  }
  setNull(key: string): JsonValue {
    return this.set(key, Json.nil());
  }

  // Remove member `key`; true if there was one.
  remove(key: string): bool {
    const keys = this._keys;
    if (!keys) return false;
    const i = keys.indexOf(key);
    if (i < 0) return false;
    keys.splice(i, 1);
    this._items!.splice(i, 1);
    return true;
  }

  // Append an item to an array.
  push(value: JsonValue): JsonValue {
    if (this.kind != JsonKind.Array) {
      abort("JsonValue.push on a value that is not an array");
      return this;
    }
    this._items!.push(value);
    return this;
  }

  // -- writing -------------------------------------------------------------

  // Compact JSON text.
  toString(): string {
    const out = new Array<string>();
    this.write(out);
    return out.join("");
  }

  private write(out: Array<string>): void {
    switch (this.kind) {
      case JsonKind.Null:
        out.push("null");
        break;
      case JsonKind.Bool:
        out.push(this._bool ? "true" : "false");
        break;
      case JsonKind.Number:
        out.push(this._text);
        break;
      case JsonKind.String:
        out.push(Json.quote(this._text));
        break;
      case JsonKind.Array: {
        const items = this._items!;
        out.push("[");
        for (let i = 0, n = items.length; i < n; i++) {
          if (i) out.push(",");
          unchecked(items[i]).write(out);
        }
        out.push("]");
        break;
      }
      default: {
        const keys = this._keys!;
        const items = this._items!;
        out.push("{");
        for (let i = 0, n = keys.length; i < n; i++) {
          if (i) out.push(",");
          out.push(Json.quote(unchecked(keys[i])));
          out.push(":");
          unchecked(items[i]).write(out);
        }
        out.push("}");
      }
    }
  }

  // For the parser and Json.* constructors.
  static _scalar(kind: JsonKind, b: bool, n: f64, text: string): JsonValue {
    const v = new JsonValue(kind);
    v._bool = b;
    v._number = n;
    v._text = text;
    return v;
  }
  _add(key: string, value: JsonValue): void {
    this._keys!.push(key);
    this._items!.push(value);
  }
  _append(value: JsonValue): void {
    this._items!.push(value);
  }
}

export namespace Json {
  // Why the last parse() returned null.
  export let lastError: string = "";

  // Parse JSON text; null if it is not valid JSON (lastError says why).
  export function parse(text: string): JsonValue | null {
    const parser = new Parser(text);
    const value = parser.value(0);
    if (value) {
      parser.space();
      if (parser.pos == text.length) {
        lastError = "";
        return value;
      }
      parser.fail("unexpected text after the JSON value");
    }
    lastError = parser.error;
    return null;
  }

  export function nil(): JsonValue {
    return new JsonValue(JsonKind.Null);
  }
  export function boolean(value: bool): JsonValue {
    return JsonValue._scalar(JsonKind.Bool, value, 0, "");
  }
  export function int(value: i64): JsonValue {
    return JsonValue._scalar(JsonKind.Number, false, <f64>value, value.toString());
  }
  // A number; NaN and infinities (which JSON cannot write) become null.
  export function num(value: f64): JsonValue {
    if (!isFinite(value)) return nil();
    let text: string;
    if (Math.floor(value) == value && Math.abs(value) < 1e15) text = (<i64>value).toString();
    else text = value.toString();
    return JsonValue._scalar(JsonKind.Number, false, value, text);
  }
  export function str(value: string): JsonValue {
    return JsonValue._scalar(JsonKind.String, false, 0, value);
  }
  export function arr(): JsonValue {
    return new JsonValue(JsonKind.Array);
  }
  export function obj(): JsonValue {
    return new JsonValue(JsonKind.Object);
  }
  // An array of strings.
  export function strings(values: Array<string>): JsonValue {
    const a = arr();
    for (let i = 0; i < values.length; i++) a._append(str(values[i]));
    return a;
  }

  // `text` as a quoted JSON string literal.
  export function quote(text: string): string {
    const n = text.length;
    // Fast path: nothing to escape.
    let plain = true;
    for (let i = 0; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c < 0x20 || c == 0x22 || c == 0x5c || (c >= 0xd800 && c <= 0xdfff)) {
        plain = false;
        break;
      }
    }
    if (plain) return '"' + text + '"';
    const parts = new Array<string>();
    parts.push('"');
    let start = 0;
    for (let i = 0; i < n; i++) {
      const c = text.charCodeAt(i);
      let escape: string | null = null;
      if (c == 0x22) escape = '\\"';
      else if (c == 0x5c) escape = "\\\\";
      else if (c == 0x0a) escape = "\\n";
      else if (c == 0x0d) escape = "\\r";
      else if (c == 0x09) escape = "\\t";
      else if (c == 0x08) escape = "\\b";
      else if (c == 0x0c) escape = "\\f";
      else if (c < 0x20) escape = "\\u" + hex4(c);
      else if (c >= 0xd800 && c <= 0xdbff) {
        const next = i + 1 < n ? text.charCodeAt(i + 1) : 0;
        if (next >= 0xdc00 && next <= 0xdfff) {
          i++; // a valid surrogate pair: kept as is
          continue;
        }
        escape = "\\u" + hex4(c); // a lone surrogate: UTF-8 cannot carry it
      } else if (c >= 0xdc00 && c <= 0xdfff) escape = "\\u" + hex4(c);
      if (escape != null) {
        if (i > start) parts.push(text.substring(start, i));
        parts.push(escape);
        start = i + 1;
      }
    }
    if (n > start) parts.push(text.substring(start, n));
    parts.push('"');
    return parts.join("");
  }
}

function hex4(c: i32): string {
  const digits = "0123456789abcdef";
  return (
    digits.charAt((c >> 12) & 15) +
    digits.charAt((c >> 8) & 15) +
    digits.charAt((c >> 4) & 15) +
    digits.charAt(c & 15)
  );
}

function hexValue(c: i32): i32 {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

class Parser {
  text: string;
  pos: i32 = 0;
  error: string = "";

  constructor(text: string) {
    this.text = text;
  }

  fail(message: string): JsonValue | null {
    if (this.error.length == 0) this.error = message + " at offset " + this.pos.toString();
    return null;
  }

  peek(): i32 {
    return this.pos < this.text.length ? this.text.charCodeAt(this.pos) : -1;
  }

  space(): void {
    const text = this.text;
    const n = text.length;
    let p = this.pos;
    while (p < n) {
      const c = text.charCodeAt(p);
      if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
      p++;
    }
    this.pos = p;
  }

  literal(word: string): bool {
    const n = word.length;
    if (this.pos + n > this.text.length) return false;
    for (let i = 0; i < n; i++) {
      if (this.text.charCodeAt(this.pos + i) != word.charCodeAt(i)) return false;
    }
    this.pos += n;
    return true;
  }

  value(depth: i32): JsonValue | null {
    if (depth > MAX_DEPTH) return this.fail("JSON nested too deeply");
    this.space();
    const c = this.peek();
    if (c == 0x7b) return this.object(depth);
    if (c == 0x5b) return this.array(depth);
    if (c == 0x22) {
      const s = this.string();
      return s == null ? null : Json.str(s);
    }
    if (c == 0x2d || (c >= 48 && c <= 57)) return this.number();
    if (c == 0x74 && this.literal("true")) return Json.boolean(true);
    if (c == 0x66 && this.literal("false")) return Json.boolean(false);
    if (c == 0x6e && this.literal("null")) return Json.nil();
    return this.fail(c < 0 ? "unexpected end of JSON" : "unexpected character");
  }

  object(depth: i32): JsonValue | null {
    const result = Json.obj();
    this.pos++; // {
    this.space();
    if (this.peek() == 0x7d) {
      this.pos++;
      return result;
    }
    while (true) {
      this.space();
      if (this.peek() != 0x22) return this.fail("expected a string key");
      const key = this.string();
      if (key == null) return null;
      this.space();
      if (this.peek() != 0x3a) return this.fail("expected ':'");
      this.pos++;
      const value = this.value(depth + 1);
      if (!value) return null;
      result._add(key, value);
      this.space();
      const c = this.peek();
      this.pos++;
      if (c == 0x2c) continue;
      if (c == 0x7d) return result;
      this.pos--;
      return this.fail("expected ',' or '}'");
    }
  }

  array(depth: i32): JsonValue | null {
    const result = Json.arr();
    this.pos++; // [
    this.space();
    if (this.peek() == 0x5d) {
      this.pos++;
      return result;
    }
    while (true) {
      const value = this.value(depth + 1);
      if (!value) return null;
      result._append(value);
      this.space();
      const c = this.peek();
      this.pos++;
      if (c == 0x2c) continue;
      if (c == 0x5d) return result;
      this.pos--;
      return this.fail("expected ',' or ']'");
    }
  }

  // A string literal at pos (which is at its opening quote); null on error.
  string(): string | null {
    const text = this.text;
    const n = text.length;
    let p = this.pos + 1;
    let start = p;
    let parts: Array<string> | null = null;
    while (true) {
      if (p >= n) {
        this.pos = p;
        this.fail("unterminated string");
        return null;
      }
      const c = text.charCodeAt(p);
      if (c == 0x22) break;
      if (c < 0x20) {
        this.pos = p;
        this.fail("control character in a string");
        return null;
      }
      if (c != 0x5c) {
        p++;
        continue;
      }
      if (!parts) parts = new Array<string>();
      if (p > start) parts.push(text.substring(start, p));
      const e = p + 1 < n ? text.charCodeAt(p + 1) : -1;
      p += 2;
      if (e == 0x22) parts.push('"');
      else if (e == 0x5c) parts.push("\\");
      else if (e == 0x2f) parts.push("/");
      else if (e == 0x62) parts.push("\b");
      else if (e == 0x66) parts.push("\f");
      else if (e == 0x6e) parts.push("\n");
      else if (e == 0x72) parts.push("\r");
      else if (e == 0x74) parts.push("\t");
      else if (e == 0x75) {
        let code = 0;
        for (let k = 0; k < 4; k++) {
          const h = p + k < n ? hexValue(text.charCodeAt(p + k)) : -1;
          if (h < 0) {
            this.pos = p;
            this.fail("bad \\u escape");
            return null;
          }
          code = (code << 4) | h;
        }
        p += 4;
        // UTF-16 units as they come: a surrogate pair written as two escapes
        // becomes the pair again.
        parts.push(String.fromCharCode(code));
      } else {
        this.pos = p - 1;
        this.fail("bad escape");
        return null;
      }
      start = p;
    }
    this.pos = p + 1;
    if (!parts) return text.substring(start, p);
    if (p > start) parts.push(text.substring(start, p));
    return parts.join("");
  }

  number(): JsonValue | null {
    const text = this.text;
    const n = text.length;
    const start = this.pos;
    let p = start;
    if (p < n && text.charCodeAt(p) == 0x2d) p++;
    if (p < n && text.charCodeAt(p) == 0x30) {
      p++;
    } else {
      const digits = p;
      while (p < n && isDigit(text.charCodeAt(p))) p++;
      if (p == digits) {
        this.pos = p;
        return this.fail("bad number");
      }
    }
    let integral = true;
    if (p < n && text.charCodeAt(p) == 0x2e) {
      integral = false;
      p++;
      const digits = p;
      while (p < n && isDigit(text.charCodeAt(p))) p++;
      if (p == digits) {
        this.pos = p;
        return this.fail("bad number");
      }
    }
    if (p < n && (text.charCodeAt(p) | 0x20) == 0x65) {
      integral = false;
      p++;
      if (p < n && (text.charCodeAt(p) == 0x2b || text.charCodeAt(p) == 0x2d)) p++;
      const digits = p;
      while (p < n && isDigit(text.charCodeAt(p))) p++;
      if (p == digits) {
        this.pos = p;
        return this.fail("bad number");
      }
    }
    this.pos = p;
    const literal = text.substring(start, p);
    let value: f64;
    if (integral && p - start <= 15) {
      // Short integers (the common case) without the float parser.
      let v: i64 = 0;
      let i = start;
      const negative = text.charCodeAt(i) == 0x2d;
      if (negative) i++;
      for (; i < p; i++) v = v * 10 + (text.charCodeAt(i) - 48);
      value = <f64>(negative ? -v : v);
    } else {
      value = parseFloat(literal);
    }
    return JsonValue._scalar(JsonKind.Number, false, value, literal);
  }
}

// @ts-ignore: decorator
@inline
function isDigit(c: i32): bool {
  return c >= 48 && c <= 57;
}
