//! {{name}}: a minimal wasmdeck plugin in Rust. Build it with `wasmdeck build`.

use wasmdeck_pdk::{export, Output, Plugin, Request, Result};

#[derive(Default)]
struct Minimal;

impl Plugin for Minimal {
    const METADATA: &'static str = r#"{
        "name": "{{name}}",
        "version": "0.1.0",
        "description": "A minimal wasmdeck plugin",
        "actions": [{"name": "hello", "description": "Say hello"}]
    }"#;

    fn execute(&mut self, _request: &Request) -> Result<Output> {
        // The host only sends actions the metadata declares.
        Ok("hello from {{name}}".into())
    }
}

export!(Minimal);
