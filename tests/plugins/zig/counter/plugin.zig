//! zig-counter: a count that survives live reloads, through the Zig kit's
//! saveState/restoreState (the contract in tests/test_live_reload.py).
const std = @import("std");
const wd = @import("wasmdeck");

pub const metadata: wd.Metadata = .{
    .name = "zig-counter",
    .version = "1.0.0",
    .description = "Counts events; the count survives a live reload",
    .actions = &.{
        .{ .name = "count", .description = "Count one event" },
        .{ .name = "report", .description = "What was counted" },
        .{ .name = "poison", .description = "Make the next restore fail" },
        .{ .name = "cure", .description = "Undo poison" },
    },
};

const max_seq = 65536;

const State = extern struct {
    count: i64 = 0,
    duplicates: i64 = 0,
    highest: i64 = -1,
    generation: i64 = 0,
    poison: [8]u8 = @splat(0),
    seen: [max_seq / 8]u8 = @splat(0),
};

var state: State = .{};

fn poisoned(s: *const State, how: []const u8) bool {
    return std.mem.eql(u8, std.mem.sliceTo(&s.poison, 0), how);
}

pub fn saveState() ![]const u8 {
    if (poisoned(&state, "big")) {
        // more than the host's max_state (4 MiB by default)
        const big = try wd.allocator().alloc(u8, 5 << 20);
        return big;
    }
    return std.mem.asBytes(&state);
}

pub fn restoreState(saved: []const u8) !void {
    if (saved.len != @sizeOf(State)) return wd.fail("state of {d} bytes, expected {d}", .{ saved.len, @sizeOf(State) });
    var incoming: State = undefined;
    @memcpy(std.mem.asBytes(&incoming), saved);
    if (poisoned(&incoming, "trap")) @trap();
    if (poisoned(&incoming, "refuse")) return wd.fail("poisoned state refused", .{});
    if (poisoned(&incoming, "spin")) {
        var i: u64 = 0;
        while (true) : (i +%= 1) std.mem.doNotOptimizeAway(i);
    }
    state = incoming;
    state.generation += 1;
}

pub fn execute(req: *const wd.Request) !void {
    const action = req.actionAs(enum { count, report, poison, cure }) orelse return wd.fail("unknown action", .{});
    switch (action) {
        .count => {
            const seq = req.paramInt("seq") orelse return wd.fail("seq must be 0-{d}", .{max_seq - 1});
            if (seq < 0 or seq >= max_seq) return wd.fail("seq must be 0-{d}", .{max_seq - 1});
            const at: usize = @intCast(seq);
            const bit: u8 = @as(u8, 1) << @intCast(at % 8);
            if (state.seen[at / 8] & bit != 0) {
                state.duplicates += 1;
            } else {
                state.seen[at / 8] |= bit;
                state.count += 1;
            }
            if (seq > state.highest) state.highest = seq;
            try wd.outputJson(.{ .count = state.count });
        },
        .report => {
            var missing: i64 = 0;
            var s: i64 = 0;
            while (s <= state.highest) : (s += 1) {
                const at: usize = @intCast(s);
                if (state.seen[at / 8] & (@as(u8, 1) << @intCast(at % 8)) == 0) missing += 1;
            }
            try wd.outputJson(.{
                .count = state.count,
                .duplicates = state.duplicates,
                .missing = missing,
                .generation = state.generation,
                .version = metadata.version,
            });
        },
        .poison => {
            const how = req.paramString("how") orelse "";
            state.poison = @splat(0);
            const n = @min(how.len, 7);
            @memcpy(state.poison[0..n], how[0..n]);
            try wd.outputJson(.{});
        },
        .cure => {
            state.poison = @splat(0);
            try wd.outputJson(.{});
        },
    }
}
