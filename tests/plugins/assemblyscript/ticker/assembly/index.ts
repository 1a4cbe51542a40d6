// as-ticker: a trigger plugin through the AssemblyScript kit (Plugin.poll).
// The host polls "tick" every 20 ms; each poll publishes ticker.tick with the
// poll's number. "behave" sets what the next polls do (ok, fail, spin), for
// the tests of failing and slow polls (tests/test_trigger_plugins.py).
import { Json, Plugin, Request, error, events, output, outputJson } from "wasmdeck";

let ticks: i64 = 0;
let behaviour = "ok";
let spins: i64 = 0;

Plugin.define("as-ticker", "0.1.0", "A trigger plugin: each poll publishes ticker.tick")
  .capability("events")
  .poll("tick", 20)
  .action("tick", "the poll: publish ticker.tick {n}", tick)
  .action("behave", 'what the next polls do: {"as": ok|fail|spin}', behave)
  .action("ticks", "how many polls published", (req: Request): void => {
    outputJson(Json.obj().setInt("n", ticks));
  });

function tick(req: Request): void {
  if (behaviour == "fail") return error("failing on purpose");
  while (behaviour == "spin") spins++;
  const published = events.publish("ticker.tick", Json.obj().setInt("n", ticks + 1));
  if (!published.ok) return error("event_publish: " + published.errorKind + ": " + published.errorMessage);
  ticks++;
  outputJson(Json.obj().setInt("n", ticks));
}

function behave(req: Request): void {
  const as = req.params.getString("as", "");
  if (as != "ok" && as != "fail" && as != "spin") return error('"as" must be ok, fail or spin');
  behaviour = as;
  output("ok");
}
