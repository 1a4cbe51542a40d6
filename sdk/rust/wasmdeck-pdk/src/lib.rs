//! The wasmdeck plugin development kit for Rust (JSON ABI v1), std only.
//!
//! A plugin is a type implementing [`Plugin`], exported with [`export!`]:
//!
//! ```ignore
//! use wasmdeck_pdk::{bail, export, Json, Output, Plugin, Request, Result};
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     const METADATA: &'static str = r#"{"name": "hello", "version": "0.1.0",
//!         "description": "Says hello", "actions": [{"name": "greet", "description": "Greet"}]}"#;
//!
//!     fn execute(&mut self, request: &Request) -> Result<Output> {
//!         match request.action.as_str() {
//!             "greet" => match request.params["who"].as_str() {
//!                 Some(who) => Ok(format!("hello, {who}").into()),
//!                 None => bail!("greet needs a 'who'"),
//!             },
//!             other => bail!("unknown action {other}"),
//!         }
//!     }
//! }
//!
//! export!(Hello);
//! ```
//!
//! The kit provides the exports the host calls (`alloc`, `dealloc`, `init`,
//! `execute`, `_initialize`, and `save_state`/`restore_state`, which call the
//! trait's `save_state`/`restore_state` on a live reload: docs/reload.md), parses each request into a [`Request`], and
//! hands what `execute` returns to the host: `Ok(output)` as the action's
//! output, `Err(error)` as the error message the user sees. The plugin value
//! lives as long as the plugin instance, so its fields keep state between
//! calls. Host functions are in [`host`] (configuration, HTTP, WebSocket,
//! processes, key-value state) and logging in [`log`] and the `debug!`,
//! `info!`, `warn!`, `error!` macros.
//!
//! A trigger plugin (docs/teamwork.md, "Trigger plugins"), which the host
//! polls, sets [`Plugin::POLL`]; the kit adds `"type": "trigger"` and the
//! `"poll"` to the metadata, and the poll publishes with [`host::event_publish`]:
//!
//! ```ignore
//! const POLL: Option<Poll> = Some(Poll { action: "watch", interval_ms: 100 });
//! ```
//!
//! Build with `wasmdeck build` (cargo, `--target wasm32-wasi`, crate type
//! `cdylib`).

pub mod base64;
pub mod host;
pub mod json;

use std::fmt;

pub use host::{ErrorKind, HostError};
pub use json::Json;

/// The JSON ABI version this kit implements.
pub const ABI_VERSION: u32 = 1;

/// The trigger that caused a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    /// 0-127, or `None` when the trigger has no velocity (a webhook, a shortcut).
    pub velocity: Option<u8>,
    /// The host's current mode, or `None`.
    pub mode: Option<i64>,
    /// When the trigger fired, in milliseconds since the Unix epoch.
    pub timestamp: i64,
}

/// One request from the host.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The action's name, one the metadata declares.
    pub action: String,
    /// The action's parameters: always an object (`{}` when none were given).
    /// The host does not check them against the declared schema: check what you use.
    pub params: Json,
    pub context: Context,
}

impl Request {
    /// Parse the request JSON the host sends to `execute`.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Request, Error> {
        let raw = Json::parse_bytes(bytes).map_err(|e| Error::new(format!("wasmdeck: bad request: {e}")))?;
        let action = match raw["action"].as_str() {
            Some(action) => action.to_owned(),
            None => return Err(Error::new("wasmdeck: bad request: no action")),
        };
        let params = match raw.get("params") {
            Some(params @ Json::Object(_)) => params.clone(),
            None | Some(Json::Null) => Json::Object(Vec::new()),
            Some(other) => {
                return Err(Error::new(format!("wasmdeck: params must be an object, not {}", other.type_name())))
            }
        };
        let context = &raw["context"];
        let velocity = context["velocity"].as_i64().and_then(|v| u8::try_from(v).ok()).filter(|v| *v <= 127);
        Ok(Request {
            action,
            params,
            context: Context {
                velocity,
                mode: context["mode"].as_i64(),
                timestamp: context["timestamp"].as_i64().unwrap_or(0),
            },
        })
    }
}

