"""``wasmdeck status/reload/fire/mode/events``: the running daemon's control API (docs/serve.md)."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .. import _json
from .._errors import WasmdeckError
from ..daemon import control_file


class DaemonUnreachable(WasmdeckError):
    """No daemon answers: none runs, or its control file is stale."""


def register(subparsers: Any) -> None:
    status = subparsers.add_parser("status", help="the running deck: mode, plugins, counters")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(handler=_status)
    reload = subparsers.add_parser(
        "reload",
        help="load the deck file again (a bad one is refused), or one plugin, keeping its state",
        description="Without PLUGIN: read the deck file again. With PLUGIN: load that plugin's "
        "file or installed package again and hand its state over to the new version "
        "(docs/reload.md); if anything fails the running version stays, and this exits 1.",
    )
    reload.add_argument("plugin", nargs="?", metavar="PLUGIN", help="the deck's name for it")
    reload.set_defaults(handler=_reload)
    fire = subparsers.add_parser("fire", help="fire a binding by hand")
    fire.add_argument("binding", metavar="BINDING")
    fire.set_defaults(handler=_fire)
    mode = subparsers.add_parser("mode", help="switch the running deck's mode")
    mode.add_argument("mode", metavar="NAME")
    mode.set_defaults(handler=_mode)
    events = subparsers.add_parser("events", help="follow triggers -> actions -> results live")
    events.set_defaults(handler=_events)
    ui = subparsers.add_parser(
        "ui",
        help="print (or open) the address of the running host's web UI, which logs you in",
        description="The address carries the control token after '#', which browsers never "
        "send to a server; the login page takes it from there (docs/ui.md).",
    )
    ui.add_argument("--open", action="store_true", help="open it in the default browser")
    ui.set_defaults(handler=_ui)


def _control_document() -> tuple[int, str]:
    """The running daemon's port and token, from its control file."""
    try:
        document = _json.loads(control_file().read_bytes(), what="control.json")
        return int(document["port"]), str(document["token"])
    except (OSError, _json.JSONInputError, KeyError, TypeError, ValueError) as exc:
        raise DaemonUnreachable(f"no wasmdeck serve is running ({control_file()}: {exc})") from None


def request(method: str, path: str, *, stream: bool = False) -> Any:
    """One control API request; the JSON answer (or the open response, to stream)."""
    port, token = _control_document()
    url = f"http://127.0.0.1:{int(port)}{path}"
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"})
    try:
        response = urllib.request.urlopen(req, timeout=None if stream else 30)
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            answer = _json.loads(body, what="the answer")
        except _json.JSONInputError:
            answer = {"error": body.decode("utf-8", "replace")}
        message = answer.get("error") or answer.get("message") or str(exc)
        raise WasmdeckError(_printable(str(message))) from None
    except OSError as exc:
        raise DaemonUnreachable(f"the daemon on port {port} does not answer: {exc}") from None
    if stream:
        return response
    with response:
        return _json.loads(response.read(), what="the answer")


def _status(args: argparse.Namespace) -> int:
    status = request("GET", "/v1/status")
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(
        _printable(f"deck {status['deck']}: {status['bindings']} bindings, mode {status['mode']}")
    )
    print(
        f"events {status['events_in']} in, {status['events_dropped']} dropped; reloads {status['reloads']}"
    )
    for name, plugin in status["plugins"].items():
        print(
            _printable(
                f"  {name} ({plugin['plugin']} {plugin['version']}): {_calls(plugin)}, "
                f"p50 {plugin.get('p50_ms')} ms, p99 {plugin.get('p99_ms')} ms"
            )
        )
    calling = {n: b for n, b in status.get("per_binding", {}).items() if b["calls"] or b["drops"]}
    if calling:
        print("bindings:")
    for name, binding in calling.items():
        print(_printable(f"  {name}: fired {binding['fired']}, {_calls(binding)}"))
    return 0


def _calls(stats: dict[str, Any]) -> str:
    """Calls, errors, limit hits, drops and fuel, as a status line says them."""
    errors = ", ".join(f"{k} {v}" for k, v in stats["errors"].items()) or "no errors"
    limits = ", ".join(f"{k} {v}" for k, v in stats["limit_hits"].items()) or "none"
    fuel = stats["fuel_per_call"]
    return (
        f"{stats['calls']} calls, {errors}, limit hits: {limits}, {stats['drops']} dropped, "
        f"fuel {stats['fuel_used']:,}" + (f" ({fuel:,} per call)" if fuel is not None else "")
    )


def _reload(args: argparse.Namespace) -> int:
    if args.plugin is not None:
        answer = request("POST", f"/v1/reload/{urllib.parse.quote(args.plugin, safe='')}")
    else:
        answer = request("POST", "/v1/reload")
    print(_printable(answer["message"]))
    return 0


def _fire(args: argparse.Namespace) -> int:
    request("POST", f"/v1/fire/{urllib.parse.quote(args.binding, safe='')}")
    return 0


def _mode(args: argparse.Namespace) -> int:
    answer = request("POST", f"/v1/mode/{urllib.parse.quote(args.mode, safe='')}")
    print(_printable(f"mode {answer['mode']}"))
    return 0


def _events(args: argparse.Namespace) -> int:
    with request("GET", "/v1/events", stream=True) as response:
        # The daemon listens for this reader once it has answered: from here nothing is missed.
        print("wasmdeck: following the running deck's events", file=sys.stderr, flush=True)
        for line in response:
            if line.strip():
                print(_printable(line.decode("utf-8", "replace").rstrip()), flush=True)
    return 0


def _ui(args: argparse.Namespace) -> int:
    port, token = _control_document()
    url = f"http://127.0.0.1:{port}/ui/login#token={urllib.parse.quote(token, safe='')}"
    print(url)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    return 0


def _printable(text: str) -> str:
    """Text from the daemon as a terminal may show it: control characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
