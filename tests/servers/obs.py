"""An obs-websocket 5.x server (RPC version 1) on loopback, written from the protocol document.

Source: obs-websocket ``docs/generated/protocol.md`` (5.x.x, RPC 1). Where the
document leaves a detail open (the exact close reasons, which status a
refused request gets, the shape of the scene list), the behaviour follows what
obs-websocket itself does, read from its source; no code is taken from it.

Connection: subprotocol ``obswebsocket.json`` (JSON over text frames; also
the default when the client names none). ``obswebsocket.msgpack`` is refused at
the handshake, since this server does not speak MessagePack.

- ``Hello`` (op 0) on connect, with ``authentication`` {challenge, salt} when a
  password is set; ``Identify`` (op 1) must answer with
  ``base64(sha256(base64(sha256(password + salt)) + challenge))``.
- Close codes: 4002 MessageDecodeError, 4003 MissingDataField, 4004
  InvalidDataFieldType, 4005 InvalidDataFieldValue, 4006 UnknownOpCode, 4007
  NotIdentified, 4008 AlreadyIdentified, 4009 AuthenticationFailed, 4010
  UnsupportedRpcVersion.
- Requests (op 6) and batches (op 8): the types in ``obs_state.REQUEST_TYPES``,
  served by ``ObsState``; any other type answers 204 UnknownRequestType.
- Events (op 5) go to identified sessions whose ``eventSubscriptions`` include
  the event's intent: CurrentProgramSceneChanged, CurrentSceneTransitionChanged,
  RecordStateChanged, StreamStateChanged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.typing import Subprotocol

from .obs_state import (
    OBS_STUDIO_VERSION,
    OBS_WEBSOCKET_VERSION,
    RPC_VERSION,
    Event,
    ObsState,
    Status,
    Subscription,
    is_number,
    is_unsigned,
)

__all__ = [
    "Close",
    "LoggedRequest",
    "ObsState",
    "ObsWebSocketServer",
    "Op",
    "authentication_string",
]

SUBPROTOCOL = Subprotocol("obswebsocket.json")
MSGPACK = Subprotocol("obswebsocket.msgpack")
START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0


class Op:
    HELLO = 0
    IDENTIFY = 1
    IDENTIFIED = 2
    REIDENTIFY = 3
    EVENT = 5
    REQUEST = 6
    REQUEST_RESPONSE = 7
    REQUEST_BATCH = 8
    REQUEST_BATCH_RESPONSE = 9


class Close:
    MESSAGE_DECODE_ERROR = 4002
    MISSING_DATA_FIELD = 4003
    INVALID_DATA_FIELD_TYPE = 4004
    INVALID_DATA_FIELD_VALUE = 4005
    UNKNOWN_OP_CODE = 4006
    NOT_IDENTIFIED = 4007
    ALREADY_IDENTIFIED = 4008
    AUTHENTICATION_FAILED = 4009
    UNSUPPORTED_RPC_VERSION = 4010
    SESSION_INVALIDATED = 4011
    UNSUPPORTED_FEATURE = 4012


def authentication_string(password: str, salt: str, challenge: str) -> str:
    """The ``authentication`` an Identify must carry, as the protocol document defines it."""
    secret = base64.b64encode(hashlib.sha256((password + salt).encode()).digest())
    return base64.b64encode(hashlib.sha256(secret + challenge.encode()).digest()).decode()


@dataclass(frozen=True)
class LoggedRequest:
    request_type: str
    request_data: Any
    code: int  # the RequestStatus the server answered with


class _Refuse(Exception):
    """Close the session with an obs-websocket close code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(eq=False)  # compared and hashed by identity: sessions live in a set
class _Session:
    connection: ServerConnection
    challenge: str
    identified: bool = False
    subscriptions: int = 0


