"""The obs-websocket test server proven against third-party clients.

``obsws-python`` (a client written for real OBS) drives the requests and
events; a raw ``websockets`` client checks the frames and close codes the
protocol document prescribes, computing the authentication string itself.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import obsws_python as obsws
import pytest
import websockets
from obsws_python.error import OBSSDKError, OBSSDKRequestError
from obsws_python.subs import Subs
from servers.obs import ObsWebSocketServer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

# The fixtures (obs_server, hue_bridge, webhook_server) live beside the servers.

TIMEOUT = 3.0


@pytest.fixture
def client(obs_server: ObsWebSocketServer) -> Iterator[obsws.ReqClient]:
    client = obsws.ReqClient(
        host=obs_server.host, port=obs_server.port, password=obs_server.password, timeout=TIMEOUT
    )
    yield client
    client.disconnect()


class Collector:
    """Receives obsws-python event callbacks; ``wait`` blocks (bounded) for a count."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._changed = threading.Condition()

    def add(self, name: str, data: Any) -> None:
        with self._changed:
            self.events.append((name, {attr: getattr(data, attr) for attr in data.attrs()}))
            self._changed.notify_all()

    def wait(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.events) >= count, TIMEOUT):
                raise TimeoutError(f"{len(self.events)} of {count} events: {self.events}")
            return list(self.events)


@pytest.fixture
def events(obs_server: ObsWebSocketServer) -> Iterator[Collector]:
    collector = Collector()
    listener = obsws.EventClient(
        host=obs_server.host,
        port=obs_server.port,
        password=obs_server.password,
        timeout=TIMEOUT,
        subs=Subs.LOW_VOLUME,
    )

    # obsws-python dispatches by function name (on_<snake_case event>).
    def on_current_program_scene_changed(data: Any) -> None:
        collector.add("CurrentProgramSceneChanged", data)

    def on_record_state_changed(data: Any) -> None:
        collector.add("RecordStateChanged", data)

    def on_stream_state_changed(data: Any) -> None:
        collector.add("StreamStateChanged", data)

    def on_current_scene_transition_changed(data: Any) -> None:
        collector.add("CurrentSceneTransitionChanged", data)

    listener.callback.register(
        [
            on_current_program_scene_changed,
            on_record_state_changed,
            on_stream_state_changed,
            on_current_scene_transition_changed,
        ]
    )
    yield collector
    listener.disconnect()


# -- obsws-python: requests ------------------------------------------------------------


def test_version_and_scene_list(client: obsws.ReqClient) -> None:
    version = client.get_version()
    assert version.rpc_version == 1
    assert version.obs_web_socket_version.startswith("5.")
    assert "SetCurrentProgramScene" in version.available_requests
    scenes = client.get_scene_list()
    assert scenes.current_program_scene_name == "Starting Soon"
    assert [scene["sceneName"] for scene in scenes.scenes] == [
        "Ending",
        "Be Right Back",
        "Live",
        "Starting Soon",
    ]
    assert [scene["sceneIndex"] for scene in scenes.scenes] == [0, 1, 2, 3]


def test_switch_scenes(client: obsws.ReqClient, obs_server: ObsWebSocketServer) -> None:
    client.set_current_program_scene("Live")
    current = client.get_current_program_scene()
    assert current.scene_name == current.current_program_scene_name == "Live"
    assert current.scene_uuid == obs_server.state.scenes["Live"]
    with pytest.raises(OBSSDKRequestError) as refused:
        client.set_current_program_scene("Backstage")
    assert refused.value.code == 600
    assert "Backstage" in str(refused.value)  # the comment names the missing scene
    assert client.get_current_program_scene().scene_name == "Live"
    assert obs_server.request_types == [
        "SetCurrentProgramScene",
        "GetCurrentProgramScene",
        "SetCurrentProgramScene",
        "GetCurrentProgramScene",
    ]
    assert obs_server.requests[0].request_data == {"sceneName": "Live"}
    assert [logged.code for logged in obs_server.requests] == [100, 100, 600, 100]


