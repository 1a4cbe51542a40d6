// Every host API of the AssemblyScript kit, one action each: the hostcalls contract of
// tests/test_pdk_hostcalls.py (tests/test_pdk_assemblyscript.py tests what only AssemblyScript has).
import {
  Base64,
  Json,
  JsonValue,
  Plugin,
  Request,
  config,
  error,
  http,
  kv,
  log,
  output,
  outputJson,
  subprocess,
  ws,
} from "wasmdeck";

let calls: i32 = 0;

Plugin.define("as-hostcalls", "0.1.0", "Exercises the AssemblyScript kit's host calls")
  .capability("kv")
  .capability("network")
  .capability("process")
  .action("kv", "kv_set (when a value is given) then kv_get", kvRoundTrip,
    `{"type":"object","properties":{"key":{"type":"string"},"value":{"type":"string"}}}`)
  .action("kv-more", "kv_set, kv_list, kv_delete, kv_get of binary data", kvMore)
  .action("config", "Output a config value as text", configValue)
  .action("http-get", "GET a URL; output status and body", httpGet)
  .action("http-post", "POST JSON to a URL; output the status and reply", httpPost)
  .action("log", "Log a message at warning level", logMessage)
  .action("denied", "GET without a grant; output the error kind", denied)
  .action("fail-host", "Report a failed host call as the error", failHost)
  .action("process", "Run a program; output its result", runProcess)
  .action("ws-echo", "Connect, send, receive, close", wsEcho)
  .action("context", "Output the request's context as the kit read it", context)
  .action("json", "Parse the text param and write it back (or the parse error)", jsonEcho)
  .action("base64", "Encode the text param's bytes and decode them again", base64)
  .action("count", "Count calls: state lives in globals", count)
  .action("garbage", "Allocate about n bytes that are garbage after the call", garbage)
  .action("abort", "Fail an assertion: logged, then the call traps", failAssert);

function need(req: Request, name: string): string | null {
  const v = req.params.get(name);
  if (!v || !v.isString()) {
    error(`'${name}' must be a string`);
    return null;
  }
  return v.asString();
}

function kvRoundTrip(req: Request): void {
  const key = need(req, "key");
  if (key == null) return;
  const given = req.params.get("value");
  if (given && !given.isNull()) {
    const value = need(req, "value");
    if (value == null) return;
    const set = kv.set(key, value);
    if (!set.ok) return error(set.error!.toString());
  }
  const got = kv.get(key);
  if (!got.ok) return error(got.error!.toString());
  output(got.found ? got.value : "(none)");
}

function kvMore(req: Request): void {
  const binary = new Uint8Array(4);
  binary[0] = 0;
  binary[1] = 0xff;
  binary[2] = 0xfe;
  binary[3] = 0x78;
  kv.setBytes("bin", binary);
  kv.set("other", "text");
  const back = kv.get("bin").bytes();
  let same = back.length == binary.length;
  for (let i = 0; same && i < back.length; i++) same = back[i] == binary[i];
  const keys = kv.list().keys;
  const prefixed = kv.list("b").keys;
  const deleted = kv.remove("other").deleted;
  const again = kv.remove("other").deleted;
  const gone = !kv.get("other").found;
  outputJson(
    Json.obj()
      .setBool("same", same)
      .set("keys", Json.strings(keys))
      .set("prefixed", Json.strings(prefixed))
      .setBool("deleted", deleted)
      .setBool("again", again)
      .setBool("gone", gone),
  );
}

function configValue(req: Request): void {
  const key = need(req, "key");
  if (key == null) return;
  const value = config.get(key);
  if (!value || value.isNull()) return output("(unset)");
  output(value.isString() ? value.asString() : value.toString());
}

function httpGet(req: Request): void {
  const url = need(req, "url");
  if (url == null) return;
  const response = http.get(url);
  if (!response.ok) return error(response.error!.toString());
  outputJson(Json.obj().setInt("status", response.status).setString("body", response.body));
}

function httpPost(req: Request): void {
  const url = need(req, "url");
  if (url == null) return;
  const headers = Json.obj().setString("X-Test", "assemblyscript");
  const response = http.postJson(url, Json.obj().setBool("on", true), headers);
  if (!response.ok) return error(response.error!.toString());
  const reply = response.bodyJson();
  outputJson(
    Json.obj()
      .setInt("status", response.status)
      .set("reply", reply ? reply : Json.nil())
      .setString("type", response.header("content-type") || "?"),
  );
}

