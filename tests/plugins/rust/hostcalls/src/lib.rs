//! rust-hostcalls: every host API through the Rust kit, one action each: the
//! hostcalls contract of tests/test_pdk_hostcalls.py, which calls them against
//! the real host (tests/test_pdk_rust.py tests what only Rust has).

use wasmdeck_pdk::host::{self, Message, WebSocket};
use wasmdeck_pdk::{bail, export, warn, ErrorKind, Json, Output, Plugin, Request, Result};

#[derive(Default)]
struct Hostcalls {
    calls: u32,
}

impl Plugin for Hostcalls {
    const METADATA: &'static str = r#"{
        "name": "rust-hostcalls",
        "version": "0.1.0",
        "description": "Calls every host API through the Rust kit",
        "capabilities": ["kv", "network", "process"],
        "actions": [
            {"name": "kv", "description": "kv_set (when a value is given) then kv_get"},
            {"name": "kv-more", "description": "binary values, kv_list, kv_delete"},
            {"name": "config", "description": "a configuration value as text"},
            {"name": "http-get", "description": "GET a URL"},
            {"name": "http-post", "description": "POST JSON to a URL"},
            {"name": "log", "description": "log a message at warning level"},
            {"name": "denied", "description": "an ungranted request, handled"},
            {"name": "fail-host", "description": "an ungranted request, not handled"},
            {"name": "process", "description": "run a process"},
            {"name": "ws-echo", "description": "a WebSocket session with an echo server"},
            {"name": "context", "description": "the request as the kit parsed it"},
            {"name": "count", "description": "state kept between calls"},
            {"name": "panic", "description": "panics"}
        ]
    }"#;

    fn execute(&mut self, request: &Request) -> Result<Output> {
        self.calls += 1;
        let params = &request.params;
        let text = |name: &str| -> Result<String> {
            match params[name].as_str() {
                Some(value) => Ok(value.to_owned()),
                None => bail!("'{name}' must be a string"),
            }
        };
        match request.action.as_str() {
            "kv" => {
                let key = text("key")?;
                if !params["value"].is_null() {
                    host::kv_set(&key, text("value")?)?;
                }
                Ok(match host::kv_get(&key)? {
                    Some(value) => value.into(),
                    None => "(none)".into(),
                })
            }
            "kv-more" => kv_more(),
            "config" => Ok(match host::config(&text("key")?)? {
                Json::Null => "(unset)".into(),
                Json::String(value) => value.into(),
                other => other.to_string().into(),
            }),
            "http-get" => {
                let response = host::http_get(&text("url")?)?;
                let body = response.text().unwrap_or("(binary)");
                Ok(Json::object([("status", response.status.into()), ("body", body.into())]).into())
            }
            "http-post" => {
                let body = Json::object([("on", true.into())]);
                let response = host::http_send_json("POST", &text("url")?, &body)?;
                let reply = response.json()?;
                let kind = response.header("content-type").unwrap_or("?");
                Ok(Json::object([
                    ("status", response.status.into()),
                    ("reply", reply),
                    ("type", kind.into()),
                ])
                .into())
            }
            "log" => {
                warn!("{}", text("message")?);
                Ok("logged".into())
            }
            "denied" => match host::http_get("http://127.0.0.1:1/") {
                Ok(_) => bail!("the request went through"),
                Err(error) => Ok(error.kind.as_str().into()),
            },
            "fail-host" => {
                host::http_get("http://127.0.0.1:1/")?;
                Ok(().into())
            }
            "process" => {
                let argv: Vec<&str> = params["argv"].as_array().unwrap_or(&[]).iter().filter_map(Json::as_str).collect();
                let out = host::process_run(&argv, "", Some(5000))?;
                Ok(Json::object([
                    ("exit_code", out.exit_code.into()),
                    ("stdout", out.stdout_text().into()),
                    ("stderr", out.stderr_text().into()),
                    ("truncated", out.truncated.into()),
                ])
                .into())
            }
            "ws-echo" => ws_echo(&text("url")?, &text("text")?),
            "context" => {
                let c = &request.context;
                Ok(Json::object([
                    ("action", request.action.as_str().into()),
                    ("velocity", c.velocity.into()),
                    ("mode", c.mode.into()),
                    ("timestamp", c.timestamp.into()),
                    ("params", request.params.clone()),
                ])
                .into())
            }
            "count" => Ok(Json::object([("calls", self.calls.into())]).into()),
            "panic" => panic!("pad {} fell off", self.calls),
            other => bail!("unknown action {other}"),
        }
    }
}

fn kv_more() -> Result<Output> {
    let binary = [0u8, 0xff, 0xfe, b'x'];
    host::kv_set("bin", binary)?;
    host::kv_set("other", "text")?;
    let same = host::kv_get("bin")?.as_deref() == Some(&binary[..]);
    let keys = host::kv_list("")?;
    let prefixed = host::kv_list("b")?;
    let deleted = host::kv_delete("other")?;
    let again = host::kv_delete("other")?;
    let gone = host::kv_get("other")?.is_none();
    Ok(Json::object([
        ("same", same.into()),
        ("keys", Json::array(keys)),
        ("prefixed", Json::array(prefixed)),
        ("deleted", deleted.into()),
        ("again", again.into()),
        ("gone", gone.into()),
    ])
    .into())
}

fn ws_echo(url: &str, text: &str) -> Result<Output> {
    let ws = WebSocket::connect(url, &["echo.v1"])?;
    let subprotocol = ws.subprotocol().map(str::to_owned);
    ws.send_text(text)?;
    let echoed = match ws.recv(2000)? {
        Message::Text(text) => text,
        other => bail!("expected text, got {other:?}"),
    };
    ws.send_binary(&[1, 2, 0xff])?;
    let binary = match ws.recv(2000)? {
        Message::Binary(data) if data == [1, 2, 0xff] => data.len(),
        other => bail!("expected the bytes back, got {other:?}"),
    };
    ws.send_text("bye")?;
    let closed = match ws.recv(2000)? {
        Message::Closed { code, .. } => code,
        other => bail!("expected a close, got {other:?}"),
    };
    let after = match ws.send_text("anyone?") {
        Ok(()) => "sent".to_owned(),
        Err(error) if error.kind == ErrorKind::Closed => "closed".to_owned(),
        Err(error) => error.kind.as_str().to_owned(),
    };
    ws.close()?; // frees the host's slot (dropping it would too)
    Ok(Json::object([
        ("subprotocol", subprotocol.into()),
        ("text", echoed.into()),
        ("binary", binary.into()),
        ("closed", closed.into()),
        ("after", after.into()),
    ])
    .into())
}

export!(Hostcalls);
