"""A call's deadline bounds everything done on its behalf (issue 9, items 1 and 2).

Each test runs a real plugin against a real peer that tries to hold the call
past its time limit: a WASI sleep (C through poll_oneoff, Python components
through wasi:clocks), an HTTP server that drips its answer a byte at a time,
a DNS server that never answers, a WebSocket peer that never answers a
close, a program that runs too long or leaves children behind. The call
must end with ``TimeLimitExceeded`` well before the peer would let go; the
bounds are generous (a 0.5-1 s limit must end within 2-3 s, not 10 s).
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from componentgen import COMPILED, PLUGINS, build_python
from conftest import ROOT, build_c
from hostcall import calls_module, host_call_module
from netns import run_isolated
from servers.hostile import DripHTTPServer, SilentWebSocketServer

import wasmdeck
from wasmdeck import Limits, PluginTrap, TimeLimitExceeded
from wasmdeck.runtime import Runtime
from wasmdeck.runtime._deadline import DeadlinePassed
from wasmdeck.runtime._netclient import HostRequestError, WebSocketSessions
from wasmdeck.runtime._netpolicy import NetworkPolicy

TIME_LIMIT_TEXT = "time limit (timeout)"


def ends_with_time_limit(call: Callable[[], object], within: float = 2.0) -> TimeLimitExceeded:
    started = time.monotonic()
    with pytest.raises(TimeLimitExceeded) as info:
        call()
    elapsed = time.monotonic() - started
    assert elapsed < within, f"the call ended {elapsed:.2f} s after it started"
    assert TIME_LIMIT_TEXT in str(info.value)
    return info.value


# -- WASI sleeps ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sleeper_wasm() -> Path:
    return build_c(ROOT / "tests" / "plugins" / "c" / "sleeper.c")


@pytest.fixture
def sleeper(sleeper_wasm: Path) -> Iterator[wasmdeck.Plugin]:
    with wasmdeck.Plugin(sleeper_wasm, limits=Limits(timeout=0.5)) as plugin:
        yield plugin


@pytest.mark.parametrize(
    "action", ["nanosleep", "monotonic-until", "realtime-until", "usleep-loop"]
)
def test_a_wasi_sleep_past_the_deadline_ends_the_call(
    sleeper: wasmdeck.Plugin, action: str
) -> None:
    # Each asks for 10 s in all (a relative or an absolute clock, one sleep or many).
    error = ends_with_time_limit(lambda: sleeper.call(action, {"ms": 10_000}))
    assert "0.5 s" in str(error)
    if action != "usleep-loop":
        # One long sleep is cut at the deadline by the host; a loop of short ones
        # may as well be stopped by the epoch between two sleeps (both are the limit).
        assert "sleeping" in str(error)
    assert json.loads(sleeper.call("nanosleep", {"ms": 1}))["rc"] == 0  # the plugin works on


@pytest.mark.parametrize("action", ["nanosleep", "monotonic-until", "realtime-until"])
def test_a_wasi_sleep_within_the_deadline_sleeps_as_asked(
    sleeper: wasmdeck.Plugin, action: str
) -> None:
    answer = json.loads(sleeper.call(action, {"ms": 150}))
    # (the plugin counts whole milliseconds, so 150 ms may read as 149)
    assert answer["rc"] == 0 and 148 <= answer["slept_ms"] < 450


def test_poll_oneoff_reports_ready_streams_without_waiting(sleeper: wasmdeck.Plugin) -> None:
    # A 10 s clock beside stdout: stdout is ready, so the clock does not fire.
    answer = json.loads(sleeper.call("clock-and-stdout"))
    assert answer == {"errno": 0, "n": 1, "userdata": 9, "type": 2}


def test_poll_oneoff_refuses_bad_pointers_with_errno(sleeper: wasmdeck.Plugin) -> None:
    # subscriptions, events, nevents out of bounds; a count that overflows
    # memory: EFAULT (21); no subscriptions: EINVAL (28). No trap.
    far = 0x7FFF_FFF0
    assert json.loads(sleeper.call("bad-pointers", {"far": far})) == [21, 21, 21, 21, 28]
    assert sleeper.call("nanosleep", {"ms": 1})


@pytest.fixture(scope="module")
def sleeper_component() -> wasmdeck.Plugin:
    plugin = wasmdeck.Plugin(
        build_python(PLUGINS / "sleeper"),
        runtime=Runtime(cache=COMPILED),
        limits=Limits(timeout=0.5),
    )
    yield plugin
    plugin.close()


@pytest.mark.parametrize("action", ["sleep", "forever"])
def test_a_component_sleep_past_the_deadline_ends_the_call(
    sleeper_component: wasmdeck.Plugin, action: str
) -> None:
    # time.sleep(10) once, or again and again (the guest cannot carry on
    # after its sleep was cut short).
    ends_with_time_limit(lambda: sleeper_component.call(action, {"seconds": 10}))
    answer = json.loads(sleeper_component.call("sleep", {"seconds": 0.1}))
    assert 0.1 <= answer["slept"] < 0.4


# -- HTTP ---------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["status", "headers", "body"])
def test_an_http_server_dripping_its_answer_cannot_hold_the_call(phase: str) -> None:
    # 100+ bytes at 0.1 s each: over 10 s, each read well within any per-read timeout.
    with DripHTTPServer(phase=phase, interval=0.1) as server:
        plugin = wasmdeck.Plugin(
            host_call_module("http_request", {"url": server.url("/slow")}),
            grants=[f"network:127.0.0.1:{server.port}"],
            limits=Limits(timeout=1.0),
        )
        ends_with_time_limit(lambda: plugin.call("go"), within=3.0)
        assert server.requests and server.requests[0].startswith(b"GET /slow HTTP/1.1")


def test_a_request_timeout_shorter_than_the_deadline_is_the_plugins_to_handle() -> None:
    with DripHTTPServer(phase="body", interval=0.1) as server:
        plugin = wasmdeck.Plugin(
            host_call_module("http_request", {"url": server.url(), "timeout_ms": 300}),
            grants=[f"network:127.0.0.1:{server.port}"],
            limits=Limits(timeout=5.0),
        )
        started = time.monotonic()
        answer = json.loads(plugin.call("go"))
        assert answer["error"]["kind"] == "timeout", answer
        assert time.monotonic() - started < 2.0


def test_a_dns_lookup_that_never_answers_cannot_hold_the_call() -> None:
    # The system resolver (getaddrinfo) asks a DNS server that never answers;
    # left alone it would wait 5 s twice.
    result = run_isolated(
        """
