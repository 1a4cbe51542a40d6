//! An obs-websocket 5.x client (RPC version 1) over the host's WebSocket API.
//!
//! Hello (op 0) -> Identify (op 1, with the challenge authentication when OBS
//! asks for it) -> Identified (op 2); then Requests (op 6), each answered by a
//! RequestResponse (op 7) with the same requestId. Events (op 5) are
//! subscribed to only by sessions that ask (`connect_with_events`, as the
//! obs-scenes trigger plugin does); a request skips any that arrive.

use wasmdeck_pdk::host::{Message, WebSocket};
use wasmdeck_pdk::{base64, ErrorKind, Error, Json, Result};

use crate::sha256::sha256;

pub const SUBPROTOCOL: &str = "obswebsocket.json";
const RPC_VERSION: i64 = 1;
/// How long to wait for each message from OBS.
const WAIT_MS: u32 = 3000;
/// Close code with which OBS refuses a wrong password.
const AUTHENTICATION_FAILED: u16 = 4009;

/// `base64(sha256(base64(sha256(password + salt)) + challenge))`, as obs-websocket defines it.
pub fn authentication(password: &str, salt: &str, challenge: &str) -> String {
    let secret = base64::encode(sha256(format!("{password}{salt}").as_bytes()));
    base64::encode(sha256(format!("{secret}{challenge}").as_bytes()))
}

/// An identified connection to OBS.
pub struct Session {
    ws: WebSocket,
    next_id: u64,
}

/// Why a request failed.
pub enum Failure {
    /// The connection was already closed: the request was not sent, and may be retried.
    NotSent(Error),
    /// OBS answered with an error (requestStatus.result false); the session is fine.
    Refused(Error),
    /// Sent, but no answer came (closed, timed out, garbled): the session is in doubt.
    Lost(Error),
}

impl Session {
    /// Connect to OBS at `url` and identify, with `password` if OBS asks for one.
    pub fn connect(url: &str, password: Option<&str>) -> Result<Session> {
        Session::connect_with_events(url, password, 0) // requests only: no events
    }

    /// `connect`, subscribed to the events of the `subscriptions` intents
    /// (obs-websocket's EventSubscription bit flags, e.g. `SCENES`).
    pub fn connect_with_events(url: &str, password: Option<&str>, subscriptions: i64) -> Result<Session> {
        let ws = WebSocket::connect_with(&Json::object([
            ("url", Json::from(url)),
            ("subprotocols", Json::array([SUBPROTOCOL])),
            ("timeout_ms", Json::from(WAIT_MS)),
        ]))
        .map_err(|e| Error::new(format!("cannot connect to OBS at {url}: {e}")))?;
        let hello = next_message(&ws, "Hello")?;
        if hello["op"].as_i64() != Some(0) {
            return Err(Error::new(format!("OBS at {url} did not say Hello: {hello}")));
        }
        let hello = &hello["d"];
        let mut identify = Json::object([
            ("rpcVersion", Json::from(RPC_VERSION)),
            ("eventSubscriptions", Json::from(subscriptions)),
        ]);
        let auth = &hello["authentication"];
        if !auth.is_null() {
            let password = match password {
                Some(password) => password,
                None => {
                    return Err(Error::new(
                        "OBS asks for a password: set `password` in the plugin's configuration \
                         (OBS: Tools > WebSocket Server Settings)",
                    ))
                }
            };
            let (salt, challenge) = match (auth["salt"].as_str(), auth["challenge"].as_str()) {
                (Some(salt), Some(challenge)) => (salt, challenge),
                _ => return Err(Error::new(format!("OBS sent a malformed Hello: {hello}"))),
            };
            identify.insert("authentication", authentication(password, salt, challenge));
        }
        send(&ws, 1, identify).map_err(|e| Error::new(format!("cannot identify with OBS: {e}")))?;
        match ws.recv(WAIT_MS)? {
            Message::Text(text) => {
                let reply = Json::parse(&text)?;
                if reply["op"].as_i64() != Some(2) {
                    return Err(Error::new(format!("OBS did not answer Identify: {text}")));
                }
            }
            Message::Closed { code: Some(AUTHENTICATION_FAILED), .. } => {
                return Err(Error::new(
                    "OBS refused the password (authentication failed): check `password` in the \
                     plugin's configuration",
                ))
            }
            Message::Closed { code, reason } => return Err(closed("Identify", code, &reason)),
            Message::Timeout => return Err(Error::new("OBS did not answer Identify in time")),
            Message::Binary(_) => return Err(Error::new("OBS sent a binary message")),
        }
        Ok(Session { ws, next_id: 1 })
    }

