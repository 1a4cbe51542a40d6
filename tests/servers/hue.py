"""A Philips Hue bridge speaking the v1 REST API over plain HTTP on loopback.

What it answers, in the v1 forms (HTTP 200 always; errors are in the body):

- ``POST /api`` creates a user: error 101 until the link button was pressed
  (``press_link_button()``; the window lasts 30 s as on a real bridge).
- ``GET /api/config`` and ``GET /api/<anyone>/config``: the short, public
  config (what clients identify a bridge by); a known user gets the full one.
- ``GET /api/<user>``: the whole datastore (lights, groups, config, ...).
- ``GET /api/<user>/lights[/<id>]``, ``PUT /api/<user>/lights/<id>`` (name),
  ``PUT /api/<user>/lights/<id>/state``.
- ``GET /api/<user>/groups[/<id>]`` (group 0, all lights, only by id),
  ``PUT /api/<user>/groups/<id>/action``.
- Success and error arrays: ``[{"success":{"/lights/1/state/on":true}}]``,
  ``[{"error":{"type":3,"address":...,"description":...}}]`` with types 1
  (unauthorized user), 2 (invalid JSON), 3 (resource not available), 4 (method
  not available), 5 (missing parameters), 6 (parameter not available), 7
  (invalid value), 101 (link button not pressed), 201 (device is off).
"""

from __future__ import annotations

import copy
import json
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any

from ._http import LoopbackHTTPServer, RecordedRequest, Response

LINK_BUTTON_WINDOW = 30.0  # seconds a press allows user creation, as on a real bridge

BRIDGE_ID = "001788FFFE4A5B6C"
SHORT_CONFIG: dict[str, Any] = {
    "name": "Philips hue",
    "datastoreversion": "166",
    "swversion": "1968096020",
    "apiversion": "1.68.0",
    "mac": "00:17:88:4a:5b:6c",
    "bridgeid": BRIDGE_ID,
    "factorynew": False,
    "replacesbridgeid": None,
    "modelid": "BSB002",
    "starterkitid": "",
}