/// What an action returns to the host.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// No output.
    None,
    Text(String),
    Bytes(Vec<u8>),
    /// Serialized as compact JSON.
    Json(Json),
}

impl From<()> for Output {
    fn from(_: ()) -> Output {
        Output::None
    }
}

impl From<String> for Output {
    fn from(text: String) -> Output {
        Output::Text(text)
    }
}

impl From<&str> for Output {
    fn from(text: &str) -> Output {
        Output::Text(text.to_owned())
    }
}

impl From<Vec<u8>> for Output {
    fn from(bytes: Vec<u8>) -> Output {
        Output::Bytes(bytes)
    }
}

impl From<Json> for Output {
    fn from(value: Json) -> Output {
        Output::Json(value)
    }
}

/// An action's failure: the message the user sees.
///
/// Any `std::error::Error` converts into it (so `?` works on host calls);
/// make one from text with [`Error::new`] or [`bail!`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error { message: message.into() }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(error: E) -> Error {
        Error::new(error.to_string())
    }
}

/// `Result<T, wasmdeck_pdk::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Return early with an error: `bail!("max must be positive, not {}", max)`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return ::std::result::Result::Err($crate::Error::new(::std::format!($($arg)*)))
    };
}

/// How the host polls a trigger plugin ([`Plugin::POLL`]): it calls `action`
/// (one of the declared actions, with empty params) every `interval_ms`
/// milliseconds, from the end of one poll to the start of the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Poll {
    pub action: &'static str,
    pub interval_ms: u32,
}

impl Poll {
    /// The interval a trigger plugin may ask for, as the host checks it
    /// (src/wasmdeck/_metadata.py): 10 ms to a day.
    pub const MIN_MS: u32 = 10;
    pub const MAX_MS: u32 = 86_400_000;
}

/// A wasmdeck plugin: its metadata and what it does with a request.
///
/// `Default` makes the instance the host's first call uses; it then lives as
/// long as the plugin instance (state in its fields survives between calls).
pub trait Plugin: Default + 'static {
    /// The metadata JSON: `name`, `version`, `description`, and usually
    /// `actions` (each with `name`, `description`, a JSON Schema for `params`)
    /// and `capabilities` (e.g. `["network"]`).
    const METADATA: &'static str;

    /// `Some(Poll { .. })` makes the plugin a trigger plugin: the metadata
    /// `init` hands the host is `METADATA` with `"type": "trigger"` and the
    /// `"poll"` set. [`export!`] checks the interval when it compiles; the
    /// host checks that the action is declared when it loads the plugin.
    const POLL: Option<Poll> = None;

    /// Perform one request.
    fn execute(&mut self, request: &Request) -> Result<Output>;

    /// The state to hand the plugin's next version on a live reload
    /// (docs/reload.md): any bytes, at most the host's `max_state` (4 MiB by
    /// default). The default saves nothing: the new version starts afresh.
    fn save_state(&mut self) -> Vec<u8> {
        Vec::new()
    }

    /// Take the state the previous version saved, before the first call;
    /// an `Err` refuses it (the reload fails, the previous version runs on).
    fn restore_state(&mut self, _state: &[u8]) -> Result<()> {
        Ok(())
    }
}

// ---- logging -----------------------------------------------------------------------

/// Log levels, as the host's `log` takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warning = 2,
    Error = 3,
}

/// One message to the plugin's log on the host.
pub fn log(level: Level, message: &str) {
    // SAFETY: the host reads len bytes at ptr, owned by `message`.
    unsafe { host::sys::log(level as i32, message.as_ptr(), message.len()) }
}

/// `debug!("format", args...)`: log at debug level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log($crate::Level::Debug, &::std::format!($($arg)*)) };
}

/// `info!("format", args...)`: log at info level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log($crate::Level::Info, &::std::format!($($arg)*)) };
}

/// `warn!("format", args...)`: log at warning level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log($crate::Level::Warning, &::std::format!($($arg)*)) };
}

/// `error!("format", args...)`: log at error level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log($crate::Level::Error, &::std::format!($($arg)*)) };
}

// ---- the ABI -----------------------------------------------------------------------