def test_record_start_stop_toggle(client: obsws.ReqClient) -> None:
    assert client.get_record_status().output_active is False
    with pytest.raises(OBSSDKRequestError) as refused:
        client.stop_record()
    assert refused.value.code == 501  # OutputNotRunning
    client.start_record()
    status = client.get_record_status()
    assert status.output_active is True and status.output_paused is False
    assert status.output_timecode.count(":") == 2
    with pytest.raises(OBSSDKRequestError) as refused:
        client.start_record()
    assert refused.value.code == 500  # OutputRunning
    assert client.stop_record().output_path.endswith(".mkv")
    assert client.toggle_record().output_active is True
    assert client.toggle_record().output_active is False
    assert client.get_record_status().output_active is False


def test_stream_start_stop_toggle(client: obsws.ReqClient) -> None:
    client.start_stream()
    status = client.get_stream_status()
    assert status.output_active is True and status.output_reconnecting is False
    with pytest.raises(OBSSDKRequestError) as refused:
        client.start_stream()
    assert refused.value.code == 500
    client.stop_stream()
    with pytest.raises(OBSSDKRequestError) as refused:
        client.stop_stream()
    assert refused.value.code == 501
    assert client.toggle_stream().output_active is True
    assert client.get_stream_status().output_active is True


def test_transitions(client: obsws.ReqClient) -> None:
    listing = client.get_scene_transition_list()
    names = [transition["transitionName"] for transition in listing.transitions]
    assert listing.current_scene_transition_name == "Fade"
    assert "Cut" in names
    client.set_current_scene_transition("Cut")
    current = client.get_current_scene_transition()
    assert current.transition_name == "Cut"
    assert current.transition_fixed is True and current.transition_duration is None
    with pytest.raises(OBSSDKRequestError) as refused:
        client.set_current_scene_transition("Wipe of Doom")
    assert refused.value.code == 600


def test_unknown_request_type(client: obsws.ReqClient) -> None:
    with pytest.raises(OBSSDKRequestError) as refused:
        client.send("MakeCoffee")
    assert refused.value.code == 204


# -- obsws-python: events and authentication ----------------------------------------


def test_events_reach_subscribed_client(
    client: obsws.ReqClient,
    events: Collector,
    obs_server: ObsWebSocketServer,
) -> None:
    client.set_current_program_scene("Live")
    client.start_record()
    client.toggle_stream()
    client.set_current_scene_transition("Cut")
    obs_server.set_program_scene("Ending")  # as if someone clicked in OBS
    seen = events.wait(7)
    assert [name for name, _ in seen] == [
        "CurrentProgramSceneChanged",
        "RecordStateChanged",
        "RecordStateChanged",
        "StreamStateChanged",
        "StreamStateChanged",
        "CurrentSceneTransitionChanged",
        "CurrentProgramSceneChanged",
    ]
    scene_changes = [
        data["scene_name"] for name, data in seen if name == "CurrentProgramSceneChanged"
    ]
    assert scene_changes == ["Live", "Ending"]
    record = [data for name, data in seen if name == "RecordStateChanged"]
    assert [(r["output_state"], r["output_active"]) for r in record] == [
        ("OBS_WEBSOCKET_OUTPUT_STARTING", False),
        ("OBS_WEBSOCKET_OUTPUT_STARTED", True),
    ]


def test_event_subscriptions_filter(
    obs_server: ObsWebSocketServer, client: obsws.ReqClient
) -> None:
    received: list[str] = []
    outputs_only = obsws.EventClient(
        host=obs_server.host,
        port=obs_server.port,
        password=obs_server.password,
        timeout=TIMEOUT,
        subs=Subs.OUTPUTS,
    )
    done = threading.Event()

    def on_current_program_scene_changed(data: Any) -> None:
        received.append("scene")

    def on_record_state_changed(data: Any) -> None:
        received.append(data.output_state)
        if data.output_active:
            done.set()

    outputs_only.callback.register([on_current_program_scene_changed, on_record_state_changed])
    try:
        client.set_current_program_scene("Live")  # Scenes: not subscribed
        client.start_record()  # Outputs: subscribed
        assert done.wait(TIMEOUT)
    finally:
        outputs_only.disconnect()
    assert received == ["OBS_WEBSOCKET_OUTPUT_STARTING", "OBS_WEBSOCKET_OUTPUT_STARTED"]


