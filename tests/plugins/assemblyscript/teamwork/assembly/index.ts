// Events, plugin calls and shared state through the AssemblyScript kit: the
// teamwork contract of tests/test_teamwork.py.
import {
  HostResponse,
  Json,
  JsonValue,
  Plugin,
  Request,
  config,
  error,
  events,
  host,
  output,
  outputJson,
  plugins,
  state,
} from "wasmdeck";

const seen = Json.arr();
let spins: i64 = 0;

Plugin.define("as-teamwork", "0.1.0", "Events, plugin calls and shared state through the AssemblyScript kit")
  .capability("events")
  .capability("plugins")
  .capability("state")
  .subscribe("*", "react")
  .action("publish", "event_publish with the params as the request", (req: Request): void => answer(host.eventPublish(req.params)))
  .action("call", "plugin_call with the params as the request", call)
  .action("state-get", "state_get with the params", (req: Request): void => answer(host.stateGet(req.params)))
  .action("state-set", "state_set with the params", (req: Request): void => answer(host.stateSet(req.params)))
  .action("state-delete", "state_delete with the params", (req: Request): void => answer(host.stateDelete(req.params)))
  .action("state-list", "state_list with the params", (req: Request): void => answer(host.stateList(req.params)))
  .action("add", "add 1 to a shared counter, times times, by compare-and-swap", add)
  .action("react", "an event: kept, and bounced to config bounce_to", react)
  .action("seen", "the events kept so far", (req: Request): void => outputJson(seen))
  .action("echo", "the params", (req: Request): void => outputJson(req.params))
  .action("spin", "loops until stopped", spin);

// The host's response as the contract outputs it: the answer, or its error.
function answer(response: HostResponse): void {
  const failure = response.error;
  if (failure) {
    const detail = Json.obj().setString("kind", failure.kind).setString("message", failure.message);
    outputJson(Json.obj().set("error", detail));
    return;
  }
  outputJson(response.json);
}

// Through the typed helper (the relay of the other actions uses the raw one).
function call(req: Request): void {
  const params = req.params.get("params");
  const result = plugins.call(
    req.params.getString("plugin", ""),
    req.params.getString("action", ""),
    params ? params : Json.obj(),
  );
  if (!result.ok) return answer(result);
  outputJson(Json.obj().setString("output", result.output));
}

function react(req: Request): void {
  seen.push(req.params);
  const to = config.get("bounce_to");
  if (to && to.isString()) {
    const payload = req.params.get("payload");
    // The loop tests expect the refusal to end the bouncing, not the call.
    events.publish(to.asString(), payload ? payload : Json.nil());
  }
  output("ok");
}

function add(req: Request): void {
  const namespace = req.params.getString("namespace", "");
  const key = req.params.getString("key", "");
  const times = req.params.getInteger("times", 1);
  let done: i64 = 0;
  let retries: i64 = 0;
  let value: i64 = 0;
  while (done < times) {
    const now = state.get(namespace, key);
    if (!now.ok) return error("state_get: " + now.errorMessage);
    value = (now.found ? I64.parseInt(now.value) : 0) + 1;
    const written = state.set(namespace, key, value.toString(), now.version);
    if (!written.ok) return error("state_set: " + written.errorMessage);
    if (written.stored) done++;
    else retries++;
  }
  outputJson(Json.obj().setInt("value", value).setInt("retries", retries));
}

function spin(req: Request): void {
  while (true) spins++;
}