# Parameters that only change what the light shows, so a bridge refuses them
# (error 201) while the light is off; "alert" and "transitiontime" are allowed.
NEEDS_ON = frozenset(
    {"bri", "hue", "sat", "xy", "ct", "effect", "bri_inc", "hue_inc", "sat_inc", "ct_inc", "xy_inc"}
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _light(kind: str, name: str, model: str, product: str, mac_tail: str) -> dict[str, Any]:
    state: dict[str, Any] = {"on": False, "bri": 254, "alert": "none"}
    control: dict[str, Any] = {"mindimlevel": 1000, "maxlumen": 806}
    if kind == "Extended color light":
        state |= {"hue": 8418, "sat": 140, "effect": "none", "xy": [0.4573, 0.41], "ct": 366}
        control |= {
            "colorgamuttype": "C",
            "colorgamut": [[0.6915, 0.3083], [0.17, 0.7], [0.1532, 0.0475]],
            "ct": {"min": 153, "max": 500},
        }
    elif kind == "Color temperature light":
        state |= {"ct": 366}
        control |= {"ct": {"min": 153, "max": 454}}
    if "ct" in state:
        state["colormode"] = "ct"
    state |= {"mode": "homeautomation", "reachable": True}
    return {
        "state": state,
        "swupdate": {"state": "noupdates", "lastinstall": "2024-01-10T10:00:00"},
        "type": kind,
        "name": name,
        "modelid": model,
        "manufacturername": "Signify Netherlands B.V.",
        "productname": product,
        "capabilities": {"certified": True, "control": control, "streaming": {"renderer": False}},
        "config": {"archetype": "sultanbulb", "function": "mixed", "direction": "omnidirectional"},
        "uniqueid": f"00:17:88:01:{mac_tail}-0b",
        "swversion": "1.104.2",
    }


class HueBridge(LoopbackHTTPServer):
    """A v1 bridge with three lights (color, ambiance, white) in two rooms.

    ``username`` is a user registered at start, for tests that need not pair.
    ``state`` is the datastore (lights, groups); read it under ``lock``.
    """

    def __init__(self) -> None:
        super().__init__(self._answer)
        self.lock = threading.RLock()
        self.lights: dict[str, dict[str, Any]] = {
            "1": _light(
                "Extended color light", "Desk lamp", "LCT015", "Hue color lamp", "03:4a:5b:6c"
            ),
            "2": _light(
                "Color temperature light", "Key light", "LTW001", "Hue ambiance lamp", "03:4a:5b:6d"
            ),
            "3": _light("Dimmable light", "Hall", "LWB010", "Hue white lamp", "03:4a:5b:6e"),
        }
        self.groups: dict[str, dict[str, Any]] = {
            "1": self._new_group("Studio", ["1", "2"], "Living room"),
            "2": self._new_group("Hallway", ["3"], "Hallway"),
        }
        self.group0 = self._new_group("Group 0", list(self.lights), "", kind="LightGroup")
        self.whitelist: dict[str, dict[str, str]] = {}
        self._link_deadline = 0.0
        self.username = self.add_user("wasmdeck#tests")

    def _new_group(
        self, name: str, lights: list[str], room_class: str, kind: str = "Room"
    ) -> dict[str, Any]:
        # A group's action carries every state parameter any of its lights has.
        action: dict[str, Any] = {}
        for light_id in lights:
            state = self.lights[light_id]["state"]
            action |= {k: v for k, v in state.items() if k not in ("mode", "reachable")}
        group: dict[str, Any] = {
            "name": name,
            "lights": lights,
            "sensors": [],
            "type": kind,
            "state": {"all_on": False, "any_on": False},
            "recycle": False,
            "action": copy.deepcopy(action),
        }
        if kind == "Room":
            group["class"] = room_class
        return group

    # -- control from the test side -------------------------------------------------

    def press_link_button(self, window: float = LINK_BUTTON_WINDOW) -> None:
        with self.lock:
            self._link_deadline = time.monotonic() + window

    def add_user(self, devicetype: str) -> str:
        username = secrets.token_hex(20)  # 40 characters, like the bridge's generated names
        with self.lock:
            self.whitelist[username] = {
                "last use date": _now(),
                "create date": _now(),
                "name": devicetype,
            }
        return username

    def light_state(self, light_id: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.lights[light_id]["state"])

    # -- the API -------------------------------------------------------------------

    @property
    def link_button(self) -> bool:
        return time.monotonic() < self._link_deadline

    def _answer(self, request: RecordedRequest) -> Response:
        parts = [part for part in request.path.split("/") if part]
        if not parts or parts[0] != "api":
            return Response(404, b"Not found", [("Content-Type", "text/plain")])
        with self.lock:
            return Response.json(self._route(request.method, parts[1:], request.body))

    def _route(self, method: str, parts: list[str], body: bytes) -> Any:
        if not parts:
            if method == "POST":
                return self._create_user(body)
            return [_method_error(method, "/")]
        user, rest = parts[0], parts[1:]
        if user == "config" and not rest and method == "GET":
            return dict(SHORT_CONFIG)
        address = "/" + "/".join(rest)
        if user not in self.whitelist:
            if rest == ["config"] and method == "GET":
                return dict(SHORT_CONFIG)
            return [_error(1, address, "unauthorized user")]
        self.whitelist[user]["last use date"] = _now()
        if not rest:
            return self._datastore() if method == "GET" else [_method_error(method, address)]
        resource = rest[0]
        if resource == "lights":
            return self._lights(method, rest[1:], body, address)
        if resource == "groups":
            return self._groups(method, rest[1:], body, address)
        if resource == "config" and len(rest) == 1 and method == "GET":
            return self._config()
        if (
            resource in ("scenes", "sensors", "schedules", "rules", "resourcelinks")
            and len(rest) == 1
        ):
            return {} if method == "GET" else [_method_error(method, address)]
        return [_method_error(method, address)]

    def _create_user(self, body: bytes) -> list[dict[str, Any]]:
        data = _parse(body)
        if data is None:
            return [_error(2, "", "body contains invalid json")]
        devicetype = data.get("devicetype") if isinstance(data, dict) else None
        if not isinstance(devicetype, str):
            return [_error(5, "/", "invalid/missing parameters in body")]
        if not 0 < len(devicetype) <= 40:
            return [_invalid("/devicetype", devicetype, "devicetype")]
        if not self.link_button:
            return [_error(101, "", "link button not pressed")]
        success: dict[str, Any] = {"username": self.add_user(devicetype)}
        if data.get("generateclientkey") is True:
            success["clientkey"] = secrets.token_hex(16).upper()
        return [{"success": success}]

    def _datastore(self) -> dict[str, Any]:
        return {
            "lights": copy.deepcopy(self.lights),
            "groups": copy.deepcopy(self.groups),
            "config": self._config(),
            "schedules": {},
            "scenes": {},
            "rules": {},
            "sensors": {},
            "resourcelinks": {},
        }

    def _config(self) -> dict[str, Any]:
        return SHORT_CONFIG | {
            "zigbeechannel": 25,
            "dhcp": True,
            "ipaddress": self.host,
            "netmask": "255.0.0.0",
            "gateway": self.host,
            "proxyaddress": "none",
            "proxyport": 0,
            "UTC": _now(),
            "localtime": _now(),
            "timezone": "UTC",
            "linkbutton": self.link_button,
            "portalservices": False,
            "portalconnection": "disconnected",
            "swupdate2": {
                "checkforupdate": False,
                "lastchange": "2024-01-10T10:00:00",
                "bridge": {"state": "noupdates", "lastinstall": "2024-01-10T10:00:00"},
                "state": "noupdates",
                "autoinstall": {"updatetime": "T14:00:00", "on": True},
            },
            "whitelist": copy.deepcopy(self.whitelist),
        }

    def _lights(self, method: str, rest: list[str], body: bytes, address: str) -> Any:
        if not rest:
            return (
                copy.deepcopy(self.lights) if method == "GET" else [_method_error(method, address)]
            )
        light = self.lights.get(rest[0])
        if light is None:
            return [_error(3, address, f"resource, {address}, not available")]
        if len(rest) == 1 and method == "GET":
            return copy.deepcopy(light)
        if len(rest) == 1 and method == "PUT":
            return _rename(light, body, address)
        if rest[1:] == ["state"] and method == "PUT":
            return self._set_state(
                body, address, light["state"], light["capabilities"]["control"], needs_on=True
            )
        return [_method_error(method, address)]

    def _groups(self, method: str, rest: list[str], body: bytes, address: str) -> Any:
        if not rest:
            return (
                copy.deepcopy(self.groups) if method == "GET" else [_method_error(method, address)]
            )
        group = self._group(rest[0])
        if group is None:
            return [_error(3, address, f"resource, {address}, not available")]
        if len(rest) == 1 and method == "GET":
            return copy.deepcopy(group)
        if rest[1:] == ["action"] and method == "PUT":
            results = self._set_state(
                body, address, group["action"], {"ct": {"min": 153, "max": 500}}
            )
            self._apply_group(group, results)
            return results
        return [_method_error(method, address)]

    def _group(self, group_id: str) -> dict[str, Any] | None:
        # Group 0, all lights, is reachable by id but never listed.
        return self.group0 if group_id == "0" else self.groups.get(group_id)

    def _apply_group(self, group: dict[str, Any], results: list[dict[str, Any]]) -> None:
        """Copy the accepted action parameters onto each member light that has them."""
        for result in results:
            for path, value in result.get("success", {}).items():
                name = path.rsplit("/", 1)[1]
                for light_id in group["lights"]:
                    state = self.lights[light_id]["state"]
                    control = self.lights[light_id]["capabilities"]["control"]
                    _apply(state, control, name, value)
        for each in (self.group0, *self.groups.values()):  # groups sharing lights see it too
            on = [self.lights[light_id]["state"]["on"] for light_id in each["lights"]]
            each["state"] = {"all_on": all(on) and bool(on), "any_on": any(on)}

    def _set_state(
        self,
        body: bytes,
        address: str,
        state: dict[str, Any],
        control: dict[str, Any],
        *,
        needs_on: bool = False,
    ) -> list[dict[str, Any]]:
        data = _parse(body)
        if not isinstance(data, dict):
            return [_error(2, address, "body contains invalid json")]
        if not data:
            return [_error(5, address, "invalid/missing parameters in body")]
        turning_on = data.get("on") if isinstance(data.get("on"), bool) else state.get("on")
        results: list[dict[str, Any]] = []
        for name, value in data.items():
            where = f"{address}/{name}"
            if not _supported(state, name):
                results.append(_error(6, where, f"parameter, {name}, not available"))
            elif not _valid(name, value, control):
                results.append(_invalid(where, value, name))
            elif needs_on and name in NEEDS_ON and not turning_on:
                results.append(
                    _error(
                        201, where, f"parameter, {name}, is not modifiable. Device is set to off."
                    )
                )
            else:
                _apply(state, control, name, value)
                results.append({"success": {where: value}})
        return results


def _rename(light: dict[str, Any], body: bytes, address: str) -> list[dict[str, Any]]:
    data = _parse(body)
    if not isinstance(data, dict):
        return [_error(2, address, "body contains invalid json")]
    name = data.get("name")
    if not isinstance(name, str):
        return [_error(5, address, "invalid/missing parameters in body")]
    if not 0 < len(name) <= 32:
        return [_invalid(f"{address}/name", name, "name")]
    light["name"] = name
    return [{"success": {f"{address}/name": name}}]


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _error(kind: int, address: str, description: str) -> dict[str, Any]:
    return {"error": {"type": kind, "address": address, "description": description}}


def _invalid(address: str, value: object, name: str) -> dict[str, Any]:
    shown = value if isinstance(value, str) else json.dumps(value)
    return _error(7, address, f"invalid value, {shown}, for parameter, {name}")


def _method_error(method: str, address: str) -> dict[str, Any]:
    return _error(4, address, f"method, {method}, not available for resource, {address}")


# Which state key a parameter needs, so a white bulb refuses colour (error 6).
_NEEDS_KEY = {
    "on": "on",
    "bri": "bri",
    "bri_inc": "bri",
    "hue": "hue",
    "hue_inc": "hue",
    "sat": "sat",
    "sat_inc": "sat",
    "xy": "xy",
    "xy_inc": "xy",
    "ct": "ct",
    "ct_inc": "ct",
    "effect": "effect",
    "alert": "alert",
    "transitiontime": "on",
}
_INT_RANGES = {
    "bri": (1, 254),
    "hue": (0, 65535),
    "sat": (0, 254),
    "transitiontime": (0, 65535),
    "bri_inc": (-254, 254),
    "sat_inc": (-254, 254),
    "hue_inc": (-65534, 65534),
    "ct_inc": (-65534, 65534),
}
_CHOICES = {"alert": ("none", "select", "lselect"), "effect": ("none", "colorloop")}


def _supported(state: dict[str, Any], name: str) -> bool:
    return _NEEDS_KEY.get(name) in state


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _valid(name: str, value: object, control: dict[str, Any]) -> bool:
    if name == "on":
        return isinstance(value, bool)
    if name in _INT_RANGES:
        low, high = _INT_RANGES[name]
        return _is_int(value) and low <= value <= high  # type: ignore[operator]
    if name == "ct":
        limits = control.get("ct", {"min": 153, "max": 500})
        return _is_int(value) and limits["min"] <= value <= limits["max"]  # type: ignore[operator]
    if name in ("xy", "xy_inc"):
        low, high = (0.0, 1.0) if name == "xy" else (-0.5, 0.5)
        return (
            isinstance(value, list)
            and len(value) == 2
            and all(_is_number(v) and low <= v <= high for v in value)
        )
    if name in _CHOICES:
        return value in _CHOICES[name]
    return False


def _apply(state: dict[str, Any], control: dict[str, Any], name: str, value: Any) -> None:
    """Set one accepted parameter on a light state (or a group's last action)."""
    key = _NEEDS_KEY.get(name)
    if key not in state or name == "transitiontime":
        return  # transitions and parameters this light lacks change nothing stored
    if name.endswith("_inc"):
        if name == "xy_inc":
            value = [
                min(1.0, max(0.0, round(a + b, 4))) for a, b in zip(state["xy"], value, strict=True)
            ]
        else:
            low, high = _INT_RANGES.get(key, (153, 500))
            if key == "ct":
                limits = control.get("ct", {"min": 153, "max": 500})
                low, high = limits["min"], limits["max"]
            value = min(high, max(low, state[key] + value))
    elif name == "ct":  # a group's ct may exceed one member's range: that light clamps it
        limits = control.get("ct", {"min": 153, "max": 500})
        value = min(limits["max"], max(limits["min"], value))
    state[key] = value
    if key in ("hue", "sat"):
        state["colormode"] = "hs"
    elif key in ("xy", "ct") and "colormode" in state:
        state["colormode"] = key
