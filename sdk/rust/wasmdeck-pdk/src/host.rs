//! The host's functions (import module `wasmdeck`, docs/host-api.md).
//!
//! Each helper sends a JSON request and returns the parsed response, or a
//! [`HostError`] whose [`ErrorKind`] the plugin can match on (`Denied` when
//! the user did not grant the capability, `Timeout`, `Connection`, ...).
//! A helper imports only its own host function, and the linker keeps only
//! the imports a plugin calls: a plugin that never calls `http_get` needs no
//! `network` grant.

use std::fmt;

use crate::base64;
use crate::json::Json;

/// The raw imports. Every JSON call has the shape `(ptr, len) -> response length`.
pub mod sys {
    #[cfg(target_arch = "wasm32")]
    #[link(wasm_import_module = "wasmdeck")]
    extern "C" {
        pub fn set_output(ptr: *const u8, len: usize);
        pub fn set_error(ptr: *const u8, len: usize);
        pub fn log(level: i32, ptr: *const u8, len: usize);
        pub fn response_read(ptr: *mut u8, len: usize) -> i32;
        pub fn config_get(ptr: *const u8, len: usize) -> i32;
        pub fn http_request(ptr: *const u8, len: usize) -> i32;
        pub fn ws_connect(ptr: *const u8, len: usize) -> i32;
        pub fn ws_send(ptr: *const u8, len: usize) -> i32;
        pub fn ws_recv(ptr: *const u8, len: usize) -> i32;
        pub fn ws_close(ptr: *const u8, len: usize) -> i32;
        pub fn process_run(ptr: *const u8, len: usize) -> i32;
        pub fn kv_get(ptr: *const u8, len: usize) -> i32;
        pub fn kv_set(ptr: *const u8, len: usize) -> i32;
        pub fn kv_delete(ptr: *const u8, len: usize) -> i32;
        pub fn kv_list(ptr: *const u8, len: usize) -> i32;
        pub fn event_publish(ptr: *const u8, len: usize) -> i32;
        pub fn plugin_call(ptr: *const u8, len: usize) -> i32;
        pub fn state_get(ptr: *const u8, len: usize) -> i32;
        pub fn state_set(ptr: *const u8, len: usize) -> i32;
        pub fn state_delete(ptr: *const u8, len: usize) -> i32;
        pub fn state_list(ptr: *const u8, len: usize) -> i32;
    }

    // Off wasm (the kit's own unit tests run natively) there is no host.
    #[cfg(not(target_arch = "wasm32"))]
    mod native {
        fn no_host() -> ! {
            panic!("the wasmdeck host functions exist only in a wasm32 plugin")
        }
        pub unsafe fn set_output(_: *const u8, _: usize) {
            no_host()
        }
        pub unsafe fn set_error(_: *const u8, _: usize) {
            no_host()
        }
        pub unsafe fn log(_: i32, _: *const u8, _: usize) {
            no_host()
        }
        pub unsafe fn response_read(_: *mut u8, _: usize) -> i32 {
            no_host()
        }
        macro_rules! json_calls {
            ($($name:ident),*) => {$(
                pub unsafe extern "C" fn $name(_: *const u8, _: usize) -> i32 {
                    no_host()
                }
            )*};
        }
        json_calls!(
            config_get, http_request, ws_connect, ws_send, ws_recv, ws_close, process_run,
            kv_get, kv_set, kv_delete, kv_list, event_publish, plugin_call, state_get, state_set,
            state_delete, state_list
        );
    }
    #[cfg(not(target_arch = "wasm32"))]
    pub use native::*;
}

/// A host function taking a JSON request, e.g. `sys::kv_list`.
pub type HostFunction = unsafe extern "C" fn(*const u8, usize) -> i32;

/// What kind of failure a host call reported (the host's `error.kind`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The capability was not granted (the host also warns the user).
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
    /// An event past the hop limit: events publishing events in a loop.
    Loop,
    /// A plugin call that would come back to a plugin already in the chain.
    Cycle,
    /// A chain of plugin calls deeper than the host allows.
    Depth,
    /// No plugin (or action) by that name.
    NotFound,
    /// The called plugin failed; the message says how.
    Failed,
    /// The host's response was not what the kit expected (not JSON, a field missing).
    BadResponse,
    /// A kind this kit does not know yet.
    Other(String),
}