class ObsWebSocketServer:
    """obs-websocket on 127.0.0.1:<ephemeral>, served from its own thread and event loop.

    ``password=None`` turns authentication off (no ``authentication`` in Hello).
    ``requests`` logs every request (batched ones too) with the status it got;
    ``closes`` logs every (close code, reason) the server ended a session with.
    """

    def __init__(
        self, password: str | None = "wasmdeck-obs", state: ObsState | None = None
    ) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.password = password
        self.state = state or ObsState()
        self.salt = base64.b64encode(secrets.token_bytes(32)).decode()
        self._log_lock = threading.Lock()
        self._requests: list[LoggedRequest] = []
        self._closes: list[tuple[int, str]] = []
        self._sessions: set[_Session] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._log_lock:
            return list(self._requests)

    @property
    def request_types(self) -> list[str]:
        return [logged.request_type for logged in self.requests]

    @property
    def closes(self) -> list[tuple[int, str]]:
        with self._log_lock:
            return list(self._closes)

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="obs-websocket-test", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise TimeoutError("obs-websocket test server did not start")
        if self._error is not None:
            raise RuntimeError("obs-websocket test server failed to start") from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
            if self._thread.is_alive():
                raise TimeoutError("obs-websocket test server did not stop")
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(), which waits on _ready
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(
            self._session,
            self.host,
            0,
            subprotocols=[SUBPROTOCOL],
            select_subprotocol=_select_subprotocol,
            close_timeout=0.5,  # loopback peers answer a close at once, or never
        ) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()
        # Leaving ``serve`` closed every session with 1001 going away, as OBS does on exit.

    # -- test-side control --------------------------------------------------------

    def set_program_scene(self, name: str, timeout: float = START_TIMEOUT) -> None:
        """Switch scenes as a person in OBS would: subscribers get the event."""
        if name not in self.state.scenes:
            raise KeyError(name)
        if self._loop is None:
            raise RuntimeError("server not started")

        async def switch() -> None:
            await self._broadcast(self.state.switch_scene(name))

        asyncio.run_coroutine_threadsafe(switch(), self._loop).result(timeout)

    # -- protocol -----------------------------------------------------------------

    async def _session(self, connection: ServerConnection) -> None:
        session = _Session(connection, challenge=base64.b64encode(secrets.token_bytes(32)).decode())
        hello: dict[str, Any] = {
            "obsStudioVersion": OBS_STUDIO_VERSION,
            "obsWebSocketVersion": OBS_WEBSOCKET_VERSION,
            "rpcVersion": RPC_VERSION,
        }
        if self.password:
            hello["authentication"] = {"challenge": session.challenge, "salt": self.salt}
        self._sessions.add(session)
        try:
            await connection.send(json.dumps({"op": Op.HELLO, "d": hello}))
            async for message in connection:
                try:
                    await self._message(session, message)
                except _Refuse as refusal:
                    with self._log_lock:
                        self._closes.append((refusal.code, refusal.reason))
                    await connection.close(refusal.code, refusal.reason)
                    return
        except ConnectionClosed:
            pass
        finally:
            self._sessions.discard(session)

    async def _message(self, session: _Session, message: str | bytes) -> None:
        if isinstance(message, bytes):
            raise _Refuse(
                Close.MESSAGE_DECODE_ERROR,
                "Your session encoding is set to Json, but a binary message was received.",
            )
        try:
            payload = json.loads(message)
        except ValueError as exc:
            raise _Refuse(Close.MESSAGE_DECODE_ERROR, f"Unable to decode Json: {exc}") from None
        if not isinstance(payload, dict):
            raise _Refuse(Close.MESSAGE_DECODE_ERROR, "You sent a non-object payload.")
        if not session.identified and "request-type" in payload:
            raise _Refuse(
                Close.UNSUPPORTED_RPC_VERSION,
                "You appear to be attempting to connect with the pre-5.0.0 plugin protocol. "
                "Check to make sure your client is updated.",
            )
        if "op" not in payload:
            raise _Refuse(Close.UNKNOWN_OP_CODE, "Your request is missing an `op`.")
        op = payload["op"]
        if not is_number(op):
            raise _Refuse(Close.UNKNOWN_OP_CODE, "Your `op` is not a number.")
        data = payload.get("d")
        if not isinstance(data, dict):
            if data is None:
                raise _Refuse(Close.MISSING_DATA_FIELD, "Your payload is missing data (`d`).")
            raise _Refuse(
                Close.INVALID_DATA_FIELD_TYPE, "Your payload's data (`d`) is not an object."
            )
        if not session.identified and op != Op.IDENTIFY:
            raise _Refuse(
                Close.NOT_IDENTIFIED,
                "You attempted to send a non-Identify message while not identified.",
            )
        if op == Op.IDENTIFY:
            await self._identify(session, data)
        elif op == Op.REIDENTIFY:
            self._subscriptions(session, data)
            await self._send(session, Op.IDENTIFIED, {"negotiatedRpcVersion": RPC_VERSION})
        elif op == Op.REQUEST:
            await self._request(session, data)
        elif op == Op.REQUEST_BATCH:
            await self._batch(session, data)
        else:
            raise _Refuse(Close.UNKNOWN_OP_CODE, f"Unknown OpCode: {op}")

    async def _identify(self, session: _Session, data: dict[str, Any]) -> None:
        if session.identified:
            raise _Refuse(
                Close.ALREADY_IDENTIFIED,
                "You are already Identified with the obs-websocket server.",
            )
        if self.password:
            if "authentication" not in data:
                raise _Refuse(
                    Close.AUTHENTICATION_FAILED,
                    "Your payload's data is missing an `authentication` string, however authentication is required.",
                )
            if not isinstance(data["authentication"], str):
                raise _Refuse(
                    Close.AUTHENTICATION_FAILED, "Your `authentication` field is not a string."
                )
            expected = authentication_string(self.password, self.salt, session.challenge)
            if not secrets.compare_digest(data["authentication"].encode(), expected.encode()):
                raise _Refuse(Close.AUTHENTICATION_FAILED, "Authentication failed.")
        if "rpcVersion" not in data:
            raise _Refuse(
                Close.MISSING_DATA_FIELD, "Your payload's data is missing an `rpcVersion`."
            )
        if not is_unsigned(data["rpcVersion"]):
            raise _Refuse(
                Close.INVALID_DATA_FIELD_TYPE, "Your `rpcVersion` is not an unsigned number."
            )
        if data["rpcVersion"] != RPC_VERSION:
            raise _Refuse(
                Close.UNSUPPORTED_RPC_VERSION,
                "Your requested RPC version is not supported by this server.",
            )
        session.subscriptions = Subscription.ALL
        self._subscriptions(session, data)
        session.identified = True
        await self._send(session, Op.IDENTIFIED, {"negotiatedRpcVersion": RPC_VERSION})

    @staticmethod
    def _subscriptions(session: _Session, data: dict[str, Any]) -> None:
        if "eventSubscriptions" in data:
            if not is_unsigned(data["eventSubscriptions"]):
                raise _Refuse(
                    Close.INVALID_DATA_FIELD_TYPE,
                    "Your `eventSubscriptions` is not an unsigned number.",
                )
            session.subscriptions = data["eventSubscriptions"]

    async def _request(self, session: _Session, data: dict[str, Any]) -> None:
        if "requestId" not in data:
            raise _Refuse(Close.MISSING_DATA_FIELD, "Your payload data is missing a `requestId`.")
        if "requestType" not in data:
            raise _Refuse(
                Close.MISSING_DATA_FIELD, "Your payload's data is missing an `requestType`."
            )
        if not isinstance(data["requestType"], str):
            raise _Refuse(Close.INVALID_DATA_FIELD_TYPE, "Your `requestType` is not a string.")
        result, events = self._run_request(data)
        # The requestId is mirrored as sent, whatever its JSON type (some clients send numbers).
        await self._send(session, Op.REQUEST_RESPONSE, {"requestId": data["requestId"]} | result)
        # Events after the response: a client reading "the next message" as its
        # answer (several libraries do) gets the answer first.
        await self._broadcast(events)

    async def _batch(self, session: _Session, data: dict[str, Any]) -> None:
        if "requestId" not in data:
            raise _Refuse(Close.MISSING_DATA_FIELD, "Your payload data is missing a `requestId`.")
        execution = data.get("executionType")
        if execution is not None:
            if not is_unsigned(execution):
                raise _Refuse(
                    Close.INVALID_DATA_FIELD_TYPE, "Your `executionType` is not a number."
                )
            if execution not in (0, 1, 2):
                raise _Refuse(
                    Close.INVALID_DATA_FIELD_VALUE, "Your `executionType` has an invalid value."
                )
        halt = data.get("haltOnFailure")
        if halt is not None and not isinstance(halt, bool):
            raise _Refuse(Close.INVALID_DATA_FIELD_TYPE, "Your `haltOnFailure` is not a boolean.")
        if "requests" not in data:
            raise _Refuse(Close.MISSING_DATA_FIELD, "Your payload data is missing a `requests`.")
        if not isinstance(data["requests"], list):
            raise _Refuse(Close.INVALID_DATA_FIELD_TYPE, "Your `requests` is not an array.")
        results, events = [], []
        # Serial, in order, for every execution type: the outcome a client can
        # observe is the same, only OBS's timing differs.
        for item in data["requests"]:
            request = item if isinstance(item, dict) else {}
            if not isinstance(request.get("requestType"), str):
                request = request | {"requestType": ""}
            result, caused = self._run_request(request)
            if request.get("requestId") is not None:
                result = {"requestId": request["requestId"]} | result
            results.append(result)
            events += caused
            if halt and not result["requestStatus"]["result"]:
                break
        await self._send(
            session, Op.REQUEST_BATCH_RESPONSE, {"requestId": data["requestId"], "results": results}
        )
        await self._broadcast(events)

    def _run_request(self, request: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
        request_type, request_data = request["requestType"], request.get("requestData")
        code, comment, response, events = self.state.handle(request_type, request_data)
        with self._log_lock:
            self._requests.append(LoggedRequest(request_type, request_data, code))
        status: dict[str, Any] = {"result": code == Status.SUCCESS, "code": code}
        if comment:
            status["comment"] = comment
        result: dict[str, Any] = {"requestType": request_type, "requestStatus": status}
        if response is not None:
            result["responseData"] = response
        return result, events

    async def _send(self, session: _Session, op: int, data: dict[str, Any]) -> None:
        await session.connection.send(json.dumps({"op": op, "d": data}))

    async def _broadcast(self, events: list[Event]) -> None:
        for intent, event_type, event_data in events:
            message = json.dumps(
                {
                    "op": Op.EVENT,
                    "d": {"eventType": event_type, "eventIntent": intent, "eventData": event_data},
                }
            )
            for session in list(self._sessions):
                if session.identified and session.subscriptions & intent:
                    # A client that left misses the event; the others still get it.
                    with contextlib.suppress(ConnectionClosed):
                        await session.connection.send(message)


def _select_subprotocol(connection: ServerConnection, offered: Any) -> Subprotocol | None:
    if SUBPROTOCOL in offered:
        return SUBPROTOCOL
    if MSGPACK in offered:
        raise NegotiationError("obswebsocket.msgpack is not supported by this test server")
    return None  # no subprotocol named: JSON, obs-websocket's default
