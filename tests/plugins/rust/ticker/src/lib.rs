//! rust-ticker: a trigger plugin through the Rust kit (`Plugin::POLL`). The
//! host polls "tick" every 20 ms; each poll publishes ticker.tick with the
//! poll's number. "behave" sets what the next polls do (ok, fail, spin), for
//! the tests of failing and slow polls (tests/test_trigger_plugins.py).

use wasmdeck_pdk::{bail, export, host, Json, Output, Plugin, Poll, Request, Result};

#[derive(Default)]
struct Ticker {
    ticks: i64,
    behaviour: String,
}

impl Ticker {
    fn tick(&mut self) -> Result<Output> {
        match self.behaviour.as_str() {
            "fail" => bail!("failing on purpose"),
            "spin" => {
                let mut i: u64 = 0;
                loop {
                    // SAFETY: a plain local; volatile so the loop is not optimized away.
                    unsafe { std::ptr::write_volatile(&mut i, i.wrapping_add(1)) };
                }
            }
            _ => {}
        }
        if let Err(error) = host::event_publish("ticker.tick", Json::object([("n", Json::from(self.ticks + 1))])) {
            bail!("event_publish: {error}");
        }
        self.ticks += 1;
        Ok(Json::object([("n", Json::from(self.ticks))]).into())
    }
}

impl Plugin for Ticker {
    const METADATA: &'static str = r#"{
        "name": "rust-ticker",
        "version": "0.1.0",
        "description": "A trigger plugin: each poll publishes ticker.tick",
        "capabilities": ["events"],
        "actions": [
            {"name": "tick", "description": "the poll: publish ticker.tick {n}"},
            {"name": "behave", "description": "what the next polls do: {\"as\": ok|fail|spin}"},
            {"name": "ticks", "description": "how many polls published"}
        ]
    }"#;
    const POLL: Option<Poll> = Some(Poll { action: "tick", interval_ms: 20 });

    fn execute(&mut self, request: &Request) -> Result<Output> {
        match request.action.as_str() {
            "tick" => self.tick(),
            "behave" => match request.params["as"].as_str() {
                Some(behaviour @ ("ok" | "fail" | "spin")) => {
                    self.behaviour = behaviour.to_owned();
                    Ok("ok".into())
                }
                _ => bail!("\"as\" must be ok, fail or spin"),
            },
            "ticks" => Ok(Json::object([("n", Json::from(self.ticks))]).into()),
            other => bail!("unknown action '{other}'"),
        }
    }
}

export!(Ticker);
