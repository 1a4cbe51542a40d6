// {{name}}: a wasmdeck plugin in AssemblyScript, with the parts most plugins grow:
//
// - several actions, routed by name to their handler, each with a JSON Schema
//   for its params (the handler checks its params before use);
// - configuration given by the user, read through the host (`greeting`);
// - logging to the host's log, and errors shown to the user (error());
// - state kept in globals: they live as long as the plugin's instance (across
//   a live reload too with Plugin.state(save, restore): docs/reload.md);
// - test cases in tests.json: `wasmdeck test` builds the plugin and runs them.
//
// To use a host API behind a capability (http, ws, subprocess, kv), declare it
// with .capability("network") (or "process", "kv") and call its helper from
// "wasmdeck"; the user grants it with --grant.
import { Json, Plugin, Request, config, error, log, outputJson } from "wasmdeck";

// Instance state: kept between calls while the plugin is loaded. (Declare
// globals above Plugin.define: AssemblyScript initializes them in order.)
let greeted: i64 = 0;

Plugin.define("{{name}}", "0.1.0", "Greets people and counts how often it did")
  .author("you")
  .license("MIT")
  .action("greet", "Greet someone, with the greeting from the configuration", greet,
    `{"type":"object","properties":{"who":{"type":"string"}},"required":["who"]}`)
  .action("stats", "How many greetings this instance has made", stats);

function greet(req: Request): void {
  const who = req.params.getString("who"); // "" when absent or not a string
  if (who.length == 0) return error("greet needs a non-empty 'who'");
  const greeting = config.getString("greeting", "Hello, $who!");
  greeted++;
  const velocity = req.hasVelocity ? req.velocity.toString() : "none";
  log.info(`greeted ${who} (velocity ${velocity})`);
  outputJson(
    Json.obj().setString("text", greeting.replaceAll("$who", who)).setInt("greeted", greeted),
  );
}

function stats(req: Request): void {
  outputJson(Json.obj().setInt("greeted", greeted));
}
