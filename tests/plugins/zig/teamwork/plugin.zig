//! zig-teamwork: events, plugin calls and shared state through the Zig kit:
//! the teamwork contract of tests/test_teamwork.py.
const std = @import("std");
const wd = @import("wasmdeck");

pub const metadata: wd.Metadata = .{
    .name = "zig-teamwork",
    .version = "0.1.0",
    .description = "Events, plugin calls and shared state through the Zig kit",
    .actions = &.{
        .{ .name = "publish", .description = "event_publish with the params as the request" },
        .{ .name = "call", .description = "plugin_call with the params as the request" },
        .{ .name = "state-get", .description = "state_get with the params" },
        .{ .name = "state-set", .description = "state_set with the params" },
        .{ .name = "state-delete", .description = "state_delete with the params" },
        .{ .name = "state-list", .description = "state_list with the params" },
        .{ .name = "add", .description = "add 1 to a shared counter, times times, by compare-and-swap" },
        .{ .name = "react", .description = "an event: kept, and bounced to config bounce_to" },
        .{ .name = "seen", .description = "the events kept so far" },
        .{ .name = "echo", .description = "the params" },
        .{ .name = "spin", .description = "loops until stopped" },
    },
    .capabilities = &.{ "events", "plugins", "state" },
    .subscribe = &.{.{ .topic = "*", .action = "react" }},
};

const Action = enum {
    publish,
    call,
    @"state-get",
    @"state-set",
    @"state-delete",
    @"state-list",
    add,
    react,
    seen,
    echo,
    spin,
};

// The events kept, as JSON text joined by commas; kept across calls, so not
// in the per-call allocator.
var seen: std.ArrayListUnmanaged(u8) = .empty;

fn paramsText(req: *const wd.Request) ![]const u8 {
    return std.json.Stringify.valueAlloc(wd.allocator(), std.json.Value{ .object = req.params }, .{});
}

/// Send the params as the request to `f`; output the host's response, or its error.
fn relay(comptime f: wd.HostFunction, req: *const wd.Request) !void {
    const response = wd.callJson(f, try paramsText(req)) catch |err| {
        const message = if (wd.lastError()) |failure| failure.message else "";
        return wd.outputJson(.{ .@"error" = .{ .kind = wd.errorKind(err), .message = message } });
    };
    try wd.outputJson(std.json.Value{ .object = response });
}

fn add(req: *const wd.Request) !void {
    const namespace = req.paramString("namespace") orelse return wd.fail("'namespace' must be a string", .{});
    const key = req.paramString("key") orelse return wd.fail("'key' must be a string", .{});
    const times = req.paramInt("times") orelse 1;
    var done: i64 = 0;
    var retries: i64 = 0;
    var value: i64 = 0;
    while (done < times) {
        const now = try wd.stateGet(namespace, key);
        value = (if (now.value) |text| std.fmt.parseInt(i64, text, 10) catch 0 else 0) + 1;
        const text = try std.fmt.allocPrint(wd.allocator(), "{d}", .{value});
        const result = try wd.stateSet(namespace, key, text, now.version);
        if (result.stored) done += 1 else retries += 1;
    }
    try wd.outputJson(.{ .value = value, .retries = retries });
}

pub fn execute(req: *const wd.Request) !void {
    const action = req.actionAs(Action) orelse return wd.fail("unknown action '{s}'", .{req.action});
    switch (action) {
        .publish => try relay(.event_publish, req),
        .call => try relay(.plugin_call, req),
        .@"state-get" => try relay(.state_get, req),
        .@"state-set" => try relay(.state_set, req),
        .@"state-delete" => try relay(.state_delete, req),
        .@"state-list" => try relay(.state_list, req),
        .add => try add(req),
        .react => {
            if (seen.items.len > 0) try seen.append(wd.gpa, ',');
            try seen.appendSlice(wd.gpa, try paramsText(req));
            if (try wd.configString("bounce_to")) |to| {
                // The loop tests expect the refusal to end the bouncing, not the call.
                _ = wd.eventPublish(to, req.param("payload") orelse std.json.Value.null) catch {};
            }
            wd.output("ok");
        },
        .seen => try wd.print("[{s}]", .{seen.items}),
        .echo => try wd.outputJson(std.json.Value{ .object = req.params }),
        .spin => {
            var i: u64 = 0;
            while (true) {
                i +%= 1;
                std.mem.doNotOptimizeAway(i);
            }
        },
    }
}

