//! {{name}}: a wasmdeck trigger plugin in Zig. Build it with `wasmdeck build`.
//! The host calls "tick" every second (docs/teamwork.md, "Trigger plugins");
//! each poll publishes {{name}}.tick {"n": N}, which a deck binds with
//! `trigger = { kind = "event", topic = "{{name}}.tick" }`. Grant it
//! `events:publish:{{name}}.*`.
const wd = @import("wasmdeck");

pub const metadata: wd.Metadata = .{
    .name = "{{name}}",
    .version = "0.1.0",
    .description = "A trigger plugin: publishes {{name}}.tick every second",
    // Adds "type": "trigger"; checked when the plugin compiles.
    .poll = .{ .action = "tick", .interval_ms = 1000 },
    .capabilities = &.{"events"},
    .actions = &.{.{ .name = "tick", .description = "The poll: publish {{name}}.tick" }},
};

var ticks: i64 = 0;

pub fn execute(_: *const wd.Request) !void {
    // The host only sends actions the metadata declares.
    _ = try wd.eventPublish("{{name}}.tick", .{ .n = ticks + 1 });
    ticks += 1;
    try wd.outputJson(.{ .n = ticks });
}