import json, time
from hostcall import host_call_module
from servers.dns import DNSServer
import wasmdeck
from wasmdeck import Limits, TimeLimitExceeded

with DNSServer({"known.example.test": "127.0.0.5"}, silent=("slow.example.test",), port=53) as dns:
    import socket
    known = sorted({info[4][0] for info in socket.getaddrinfo("known.example.test", 80)})
    plugin = wasmdeck.Plugin(
        host_call_module("http_request", {"url": "http://slow.example.test/"}),
        grants=["network:slow.example.test"],
        limits=Limits(timeout=1.0),
    )
    started = time.monotonic()
    try:
        outcome = plugin.call("go").decode()
    except TimeLimitExceeded as exc:
        outcome = type(exc).__name__ + ": " + str(exc)
    print(json.dumps({"outcome": outcome, "elapsed": time.monotonic() - started,
                      "known": known, "asked": sorted({name for name, _ in dns.queries})}))
"""
    )
    # The server answers the system resolver (glibc) for real, and was asked.
    assert result["known"] == ["127.0.0.5"]
    assert result["asked"] == ["known.example.test", "slow.example.test"]
    assert result["outcome"].startswith("TimeLimitExceeded"), result
    assert "resolving" in result["outcome"]
    assert result["elapsed"] < 3.0


# -- WebSocket ------------------------------------------------------------------------


@pytest.fixture
def silent_peer() -> Iterator[SilentWebSocketServer]:
    with SilentWebSocketServer() as server:
        yield server


def ws_plugin(
    server: SilentWebSocketServer, calls: list[tuple[str, dict[str, object]]], **options: object
) -> wasmdeck.Plugin:
    return wasmdeck.Plugin(
        calls_module([("ws_connect", {"url": server.url()}), *calls], **options),  # type: ignore[arg-type]
        grants=[f"network:127.0.0.1:{server.port}"],
        limits=Limits(timeout=1.0),
    )


def test_a_peer_that_never_answers_the_close_cannot_hold_the_call(
    silent_peer: SilentWebSocketServer,
) -> None:
    plugin = ws_plugin(silent_peer, [("ws_close", {"id": 1})])
    ends_with_time_limit(lambda: plugin.call("go"), within=3.0)
    with silent_peer.received:
        silent_peer.received.wait_for(lambda: 8 in silent_peer.opcodes, timeout=5)
    assert 8 in silent_peer.opcodes  # the close was sent, and never answered


def test_receiving_until_the_deadline_ends_the_call(silent_peer: SilentWebSocketServer) -> None:
    plugin = ws_plugin(silent_peer, [("ws_recv", {"id": 1})])
    ends_with_time_limit(lambda: plugin.call("go"), within=3.0)


def test_a_receive_timeout_shorter_than_the_deadline_is_the_plugins_to_handle(
    silent_peer: SilentWebSocketServer,
) -> None:
    plugin = ws_plugin(silent_peer, [("ws_recv", {"id": 1, "timeout_ms": 100})])
    assert json.loads(plugin.call("go")) == {"timeout": True}


def test_discarding_an_instance_with_an_unanswered_websocket_does_not_hang(
    silent_peer: SilentWebSocketServer,
) -> None:
    # The plugin traps with the connection open: the instance is discarded
    # (its WebSockets closed) within the call.
    plugin = ws_plugin(silent_peer, [("ws_send", {"id": 1, "text": "hi"})], then="(unreachable)")
    started = time.monotonic()
    with pytest.raises(PluginTrap):
        plugin.call("go")
    assert time.monotonic() - started < 1.0


def test_a_send_to_a_peer_that_stops_reading_ends_at_the_deadline() -> None:
    # A message larger than the socket buffers, to a peer that reads nothing:
    # the send would block for ever. (The host API itself, without a plugin,
    # to hand it a 32 MB message.)
    with SilentWebSocketServer(read=False) as peer:
        sessions = WebSocketSessions(
            NetworkPolicy([f"127.0.0.1:{peer.port}"]),
            max_message=1 << 20,
            tls=ssl.create_default_context(),
        )
        opened = sessions.connect({"url": peer.url()}, time.monotonic() + 5)
        message = "x" * (32 << 20)
        started = time.monotonic()
        with pytest.raises(DeadlinePassed):
            sessions.send({"id": opened["id"], "text": message}, time.monotonic() + 0.5)
        # (framing 32 MB takes a while on a busy machine; without the bound it never ends)
        assert time.monotonic() - started < 4.0
        with pytest.raises(HostRequestError, match="no open WebSocket"):  # it was dropped
            sessions.send({"id": opened["id"], "text": "again"}, time.monotonic() + 1)
        sessions.close_all()


# -- processes ----------------------------------------------------------------------------


def run_process(request: dict[str, object], program: str, **limits: float) -> wasmdeck.Plugin:
    return wasmdeck.Plugin(
        host_call_module("process_run", request),
        grants=[f"process:{program}"],
        limits=Limits(**limits),  # type: ignore[arg-type]
    )


def test_a_process_running_past_the_deadline_ends_the_call() -> None:
    plugin = run_process({"argv": ["sleep", "10"]}, "sleep", timeout=0.5)
    ends_with_time_limit(lambda: plugin.call("go"))


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is dead: it only waits to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _gone_soon(pid: int) -> bool:
    # SIGKILL is delivered at once, but the state change is asynchronous: allow 2 s.
    end = time.monotonic() + 2.0
    while _alive(pid) and time.monotonic() < end:
        time.sleep(0.01)
    return not _alive(pid)


@pytest.mark.parametrize(
    "script",
    [
        "sleep 100 >/dev/null 2>&1 & echo $!",  # detached from the pipes
        "sleep 100 & echo $!",  # still holding stdout
    ],
)
def test_processes_a_granted_program_starts_do_not_outlive_the_call(script: str) -> None:
    plugin = run_process({"argv": ["sh", "-c", script], "timeout_ms": 3000}, "sh", timeout=5.0)
    started = time.monotonic()
    answer = json.loads(plugin.call("go"))
    assert answer["exit_code"] == 0, answer
    assert time.monotonic() - started < 2.0  # did not wait for the grandchild's pipes
    grandchild = int(answer["stdout"])
    assert _gone_soon(grandchild), f"the grandchild {grandchild} is still running"


def test_processes_left_behind_are_killed_at_the_deadline(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = 'sleep 100 >/dev/null 2>&1 & echo $! > "$1"; sleep 100'
    plugin = run_process({"argv": ["sh", "-c", script, "sh", str(pidfile)]}, "sh", timeout=0.5)
    ends_with_time_limit(lambda: plugin.call("go"))
    assert _gone_soon(int(pidfile.read_text()))


# -- the hostile peers are what they say (checked with third-party clients) -----------


def test_the_drip_server_speaks_http_and_outlasts_a_per_read_timeout() -> None:
    import httpx

    with DripHTTPServer(phase="status", interval=0.02, body=b"hello") as server:
        started = time.monotonic()
        response = httpx.get(server.url("/x"), timeout=0.5)  # 0.5 s for each read
        elapsed = time.monotonic() - started
    assert (response.status_code, response.text) == (200, "hello")
    assert elapsed > 1.0  # ~90 bytes at 0.02 s: well past the per-read timeout, yet no error


def test_the_silent_websocket_peer_completes_the_handshake_and_ignores_the_close(
    silent_peer: SilentWebSocketServer,
) -> None:
    from websockets.sync.client import connect

    with connect(silent_peer.url(), close_timeout=0.2) as client:
        client.send("hello")
    # (leaving the block sent the close and gave up on the answer after 0.2 s)
    with silent_peer.received:
        silent_peer.received.wait_for(lambda: len(silent_peer.opcodes) >= 2, timeout=5)
    assert silent_peer.opcodes[:2] == [1, 8]  # a text frame, then the close
    assert client.protocol.close_rcvd is None  # the peer never answered it
