"""``Daemon``: the deck running — sources in, plugin calls out, feedback back.

One asyncio loop does everything but the plugin calls: MIDI callbacks,
webhook and OSC servers and timers hand events to it, the trigger engine
(triggers/) turns them into firings, and each firing's actions run one
after the other, chained by callbacks (``_run_from``), their plugin calls
queued on that plugin's worker and run on a few shared threads
(``_workers.py``). The engine and the running deck are touched only on the
loop, so a reload swaps them between two events: none is lost, none
applied twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import gc
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .. import _json
from .._context import TriggerContext
from .._errors import LimitExceeded, ReloadFailed, WasmdeckError
from .._topics import matches
from ..deck import (
    Action,
    Binding,
    DeckError,
    Feedback,
    MidiMessage,
    PluginFacts,
    check_deck,
    render,
)
from ..host import BusEvent, PluginHost, Subscription
from ..runtime import Plugin
from ..triggers import Event, Firing, MidiEvent, TopicEvent, TriggerEngine
from ._handover import hand_over_together
from ._inbox import Inbox
from ._loading import ReadyDeck, SourceProject, load_plugin, prepare, reload_signature
from ._metrics import Metrics
from ._triggers import Poller
from ._workers import CallThreads, PluginWorker, QueueFull

__all__ = ["Daemon", "ReplayClock"]

log = logging.getLogger("wasmdeck.daemon")

PLUGIN_CALL_BINDING = "(plugin call)"  # the metrics' binding of calls from other plugins

# The deck watcher yields a change once the file has had no new write for
# WATCH_STEP_MS (an editor saves in steps), WATCH_DEBOUNCE_MS at the latest.
WATCH_STEP_MS = 5
WATCH_DEBOUNCE_MS = 50


class _ReloadStage(Exception):
    """A plugin's reload failed at ``stage`` (docs/reload.md, "When a reload fails")."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage, self.message = stage, message


