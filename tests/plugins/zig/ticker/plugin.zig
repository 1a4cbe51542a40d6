//! zig-ticker: a trigger plugin through the Zig kit (`.poll` in the metadata).
//! The host polls "tick" every 20 ms; each poll publishes ticker.tick with the
//! poll's number. "behave" sets what the next polls do (ok, fail, spin), for
//! the tests of failing and slow polls (tests/test_trigger_plugins.py).
const std = @import("std");
const wd = @import("wasmdeck");

pub const metadata: wd.Metadata = .{
    .name = "zig-ticker",
    .version = "0.1.0",
    .description = "A trigger plugin: each poll publishes ticker.tick",
    .poll = .{ .action = "tick", .interval_ms = 20 },
    .capabilities = &.{"events"},
    .actions = &.{
        .{ .name = "tick", .description = "the poll: publish ticker.tick {n}" },
        .{ .name = "behave", .description = "what the next polls do: {\"as\": ok|fail|spin}" },
        .{ .name = "ticks", .description = "how many polls published" },
    },
};

const Action = enum { tick, behave, ticks };
const Behaviour = enum { ok, fail, spin };

var ticks: i64 = 0;
var behaviour: Behaviour = .ok;

fn tick() !void {
    switch (behaviour) {
        .ok => {},
        .fail => return wd.fail("failing on purpose", .{}),
        .spin => {
            var i: u64 = 0;
            while (true) {
                i +%= 1;
                std.mem.doNotOptimizeAway(i);
            }
        },
    }
    _ = wd.eventPublish("ticker.tick", .{ .n = ticks + 1 }) catch |err| {
        const message = if (wd.lastError()) |failure| failure.message else "";
        return wd.fail("event_publish: {s}: {s}", .{ wd.errorKind(err), message });
    };
    ticks += 1;
    try wd.outputJson(.{ .n = ticks });
}

pub fn execute(req: *const wd.Request) !void {
    const action = req.actionAs(Action) orelse return wd.fail("unknown action '{s}'", .{req.action});
    switch (action) {
        .tick => try tick(),
        .behave => {
            const name = req.paramString("as") orelse return wd.fail("'as' must be a string", .{});
            behaviour = std.meta.stringToEnum(Behaviour, name) orelse
                return wd.fail("'as' must be ok, fail or spin, not '{s}'", .{name});
            wd.output("ok");
        },
        .ticks => try wd.outputJson(.{ .n = ticks }),
    }
}
