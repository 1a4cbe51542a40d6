// {{name}}: a wasmdeck trigger plugin in AssemblyScript. Build it with `wasmdeck build`.
// The host calls "tick" every second (docs/teamwork.md, "Trigger plugins");
// each poll publishes {{name}}.tick {"n": N}, which a deck binds with
// trigger = { kind = "event", topic = "{{name}}.tick" }. Grant it
// events:publish:{{name}}.*
import { Json, Plugin, Request, error, events, outputJson } from "wasmdeck";

let ticks: i64 = 0;

Plugin.define("{{name}}", "0.1.0", "A trigger plugin: publishes {{name}}.tick every second")
  .capability("events")
  .poll("tick", 1000) // adds "type": "trigger"
  .action("tick", "The poll: publish {{name}}.tick", tick);

function tick(req: Request): void {
  const published = events.publish("{{name}}.tick", Json.obj().setInt("n", ticks + 1));
  if (!published.ok) return error(published.errorKind + ": " + published.errorMessage);
  ticks++;
  outputJson(Json.obj().setInt("n", ticks));
}
