"""``Plugin``: one loaded plugin, called synchronously or from asyncio."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from wasmtime.component import Component

from .._capabilities import Grant, Grants
from .._context import TriggerContext
from .._errors import FuelLimitExceeded, ReloadFailed, TimeLimitExceeded, WasmdeckError
from .._json import JSONInputError, dumps, loads
from .._metadata import PluginMetadata
from . import _capi as capi
from ._adapter import Adapter, Params
from ._component import ComponentPlugin
from ._core import CoreModule
from ._engine import Runtime, default_runtime
from ._hostapi import HostAPI, HostLinks
from ._limits import Limits
from ._pool import InstancePool, Member
from ._shutdown import EXITED, closes_at_exit
from ._stdio import plugin_logger

__all__ = ["Plugin", "PluginReplaced"]

_monotonic = time.monotonic  # (call_before: no module lookup on a plugin-to-plugin call)


class PluginReplaced(WasmdeckError):
    """A call reached a plugin after a live reload replaced it: ``successor`` runs it.

    Internal: ``Plugin.call`` catches it and forwards the call, so a caller
    holding the old ``Plugin`` (a queued call, a bus subscription) reaches
    the new version, once (docs/reload.md).
    """

    def __init__(self, successor: Plugin, *, plugin: str, action: str | None) -> None:
        self.successor = successor
        super().__init__("it was replaced by a new version", plugin=plugin, action=action)


def _context(context: object) -> TriggerContext:
    """A call's context given as a dict, converted at the call boundary."""
    if isinstance(context, TriggerContext):
        return context
    if isinstance(context, Mapping):
        return TriggerContext.from_dict(context)
    raise ValueError(f"context must be a TriggerContext or a dict, not {type(context).__name__}")


