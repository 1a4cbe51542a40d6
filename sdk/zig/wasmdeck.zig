//! wasmdeck.zig - the Zig plugin development kit for wasmdeck (JSON ABI v1).
//!
//! One file, no other dependencies than Zig's standard library. It provides
//! the exports the host needs (`alloc`, `dealloc`, `init`, `execute`), parses
//! and checks the request, and wraps the host functions: output, errors,
//! logging, configuration, HTTP, WebSocket, processes and key-value state.
//! A plugin's root file declares two things:
//!
//!     const wd = @import("wasmdeck");
//!
//!     pub const metadata: wd.Metadata = .{
//!         .name = "hello",
//!         .version = "0.1.0",
//!         .description = "Says hello",
//!         .actions = &.{.{ .name = "greet", .description = "Greets someone" }},
//!     };
//!
//!     pub fn execute(req: *const wd.Request) !void {
//!         const who = req.paramString("who") orelse "world";
//!         try wd.print("hello, {s}", .{who});
//!     }
//!
//! Build it with `wasmdeck build`, which runs (Zig 0.17):
//!
//!     zig build-exe -target wasm32-wasi -O ReleaseSmall -fno-entry --stack 1048576 \
//!         --export=alloc --export=dealloc --export=init --export=execute \
//!         --dep plugin -Mroot=sdk/zig/wasmdeck.zig --dep wasmdeck=root -Mplugin=plugin.zig
//!
//! This kit is the root module and the plugin's file is the module "plugin"
//! (each imports the other), so the exports below are always compiled in and
//! find the plugin's `metadata` and `execute`.
//!
//! Memory: everything the kit hands out during a call (the request, host
//! responses, formatted text) lives in a per-call arena, `wd.allocator()`,
//! that is reset when `execute` returns. Keep state across calls in globals,
//! or allocate it from `wd.gpa` (std.heap.wasm_allocator).
//!
//! A trigger plugin (docs/teamwork.md, "Trigger plugins"), which the host polls,
//! names its poll action and interval in the metadata; the kit adds
//! `"type": "trigger"` and checks both at compile time:
//!
//!     .poll = .{ .action = "tick", .interval_ms = 20 },
//!
//! and the poll publishes what it finds with `wd.eventPublish(topic, payload)`.
//!
//! State that must survive a live reload (docs/reload.md): declare
//!
//!     pub fn saveState() ![]const u8 { ... }          // the bytes to carry over
//!     pub fn restoreState(state: []const u8) !void { ... }  // wd.fail(...) refuses them
//!
//! and the kit exports them as `save_state`/`restore_state`; without them the
//! plugin saves nothing and starts afresh on a reload.
//!
//! Host functions that the plugin never calls are not imported (Zig links
//! only what is referenced), so a plugin that uses none of them needs no
//! capability.

const std = @import("std");
// The plugin's own file (see the build command above).
const plugin = @import("plugin");
const json = std.json;
const Allocator = std.mem.Allocator;

pub const abi_version = 1;

/// The allocator for state that outlives a call (WebAssembly's own, single-threaded).
pub const gpa: Allocator = std.heap.wasm_allocator;

// ---- host imports (module "wasmdeck") ----------------------------------------

const host = struct {
    extern "wasmdeck" fn set_output(ptr: [*]const u8, len: usize) void;
    extern "wasmdeck" fn set_error(ptr: [*]const u8, len: usize) void;
    extern "wasmdeck" fn log(level: i32, ptr: [*]const u8, len: usize) void;
    extern "wasmdeck" fn response_read(ptr: [*]u8, len: usize) i32;
    extern "wasmdeck" fn config_get(ptr: [*]const u8, len: usize) i32;
    extern "wasmdeck" fn http_request(ptr: [*]const u8, len: usize) i32;
    extern "wasmdeck" fn ws_connect(ptr: [*]const u8, len: usize) i32;
    extern "wasmdeck" fn ws_send(ptr: [*]const u8, len: usize) i32;
    extern "wasmdeck" fn ws_recv(ptr: [*]const u8, len: usize) i32;
    extern "wasmdeck" fn ws_close(ptr: [*]const u8, len: usize) i32;
    extern "wasmdeck" fn process_run(ptr: [*]const u8, len: usize) i32;
    extern "wasmdeck" fn kv_get(ptr: [*]const u8, len: usize) i32;
    extern "wasmdeck" fn kv_set(ptr: [*]const u8, len: usize) i32;
    extern "wasmdeck" fn kv_delete(ptr: [*]const u8, len: usize) i32;
    extern "wasmdeck" fn kv_list(ptr: [*]const u8, len: usize) i32;
    extern "wasmdeck" fn event_publish(ptr: [*]const u8, len: usize) i32;
    extern "wasmdeck" fn plugin_call(ptr: [*]const u8, len: usize) i32;
    extern "wasmdeck" fn state_get(ptr: [*]const u8, len: usize) i32;
    extern "wasmdeck" fn state_set(ptr: [*]const u8, len: usize) i32;
    extern "wasmdeck" fn state_delete(ptr: [*]const u8, len: usize) i32;
    extern "wasmdeck" fn state_list(ptr: [*]const u8, len: usize) i32;
};