impl ErrorKind {
    fn from_name(name: &str) -> ErrorKind {
        match name {
            "denied" => ErrorKind::Denied,
            "invalid_request" => ErrorKind::InvalidRequest,
            "timeout" => ErrorKind::Timeout,
            "connection" => ErrorKind::Connection,
            "tls" => ErrorKind::Tls,
            "too_large" => ErrorKind::TooLarge,
            "redirects" => ErrorKind::Redirects,
            "closed" => ErrorKind::Closed,
            "quota" => ErrorKind::Quota,
            "limit" => ErrorKind::Limit,
            "process" => ErrorKind::Process,
            "loop" => ErrorKind::Loop,
            "cycle" => ErrorKind::Cycle,
            "depth" => ErrorKind::Depth,
            "not_found" => ErrorKind::NotFound,
            "failed" => ErrorKind::Failed,
            other => ErrorKind::Other(other.to_owned()),
        }
    }

    /// The host's name for the kind: `"denied"`, `"timeout"`, ...
    pub fn as_str(&self) -> &str {
        match self {
            ErrorKind::Denied => "denied",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::Tls => "tls",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Redirects => "redirects",
            ErrorKind::Closed => "closed",
            ErrorKind::Quota => "quota",
            ErrorKind::Limit => "limit",
            ErrorKind::Process => "process",
            ErrorKind::Loop => "loop",
            ErrorKind::Cycle => "cycle",
            ErrorKind::Depth => "depth",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Failed => "failed",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::Other(name) => name,
        }
    }
}

/// A host call that failed: its kind and the host's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostError {
    pub kind: ErrorKind,
    pub message: String,
}

impl HostError {
    fn bad_response(what: &str, response: &Json) -> HostError {
        let mut text = response.to_string();
        if text.len() > 200 {
            let mut end = 200;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str("...");
        }
        HostError { kind: ErrorKind::BadResponse, message: format!("{what}: unexpected response {text}") }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HostError {}

/// Call a JSON host function with `request`; the parsed response, or the
/// host's `{"error": ...}` as a `HostError`.
pub fn call(function: HostFunction, request: &Json) -> Result<Json, HostError> {
    let request = request.to_string();
    // SAFETY: the host reads `len` bytes at `ptr`, which the string owns.
    let n = unsafe { function(request.as_ptr(), request.len()) };
    let bytes = take_response(n)?;
    let response = Json::parse_bytes(&bytes).map_err(|e| HostError {
        kind: ErrorKind::BadResponse,
        message: format!("the host's response is not JSON: {e}"),
    })?;
    match response.get("error") {
        None | Some(Json::Null) => Ok(response),
        Some(error) => {
            let kind = ErrorKind::from_name(error["kind"].as_str().unwrap_or(""));
            let message = error["message"].as_str().unwrap_or(kind.as_str()).to_owned();
            Err(HostError { kind, message })
        }
    }
}

/// Copy the pending response (`n` bytes, as the host call said) out of the host.
fn take_response(n: i32) -> Result<Vec<u8>, HostError> {
    let n = usize::try_from(n).map_err(|_| HostError {
        kind: ErrorKind::BadResponse,
        message: format!("the host answered with a negative length ({n})"),
    })?;
    let mut buffer: Vec<u8> = Vec::with_capacity(n);
    // SAFETY: the buffer has room for n bytes; the host writes at most n.
    let got = unsafe { sys::response_read(buffer.as_mut_ptr(), n) };
    match usize::try_from(got) {
        Ok(got) if got <= n => {
            // SAFETY: the host initialised the first `got` bytes.
            unsafe { buffer.set_len(got) };
            Ok(buffer)
        }
        _ => Err(HostError {
            kind: ErrorKind::BadResponse,
            message: format!("the host copied {got} bytes of a {n}-byte response"),
        }),
    }
}

/// Text or bytes from a response field `name` or `name_base64`.
fn bytes_field(response: &Json, name: &str) -> Option<Vec<u8>> {
    if let Some(text) = response[name].as_str() {
        return Some(text.as_bytes().to_vec());
    }
    response[format!("{name}_base64").as_str()].as_str().and_then(base64::decode)
}

// ---- configuration ------------------------------------------------------------------

/// The configuration value `key` (given by the user), or `Json::Null` when unset.
pub fn config(key: &str) -> Result<Json, HostError> {
    let response = call(sys::config_get, &Json::object([("key", Json::from(key))]))?;
    Ok(response["value"].clone())
}

/// The whole configuration, an object.
pub fn config_all() -> Result<Json, HostError> {
    let response = call(sys::config_get, &Json::Object(Vec::new()))?;
    Ok(response["value"].clone())
}

// ---- HTTP (capability `network`) -----------------------------------------------------

/// What an HTTP request answered.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    /// The URL that answered (after redirects).
    pub url: String,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as text, if it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Json, crate::json::ParseError> {
        Json::parse_bytes(&self.body)
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let found = self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name));
        found.map(|(_, v)| v.as_str())
    }
}