    /// Perform one request; its `responseData` (`Null` when there is none).
    pub fn request(&mut self, request_type: &str, data: Option<Json>) -> Result<Json, Failure> {
        let id = format!("wasmdeck-{}", self.next_id);
        self.next_id += 1;
        let mut d = Json::object([("requestType", Json::from(request_type)), ("requestId", Json::from(&id))]);
        if let Some(data) = data {
            d.insert("requestData", data);
        }
        if let Err(error) = send(&self.ws, 6, d) {
            let retry = matches!(error.kind, ErrorKind::Closed | ErrorKind::InvalidRequest);
            let error = Error::new(format!("cannot send {request_type} to OBS: {error}"));
            return Err(if retry { Failure::NotSent(error) } else { Failure::Lost(error) });
        }
        loop {
            let message = next_message(&self.ws, request_type).map_err(Failure::Lost)?;
            // Skip events (op 5) and anything that is not our answer.
            if message["op"].as_i64() != Some(7) || message["d"]["requestId"].as_str() != Some(&id) {
                continue;
            }
            let d = &message["d"];
            let status = &d["requestStatus"];
            if status["result"].as_bool() == Some(true) {
                return Ok(d["responseData"].clone());
            }
            return Err(Failure::Refused(refused(request_type, status)));
        }
    }
}

impl Session {
    /// The next event (op 5, its `d`), waiting at most `wait_ms`; `None` when none came.
    pub fn next_event(&mut self, wait_ms: u32) -> Result<Option<Json>, Failure> {
        match self.ws.recv(wait_ms) {
            Ok(Message::Text(text)) => {
                let message = Json::parse(&text).map_err(|e| Failure::Lost(e.into()))?;
                // Anything but an event (a late answer) is not for the caller.
                Ok(if message["op"].as_i64() == Some(5) { Some(message["d"].clone()) } else { None })
            }
            Ok(Message::Timeout) => Ok(None),
            Ok(Message::Closed { code, reason }) => Err(Failure::Lost(closed("events", code, &reason))),
            Ok(Message::Binary(_)) => Err(Failure::Lost(Error::new("OBS sent a binary message"))),
            Err(error) => Err(Failure::Lost(error.into())),
        }
    }
}

/// obs-websocket's EventSubscription flag for scene events (CurrentProgramSceneChanged, ...).
pub const SCENES: i64 = 1 << 2;

fn send(ws: &WebSocket, op: i64, d: Json) -> Result<(), wasmdeck_pdk::HostError> {
    ws.send_text(&Json::object([("op", Json::from(op)), ("d", d)]).to_string())
}

/// The next text message, parsed; an error for a close, a timeout or anything unreadable.
fn next_message(ws: &WebSocket, waiting_for: &str) -> Result<Json> {
    match ws.recv(WAIT_MS)? {
        Message::Text(text) => Ok(Json::parse(&text)?),
        Message::Closed { code, reason } => Err(closed(waiting_for, code, &reason)),
        Message::Timeout => Err(Error::new(format!("OBS did not answer {waiting_for} in time"))),
        Message::Binary(_) => Err(Error::new("OBS sent a binary message (expected JSON text)")),
    }
}

fn closed(waiting_for: &str, code: Option<u16>, reason: &str) -> Error {
    let code = code.map_or_else(|| "no code".to_owned(), |c| c.to_string());
    let reason = if reason.is_empty() { String::new() } else { format!(": {reason}") };
    Error::new(format!("OBS closed the connection while we waited for {waiting_for} ({code}{reason})"))
}

/// OBS's refusal, with its comment and code (and what the common codes mean).
fn refused(request_type: &str, status: &Json) -> Error {
    let code = status["code"].as_i64().unwrap_or(0);
    let comment = match status["comment"].as_str() {
        Some(comment) if !comment.is_empty() => comment.to_owned(),
        _ => match code {
            500 => "the output is already running".to_owned(),
            501 => "the output is not running".to_owned(),
            600 => "the resource was not found".to_owned(),
            _ => "no reason given".to_owned(),
        },
    };
    Error::new(format!("OBS refused {request_type}: {comment} (code {code})"))
}

#[cfg(test)]
mod tests {
    use super::authentication;

    #[test]
    fn authentication_as_the_protocol_document_shows() {
        assert_eq!(
            authentication(
                "supersecretpassword",
                "lM1GncleQOaCu9lT1yeUZhFYnqhsLLP1G5lAGo3ixaI=",
                "+IxH4CnCiqpX1rM9scsNynZzbOe4KhDeYcTNS3PDaeY="
            ),
            "1Ct943GAT+6YQUUX47Ia/ncufilbe6+oD6lY+5kaCu4="
        );
        assert_eq!(authentication("pässwörd ✓", "c2FsdA==", "Y2hhbGxlbmdl"), "imW1ok0gU7mAnFS/WPapP2iXSa4XhpjRIjlJbp8L42w=");
    }
}