// ---- metadata ------------------------------------------------------------------

/// What the plugin is, as `init` reports it (turned into JSON at compile time).
pub const Metadata = struct {
    name: []const u8,
    version: []const u8,
    description: []const u8,
    author: ?[]const u8 = null,
    license: ?[]const u8 = null,
    homepage: ?[]const u8 = null,
    /// "action" (the default) or "trigger" (implied by `poll`).
    type: ?[]const u8 = null,
    /// A trigger plugin: the action the host calls to poll it, and how often.
    poll: ?Poll = null,
    /// The actions the host may call; null accepts any action name.
    actions: ?[]const Action = null,
    /// What the plugin asks for: a bare kind ("network", "kv", "process") or a
    /// JSON object naming the kind and its scope, e.g.
    /// `{"kind":"network","hosts":["api.example.com"]}`.
    capabilities: []const []const u8 = &.{},
    /// Events to receive (as the user grants `events:subscribe`): each topic
    /// pattern and the action called with the event, params `{topic, payload, source}`.
    subscribe: []const Subscription = &.{},
};

/// How the host polls a trigger plugin: `action` (one of the declared actions)
/// every `interval_ms` milliseconds, 10 to a day (as src/wasmdeck/_metadata.py checks).
pub const Poll = struct {
    action: []const u8,
    interval_ms: u32,

    pub const min_ms = 10;
    pub const max_ms = 86_400_000;
};

pub const Subscription = struct {
    topic: []const u8,
    action: []const u8,
};

pub const Action = struct {
    name: []const u8,
    description: []const u8 = "",
    /// A JSON Schema for the params, as JSON text (a multiline string reads well).
    params: ?[]const u8 = null,
};

fn jsonQuote(comptime text: []const u8) []const u8 {
    comptime {
        @setEvalBranchQuota(20_000 + 100 * text.len);
        const hex = "0123456789abcdef";
        var out: []const u8 = "\"";
        for (text) |c| {
            out = out ++ switch (c) {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                0...8, 11, 12, 14...0x1f => "\\u00" ++ [_]u8{ hex[c >> 4], hex[c & 15] },
                else => [_]u8{c},
            };
        }
        return out ++ "\"";
    }
}

/// The metadata's type: "trigger" when it has a poll. A poll the host would
/// refuse (an undeclared action, an interval out of range, a type that is
/// not "trigger") stops the build here, with the reason.
fn pluginType(comptime m: Metadata) ?[]const u8 {
    comptime {
        const poll = m.poll orelse {
            if (m.type != null and std.mem.eql(u8, m.type.?, "trigger")) {
                @compileError("a trigger plugin says how the host polls it: " ++
                    ".poll = .{ .action = \"...\", .interval_ms = N }");
            }
            return m.type;
        };
        if (m.type != null and !std.mem.eql(u8, m.type.?, "trigger")) {
            @compileError(".poll is for trigger plugins, not .type = \"" ++ m.type.? ++ "\"");
        }
        if (poll.interval_ms < Poll.min_ms or poll.interval_ms > Poll.max_ms) {
            @compileError(std.fmt.comptimePrint(
                ".poll.interval_ms must be {d}-{d} (milliseconds), not {d}",
                .{ Poll.min_ms, Poll.max_ms, poll.interval_ms },
            ));
        }
        const actions = m.actions orelse return "trigger"; // any action name is accepted
        for (actions) |a| {
            if (std.mem.eql(u8, a.name, poll.action)) return "trigger";
        }
        @compileError(".poll.action \"" ++ poll.action ++ "\" is not one of the declared actions");
    }
}

fn metadataJson(comptime m: Metadata) []const u8 {
    comptime {
        var out: []const u8 = "{\"name\":" ++ jsonQuote(m.name) ++
            ",\"version\":" ++ jsonQuote(m.version) ++
            ",\"description\":" ++ jsonQuote(m.description);
        for (.{ "author", "license", "homepage" }) |field| {
            if (@field(m, field)) |value| out = out ++ ",\"" ++ field ++ "\":" ++ jsonQuote(value);
        }
        if (pluginType(m)) |kind| out = out ++ ",\"type\":" ++ jsonQuote(kind);
        if (m.poll) |poll| {
            out = out ++ ",\"poll\":{\"action\":" ++ jsonQuote(poll.action) ++
                std.fmt.comptimePrint(",\"interval_ms\":{d}}}", .{poll.interval_ms});
        }
        if (m.actions) |actions| {
            out = out ++ ",\"actions\":[";
            for (actions, 0..) |a, i| {
                if (i > 0) out = out ++ ",";
                out = out ++ "{\"name\":" ++ jsonQuote(a.name) ++
                    ",\"description\":" ++ jsonQuote(a.description);
                if (a.params) |schema| out = out ++ ",\"params\":" ++ schema;
                out = out ++ "}";
            }
            out = out ++ "]";
        }
        if (m.capabilities.len > 0) {
            out = out ++ ",\"capabilities\":[";
            for (m.capabilities, 0..) |c, i| {
                if (i > 0) out = out ++ ",";
                const raw = std.mem.trim(u8, c, " \t\r\n");
                out = out ++ if (raw.len > 0 and raw[0] == '{') raw else jsonQuote(raw);
            }
            out = out ++ "]";
        }
        if (m.subscribe.len > 0) {
            out = out ++ ",\"subscribe\":[";
            for (m.subscribe, 0..) |sub, i| {
                if (i > 0) out = out ++ ",";
                out = out ++ "{\"topic\":" ++ jsonQuote(sub.topic) ++
                    ",\"action\":" ++ jsonQuote(sub.action) ++ "}";
            }
            out = out ++ "]";
        }
        return out ++ "}";
    }
}