/// Send an HTTP request given as the host's JSON request object
/// (`method`, `url`, `headers`, `body` or `body_base64`, `timeout_ms`, `follow_redirects`).
pub fn http_request(request: &Json) -> Result<HttpResponse, HostError> {
    let response = call(sys::http_request, request)?;
    let status = response["status"].as_i64().and_then(|s| u16::try_from(s).ok());
    let body = bytes_field(&response, "body");
    let (status, body) = match (status, body) {
        (Some(status), Some(body)) => (status, body),
        _ => return Err(HostError::bad_response("http_request", &response)),
    };
    let headers = response["headers"].as_array().unwrap_or(&[]).iter();
    let headers = headers
        .filter_map(|pair| Some((pair[0].as_str()?.to_owned(), pair[1].as_str()?.to_owned())))
        .collect();
    Ok(HttpResponse {
        status,
        reason: response["reason"].as_str().unwrap_or("").to_owned(),
        headers,
        url: response["url"].as_str().unwrap_or("").to_owned(),
        body,
    })
}

/// GET `url`.
pub fn http_get(url: &str) -> Result<HttpResponse, HostError> {
    http_request(&Json::object([("method", Json::from("GET")), ("url", Json::from(url))]))
}

/// Send `body` as JSON with `method` (`"POST"`, `"PUT"`, ...) to `url`.
pub fn http_send_json(method: &str, url: &str, body: &Json) -> Result<HttpResponse, HostError> {
    http_request(&Json::object([
        ("method", Json::from(method)),
        ("url", Json::from(url)),
        ("headers", Json::object([("Content-Type", Json::from("application/json"))])),
        ("body", Json::from(body.to_string())),
    ]))
}

// ---- WebSocket (capability `network`) -------------------------------------------------

/// One message (or the lack of one) from [`WebSocket::recv`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Vec<u8>),
    /// Nothing arrived within the timeout.
    Timeout,
    /// The peer closed the connection.
    Closed { code: Option<u16>, reason: String },
}

/// A WebSocket connection held by the host for this plugin instance.
///
/// Keep it in your plugin's state to reuse it across calls: the host keeps
/// the connection open between successful calls. Dropping it closes it.
#[derive(Debug)]
pub struct WebSocket {
    id: i64,
    subprotocol: Option<String>,
}

impl WebSocket {
    /// Connect to `url` (`ws://` or `wss://`), offering `subprotocols`.
    pub fn connect(url: &str, subprotocols: &[&str]) -> Result<WebSocket, HostError> {
        let protocols = Json::array(subprotocols.iter().copied());
        WebSocket::connect_with(&Json::object([("url", Json::from(url)), ("subprotocols", protocols)]))
    }

    /// Connect with the host's full request object (`url`, `subprotocols`, `headers`, `timeout_ms`).
    pub fn connect_with(request: &Json) -> Result<WebSocket, HostError> {
        let response = call(sys::ws_connect, request)?;
        let id = response["id"].as_i64().ok_or_else(|| HostError::bad_response("ws_connect", &response))?;
        Ok(WebSocket { id, subprotocol: response["subprotocol"].as_str().map(str::to_owned) })
    }

