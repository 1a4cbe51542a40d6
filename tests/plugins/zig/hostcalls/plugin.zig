//! zig-hostcalls: every host API the Zig kit wraps, one action each: the
//! hostcalls contract of tests/test_pdk_hostcalls.py, which calls them against
//! the real host (tests/test_pdk_zig.py tests what only Zig has).
const std = @import("std");
const wd = @import("wasmdeck");

pub const metadata: wd.Metadata = .{
    .name = "zig-hostcalls",
    .version = "0.1.0",
    .description = "Calls the host APIs through the Zig kit",
    .actions = &.{
        .{ .name = "kv", .description = "kv_set (when a value is given) then kv_get" },
        .{ .name = "kv-more", .description = "kv_set, kv_list, kv_delete, kv_get of binary data" },
        .{ .name = "config", .description = "Output a config value as text" },
        .{ .name = "http-get", .description = "GET a URL; output status and body" },
        .{ .name = "http-post", .description = "POST JSON to a URL; output status, reply, type" },
        .{ .name = "log", .description = "Log a message at warning level" },
        .{ .name = "denied", .description = "GET without a grant; output the error kind" },
        .{ .name = "context", .description = "Output the request's context as the kit read it" },
        .{ .name = "fail-host", .description = "Let a failed host call escape execute" },
        .{ .name = "typed", .description = "Params parsed into a Zig struct" },
        .{ .name = "process", .description = "Run a program; output its result" },
        .{ .name = "ws-echo", .description = "Connect, send, receive, close" },
        .{ .name = "std-log", .description = "Log through std.log (routed to the host)" },
        .{ .name = "panic", .description = "Panic on purpose" },
        .{ .name = "count", .description = "Count calls: state lives in globals" },
    },
    .capabilities = &.{ "kv", "network", "process" },
};

const Action = enum {
    kv,
    @"kv-more",
    config,
    @"http-get",
    @"http-post",
    log,
    denied,
    context,
    @"fail-host",
    typed,
    process,
    @"ws-echo",
    @"std-log",
    panic,
    count,
};

var calls: u32 = 0;

// std.log goes to the host's log, every level.
pub const std_options: std.Options = .{ .logFn = wd.logFn, .log_level = .debug };

fn need(req: *const wd.Request, name: []const u8) ![]const u8 {
    return req.paramString(name) orelse wd.fail("'{s}' must be a string", .{name});
}

pub fn execute(req: *const wd.Request) !void {
    const action = req.actionAs(Action) orelse return wd.fail("no action {s}", .{req.action});
    switch (action) {
        .kv => {
            const key = try need(req, "key");
            if (req.param("value")) |value| {
                if (value != .null) try wd.kvSet(key, try need(req, "value"));
            }
            wd.output(try wd.kvGet(key) orelse "(none)");
        },
        .@"kv-more" => {
            const binary = [_]u8{ 0, 0xff, 0xfe, 'x' };
            try wd.kvSet("bin", &binary);
            try wd.kvSet("other", "text");
            const back = try wd.kvGet("bin") orelse return wd.fail("bin is gone", .{});
            const keys = try wd.kvList("");
            const prefixed = try wd.kvList("b");
            const deleted = try wd.kvDelete("other");
            const again = try wd.kvDelete("other");
            const gone = try wd.kvGet("other");
            try wd.outputJson(.{
                .same = std.mem.eql(u8, back, &binary),
                .keys = keys,
                .prefixed = prefixed,
                .deleted = deleted,
                .again = again,
                .gone = gone == null,
            });
        },
        .config => {
            const value = try wd.config(try need(req, "key")) orelse std.json.Value.null;
            switch (value) {
                .null => wd.output("(unset)"),
                .string => |text| wd.output(text),
                else => try wd.outputJson(value),
            }
        },
        .@"http-get" => {
            const response = try wd.httpGet(try need(req, "url"));
            try wd.outputJson(.{ .status = response.status, .body = response.body });
        },
        .@"http-post" => {
            const response = try wd.httpSendJson("POST", try need(req, "url"), "{\"on\":true}", &.{
                .{ .name = "X-Test", .value = "zig" },
            });
            const ok = try response.jsonBody();
            const kind = response.header("content-type") orelse "?";
            try wd.outputJson(.{ .status = response.status, .reply = ok, .type = kind });
        },
        .log => {
            wd.log(.warn, "{s}", .{try need(req, "message")});
            wd.output("logged");
        },
        .denied => {
            if (wd.httpGet("http://127.0.0.1:1/")) |_| {
                wd.output("allowed?!");
            } else |err| {
                wd.output(wd.errorKind(err));
            }
        },
        .context => try wd.outputJson(.{
            .action = req.action,
            .velocity = req.context.velocity,
            .mode = req.context.mode,
            .timestamp = req.context.timestamp,
            .params = std.json.Value{ .object = req.params },
        }),
        .count => {
            calls += 1;
            try wd.outputJson(.{ .calls = calls });
        },
        .@"fail-host" => _ = try wd.httpGet("http://127.0.0.1:1/"),
        .typed => {
            const Params = struct { count: u8, label: []const u8 = "none", on: bool = false };
            const p = try req.paramsAs(Params);
            try wd.outputJson(p);
        },
        .process => {
            const argv = req.param("argv") orelse return wd.fail("argv", .{});
            if (argv != .array) return wd.fail("argv must be a list", .{});
            var args: std.ArrayList([]const u8) = .empty;
            for (argv.array.items) |a| {
                if (a != .string) return wd.fail("argv must be a list of strings", .{});
                try args.append(wd.allocator(), a.string);
            }
            const stdin = req.paramString("stdin") orelse "";
            const result = try wd.processRun(.{ .argv = args.items, .stdin = stdin });
            try wd.outputJson(result);
        },
        .@"std-log" => {
            std.log.scoped(.pads).info("pad {d} pressed", .{7});
            std.log.debug("plain", .{});
            wd.output("ok");
        },
        .panic => @panic("on purpose"),
        .@"ws-echo" => {
            // Send text, then bytes, then "bye" (the echo server closes on it).
            const url = try need(req, "url");
            const ws = try wd.wsConnect(.{ .url = url, .subprotocols = &.{"echo.v1"} });
            defer ws.close() catch {}; // frees the host's slot
            try ws.send(try need(req, "text"));
            const text = try ws.recv(2000);
            try ws.sendBinary(&.{ 1, 2, 0xff });
            const binary = try ws.recv(2000);
            try ws.send("bye");
            const closed = try ws.recv(2000);
            const after = if (ws.send("more")) |_| "sent" else |err| wd.errorKind(err);
            try wd.outputJson(.{
                .subprotocol = ws.subprotocol,
                .text = if (text == .text) text.text else "?",
                .binary = if (binary == .binary) binary.binary.len else 0,
                .closed = if (closed == .closed) closed.closed.code else null,
                .after = after,
            });
        },
    }
}
