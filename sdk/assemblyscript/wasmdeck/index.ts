// wasmdeck: the AssemblyScript plugin development kit (JSON ABI v1).
//
// A plugin is one AssemblyScript file that declares itself and its actions:
//
//   import { Plugin, Request, output, error } from "wasmdeck";
//
//   Plugin.define("hello", "0.1.0", "Says hello")
//     .action("greet", "Greets someone", greet);
//
//   function greet(req: Request): void {
//     const who = req.params.getString("who");
//     if (who.length == 0) return error("greet needs a 'who'");
//     output("hello, " + who);
//   }
//
// `wasmdeck build` compiles it with this kit: the kit provides the exports the
// host calls (alloc, dealloc, init, execute: see abi.ts), parses each request,
// routes it to the action's handler, and wraps the host functions (output,
// errors, logging, configuration, HTTP, WebSocket, processes, key-value state).
// A host function the plugin never calls is not imported, so a plugin that
// uses none of those behind a capability needs no capability.
//
// A trigger plugin (docs/teamwork.md, "Trigger plugins") names the action the
// host polls and how often, `.poll("tick", 20)`; its metadata then says
// "type": "trigger", and the poll publishes with events.publish(topic, payload).
//
// AssemblyScript has no exceptions: handlers report failure with error(), and
// host calls return a result whose `error` is set when the host refused or
// failed the request (see HostError).

import { Json, JsonKind, JsonValue } from "./json";
import { Base64 } from "./base64";

export { Json, JsonKind, JsonValue } from "./json";
export { Base64 } from "./base64";

// ---- host imports (module "wasmdeck"; see docs/host-api.md) ----------------

