//! obs-scenes: a trigger plugin that turns scene changes made in OBS itself
//! into events, `obs.scene-changed` `{"scene": NAME}`, so a deck's LEDs (or
//! any binding or plugin) follow them.
//!
//! The host polls `watch` (metadata `poll`, every 10 ms after the last poll
//! ended; a deck's `poll_ms` overrides it). The plugin keeps an identified
//! obs-websocket session subscribed to scene events open between polls (an
//! instance's WebSockets live on), and each poll waits up to `wait_ms`
//! (config, default 250) for the next event, then takes what else arrived.
//! On (re)connecting it publishes the current scene once, so the LEDs are
//! right from the start.
//!
//! Configuration: `url`, `password` as the obs-control plugin's
//! (examples/rust/obs). Grants: `network:HOST:PORT` for OBS and
//! `events:publish:obs.*`.

// The obs-websocket client is the obs-control example's, shared as source.
#[path = "../../obs/src/obs.rs"]
mod obs;
#[path = "../../obs/src/sha256.rs"]
mod sha256;

use obs::{Failure, Session, SCENES};
use wasmdeck_pdk::{export, host, info, Error, Json, Output, Plugin, Request, Result};

/// Events taken in one poll at most: a flood cannot keep a poll going forever.
const MAX_EVENTS_PER_POLL: usize = 64;

#[derive(Default)]
struct ObsScenes {
    session: Option<Session>,
}

impl Plugin for ObsScenes {
    const METADATA: &'static str = r#"{
        "name": "obs-scenes",
        "version": "0.1.0",
        "description": "Emits obs.scene-changed when the program scene changes in OBS",
        "license": "MIT",
        "type": "trigger",
        "poll": {"action": "watch", "interval_ms": 10},
        "capabilities": ["network", "events"],
        "actions": [
            {"name": "watch", "description": "The poll: publish the scene changes OBS reported"}
        ]
    }"#;

    fn execute(&mut self, request: &Request) -> Result<Output> {
        match request.action.as_str() {
            "watch" => {
                let published = self.watch()?;
                Ok(Json::object([("published", Json::from(published))]).into())
            }
            other => Err(Error::new(format!("unknown action {other}"))),
        }
    }
}

impl ObsScenes {
    fn watch(&mut self) -> Result<usize> {
        let mut published = 0;
        if self.session.is_none() {
            let mut session = connect()?;
            let current = session.request("GetCurrentProgramScene", None).map_err(failure)?;
            self.session = Some(session);
            publish(&current["currentProgramSceneName"])?;
            published += 1;
        }
        let wait_ms = host::config("wait_ms")?.as_i64().filter(|n| (1..=60_000).contains(n)).map_or(250, |n| n as u32);
        let session = self.session.as_mut().expect("connected above");
        let mut wait = wait_ms;
        for _ in 0..MAX_EVENTS_PER_POLL {
            let event = match session.next_event(wait) {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(lost) => {
                    // Connect again at the next poll.
                    self.session = None;
                    return Err(failure(lost));
                }
            };
            if event["eventType"].as_str() == Some("CurrentProgramSceneChanged") {
                publish(&event["eventData"]["sceneName"])?;
                published += 1;
            }
            wait = 1; // what else already arrived, then return
        }
        Ok(published)
    }
}

fn connect() -> Result<Session> {
    let url = match host::config("url")? {
        Json::String(url) if !url.is_empty() => url,
        _ => return Err(Error::new("set `url` in the plugin's configuration to obs-websocket's address")),
    };
    let password = host::config("password")?;
    let session = Session::connect_with_events(&url, password.as_str().filter(|p| !p.is_empty()), SCENES)?;
    info!("watching OBS's scenes at {url}");
    Ok(session)
}

fn publish(scene: &Json) -> Result<()> {
    if scene.as_str().is_none() {
        return Err(Error::new(format!("OBS named no scene: {scene}")));
    }
    host::event_publish("obs.scene-changed", Json::object([("scene", scene.clone())]))?;
    Ok(())
}

fn failure(failure: Failure) -> Error {
    match failure {
        Failure::NotSent(error) | Failure::Refused(error) | Failure::Lost(error) => error,
    }
}

export!(ObsScenes);