// ---- the request ---------------------------------------------------------------

/// The trigger that caused the call.
pub const Context = struct {
    /// 0-127, or null when the trigger had none.
    velocity: ?i64 = null,
    mode: ?i64 = null,
    /// Milliseconds since the Unix epoch.
    timestamp: i64 = 0,
};

/// One request, as the host sent it (valid until `execute` returns).
pub const Request = struct {
    action: []const u8,
    /// The params object ({} when there are none).
    params: json.ObjectMap,
    context: Context,
    /// The whole request, as JSON text.
    raw: []const u8,

    pub fn actionIs(self: *const Request, name: []const u8) bool {
        return std.mem.eql(u8, self.action, name);
    }

    /// The action as a member of enum `E` (`.@"set-scene"`), or null: for a `switch`.
    pub fn actionAs(self: *const Request, comptime E: type) ?E {
        return std.meta.stringToEnum(E, self.action);
    }

    /// A parameter, or null when absent.
    pub fn param(self: *const Request, name: []const u8) ?json.Value {
        return self.params.get(name);
    }

    /// A string parameter, or null when absent or not a string.
    pub fn paramString(self: *const Request, name: []const u8) ?[]const u8 {
        const value = self.param(name) orelse return null;
        return if (value == .string) value.string else null;
    }

    /// An integer parameter (2.0 counts), or null when absent or not an integer.
    /// (Numbers arrive as their JSON text, `.number_string`: see `wd.int`.)
    pub fn paramInt(self: *const Request, name: []const u8) ?i64 {
        return int(self.param(name) orelse return null);
    }

    pub fn paramBool(self: *const Request, name: []const u8) ?bool {
        const value = self.param(name) orelse return null;
        return if (value == .bool) value.bool else null;
    }

    /// The params as a Zig struct `T` (fields with defaults are optional;
    /// unknown fields are ignored). On a mismatch it reports why, as `fail` does:
    /// `const p = try req.paramsAs(struct { scene: []const u8, fade_ms: u32 = 0 });`
    pub fn paramsAs(self: *const Request, comptime T: type) error{Reported}!T {
        return json.parseFromValueLeaky(T, allocator(), .{ .object = self.params }, .{
            .ignore_unknown_fields = true,
        }) catch |err| fail("invalid params for '{s}': {s}", .{ self.action, @errorName(err) });
    }
};

/// A JSON number that is an integer (2.0 counts), or null for anything else.
pub fn int(value: json.Value) ?i64 {
    return switch (value) {
        .integer => |n| n,
        .float => |f| if (@floor(f) == f and @abs(f) < 9.2e18) @intFromFloat(f) else null,
        .number_string => |text| {
            // "12", "-3", and "2.0" (a fraction of zeros); not "1e3".
            const dot = std.mem.indexOfScalar(u8, text, '.') orelse text.len;
            if (dot + 1 == text.len) return null;
            for (text[@min(dot + 1, text.len)..]) |c| if (c != '0') return null;
            return std.fmt.parseInt(i64, text[0..dot], 10) catch null;
        },
        else => null,
    };
}

/// A JSON number as a float, or null for anything else.
pub fn float(value: json.Value) ?f64 {
    return switch (value) {
        .integer => |n| @floatFromInt(n),
        .float => |f| f,
        .number_string => |text| std.fmt.parseFloat(f64, text) catch null,
        else => null,
    };
}

/// The JSON options the kit parses with: numbers stay as their text
/// (`.number_string`; read them with `int` or `float`), which keeps plugins
/// that never need floating point free of its code.
pub const parse_options: json.ParseOptions = .{ .parse_numbers = false };

/// Parse JSON text into a Value (in the call's memory).
pub fn parseJson(text: []const u8) error{ OutOfMemory, InvalidJson }!json.Value {
    return json.parseFromSliceLeaky(json.Value, allocator(), text, parse_options) catch |err| switch (err) {
        error.OutOfMemory => error.OutOfMemory,
        else => error.InvalidJson,
    };
}

/// Format a JSON value (or anything std.json can write) as compact JSON, with `{f}`.
pub fn fmtJson(value: anytype) json.Formatter(@TypeOf(value)) {
    return json.fmt(value, .{});
}

fn parseRequest(raw: []const u8) !Request {
    const arena = allocator();
    const doc = try json.parseFromSliceLeaky(json.Value, arena, raw, parse_options);
    if (doc != .object) return error.NotAnObject;
    const action = doc.object.get("action") orelse return error.NoAction;
    if (action != .string) return error.NoAction;
    var req: Request = .{ .action = action.string, .params = .empty, .context = .{}, .raw = raw };
    if (doc.object.get("params")) |params| {
        if (params == .object) req.params = params.object;
    }
    if (doc.object.get("context")) |context| {
        if (context == .object) {
            const c = context.object;
            if (c.get("velocity")) |v| req.context.velocity = int(v);
            if (c.get("mode")) |v| req.context.mode = int(v);
            if (c.get("timestamp")) |v| req.context.timestamp = int(v) orelse 0;
        }
    }
    return req;
}