def _json_config(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``config`` as the plugin will read it (a JSON copy); ValueError if it cannot be."""
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a JSON object (a mapping), not {type(config).__name__}")
    try:
        copy: dict[str, Any] = loads(dumps(dict(config)), what="config")
    except TypeError as exc:  # a value JSON cannot hold, a non-string key, 255+ levels
        reason = "nested too deeply" if "Recursion limit" in str(exc) else str(exc)
        raise ValueError(f"config cannot be sent as JSON: {reason}") from None
    except JSONInputError as exc:
        raise ValueError(str(exc)) from None
    return copy


class Plugin:
    """A sandboxed WebAssembly plugin.

    ``source`` is a path to a ``.wasm`` file or the module's bytes. Loading
    compiles the module, checks its exports and imports, and reads its
    metadata; any problem raises a subclass of ``InvalidPlugin``.

    ``limits`` bounds every call (see ``Limits``). ``grants`` are the
    capabilities the user gives the plugin (``"env:LANG"``, ...; see
    ``Grants``); by default it gets none — not even environment variables.
    ``config`` is the plugin's configuration (a bridge address, a token...),
    which it reads through the host API. ``label`` names the plugin in
    messages until its metadata does (default: the file name).
    ``kv_namespace`` is whose kv data it reaches (the plugin manager passes the
    installed identity); by default the file's path, or the module's digest
    for bytes, unless a ``kv:NAMESPACE`` grant names one (docs/host-api.md).
    ``metadata_only`` loads it just to read its metadata, granting nothing
    more: host functions it imports but was not granted are linked to stubs
    that refuse, ``missing_capabilities`` names what they need, and it
    cannot be called.

    Calls on one plugin are serialized; different plugins run in parallel
    (wasm runs without holding the GIL).
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | bytes,
        *,
        limits: Limits | None = None,
        grants: Grants | Iterable[Grant | str] = (),
        config: Mapping[str, Any] | None = None,
        runtime: Runtime | None = None,
        label: str | None = None,
        kv_namespace: str | None = None,
        metadata_only: bool = False,
    ) -> None:
        wasm: bytes | Path
        if isinstance(source, bytes | bytearray | memoryview):
            wasm, self.path = bytes(source), None
            label = label or "<bytes>"
            identity = f"sha256:{hashlib.sha256(wasm).hexdigest()}"
        else:
            self.path = wasm = Path(source)
            label = label or self.path.name
            identity = f"file:{self.path.resolve()}"
        self.limits = limits or Limits()
        self.runtime = runtime or default_runtime()
        if isinstance(grants, str):
            raise TypeError("grants must be an iterable of grants, not one string")
        self.grants = grants if isinstance(grants, Grants) else Grants(grants)
        config = _json_config(config)

        def host_api(name: str) -> HostAPI:
            return HostAPI(
                name,
                self.grants,
                limits=self.limits,
                config=config,
                logger=plugin_logger(name),
                kv_namespace=kv_namespace or identity,  # docs/host-api.md, "kv"
                metadata_only=metadata_only,
            )

        compiled = self.runtime.compile(wasm, name=label, limits=self.limits)
        adapter = ComponentPlugin if isinstance(compiled, Component) else CoreModule

        def make(name: str) -> Adapter:
            return adapter(
                self.runtime,
                compiled,  # type: ignore[arg-type]
                label=name,
                limits=self.limits,
                host=host_api(name),
            )

        self._impl: Adapter = make(label)
        self.metadata: PluginMetadata = self._impl.metadata
        self._request = self._impl.request
        self._metadata_only = metadata_only
        self._lock = threading.Lock()
        self._closed = False
        self._successor: Plugin | None = None  # the new version, after a live reload
        self._retired: list[object] = []  # what hand_over took from the instances (close)
        closes_at_exit(self)
        self._per_call = self.limits.instance == "per-call"
        # A caller's deadline at least this far off changes nothing (call_before).
        self._lend_below = self.limits.timeout - self.runtime.tick
        self._measure_fuel = False  # (why off by default: the measure_fuel property)
        self.fuel_used: int | None = None  # the last call's, when measure_fuel is on
        self._bounded: dict[int, Limits] = {}  # _bounded_run's limits, per instance
        self._here = threading.local()  # .fuel: the last call_before's on this thread
        # Limits.pool > 1: more instances, made when needed (runtime/_pool.py);
        # the first is _impl, under _lock.
        self._pool: InstancePool | None = None
        if self.limits.pool > 1:
            self._pool = InstancePool(
                Member(self._impl, self._lock), self.limits.pool, lambda: self._member(make)
            )
        self._set_plain()

    def _set_plain(self) -> None:
        # The common case of ``call``, which it runs inline: one instance kept
        # across calls, nothing measured (a function call and four checks
        # less on the 100 B call of benchmarks/call_overhead.py).
        self._plain = not (
            self._metadata_only or self._pool is not None or self._per_call or self._measure_fuel
        )

    @property
    def measure_fuel(self) -> bool:
        """Note in ``fuel_used`` the fuel each call used (off by default: reading
        the fuel left costs every call a C call; a pool's calls are not measured)."""
        return self._measure_fuel

    @measure_fuel.setter
    def measure_fuel(self, on: bool) -> None:
        self._measure_fuel = on
        self._set_plain()

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def links(self) -> HostLinks | None:
        """The bus and the other plugins, as the host layer gives them (``PluginHost``)."""
        return self._impl.host.links

    @links.setter
    def links(self, links: HostLinks | None) -> None:
        self._impl.host.links = links
        for member in self._pool.members if self._pool is not None else ():
            member.impl.host.links = links

    def _member(self, make: Callable[[str], Adapter]) -> Adapter:
        """Another instance for the pool, linked as the first one is."""
        impl = make(self.metadata.name)
        impl.host.links = self._impl.host.links
        return impl

    def _pooled(self, action: str, request: object, deadline: float | None) -> bytes:
        pool = self._pool
        assert pool is not None
        member = pool.take(deadline, self.name, action)
        try:
            if self._closed:
                raise self._closed_error(action)
            if deadline is not None:
                return self._bounded_run(member.impl, deadline, action, request)
            try:
                return member.impl.execute(action, request)
            finally:
                if self._per_call:
                    member.impl.reset()
        finally:
            pool.give(member)

    @property
    def missing_capabilities(self) -> list[str]:
        """Capabilities its imports need but it was not granted (``metadata_only``)."""
        return sorted(self._impl.host.missing)

    @property
    def abi(self) -> str:
        """Which plugin ABI this plugin speaks: ``core-v1`` or ``component-v1``."""
        return self._impl.abi

    def __repr__(self) -> str:
        return f"<Plugin {self.name!r} {self.metadata.version} ({self.abi})>"

    # -- calling -------------------------------------------------------------

    def call(
        self,
        action: str,
        params: Params = None,
        context: TriggerContext | Mapping[str, Any] | None = None,
    ) -> bytes:
        """Run ``action`` with ``params`` and return the plugin's output payload.

        ``params`` is a mapping, or ``bytes`` holding an already-encoded JSON
        object (checked to be one, then sent as they are).

        Raises ``PluginError`` when the plugin fails, ``LimitExceeded`` when a
        sandbox limit stops it, ``ActionNotFound`` for an action it does not
        declare, and ``ValueError`` for params that are not a JSON object.
        ``context`` may be a ``TriggerContext`` or a dict of its fields.
        """
        if context is not None and type(context) is not TriggerContext:
            context = _context(context)
        if self._plain:  # _execute's common case, inlined
            request = self._request(action, params, context)
            with self._lock:
                if not self._closed:  # else as below: the error, or the successor
                    return self._impl.execute(action, request)
        if self._metadata_only:
            raise WasmdeckError("it was loaded for its metadata only", plugin=self.name)
        try:
            return self._execute(action, self._request(action, params, context))
        except PluginReplaced as replaced:  # a live reload swapped it while the call waited
            return replaced.successor.call(action, params, context)

    async def call_async(
        self,
        action: str,
        params: Params = None,
        context: TriggerContext | Mapping[str, Any] | None = None,
    ) -> bytes:
        """``call`` on a worker thread, so the event loop keeps running.

        Cancelling the awaiting task does not stop the plugin early; its
        limits (timeout, fuel) still bound the call.
        """
        if context is not None and type(context) is not TriggerContext:
            context = _context(context)
        if self._metadata_only:
            raise WasmdeckError("it was loaded for its metadata only", plugin=self.name)
        request = self._request(action, params, context)
        try:
            return await asyncio.to_thread(self._execute, action, request)
        except PluginReplaced as replaced:
            return await replaced.successor.call_async(action, params, context)

    def _execute(self, action: str, request: object) -> bytes:
        if self._pool is not None:
            return self._pooled(action, request, None)
        with self._lock:
            if self._closed:
                raise self._closed_error(action)
            if self._measure_fuel:
                return self._metered(action, request)
            if self._per_call:
                try:
                    return self._impl.execute(action, request)
                finally:
                    self._impl.reset()  # Limits(instance="per-call"): nothing carries over
            return self._impl.execute(action, request)

    def _metered(self, action: str, request: object) -> bytes:
        """``execute``, noting the fuel the call used in ``fuel_used`` (under the lock).

        A call stopped by the fuel limit used it all; after any other failure
        the instance is gone with its tank, so the figure is unknown (None).
        """
        self.fuel_used = None
        try:
            output = self._impl.execute(action, request)
            self.fuel_used = self._fuel_left_over(self._impl)
            return output
        except FuelLimitExceeded:
            self.fuel_used = self.limits.fuel
            raise
        finally:
            if self._per_call:
                self._impl.reset()  # Limits(instance="per-call"): nothing carries over

    def _fuel_left_over(self, impl: Adapter) -> int | None:
        """The fuel ``impl``'s last call used (both adapters keep their store in ``_live``)."""
        live = getattr(impl, "_live", None)
        if live is None:
            return None
        counter = getattr(live, "fuel", None)  # a core module's, read without a C call
        left = -counter[0] if counter is not None else capi.fuel_left(live.ctx)
        return None if left is None else self.limits.fuel - left

    def fuel_used_here(self) -> int | None:
        """The fuel the last ``call_before`` on this thread used, with ``measure_fuel``
        on (None: off, a pool, or unknown after a failure other than running out)."""
        return getattr(self._here, "fuel", None)

    def call_before(
        self,
        deadline: float,
        action: str,
        params: Params = None,
        context: TriggerContext | None = None,
    ) -> bytes:
        """``call``, ending by ``deadline`` (monotonic seconds) at the latest.

        For a call made on behalf of another (a plugin calling a plugin): the
        wait for this plugin's lock and the call itself both end by then, and
        the call keeps its own limits otherwise (fuel, memory, a shorter
        timeout of its own). ``TimeLimitExceeded`` when the time runs out.
        With ``measure_fuel`` on, ``fuel_used_here()`` then says what it used.
        """
        if self._metadata_only:
            raise WasmdeckError("it was loaded for its metadata only", plugin=self.name)
        try:  # (one frame: a plugin-to-plugin call's cost, benchmarks/bus.py)
            request = self._request(action, params, context)
            if self._pool is not None:
                return self._pooled(action, request, deadline)
            lock = self._lock
            left = deadline - _monotonic()
            # Free most of the time: taken at once, without the timed wait's cost.
            if left <= 0 or not (lock.acquire(False) or lock.acquire(timeout=left)):
                raise TimeLimitExceeded(
                    "the caller's time ran out before it could start (the plugin was busy)",
                    value=max(left, 0.0),
                    plugin=self.name,
                    action=action,
                )
            try:
                if self._closed:
                    raise self._closed_error(action)
                if left >= self._lend_below and self._plain:  # (no pool, checked above)
                    return self._impl.execute(action, request)  # _bounded_run would change nothing
                return self._bounded_run(self._impl, deadline, action, request)
            finally:
                lock.release()
        except PluginReplaced as replaced:
            return replaced.successor.call_before(deadline, action, params, context)

    def _bounded_run(self, impl: Adapter, deadline: float, action: str, request: object) -> bytes:
        """Run on ``impl`` (held by the caller) so that the call ends by ``deadline``."""
        own = self.limits
        left = deadline - time.monotonic()
        # Its own timeout ends within an epoch tick of ``deadline`` (or before):
        # kept, since a deadline holds to a tick anyway (deadline_ticks); lending
        # costs a re-arm now and one on the next call (benchmarks/bus.py).
        if left < self._lend_below:  # (own.timeout less a tick)
            # The adapter reads its timeout from limits and its epoch ticks
            # from _ticks at each call (runtime/_adapter.py): lend it the
            # shorter ones for this call only (a copy of its own, made once per
            # instance and never shared).
            limits = self._bounded.get(id(impl))
            if limits is None:
                limits = self._bounded[id(impl)] = copy.copy(own)
            object.__setattr__(limits, "timeout", max(left, 0.001))
            impl.limits, impl._ticks = limits, self.runtime.deadline_ticks(limits.timeout)
            impl._epoch_armed = -1  # arm the shorter deadline (see Adapter._arm)
        measured = self._measure_fuel and self._pool is None
        here = self._here
        if measured:
            here.fuel = None
        try:
            output = impl.execute(action, request)
            if measured:
                here.fuel = self._fuel_left_over(impl)
            return output
        except FuelLimitExceeded:
            if measured:
                here.fuel = own.fuel
            raise
        finally:
            if impl.limits is not own:
                impl.limits, impl._ticks = own, self.runtime.deadline_ticks(own.timeout)
                impl._epoch_armed = -1
            if self._per_call:
                impl.reset()

    def _closed_error(self, action: str | None) -> WasmdeckError:
        if self._successor is not None:
            return PluginReplaced(self._successor, plugin=self.name, action=action)
        return WasmdeckError("the plugin is closed", plugin=self.name, action=action)

    # -- live reload (docs/reload.md) ------------------------------------------

    @property
    def keeps_state(self) -> bool:
        """Whether it exports the state pair a live reload hands its state through."""
        return self._impl.keeps_state and self._pool is None and not self._per_call

    def hand_over(self, successor: Plugin, commit: Callable[[], None] = lambda: None) -> int:
        """Replace this plugin by ``successor`` (its new version), state and all.

        Waits for the call in flight (every instance's, for a pool), then,
        with no call running: this plugin's ``save_state`` (when both
        versions keep state and this one has a live instance), the
        successor's ``restore_state``, ``commit()`` (the caller's swap: its
        routes now name the successor), and this plugin closes. Calls that
        were waiting for it, or arrive later, run on the successor
        (``PluginReplaced``), each once.

        Returns the bytes of state moved. A trap or limit in either export,
        ``StateLimitExceeded`` or the plugin's refusal raises ``ReloadFailed``
        (``stage`` "save" or "restore"; the cause as ``__cause__``), an
        error in ``commit`` itself; either way this plugin runs on as it was
        (a failed ``save_state`` costs it its instance, as any failed call does).
        A pool's instances share nothing (``Limits.pool``), so no state moves.
        This plugin's old instance and compiled code are freed by ``close()``
        (or when it goes): call it where taking a few ms does not matter.
        """
        if successor is self:
            raise ValueError("a plugin cannot hand over to itself")
        if self._pool is not None:
            members = self._pool.each()
            try:
                self._closed_check()
                commit()
                retired = self._retire(successor, [m.impl for m in members])
            finally:
                for member in members:
                    member.lock.release()
            self._retired = retired  # freed by close() (see below)
            return 0
        with self._lock:
            self._closed_check()
            moved = 0
            if self.keeps_state and successor.keeps_state:
                try:
                    state = self._impl.save_state()
                except WasmdeckError as exc:
                    raise ReloadFailed(
                        f"saving its state failed: {exc.message}", stage="save", plugin=self.name
                    ) from exc
                if state:
                    try:
                        successor.restore_state(state)
                    except WasmdeckError as exc:
                        raise ReloadFailed(
                            f"the new version did not take the state: {exc.message}",
                            stage="restore",
                            plugin=self.name,
                        ) from exc
                    moved = len(state)
            commit()
            retired = self._retire(successor, [self._impl])
        # Kept until close() or until this plugin goes: freeing a Python
        # component's instance, memory and compiled code takes 2-3 ms, which
        # neither the calls held for the swap nor the reload need to wait for
        # (the daemon closes the old version off its event loop).
        self._retired = retired
        return moved

    def restore_state(self, state: bytes) -> None:
        """Give ``state`` (another version's ``save_state``) to a fresh instance."""
        with self._lock:
            self._closed_check()
            self._impl.restore_state(state)

    def save_state(self) -> bytes | None:
        """The live instance's state, as ``hand_over`` would move it (None: none)."""
        if not self.keeps_state:
            return None
        with self._lock:
            self._closed_check()
            return self._impl.save_state()

    def _closed_check(self) -> None:
        if self._closed:
            raise self._closed_error(None)

    def _retire(self, successor: Plugin, impls: list[Adapter]) -> list[object]:
        """Closed, its calls forwarded to ``successor`` (the caller holds every lock).

        Returns what it took from ``impls`` (``Adapter.retire``: the instances,
        a component's code), for the caller to keep until ``close``.
        """
        self._successor = successor
        self._closed = True
        retired = []
        for impl in impls:
            retired.append(impl.retire())
            impl.host.links = None
            impl.host.close()
        return retired

    # -- lifecycle -----------------------------------------------------------

    def reset(self) -> None:
        """Discard the plugin's instance (and its memory); the next call starts afresh."""
        if self._pool is not None:
            for member in self._pool.each():
                member.impl.reset()
                member.lock.release()
            return
        with self._lock:
            self._impl.reset()

    def close(self) -> None:
        """Release the plugin's instance (after ``hand_over``: its old instance and
        compiled code). Later calls raise ``WasmdeckError``."""
        retired, self._retired = self._retired, []
        del retired
        if self._pool is not None:
            self._closed = True
            for member in self._pool.each():
                member.impl.reset()
                member.impl.host.close()
                member.lock.release()
            return
        with self._lock:
            self._closed = True
            self._impl.reset()
            self._impl.host.close()

    @property
    def _exit_wait(self) -> float:
        return self.limits.timeout + 1.0

    def _close_at_exit(self, wait: float) -> bool:
        """``close`` at interpreter exit (runtime/_shutdown.py); False if a call outlasts ``wait``."""
        if self._pool is not None:
            try:
                members = self._pool.each(wait)
            except WasmdeckError:
                return False
            self._closed = True
            for member in members:  # their locks stay held: nothing runs after exit
                member.impl.reset()
                member.impl.host.close()
            return True
        if not self._lock.acquire(timeout=wait):
            return False
        self._lock = EXITED  # type: ignore[assignment]  # the real lock stays held
        self._closed = True
        self._impl.reset()
        self._impl.host.close()
        return True

    def __enter__(self) -> Plugin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