/// Export `init`, `execute` and the state pair of a live reload
/// (`save_state`, `restore_state`) for the plugin type: `export!(MyPlugin);`
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        ::std::thread_local! {
            static __WASMDECK_INSTANCE: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                ::std::cell::RefCell::new(::std::option::Option::None);
        }

        fn __wasmdeck_with<R>(f: impl FnOnce(&mut $plugin) -> R) -> R {
            __WASMDECK_INSTANCE.with(|cell| {
                let mut slot = cell.borrow_mut();
                f(slot.get_or_insert_with(<$plugin as ::std::default::Default>::default))
            })
        }

        // A poll interval the host would refuse fails the build here.
        const _: () = $crate::__abi::check_poll(<$plugin as $crate::Plugin>::POLL);

        #[no_mangle]
        pub extern "C" fn init() -> i64 {
            $crate::__abi::init(<$plugin as $crate::Plugin>::METADATA, <$plugin as $crate::Plugin>::POLL)
        }

        #[no_mangle]
        pub extern "C" fn execute(ptr: *const u8, len: i32) -> i32 {
            // SAFETY: the host wrote the request at ptr..ptr+len (memory from `alloc`).
            __wasmdeck_with(|plugin| unsafe { $crate::__abi::execute(plugin, ptr, len) })
        }

        #[no_mangle]
        pub extern "C" fn save_state() -> i64 {
            __wasmdeck_with(|plugin| $crate::__abi::save_state(plugin))
        }

        #[no_mangle]
        pub extern "C" fn restore_state(ptr: *const u8, len: i32) -> i32 {
            // SAFETY: the host wrote the state at ptr..ptr+len (memory from `alloc`).
            __wasmdeck_with(|plugin| unsafe { $crate::__abi::restore_state(plugin, ptr, len) })
        }
    };
}

#[doc(hidden)]
pub mod __abi {
    use super::*;

    fn pack(bytes: &[u8]) -> i64 {
        ((bytes.as_ptr() as usize as i64) << 32) | bytes.len() as i64
    }

    thread_local! {
        // A trigger plugin's metadata, made on the first init, kept for the host to read.
        static TRIGGER_METADATA: std::cell::RefCell<String> = std::cell::RefCell::new(String::new());
    }

    pub fn init(metadata: &'static str, poll: Option<Poll>) -> i64 {
        let poll = match poll {
            Some(poll) => poll,
            None => return pack(metadata.as_bytes()),
        };
        TRIGGER_METADATA.with(|cell| {
            let mut text = cell.borrow_mut();
            if text.is_empty() {
                *text = trigger_metadata(metadata, poll);
            }
            pack(text.as_bytes())
        })
    }

    /// `metadata` with `"type": "trigger"` and the poll set; metadata that is
    /// not a JSON object is kept as it is, for the host to refuse.
    pub fn trigger_metadata(metadata: &str, poll: Poll) -> String {
        match Json::parse(metadata) {
            Ok(mut document @ Json::Object(_)) => {
                let spec = Json::object([("action", Json::from(poll.action)), ("interval_ms", Json::from(poll.interval_ms as i64))]);
                document.insert("type", "trigger");
                document.insert("poll", spec);
                document.to_string()
            }
            _ => metadata.to_owned(),
        }
    }

    /// Fails the constant evaluation in [`export!`] (so the build) for a poll
    /// the host would refuse.
    pub const fn check_poll(poll: Option<Poll>) {
        if let Some(poll) = poll {
            assert!(!poll.action.is_empty(), "Plugin::POLL: action must name the action the host polls");
            assert!(
                poll.interval_ms >= Poll::MIN_MS && poll.interval_ms <= Poll::MAX_MS,
                "Plugin::POLL: interval_ms must be 10-86400000 (milliseconds)"
            );
        }
    }

