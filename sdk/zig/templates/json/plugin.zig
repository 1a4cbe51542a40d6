//! {{name}}: a wasmdeck plugin in Zig that takes JSON params and returns JSON.
//!
//!   wasmdeck run build/{{name}}.wasm scale --params '{"max": 254}' --context '{"velocity": 100}'
//!   -> {"value":200,"velocity":100}
const wd = @import("wasmdeck");

pub const metadata: wd.Metadata = .{
    .name = "{{name}}",
    .version = "0.1.0",
    .description = "Scales the trigger's velocity",
    .actions = &.{.{
        .name = "scale",
        .description = "Scale the velocity (0-127) to 0..max",
        .params =
        \\{"type":"object","properties":{"max":{"type":"integer","minimum":1}},"additionalProperties":false}
        ,
    }},
};

pub fn execute(req: *const wd.Request) !void {
    // max is optional; when given it must be a positive integer.
    var max: i64 = 127;
    if (req.param("max")) |value| {
        max = wd.int(value) orelse 0;
        if (max < 1) return wd.fail("max must be a positive integer, not {f}", .{wd.fmtJson(value)});
    }
    const velocity = req.context.velocity orelse 127;
    // velocity * max / 127, rounded
    try wd.outputJson(.{ .value = @divTrunc(2 * velocity * max + 127, 254), .velocity = velocity });
}
