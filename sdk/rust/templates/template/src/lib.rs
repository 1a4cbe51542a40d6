//! {{name}}: a wasmdeck plugin in Rust, with the parts most plugins grow:
//!
//! - several actions, routed by name (`match` in `execute`), each declaring a
//!   JSON Schema for its params in the metadata; the host does not check
//!   params against it, so each action checks what it uses;
//! - configuration given by the user, read through the host (`host::config`);
//! - logging to the host's log (`info!`, `warn!`, ...);
//! - errors shown to the user: return `Err` (`bail!`, or `?` on a host call);
//! - state kept in the plugin's fields between calls (one value per instance;
//!   across a live reload too with `save_state`/`restore_state`: docs/reload.md);
//! - test cases in tests.json: `wasmdeck test` builds the plugin and runs them.
//!
//! To use a host API behind a capability (HTTP, WebSocket, processes,
//! key-value state), declare it in "capabilities" (e.g. `["network"]`) and
//! call its helper in `wasmdeck_pdk::host`; the user grants it with `--grant`.

use wasmdeck_pdk::{bail, export, host, info, Json, Output, Plugin, Request, Result};

/// The plugin's state: made with `Default` on the first call, kept between calls.
#[derive(Default)]
struct Greeter {
    greeted: u64,
}

impl Plugin for Greeter {
    const METADATA: &'static str = r#"{
        "name": "{{name}}",
        "version": "0.1.0",
        "description": "Greets people and counts how often it did",
        "author": "you",
        "license": "MIT",
        "actions": [
            {
                "name": "greet",
                "description": "Greet someone, with the greeting from the configuration",
                "params": {
                    "type": "object",
                    "properties": {"who": {"type": "string"}},
                    "required": ["who"]
                }
            },
            {"name": "stats", "description": "How many greetings this instance has made"}
        ]
    }"#;

    fn execute(&mut self, request: &Request) -> Result<Output> {
        match request.action.as_str() {
            "greet" => self.greet(request),
            "stats" => Ok(Json::object([("greeted", self.greeted.into())]).into()),
            other => bail!("unknown action {other}"),
        }
    }
}

impl Greeter {
    fn greet(&mut self, request: &Request) -> Result<Output> {
        let who = match request.params["who"].as_str() {
            Some(who) if !who.is_empty() => who,
            _ => bail!("greet needs a non-empty 'who'"),
        };
        // `?` turns a failed host call into the error the user sees.
        let greeting = host::config("greeting")?;
        let text = greeting.as_str().unwrap_or("Hello, $who!").replace("$who", who);
        self.greeted += 1;
        match request.context.velocity {
            Some(velocity) => info!("greeted {who} (velocity {velocity})"),
            None => info!("greeted {who} (velocity none)"),
        }
        Ok(Json::object([("text", text.into()), ("greeted", self.greeted.into())]).into())
    }
}

export!(Greeter);
