//! {{name}}: a minimal wasmdeck plugin in Zig. Build it with `wasmdeck build`.
const wd = @import("wasmdeck");

pub const metadata: wd.Metadata = .{
    .name = "{{name}}",
    .version = "0.1.0",
    .description = "A minimal wasmdeck plugin",
    .actions = &.{.{ .name = "hello", .description = "Say hello" }},
};

pub fn execute(_: *const wd.Request) void {
    // The host only sends actions the metadata declares.
    wd.output("hello from {{name}}");
}