// @ts-ignore: decorator
@external("wasmdeck", "set_output")
declare function _set_output(ptr: usize, len: usize): void;
// @ts-ignore: decorator
@external("wasmdeck", "set_error")
declare function _set_error(ptr: usize, len: usize): void;
// @ts-ignore: decorator
@external("wasmdeck", "log")
declare function _log(level: i32, ptr: usize, len: usize): void;
// @ts-ignore: decorator
@external("wasmdeck", "response_read")
declare function _response_read(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("wasmdeck", "config_get")
declare function _config_get(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("wasmdeck", "http_request")
declare function _http_request(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("wasmdeck", "ws_connect")
declare function _ws_connect(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("wasmdeck", "ws_send")
declare function _ws_send(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("wasmdeck", "ws_recv")
declare function _ws_recv(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("wasmdeck", "ws_close")
declare function _ws_close(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("wasmdeck", "process_run")
declare function _process_run(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("wasmdeck", "kv_get")
declare function _kv_get(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("wasmdeck", "kv_set")
declare function _kv_set(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("wasmdeck", "kv_delete")
declare function _kv_delete(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("wasmdeck", "kv_list")
declare function _kv_list(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("wasmdeck", "event_publish")
declare function _event_publish(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("wasmdeck", "plugin_call")
declare function _plugin_call(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("wasmdeck", "state_get")
declare function _state_get(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("wasmdeck", "state_set")
declare function _state_set(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("wasmdeck", "state_delete")
declare function _state_delete(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("wasmdeck", "state_list")
declare function _state_list(ptr: usize, len: usize): i32;

type HostFunction = (ptr: usize, len: usize) => i32;

// ---- the plugin: metadata and actions ---------------------------------------

// Runs one action. Report results with output()/outputJson() and failures
// with error(); returning without either is a success with empty output.
export type Handler = (req: Request) => void;
// The state pair of a live reload (Plugin.state; docs/reload.md).
export type SaveState = () => ArrayBuffer;
export type RestoreState = (state: ArrayBuffer) => void;

class Action {
  constructor(
    public name: string,
    public description: string,
    public handler: Handler,
    public params: JsonValue | null,
  ) {}
}

let current: Plugin | null = null;

// The poll interval a trigger plugin may ask for, as the host checks it
// (src/wasmdeck/_metadata.py): 10 ms to a day.
const MIN_POLL_MS: i32 = 10;
const MAX_POLL_MS: i32 = 86400000;

// The plugin's metadata (what `init` returns) and its actions, routed by name.
export class Plugin {
  private _author: string | null = null;
  private _license: string | null = null;
  private _homepage: string | null = null;
  private _capabilities: JsonValue = Json.arr();
  private _subscriptions: JsonValue = Json.arr();
  private _poll: JsonValue | null = null;
  private _actions: Array<Action> = new Array<Action>();
  private _fallback: Handler | null = null;
  private _metadata: ArrayBuffer | null = null;
  _save: SaveState | null = null;
  _restore: RestoreState | null = null;

  private constructor(
    public name: string,
    public version: string,
    public description: string,
  ) {}

  // Declare the plugin; call it once, at the top level of the plugin file.
  static define(name: string, version: string, description: string): Plugin {
    if (current != null) abort("Plugin.define was called twice");
    const plugin = new Plugin(name, version, description);
    current = plugin;
    return plugin;
  }

  // The plugin defined with Plugin.define (aborts if there is none).
  static get current(): Plugin {
    const plugin = current;
    if (!plugin) {
      abort("no plugin is defined: call Plugin.define(name, version, description)");
      return unreachable();
    }
    return plugin;
  }

  // An action: `params` is a JSON Schema (as JSON text) for its params, or "".
  action(name: string, description: string, handler: Handler, params: string = ""): Plugin {
    let schema: JsonValue | null = null;
    if (params.length > 0) {
      schema = Json.parse(params);
      if (!schema || !schema.isObject()) {
        abort("the params schema of action '" + name + "' is not a JSON object: " + params);
      }
    }
    this._actions.push(new Action(name, description, handler, schema));
    return this;
  }

  // Handle every action that has no handler of its own. A plugin that
  // declares no actions at all accepts any action name.
  fallback(handler: Handler): Plugin {
    this._fallback = handler;
    return this;
  }

  author(author: string): Plugin {
    this._author = author;
    return this;
  }

  license(license: string): Plugin {
    this._license = license;
    return this;
  }

  homepage(url: string): Plugin {
    this._homepage = url;
    return this;
  }

  // A capability the plugin asks for: a bare kind ("network", "kv", ...), or
  // with its scope as a JSON object, e.g. capability("network", `{"hosts": ["example.com"]}`).
  capability(kind: string, scope: string = ""): Plugin {
    if (scope.length == 0) {
      this._capabilities.push(Json.str(kind));
      return this;
    }
    const parsed = Json.parse(scope);
    if (!parsed || !parsed.isObject()) {
      abort("the scope of capability '" + kind + "' is not a JSON object: " + scope);
      return this;
    }
    const entry = Json.obj().setString("kind", kind);
    const keys = parsed.keys();
    for (let i = 0; i < keys.length; i++) entry.set(keys[i], parsed.get(keys[i])!);
    this._capabilities.push(entry);
    return this;
  }

  // Keep state across a live reload (docs/reload.md): `save` returns the
  // bytes to hand the new version (at most the host's max_state, 4 MiB by
  // default); the new version's `restore` gets them before its first call,
  // and refuses them with error(...) (the reload fails, the old one runs on).
  state(save: SaveState, restore: RestoreState): Plugin {
    this._save = save;
    this._restore = restore;
    return this;
  }

  // Receive the events of `topic` (a pattern such as "obs.*"; as far as the
  // user grants events:subscribe) as calls of `action`, params {topic, payload, source}.
  subscribe(topic: string, action: string): Plugin {
    this._subscriptions.push(Json.obj().setString("topic", topic).setString("action", action));
    return this;
  }

  // Make the plugin a trigger plugin: the host polls it by calling `action`
  // (one of the declared actions, with empty params) every `intervalMs`
  // milliseconds, 10 to 86400000, from the end of one poll to the next.
  poll(action: string, intervalMs: i32): Plugin {
    if (this._poll != null) abort("Plugin.poll was called twice");
    if (intervalMs < MIN_POLL_MS || intervalMs > MAX_POLL_MS) {
      abort("poll interval must be 10-86400000 (milliseconds), not " + intervalMs.toString());
    }
    this._poll = Json.obj().setString("action", action).setInt("interval_ms", intervalMs);
    return this;
  }

  // The metadata JSON, as the host reads it from `init`.
  metadataJson(): string {
    const meta = Json.obj()
      .setString("name", this.name)
      .setString("version", this.version)
      .setString("description", this.description);
    if (this._author != null) meta.setString("author", this._author!);
    if (this._license != null) meta.setString("license", this._license!);
    if (this._homepage != null) meta.setString("homepage", this._homepage!);
    if (this._actions.length > 0) {
      const actions = Json.arr();
      for (let i = 0; i < this._actions.length; i++) {
        const a = this._actions[i];
        const spec = Json.obj().setString("name", a.name).setString("description", a.description);
        if (a.params != null) spec.set("params", a.params!);
        actions.push(spec);
      }
      meta.set("actions", actions);
    }
    const poll = this._poll;
    if (poll != null) {
      const action = poll.getString("action");
      // Declared actions are the only ones the host calls (none: any name).
      let declared = this._actions.length == 0;
      for (let i = 0; i < this._actions.length; i++) declared = declared || this._actions[i].name == action;
      if (!declared) abort("the poll action '" + action + "' is not one of the declared actions");
      meta.setString("type", "trigger").set("poll", poll);
    }
    if (this._capabilities.length > 0) meta.set("capabilities", this._capabilities);
    if (this._subscriptions.length > 0) meta.set("subscribe", this._subscriptions);
    return meta.toString();
  }

  // -- for abi.ts ----------------------------------------------------------

  _metadataBytes(): ArrayBuffer {
    let bytes = this._metadata;
    if (!bytes) {
      bytes = String.UTF8.encode(this.metadataJson());
      this._metadata = bytes; // kept alive by the plugin, so the host can read it
    }
    return bytes;
  }

  _handler(action: string): Handler | null {
    const actions = this._actions;
    for (let i = 0, n = actions.length; i < n; i++) {
      if (unchecked(actions[i]).name == action) return unchecked(actions[i]).handler;
    }
    return this._fallback;
  }
}

// ---- requests -----------------------------------------------------------------

// One request, as the host sent it.
export class Request {
  // The action's name.
  action: string = "";
  // The params object ({} when there are none).
  params: JsonValue = Json.obj();
  // The trigger context object ({"velocity", "mode", "timestamp"}).
  context: JsonValue = Json.obj();
  // 0-127, or -1 when the trigger had none (see hasVelocity, velocityOr).
  velocity: i32 = -1;
  // The host's mode when the trigger fired (see hasMode).
  mode: i64 = 0;
  hasMode: bool = false;
  // When the trigger fired, in milliseconds since the Unix epoch.
  timestamp: i64 = 0;

  get hasVelocity(): bool {
    return this.velocity >= 0;
  }

  velocityOr(fallback: i32): i32 {
    return this.velocity >= 0 ? this.velocity : fallback;
  }

  // Parse the request JSON; null (with the reason in Json.lastError) if it is not one.
  static parse(text: string): Request | null {
    const json = Json.parse(text);
    if (!json || !json.isObject()) {
      if (json) Json.lastError = "the request is not a JSON object";
      return null;
    }
    const req = new Request();
    req.action = json.getString("action");
    const params = json.get("params");
    if (params && params.isObject()) req.params = params;
    const context = json.get("context");
    if (context && context.isObject()) {
      req.context = context;
      const velocity = context.get("velocity");
      if (velocity && velocity.isInteger()) {
        const v = velocity.asInteger();
        req.velocity = v < 0 ? -1 : v > 0x7fffffff ? 0x7fffffff : <i32>v;
      }
      const mode = context.get("mode");
      if (mode && mode.isInteger()) {
        req.mode = mode.asInteger();
        req.hasMode = true;
      }
      req.timestamp = context.getInteger("timestamp");
    }
    return req;
  }
}

// ---- results ------------------------------------------------------------------

let failed = false;

function encoded(text: string): ArrayBuffer {
  return String.UTF8.encode(text);
}

// Hand the output to the host (copied at once; a later call replaces it).
export function output(text: string): void {
  const bytes = encoded(text);
  _set_output(changetype<usize>(bytes), <usize>bytes.byteLength);
}

export function outputJson(value: JsonValue): void {
  output(value.toString());
}

export function outputBytes(data: Uint8Array): void {
  _set_output(data.dataStart, <usize>data.byteLength);
}

// Report an error message to the user; the call fails with it.
export function error(message: string): void {
  failed = true;
  const bytes = encoded(message);
  _set_error(changetype<usize>(bytes), <usize>bytes.byteLength);
}

// ---- logging ------------------------------------------------------------------

export enum Level {
  Debug = 0,
  Info = 1,
  Warning = 2,
  Error = 3,
}

export namespace log {
  export function at(level: Level, message: string): void {
    const bytes = encoded(message);
    _log(<i32>level, changetype<usize>(bytes), <usize>bytes.byteLength);
  }
  export function debug(message: string): void {
    at(Level.Debug, message);
  }
  export function info(message: string): void {
    at(Level.Info, message);
  }
  export function warning(message: string): void {
    at(Level.Warning, message);
  }
  export function error(message: string): void {
    at(Level.Error, message);
  }
}

// ---- host calls ---------------------------------------------------------------

// Why the host refused or failed a request: `kind` is one of denied,
// invalid_request, timeout, connection, tls, too_large, redirects, closed,
// quota, limit, process (or invalid_response when the answer made no sense).
export class HostError {
  constructor(
    public kind: string,
    public message: string,
  ) {}

  toString(): string {
    return this.kind + ": " + this.message;
  }
}

// A host call's answer: the response object, or an error.
export class HostResponse {
  // The whole response object ({} after an error).
  json: JsonValue = Json.obj();
  error: HostError | null = null;

  get ok(): bool {
    return this.error == null;
  }

  // The error's message ("" when there is none).
  get errorMessage(): string {
    const e = this.error;
    return e ? e.message : "";
  }

  // The error's kind ("" when there is none).
  get errorKind(): string {
    const e = this.error;
    return e ? e.kind : "";
  }

  _fill(from: HostResponse): void {
    this.json = from.json;
    this.error = from.error;
  }
}

function hostCall(fn: HostFunction, request: JsonValue): HostResponse {
  const bytes = encoded(request.toString());
  const size = fn(changetype<usize>(bytes), <usize>bytes.byteLength);
  return readResponse(size);
}

function readResponse(size: i32): HostResponse {
  const result = new HostResponse();
  if (size <= 0) {
    result.error = new HostError("invalid_response", "the host answered nothing");
    return result;
  }
  const buffer = new ArrayBuffer(size);
  let got = _response_read(changetype<usize>(buffer), <usize>size);
  if (got < 0 || got > size) got = 0; // never trust a length
  const json = Json.parse(String.UTF8.decodeUnsafe(changetype<usize>(buffer), <usize>got));
  if (!json || !json.isObject()) {
    result.error = new HostError("invalid_response", "the host's answer is not a JSON object");
    return result;
  }
  const err = json.get("error");
  if (err && !err.isNull()) {
    const kind = err.getString("kind", "error");
    result.error = new HostError(kind, err.getString("message", kind));
    return result;
  }
  result.json = json;
  return result;
}

// Call a host function with a JSON request of your own (for fields the
// helpers below do not cover); see docs/host-api.md.
export namespace host {
  export function configGet(request: JsonValue): HostResponse {
    return hostCall(_config_get, request);
  }
  export function httpRequest(request: JsonValue): HostResponse {
    return hostCall(_http_request, request);
  }
  export function wsConnect(request: JsonValue): HostResponse {
    return hostCall(_ws_connect, request);
  }
  export function wsSend(request: JsonValue): HostResponse {
    return hostCall(_ws_send, request);
  }
  export function wsRecv(request: JsonValue): HostResponse {
    return hostCall(_ws_recv, request);
  }
  export function wsClose(request: JsonValue): HostResponse {
    return hostCall(_ws_close, request);
  }
  export function processRun(request: JsonValue): HostResponse {
    return hostCall(_process_run, request);
  }
  export function kvGet(request: JsonValue): HostResponse {
    return hostCall(_kv_get, request);
  }
  export function kvSet(request: JsonValue): HostResponse {
    return hostCall(_kv_set, request);
  }
  export function kvDelete(request: JsonValue): HostResponse {
    return hostCall(_kv_delete, request);
  }
  export function kvList(request: JsonValue): HostResponse {
    return hostCall(_kv_list, request);
  }
  export function eventPublish(request: JsonValue): HostResponse {
    return hostCall(_event_publish, request);
  }
  export function pluginCall(request: JsonValue): HostResponse {
    return hostCall(_plugin_call, request);
  }
  export function stateGet(request: JsonValue): HostResponse {
    return hostCall(_state_get, request);
  }
  export function stateSet(request: JsonValue): HostResponse {
    return hostCall(_state_set, request);
  }
  export function stateDelete(request: JsonValue): HostResponse {
    return hostCall(_state_delete, request);
  }
  export function stateList(request: JsonValue): HostResponse {
    return hostCall(_state_list, request);
  }
}

// Text from a response field `name`, or from `name_base64` decoded as UTF-8.
function textField(json: JsonValue, name: string): string {
  const text = json.get(name);
  if (text && text.isString()) return text.asString();
  const data = bytesField(json, name);
  return data ? String.UTF8.decode(data.buffer) : "";
}

// Bytes from `name` (UTF-8 text) or `name_base64`; null when neither is there.
function bytesField(json: JsonValue, name: string): Uint8Array | null {
  const text = json.get(name);
  if (text && text.isString()) return Uint8Array.wrap(String.UTF8.encode(text.asString()));
  const b64 = json.get(name + "_base64");
  if (b64 && b64.isString()) return Base64.decode(b64.asString());
  return null;
}

function timeout(request: JsonValue, timeoutMs: i32): JsonValue {
  if (timeoutMs > 0) request.setInt("timeout_ms", timeoutMs);
  return request;
}

// ---- configuration (always available) -----------------------------------------

export namespace config {
  // A configuration value, or null when it is not set.
  export function get(key: string): JsonValue | null {
    const r = hostCall(_config_get, Json.obj().setString("key", key));
    if (!r.ok) return null;
    const value = r.json.get("value");
    return value && !value.isNull() ? value : null;
  }

  // A configuration string; `fallback` when it is not set or not a string.
  export function getString(key: string, fallback: string = ""): string {
    const value = get(key);
    return value ? value.asString(fallback) : fallback;
  }

  // The whole configuration object.
  export function all(): JsonValue {
    const r = hostCall(_config_get, Json.obj());
    const value = r.json.get("value");
    return value && value.isObject() ? value : Json.obj();
  }
}

// ---- HTTP (capability `network`) ----------------------------------------------

export class HttpResponse extends HostResponse {
  get status(): i32 {
    return <i32>this.json.getInteger("status");
  }
  get reason(): string {
    return this.json.getString("reason");
  }
  // The final URL, after redirects.
  get url(): string {
    return this.json.getString("url");
  }
  // [[name, value], ...] as the server sent them.
  get headers(): JsonValue {
    const h = this.json.get("headers");
    return h && h.isArray() ? h : Json.arr();
  }
  // Is the status 2xx?
  get success(): bool {
    const s = this.status;
    return this.ok && s >= 200 && s < 300;
  }
  // The body as text (binary bodies decoded as UTF-8).
  get body(): string {
    return textField(this.json, "body");
  }
  // The body's bytes.
  bodyBytes(): Uint8Array {
    const data = bytesField(this.json, "body");
    return data ? data : new Uint8Array(0);
  }
  // The body parsed as JSON, or null.
  bodyJson(): JsonValue | null {
    return Json.parse(this.body);
  }
  // The first header called `name` (any case), or null.
  header(name: string): string | null {
    const headers = this.headers;
    const wanted = name.toLowerCase();
    for (let i = 0; i < headers.length; i++) {
      const pair = headers.at(i)!;
      const key = pair.at(0);
      const value = pair.at(1);
      if (key && value && key.asString().toLowerCase() == wanted) return value.asString();
    }
    return null;
  }
}

export namespace http {
  // Send an HTTP request. `headers` is a JSON object {name: value} (or null);
  // `body` is text (or null for none). Redirects are followed unless told not.
  export function request(
    method: string,
    url: string,
    body: string | null = null,
    headers: JsonValue | null = null,
    timeoutMs: i32 = 0,
    followRedirects: bool = true,
  ): HttpResponse {
    const req = Json.obj().setString("method", method).setString("url", url);
    if (headers != null) req.set("headers", headers);
    if (body != null) req.setString("body", body);
    if (!followRedirects) req.setBool("follow_redirects", false);
    return send(timeout(req, timeoutMs));
  }

  // The same with a binary body.
  export function requestBytes(
    method: string,
    url: string,
    body: Uint8Array,
    headers: JsonValue | null = null,
    timeoutMs: i32 = 0,
  ): HttpResponse {
    const req = Json.obj().setString("method", method).setString("url", url);
    if (headers != null) req.set("headers", headers);
    req.setString("body_base64", Base64.encode(body));
    return send(timeout(req, timeoutMs));
  }

  // GET `url`.
  export function get(url: string): HttpResponse {
    return send(Json.obj().setString("method", "GET").setString("url", url));
  }

  // Send JSON text with `method`; Content-Type: application/json is added
  // unless `headers` names a Content-Type.
  export function sendJson(
    method: string,
    url: string,
    body: string,
    headers: JsonValue | null = null,
    timeoutMs: i32 = 0,
  ): HttpResponse {
    const all = Json.obj();
    let typed = false;
    if (headers != null && headers.isObject()) {
      const keys = headers.keys();
      for (let i = 0; i < keys.length; i++) {
        all.set(keys[i], headers.get(keys[i])!);
        typed = typed || keys[i].toLowerCase() == "content-type";
      }
    }
    if (!typed) all.setString("Content-Type", "application/json");
    return request(method, url, body, all, timeoutMs);
  }

  // POST a JSON value.
  export function postJson(url: string, body: JsonValue, headers: JsonValue | null = null): HttpResponse {
    return sendJson("POST", url, body.toString(), headers);
  }

  function send(req: JsonValue): HttpResponse {
    const result = new HttpResponse();
    result._fill(hostCall(_http_request, req));
    return result;
  }
}

// ---- WebSocket (capability `network`) -----------------------------------------

// What ws.recv got: a text or binary message, a timeout, or the close.
export class WsMessage extends HostResponse {
  get isText(): bool {
    return this.json.has("text");
  }
  get isBinary(): bool {
    return this.json.has("data_base64");
  }
  get timedOut(): bool {
    return this.json.getBool("timeout");
  }
  get closed(): bool {
    return this.json.getBool("closed");
  }
  // The close code and reason, when closed.
  get code(): i32 {
    return <i32>this.json.getInteger("code");
  }
  get reason(): string {
    return this.json.getString("reason");
  }
  get text(): string {
    return this.json.getString("text");
  }
  data(): Uint8Array {
    const d = bytesField(this.json, "data");
    return d ? d : new Uint8Array(0);
  }
}

export class WsConnection extends HostResponse {
  // The connection's id (keep it in a global to use it in later calls).
  get id(): i32 {
    return <i32>this.json.getInteger("id", -1);
  }
  get subprotocol(): string {
    return this.json.getString("subprotocol");
  }
}

export namespace ws {
  export function connect(
    url: string,
    subprotocols: Array<string> | null = null,
    headers: JsonValue | null = null,
    timeoutMs: i32 = 0,
  ): WsConnection {
    const req = Json.obj().setString("url", url);
    if (subprotocols != null) req.set("subprotocols", Json.strings(subprotocols));
    if (headers != null) req.set("headers", headers);
    const result = new WsConnection();
    result._fill(hostCall(_ws_connect, timeout(req, timeoutMs)));
    return result;
  }

  export function send(id: i32, text: string): HostResponse {
    return hostCall(_ws_send, Json.obj().setInt("id", id).setString("text", text));
  }

  export function sendBytes(id: i32, data: Uint8Array): HostResponse {
    const req = Json.obj().setInt("id", id).setString("data_base64", Base64.encode(data));
    return hostCall(_ws_send, req);
  }

  // The next message, waiting at most `timeoutMs` (0: the host's default).
  export function recv(id: i32, timeoutMs: i32 = 0): WsMessage {
    const result = new WsMessage();
    result._fill(hostCall(_ws_recv, timeout(Json.obj().setInt("id", id), timeoutMs)));
    return result;
  }

  export function close(id: i32): HostResponse {
    return hostCall(_ws_close, Json.obj().setInt("id", id));
  }
}

// ---- processes (capability `process`) -----------------------------------------

export class ProcessResult extends HostResponse {
  get exitCode(): i32 {
    return <i32>this.json.getInteger("exit_code", -1);
  }
  get stdout(): string {
    return textField(this.json, "stdout");
  }
  get stderr(): string {
    return textField(this.json, "stderr");
  }
  // Was the output cut at the host's size limit?
  get truncated(): bool {
    return this.json.getBool("truncated");
  }
}

export namespace subprocess {
  // Run a program (no shell: each argument is passed as is).
  export function run(argv: Array<string>, stdin: string = "", timeoutMs: i32 = 0): ProcessResult {
    const req = Json.obj().set("argv", Json.strings(argv));
    if (stdin.length > 0) req.setString("stdin", stdin);
    const result = new ProcessResult();
    result._fill(hostCall(_process_run, timeout(req, timeoutMs)));
    return result;
  }
}

// ---- key-value state (capability `kv`) ----------------------------------------

export class KvValue extends HostResponse {
  // Is the key set?
  get found(): bool {
    const v = this.json.get("value");
    return (v != null && !v.isNull()) || this.json.has("value_base64");
  }
  // The value as text ("" when not found).
  get value(): string {
    return textField(this.json, "value");
  }
  bytes(): Uint8Array {
    const d = bytesField(this.json, "value");
    return d ? d : new Uint8Array(0);
  }
}

export class KvKeys extends HostResponse {
  get keys(): Array<string> {
    const out = new Array<string>();
    const list = this.json.get("keys");
    if (list) {
      for (let i = 0; i < list.length; i++) out.push(list.at(i)!.asString());
    }
    return out;
  }
}

export class KvDeleted extends HostResponse {
  // Was the key there?
  get deleted(): bool {
    return this.json.getBool("deleted");
  }
}

export namespace kv {
  export function get(key: string): KvValue {
    const result = new KvValue();
    result._fill(hostCall(_kv_get, Json.obj().setString("key", key)));
    return result;
  }

  export function set(key: string, value: string): HostResponse {
    return hostCall(_kv_set, Json.obj().setString("key", key).setString("value", value));
  }

  export function setBytes(key: string, value: Uint8Array): HostResponse {
    const req = Json.obj().setString("key", key).setString("value_base64", Base64.encode(value));
    return hostCall(_kv_set, req);
  }

  // Delete a key (`delete` is a reserved word); `.deleted` says whether it was there.
  export function remove(key: string): KvDeleted {
    const result = new KvDeleted();
    result._fill(hostCall(_kv_delete, Json.obj().setString("key", key)));
    return result;
  }

  export function list(prefix: string = ""): KvKeys {
    const result = new KvKeys();
    result._fill(hostCall(_kv_list, Json.obj().setString("prefix", prefix)));
    return result;
  }
}

// ---- events (capability `events:publish:PATTERN`) ------------------------------

export namespace events {
  // Publish `payload` on `topic`; `.json.getInteger("delivered")` is how many
  // subscribers it was queued for. A loop past the hop limit: error kind "loop".
  export function publish(topic: string, payload: JsonValue): HostResponse {
    return hostCall(_event_publish, Json.obj().setString("topic", topic).set("payload", payload));
  }
}

// ---- other plugins (capability `plugins:NAME[:ACTION]`) ------------------------

export class PluginOutput extends HostResponse {
  // The callee's output as text.
  get output(): string {
    return textField(this.json, "output");
  }
}

export namespace plugins {
  // Run another plugin's action; a cycle or a chain too deep: error kind "cycle" or "depth".
  export function call(plugin: string, action: string, params: JsonValue): PluginOutput {
    const result = new PluginOutput();
    const req = Json.obj().setString("plugin", plugin).setString("action", action);
    result._fill(hostCall(_plugin_call, req.set("params", params)));
    return result;
  }
}

// ---- shared state (capability `state:NAMESPACE[:ro]`) --------------------------

export class StateValue extends KvValue {
  // The value's version (0 when absent): pass it to state.set to swap only if unchanged.
  get version(): i64 {
    return this.json.getInteger("version");
  }
}

export class StateWritten extends HostResponse {
  // Was the value stored (false: its version had changed)?
  get stored(): bool {
    return this.json.getBool("ok");
  }
  get version(): i64 {
    return this.json.getInteger("version");
  }
}

export namespace state {
  export function get(namespace: string, key: string): StateValue {
    const result = new StateValue();
    result._fill(
      hostCall(_state_get, Json.obj().setString("namespace", namespace).setString("key", key)),
    );
    return result;
  }

  // Store `value`; with `version` >= 0, only if the key still has it
  // (compare-and-swap; 0: only if absent). -1 stores unconditionally.
  export function set(namespace: string, key: string, value: string, version: i64 = -1): StateWritten {
    const req = Json.obj()
      .setString("namespace", namespace)
      .setString("key", key)
      .setString("value", value);
    if (version >= 0) req.setInt("version", version);
    const result = new StateWritten();
    result._fill(hostCall(_state_set, req));
    return result;
  }

  export function remove(namespace: string, key: string, version: i64 = -1): KvDeleted {
    const req = Json.obj().setString("namespace", namespace).setString("key", key);
    if (version >= 0) req.setInt("version", version);
    const result = new KvDeleted();
    result._fill(hostCall(_state_delete, req));
    return result;
  }

  export function list(namespace: string, prefix: string = ""): KvKeys {
    const result = new KvKeys();
    result._fill(
      hostCall(_state_list, Json.obj().setString("namespace", namespace).setString("prefix", prefix)),
    );
    return result;
  }
}

// ---- the ABI (abi.ts exports these; plugins do not call them) -----------------

export function __wasmdeck_init(): i64 {
  const bytes = Plugin.current._metadataBytes();
  return (<i64>changetype<usize>(bytes) << 32) | <i64>bytes.byteLength;
}

// The state save_state returned, kept alive until the host has read it.
let saved: ArrayBuffer | null = null;

export function __wasmdeck_save_state(): i64 {
  const save = Plugin.current._save;
  const state = save ? save() : new ArrayBuffer(0);
  saved = state;
  return (<i64>changetype<usize>(state) << 32) | <i64>state.byteLength;
}

export function __wasmdeck_restore_state(ptr: usize, len: usize): i32 {
  failed = false;
  const restore = Plugin.current._restore;
  if (restore) {
    const state = new ArrayBuffer(<i32>len);
    memory.copy(changetype<usize>(state), ptr, len);
    restore(state);
  }
  saved = null;
  __collect();
  return failed ? 1 : 0;
}

export function __wasmdeck_execute(ptr: usize, len: usize): i32 {
  failed = false;
  const req = Request.parse(String.UTF8.decodeUnsafe(ptr, len));
  if (!req) {
    error("the request is not valid JSON: " + Json.lastError);
  } else {
    const handler = Plugin.current._handler(req.action);
    if (handler) handler(req);
    else error("unknown action '" + req.action + "'");
  }
  const code = failed ? 1 : 0;
  // With the minimal runtime nothing collects garbage on its own: this is
  // the safe point, where every object still in use hangs off a global.
  __collect();
  return code;
}

let aborting = false;

// `abort` (failed assertions, bounds checks, out of memory): logged at error
// level, then the call traps. The build routes AssemblyScript's abort here
// (--use abort=...), so the module imports no `env.abort`.
export function __wasmdeck_abort(
  message: string | null = null,
  fileName: string | null = null,
  line: u32 = 0,
  column: u32 = 0,
): void {
  if (!aborting) {
    aborting = true; // building the message may itself abort (out of memory)
    let text = "abort: " + (message != null ? message : "(no message)");
    if (fileName != null) text += " in " + fileName + ":" + line.toString() + ":" + column.toString();
    log.error(text);
  }
  unreachable();
}

// `trace(...)` goes to the plugin's log at debug level.
export function __wasmdeck_trace(
  message: string,
  n: i32 = 0,
  a0: f64 = 0,
  a1: f64 = 0,
  a2: f64 = 0,
  a3: f64 = 0,
  a4: f64 = 0,
): void {
  let text = message;
  if (n > 0) text += " " + a0.toString();
  if (n > 1) text += ", " + a1.toString();
  if (n > 2) text += ", " + a2.toString();
  if (n > 3) text += ", " + a3.toString();
  if (n > 4) text += ", " + a4.toString();
  log.debug(text);
}