    /// The host's id for this connection.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The subprotocol the server chose.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    pub fn send_text(&self, text: &str) -> Result<(), HostError> {
        call(sys::ws_send, &Json::object([("id", Json::from(self.id)), ("text", Json::from(text))]))?;
        Ok(())
    }

    pub fn send_binary(&self, data: &[u8]) -> Result<(), HostError> {
        let data = Json::from(base64::encode(data));
        call(sys::ws_send, &Json::object([("id", Json::from(self.id)), ("data_base64", data)]))?;
        Ok(())
    }

    /// The next message, waiting at most `timeout_ms`.
    pub fn recv(&self, timeout_ms: u32) -> Result<Message, HostError> {
        let request = Json::object([("id", Json::from(self.id)), ("timeout_ms", Json::from(timeout_ms))]);
        let response = call(sys::ws_recv, &request)?;
        if let Some(text) = response["text"].as_str() {
            return Ok(Message::Text(text.to_owned()));
        }
        if let Some(data) = response["data_base64"].as_str() {
            let data = base64::decode(data).ok_or_else(|| HostError::bad_response("ws_recv", &response))?;
            return Ok(Message::Binary(data));
        }
        if response["timeout"].as_bool() == Some(true) {
            return Ok(Message::Timeout);
        }
        if response["closed"].as_bool() == Some(true) {
            let code = response["code"].as_i64().and_then(|c| u16::try_from(c).ok());
            let reason = response["reason"].as_str().unwrap_or("").to_owned();
            return Ok(Message::Closed { code, reason });
        }
        Err(HostError::bad_response("ws_recv", &response))
    }

    /// Close the connection.
    pub fn close(mut self) -> Result<(), HostError> {
        let id = std::mem::replace(&mut self.id, CLOSED); // no second close on drop
        call(sys::ws_close, &Json::object([("id", Json::from(id))])).map(|_| ())
    }
}

/// The id of a connection already closed.
const CLOSED: i64 = -1;

impl Drop for WebSocket {
    fn drop(&mut self) {
        if self.id != CLOSED {
            let _ = call(sys::ws_close, &Json::object([("id", Json::from(self.id))]));
        }
    }
}

// ---- processes (capability `process`) ----------------------------------------------

/// What a process run answered.
#[derive(Clone, Debug)]
pub struct ProcessOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The output was cut at the host's limit.
    pub truncated: bool,
}

