//! rust-counter: a count that survives live reloads, through the Rust kit's
//! `save_state`/`restore_state` (the contract in tests/test_live_reload.py).
use wasmdeck_pdk::{bail, export, Json, Output, Plugin, Request, Result};

const MAX_SEQ: usize = 65536;

struct Counter {
    count: i64,
    duplicates: i64,
    highest: i64,
    generation: i64,
    poison: String,
    seen: Vec<u8>,
}

impl Default for Counter {
    fn default() -> Self {
        Counter { count: 0, duplicates: 0, highest: -1, generation: 0, poison: String::new(), seen: vec![0; MAX_SEQ / 8] }
    }
}

fn number(n: i64) -> Json {
    Json::from(n.max(0) as usize)
}

impl Plugin for Counter {
    const METADATA: &'static str = r#"{"name": "rust-counter", "version": "1.0.0",
        "description": "Counts events; the count survives a live reload",
        "actions": [{"name": "count", "description": "Count one event"},
                    {"name": "report", "description": "What was counted"},
                    {"name": "poison", "description": "Make the next restore fail"},
                    {"name": "cure", "description": "Undo poison"}]}"#;

    fn execute(&mut self, request: &Request) -> Result<Output> {
        match request.action.as_str() {
            "count" => {
                let seq = match request.params["seq"].as_i64() {
                    Some(seq) if (0..MAX_SEQ as i64).contains(&seq) => seq as usize,
                    _ => bail!("seq must be 0-{}", MAX_SEQ - 1),
                };
                let bit = 1u8 << (seq % 8);
                if self.seen[seq / 8] & bit != 0 {
                    self.duplicates += 1;
                } else {
                    self.seen[seq / 8] |= bit;
                    self.count += 1;
                }
                self.highest = self.highest.max(seq as i64);
                Ok(Json::object([("count", number(self.count))]).into())
            }
            "report" => {
                let missing = (0..=self.highest.max(-1))
                    .filter(|&s| s >= 0 && self.seen[s as usize / 8] & (1 << (s % 8)) == 0)
                    .count() as i64;
                Ok(Json::object([
                    ("count", number(self.count)),
                    ("duplicates", number(self.duplicates)),
                    ("missing", number(missing)),
                    ("generation", number(self.generation)),
                    ("version", Json::from("1.0.0")),
                ])
                .into())
            }
            "poison" => {
                self.poison = request.params["how"].as_str().unwrap_or("").to_string();
                Ok(Json::object::<&str>([]).into())
            }
            "cure" => {
                self.poison.clear();
                Ok(Json::object::<&str>([]).into())
            }
            other => bail!("unknown action {other}"),
        }
    }

    fn save_state(&mut self) -> Vec<u8> {
        if self.poison == "big" {
            return vec![0; 5 << 20]; // more than the host's max_state (4 MiB by default)
        }
        let mut out = Vec::new();
        for n in [self.count, self.duplicates, self.highest, self.generation] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.push(self.poison.len() as u8);
        out.extend_from_slice(self.poison.as_bytes());
        out.extend_from_slice(&self.seen);
        out
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<()> {
        if state.len() < 33 {
            bail!("state of {} bytes is too short", state.len());
        }
        let n = |i: usize| i64::from_le_bytes(state[i * 8..i * 8 + 8].try_into().unwrap());
        let poison_len = state[32] as usize;
        let poison = String::from_utf8_lossy(&state[33..33 + poison_len]).to_string();
        match poison.as_str() {
            "trap" => std::process::abort(),
            "refuse" => bail!("poisoned state refused"),
            "spin" => {
                let mut i = 0u64;
                loop {
                    // SAFETY: a volatile write to a local, so the loop is not optimized away.
                    unsafe { std::ptr::write_volatile(&mut i, i.wrapping_add(1)) };
                }
            }
            _ => {}
        }
        *self = Counter {
            count: n(0),
            duplicates: n(1),
            highest: n(2),
            generation: n(3) + 1,
            poison,
            seen: state[33 + poison_len..].to_vec(),
        };
        Ok(())
    }
}

export!(Counter);