// ---- per-call memory -----------------------------------------------------------

var call_arena: std.heap.ArenaAllocator = .init(std.heap.wasm_allocator);

/// Memory for the current call; freed when `execute` returns.
pub fn allocator() Allocator {
    return call_arena.allocator();
}

// ---- results ---------------------------------------------------------------------

/// Returned by `fail`: the error message is already with the host.
pub const Reported = error{Reported};

/// Hand the output payload to the host (it is copied at once).
pub fn output(bytes: []const u8) void {
    host.set_output(bytes.ptr, bytes.len);
}

/// Output formatted text.
pub fn print(comptime fmt: []const u8, args: anytype) Allocator.Error!void {
    output(try std.fmt.allocPrint(allocator(), fmt, args));
}

/// Output `value` as compact JSON (a struct's fields in their order).
pub fn outputJson(value: anytype) Allocator.Error!void {
    output(try json.Stringify.valueAlloc(allocator(), value, .{}));
}

/// Report an error message to the user: `return wd.fail("no scene {s}", .{name});`
pub fn fail(comptime fmt: []const u8, args: anytype) error{Reported} {
    const message = std.fmt.allocPrint(allocator(), fmt, args) catch fmt;
    host.set_error(message.ptr, message.len);
    return error.Reported;
}

// ---- logging ---------------------------------------------------------------------

fn levelNumber(level: std.log.Level) i32 {
    return switch (level) {
        .debug => 0,
        .info => 1,
        .warn => 2,
        .err => 3,
    };
}

/// One message to the plugin's log on the host: `wd.log(.info, "done in {d} ms", .{ms})`.
pub fn log(comptime level: std.log.Level, comptime fmt: []const u8, args: anytype) void {
    const message = std.fmt.allocPrint(allocator(), fmt, args) catch fmt;
    host.log(levelNumber(level), message.ptr, message.len);
}

/// Route std.log to the host: `pub const std_options: std.Options = .{ .logFn = wd.logFn };`
pub fn logFn(
    comptime level: std.log.Level,
    comptime scope: @EnumLiteral(),
    comptime format: []const u8,
    args: anytype,
) void {
    const prefix = if (scope == .default) "" else "(" ++ @tagName(scope) ++ ") ";
    log(level, prefix ++ format, args);
}

// ---- host calls ------------------------------------------------------------------

/// Why a host call failed: the `kind` of the host's {"error": ...} answer
/// (see lastError() for the message), or a response the kit could not read.
pub const HostError = error{
    Denied,
    InvalidRequest,
    Timeout,
    Connection,
    Tls,
    TooLarge,
    Redirects,
    Closed,
    Quota,
    Limit,
    Process,
    /// An error kind this kit does not know.
    HostFailed,
    /// The host's answer was not the JSON the kit expected.
    BadResponse,
    OutOfMemory,
};

pub const HostFailure = struct { kind: []const u8, message: []const u8 };

var last_failure: ?HostFailure = null;

/// What the host said when the last host call failed (valid until execute returns).
pub fn lastError() ?HostFailure {
    return last_failure;
}

/// The host's error kind for a HostError ("denied", "timeout", ...).
pub fn errorKind(err: HostError) []const u8 {
    return switch (err) {
        error.Denied => "denied",
        error.InvalidRequest => "invalid_request",
        error.Timeout => "timeout",
        error.Connection => "connection",
        error.Tls => "tls",
        error.TooLarge => "too_large",
        error.Redirects => "redirects",
        error.Closed => "closed",
        error.Quota => "quota",
        error.Limit => "limit",
        error.Process => "process",
        error.HostFailed => if (last_failure) |f| f.kind else "host",
        error.BadResponse => "bad_response",
        error.OutOfMemory => "out_of_memory",
    };
}

fn kindError(kind: []const u8) HostError {
    const map = std.StaticStringMap(HostError).initComptime(.{
        .{ "denied", error.Denied },
        .{ "invalid_request", error.InvalidRequest },
        .{ "timeout", error.Timeout },
        .{ "connection", error.Connection },
        .{ "tls", error.Tls },
        .{ "too_large", error.TooLarge },
        .{ "redirects", error.Redirects },
        .{ "closed", error.Closed },
        .{ "quota", error.Quota },
        .{ "limit", error.Limit },
        .{ "process", error.Process },
    });
    return map.get(kind) orelse error.HostFailed;
}

/// The host functions that take a JSON request (docs/host-api.md).
pub const HostFunction = enum {
    config_get,
    http_request,
    ws_connect,
    ws_send,
    ws_recv,
    ws_close,
    process_run,
    kv_get,
    kv_set,
    kv_delete,
    kv_list,
    event_publish,
    plugin_call,
    state_get,
    state_set,
    state_delete,
    state_list,
};

