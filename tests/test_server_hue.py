"""The Hue v1 bridge test server proven against third-party clients.

``aiohue`` (Home Assistant's Hue library; its ``HueBridgeV1`` speaks the v1
API over plain HTTP, as old bridges and emulators do) pairs, identifies the
bridge and drives lights and groups. ``phue`` (a synchronous v1 client)
registers through the link button and sets lights. The documentation's example
exchanges are compared byte for byte over ``http.client``.
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
import phue
import pytest
from aiohue import HueBridgeV1, LinkButtonNotPressed, Unauthorized, create_app_key
from aiohue.discovery import is_hue_bridge
from aiohue.errors import AiohueException
from servers.hue import HueBridge

# The fixtures (obs_server, hue_bridge, webhook_server) live beside the servers.

TIMEOUT = 3.0


def raw(bridge: HueBridge, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One exchange over the standard library, so the answer's bytes are exactly as sent."""
    connection = http.client.HTTPConnection(bridge.host, bridge.port, timeout=TIMEOUT)
    try:
        connection.request(method, path, body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def put(bridge: HueBridge, path: str, value: object) -> Any:
    status, body = raw(bridge, "PUT", f"/api/{bridge.username}{path}", json.dumps(value).encode())
    assert status == 200  # v1 answers 200 and puts errors in the body
    return json.loads(body)


# -- aiohue ------------------------------------------------------------------------------


async def test_aiohue_pairs_after_link_button(hue_bridge: HueBridge) -> None:
    host = f"{hue_bridge.host}:{hue_bridge.port}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
        # aiohue tries https first; the plain-HTTP bridge must survive the TLS hello.
        with pytest.raises(LinkButtonNotPressed):
            await create_app_key(host, "wasmdeck#pytest", session)
        hue_bridge.press_link_button()
        username = await create_app_key(host, "wasmdeck#pytest", session)
    assert username in hue_bridge.whitelist
    assert hue_bridge.whitelist[username]["name"] == "wasmdeck#pytest"
    assert [r.method for r in hue_bridge.requests] == ["POST", "POST"]


async def test_aiohue_identifies_bridge(hue_bridge: HueBridge) -> None:
    host = f"{hue_bridge.host}:{hue_bridge.port}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
        # aiohue normalises a bridge id by dropping the "fffe" filler of the EUI-64.
        assert await is_hue_bridge(host, session) == "0017884a5b6c"
        bridge = HueBridgeV1(host, hue_bridge.username, session)
        await bridge.initialize()
    config = bridge.config
    assert config is not None
    assert (config.name, config.model_id, config.apiversion) == ("Philips hue", "BSB002", "1.68.0")
    assert config.mac_address == "00:17:88:4a:5b:6c"
    assert config.software_version == "1968096020"
    assert config.swupdate2_bridge_state == "noupdates"


async def test_aiohue_controls_lights_and_groups(hue_bridge: HueBridge) -> None:
    host = f"{hue_bridge.host}:{hue_bridge.port}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
        bridge = HueBridgeV1(host, hue_bridge.username, session)
        await bridge.initialize()
        assert bridge.lights is not None and bridge.groups is not None
        lights = {light.name: light for light in bridge.lights.values()}
        assert set(lights) == {"Desk lamp", "Key light", "Hall"}
        desk = lights["Desk lamp"]
        assert desk.colorgamuttype == "C" and desk.controlcapabilities["ct"] == {
            "min": 153,
            "max": 500,
        }

        await desk.set_state(on=True, bri=128, xy=[0.3, 0.3], transitiontime=4)
        await bridge.lights.update()
        assert bridge.lights[desk.id].state["bri"] == 128
        assert bridge.lights[desk.id].state["colormode"] == "xy"

        studio = next(group for group in bridge.groups.values() if group.name == "Studio")
        await studio.set_action(on=True, ct=250)
        await bridge.groups.update()
        assert bridge.groups[studio.id].state == {"all_on": True, "any_on": True}
        all_lights = await bridge.groups.get_all_lights_group()
        assert all_lights.lights == ["1", "2", "3"]
        assert all_lights.state == {"all_on": False, "any_on": True}

        with pytest.raises(AiohueException, match="invalid value, 300, for parameter, bri"):
            await desk.set_state(bri=300)
    assert hue_bridge.light_state("2")["ct"] == 250
    puts = [(r.path, r.json()) for r in hue_bridge.requests if r.method == "PUT"]
    assert puts[0] == (
        "/api/" + hue_bridge.username + "/lights/1/state",
        {
            "on": True,
            "bri": 128,
            "xy": [0.3, 0.3],
            "transitiontime": 4,
        },
    )


async def test_aiohue_unknown_key_unauthorized(hue_bridge: HueBridge) -> None:
    host = f"{hue_bridge.host}:{hue_bridge.port}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
        with pytest.raises(Unauthorized):
            await HueBridgeV1(host, "not-a-user", session).initialize()


# -- phue -------------------------------------------------------------------------------


def test_phue_registers_and_sets_lights(hue_bridge: HueBridge, tmp_path: Path) -> None:
    address = f"{hue_bridge.host}:{hue_bridge.port}"
    config = tmp_path / "python_hue.json"
    with pytest.raises(phue.PhueRegistrationException):
        phue.Bridge(address, config_file_path=str(config))
    hue_bridge.press_link_button()
    bridge = phue.Bridge(address, config_file_path=str(config))
    assert bridge.username in hue_bridge.whitelist
    assert bridge.get_api()["config"]["bridgeid"] == "001788FFFE4A5B6C"
    result = bridge.set_light(1, {"on": True, "bri": 200, "hue": 50000})
    assert result == [
        [
            {"success": {"/lights/1/state/on": True}},
            {"success": {"/lights/1/state/bri": 200}},
            {"success": {"/lights/1/state/hue": 50000}},
        ]
    ]
    state = hue_bridge.light_state("1")
    assert (state["on"], state["bri"], state["hue"], state["colormode"]) == (True, 200, 50000, "hs")
    assert bridge.get_light(3, "name") == "Hall"
    bridge.set_group(2, "on", True)
    assert hue_bridge.light_state("3")["on"] is True


# -- the documentation's example exchanges, byte for byte -------------------------


def test_doc_link_button_not_pressed(hue_bridge: HueBridge) -> None:
    status, body = raw(hue_bridge, "POST", "/api", b'{"devicetype":"my_hue_app#iphone peter"}')
    assert status == 200
    assert body == b'[{"error":{"type":101,"address":"","description":"link button not pressed"}}]'


def test_doc_create_user_after_press(hue_bridge: HueBridge) -> None:
    hue_bridge.press_link_button()
    _, body = raw(hue_bridge, "POST", "/api", b'{"devicetype":"my_hue_app#iphone peter"}')
    [answer] = json.loads(body)
    assert list(answer) == ["success"] and len(answer["success"]["username"]) == 40


def test_doc_unauthorized_user(hue_bridge: HueBridge) -> None:
    _, body = raw(hue_bridge, "GET", "/api/newdeveloper")
    assert body == b'[{"error":{"type":1,"address":"/","description":"unauthorized user"}}]'
    _, body = raw(hue_bridge, "GET", "/api/newdeveloper/lights")
    assert body == b'[{"error":{"type":1,"address":"/lights","description":"unauthorized user"}}]'


def test_doc_turn_light_on(hue_bridge: HueBridge) -> None:
    status, body = raw(
        hue_bridge, "PUT", f"/api/{hue_bridge.username}/lights/1/state", b'{"on":true}'
    )
    assert status == 200
    assert body == b'[{"success":{"/lights/1/state/on":true}}]'


def test_doc_set_state_several_parameters(hue_bridge: HueBridge) -> None:
    body = b'{"on":true, "sat":254, "bri":254, "hue":10000}'
    _, answer = raw(hue_bridge, "PUT", f"/api/{hue_bridge.username}/lights/1/state", body)
    assert answer == (
        b'[{"success":{"/lights/1/state/on":true}},{"success":{"/lights/1/state/sat":254}},'
        b'{"success":{"/lights/1/state/bri":254}},{"success":{"/lights/1/state/hue":10000}}]'
    )


def test_short_config_without_user(hue_bridge: HueBridge) -> None:
    for path in ("/api/config", "/api/nobody/config"):
        _, body = raw(hue_bridge, "GET", path)
        config = json.loads(body)
        assert {"bridgeid", "apiversion", "swversion", "name", "mac", "modelid"} <= set(config)
        assert "whitelist" not in config
    _, body = raw(hue_bridge, "GET", f"/api/{hue_bridge.username}/config")
    assert hue_bridge.username in json.loads(body)["whitelist"]


# -- v1 errors and malformed input -----------------------------------------------------


def test_state_errors(hue_bridge: HueBridge) -> None:
    assert put(hue_bridge, "/lights/9/state", {"on": True}) == [
        {
            "error": {
                "type": 3,
                "address": "/lights/9/state",
                "description": "resource, /lights/9/state, not available",
            }
        }
    ]
    # The light is off: colour and brightness are refused (201), "on" itself is fine.
    assert put(hue_bridge, "/lights/1/state", {"bri": 10, "alert": "select"}) == [
        {
            "error": {
                "type": 201,
                "address": "/lights/1/state/bri",
                "description": "parameter, bri, is not modifiable. Device is set to off.",
            }
        },
        {"success": {"/lights/1/state/alert": "select"}},
    ]
    assert put(hue_bridge, "/lights/3/state", {"on": True, "hue": 100, "bri": "max"}) == [
        {"success": {"/lights/3/state/on": True}},
        {
            "error": {
                "type": 6,
                "address": "/lights/3/state/hue",
                "description": "parameter, hue, not available",
            }
        },
        {
            "error": {
                "type": 7,
                "address": "/lights/3/state/bri",
                "description": "invalid value, max, for parameter, bri",
            }
        },
    ]
    assert (
        put(hue_bridge, "/lights/2/state", {"on": True, "ct": 500})[1]["error"]["type"] == 7
    )  # max 454
    assert hue_bridge.light_state("3")["bri"] == 254  # refused values change nothing


@pytest.mark.parametrize(
    ("value", "ok"),
    [(1, True), (254, True), (0, False), (255, False), (True, False), (12.5, False)],
)
def test_bri_range(hue_bridge: HueBridge, value: object, ok: bool) -> None:
    [answer] = put(hue_bridge, "/lights/1/state", {"on": True, "bri": value})[1:]
    assert ("success" in answer) is ok


def test_increments_clamp(hue_bridge: HueBridge) -> None:
    put(hue_bridge, "/lights/1/state", {"on": True, "bri": 250})
    assert put(hue_bridge, "/lights/1/state", {"bri_inc": 100}) == [
        {"success": {"/lights/1/state/bri_inc": 100}}
    ]
    assert hue_bridge.light_state("1")["bri"] == 254


def test_malformed_bodies(hue_bridge: HueBridge) -> None:
    user = hue_bridge.username
    _, body = raw(hue_bridge, "PUT", f"/api/{user}/lights/1/state", b"{on: true")
    assert json.loads(body) == [
        {
            "error": {
                "type": 2,
                "address": "/lights/1/state",
                "description": "body contains invalid json",
            }
        }
    ]
    _, body = raw(hue_bridge, "POST", "/api", b"\xff\xfe")
    assert json.loads(body)[0]["error"]["type"] == 2
    _, body = raw(hue_bridge, "POST", "/api", b"{}")
    assert json.loads(body)[0]["error"]["type"] == 5
    _, body = raw(hue_bridge, "DELETE", f"/api/{user}/lights")
    assert json.loads(body)[0]["error"] == {
        "type": 4,
        "address": "/lights",
        "description": "method, DELETE, not available for resource, /lights",
    }


def test_garbage_on_the_socket(hue_bridge: HueBridge) -> None:
    with socket.create_connection((hue_bridge.host, hue_bridge.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n")
        # No HTTP version on that line, so the standard library answers the
        # HTTP/0.9 way (a bare error page, no status line) and closes.
        assert b"Error code: 400" in recv_all(sock)
    with socket.create_connection((hue_bridge.host, hue_bridge.port), timeout=TIMEOUT) as sock:
        sock.sendall(
            b"PUT /api/x/lights/1/state HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999\r\n\r\n"
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 413")
    assert raw(hue_bridge, "GET", "/api/config")[0] == 200  # still serving


def recv_all(sock: socket.socket) -> bytes:
    data = b""
    for _ in range(100):  # bounded; the server closes after an error page
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_stops_cleanly() -> None:
    bridge = HueBridge().start()
    connection = http.client.HTTPConnection(bridge.host, bridge.port, timeout=TIMEOUT)
    connection.request("GET", "/api/config")
    connection.getresponse().read()  # leaves an idle keep-alive connection open
    bridge.stop()
    with pytest.raises(OSError):
        socket.create_connection((bridge.host, bridge.port), timeout=TIMEOUT)
    connection.close()
