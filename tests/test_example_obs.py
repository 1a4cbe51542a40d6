"""The OBS example plugin (examples/rust/obs) against the loopback obs-websocket server.

The plugin is built once per run from its Rust source with ``wasmdeck
build``'s library half; every test talks obs-websocket 5 (Hello, Identify
with the SHA-256 challenge, Requests) to the real protocol server of
tests/servers/obs.py through the host's WebSocket API.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import wasmdeck
from wasmdeck import ImportNotAllowed, PluginReportedError, TriggerContext
from wasmdeck.toolchains import BuildError, _rust, build_project

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "examples" / "rust" / "obs"


@pytest.fixture(scope="session")
def obs_wasm() -> Path:
    """The example, built in a copy of its project (the source tree stays clean)."""
    project = ROOT / ".cache" / "test-builds" / "rust-obs"
    for path in SOURCE.rglob("*"):
        if path.is_file() and "build" not in path.relative_to(SOURCE).parts:
            target = project / path.relative_to(SOURCE)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    try:
        return build_project(project)
    except BuildError as exc:
        pytest.fail(f"building the OBS example failed: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def obs_scenes_wasm() -> Path:
    """The trigger example (examples/rust/obs-scenes), built beside a copy of the
    obs-control example whose obs-websocket client it shares as source."""
    examples = ROOT / ".cache" / "test-builds" / "rust-examples"
    for name in ("obs", "obs-scenes"):
        source = SOURCE.parent / name
        for path in source.rglob("*"):
            if path.is_file() and "build" not in path.relative_to(source).parts:
                target = examples / name / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
    try:
        return build_project(examples / "obs-scenes")
    except BuildError as exc:
        pytest.fail(f"building the obs-scenes example failed: {exc}", pytrace=False)


def obs_plugin(wasm: Path, server: Any, **config: Any) -> wasmdeck.Plugin:
    settings = {"url": server.url, "password": server.password} | config
    return wasmdeck.Plugin(wasm, grants=[f"network:127.0.0.1:{server.port}"], config=settings)


def call(plugin: wasmdeck.Plugin, action: str, params: Any = None, **context: Any) -> Any:
    return json.loads(plugin.call(action, params, TriggerContext(**context)))


def sessions(server: Any) -> int:
    """How many client sessions the server holds (identified or not)."""
    return len(server._sessions)


def test_set_scene_switches_obs(obs_wasm: Path, obs_server: Any) -> None:
    obs = obs_plugin(obs_wasm, obs_server)
    assert obs_server.state.program_scene == "Starting Soon"
    assert call(obs, "set-scene", {"scene": "Live"}) == {"scene": "Live"}
    assert obs_server.state.program_scene == "Live"
    assert call(obs, "set-scene", {"scene": "Ending"}) == {"scene": "Ending"}
    assert obs_server.state.program_scene == "Ending"
    assert [(r.request_type, r.request_data, r.code) for r in obs_server.requests] == [
        ("SetCurrentProgramScene", {"sceneName": "Live"}, 100),
        ("SetCurrentProgramScene", {"sceneName": "Ending"}, 100),
    ]
    assert sessions(obs_server) == 1  # one identified connection, kept between calls


def test_record_toggling(obs_wasm: Path, obs_server: Any) -> None:
    obs = obs_plugin(obs_wasm, obs_server)
    assert call(obs, "toggle-record") == {"recording": True}
    assert obs_server.state.record_started is not None
    assert call(obs, "toggle-record") == {"recording": False}
    assert obs_server.state.record_started is None
    assert call(obs, "start-record") == {"recording": True}
    with pytest.raises(PluginReportedError) as caught:
        obs.call("start-record")
    assert caught.value.message == (
        "OBS refused StartRecord: the output is already running (code 500)"
    )
    out = call(obs, "stop-record")
    assert out == {"recording": False, "path": obs_server.state.last_record_path}
    assert obs_server.state.record_started is None
    assert obs_server.request_types == [
        "ToggleRecord",
        "ToggleRecord",
        "StartRecord",
        "StartRecord",
        "StopRecord",
    ]


def test_streaming(obs_wasm: Path, obs_server: Any) -> None:
    obs = obs_plugin(obs_wasm, obs_server)
    assert call(obs, "start-stream") == {"streaming": True}
    assert obs_server.state.stream_started is not None
    assert call(obs, "stop-stream") == {"streaming": False}
    assert obs_server.state.stream_started is None
    with pytest.raises(
        PluginReportedError, match=r"StopStream: the output is not running \(code 501\)"
    ):
        obs.call("stop-stream")


def test_scene_list(obs_wasm: Path, obs_server: Any) -> None:
    obs = obs_plugin(obs_wasm, obs_server)
    call(obs, "set-scene", {"scene": "Be Right Back"})
    assert call(obs, "scene-list") == {
        "current": "Be Right Back",
        "scenes": ["Starting Soon", "Live", "Be Right Back", "Ending"],  # as OBS shows them
    }


@pytest.mark.parametrize(
    ("velocity", "scene"),
    [(1, "Starting Soon"), (40, "Live"), (90, "Be Right Back"), (127, "Ending"), (None, "Ending")],
)
def test_velocity_picks_a_scene(
    obs_wasm: Path, obs_server: Any, velocity: int | None, scene: str
) -> None:
    obs = obs_plugin(obs_wasm, obs_server)
    scenes = ["Starting Soon", "Live", "Be Right Back", "Ending"]
    assert call(obs, "pick-scene", {"scenes": scenes}, velocity=velocity) == {"scene": scene}
    assert obs_server.state.program_scene == scene


def test_soft_and_hard_hits(obs_wasm: Path, obs_server: Any) -> None:
    obs = obs_plugin(obs_wasm, obs_server)
    params = {"scenes": ["Live", "Ending"]}
    call(obs, "pick-scene", params, velocity=20)
    assert obs_server.state.program_scene == "Live"
    call(obs, "pick-scene", params, velocity=120)
    assert obs_server.state.program_scene == "Ending"
    with pytest.raises(PluginReportedError, match="non-empty list of scene names"):
        obs.call("pick-scene", {"scenes": []})


def test_unknown_scene_reports_obs_error(obs_wasm: Path, obs_server: Any) -> None:
    obs = obs_plugin(obs_wasm, obs_server)
    with pytest.raises(PluginReportedError) as caught:
        obs.call("set-scene", {"scene": "Nope"})
    assert caught.value.message == (
        "OBS refused SetCurrentProgramScene: No source was found by the name of `Nope` "
        "within the canvas `Main`. (code 600)"
    )
    assert obs_server.state.program_scene == "Starting Soon"
    # OBS answered: the session is still good.
    assert call(obs, "set-scene", {"scene": "Live"}) == {"scene": "Live"}
    assert sessions(obs_server) == 1


def test_wrong_password_is_a_clear_error(obs_wasm: Path, obs_server: Any) -> None:
    obs = obs_plugin(obs_wasm, obs_server, password="guess")
    with pytest.raises(PluginReportedError) as caught:
        obs.call("set-scene", {"scene": "Live"})
    assert caught.value.message == (
        "OBS refused the password (authentication failed): check `password` in the "
        "plugin's configuration"
    )
    assert obs_server.closes == [(4009, "Authentication failed.")]
    assert obs_server.requests == []
    assert obs_server.state.program_scene == "Starting Soon"


def test_missing_password_says_so(obs_wasm: Path, obs_server: Any) -> None:
    obs = obs_plugin(obs_wasm, obs_server, password=None)
    with pytest.raises(PluginReportedError, match="OBS asks for a password: set `password`"):
        obs.call("start-record")


def test_missing_url_says_so(obs_wasm: Path, obs_server: Any) -> None:
    obs = obs_plugin(obs_wasm, obs_server, url=None)
    with pytest.raises(PluginReportedError, match="set `url` in the plugin's configuration"):
        obs.call("start-record")


def test_obs_not_running(obs_wasm: Path, obs_server: Any) -> None:
    url = obs_server.url
    obs_server.stop()
    obs = obs_plugin(obs_wasm, obs_server, url=url)
    with pytest.raises(PluginReportedError, match=f"cannot connect to OBS at {url}"):
        obs.call("start-record")


def test_reconnects_after_obs_closed_the_connection(obs_wasm: Path, obs_server: Any) -> None:
    obs = obs_plugin(obs_wasm, obs_server)
    call(obs, "set-scene", {"scene": "Live"})

    async def drop_all() -> None:
        for session in list(obs_server._sessions):
            await session.connection.close(1001, "restarting")

    asyncio.run_coroutine_threadsafe(drop_all(), obs_server._loop).result(5)
    assert sessions(obs_server) == 0
    assert call(obs, "set-scene", {"scene": "Ending"}) == {"scene": "Ending"}
    assert obs_server.state.program_scene == "Ending"
    assert sessions(obs_server) == 1
    # Sent once: the retry happened only because the first send could not go out.
    assert obs_server.request_types == ["SetCurrentProgramScene", "SetCurrentProgramScene"]


# -- the trigger plugin: OBS's scene changes as events --------------------------------


def test_obs_scenes_emits_the_scene_and_each_change_made_in_obs(
    obs_scenes_wasm: Path, obs_server: Any
) -> None:
    from wasmdeck.host import PluginHost

    with PluginHost() as host:
        scenes = wasmdeck.Plugin(
            obs_scenes_wasm,
            grants=[f"network:127.0.0.1:{obs_server.port}", "events:publish:obs.*"],
            config={"url": obs_server.url, "password": obs_server.password, "wait_ms": 50},
        )
        assert (scenes.metadata.type, scenes.metadata.poll.action) == ("trigger", "watch")  # type: ignore[union-attr]
        host.add(scenes, name="scenes")
        got: list[Any] = []
        host.bus.subscribe("obs.*", lambda e: got.append((e.topic, e.payload, e.source)), name="t")
        # The first poll connects and says which scene is on; nothing changed since.
        assert call(scenes, "watch") == {"published": 1}
        assert call(scenes, "watch") == {"published": 0}
        obs_server.set_program_scene("Be Right Back")  # in OBS itself
        obs_server.set_program_scene("Live")
        published = 0
        while published < 2:  # each poll waits up to wait_ms for them
            published += call(scenes, "watch")["published"]
        assert host.bus.settle()
        assert got == [
            ("obs.scene-changed", {"scene": "Starting Soon"}, "scenes"),
            ("obs.scene-changed", {"scene": "Be Right Back"}, "scenes"),
            ("obs.scene-changed", {"scene": "Live"}, "scenes"),
        ]
        assert sessions(obs_server) == 1  # one session, kept open across the polls

        async def drop_all() -> None:
            for session in list(obs_server._sessions):
                await session.connection.close(1001, "restarting")

        asyncio.run_coroutine_threadsafe(drop_all(), obs_server._loop).result(5)
        with pytest.raises(PluginReportedError, match="OBS closed the connection"):
            for _ in range(100):  # the next poll sees the close (each waits 50 ms at most)
                call(scenes, "watch")
        assert call(scenes, "watch") == {"published": 1}  # connected again: the scene once more
        assert host.bus.settle() and got[-1][1] == {"scene": "Live"}


def test_network_must_be_granted(obs_wasm: Path) -> None:
    with pytest.raises(ImportNotAllowed, match="'network' capability"):
        wasmdeck.Plugin(obs_wasm, config={"url": "ws://127.0.0.1:4455"})


def test_metadata(obs_wasm: Path) -> None:
    meta = wasmdeck.Plugin(obs_wasm, grants=["network:127.0.0.1:4455"]).metadata
    assert meta.name == "obs-control"
    assert [c.kind for c in meta.capabilities] == ["network"]
    assert [a.name for a in meta.actions or ()] == [
        "set-scene",
        "pick-scene",
        "start-record",
        "stop-record",
        "toggle-record",
        "start-stream",
        "stop-stream",
        "scene-list",
    ]


def test_rust_unit_tests() -> None:
    """SHA-256 (FIPS 180-4 vectors) and the authentication string, run natively with cargo."""
    env = _rust._env()
    env["CARGO_TARGET_DIR"] = str(ROOT / ".cache" / "test-builds" / "rust-obs-unit")
    patch = f'patch.crates-io.wasmdeck-pdk.path="{_rust.kit_dir()}"'
    project = ROOT / ".cache" / "test-builds" / "rust-obs-unit-src"
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(SOURCE, project, ignore=shutil.ignore_patterns("build", "Cargo.lock"))
    result = subprocess.run(
        [_rust.toolchain_bin() / "cargo", "test", "--offline", "--quiet", "--config", patch],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test result: ok. 2 passed" in result.stdout