/// Call host function `f` with a request given as JSON text; return the
/// response object, or the HostError its {"error": ...} names.
pub fn callJson(comptime f: HostFunction, request: []const u8) HostError!json.ObjectMap {
    last_failure = null;
    const n = @field(host, @tagName(f))(request.ptr, request.len);
    if (n < 0) return error.BadResponse;
    const text = try allocator().alloc(u8, @intCast(n));
    const got = host.response_read(text.ptr, text.len);
    if (got != n) return error.BadResponse;
    const doc = parseJson(text) catch |err| switch (err) {
        error.OutOfMemory => return error.OutOfMemory,
        error.InvalidJson => return error.BadResponse,
    };
    if (doc != .object) return error.BadResponse;
    if (doc.object.get("error")) |failure| {
        if (failure != .null) {
            const kind = stringField(failure, "kind") orelse "host";
            last_failure = .{ .kind = kind, .message = stringField(failure, "message") orelse kind };
            return kindError(kind);
        }
    }
    return doc.object;
}

/// Call host function `f` with `request` (a struct, written as JSON; null
/// optional fields are left out).
pub fn call(comptime f: HostFunction, request: anytype) HostError!json.ObjectMap {
    const text = try json.Stringify.valueAlloc(allocator(), request, .{
        .emit_null_optional_fields = false,
    });
    return callJson(f, text);
}

fn stringField(value: json.Value, name: []const u8) ?[]const u8 {
    if (value != .object) return null;
    const field = value.object.get(name) orelse return null;
    return if (field == .string) field.string else null;
}

/// Text from `name`, or bytes from `name_base64`; null when neither is there.
fn bytesField(obj: json.ObjectMap, comptime name: []const u8) HostError!?[]const u8 {
    if (obj.get(name)) |v| switch (v) {
        .string => |s| return s,
        .null => {},
        else => return error.BadResponse,
    };
    if (obj.get(name ++ "_base64")) |v| switch (v) {
        .string => |s| return try decodeBase64(s),
        .null => {},
        else => return error.BadResponse,
    };
    return null;
}

fn decodeBase64(text: []const u8) HostError![]const u8 {
    const decoder = std.base64.standard.Decoder;
    const size = decoder.calcSizeForSlice(text) catch return error.BadResponse;
    const out = try allocator().alloc(u8, size);
    decoder.decode(out, text) catch return error.BadResponse;
    return out;
}

fn encodeBase64(bytes: []const u8) Allocator.Error![]const u8 {
    const encoder = std.base64.standard.Encoder;
    const out = try allocator().alloc(u8, encoder.calcSize(bytes.len));
    return encoder.encode(out, bytes);
}

/// Bytes travel as text when they are UTF-8, else as base64.
const Bytes = struct {
    text: ?[]const u8 = null,
    base64: ?[]const u8 = null,

    fn of(bytes: ?[]const u8) Allocator.Error!Bytes {
        const b = bytes orelse return .{};
        if (std.unicode.utf8ValidateSlice(b)) return .{ .text = b };
        return .{ .base64 = try encodeBase64(b) };
    }
};

// ---- configuration -------------------------------------------------------------

/// The configuration value `key` as the user gave it, or null when unset.
pub fn config(key: []const u8) HostError!?json.Value {
    const response = try call(.config_get, .{ .key = key });
    const value = response.get("value") orelse return null;
    return if (value == .null) null else value;
}

/// The configuration value `key` when it is a string, else null.
pub fn configString(key: []const u8) HostError!?[]const u8 {
    const value = try config(key) orelse return null;
    return if (value == .string) value.string else null;
}

/// The whole configuration (an object; empty when the user gave none).
pub fn configAll() HostError!json.ObjectMap {
    const response = try call(.config_get, .{});
    const value = response.get("value") orelse return .empty;
    return switch (value) {
        .object => |o| o,
        .null => .empty,
        else => error.BadResponse,
    };
}

// ---- HTTP (capability `network`) ----------------------------------------------------

pub const Header = struct {
    name: []const u8,
    value: []const u8,

    pub fn jsonStringify(self: Header, jw: anytype) !void {
        try jw.write([2][]const u8{ self.name, self.value });
    }
};

pub const HttpRequest = struct {
    method: []const u8 = "GET",
    url: []const u8,
    headers: []const Header = &.{},
    /// Sent as text when it is UTF-8, else as base64.
    body: ?[]const u8 = null,
    timeout_ms: ?u32 = null,
    follow_redirects: ?bool = null,
};

pub const HttpResponse = struct {
    status: u16,
    reason: []const u8,
    headers: []const Header,
    /// The final URL (after redirects).
    url: []const u8,
    body: []const u8,

    /// The first header called `name` (case-insensitive), or null.
    pub fn header(self: HttpResponse, name: []const u8) ?[]const u8 {
        for (self.headers) |h| if (std.ascii.eqlIgnoreCase(h.name, name)) return h.value;
        return null;
    }

    /// The body parsed as JSON.
    pub fn jsonBody(self: HttpResponse) error{ OutOfMemory, InvalidJson }!json.Value {
        return parseJson(self.body);
    }
};