def test_wrong_password_refused(obs_server: ObsWebSocketServer) -> None:
    with pytest.raises(OBSSDKError):
        obsws.ReqClient(
            host=obs_server.host, port=obs_server.port, password="guess", timeout=TIMEOUT
        )
    assert obs_server.closes == [(4009, "Authentication failed.")]
    assert obs_server.requests == []


def test_server_without_password() -> None:
    with ObsWebSocketServer(password=None) as server:
        client = obsws.ReqClient(host=server.host, port=server.port, password="", timeout=TIMEOUT)
        try:
            assert "authentication" not in client.base_client.server_hello["d"]
            assert client.get_current_program_scene().scene_name == "Starting Soon"
        finally:
            client.disconnect()


# -- raw websockets: frames and close codes -----------------------------------------


def spec_auth(password: str, salt: str, challenge: str) -> str:
    """The protocol document's recipe, written out here independently of the server."""
    secret = base64.b64encode(hashlib.sha256(password.encode() + salt.encode()).digest()).decode()
    return base64.b64encode(hashlib.sha256((secret + challenge).encode()).digest()).decode()


async def recv_json(connection: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT):
        return json.loads(await connection.recv())


async def closed_with(connection: ClientConnection) -> tuple[int | None, str | None]:
    """Wait (bounded) for the server to close; return its close code and reason."""
    async with asyncio.timeout(TIMEOUT):
        with pytest.raises(ConnectionClosed):
            while True:  # bounded by the timeout: skips anything sent before the close
                await connection.recv()
    assert connection.close_code is not None
    return connection.close_code, connection.close_reason


async def identified(
    server: ObsWebSocketServer, subscriptions: int | None = None
) -> ClientConnection:
    connection = await connect(
        server.url, subprotocols=[websockets.Subprotocol("obswebsocket.json")]
    )
    hello = (await recv_json(connection))["d"]
    identify: dict[str, Any] = {"rpcVersion": 1}
    if "authentication" in hello:
        auth = hello["authentication"]
        identify["authentication"] = spec_auth(
            server.password or "", auth["salt"], auth["challenge"]
        )
    if subscriptions is not None:
        identify["eventSubscriptions"] = subscriptions
    await connection.send(json.dumps({"op": 1, "d": identify}))
    assert await recv_json(connection) == {"op": 2, "d": {"negotiatedRpcVersion": 1}}
    return connection


async def test_hello_identify_frames(obs_server: ObsWebSocketServer) -> None:
    async with connect(
        obs_server.url, subprotocols=[websockets.Subprotocol("obswebsocket.json")]
    ) as ws:
        assert ws.subprotocol == "obswebsocket.json"
        hello = await recv_json(ws)
        assert hello["op"] == 0
        assert set(hello["d"]) == {
            "obsStudioVersion",
            "obsWebSocketVersion",
            "rpcVersion",
            "authentication",
        }
        assert hello["d"]["rpcVersion"] == 1
        auth = hello["d"]["authentication"]
        assert set(auth) == {"challenge", "salt"}
        assert len(base64.b64decode(auth["salt"])) == len(base64.b64decode(auth["challenge"])) == 32
        answer = spec_auth(obs_server.password or "", auth["salt"], auth["challenge"])
        await ws.send(json.dumps({"op": 1, "d": {"rpcVersion": 1, "authentication": answer}}))
        assert await recv_json(ws) == {"op": 2, "d": {"negotiatedRpcVersion": 1}}
        request = {"requestType": "GetCurrentProgramScene", "requestId": "f819dcf0-89cc"}
        await ws.send(json.dumps({"op": 6, "d": request}))
        response = await recv_json(ws)
        assert response["op"] == 7
        assert response["d"]["requestType"] == "GetCurrentProgramScene"
        assert response["d"]["requestId"] == "f819dcf0-89cc"
        assert response["d"]["requestStatus"] == {"result": True, "code": 100}
        assert response["d"]["responseData"]["sceneName"] == "Starting Soon"