    /// # Safety
    /// `ptr..ptr+len` must be readable (the host wrote the request there).
    pub unsafe fn execute<P: Plugin>(plugin: &mut P, ptr: *const u8, len: i32) -> i32 {
        let bytes: &[u8] = match usize::try_from(len) {
            Ok(0) => &[],
            Ok(len) if !ptr.is_null() || len == 0 => std::slice::from_raw_parts(ptr, len),
            _ => return fail(&Error::new(format!("wasmdeck: bad request buffer (length {len})"))),
        };
        let result = Request::parse(bytes).and_then(|request| plugin.execute(&request));
        match result {
            Ok(output) => {
                let text;
                let data: &[u8] = match &output {
                    Output::None => return 0,
                    Output::Text(s) => s.as_bytes(),
                    Output::Bytes(b) => b,
                    Output::Json(value) => {
                        text = value.to_string();
                        text.as_bytes()
                    }
                };
                host::sys::set_output(data.as_ptr(), data.len());
                0
            }
            Err(error) => fail(&error),
        }
    }

    thread_local! {
        // What save_state returned, kept until the host has read it.
        static SAVED: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::new());
    }

    pub fn save_state<P: Plugin>(plugin: &mut P) -> i64 {
        let state = plugin.save_state();
        SAVED.with(|saved| {
            let mut saved = saved.borrow_mut();
            *saved = state;
            ((saved.as_ptr() as usize as i64) << 32) | saved.len() as i64
        })
    }

    /// # Safety
    /// `ptr..ptr+len` must be readable (the host wrote the state there).
    pub unsafe fn restore_state<P: Plugin>(plugin: &mut P, ptr: *const u8, len: i32) -> i32 {
        let bytes: &[u8] = match usize::try_from(len) {
            Ok(0) => &[],
            Ok(len) if !ptr.is_null() => std::slice::from_raw_parts(ptr, len),
            _ => return fail(&Error::new(format!("wasmdeck: bad state buffer (length {len})"))),
        };
        match plugin.restore_state(bytes) {
            Ok(()) => 0,
            Err(error) => fail(&error),
        }
    }

    fn fail(error: &Error) -> i32 {
        let message = error.message();
        // SAFETY: the host copies len bytes at ptr, owned by `message`.
        unsafe { host::sys::set_error(message.as_ptr(), message.len()) };
        1
    }
}

// Memory for the host to write requests into, and the WASI reactor's start.
#[cfg(target_arch = "wasm32")]
mod exports {
    use std::alloc::{alloc as allocate, dealloc as deallocate, Layout};

    fn layout(len: i32) -> Option<Layout> {
        Layout::from_size_align(usize::try_from(len).ok()?.max(1), 1).ok()
    }

    #[no_mangle]
    pub extern "C" fn alloc(len: i32) -> *mut u8 {
        match layout(len) {
            // SAFETY: the layout has a non-zero size.
            Some(layout) => unsafe { allocate(layout) },
            None => std::ptr::null_mut(),
        }
    }

    #[no_mangle]
    pub unsafe extern "C" fn dealloc(ptr: *mut u8, len: i32) {
        if let (false, Some(layout)) = (ptr.is_null(), layout(len)) {
            deallocate(ptr, layout)
        }
    }

    extern "C" {
        fn __wasm_call_ctors();
    }

    /// Runs the C library's constructors (WASI preopens, environment) once;
    /// the host calls it before anything else.
    #[no_mangle]
    pub extern "C" fn _initialize() {
        // SAFETY: called once by the host, before any other export.
        unsafe { __wasm_call_ctors() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_makes_the_metadata_a_trigger_plugins() {
        let poll = Poll { action: "tick", interval_ms: 20 };
        let text = __abi::trigger_metadata(r#"{"name": "t", "type": "action", "actions": [{"name": "tick"}]}"#, poll);
        assert_eq!(
            text,
            r#"{"name":"t","type":"trigger","actions":[{"name":"tick"}],"poll":{"action":"tick","interval_ms":20}}"#
        );
        // Not an object: as it is, for the host to say what is wrong.
        assert_eq!(__abi::trigger_metadata("[1]", poll), "[1]");
        __abi::check_poll(Some(poll));
        __abi::check_poll(None);
    }

    #[test]
    #[should_panic(expected = "interval_ms must be 10-86400000")]
    fn a_poll_out_of_range_is_refused() {
        __abi::check_poll(Some(Poll { action: "tick", interval_ms: 5 }));
    }
}
