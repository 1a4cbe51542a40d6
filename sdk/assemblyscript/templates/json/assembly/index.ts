// {{name}}: a wasmdeck plugin in AssemblyScript that takes JSON params and returns JSON.
//
//   wasmdeck run build/{{name}}.wasm scale --params '{"max": 254}' --context '{"velocity": 100}'
//   -> {"value":200,"velocity":100}
import { Json, Plugin, Request, error, outputJson } from "wasmdeck";

Plugin.define("{{name}}", "0.1.0", "Scales the trigger's velocity")
  .action("scale", "Scale the velocity (0-127) to 0..max", scale,
    `{"type":"object","properties":{"max":{"type":"integer","minimum":1}},"additionalProperties":false}`);

function scale(req: Request): void {
  let max: i64 = 127;
  const given = req.params.get("max");
  if (given) {
    if (!given.isInteger() || given.asInteger() < 1) {
      return error(`max must be a positive integer, not ${given.toString()}`);
    }
    max = given.asInteger();
  }
  const velocity: i64 = req.velocityOr(127);
  const value = (2 * velocity * max + 127) / 254; // velocity * max / 127, rounded
  outputJson(Json.obj().setInt("value", value).setInt("velocity", velocity));
}