@pytest.mark.parametrize(
    ("identify", "code"),
    [
        ({"rpcVersion": 1, "authentication": "d3Jvbmc="}, 4009),  # wrong string
        ({"rpcVersion": 1}, 4009),  # missing while required
        ({"rpcVersion": 1, "authentication": 7}, 4009),  # not a string
    ],
)
async def test_bad_authentication_closes_4009(
    obs_server: ObsWebSocketServer,
    identify: dict[str, Any],
    code: int,
) -> None:
    async with connect(obs_server.url) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"op": 1, "d": identify}))
        assert (await closed_with(ws))[0] == code


async def good_identify(
    server: ObsWebSocketServer, ws: ClientConnection, **extra: Any
) -> dict[str, Any]:
    auth = (await recv_json(ws))["d"]["authentication"]
    return {
        "authentication": spec_auth(server.password or "", auth["salt"], auth["challenge"])
    } | extra


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"rpcVersion": 2}, 4010),  # UnsupportedRpcVersion
        ({}, 4003),  # MissingDataField: no rpcVersion
        ({"rpcVersion": "1"}, 4004),  # InvalidDataFieldType
        ({"rpcVersion": 1, "eventSubscriptions": -1}, 4004),
    ],
)
async def test_identify_field_errors(
    obs_server: ObsWebSocketServer,
    extra: dict[str, Any],
    code: int,
) -> None:
    async with connect(obs_server.url) as ws:
        identify = await good_identify(obs_server, ws, **extra)
        await ws.send(json.dumps({"op": 1, "d": identify}))
        assert (await closed_with(ws))[0] == code


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"op": 6, "d": {"requestType": "GetVersion", "requestId": "1"}}, 4007),  # NotIdentified
        ({"op": 3, "d": {}}, 4007),
        ({"request-type": "GetVersion", "message-id": "1"}, 4010),  # a 4.x client
        ({"d": {}}, 4006),  # UnknownOpCode: no op
        ({"op": "1", "d": {}}, 4006),
        ({"op": 1}, 4003),  # MissingDataField: no d
        ({"op": 1, "d": []}, 4004),
        ([1, 2], 4002),  # MessageDecodeError: not an object
    ],
)
async def test_malformed_before_identify(
    obs_server: ObsWebSocketServer,
    frame: object,
    code: int,
) -> None:
    async with connect(obs_server.url) as ws:
        await recv_json(ws)
        await ws.send(json.dumps(frame))
        assert (await closed_with(ws))[0] == code


async def test_undecodable_frames_close_4002(obs_server: ObsWebSocketServer) -> None:
    for message in (b"\x00\x01binary", "{not json"):
        async with connect(obs_server.url) as ws:
            await recv_json(ws)
            await ws.send(message)
            assert (await closed_with(ws))[0] == 4002
    # The server is still serving after the refusals.
    connection = await identified(obs_server)
    await connection.close()


async def test_after_identify_errors(obs_server: ObsWebSocketServer) -> None:
    cases: list[tuple[dict[str, Any], int]] = [
        ({"op": 1, "d": {"rpcVersion": 1}}, 4008),  # AlreadyIdentified
        ({"op": 42, "d": {}}, 4006),  # UnknownOpCode
        ({"op": 7, "d": {}}, 4006),  # a server-to-client op
        ({"op": 6, "d": {"requestType": "GetVersion"}}, 4003),  # no requestId
        ({"op": 6, "d": {"requestId": "x"}}, 4003),  # no requestType
        ({"op": 6, "d": {"requestType": 5, "requestId": "x"}}, 4004),
        ({"op": 8, "d": {"requestId": "b", "requests": {}}}, 4004),
        ({"op": 8, "d": {"requestId": "b", "requests": [], "executionType": 7}}, 4005),
    ]
    for frame, code in cases:
        connection = await identified(obs_server)
        await connection.send(json.dumps(frame))
        assert (await closed_with(connection))[0] == code, frame
    assert [code for code, _ in obs_server.closes] == [code for _, code in cases]