/// Make an HTTP request through the host (needs the `network` capability).
pub fn httpRequest(request: HttpRequest) HostError!HttpResponse {
    const body = try Bytes.of(request.body);
    const response = try call(.http_request, .{
        .method = request.method,
        .url = request.url,
        .headers = request.headers,
        .body = body.text,
        .body_base64 = body.base64,
        .timeout_ms = request.timeout_ms,
        .follow_redirects = request.follow_redirects,
    });
    const status = int(response.get("status") orelse return error.BadResponse) orelse
        return error.BadResponse;
    var headers: std.ArrayList(Header) = .empty;
    if (response.get("headers")) |list| {
        if (list != .array) return error.BadResponse;
        for (list.array.items) |pair| {
            if (pair != .array or pair.array.items.len != 2) return error.BadResponse;
            const name, const value = .{ pair.array.items[0], pair.array.items[1] };
            if (name != .string or value != .string) return error.BadResponse;
            try headers.append(allocator(), .{ .name = name.string, .value = value.string });
        }
    }
    return .{
        .status = std.math.cast(u16, status) orelse return error.BadResponse,
        .reason = stringField(.{ .object = response }, "reason") orelse "",
        .headers = headers.items,
        .url = stringField(.{ .object = response }, "url") orelse request.url,
        .body = try bytesField(response, "body") orelse "",
    };
}

/// GET `url`.
pub fn httpGet(url: []const u8) HostError!HttpResponse {
    return httpRequest(.{ .url = url });
}

/// Send `body` (JSON text) with `method` to `url`; Content-Type:
/// application/json is added unless `headers` name one.
pub fn httpSendJson(
    method: []const u8,
    url: []const u8,
    body: []const u8,
    headers: []const Header,
) HostError!HttpResponse {
    for (headers) |h| {
        if (std.ascii.eqlIgnoreCase(h.name, "content-type")) {
            return httpRequest(.{ .method = method, .url = url, .headers = headers, .body = body });
        }
    }
    const all = try allocator().alloc(Header, headers.len + 1);
    @memcpy(all[0..headers.len], headers);
    all[headers.len] = .{ .name = "Content-Type", .value = "application/json" };
    return httpRequest(.{ .method = method, .url = url, .headers = all, .body = body });
}

// ---- WebSocket (capability `network`) -----------------------------------------------

pub const WsConnectOptions = struct {
    url: []const u8,
    subprotocols: []const []const u8 = &.{},
    headers: []const Header = &.{},
    timeout_ms: ?u32 = null,
};

pub const WsMessage = union(enum) {
    text: []const u8,
    binary: []const u8,
    /// Nothing arrived within the timeout.
    timeout,
    closed: struct { code: ?i64, reason: []const u8 },
};

/// A WebSocket connection held by the host; it stays open between calls
/// (keep `id` in a global) until closed or the plugin instance goes away.
pub const WebSocket = struct {
    id: i64,
    subprotocol: ?[]const u8 = null,

    pub fn send(self: WebSocket, text: []const u8) HostError!void {
        _ = try call(.ws_send, .{ .id = self.id, .text = text });
    }

    pub fn sendBinary(self: WebSocket, data: []const u8) HostError!void {
        _ = try call(.ws_send, .{ .id = self.id, .data_base64 = try encodeBase64(data) });
    }

    /// The next message, waiting at most `timeout_ms` (null: the host's default).
    pub fn recv(self: WebSocket, timeout_ms: ?u32) HostError!WsMessage {
        const r = try call(.ws_recv, .{ .id = self.id, .timeout_ms = timeout_ms });
        if (r.get("text")) |v| {
            if (v != .string) return error.BadResponse;
            return .{ .text = v.string };
        }
        if (try bytesField(r, "data")) |data| return .{ .binary = data };
        if (r.get("timeout")) |v| if (v == .bool and v.bool) return .timeout;
        if (r.get("closed")) |v| if (v == .bool and v.bool) return .{ .closed = .{
            .code = if (r.get("code")) |c| int(c) else null,
            .reason = stringField(.{ .object = r }, "reason") orelse "",
        } };
        return error.BadResponse;
    }

    pub fn close(self: WebSocket) HostError!void {
        _ = try call(.ws_close, .{ .id = self.id });
    }
};

pub fn wsConnect(options: WsConnectOptions) HostError!WebSocket {
    // ws_connect takes the headers as an object.
    var names: json.ObjectMap = .empty;
    for (options.headers) |h| try names.put(allocator(), h.name, .{ .string = h.value });
    const r = try call(.ws_connect, .{
        .url = options.url,
        .subprotocols = options.subprotocols,
        .headers = json.Value{ .object = names },
        .timeout_ms = options.timeout_ms,
    });
    const id = int(r.get("id") orelse return error.BadResponse) orelse return error.BadResponse;
    return .{ .id = id, .subprotocol = stringField(.{ .object = r }, "subprotocol") };
}

// ---- processes (capability `process`) ------------------------------------------------

pub const ProcessOptions = struct {
    argv: []const []const u8,
    stdin: []const u8 = "",
    timeout_ms: ?u32 = null,
};

pub const ProcessResult = struct {
    exit_code: i64,
    stdout: []const u8,
    stderr: []const u8,
    /// The output passed the host's limit and was cut.
    truncated: bool,
};

