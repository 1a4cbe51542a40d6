//! {{name}}: a wasmdeck plugin in Rust that takes JSON params and returns JSON.
//!
//!   wasmdeck run build/{{name}}.wasm scale --params '{"max": 254}' --context '{"velocity": 100}'
//!   -> {"value":200,"velocity":100}

use wasmdeck_pdk::{bail, export, Json, Output, Plugin, Request, Result};

#[derive(Default)]
struct Scaler;

impl Plugin for Scaler {
    const METADATA: &'static str = r#"{
        "name": "{{name}}",
        "version": "0.1.0",
        "description": "Scales the trigger's velocity",
        "actions": [{
            "name": "scale",
            "description": "Scale the velocity (0-127) to 0..max",
            "params": {
                "type": "object",
                "properties": {"max": {"type": "integer", "minimum": 1}},
                "additionalProperties": false
            }
        }]
    }"#;

    fn execute(&mut self, request: &Request) -> Result<Output> {
        match request.action.as_str() {
            "scale" => scale(request),
            other => bail!("unknown action {other}"),
        }
    }
}

fn scale(request: &Request) -> Result<Output> {
    let max = match request.params.get("max") {
        None => 127,
        Some(max) => match max.as_i64() {
            Some(n) if n >= 1 => n,
            _ => bail!("max must be a positive integer, not {max}"),
        },
    };
    let velocity = i64::from(request.context.velocity.unwrap_or(127));
    // velocity * max / 127, rounded; in i128 so that no max overflows.
    let value = ((2 * i128::from(velocity) * i128::from(max) + 127) / 254) as i64;
    Ok(Json::object([("value", value.into()), ("velocity", velocity.into())]).into())
}

export!(Scaler);