async def test_request_status_codes(obs_server: ObsWebSocketServer) -> None:
    connection = await identified(obs_server, subscriptions=0)  # only responses, no events
    try:

        async def ask(request_type: object, data: object = None) -> dict[str, Any]:
            request: dict[str, Any] = {"requestType": request_type, "requestId": 17}
            if data is not None:
                request["requestData"] = data
            await connection.send(json.dumps({"op": 6, "d": request}))
            response = (await recv_json(connection))["d"]
            assert response["requestId"] == 17  # mirrored with its JSON type
            return response["requestStatus"]

        assert await ask("NoSuchThing") == {
            "result": False,
            "code": 204,
            "comment": "Your request type is not valid.",
        }
        assert (await ask(""))["code"] == 203
        assert (await ask("GetVersion", [1]))["code"] == 401
        assert (await ask("SetCurrentProgramScene"))["code"] == 300
        assert (await ask("SetCurrentProgramScene", {"sceneName": "Nope"}))["code"] == 600
        assert (await ask("SetCurrentSceneTransition", {"transitionName": 3}))["code"] == 401
        assert (await ask("SetCurrentSceneTransition", {"transitionName": ""}))["code"] == 403
        assert (await ask("SetCurrentSceneTransitionDuration", {"transitionDuration": 5}))[
            "code"
        ] == 402
        uuid = obs_server.state.scenes["Ending"]
        assert await ask("SetCurrentProgramScene", {"sceneUuid": uuid}) == {
            "result": True,
            "code": 100,
        }
        assert obs_server.state.program_scene == "Ending"
    finally:
        await connection.close()


async def test_request_batch(obs_server: ObsWebSocketServer) -> None:
    connection = await identified(obs_server, subscriptions=0)
    try:
        requests = [
            {"requestType": "SetCurrentProgramScene", "requestData": {"sceneName": "Live"}},
            {"requestType": "StopRecord", "requestId": "stop"},
            {"requestType": "GetCurrentProgramScene"},
        ]
        await connection.send(json.dumps({"op": 8, "d": {"requestId": "b1", "requests": requests}}))
        batch = await recv_json(connection)
        assert batch["op"] == 9 and batch["d"]["requestId"] == "b1"
        results = batch["d"]["results"]
        assert [r["requestStatus"]["code"] for r in results] == [100, 501, 100]
        assert results[1]["requestId"] == "stop" and "requestId" not in results[0]
        assert results[2]["responseData"]["sceneName"] == "Live"

        halting = {"requestId": "b2", "haltOnFailure": True, "requests": requests[1:]}
        await connection.send(json.dumps({"op": 8, "d": halting}))
        assert len((await recv_json(connection))["d"]["results"]) == 1
    finally:
        await connection.close()


async def test_reidentify_changes_subscriptions(obs_server: ObsWebSocketServer) -> None:
    listener = await identified(obs_server, subscriptions=0)
    actor = await identified(obs_server, subscriptions=0)
    try:

        async def switch(scene: str) -> None:
            request = {"requestType": "SetCurrentProgramScene", "requestId": scene}
            await actor.send(
                json.dumps({"op": 6, "d": request | {"requestData": {"sceneName": scene}}})
            )
            assert (await recv_json(actor))["d"]["requestStatus"]["code"] == 100

        await switch("Live")  # nobody subscribed: no event
        await listener.send(json.dumps({"op": 3, "d": {"eventSubscriptions": 1 << 2}}))  # Scenes
        assert await recv_json(listener) == {"op": 2, "d": {"negotiatedRpcVersion": 1}}
        await switch("Ending")
        assert await recv_json(listener) == {
            "op": 5,
            "d": {
                "eventType": "CurrentProgramSceneChanged",
                "eventIntent": 4,
                "eventData": {
                    "sceneName": "Ending",
                    "sceneUuid": obs_server.state.scenes["Ending"],
                },
            },
        }
    finally:
        await listener.close()
        await actor.close()


async def test_msgpack_subprotocol_refused(obs_server: ObsWebSocketServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(obs_server.url, subprotocols=[websockets.Subprotocol("obswebsocket.msgpack")])
    assert refused.value.response.status_code == 400


async def test_stop_closes_clients() -> None:
    server = ObsWebSocketServer().start()
    connection = await identified(server)
    await asyncio.to_thread(server.stop)  # the server's own loop closes the session
    assert await closed_with(connection) == (1001, "")  # going away, as when OBS exits
    with pytest.raises(OSError):
        await connect(server.url, open_timeout=TIMEOUT)
