//! {{name}}: a wasmdeck plugin in Zig, with the parts most plugins grow:
//!
//! - several actions, routed by name (a `switch` over an enum), each with a
//!   JSON Schema for its params (checked here before use);
//! - configuration given by the user, read through the host (`greeting`);
//! - logging to the host's log, and errors shown to the user (`wd.fail`);
//! - state kept on the instance between calls (across a live reload too with
//!   `pub fn saveState`/`restoreState`: docs/reload.md);
//! - test cases in tests.json: `wasmdeck test` builds and runs them.
//!
//! To use a host API behind a capability (HTTP, WebSocket, processes,
//! key-value state), declare it in `.capabilities` and call its wd.*
//! function (wd.httpGet, wd.wsConnect, wd.processRun, wd.kvGet, ...); the
//! user grants it with --grant.
const std = @import("std");
const wd = @import("wasmdeck");

pub const metadata: wd.Metadata = .{
    .name = "{{name}}",
    .version = "0.1.0",
    .description = "Greets people and counts how often it did",
    .author = "you",
    .license = "MIT",
    .actions = &.{
        .{
            .name = "greet",
            .description = "Greet someone, with the greeting from the configuration",
            .params =
            \\{"type":"object","properties":{"who":{"type":"string"}},"required":["who"]}
            ,
        },
        .{ .name = "stats", .description = "How many greetings this instance has made" },
    },
};

/// The actions, by the names the metadata declares.
const Action = enum { greet, stats };

/// Instance state: it lives as long as the plugin instance (across calls).
var greeted: u32 = 0;

pub fn execute(req: *const wd.Request) !void {
    const action = req.actionAs(Action) orelse
        return wd.fail("unknown action '{s}'", .{req.action});
    switch (action) {
        .greet => try greet(req),
        .stats => try wd.outputJson(.{ .greeted = greeted }),
    }
}

fn greet(req: *const wd.Request) !void {
    // The schema says `who` is a string; check it anyway, and that it is not empty.
    const who = req.paramString("who") orelse "";
    if (who.len == 0) return wd.fail("greet needs a non-empty 'who'", .{});

    // Configuration comes from the user (`config` in tests.json, or the host's settings).
    const pattern = try wd.configString("greeting") orelse "Hello, $who!";
    // wd.allocator() is memory for this call; the kit frees it when execute returns.
    const text = try std.mem.replaceOwned(u8, wd.allocator(), pattern, "$who", who);

    greeted += 1;
    if (req.context.velocity) |velocity| {
        wd.log(.info, "greeted {s} (velocity {d})", .{ who, velocity });
    } else {
        wd.log(.info, "greeted {s} (velocity none)", .{who});
    }
    try wd.outputJson(.{ .text = text, .greeted = greeted });
}