function logMessage(req: Request): void {
  const message = need(req, "message");
  if (message == null) return;
  log.warning(message);
  output("logged");
}

function denied(req: Request): void {
  const response = http.get("http://127.0.0.1:1/");
  output(response.ok ? "allowed?!" : response.errorKind);
}

function failHost(req: Request): void {
  const response = http.get("http://127.0.0.1:1/");
  if (!response.ok) error(response.error!.toString());
}

function runProcess(req: Request): void {
  const argv = req.params.get("argv");
  if (!argv || !argv.isArray()) return error("'argv' must be a list");
  const args = new Array<string>();
  for (let i = 0; i < argv.length; i++) args.push(argv.at(i)!.asString());
  const result = subprocess.run(args);
  if (!result.ok) return error(result.error!.toString());
  outputJson(
    Json.obj()
      .setInt("exit_code", result.exitCode)
      .setString("stdout", result.stdout)
      .setString("stderr", result.stderr)
      .setBool("truncated", result.truncated),
  );
}

function wsEcho(req: Request): void {
  // Send text, then bytes, then "bye" (the echo server closes on it).
  const url = need(req, "url");
  const text = need(req, "text");
  if (url == null || text == null) return;
  const connection = ws.connect(url, ["echo.v1"]);
  if (!connection.ok) return error(connection.error!.toString());
  const id = connection.id;
  ws.send(id, text);
  const echoed = ws.recv(id, 2000);
  const bytes = new Uint8Array(3);
  bytes[0] = 1;
  bytes[1] = 2;
  bytes[2] = 0xff;
  ws.sendBytes(id, bytes);
  const binary = ws.recv(id, 2000);
  ws.send(id, "bye");
  const closed = ws.recv(id, 2000);
  const after = ws.send(id, "more");
  ws.close(id);
  outputJson(
    Json.obj()
      .setString("subprotocol", connection.subprotocol)
      .setString("text", echoed.isText ? echoed.text : "?")
      .setInt("binary", binary.isBinary ? binary.data().length : 0)
      .set("closed", closed.closed ? Json.int(closed.code) : Json.nil())
      .setString("after", after.ok ? "sent" : after.errorKind),
  );
}

function context(req: Request): void {
  outputJson(
    Json.obj()
      .set("velocity", req.hasVelocity ? Json.int(req.velocity) : Json.nil())
      .set("mode", req.hasMode ? Json.int(req.mode) : Json.nil())
      .setInt("timestamp", req.timestamp)
      .set("params", req.params)
      .setString("action", req.action),
  );
}

function jsonEcho(req: Request): void {
  const text = need(req, "text");
  if (text == null) return;
  const parsed = Json.parse(text);
  if (!parsed) return error("invalid: " + Json.lastError);
  outputJson(Json.obj().set("value", parsed).setString("kind", kindName(parsed)));
}

function kindName(v: JsonValue): string {
  if (v.isNull()) return "null";
  if (v.isBool()) return "bool";
  if (v.isInteger()) return "integer";
  if (v.isNumber()) return "number";
  if (v.isString()) return "string";
  if (v.isArray()) return "array";
  return "object";
}

function base64(req: Request): void {
  if (req.params.has("b64")) {
    const data = Base64.decode(req.params.getString("b64"));
    return output(data ? String.UTF8.decode(data.buffer) : "(invalid)");
  }
  const text = need(req, "text");
  if (text == null) return;
  const encoded = Base64.encode(Uint8Array.wrap(String.UTF8.encode(text)));
  const decoded = Base64.decode(encoded);
  const back = decoded ? String.UTF8.decode(decoded.buffer) : "(invalid)";
  outputJson(Json.obj().setString("encoded", encoded).setString("decoded", back));
}

function count(req: Request): void {
  calls++;
  outputJson(Json.obj().setInt("calls", calls));
}

function garbage(req: Request): void {
  const n = <i32>req.params.getInteger("n");
  const parts = new Array<string>();
  for (let made = 0; made < n; made += 2000) parts.push("x".repeat(1000)); // UTF-16: 2000 bytes
  output(parts.join("").length.toString());
}

function failAssert(req: Request): void {
  assert(req.params.has("never"), "the params have no 'never'");
  output("unreachable");
}
