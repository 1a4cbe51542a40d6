//! obs-control: switch OBS scenes and start or stop recording and streaming
//! from a pad, over obs-websocket 5.x.
//!
//! Configuration (given by the user, read through the host):
//! - `url`: obs-websocket's address, e.g. `ws://127.0.0.1:4455`;
//! - `password`: the server password, when OBS has authentication on.
//!
//! The plugin needs the `network` capability for that address, e.g.
//! `--grant network:127.0.0.1:4455`. The identified connection is kept
//! between calls (the host keeps an instance's WebSockets open) and made
//! again when OBS closed it.

mod obs;
mod sha256;

use obs::{Failure, Session};
use wasmdeck_pdk::{bail, export, host, info, Error, Json, Output, Plugin, Request, Result};

#[derive(Default)]
struct ObsControl {
    session: Option<Session>,
}

impl Plugin for ObsControl {
    const METADATA: &'static str = r#"{
        "name": "obs-control",
        "version": "0.1.0",
        "description": "Controls OBS Studio over obs-websocket 5: scenes, recording, streaming",
        "license": "MIT",
        "capabilities": ["network"],
        "actions": [
            {"name": "set-scene", "description": "Switch the program scene",
             "params": {"type": "object", "properties": {"scene": {"type": "string", "minLength": 1}},
                        "required": ["scene"]}},
            {"name": "pick-scene",
             "description": "Switch to one of several scenes by velocity: soft picks the first, hard the last",
             "params": {"type": "object",
                        "properties": {"scenes": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
                        "required": ["scenes"]}},
            {"name": "start-record", "description": "Start recording"},
            {"name": "stop-record", "description": "Stop recording"},
            {"name": "toggle-record", "description": "Start or stop recording"},
            {"name": "start-stream", "description": "Start streaming"},
            {"name": "stop-stream", "description": "Stop streaming"},
            {"name": "scene-list", "description": "The scenes, top first, and the current one"}
        ]
    }"#;

    fn execute(&mut self, request: &Request) -> Result<Output> {
        let params = &request.params;
        let out = match request.action.as_str() {
            "set-scene" => {
                let scene = match params["scene"].as_str() {
                    Some(scene) if !scene.is_empty() => scene,
                    _ => bail!("set-scene needs a non-empty 'scene'"),
                };
                self.switch(scene)?
            }
            "pick-scene" => {
                let scenes = params["scenes"].as_array().unwrap_or(&[]);
                let names: Vec<&str> = scenes.iter().filter_map(Json::as_str).collect();
                if names.is_empty() || names.len() != scenes.len() {
                    bail!("pick-scene needs 'scenes', a non-empty list of scene names");
                }
                // Velocity 0-127 spread over the scenes; no velocity counts as full.
                let velocity = usize::from(request.context.velocity.unwrap_or(127));
                self.switch(names[velocity * names.len() / 128])?
            }
            "start-record" => {
                self.request("StartRecord", None)?;
                Json::object([("recording", true.into())])
            }
            "stop-record" => {
                let data = self.request("StopRecord", None)?;
                Json::object([("recording", false.into()), ("path", data["outputPath"].clone())])
            }
            "toggle-record" => {
                let data = self.request("ToggleRecord", None)?;
                Json::object([("recording", data["outputActive"].clone())])
            }
            "start-stream" => {
                self.request("StartStream", None)?;
                Json::object([("streaming", true.into())])
            }
            "stop-stream" => {
                self.request("StopStream", None)?;
                Json::object([("streaming", false.into())])
            }
            "scene-list" => {
                let data = self.request("GetSceneList", None)?;
                // obs-websocket lists scenes bottom-up; people read OBS's list top-down.
                let mut scenes: Vec<Json> = data["scenes"].as_array().unwrap_or(&[]).to_vec();
                scenes.sort_by_key(|scene| std::cmp::Reverse(scene["sceneIndex"].as_i64().unwrap_or(0)));
                let names = scenes.iter().map(|scene| scene["sceneName"].clone());
                Json::object([
                    ("current", data["currentProgramSceneName"].clone()),
                    ("scenes", Json::Array(names.collect())),
                ])
            }
            other => bail!("unknown action {other}"),
        };
        Ok(out.into())
    }
}

impl ObsControl {
    fn switch(&mut self, scene: &str) -> Result<Json> {
        self.request("SetCurrentProgramScene", Some(Json::object([("sceneName", scene.into())])))?;
        Ok(Json::object([("scene", scene.into())]))
    }

    /// One request over the kept session; connects (again) when there is none
    /// or OBS closed it before the request went out.
    fn request(&mut self, request_type: &str, data: Option<Json>) -> Result<Json> {
        let reused = self.session.is_some();
        let result = self.session()?.request(request_type, data.clone());
        match result {
            Ok(response) => Ok(response),
            Err(Failure::NotSent(_)) if reused => {
                info!("the connection to OBS was closed; connecting again");
                self.session = None;
                let result = self.session()?.request(request_type, data);
                self.settle(result)
            }
            result => self.settle(result),
        }
    }

    fn settle(&mut self, result: Result<Json, Failure>) -> Result<Json> {
        match result {
            Ok(response) => Ok(response),
            Err(Failure::Refused(error)) => Err(error),
            // The session is in doubt: start afresh next time.
            Err(Failure::Lost(error) | Failure::NotSent(error)) => {
                self.session = None;
                Err(error)
            }
        }
    }

    fn session(&mut self) -> Result<&mut Session> {
        if self.session.is_none() {
            let url = match host::config("url")? {
                Json::String(url) if !url.is_empty() => url,
                _ => {
                    return Err(Error::new(
                        "set `url` in the plugin's configuration to obs-websocket's address, \
                         e.g. ws://127.0.0.1:4455",
                    ))
                }
            };
            let password = host::config("password")?;
            let password = password.as_str().filter(|p| !p.is_empty());
            self.session = Some(Session::connect(&url, password)?);
        }
        Ok(self.session.as_mut().expect("connected above"))
    }
}

export!(ObsControl);
