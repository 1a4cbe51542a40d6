//! rust-teamwork: events, plugin calls and shared state through the Rust kit:
//! the teamwork contract of tests/test_teamwork.py.

use wasmdeck_pdk::host::{self, HostError, HostFunction};
use wasmdeck_pdk::{bail, export, Json, Output, Plugin, Request, Result};

#[derive(Default)]
struct Teamwork {
    seen: Vec<Json>,
}

/// The host's response as the contract outputs it: the answer, or its error.
fn answer(result: std::result::Result<Json, HostError>) -> Output {
    match result {
        Ok(response) => response.into(),
        Err(error) => Json::object([(
            "error",
            Json::object([("kind", Json::from(error.kind.as_str())), ("message", Json::from(error.message))]),
        )])
        .into(),
    }
}

fn relay(function: HostFunction, params: &Json) -> Output {
    answer(host::call(function, params))
}

impl Plugin for Teamwork {
    const METADATA: &'static str = r#"{
        "name": "rust-teamwork",
        "version": "0.1.0",
        "description": "Events, plugin calls and shared state through the Rust kit",
        "capabilities": ["events", "plugins", "state"],
        "subscribe": [{"topic": "*", "action": "react"}],
        "actions": [
            {"name": "publish", "description": "event_publish with the params as the request"},
            {"name": "call", "description": "plugin_call with the params as the request"},
            {"name": "state-get", "description": "state_get with the params"},
            {"name": "state-set", "description": "state_set with the params"},
            {"name": "state-delete", "description": "state_delete with the params"},
            {"name": "state-list", "description": "state_list with the params"},
            {"name": "add", "description": "add 1 to a shared counter, times times, by compare-and-swap"},
            {"name": "react", "description": "an event: kept, and bounced to config bounce_to"},
            {"name": "seen", "description": "the events kept so far"},
            {"name": "echo", "description": "the params"},
            {"name": "spin", "description": "loops until stopped"}
        ]
    }"#;

    fn execute(&mut self, request: &Request) -> Result<Output> {
        let params = &request.params;
        Ok(match request.action.as_str() {
            "publish" => relay(host::sys::event_publish, params),
            "call" => relay(host::sys::plugin_call, params),
            "state-get" => relay(host::sys::state_get, params),
            "state-set" => relay(host::sys::state_set, params),
            "state-delete" => relay(host::sys::state_delete, params),
            "state-list" => relay(host::sys::state_list, params),
            "add" => add(params)?,
            "react" => {
                self.seen.push(params.clone());
                if let Json::String(to) = host::config("bounce_to")? {
                    // The loop tests expect the refusal to end the bouncing, not the call.
                    let _ = host::event_publish(&to, params["payload"].clone());
                }
                "ok".into()
            }
            "seen" => Json::from(self.seen.clone()).into(),
            "echo" => params.clone().into(),
            "spin" => {
                let mut i: u64 = 0;
                loop {
                    // SAFETY: a plain local; volatile so the loop is not optimized away.
                    unsafe { std::ptr::write_volatile(&mut i, i.wrapping_add(1)) };
                }
            }
            other => bail!("unknown action '{other}'"),
        })
    }
}

fn add(params: &Json) -> Result<Output> {
    let (namespace, key) = match (params["namespace"].as_str(), params["key"].as_str()) {
        (Some(namespace), Some(key)) => (namespace, key),
        _ => bail!("'namespace' and 'key' must be strings"),
    };
    let times = params["times"].as_i64().unwrap_or(1);
    let (mut done, mut retries, mut value) = (0, 0, 0i64);
    while done < times {
        let now = host::state_get(namespace, key)?;
        let text = now.value.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default();
        value = text.parse::<i64>().unwrap_or(0) + 1;
        let (stored, _) = host::state_set(namespace, key, value.to_string(), Some(now.version))?;
        if stored {
            done += 1;
        } else {
            retries += 1;
        }
    }
    Ok(Json::object([("value", Json::from(value)), ("retries", Json::from(retries))]).into())
}

export!(Teamwork);