/// Run a program (no shell) the user granted with `process:NAME`.
pub fn processRun(options: ProcessOptions) HostError!ProcessResult {
    const stdin = try Bytes.of(options.stdin);
    const r = try call(.process_run, .{
        .argv = options.argv,
        .stdin = stdin.text,
        .stdin_base64 = stdin.base64,
        .timeout_ms = options.timeout_ms,
    });
    const code = int(r.get("exit_code") orelse return error.BadResponse) orelse
        return error.BadResponse;
    const truncated = if (r.get("truncated")) |t| t == .bool and t.bool else false;
    return .{
        .exit_code = code,
        .stdout = try bytesField(r, "stdout") orelse "",
        .stderr = try bytesField(r, "stderr") orelse "",
        .truncated = truncated,
    };
}

// ---- key-value state (capability `kv`) -----------------------------------------------

/// The value stored under `key`, or null.
pub fn kvGet(key: []const u8) HostError!?[]const u8 {
    return bytesField(try call(.kv_get, .{ .key = key }), "value");
}

pub fn kvSet(key: []const u8, value: []const u8) HostError!void {
    const v = try Bytes.of(value);
    _ = try call(.kv_set, .{ .key = key, .value = v.text, .value_base64 = v.base64 });
}

/// Whether there was a value to delete.
pub fn kvDelete(key: []const u8) HostError!bool {
    const r = try call(.kv_delete, .{ .key = key });
    const deleted = r.get("deleted") orelse return false;
    return deleted == .bool and deleted.bool;
}

/// The keys that start with `prefix` ("" for all).
pub fn kvList(prefix: []const u8) HostError![]const []const u8 {
    const r = try call(.kv_list, .{ .prefix = prefix });
    const keys = r.get("keys") orelse return error.BadResponse;
    if (keys != .array) return error.BadResponse;
    const out = try allocator().alloc([]const u8, keys.array.items.len);
    for (keys.array.items, out) |k, *slot| {
        if (k != .string) return error.BadResponse;
        slot.* = k.string;
    }
    return out;
}

// ---- events (capability `events:publish:PATTERN`) ------------------------------------

/// Publish `payload` (anything std.json can write) on `topic`; how many
/// subscribers it was queued for. A loop of events past the host's hop limit
/// fails with error.HostFailed, `errorKind` "loop".
pub fn eventPublish(topic: []const u8, payload: anytype) HostError!i64 {
    const r = try call(.event_publish, .{ .topic = topic, .payload = payload });
    return int(r.get("delivered") orelse return error.BadResponse) orelse error.BadResponse;
}

// ---- other plugins (capability `plugins:NAME[:ACTION]`) ------------------------------

/// Run `action` of the plugin named `name` with `params` (a struct, written as
/// a JSON object); its output. A cycle or a chain too deep fails with
/// error.HostFailed, `errorKind` "cycle" or "depth".
pub fn pluginCall(name: []const u8, action: []const u8, params: anytype) HostError![]const u8 {
    const r = try call(.plugin_call, .{ .plugin = name, .action = action, .params = params });
    return try bytesField(r, "output") orelse "";
}

// ---- shared state (capability `state:NAMESPACE[:ro]`) --------------------------------

/// A shared value and its version (null and 0 when absent).
pub const Versioned = struct { value: ?[]const u8, version: i64 };

pub fn stateGet(namespace: []const u8, key: []const u8) HostError!Versioned {
    const r = try call(.state_get, .{ .namespace = namespace, .key = key });
    const version = int(r.get("version") orelse return error.BadResponse) orelse
        return error.BadResponse;
    return .{ .value = try bytesField(r, "value"), .version = version };
}

/// Store `value` under `key`; with a `version`, only if the key still has it
/// (compare-and-swap; 0: only if absent). Whether it was stored, and the version now.
pub fn stateSet(
    namespace: []const u8,
    key: []const u8,
    value: []const u8,
    version: ?i64,
) HostError!struct { stored: bool, version: i64 } {
    const v = try Bytes.of(value);
    const r = try call(.state_set, .{
        .namespace = namespace,
        .key = key,
        .value = v.text,
        .value_base64 = v.base64,
        .version = version,
    });
    const ok = r.get("ok") orelse return error.BadResponse;
    const now = int(r.get("version") orelse return error.BadResponse) orelse
        return error.BadResponse;
    return .{ .stored = ok == .bool and ok.bool, .version = now };
}

/// Delete `key` (with a `version`: only if it still has it); whether it was deleted.
pub fn stateDelete(namespace: []const u8, key: []const u8, version: ?i64) HostError!bool {
    const r = try call(.state_delete, .{ .namespace = namespace, .key = key, .version = version });
    const deleted = r.get("deleted") orelse return false;
    return deleted == .bool and deleted.bool;
}

/// The keys of the shared `namespace` that start with `prefix`.
pub fn stateList(namespace: []const u8, prefix: []const u8) HostError![]const []const u8 {
    const r = try call(.state_list, .{ .namespace = namespace, .prefix = prefix });
    const keys = r.get("keys") orelse return error.BadResponse;
    if (keys != .array) return error.BadResponse;
    const out = try allocator().alloc([]const u8, keys.array.items.len);
    for (keys.array.items, out) |k, *slot| {
        if (k != .string) return error.BadResponse;
        slot.* = k.string;
    }
    return out;
}