impl ProcessOutput {
    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Run `argv` (no shell) with `stdin` as its input; `timeout_ms` bounds it
/// (`None`: whatever remains of the call's time).
pub fn process_run(argv: &[&str], stdin: &str, timeout_ms: Option<u32>) -> Result<ProcessOutput, HostError> {
    let mut request = Json::object([("argv", Json::array(argv.iter().copied())), ("stdin", Json::from(stdin))]);
    if let Some(ms) = timeout_ms {
        request.insert("timeout_ms", ms);
    }
    let response = call(sys::process_run, &request)?;
    let exit_code = response["exit_code"].as_i64().and_then(|c| i32::try_from(c).ok());
    match (exit_code, bytes_field(&response, "stdout"), bytes_field(&response, "stderr")) {
        (Some(exit_code), Some(stdout), Some(stderr)) => Ok(ProcessOutput {
            exit_code,
            stdout,
            stderr,
            truncated: response["truncated"].as_bool() == Some(true),
        }),
        _ => Err(HostError::bad_response("process_run", &response)),
    }
}

// ---- key-value state (capability `kv`) -----------------------------------------------

/// The value stored under `key`, or `None`.
pub fn kv_get(key: &str) -> Result<Option<Vec<u8>>, HostError> {
    let response = call(sys::kv_get, &Json::object([("key", Json::from(key))]))?;
    if response["value"].is_null() && response.get("value_base64").is_none() {
        return Ok(None);
    }
    bytes_field(&response, "value").map(Some).ok_or_else(|| HostError::bad_response("kv_get", &response))
}

/// The value stored under `key` as text (invalid UTF-8 replaced), or `None`.
pub fn kv_get_text(key: &str) -> Result<Option<String>, HostError> {
    Ok(kv_get(key)?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}

/// Store `value` (text or bytes) under `key`.
pub fn kv_set(key: &str, value: impl AsRef<[u8]>) -> Result<(), HostError> {
    let value = value.as_ref();
    let field = match std::str::from_utf8(value) {
        Ok(text) => ("value", Json::from(text)),
        Err(_) => ("value_base64", Json::from(base64::encode(value))),
    };
    call(sys::kv_set, &Json::object([("key", Json::from(key)), field]))?;
    Ok(())
}

/// Delete `key`; whether it was there.
pub fn kv_delete(key: &str) -> Result<bool, HostError> {
    let response = call(sys::kv_delete, &Json::object([("key", Json::from(key))]))?;
    Ok(response["deleted"].as_bool() == Some(true))
}

/// The keys starting with `prefix` (`""`: all).
pub fn kv_list(prefix: &str) -> Result<Vec<String>, HostError> {
    let response = call(sys::kv_list, &Json::object([("prefix", Json::from(prefix))]))?;
    let keys = response["keys"].as_array().ok_or_else(|| HostError::bad_response("kv_list", &response))?;
    Ok(keys.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect())
}

// ---- events (capability `events:publish:PATTERN`) -------------------------------------

/// Publish `payload` (any JSON) on `topic`; how many subscribers it was queued for.
pub fn event_publish(topic: &str, payload: Json) -> Result<u64, HostError> {
    let response = call(sys::event_publish, &Json::object([("topic", Json::from(topic)), ("payload", payload)]))?;
    response["delivered"].as_i64().map(|n| n as u64).ok_or_else(|| HostError::bad_response("event_publish", &response))
}

// ---- other plugins (capability `plugins:NAME[:ACTION]`) -------------------------------

/// Run `action` of the plugin `plugin` with `params` (an object); its output.
pub fn plugin_call(plugin: &str, action: &str, params: Json) -> Result<Vec<u8>, HostError> {
    let request = Json::object([("plugin", Json::from(plugin)), ("action", Json::from(action)), ("params", params)]);
    let response = call(sys::plugin_call, &request)?;
    bytes_field(&response, "output").ok_or_else(|| HostError::bad_response("plugin_call", &response))
}

// ---- shared state (capability `state:NAMESPACE[:ro]`) ---------------------------------

/// A shared value and its version (0 and `None` when absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    pub value: Option<Vec<u8>>,
    pub version: u64,
}

fn state_request(namespace: &str, key: &str) -> Vec<(&'static str, Json)> {
    vec![("namespace", Json::from(namespace)), ("key", Json::from(key))]
}

/// The value of `key` in the shared `namespace`, with its version.
pub fn state_get(namespace: &str, key: &str) -> Result<Versioned, HostError> {
    let response = call(sys::state_get, &Json::object(state_request(namespace, key)))?;
    let version = response["version"].as_i64().ok_or_else(|| HostError::bad_response("state_get", &response))?;
    Ok(Versioned { value: bytes_field(&response, "value"), version: version as u64 })
}

/// Store `value` under `key`; with `version`, only if the key still has that
/// version (compare-and-swap; 0: only if absent). `(stored, the version now)`.
pub fn state_set(namespace: &str, key: &str, value: impl AsRef<[u8]>, version: Option<u64>) -> Result<(bool, u64), HostError> {
    let value = value.as_ref();
    let mut request = state_request(namespace, key);
    request.push(match std::str::from_utf8(value) {
        Ok(text) => ("value", Json::from(text)),
        Err(_) => ("value_base64", Json::from(base64::encode(value))),
    });
    if let Some(version) = version {
        request.push(("version", Json::from(version)));
    }
    let response = call(sys::state_set, &Json::object(request))?;
    let now = response["version"].as_i64().ok_or_else(|| HostError::bad_response("state_set", &response))?;
    Ok((response["ok"].as_bool() == Some(true), now as u64))
}

/// Delete `key` (with `version`: only if it still has it); whether it was deleted.
pub fn state_delete(namespace: &str, key: &str, version: Option<u64>) -> Result<bool, HostError> {
    let mut request = state_request(namespace, key);
    if let Some(version) = version {
        request.push(("version", Json::from(version)));
    }
    let response = call(sys::state_delete, &Json::object(request))?;
    Ok(response["deleted"].as_bool() == Some(true))
}

/// The keys of the shared `namespace` starting with `prefix`.
pub fn state_list(namespace: &str, prefix: &str) -> Result<Vec<String>, HostError> {
    let request = Json::object([("namespace", Json::from(namespace)), ("prefix", Json::from(prefix))]);
    let response = call(sys::state_list, &request)?;
    let keys = response["keys"].as_array().ok_or_else(|| HostError::bad_response("state_list", &response))?;
    Ok(keys.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect())
}
