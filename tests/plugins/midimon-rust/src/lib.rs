//! A MIDIMon v2.5 plugin: the host calls `init` for metadata, then
//! `execute(ptr, len)` with the request JSON; the plugin cannot hand output
//! back (it imports nothing from the host), so it answers with its return code.
//!
//! Actions:
//! - `report`: returns 100000 + (current_mode + 1) * 1000 + velocity, where
//!   current_mode is -1 when it is null or absent, so the test can read both
//!   fields from the code.
//! - `allocate`: allocates `params.mib` MiB in one go (a single oversized
//!   allocation), touches it and returns 0.
//! - `sleep`: sleeps `params.seconds` seconds (a WASI clock wait) and returns 0.

use std::alloc::{alloc as raw_alloc, Layout};

const METADATA: &str = concat!(
    "{\"name\":\"midimon-rust\",\"version\":\"0.1.0\",",
    "\"description\":\"A plugin written to MIDIMon's v2.5 ABI\",",
    "\"author\":\"Amiable\",\"license\":\"MIT\",\"type\":\"action\",",
    "\"actions\":[",
    "{\"name\":\"report\",\"description\":\"Report mode and velocity\",\"parameters\":[]},",
    "{\"name\":\"allocate\",\"description\":\"Allocate memory\",\"parameters\":[\"mib\"]},",
    "{\"name\":\"sleep\",\"description\":\"Sleep\",\"parameters\":[\"seconds\"]}],",
    "\"capabilities\":[\"midi\",\"audio\",\"systemcontrol\"]}"
);

#[no_mangle]
pub extern "C" fn alloc(len: i32) -> i32 {
    let layout = Layout::from_size_align(len.max(1) as usize, 8).unwrap();
    unsafe { raw_alloc(layout) as i32 }
}

#[no_mangle]
pub extern "C" fn init() -> i64 {
    ((METADATA.as_ptr() as i64) << 32) | METADATA.len() as i64
}

/// The integer (or null: None) after `"key":` in `text`, if the key is there.
fn number_after(text: &str, key: &str) -> Option<i64> {
    let needle = format!("\"{}\":", key);
    let start = text.find(&needle)? + needle.len();
    let rest = text[start..].trim_start();
    let end = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map(|(i, _)| i)
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[no_mangle]
pub extern "C" fn execute(ptr: i32, len: i32) -> i32 {
    let bytes = unsafe { std::slice::from_raw_parts(ptr as *const u8, len as usize) };
    let request = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => return 2, // MIDIMon's "invalid JSON" code
    };
    let context = match request.find("\"context\":") {
        Some(at) => &request[at..],
        None => return 2,
    };
    if request.contains("\"action\":\"report\"") {
        let mode = number_after(context, "current_mode").unwrap_or(-1);
        let velocity = number_after(context, "velocity").unwrap_or(0);
        return (100_000 + (mode + 1) * 1000 + velocity) as i32;
    }
    if request.contains("\"action\":\"allocate\"") {
        let mib = number_after(request, "mib").unwrap_or(1) as usize;
        let mut block = vec![0u8; mib << 20];
        block[(mib << 20) - 1] = 1;
        return (block[0] + block[(mib << 20) - 1]) as i32 - 1;
    }
    if request.contains("\"action\":\"sleep\"") {
        let seconds = number_after(request, "seconds").unwrap_or(1) as u64;
        std::thread::sleep(std::time::Duration::from_secs(seconds));
        return 0;
    }
    1
}