// ---- the ABI exports -----------------------------------------------------------

// The host writes requests into a buffer from `alloc` that it keeps and
// reuses. The buffer starts a few bytes into its allocation: a fresh block
// from the wasm allocator starts exactly at the memory's old end, and hosts
// that judge the pointer against a memory size read before `alloc` grew the
// memory would refuse it.
const buffer_offset = 16;

fn allocExport(len: i32) callconv(.c) usize {
    const size: usize = if (len > 0) @intCast(len) else 0;
    const block = gpa.alignedAlloc(u8, .@"16", size + buffer_offset) catch @trap();
    return @intFromPtr(block.ptr) + buffer_offset;
}

fn deallocExport(ptr: usize, len: i32) callconv(.c) void {
    if (ptr < buffer_offset or len < 0) return;
    const block: [*]align(16) u8 = @ptrFromInt(ptr - buffer_offset);
    gpa.free(block[0 .. @as(usize, @intCast(len)) + buffer_offset]);
}

fn initExport() callconv(.c) i64 {
    const text = comptime metadataJson(plugin.metadata);
    return @bitCast((@as(u64, @intFromPtr(text.ptr)) << 32) | text.len);
}

fn executeExport(ptr: [*]const u8, len: i32) callconv(.c) i32 {
    defer _ = call_arena.reset(.{ .retain_with_limit = 256 * 1024 });
    last_failure = null;
    if (len < 0) return report("invalid request: negative length", .{});
    const req = parseRequest(ptr[0..@intCast(len)]) catch |err|
        return report("invalid request: {s}", .{@errorName(err)});
    const result = plugin.execute(&req);
    if (@typeInfo(@TypeOf(result)) != .error_union) return 0;
    result catch |err| {
        if (@as(anyerror, err) == error.Reported) return 1;
        if (last_failure) |f| {
            if (hostError(err)) return report("{s}: {s}", .{ f.kind, f.message });
        }
        return report("{s}", .{@errorName(err)});
    };
    return 0;
}

// The state pair (docs/reload.md); a plugin without saveState saves nothing.
// What saveState returns (from wd.allocator() or a global) is read by the host
// as soon as this returns; the arena is reset by the next call.
fn saveStateExport() callconv(.c) i64 {
    if (!@hasDecl(plugin, "saveState")) return 0;
    const state = plugin.saveState() catch |err| {
        log(.err, "saveState failed: {s}", .{@errorName(err)});
        @trap();
    };
    return @bitCast((@as(u64, @intFromPtr(state.ptr)) << 32) | state.len);
}

fn restoreStateExport(ptr: [*]const u8, len: i32) callconv(.c) i32 {
    defer _ = call_arena.reset(.{ .retain_with_limit = 256 * 1024 });
    last_failure = null;
    if (!@hasDecl(plugin, "restoreState")) return 0;
    if (len < 0) return report("invalid state: negative length", .{});
    plugin.restoreState(ptr[0..@intCast(len)]) catch |err| {
        if (@as(anyerror, err) == error.Reported) return 1;
        return report("{s}", .{@errorName(err)});
    };
    return 0;
}

fn hostError(err: anyerror) bool {
    return switch (err) {
        error.Denied, error.InvalidRequest, error.Timeout, error.Connection, error.Tls => true,
        error.TooLarge, error.Redirects, error.Closed, error.Quota, error.Limit => true,
        error.Process, error.HostFailed => true,
        else => false,
    };
}

fn report(comptime fmt: []const u8, args: anytype) i32 {
    fail(fmt, args) catch {};
    return 1;
}

// std reads these from the root module (this file): the plugin's, if it has them.
pub const std_options: std.Options = if (@hasDecl(plugin, "std_options")) plugin.std_options else .{};
pub const panic = if (@hasDecl(plugin, "panic")) plugin.panic else std.debug.FullPanic(panicLog);

/// A panic goes to the host's log (the call then fails with a trap).
fn panicLog(message: []const u8, _: ?usize) noreturn {
    @branchHint(.cold);
    const text = "panic: ";
    var buffer: [512]u8 = undefined;
    const line = std.fmt.bufPrint(&buffer, text ++ "{s}", .{message}) catch text;
    host.log(3, line.ptr, line.len);
    @trap();
}

comptime {
    if (!@hasDecl(plugin, "metadata")) {
        @compileError("a wasmdeck plugin declares `pub const metadata: wd.Metadata = .{...};`");
    }
    if (!@hasDecl(plugin, "execute")) {
        @compileError("a wasmdeck plugin declares `pub fn execute(req: *const wd.Request) !void`");
    }
    @export(&allocExport, .{ .name = "alloc" });
    @export(&deallocExport, .{ .name = "dealloc" });
    @export(&initExport, .{ .name = "init" });
    @export(&executeExport, .{ .name = "execute" });
    @export(&saveStateExport, .{ .name = "save_state" });
    @export(&restoreStateExport, .{ .name = "restore_state" });
}
