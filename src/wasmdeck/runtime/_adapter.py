"""What the two ABI adapters share: requests, host calls, refusals and failures.

``Adapter`` is the base of ``CoreModule`` (the core-module JSON ABI v1) and
``ComponentPlugin`` (the component world): one model behind one Python API
(docs/architecture.md, "The two ABIs"). Everything that must read the same
whichever ABI a plugin speaks lives here, once:

- request encoding: the action name checked against the metadata, params
  encoded once (orjson, or bytes the caller already encoded), the context;
  each adapter only lays the result out for its ABI (``request``);
- capability refusal: one message for an import that needs an ungranted
  capability;
- host calls: the size bound on a request, parsing, ``HostSession.call``,
  encoding the response;
- failure mapping: a violation recorded by a host function, limit traps
  (fuel, timeout, stack; ``_sandbox.limit_error``), the output limit and a
  plugin's own error, all with the same error types and messages;
- arming a call: deadline, fuel and epoch deadline (a failure to set fuel is
  an error on both ABIs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any, ClassVar

import orjson

from .. import _json
from .._context import TriggerContext
from .._errors import (
    ActionNotFound,
    ImportNotAllowed,
    OutputLimitExceeded,
    PluginReportedError,
    StateLimitExceeded,
    WasmdeckError,
)
from .._metadata import PluginMetadata
from . import _capi as capi
from ._engine import Runtime
from ._hostapi import HOST_FUNCTIONS, HostAPI
from ._limits import Limits, MiB
from ._sandbox import WasiSetup, allowed_env
from ._stdio import LineLogger, LogBudget, plugin_logger

__all__ = ["MAX_HOST_REQUEST", "Adapter", "Params", "params_json"]

# A host call's request is refused above this size, before it is read or parsed.
MAX_HOST_REQUEST = 16 * MiB
# What a host call's request is called in a parse error, made once per function.
_REQUEST_NAMES = {name: f"the {name} request" for name in HOST_FUNCTIONS}

Params = Mapping[str, Any] | bytes | None


def _not_json(value: object) -> object:
    raise TypeError(f"{type(value).__name__} values are not JSON serializable")


# The standard library's C encoder, built once, for what orjson refuses but
# JSON can carry (integers beyond 64 bits, str/int/dict subclasses) and for its
# clearer messages; NaN and Infinity are refused (they are not JSON).
_encode_stdlib = c_make_encoder(
    None, _not_json, encode_basestring, None, ":", ",", False, False, False
)
# Values orjson would encode in its own way are handed to the stdlib encoder
# instead, so params mean the same as with ``json.dumps``.
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _stdlib_json(value: object, what: str) -> bytes:
    try:
        return "".join(_encode_stdlib(value, 0)).encode()
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} contain text that is not valid Unicode: {exc.reason}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} cannot be sent as JSON: {exc}") from None
    except RecursionError:
        raise ValueError(
            f"{what} cannot be sent as JSON: nested too deeply (or circular)"
        ) from None


def params_json(params: Params) -> bytes:
    """``params`` as a JSON object's UTF-8 text; ValueError for anything else.

    A mapping is encoded with orjson (NaN and Infinity become ``null``, as
    in ``wasmdeck._json.dumps`` and JavaScript); what orjson refuses but JSON
    can carry (integers past 64 bits, subclasses of str/int/dict) goes
    through the standard library's encoder.

    ``bytes`` are taken as an already-encoded JSON object and sent as they
    are: the caller (the application, not the plugin) vouches for them.
    They are checked cheaply, not parsed: valid UTF-8, and ``{`` ... ``}``
    around what is inside.
    """
    if type(params) is dict:
        if not params:
            return b"{}"
        try:
            return orjson.dumps(params, option=_ORJSON_OPTIONS)
        except (orjson.JSONEncodeError, TypeError):
            return _stdlib_json(params, "params")  # bigger ints, subclasses; or a clear error
    if params is None:
        return b"{}"
    # bytes before the isinstance of the other two: a fifth of the check's time
    if type(params) is bytes:
        data = params
    elif isinstance(params, bytearray | memoryview):
        data = bytes(params)
    elif isinstance(params, Mapping):
        return params_json(dict(params))
    else:
        raise ValueError(f"params must be a JSON object (a mapping), not {type(params).__name__}")
    if data[:1] != b"{" or data[-1:] != b"}":  # else the same, around whitespace
        text = data.strip(b" \t\r\n")
        if text[:1] != b"{" or text[-1:] != b"}":
            raise ValueError(
                "params given as bytes must be an encoded JSON object ({...}), not "
                f"{data[:40]!r}{'...' if len(data) > 40 else ''}"
            )
    if not data.isascii():  # ASCII is UTF-8, and checked without decoding
        try:
            data.decode()
        except UnicodeDecodeError as exc:
            raise ValueError(f"params given as bytes are not UTF-8: {exc.reason}") from None
    return data


class Adapter:
    """The part of a plugin adapter that does not depend on its ABI.

    A subclass loads its binary, sets ``metadata`` through ``_named`` and
    implements ``request`` (the request in its ABI's form), ``execute`` and
    ``_discard``. Not thread-safe: ``Plugin`` serializes calls.
    """

    abi: ClassVar[str]
    metadata: PluginMetadata
    keeps_state: bool = False  # exports the state pair of a live reload (docs/reload.md)

    def __init__(
        self,
        runtime: Runtime,
        *,
        label: str,
        limits: Limits,
        host: HostAPI,
    ) -> None:
        # WASI stdout and stderr, line by line into the plugin's logger.
        stdout = LineLogger(plugin_logger(label), logging.INFO, "stdout")
        stderr = LineLogger(plugin_logger(label), logging.WARNING, "stderr")
        self.runtime = runtime
        self.limits = limits
        self.label = label  # the file name until metadata names the plugin
        self.host = host
        self._wasi = WasiSetup(allowed_env(host.env_names), host, stdout, stderr)
        self._deadline = 0.0  # monotonic time the current call must end by
        self._fuel = limits.fuel
        self._ticks = runtime.deadline_ticks(limits.timeout)
        # The epoch count when the live store's deadline was last armed (see _arm).
        self._epoch = runtime.epoch
        self._epoch_armed = -1
        self._action: str | None = None  # the action being run, for error messages
        # One log budget per call over stdout, stderr and the log host function.
        self._log_budget = stdout.budget = stderr.budget = LogBudget(
            limits.max_log_bytes, limits.max_log_lines
        )
        self._stdout = stdout
        self._stderr = stderr
        self._actions: frozenset[str] | None = None
        self._action_json: dict[str, bytes] = {}

    def _named(self, metadata: PluginMetadata) -> None:
        """Take the plugin's metadata: its name labels messages and logs from now on."""
        self.metadata = metadata
        self.label = metadata.name
        logger = plugin_logger(metadata.name)
        self._stdout.logger = self._stderr.logger = logger
        self.host.plugin, self.host.logger = metadata.name, logger
        self._actions = (
            None if metadata.actions is None else frozenset(a.name for a in metadata.actions)
        )

    # -- requests ------------------------------------------------------------

    def request(self, action: str, params: Params, context: TriggerContext | None) -> Any:
        """The request for ``action`` in this ABI's form (``execute`` takes it)."""
        raise NotImplementedError

    def execute(self, action: str, request: Any) -> bytes:
        """Run one request made by ``request``; return the plugin's output."""
        raise NotImplementedError

    def save_state(self) -> bytes | None:
        """The live instance's state for its next version (None: none to give)."""
        raise NotImplementedError

    def restore_state(self, state: bytes) -> None:
        """Hand ``state`` (from ``save_state``) to a fresh instance."""
        raise NotImplementedError

    def _check_state_size(self, size: int, said: str) -> None:
        """``StateLimitExceeded`` when a state of ``size`` bytes (``said``: "save_state
        returned", "the saved state is") is over the ``max_state`` limit."""
        if size > self.limits.max_state:
            raise StateLimitExceeded(
                f"{said} {size:,} bytes, more than the max_state limit of "
                f"{self.limits.max_state:,}",
                value=self.limits.max_state,
                plugin=self.label,
            )

    def _action_name(self, action: str) -> bytes:
        """``action`` as JSON text, once it is known to be one the plugin declares."""
        encoded = self._action_json.get(action)
        if encoded is not None:
            return encoded
        if not isinstance(action, str) or not action:
            raise ValueError(f"action must be a non-empty string, not {action!r}")
        if self._actions is not None and action not in self._actions:
            declared = ", ".join(sorted(self._actions)) or "(none)"
            raise ActionNotFound(
                f"does not declare this action; it declares: {declared}",
                plugin=self.label,
                action=action,
            )
        encoded = _stdlib_json(action, "the action name")
        if len(self._action_json) < 256:  # plugins without an action list accept any name
            self._action_json[action] = encoded
        return encoded

    # -- refusals ------------------------------------------------------------

    def _not_granted(self, where: str, capability: str) -> ImportNotAllowed:
        return ImportNotAllowed(
            f"imports {where}, which needs the {capability!r} capability; it was not "
            f"granted (grant it with --grant {capability}"
            + (
                ":SCOPE"
                if capability in ("network", "process", "events", "plugins", "state")
                else ""
            )
            + ")",
            plugin=self.label,
        )

    # -- calls ---------------------------------------------------------------

    def _arm(self, ctx: int) -> None:
        """Start a call's clock: its deadline, a full fuel tank, the epoch deadline."""
        self._deadline = time.monotonic() + self.limits.timeout
        if self._log_budget.spent:
            self._log_budget.reset()
        error = capi.set_fuel(ctx, self._fuel)
        if error:
            raise capi.take_error(error)  # type: ignore[misc]  # (fuel is always enabled)
        epoch = self._epoch.value
        if epoch != self._epoch_armed:  # else the deadline set then still holds (EpochCount)
            self._epoch_armed = epoch
            capi.set_epoch_deadline(ctx, self._ticks)

    def _flush(self) -> None:
        self._stdout.flush()
        self._stderr.flush()

    def reset(self) -> None:
        """Discard the live instance; the next call starts a fresh one."""
        self._discard()

    def retire(self) -> object:
        """For good (its plugin was replaced): discard the instance, and hand the
        caller what freeing takes time, to drop once it holds no lock (and off
        the event loop). Here the instance: its store and memory."""
        live = getattr(self, "_live", None)  # (both adapters keep it there)
        self._discard()
        return live

    def _discard(self) -> None:
        raise NotImplementedError

    # -- host calls ----------------------------------------------------------

    def _host_request_too_large(self, name: str, size: int) -> OutputLimitExceeded:
        """A host call's request over ``MAX_HOST_REQUEST`` (each adapter compares first)."""
        return OutputLimitExceeded(
            f"sent a {size:,}-byte request to {name}, more than the "
            f"{MAX_HOST_REQUEST:,} bytes a host call may carry",
            value=MAX_HOST_REQUEST,
        )

    def _host_call(self, name: str, data: bytes | str, session: Any) -> bytes:
        """Serve one host API call: the JSON request in, the JSON response out."""
        try:
            request = _json.loads(data, what=_REQUEST_NAMES.get(name) or f"the {name} request")
        except _json.JSONInputError as exc:
            response: object = {"error": {"kind": "invalid_request", "message": f"{name}: {exc}"}}
        else:
            response = session.call(name, request, self._deadline)
        return _json.dumps(response)

    def _oversize_log(self, length: int, unit: str) -> WasmdeckError | None:
        if length <= self.limits.max_output:
            return None
        return OutputLimitExceeded(
            f"logged a {length:,}-{unit} message, more than its max_output limit of "
            f"{self.limits.max_output:,}",
            value=self.limits.max_output,
        )

    def _log(self, level: int, message: str) -> None:
        if self._log_budget.admit(self.host.logger, len(message)):
            self.host.logger.log(level, "%s", message)

    # -- failures ------------------------------------------------------------

    def _oversize_output(
        self, length: int, action: str | None, through: str = ""
    ) -> OutputLimitExceeded:
        """An output or error message over ``max_output`` (``through``: the host function)."""
        max_output = self.limits.max_output
        via = f" through {through}" if through else ""
        return OutputLimitExceeded(
            f"returned {length:,} bytes{via}, more than its max_output limit of "
            f"{max_output:,} bytes",
            value=max_output,
            plugin=self.label,
            action=action,
        )

    def _reported(self, message: str, code: int, action: str | None) -> PluginReportedError:
        return PluginReportedError(
            message or "(empty error message)", code=code, plugin=self.label, action=action
        )

    def _violation_error(self, violation: WasmdeckError, action: str | None) -> WasmdeckError:
        """A violation a host function recorded, now named with plugin and action."""
        violation.plugin, violation.action = self.label, action
        violation.args = (violation._render(),)
        return violation


LOG_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)