class Daemon:
    """Runs the deck at ``deck_path`` until ``stop()``.

    ``midi`` opens the deck's MIDI devices (off for decks driven only by
    webhooks, OSC or by hand); ``queue_size`` bounds each plugin's queue.
    ``projects`` (``serve --watch``) finds the source project a plugin file
    was built from, if any: its sources are watched and rebuilt on change.
    """

    def __init__(
        self,
        deck_path: str | os.PathLike[str],
        *,
        midi: bool = True,
        control: bool = True,
        queue_size: int = 256,
        clock: Callable[[], float] = time.monotonic,
        projects: Callable[[Path], SourceProject | None] | None = None,
    ) -> None:
        self.deck_path = Path(deck_path)
        self.metrics = Metrics()
        self._use_midi = midi
        self._use_control = control
        self.control: Any = None
        self.webhooks: Any = None
        self.osc: Any = None
        self._queue_size = queue_size
        self._clock = clock
        self._loaded = _signature(self.deck_path)  # taken before reading: see _watch
        self._ready = prepare(self.deck_path)  # a bad deck never starts: DeckError
        self.engine = TriggerEngine(self._ready.deck, clock=clock)
        # The deck's plugins, linked: the bus, calls between them, shared state
        # (host/). Calls from triggers still go through the workers.
        self.host = PluginHost()
        self.metrics.watch_bus(self.host.bus.stats)
        self._deck_subscription: Subscription | None = None
        self._workers: dict[str, PluginWorker] = {}
        self._pollers: dict[str, Poller] = {}  # the trigger plugins' (_triggers.py)
        self._tasks: set[asyncio.Task[None]] = set()
        self._runs = 0  # firings whose actions have not all run (_run_from)
        self._runs_over: asyncio.Future[None] | None = None  # set when _runs reaches 0 (_drain)
        self._stopping: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._midi: Any = None
        self._lit: dict[tuple[str, int, str, int], Feedback] = {}  # pads lit, by where
        self._inbox: Inbox | None = None
        self._call_threads: CallThreads | None = None  # made on the loop (run, replay)
        self._pressed: dict[tuple[str | None, int, int], list[Binding]] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=1000)
        self._listeners: list[asyncio.Queue[dict[str, Any]]] = []
        self.reloads = 0
        self._projects = projects
        # Each plugin's file or installed package as loaded (what a change is seen by).
        self._plugin_files: dict[str, object] = {}
        self._plugin_reloads: dict[str, dict[str, Any]] = {}  # by plugin: count, last error
        self._reloading: dict[str, asyncio.Lock] = {}
        self._deck_reloading = asyncio.Lock()
        self.started = time.time()
        self.servers: list[Any] = []  # things with an async close(): webhooks, OSC, control

    @property
    def deck(self) -> Any:
        return self._ready.deck

    @property
    def secrets(self) -> dict[str, bytes]:
        """Each webhook binding's secret, read when the deck was loaded."""
        return self._ready.secrets

    # -- running ---------------------------------------------------------------

    async def run(self, *, ready: Callable[[], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        # One thread per plugin instance at most is busy at a time; a pool
        # that size means a slow plugin never takes another's thread.
        loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(max_workers=_threads(self._ready))
        )
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        # One for the workers' results and the MIDI input: a burst of either
        # wakes the loop once (daemon/_inbox.py).
        self._inbox = Inbox(loop)
        self._call_threads = CallThreads(loop, threads=_thread_count(self._ready))
        self._listen_to_bus(loop)
        self._count_plugin_calls(loop)
        self._start_workers(self._ready)
        self._start_polling()
        if self._use_midi and self.deck.devices:
            from ._midi import MidiIO

            self._midi = MidiIO(self.deck, self._inbox, self._on_midi_bytes)
        await self._start_servers()
        for firing in self.engine.start():
            self._dispatch(firing)
        ticker = loop.create_task(self._tick(), name="timers")
        watcher = loop.create_task(self._watch(), name="deck watcher")
        if ready is not None:
            ready()
        await self._stopping.wait()
        ticker.cancel()
        watcher.cancel()
        await self._drain()

    async def replay(self, messages: Iterable[tuple[float, Any]], device: str | None) -> None:
        """Feed MIDI messages (seconds since the start, a mido message) through the deck, then stop.

        No ports, servers or watcher: a dry run. The engine's clock is the
        file's (the daemon must be made with a clock ``replay`` can set: a
        ``ReplayClock``), so long presses and chords fire as they would
        have, at once.
        """
        clock = self._clock
        if not isinstance(clock, ReplayClock):
            raise TypeError("replay needs a Daemon made with clock=ReplayClock()")
        loop = asyncio.get_running_loop()
        loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(max_workers=_threads(self._ready))
        )
        self._stopping = asyncio.Event()
        self._call_threads = CallThreads(loop, threads=_thread_count(self._ready))
        self._listen_to_bus(loop)
        self._start_workers(self._ready)
        for firing in self.engine.start():
            self._dispatch(firing)
        for at, message in messages:
            while (deadline := self.engine.next_deadline()) is not None and deadline <= at:
                clock.now = max(clock.now, deadline)
                for firing in self.engine.poll():
                    self._dispatch(firing)
            clock.now = max(clock.now, at)
            self._on_midi(device or "", message)
            await asyncio.sleep(0)  # let each event's actions start in order
        self._stopping.set()
        await self._drain()

    @property
    def stopping(self) -> bool:
        """True once ``stop()`` was called (live streams end so the servers can close)."""
        return self._stopping is not None and self._stopping.is_set()

    def stop(self) -> None:
        """Stop taking events; ``run`` returns once the calls in flight are done."""
        if self._stopping is not None and not self._stopping.is_set():
            busy = sum(w.pending for w in self._workers.values())
            log.info("stopping: no new events; %d plugin calls to finish", busy)
            self._stopping.set()

    async def _start_servers(self) -> None:
        from ._http import HttpServer

        listen = self.deck.listen
        if listen.webhooks is not None:
            from ._webhooks import WebhookApp

            self.webhooks = HttpServer(WebhookApp(self), *listen.webhooks)
            self.webhooks.start()
            self.servers.append(self.webhooks)
            log.info("webhooks on http://%s:%d", self.webhooks.host, self.webhooks.port)
        if listen.osc is not None:
            from ._osc import OscServer

            self.osc = OscServer(self, *listen.osc)
            await self.osc.start()
            self.servers.append(self.osc)
            log.info("OSC on udp://%s:%d", self.osc.host, self.osc.port)
        if self._use_control:
            from ._control import ControlAPI

            self.control = ControlAPI(self)
            server = HttpServer(self.control, "127.0.0.1", 0)
            server.start()
            self.control.publish(server.port)
            self.servers.append(server)

    async def _watch(self) -> None:
        """Reload the deck when its file changes (a bad edit is refused; the deck runs on),
        and a plugin when its file or installed package does (docs/reload.md).

        The watcher starts watching a moment after the deck was read, so the
        files' signatures (inode, size, mtime; an installed plugin's digest)
        as loaded are compared on each wake-up, at least once a second: an
        edit made in between is not missed. With ``projects`` (``serve
        --watch``) a change to a plugin's sources rebuilds it first.
        """
        import watchfiles

        target = self.deck_path.resolve()
        while True:
            projects = self._watched_projects()
            folders = {target.parent}
            for spec in self.deck.plugins.values():
                if spec.path is not None:
                    folders.add(spec.path.resolve().parent)
            folders.update(project.root for project in projects.values())
            built = {name: project.digest() for name, project in projects.items()}
            watching = (set(self.deck.plugins), folders)
            async for _ in watchfiles.awatch(
                *sorted(folders),
                debounce=WATCH_DEBOUNCE_MS,
                step=WATCH_STEP_MS,
                rust_timeout=1000,
                yield_on_timeout=True,
            ):
                if target.exists() and _signature(target) != self._loaded:
                    await self.reload(only_if_changed=True)
                for name, project in projects.items():
                    digest = await asyncio.to_thread(project.digest)
                    if digest != built.get(name):
                        built[name] = digest
                        await self._rebuild(name, project)
                for name in list(self.deck.plugins):
                    if name in self._workers and self._changed(name):
                        await self.reload_plugin(name)
                if (set(self.deck.plugins), self._watched_folders()) != watching:
                    break  # the deck's plugins changed: watch their folders instead

    def _watched_folders(self) -> set[Path]:
        folders = {self.deck_path.resolve().parent}
        for spec in self.deck.plugins.values():
            if spec.path is not None:
                folders.add(spec.path.resolve().parent)
        return folders | {p.root for p in self._watched_projects().values()}

    def _watched_projects(self) -> dict[str, SourceProject]:
        if self._projects is None:
            return {}
        found = {}
        for name, spec in self.deck.plugins.items():
            project = self._projects(spec.path) if spec.path is not None else None
            if project is not None:
                found[name] = project
        return found

    async def _rebuild(self, name: str, project: SourceProject) -> None:
        """``serve --watch``: build the plugin's project again; a failed build keeps
        the running version and logs the compiler's message."""
        log.info("plugin %s: sources changed; building %s", name, project.root)
        try:
            await asyncio.to_thread(project.build)
        except WasmdeckError as exc:
            log.error("plugin %s: the build failed; the running version stays:\n%s", name, exc)
            self._reload_failed(name, "build", str(exc))
            return
        log.info("plugin %s: built", name)

    def _changed(self, name: str) -> bool:
        spec = self.deck.plugins.get(name)
        if spec is None or name not in self._plugin_files:
            return False
        return reload_signature(spec) != self._plugin_files[name]

    async def _drain(self) -> None:
        self._stop_polling(list(self._pollers))
        if self.control is not None:
            self.control.withdraw()
        for server in self.servers:
            await server.close()
        if self._runs:
            self._runs_over = asyncio.get_running_loop().create_future()
            await asyncio.wait([self._runs_over], timeout=30)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=30)
        for worker in self._workers.values():
            await worker.drain()
        self.host.bus.close()
        for worker in self._workers.values():
            worker.close()
        if self._call_threads is not None:
            self._call_threads.close()
        if self._midi is not None:
            self._midi.close()

    def _start_workers(self, ready: ReadyDeck, replaced: Iterable[str] = ()) -> None:
        for name, plugin in ready.plugins.items():
            if name in ready.signatures:
                self._plugin_files[name] = ready.signatures[name]
            if name not in self._workers:
                self._workers[name] = PluginWorker(
                    name,
                    plugin,
                    self.metrics,
                    size=self._queue_size,
                    inbox=self._inbox,
                    threads=self._call_threads,
                )
                self.host.add(plugin, name=name)  # publishes wasmdeck.plugin.loaded
                if name in replaced:
                    self._publish("wasmdeck.plugin.reloaded", {"plugin": name})

    def _start_polling(self) -> None:
        """A poller for each trigger plugin that has none (``wasmdeck serve`` only, not replay)."""
        for name, worker in self._workers.items():
            poll = worker.plugin.metadata.poll
            if poll is None or name in self._pollers:
                continue
            spec = self.deck.plugins.get(name)
            interval = spec.poll_ms if spec is not None and spec.poll_ms else poll.interval_ms
            poller = self._pollers[name] = Poller(
                name, poll.action, interval, self._submitter(name)
            )
            poller.start()
            log.info("trigger plugin %s: polling %s every %d ms", name, poll.action, interval)

    def _submitter(self, name: str) -> Callable[..., asyncio.Future[bytes]]:
        """Queue a call on the plugin ``name``'s worker of the moment (it may be replaced)."""

        def submit(*call: Any) -> asyncio.Future[bytes]:
            worker = self._workers.get(name)
            if worker is None:
                raise WasmdeckError("it is no longer loaded", plugin=name)
            return worker.submit(*call)

        return submit

    def _stop_polling(self, names: Iterable[str]) -> None:
        for name in names:
            poller = self._pollers.pop(name, None)
            if poller is not None:
                poller.stop()

    # -- the event bus -----------------------------------------------------------

    def _listen_to_bus(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bus events reach the engine on the loop (``event`` triggers); loops the
        bus refuses go to the event log."""

        def deliver(event: BusEvent) -> None:
            # The copied context carries the bus's CURRENT event to the firing's
            # tasks and so to the workers: a plugin's publish is one hop further.
            loop.call_soon_threadsafe(self._on_bus_event, event, context=contextvars.copy_context())

        def problem(found: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(self._bus_problem, found)

        self._deck_subscription = self.host.bus.subscribe("*", deliver, name="deck")
        self.host.bus.on_problem.append(problem)

    def _count_plugin_calls(self, loop: asyncio.AbstractEventLoop) -> None:
        """A call from one plugin to another counts in the metrics as a call of the
        callee's (binding ``(plugin call)``): its errors, limit hits and fuel."""
        count = self.metrics.call

        def observe(
            caller: str,
            callee: str,
            action: str,
            seconds: float,
            error: BaseException | None,
            fuel: int | None,
        ) -> None:
            done = functools.partial(
                count,
                callee,
                PLUGIN_CALL_BINDING,
                seconds,
                None if error is None else type(error).__name__,
                fuel=fuel,
                limit=isinstance(error, LimitExceeded),
            )
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody counts
                loop.call_soon_threadsafe(done)

        self.host.calls.observe = observe

    def _on_bus_event(self, event: BusEvent) -> None:
        # Only events a binding is for count as events in (the host's own are many).
        if any(
            b.trigger.kind == "event" and matches(b.trigger.topic, event.topic)
            for b in self.deck.bindings
        ):
            self.feed(TopicEvent(event.topic, event.payload, event.source))

    def _bus_problem(self, found: dict[str, Any]) -> None:
        record = {
            "time": found["time"],
            "trigger": "event",
            "topic": found["topic"],
            "source": found["source"],
            "error": found["error"],
        }
        self.events.append(record)
        for listener in list(self._listeners):
            with contextlib.suppress(asyncio.QueueFull):
                listener.put_nowait(record)

    def _publish(self, topic: str, payload: dict[str, Any]) -> None:
        """A lifecycle event of the host's (``wasmdeck.*``)."""
        try:
            self.host.bus.publish(topic, payload, source="wasmdeck")
        except WasmdeckError as exc:  # the hop limit: logged and recorded by the bus
            log.debug("not published: %s", exc)

    async def _tick(self) -> None:
        """Poll the engine when a long press or a timer is due (or the deck changed)."""
        assert self._wake is not None
        while True:
            deadline = self.engine.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            for firing in self.engine.poll():
                self._dispatch(firing)

    # -- events ----------------------------------------------------------------

    def _on_midi_bytes(self, device: str, data: list[int]) -> None:
        event = MidiEvent.from_bytes(data, device)
        if event is not None:
            self._on_midi_event(event)

    def _on_midi(self, device: str, message: Any) -> None:
        event = MidiEvent.from_mido(message, device)
        if event is not None:
            self._on_midi_event(event)

    def _on_midi_event(self, event: MidiEvent) -> None:
        self.feed(event)
        if event.type == "note_off":
            self._released(event)

    def feed(self, event: Event, *, only: set[str] | None = None) -> list[Firing]:
        """Match one event and start the actions of what it fires (on the loop).

        ``only`` limits it to these bindings (webhooks: those whose secret matched).
        """
        if self._stopping is not None and self._stopping.is_set():
            self.metrics.events_dropped += 1
            return []
        self.metrics.events_in += 1
        firings = self.engine.feed(event)
        if only is not None:
            firings = [f for f in firings if f.binding.name in only]
        for firing in firings:
            self._dispatch(firing)
        if self._wake is not None and self.engine.next_deadline() is not None:
            self._wake.set()  # a long press may have started its clock
        return firings

    def fire(self, name: str) -> Firing:
        firing = self.engine.fire(name)
        self._dispatch(firing)
        return firing

    def set_mode(self, name: str) -> None:
        self.engine.set_mode(name)
        self._mode_changed()
        self._publish("wasmdeck.mode.changed", {"mode": name})

    def _dispatch(self, firing: Firing) -> None:
        binding = firing.binding
        log.debug("trigger %s (%s) in mode %s", binding.name, binding.trigger.kind, firing.mode)
        self.metrics.fired(binding.name)
        self._press_feedback(firing)
        feedback = binding.feedback
        if feedback is not None and feedback.state is not None and feedback.state[0] == "p":
            # state = "payload.FIELD": an event binding's LEDs follow the event itself.
            self._feedback_from(binding, firing.variables.get("payload"))
        self._runs += 1
        self._run_from(firing, 0)

    # A firing's actions run one after the other, chained by callbacks rather
    # than as a task: a task and its coroutines per firing were a sixth of the
    # loop's time at 5,000 events/s (benchmarks/sustained_load.py). A run
    # counts in ``_runs`` from its dispatch until its last action ends or one
    # fails; ``_drain`` waits for that count to reach 0.

    def _run_from(self, firing: Firing, index: int) -> None:
        """Run ``firing``'s actions from ``index``: at once up to one that waits
        (a plugin call, a delay), whose callback goes on from the next."""
        actions = firing.binding.actions
        try:
            while index < len(actions):
                action = actions[index]
                index += 1
                started = time.perf_counter()
                record: dict[str, Any] = {
                    "time": time.time(),
                    "binding": firing.binding.name,
                    "trigger": firing.binding.trigger.kind,
                    "action": action.kind,
                }
                try:
                    kind = action.kind
                    if kind == "plugin":
                        future = self._call_plugin(action, firing, record)
                        future.add_done_callback(
                            functools.partial(self._plugin_done, firing, index, record, started)
                        )
                        return
                    if kind == "delay":
                        asyncio.get_running_loop().call_later(
                            action.delay_ms / 1000, self._continue, firing, index, record, started
                        )
                        return
                    if kind == "mode":
                        assert action.mode is not None
                        self.set_mode(action.mode)
                        record["mode"] = action.mode
                    else:
                        assert action.midi is not None
                        self._send(action.midi, firing.variables)
                except (WasmdeckError, ValueError) as exc:
                    self._action_failed(firing, action, record, started, exc)
                    break
                self._record(record, started)
        except Exception as exc:  # a bug: reported, and the run still ends
            self._run_broke(firing, exc)
        self._run_ended()

    def _call_plugin(
        self, action: Action, firing: Firing, record: dict[str, Any]
    ) -> asyncio.Future[bytes]:
        assert action.plugin is not None
        worker = self._workers[action.plugin]
        variables = dict(firing.variables)
        velocity = variables.get("velocity")
        if isinstance(velocity, int):
            velocity = variables["velocity"] = action.velocity.apply(velocity)
        params = render(action.params, variables)
        context = _context(firing, velocity if isinstance(velocity, int) else None, self.engine)
        name = action.action or _only_action(worker)
        record.update(plugin=action.plugin, plugin_action=name)
        return worker.submit(name, params, context, firing.binding.name)

    def _plugin_done(
        self,
        firing: Firing,
        index: int,
        record: dict[str, Any],
        started: float,
        future: asyncio.Future[bytes],
    ) -> None:
        if future.cancelled():
            error: BaseException | None = WasmdeckError(
                "the call was cancelled", plugin=record.get("plugin")
            )
        else:
            error = future.exception()
        result = future.result() if error is None else None
        self._continue(firing, index, record, started, result, error)

    def _continue(
        self,
        firing: Firing,
        index: int,
        record: dict[str, Any],
        started: float,
        result: bytes | None = None,
        error: BaseException | None = None,
    ) -> None:
        """After an action that waited (a plugin call, a delay): record it, then
        run the next actions; a failure ends the run."""
        try:
            if error is None:
                if result is not None:
                    record["result"] = result.decode("utf-8", "replace")[:1000]
                    self._state_feedback(firing.binding, result)
                self._record(record, started)
                self._run_from(firing, index)  # the run goes on there (and ends there)
                return
            if not isinstance(error, WasmdeckError | ValueError):
                raise error
            self._action_failed(firing, firing.binding.actions[index - 1], record, started, error)
        except Exception as exc:  # a bug: reported, and the run still ends
            self._run_broke(firing, exc)
        self._run_ended()

    def _action_failed(
        self,
        firing: Firing,
        action: Action,
        record: dict[str, Any],
        started: float,
        exc: WasmdeckError | ValueError,
    ) -> None:
        # The rest of the sequence depended on this step: it ends here.
        record["error"] = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, QueueFull):  # the worker logs drops, a line a second
            log.warning("binding %s: %s", firing.binding.name, record["error"])
        self._record(record, started)
        if action.kind == "plugin":
            self._publish(
                "wasmdeck.plugin.failed",
                {
                    "plugin": action.plugin,
                    "action": record.get("plugin_action"),
                    "binding": firing.binding.name,
                    "error": record["error"],
                },
            )

    def _run_broke(self, firing: Firing, exc: Exception) -> None:
        asyncio.get_running_loop().call_exception_handler(
            {"message": f"binding {firing.binding.name}: its actions failed", "exception": exc}
        )

    def _run_ended(self) -> None:
        self._runs -= 1
        if self._runs == 0 and self._runs_over is not None and not self._runs_over.done():
            self._runs_over.set_result(None)

    def _record(self, record: dict[str, Any], started: float) -> None:
        record["ms"] = round((time.perf_counter() - started) * 1000, 3)
        self.events.append(record)
        for listener in list(self._listeners):
            # A slow `wasmdeck events` reader misses lines; it never slows the deck.
            with contextlib.suppress(asyncio.QueueFull):
                listener.put_nowait(record)

    def listen(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(1000)
        self._listeners.append(queue)
        return queue

    def unlisten(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        if queue in self._listeners:
            self._listeners.remove(queue)

    # -- feedback --------------------------------------------------------------

    def _press_feedback(self, firing: Firing) -> None:
        feedback = firing.binding.feedback
        if feedback is None or feedback.state is not None:
            return
        self._light(feedback, True)
        note = firing.variables.get("note")
        if isinstance(note, int):
            key = (firing.binding.trigger.device, firing.variables.get("channel") or 1, note)
            pressed = self._pressed.setdefault(key, [])
            # A controller that never sends note-off must not grow this list.
            if firing.binding not in pressed:
                pressed.append(firing.binding)

    def _released(self, event: MidiEvent) -> None:
        assert event.note is not None
        for binding in self._pressed.pop((event.device, event.channel, event.note), []):
            if binding.feedback is not None:
                self._light(binding.feedback, False)
        for binding in self._pressed.pop((None, event.channel, event.note), []):
            if binding.feedback is not None:
                self._light(binding.feedback, False)

    def _state_feedback(self, binding: Binding, result: bytes) -> None:
        feedback = binding.feedback
        if feedback is None or feedback.state is None:
            return
        try:
            value: Any = _json.loads(result, what="the plugin's result") if result else None
        except _json.JSONInputError:
            value = None
        if feedback.state[0] == "r":  # "result...", not an event's "payload..."
            self._feedback_from(binding, value)

    def _feedback_from(self, binding: Binding, value: Any) -> None:
        """Light ``binding``'s state feedback from ``value`` (a result, or an event's payload)."""
        feedback = binding.feedback
        assert feedback is not None and feedback.state is not None
        for part in feedback.state.split(".")[1:]:
            value = value.get(part) if isinstance(value, dict) else None
        lit = bool(value) if feedback.equals is None else value == feedback.equals
        if lit and feedback.group is not None:
            for other in self.deck.bindings:
                if (
                    other.feedback is not None
                    and other.feedback.group == feedback.group
                    and other is not binding
                ):
                    self._light(other.feedback, False)
        self._light(feedback, lit)

    def _light(self, feedback: Feedback, on: bool) -> None:
        if feedback.device is None:
            return
        channel = feedback.channel or 1
        where = (
            (feedback.device, channel, "note", feedback.note)
            if feedback.note is not None
            else (feedback.device, channel, "cc", feedback.controller or 0)
        )
        if on:
            self._lit[where] = feedback
            value = self._colour(feedback)
        else:
            self._lit.pop(where, None)
            value = feedback.off
        self._send_raw(where, value)

    def _colour(self, feedback: Feedback) -> int:
        if feedback.on == "mode":
            mode = self.deck.modes.get(self.engine.mode) if self.engine.mode else None
            return mode.color if mode is not None and mode.color is not None else 127
        assert isinstance(feedback.on, int)
        return feedback.on

    def _mode_changed(self) -> None:
        for where, feedback in list(self._lit.items()):
            if feedback.on == "mode":
                self._send_raw(where, self._colour(feedback))

    def _send_raw(self, where: tuple[str, int, str, int], value: int) -> None:
        if self._midi is None:
            return
        device, channel, kind, number = where
        status = (0x90 if kind == "note" else 0xB0) | (channel - 1)
        self._midi.send_bytes(device, [status, number, value])

    def _send(self, midi: MidiMessage, variables: dict[str, Any]) -> None:
        if self._midi is None or midi.device is None:
            return
        # The bytes are made here rather than by mido.Message, whose checks cost
        # more than the rest of the send (benchmarks/sustained_load.py); the
        # values are checked alike, and mido's defaults kept.
        fields = _MIDI_FIELDS[midi.type]
        data = [fields[0] | (midi.channel - 1)]
        for key, default in fields[1]:
            value = getattr(midi, key)
            if value is None:
                value = default
            elif isinstance(value, str):
                value = render(value, variables)
            if type(value) is not int or not 0 <= value <= 127:
                raise ValueError(f"MIDI {key} must be 0-127, not {value!r}")
            data.append(value)
        self._midi.send_bytes(midi.device, data)

    # -- reload and status -----------------------------------------------------

    async def reload(self, *, only_if_changed: bool = False) -> tuple[bool, str]:
        """Load the deck file again; a bad one is refused and the running deck stays.

        A plugin whose spec, file and installed package are unchanged keeps
        its instance; one loaded anew takes the running one's state when
        ``carries_state`` says it may (docs/reload.md), else starts afresh.
        Everything that can fail — reading, checking, loading, the state's
        hand-over — is done before the deck changes; then the deck, the
        routes and the workers swap at one moment, on the loop.
        ``only_if_changed``: nothing to do (``(True, "unchanged")``) when the
        file is as last loaded, judged once no other reload runs.
        """
        async with contextlib.AsyncExitStack() as held:
            # No per-plugin reload meanwhile: it would replace what this one replaces.
            await held.enter_async_context(self._deck_reloading)
            for name in sorted(self._workers):
                await held.enter_async_context(self._reloading.setdefault(name, asyncio.Lock()))
            if only_if_changed and _signature(self.deck_path) == self._loaded:
                # The watcher's wake-up, for an edit a reload by hand applied
                # while the watcher waited for these locks: not twice.
                return True, "unchanged"
            return await self._reload()

    async def _reload(self) -> tuple[bool, str]:
        started = time.perf_counter()
        running = {
            n: (spec, w.plugin)
            for n, w in self._workers.items()
            if (spec := self.deck.plugins.get(n))
        }
        loaded = {n: self._plugin_files[n] for n in running if n in self._plugin_files}
        self._loaded = _signature(self.deck_path)  # this version is judged, good or bad
        try:
            ready = await asyncio.to_thread(prepare, self.deck_path, running, loaded=loaded)
        except DeckError as exc:
            return self._deck_refused("\n", exc.message)
        except (WasmdeckError, OSError) as exc:
            return self._deck_refused(" ", str(exc))
        carried = {n: (self._workers[n].plugin, ready.plugins[n]) for n in sorted(ready.carried)}
        gone = [w for n, w in self._workers.items() if n not in ready.reused and n not in carried]
        for _, new in carried.values():
            new.measure_fuel = True

        def swap() -> None:  # on the loop; each carried plugin paused, its state moved
            self._stop_polling(w.name for w in gone)
            for worker in gone:
                del self._workers[worker.name]
            for name, (old, new) in carried.items():
                self.host.replace(name, new)  # publishes wasmdeck.plugin.reloaded
                self._workers[name].plugin = new
                was, spec = running[name][0], ready.deck.plugins[name]
                if old.metadata.poll != new.metadata.poll or was.poll_ms != spec.poll_ms:
                    self._stop_polling([name])  # started again below, as it is now
            self._ready = ready
            self.engine.swap(ready.deck)

        # A call in flight ends by its timeout; then each export by its own.
        timeout = 3 * max((old.limits.timeout for old, _ in carried.values()), default=0) + 1
        try:
            moved = await hand_over_together(carried, swap, timeout=timeout)
        except ReloadFailed as exc:
            for name, plugin in ready.plugins.items():
                if name not in ready.reused:
                    plugin.close()
            return self._deck_refused(" ", exc.message)
        for worker in gone:  # after the hand-overs let go: a removal may wait for a delivery
            self.host.remove(worker.name)  # the worker closes it once its queue is done
        self._start_workers(ready, replaced=[w.name for w in gone if w.name in ready.plugins])
        if self._wake is not None:  # serving (not a replay)
            self._start_polling()
        if self._midi is not None:
            self._midi.open(ready.deck)
        if self._wake is not None:
            self._wake.set()
        self.reloads += 1
        for worker in gone:  # finish what they had, then let them go
            task = asyncio.get_running_loop().create_task(_retire(worker))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        ms = (time.perf_counter() - started) * 1000
        message = f"reloaded: {len(ready.deck.bindings)} bindings"
        for name, (old, new) in carried.items():
            record = self._plugin_reloads.setdefault(name, {"count": 0, "error": None})
            record.update(
                count=record["count"] + 1, error=None, ms=round(ms, 3), state_bytes=moved[name]
            )
            message += (
                f"; plugin {name} {old.metadata.version} -> {new.metadata.version}, "
                f"{moved[name]} bytes of state"
            )
        afresh = sorted(w.name for w in gone if w.name in ready.plugins)
        if afresh:
            message += f"; started afresh: {', '.join(afresh)}"
        log.info("deck %s", message)
        return True, message

    def _deck_refused(self, gap: str, error: str) -> tuple[bool, str]:
        log.error("the edited deck is refused; the running deck stays:%s%s", gap, error)
        self._publish("wasmdeck.plugin.failed", {"deck": str(self.deck_path), "error": error})
        return False, error

    async def reload_plugin(self, name: str) -> tuple[bool, str]:
        """Load the plugin ``name`` again and hand its state over (docs/reload.md).

        The new version is loaded, verified and compiled off the loop (a
        component through the compile cache) and checked against the deck;
        then ``Plugin.hand_over``: the call in flight finishes on the old
        version, the state moves across, and every call queued or to come
        runs on the new one, once. A failure at any step keeps the old
        version running: logged, answered, and published as
        ``wasmdeck.plugin.reload-failed``. Raises ``KeyError`` for a plugin
        the deck does not have.
        """
        if name not in self._workers:
            raise KeyError(name)
        lock = self._reloading.setdefault(name, asyncio.Lock())
        async with lock:  # one reload of a plugin at a time, none during a deck reload
            worker = self._workers[name]  # (which may have replaced or removed it)
            return await self._reload_plugin(name, worker)

    async def _reload_plugin(self, name: str, worker: PluginWorker) -> tuple[bool, str]:
        started = time.perf_counter()
        spec = self.deck.plugins[name]
        signature = reload_signature(spec)  # this version is judged, good or bad
        self._plugin_files[name] = signature
        old = worker.plugin
        # What each other plugin was given (an installed one's grants are the store's).
        facts = {
            n: PluginFacts(w.plugin.metadata, w.plugin.grants)
            for n, w in self._workers.items()
            if n in self.deck.plugins and n != name
        }

        def load_check_swap() -> tuple[Plugin, int]:
            """Off the loop in one go (each return to a busy loop costs a reload ms)."""
            try:
                new = load_plugin(spec)
            except (WasmdeckError, OSError) as exc:
                raise _ReloadStage("load", f"{type(exc).__name__}: {exc}") from None
            try:
                check_deck(self.deck, {**facts, name: PluginFacts(new.metadata, new.grants)})
                new.measure_fuel = True

                def commit() -> None:  # under the old version's lock: no call runs
                    self.host.replace(name, new)
                    worker.plugin = new

                return new, old.hand_over(new, commit)
            except DeckError as exc:
                new.close()
                raise _ReloadStage("check", exc.message) from None
            except ReloadFailed as exc:
                new.close()
                raise _ReloadStage(exc.stage, exc.message) from None
            except WasmdeckError as exc:
                new.close()
                raise _ReloadStage("swap", str(exc)) from None

        try:
            new, moved = await asyncio.to_thread(load_check_swap)
        except _ReloadStage as failed:
            return self._reload_failed(name, failed.stage, failed.message)
        self._ready.plugins[name] = new
        # The old version's instance and compiled code are freed off the loop
        # (2-3 ms for a Python component; Plugin.hand_over).
        asyncio.get_running_loop().run_in_executor(None, old.close)
        if old.metadata.poll != new.metadata.poll:  # a trigger plugin's poll changed, came or went
            self._stop_polling([name])
            self._start_polling()
        ms = (time.perf_counter() - started) * 1000
        record = self._plugin_reloads.setdefault(name, {"count": 0, "error": None})
        record.update(count=record["count"] + 1, error=None, ms=round(ms, 3), state_bytes=moved)
        message = (
            f"plugin {name} reloaded: {old.metadata.version} -> {new.metadata.version}, "
            f"{moved} bytes of state, {ms:.1f} ms"
        )
        log.info("%s", message)
        return True, message

    def _reload_failed(self, name: str, stage: str, error: str) -> tuple[bool, str]:
        message = f"plugin {name}: the reload failed ({stage}); the running version stays: {error}"
        log.error("%s", message)
        record = self._plugin_reloads.setdefault(name, {"count": 0, "error": None})
        record["error"] = message
        self._publish(
            "wasmdeck.plugin.reload-failed", {"plugin": name, "stage": stage, "error": error}
        )
        return False, message

    def status(self) -> dict[str, Any]:
        summary = self.metrics.summary()
        plugins = {}
        for name, worker in self._workers.items():
            plugins[name] = {
                "plugin": worker.plugin.name,
                "version": worker.plugin.metadata.version,
                "pending": worker.pending,
                "reloads": self._plugin_reloads.get(name, {"count": 0, "error": None}),
                **summary["plugins"].get(name, _NO_CALLS),
            }
        return {
            "deck": str(self.deck_path),
            "mode": self.engine.mode,
            "modes": list(self.deck.modes),
            "bindings": len(self.deck.bindings),
            "plugins": plugins,
            "fired": summary["fired"],
            "per_binding": summary["bindings"],
            "events_in": summary["events_in"],
            "events_dropped": summary["events_dropped"],
            "reloads": self.reloads,
            "bus": self.host.bus.stats(),
            "triggers": {name: poller.status() for name, poller in self._pollers.items()},
            "uptime_s": round(time.time() - self.started, 1),
            # Full collections hold the GIL for as long as they scan (cli/_serve.py freezes
            # what startup made); counted here to tell such a pause from a slow plugin.
            "gc": {
                "frozen": gc.get_freeze_count(),
                "full_collections": gc.get_stats()[2]["collections"],
            },
            "midi": {
                "inputs": sorted(self._midi.inputs) if self._midi else [],
                "outputs": sorted(self._midi.outputs) if self._midi else [],
            },
        }


_NO_CALLS = {
    "calls": 0,
    "errors": {},
    "limit_hits": {},
    "drops": 0,
    "fuel_used": 0,
    "fuel_per_call": None,
}

# Each MIDI action's status byte and data bytes: (deck field, mido's default).
_MIDI_FIELDS: dict[str, tuple[int, tuple[tuple[str, int], ...]]] = {
    "note_on": (0x90, (("note", 0), ("velocity", 64))),
    "note_off": (0x80, (("note", 0), ("velocity", 64))),
    "control_change": (0xB0, (("controller", 0), ("value", 0))),
    "program_change": (0xC0, (("program", 0),)),
}


class ReplayClock:
    """A clock that ``Daemon.replay`` moves along a MIDI file's timeline."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _signature(path: Path) -> tuple[int, int, int] | None:
    """What tells one version of the deck file from the next: inode, size, mtime."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


async def _retire(worker: PluginWorker) -> None:
    await worker.drain()
    worker.close()


def _threads(ready: ReadyDeck) -> int:
    """A thread for every call that may run at once (a plugin's pool), and some to spare."""
    return sum(p.limits.pool for p in ready.plugins.values()) + 4


def _thread_count(ready: ReadyDeck) -> int:
    """Threads for plugin calls: one, or as many as the largest pool runs at once.

    More would fight the loop for the GIL on every short call (daemon/_workers.py);
    a call stuck for 20 ms while others wait gets a spare thread anyway.
    """
    return max((p.limits.pool for p in ready.plugins.values()), default=1)


def _only_action(worker: PluginWorker) -> str:
    actions = worker.plugin.metadata.actions or ()
    return actions[0].name if len(actions) == 1 else ""


def _context(firing: Firing, velocity: int | None, engine: TriggerEngine) -> TriggerContext:
    fields = firing.context
    value = fields.get("value")
    return TriggerContext(
        velocity=velocity,
        mode=engine.mode_number(),
        timestamp=int(firing.variables.get("timestamp") or time.time() * 1000),
        kind=fields.get("kind"),
        channel=fields.get("channel"),
        note=fields.get("note"),
        controller=fields.get("controller"),
        value=value if isinstance(value, int) else None,
    )
