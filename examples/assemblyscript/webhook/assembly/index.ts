// webhook: posts a pad press to a web hook (IFTTT, Zapier, Home Assistant, n8n...).
//
// Configuration (given by the user):
//   url      where to send; "{event}" in it becomes the request's event name,
//            e.g. https://maker.ifttt.com/trigger/{event}/json/with/key/KEY
//   headers  optional extra headers, e.g. {"Authorization": "Bearer TOKEN"}
//   method   optional, POST by default
//
// Actions:
//   post {"event"?: "...", ...}  sends {"action": "post", "params": {...},
//                                "trigger": {"velocity", "mode", "timestamp"}}
//                                (plus "event" when the params name one)
//   send {"body": <any JSON>}    sends the body as it is
// Both answer {"status": N}; a status outside 2xx is an error, with the body's start.
//
//   wasmdeck build
//   wasmdeck run build/webhook.wasm post --params '{"event": "scene"}' \
//       --grant network:maker.ifttt.com --config '{"url": "https://..."}'
import { Json, JsonValue, Plugin, Request, config, error, http, outputJson } from "wasmdeck";

// How much of a failed answer's body goes into the error message.
const EXCERPT = 200;

Plugin.define("webhook", "1.0.0", "Posts triggers as JSON to a web hook (IFTTT, Zapier, ...)")
  .author("wasmdeck")
  .license("MIT")
  .capability("network")
  .action("post", "Post the action, its params and the trigger to the hook", post,
    `{"type":"object","properties":{"event":{"type":"string","minLength":1}}}`)
  .action("send", "Send a JSON body of your own to the hook", send,
    `{"type":"object","properties":{"body":{}},"required":["body"]}`);

function post(req: Request): void {
  const body = Json.obj().setString("action", req.action).set("params", req.params);
  const trigger = Json.obj()
    .set("velocity", req.hasVelocity ? Json.int(req.velocity) : Json.nil())
    .set("mode", req.hasMode ? Json.int(req.mode) : Json.nil())
    .setInt("timestamp", req.timestamp);
  body.set("trigger", trigger);
  const event = req.params.get("event");
  if (event && !event.isString()) return error("'event' must be a string");
  if (event) body.setString("event", event.asString());
  deliver(event ? event.asString() : "", body.toString());
}

function send(req: Request): void {
  const body = req.params.get("body");
  if (!body) return error("send needs a 'body' (any JSON value)");
  deliver(req.params.getString("event"), body.toString());
}

function deliver(event: string, body: string): void {
  let url = config.getString("url");
  if (url.length == 0) {
    return error("no webhook URL: set the plugin's 'url' configuration, e.g. https://hooks.example.com/...");
  }
  if (url.includes("{event}")) {
    if (event.length == 0) return error("the webhook URL has {event} in it: give an 'event' param");
    url = url.replaceAll("{event}", encodeURIComponent(event));
  }
  const method = config.getString("method", "POST").toUpperCase();
  const headers = config.get("headers");
  if (headers && !headers.isObject()) {
    return error("the 'headers' configuration must be an object of header names to values");
  }
  const answer = http.sendJson(method, url, body, headers);
  if (!answer.ok) return error(`could not deliver to ${url}: ${answer.error!.toString()}`);
  const status = answer.status;
  if (status < 200 || status > 299) {
    let text = answer.body;
    if (text.length > EXCERPT) text = text.substring(0, EXCERPT) + "...";
    return error(`the webhook answered ${status} ${answer.reason}: ${text}`);
  }
  outputJson(Json.obj().setInt("status", status));
}
