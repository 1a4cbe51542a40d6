//! {{name}}: a wasmdeck trigger plugin in Rust. Build it with `wasmdeck build`.
//! The host calls "tick" every second (docs/teamwork.md, "Trigger plugins");
//! each poll publishes {{name}}.tick {"n": N}, which a deck binds with
//! `trigger = { kind = "event", topic = "{{name}}.tick" }`. Grant it
//! `events:publish:{{name}}.*`.

use wasmdeck_pdk::{export, host, Json, Output, Plugin, Poll, Request, Result};

#[derive(Default)]
struct Ticker {
    ticks: i64,
}

impl Plugin for Ticker {
    const METADATA: &'static str = r#"{
        "name": "{{name}}",
        "version": "0.1.0",
        "description": "A trigger plugin: publishes {{name}}.tick every second",
        "capabilities": ["events"],
        "actions": [{"name": "tick", "description": "The poll: publish {{name}}.tick"}]
    }"#;
    // Adds "type": "trigger" and "poll" to METADATA.
    const POLL: Option<Poll> = Some(Poll { action: "tick", interval_ms: 1000 });

    fn execute(&mut self, _request: &Request) -> Result<Output> {
        // The host only sends actions the metadata declares.
        let n = Json::object([("n", Json::from(self.ticks + 1))]);
        host::event_publish("{{name}}.tick", n.clone())?;
        self.ticks += 1;
        Ok(n.into())
    }
}

export!(Ticker);
