"""TOML text -> ``Deck``, with every problem placed at its file:line:column.

Syntax errors come from ``tomli`` (which knows where they are; it is the
standard library's ``tomllib``, compiled, and a deck is parsed again on every
live reload); every other problem is placed through ``PositionIndex``. All
problems are collected, so one run of ``wasmdeck check`` shows them all.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli

from .._metadata import MAX_POLL_MS, MIN_POLL_MS
from .._topics import valid_pattern
from ._curves import CURVES, VelocityCurve
from ._model import (
    MIDI_KINDS,
    NOTE_KINDS,
    TRIGGER_KINDS,
    Action,
    Binding,
    Deck,
    DeviceSpec,
    Feedback,
    Listen,
    MidiMessage,
    ModeSpec,
    PluginSpec,
    SecretRef,
    Timing,
    Trigger,
    WebhookAuth,
)
from ._params import TemplateError, names_in
from ._positions import Path as KeyPath
from ._positions import PositionIndex
from ._problems import DeckError, DeckProblem
from ._profiles import BUILTIN_PROFILES, Profile

__all__ = ["parse_deck", "read_deck"]

MAX_DECK_BYTES = 4 << 20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$")
# Config keys whose literal string values would put a secret in the deck.
_SECRET_KEY = re.compile(r"(pass(word|wd)?|token|secret|api[_-]?key|credential)", re.I)
_MIDI_TYPES = ("note_on", "note_off", "control_change", "program_change")
_ENCODINGS = ("twos_complement", "sign_magnitude", "offset")


def read_deck(path: str | Path) -> Deck:
    """Read and parse the deck file at ``path``; raises ``DeckError`` with every problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DeckError(
            [DeckProblem(str(path), 1, 1, f"cannot read the deck: {exc.strerror}")]
        ) from None
    if len(data) > MAX_DECK_BYTES:
        raise DeckError(
            [DeckProblem(str(path), 1, 1, f"the deck is larger than {MAX_DECK_BYTES} bytes")]
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DeckError([DeckProblem(str(path), 1, 1, f"not UTF-8 (byte {exc.start})")]) from None
    return parse_deck(text, source=path)


def parse_deck(text: str, *, source: str | Path | None = None) -> Deck:
    """Parse deck TOML ``text``; ``source`` names the file in messages and anchors paths."""
    label = str(source) if source is not None else "<deck>"
    try:
        raw = tomli.loads(text)
    except tomli.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line, column = (int(match.group(1)), int(match.group(2))) if match else (1, 1)
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise DeckError([DeckProblem(label, line, column, f"TOML syntax: {message}")]) from None
    reader = _Reader(label, PositionIndex(text))
    base = Path(source).parent if source is not None else Path.cwd()
    deck = reader.deck(raw, base, Path(source) if source is not None else None)
    if reader.errors():
        raise DeckError(reader.problems)
    return deck


class _Reader:
    def __init__(self, label: str, positions: PositionIndex) -> None:
        self.label = label
        self.positions = positions
        self.problems: list[DeckProblem] = []
        self._profiles: dict[str, Profile] = {}  # by name: the deck's own, and built-ins used

    def errors(self) -> list[DeckProblem]:
        return [p for p in self.problems if p.severity == "error"]

    def problem(self, path: KeyPath, message: str, severity: str = "error") -> None:
        line, column = self.positions.where(path)
        self.problems.append(DeckProblem(self.label, line, column, message, severity))

    # -- typed values --------------------------------------------------------

    def table(self, value: Any, path: KeyPath, keys: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.problem(path, f"{_show(path)} must be a table, not {_kind(value)}")
            return {}
        for key in value:
            if key not in keys:
                self.problem(
                    (*path, key),
                    f"unknown key {key!r} in {_show(path)}; expected one of: {', '.join(keys)}",
                )
        return value

    def integer(
        self, table: Mapping[str, Any], key: str, path: KeyPath, lo: int, hi: int, default: Any
    ) -> Any:
        value = table.get(key, default)
        if key in table and (type(value) is not int or not lo <= value <= hi):
            self.problem((*path, key), f"{key} must be an integer {lo}-{hi}, not {value!r}")
            return default
        return value

    def text(self, table: Mapping[str, Any], key: str, path: KeyPath, default: Any = None) -> Any:
        value = table.get(key, default)
        if key in table and not isinstance(value, str):
            self.problem((*path, key), f"{key} must be a string, not {_kind(value)}")
            return default
        return value

    def choice(
        self,
        table: Mapping[str, Any],
        key: str,
        path: KeyPath,
        options: tuple[str, ...],
        default: str,
    ) -> str:
        value = self.text(table, key, path, default)
        if value not in options:
            self.problem((*path, key), f"{key} must be one of {', '.join(options)}, not {value!r}")
            return default
        return str(value)

    def span(
        self, table: Mapping[str, Any], key: str, path: KeyPath, lo: int, hi: int, default: Any
    ) -> Any:
        """An integer (one value) or ``[low, high]`` within lo-hi."""
        if key not in table:
            return default
        value = table[key]
        if type(value) is int and lo <= value <= hi:
            return (value, value)
        if (
            isinstance(value, list)
            and len(value) == 2
            and all(type(v) is int and lo <= v <= hi for v in value)
            and value[0] <= value[1]
        ):
            return (value[0], value[1])
        self.problem(
            (*path, key),
            f"{key} must be an integer {lo}-{hi} or a range [low, high] within it, not {value!r}",
        )
        return default

    def name(self, value: Any, path: KeyPath, what: str) -> bool:
        if isinstance(value, str) and _NAME.match(value):
            return True
        self.problem(
            path,
            f"{what} {value!r} is not a valid name (letters, digits, '_', '-', '.'; at most 64)",
        )
        return False

    def secret(self, value: Any, path: KeyPath) -> SecretRef | None:
        if isinstance(value, dict) and len(value) == 1:
            ((source, name),) = value.items()
            if source in ("env", "secret") and isinstance(name, str) and _NAME.match(name):
                return SecretRef(source, name)
        self.problem(
            path,
            f'{_show(path)} must reference a secret: {{ env = "NAME" }} or '
            f'{{ secret = "NAME" }} (secrets are never written into the deck)',
        )
        return None

    # -- the deck ------------------------------------------------------------

    def deck(self, raw: dict[str, Any], base: Path, source: Path | None) -> Deck:
        top = self.table(
            raw,
            (),
            (
                "version",
                "timezone",
                "start_mode",
                "timing",
                "listen",
                "plugins",
                "profiles",
                "devices",
                "modes",
                "bindings",
            ),
        )
        version = top.get("version")
        if version != 1:
            self.problem(
                ("version",),
                "the deck must start with version = 1"
                if version is None
                else f"unsupported deck version {version!r}; this wasmdeck reads version 1",
            )
        timezone = self.text(top, "timezone", ())
        if timezone is not None:
            self._check_timezone(timezone)
        timing = self.timing(top.get("timing", {}))
        listen = self.listen(top.get("listen", {}))
        plugins = self.plugins(top.get("plugins", {}), base)
        own = self.profiles(top.get("profiles", {}))
        devices = self.devices(top.get("devices", {}), own)
        self._profiles = {
            d.profile: own.get(d.profile) or BUILTIN_PROFILES[d.profile]
            for d in devices.values()
            if d.profile is not None
        }
        self._profiles.update(own)
        modes = self.modes(top.get("modes", {}))
        start_mode = self.text(top, "start_mode", ())
        if start_mode is not None and start_mode not in modes:
            self.problem(("start_mode",), f"start_mode {start_mode!r} is not a declared mode")
        if start_mode is None and modes:
            start_mode = next(iter(modes))
        bindings = self.bindings(top.get("bindings", []), plugins, devices, modes)
        return Deck(
            source=source,
            plugins=plugins,
            devices=devices,
            modes=modes,
            start_mode=start_mode,
            bindings=bindings,
            timing=timing,
            timezone=timezone,
            listen=listen,
            profiles=self._profiles,
            positions=self.positions,
        )

    def _check_timezone(self, name: str) -> None:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            self.problem(("timezone",), f'unknown time zone {name!r} (e.g. "Europe/Berlin")')

    def timing(self, raw: Any) -> Timing:
        path: KeyPath = ("timing",)
        table = self.table(raw, path, ("hold_ms", "double_tap_ms", "chord_ms"))
        return Timing(
            hold_ms=self.integer(table, "hold_ms", path, 1, 60_000, 2000),
            double_tap_ms=self.integer(table, "double_tap_ms", path, 1, 10_000, 300),
            chord_ms=self.integer(table, "chord_ms", path, 1, 10_000, 50),
        )

    def listen(self, raw: Any) -> Listen:
        path: KeyPath = ("listen",)
        table = self.table(
            raw, path, ("webhooks", "osc", "webhook_max_body", "webhook_rate_per_minute")
        )
        return Listen(
            webhooks=self._address(table, "webhooks", path),
            osc=self._address(table, "osc", path),
            webhook_max_body=self.integer(table, "webhook_max_body", path, 1, 16 << 20, 64 * 1024),
            webhook_rate_per_minute=self.integer(
                table, "webhook_rate_per_minute", path, 1, 1_000_000, 120
            ),
        )

    def _address(self, table: Mapping[str, Any], key: str, path: KeyPath) -> tuple[str, int] | None:
        text = self.text(table, key, path)
        if text is None:
            return None
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            self.problem(
                (*path, key), f'{key} must be HOST:PORT (e.g. "127.0.0.1:8765"), not {text!r}'
            )
            return None
        return host.strip("[]"), int(port)

    def plugins(self, raw: Any, base: Path) -> dict[str, PluginSpec]:
        plugins: dict[str, PluginSpec] = {}
        for name, value in self.table(
            raw, ("plugins",), tuple(raw) if isinstance(raw, dict) else ()
        ).items():
            path: KeyPath = ("plugins", name)
            if not self.name(name, path, "plugin name"):
                continue
            table = self.table(
                value,
                path,
                ("installed", "path", "grants", "config", "timeout_ms", "pool", "poll_ms"),
            )
            installed = self.text(table, "installed", path)
            file = self.text(table, "path", path)
            if (installed is None) == (file is None):
                self.problem(
                    path,
                    f'plugin {name!r} needs exactly one of installed = "NAME" '
                    '(an installed plugin) or path = "FILE" (a .wasm file or package)',
                )
                continue
            grants = table.get("grants", [])
            if installed is not None and "grants" in table:
                self.problem(
                    (*path, "grants"),
                    "an installed plugin keeps its stored grants; change them with "
                    f"'wasmdeck grant {installed} ...'",
                )
            if not isinstance(grants, list) or not all(isinstance(g, str) for g in grants):
                self.problem(
                    (*path, "grants"), 'grants must be a list of strings like "network:HOST"'
                )
                grants = []
            config = table.get("config", {})
            if not isinstance(config, dict):
                self.problem((*path, "config"), "config must be a table")
                config = {}
            plugins[name] = PluginSpec(
                name=name,
                installed=installed,
                path=(base / file) if file is not None else None,
                grants=tuple(grants),
                config=self.config(config, (*path, "config")),
                timeout_ms=self.integer(table, "timeout_ms", path, 1, 600_000, None),
                pool=self.integer(table, "pool", path, 1, 64, 1),
                poll_ms=self.integer(table, "poll_ms", path, MIN_POLL_MS, MAX_POLL_MS, None),
            )
        return plugins

    def config(self, table: dict[str, Any], path: KeyPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in table.items():
            here = (*path, key)
            if isinstance(value, dict) and set(value) & {"env", "secret"}:
                ref = self.secret(value, here)
                if ref is not None:
                    result[key] = ref
            elif isinstance(value, dict):
                result[key] = self.config(value, here)
            elif isinstance(value, str) and _SECRET_KEY.search(key) and value:
                self.problem(
                    here,
                    f'{key} looks like a secret: reference it with {{ env = "NAME" }} or '
                    f'{{ secret = "NAME" }} instead of writing it into the deck',
                )
            else:
                result[key] = value
        return result

    def profiles(self, raw: Any) -> dict[str, Profile]:
        profiles: dict[str, Profile] = {}
        for name, value in self.table(
            raw, ("profiles",), tuple(raw) if isinstance(raw, dict) else ()
        ).items():
            path: KeyPath = ("profiles", name)
            if not self.name(name, path, "profile name"):
                continue
            if name in BUILTIN_PROFILES:
                self.problem(path, f"{name!r} is a built-in profile; name yours differently")
                continue
            table = self.table(value, path, ("pads", "controls"))
            maps: list[dict[str, int]] = []
            for key, what in (("pads", "note"), ("controls", "controller")):
                numbers: dict[str, int] = {}
                entries = table.get(key, {})
                if not isinstance(entries, dict):
                    self.problem((*path, key), f"{key} must be a table of NAME = {what} number")
                    entries = {}
                for entry, number in entries.items():
                    if not self.name(entry, (*path, key, entry), f"{key[:-1]} name"):
                        continue
                    if type(number) is not int or not 0 <= number <= 127:
                        self.problem(
                            (*path, key, entry),
                            f"{key}.{entry} must be a {what} number 0-127, not {number!r}",
                        )
                        continue
                    numbers[entry] = number
                maps.append(numbers)
            if not maps[0] and not maps[1]:
                self.problem(
                    path, f"profile {name!r} needs pads = {{ ... }} or controls = {{ ... }}"
                )
            profiles[name] = Profile(name, maps[0], maps[1])
        return profiles

    def devices(self, raw: Any, profiles: Mapping[str, Profile]) -> dict[str, DeviceSpec]:
        devices: dict[str, DeviceSpec] = {}
        for name, value in self.table(
            raw, ("devices",), tuple(raw) if isinstance(raw, dict) else ()
        ).items():
            path: KeyPath = ("devices", name)
            if not self.name(name, path, "device name"):
                continue
            table = self.table(value, path, ("input", "output", "virtual", "profile"))
            profile = self.text(table, "profile", path)
            if profile is not None and profile not in profiles and profile not in BUILTIN_PROFILES:
                self.problem(
                    (*path, "profile"),
                    f"unknown profile {profile!r}; built-in: {', '.join(BUILTIN_PROFILES)}; "
                    f"the deck's: {', '.join(profiles) or '(none)'}",
                )
                profile = None
            device = DeviceSpec(
                name=name,
                input=self.text(table, "input", path),
                output=self.text(table, "output", path),
                virtual=bool(table.get("virtual", False)),
                profile=profile,
            )
            if "virtual" in table and type(table["virtual"]) is not bool:
                self.problem((*path, "virtual"), "virtual must be true or false")
            if device.input is None and device.output is None:
                self.problem(path, f"device {name!r} needs an input or an output port pattern")
            devices[name] = device
        return devices

    def modes(self, raw: Any) -> dict[str, ModeSpec]:
        modes: dict[str, ModeSpec] = {}
        for number, (name, value) in enumerate(
            self.table(raw, ("modes",), tuple(raw) if isinstance(raw, dict) else ()).items()
        ):
            path: KeyPath = ("modes", name)
            if not self.name(name, path, "mode name"):
                continue
            table = self.table(value, path, ("color",))
            modes[name] = ModeSpec(name, number, self.integer(table, "color", path, 0, 127, None))
        return modes

    # -- bindings ------------------------------------------------------------

    def bindings(
        self,
        raw: Any,
        plugins: Mapping[str, PluginSpec],
        devices: Mapping[str, DeviceSpec],
        modes: Mapping[str, ModeSpec],
    ) -> tuple[Binding, ...]:
        if not isinstance(raw, list):
            self.problem(("bindings",), "bindings must be an array of tables ([[bindings]])")
            return ()
        bindings: list[Binding] = []
        seen: dict[str, int] = {}
        for index, value in enumerate(raw):
            path: KeyPath = ("bindings", index)
            table = self.table(value, path, ("name", "mode", "trigger", "actions", "feedback"))
            if not table:
                continue
            name = table.get("name")
            if name is None:
                self.problem(path, "a binding needs a name (wasmdeck fire NAME uses it)")
                continue
            if not self.name(name, (*path, "name"), "binding name"):
                continue
            if name in seen:
                line, _ = self.positions.where(("bindings", seen[name]))
                self.problem(
                    (*path, "name"), f"binding name {name!r} is already used on line {line}"
                )
                continue
            seen[name] = index
            mode = self.text(table, "mode", path)
            if mode is not None and mode not in modes:
                known = ", ".join(modes) or "(none declared)"
                self.problem((*path, "mode"), f"unknown mode {mode!r}; modes: {known}")
            if "trigger" not in table:
                self.problem(path, f"binding {name!r} needs a trigger")
                continue
            trigger = self.trigger(table["trigger"], (*path, "trigger"), devices)
            if trigger is None:
                continue
            actions_raw = table.get("actions", [])
            # An event binding that only lights its pad from the event's payload needs no action.
            lights_only = (
                "actions" not in table
                and trigger.kind == "event"
                and isinstance(table.get("feedback"), dict)
                and str(table["feedback"].get("state", "")).startswith("payload")
            )
            if not isinstance(actions_raw, list) or not (actions_raw or lights_only):
                self.problem(
                    (*path, "actions"), f"binding {name!r} needs actions = [ ... ] (at least one)"
                )
                continue
            actions = tuple(
                a
                for i, item in enumerate(actions_raw)
                if (a := self.action(item, (*path, "actions", i), trigger, plugins, devices, modes))
                is not None
            )
            feedback = None
            if "feedback" in table:
                feedback = self.feedback(
                    table["feedback"], (*path, "feedback"), trigger, devices, modes
                )
            bindings.append(Binding(name, trigger, actions, mode, feedback, path))
        return tuple(bindings)

    def trigger(self, raw: Any, path: KeyPath, devices: Mapping[str, DeviceSpec]) -> Trigger | None:
        if not isinstance(raw, dict) or "kind" not in raw:
            self.problem(path, f"a trigger is a table with a kind: {', '.join(TRIGGER_KINDS)}")
            return None
        kind = raw["kind"]
        if kind not in TRIGGER_KINDS:
            self.problem(
                (*path, "kind"), f"unknown trigger kind {kind!r}; kinds: {', '.join(TRIGGER_KINDS)}"
            )
            return None
        keys = ("kind", *_TRIGGER_KEYS[kind])
        table = self.table(raw, path, keys)
        fields: dict[str, Any] = {"kind": kind}
        if kind in MIDI_KINDS:
            device = self.text(table, "device", path)
            if device is not None and device not in devices:
                self.problem(
                    (*path, "device"),
                    f"unknown device {device!r}; devices: {', '.join(devices) or '(none)'}",
                )
            elif device is not None and devices[device].input is None:
                self.problem((*path, "device"), f"device {device!r} has no input")
            fields["device"] = device
            fields["channel"] = self.integer(table, "channel", path, 1, 16, None)
        if kind in NOTE_KINDS or kind == "aftertouch":
            fields["note"] = self.span(table, "note", path, 0, 127, None)
            if "pad" in table:
                fields["note"] = self.named(table, "pad", path, fields["device"], devices, "note")
                if fields["note"] is None:
                    return None  # reported
            elif fields["note"] is None and kind != "aftertouch" and "note" not in table:
                self.problem(
                    path, f"a {kind} trigger needs note = N (or [low, high]) or pad = NAME"
                )
        if kind in ("note_on", "long_press", "double_tap"):
            fields["velocity"] = self.span(table, "velocity", path, 1, 127, (1, 127))
        if kind in ("cc", "encoder"):
            controller = self.integer(table, "controller", path, 0, 127, None)
            if "control" in table:
                number = self.named(table, "control", path, fields["device"], devices, "controller")
                if number is None:
                    return None  # reported
                controller = number[0]
            elif controller is None:
                self.problem(path, f"a {kind} trigger needs controller = N or control = NAME")
            fields["controller"] = controller
        if kind == "cc":
            fields["value"] = self.span(table, "value", path, 0, 127, (0, 127))
        if kind == "aftertouch":
            fields["value"] = self.span(table, "value", path, 0, 127, (0, 127))
        if kind == "pitch_bend":
            fields["value"] = self.span(table, "value", path, -8192, 8191, (-8192, 8191))
        if kind == "program":
            fields["program"] = self.span(table, "program", path, 0, 127, (0, 127))
        if kind == "encoder":
            fields["encoding"] = self.choice(table, "encoding", path, _ENCODINGS, "twos_complement")
            fields["direction"] = self.choice(
                table, "direction", path, ("any", "up", "down"), "any"
            )
            accel = table.get("acceleration", 0.0)
            if type(accel) not in (int, float) or not 0 <= accel <= 10:
                self.problem(
                    (*path, "acceleration"), f"acceleration must be a number 0-10, not {accel!r}"
                )
                accel = 0.0
            fields["acceleration"] = float(accel)
        if kind == "long_press":
            fields["hold_ms"] = self.integer(table, "hold_ms", path, 1, 60_000, None)
        if kind in ("double_tap", "chord"):
            fields["window_ms"] = self.integer(table, "window_ms", path, 1, 10_000, None)
        if kind == "chord":
            notes = table.get("notes")
            if "pads" in table:
                notes = self.named_pads(table, path, fields["device"], devices)
                if notes is None:
                    return None
            if (
                not isinstance(notes, list)
                or len(notes) < 2
                or not all(type(n) is int and 0 <= n <= 127 for n in notes)
                or len(set(notes)) != len(notes)
            ):
                self.problem(
                    (*path, "notes"),
                    "a chord needs notes = [N, N, ...]: two or more different notes 0-127",
                )
                return None
            fields["notes"] = tuple(sorted(notes))
        if kind == "webhook":
            fields["method"] = self.choice(table, "method", path, ("POST", "PUT", "GET"), "POST")
            hook_path = self.text(table, "path", path)
            if not isinstance(hook_path, str) or not re.match(r"^/[A-Za-z0-9/_.~-]*$", hook_path):
                self.problem(
                    (*path, "path"), 'a webhook needs path = "/..." (letters, digits, / _ . ~ -)'
                )
                return None
            fields["path"] = hook_path
            fields["auth"] = self.webhook_auth(table.get("auth"), (*path, "auth"))
            if fields["auth"] is None:
                return None
        if kind == "osc":
            address = self.text(table, "address", path)
            if not isinstance(address, str) or not address.startswith("/"):
                self.problem((*path, "address"), 'an osc trigger needs address = "/..."')
                return None
            fields["address"] = address
        if kind == "event":
            topic = self.text(table, "topic", path)
            if not valid_pattern(topic):
                self.problem(
                    (*path, "topic"),
                    'an event trigger needs topic = "PATTERN" (letters, digits, . _ -, and * '
                    'for any run of characters, e.g. "obs.*")',
                )
                return None
            fields["topic"] = topic
        if kind == "timer":
            interval = self.integer(table, "interval_ms", path, 10, 7 * 86_400_000, None)
            at = self.text(table, "at", path)
            if (interval is None) == (at is None):
                self.problem(path, 'a timer needs interval_ms = N or at = "HH:MM" (one of them)')
                return None
            if at is not None and not _TIME.match(at):
                self.problem((*path, "at"), f'at must be "HH:MM" or "HH:MM:SS" (24 h), not {at!r}')
                return None
            fields["interval_ms"], fields["at"] = interval, at
        return Trigger(**fields)

    def named(
        self,
        table: Mapping[str, Any],
        key: str,
        path: KeyPath,
        device: str | None,
        devices: Mapping[str, DeviceSpec],
        number_key: str,
    ) -> tuple[int, int] | None:
        """``pad = NAME`` / ``control = NAME`` through the device's profile: ``(n, n)``."""
        if number_key in table:
            self.problem((*path, key), f"give {number_key} or {key}, not both")
            return None
        name = self.text(table, key, path)
        if name is None:
            return None
        number = self.profile_number(name, (*path, key), key, device, devices)
        return None if number is None else (number, number)

    def named_pads(
        self,
        table: Mapping[str, Any],
        path: KeyPath,
        device: str | None,
        devices: Mapping[str, DeviceSpec],
    ) -> list[int] | None:
        if "notes" in table:
            self.problem((*path, "pads"), "give notes or pads, not both")
            return None
        names = table["pads"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            self.problem((*path, "pads"), 'pads must be a list of pad names: ["A1", "B1"]')
            return None
        numbers = [
            self.profile_number(n, (*path, "pads", i), "pad", device, devices)
            for i, n in enumerate(names)
        ]
        if any(n is None for n in numbers):
            return None
        return [n for n in numbers if n is not None]

    def profile_number(
        self,
        name: str,
        path: KeyPath,
        key: str,
        device: str | None,
        devices: Mapping[str, DeviceSpec],
    ) -> int | None:
        if device is not None and device not in devices:
            return None  # reported as an unknown device already
        spec = devices.get(device) if device is not None else None
        if spec is None or spec.profile is None:
            self.problem(
                path,
                f'{key} = {name!r} needs device = "NAME", a device with a profile'
                if spec is None
                else f'{key} = {name!r}: device {device!r} has no profile (profile = "...")',
            )
            return None
        profile = self._profiles[spec.profile]
        names = profile.pads if key == "pad" else profile.controls
        number = names.get(name)
        if number is None:
            close = difflib.get_close_matches(name, list(names), 3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            listed = ", ".join(list(names)[:16]) + (", ..." if len(names) > 16 else "")
            self.problem(
                path,
                f"no {key} {name!r} in profile {profile.name!r} of device {device!r}{hint} "
                f"({key}s: {listed or '(none)'})",
            )
        return number

    def webhook_auth(self, raw: Any, path: KeyPath) -> WebhookAuth | None:
        if not isinstance(raw, dict) or ("bearer" in raw) == ("hmac_sha256" in raw):
            self.problem(
                path,
                'a webhook needs auth = { bearer = { env = "NAME" } } or '
                'auth = { hmac_sha256 = { secret = "NAME" }, header = "X-Signature" }',
            )
            return None
        table = self.table(raw, path, ("bearer", "hmac_sha256", "header"))
        if "bearer" in table:
            ref = self.secret(table["bearer"], (*path, "bearer"))
            return WebhookAuth("bearer", ref) if ref else None
        ref = self.secret(table["hmac_sha256"], (*path, "hmac_sha256"))
        header = self.text(table, "header", path, "X-Signature-256")
        return WebhookAuth("hmac-sha256", ref, header) if ref else None

    def action(
        self,
        raw: Any,
        path: KeyPath,
        trigger: Trigger,
        plugins: Mapping[str, PluginSpec],
        devices: Mapping[str, DeviceSpec],
        modes: Mapping[str, ModeSpec],
    ) -> Action | None:
        if not isinstance(raw, dict):
            self.problem(
                path,
                "an action is a table: { plugin = ..., action = ... }, { mode = ... }, "
                "{ delay_ms = ... } or { midi = ... }",
            )
            return None
        kinds = [k for k in ("plugin", "mode", "delay_ms", "midi") if k in raw]
        if len(kinds) != 1:
            self.problem(path, "an action names exactly one of plugin, mode, delay_ms, midi")
            return None
        kind = kinds[0]
        if kind == "mode":
            table = self.table(raw, path, ("mode",))
            mode = self.text(table, "mode", path)
            if mode is not None and mode not in modes:
                self.problem(
                    (*path, "mode"),
                    f"unknown mode {mode!r}; modes: {', '.join(modes) or '(none declared)'}",
                )
            return Action("mode", mode=mode, where=path)
        if kind == "delay_ms":
            table = self.table(raw, path, ("delay_ms",))
            return Action(
                "delay", delay_ms=self.integer(table, "delay_ms", path, 0, 60_000, 0), where=path
            )
        if kind == "midi":
            table = self.table(raw, path, ("midi",))
            midi = self.midi(table["midi"], (*path, "midi"), trigger, devices)
            return Action("midi", midi=midi, where=path) if midi else None
        table = self.table(raw, path, ("plugin", "action", "params", "velocity"))
        plugin = self.text(table, "plugin", path)
        if plugin is not None and plugin not in plugins:
            self.problem(
                (*path, "plugin"),
                f"unknown plugin {plugin!r}; the deck's plugins: {', '.join(plugins) or '(none)'}",
            )
        action = self.text(table, "action", path)
        params = table.get("params", {})
        if not isinstance(params, dict):
            self.problem((*path, "params"), "params must be a table")
            params = {}
        self.placeholders(params, (*path, "params"), trigger)
        curve = self.curve(table.get("velocity"), (*path, "velocity"))
        return Action(
            "plugin", plugin=plugin, action=action, params=params, velocity=curve, where=path
        )

    def curve(self, raw: Any, path: KeyPath) -> VelocityCurve:
        if raw is None:
            return VelocityCurve()
        table = self.table(raw, path, ("curve", "value", "min", "max", "intensity"))
        curve = self.choice(table, "curve", path, CURVES, "pass")
        intensity = table.get("intensity", 2.0)
        if type(intensity) not in (int, float) or not 0 < intensity <= 20:
            self.problem(
                (*path, "intensity"),
                f"intensity must be a number above 0, at most 20, not {intensity!r}",
            )
            intensity = 2.0
        low = self.integer(table, "min", path, 0, 127, 0)
        high = self.integer(table, "max", path, 0, 127, 127)
        if low > high:
            self.problem((*path, "min"), f"min ({low}) must not exceed max ({high})")
        return VelocityCurve(
            curve=curve,
            value=self.integer(table, "value", path, 0, 127, 127),
            min=low,
            max=high,
            intensity=float(intensity),
        )

    def placeholders(self, value: Any, path: KeyPath, trigger: Trigger) -> None:
        """Each placeholder in ``value`` must name a value this trigger kind has."""
        if isinstance(value, dict):
            for key, item in value.items():
                self.placeholders(item, (*path, key), trigger)
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                self.placeholders(item, (*path, i), trigger)
            return
        try:
            names = names_in(value)
        except TemplateError as exc:
            self.problem(path, str(exc))
            return
        available = trigger_variables(trigger.kind)
        for name in names:
            root = name.split(".")[0]
            if root not in available:
                self.problem(
                    path,
                    f"{{{name}}}: a {trigger.kind} trigger has no {root!r}; "
                    f"it has: {', '.join(sorted(available))}",
                )
            elif root not in _NESTED and "." in name:
                self.problem(path, f"{{{name}}}: {root} is a single value, not a table")

    def midi(
        self, raw: Any, path: KeyPath, trigger: Trigger, devices: Mapping[str, DeviceSpec]
    ) -> MidiMessage | None:
        keys = ("type", "device", "channel", "note", "velocity", "controller", "value", "program")
        table = self.table(raw, path, keys)
        if not table:
            return None
        kind = self.choice(table, "type", path, _MIDI_TYPES, "note_on")
        device = self.text(table, "device", path, trigger.device)
        if device is None:
            self.problem(path, 'a MIDI message needs device = "NAME" (a device with an output)')
            return None
        if device not in devices or devices[device].output is None:
            self.problem(
                (*path, "device"), f"device {device!r} is not a declared device with an output"
            )
            return None
        data: dict[str, Any] = {}
        for key in ("note", "velocity", "controller", "value", "program"):
            if key not in table:
                continue
            item = table[key]
            if isinstance(item, str):
                self.placeholders(item, (*path, key), trigger)
            elif type(item) is not int or not 0 <= item <= 127:
                self.problem(
                    (*path, key), f'{key} must be 0-127 or a placeholder like "{{velocity}}"'
                )
                continue
            data[key] = item
        needed = {
            "note_on": ("note",),
            "note_off": ("note",),
            "control_change": ("controller",),
            "program_change": ("program",),
        }[kind]
        for key in needed:
            if key not in data:
                self.problem(path, f"a {kind} message needs {key}")
                return None
        channel = self.integer(table, "channel", path, 1, 16, trigger.channel or 1)
        return MidiMessage(type=kind, device=device, channel=channel, **data)

    def feedback(
        self,
        raw: Any,
        path: KeyPath,
        trigger: Trigger,
        devices: Mapping[str, DeviceSpec],
        modes: Mapping[str, ModeSpec],
    ) -> Feedback | None:
        keys = (
            "device", "channel", "note", "controller", "pad", "control",
            "on", "off", "state", "equals", "group",
        )  # fmt: skip
        table = self.table(raw, path, keys)
        device = self.text(table, "device", path, trigger.device)
        if device is None or device not in devices or devices[device].output is None:
            self.problem(
                (*path, "device") if "device" in table else path,
                'feedback needs device = "NAME", a declared device with an output',
            )
            return None
        note = self.integer(table, "note", path, 0, 127, None)
        controller = self.integer(table, "controller", path, 0, 127, None)
        for key, number_key in (("pad", "note"), ("control", "controller")):
            if key in table:
                found = self.named(table, key, path, device, devices, number_key)
                if found is None:
                    return None
                if key == "pad":
                    note = found[0]
                else:
                    controller = found[0]
        if note is None and controller is None:
            if trigger.note is not None and trigger.note[0] == trigger.note[1]:
                note = trigger.note[0]
            elif trigger.controller is not None:
                controller = trigger.controller
            else:
                self.problem(path, "feedback needs note = N or controller = N")
                return None
        on = table.get("on", 127)
        if on == "mode":
            if not modes:
                self.problem((*path, "on"), 'on = "mode" needs modes with colours')
        elif type(on) is not int or not 0 <= on <= 127:
            self.problem((*path, "on"), f'on must be 0-127 or "mode", not {on!r}')
            on = 127
        state = self.text(table, "state", path)
        roots = "result|payload" if trigger.kind == "event" else "result"
        if state is not None and not re.match(rf"^({roots})(\.[A-Za-z0-9_-]+)*$", state):
            hint = ', or "payload.FIELD..." (the event\'s)' if trigger.kind == "event" else ""
            self.problem(
                (*path, "state"),
                f'state must be "result" or "result.FIELD..."{hint}, not {state!r}',
            )
            state = None
        if "equals" in table and state is None:
            self.problem((*path, "equals"), 'equals needs state = "result.FIELD"')
        group = self.text(table, "group", path)
        return Feedback(
            device=device,
            channel=self.integer(table, "channel", path, 1, 16, trigger.channel or 1),
            note=note,
            controller=controller,
            on=on,
            off=self.integer(table, "off", path, 0, 127, 0),
            state=state,
            equals=table.get("equals"),
            group=group,
        )


_COMMON_MIDI = ("device", "channel")
_TRIGGER_KEYS: dict[str, tuple[str, ...]] = {
    "note_on": (*_COMMON_MIDI, "note", "pad", "velocity"),
    "note_off": (*_COMMON_MIDI, "note", "pad"),
    "cc": (*_COMMON_MIDI, "controller", "control", "value"),
    "encoder": (*_COMMON_MIDI, "controller", "control", "encoding", "direction", "acceleration"),
    "program": (*_COMMON_MIDI, "program"),
    "pitch_bend": (*_COMMON_MIDI, "value"),
    "aftertouch": (*_COMMON_MIDI, "note", "pad", "value"),
    "long_press": (*_COMMON_MIDI, "note", "pad", "velocity", "hold_ms"),
    "double_tap": (*_COMMON_MIDI, "note", "pad", "velocity", "window_ms"),
    "chord": (*_COMMON_MIDI, "notes", "pads", "window_ms"),
    "webhook": ("method", "path", "auth"),
    "osc": ("address",),
    "timer": ("interval_ms", "at"),
    "startup": (),
    "event": ("topic",),
}

_COMMON_VARS = frozenset({"binding", "mode", "timestamp", "kind"})
_NESTED = frozenset({"body", "osc", "query", "result", "payload"})
_VARIABLES: dict[str, frozenset[str]] = {
    "note_on": frozenset({"note", "velocity", "channel", "value"}),
    "note_off": frozenset({"note", "velocity", "channel", "value"}),
    "long_press": frozenset({"note", "velocity", "channel", "value", "held_ms"}),
    "double_tap": frozenset({"note", "velocity", "channel", "value"}),
    "chord": frozenset({"notes", "velocity", "channel"}),
    "cc": frozenset({"controller", "value", "channel"}),
    "encoder": frozenset({"controller", "value", "delta", "channel"}),
    "program": frozenset({"program", "value", "channel"}),
    "pitch_bend": frozenset({"value", "channel"}),
    "aftertouch": frozenset({"note", "value", "channel"}),
    "webhook": frozenset({"body", "query", "method", "path"}),
    "osc": frozenset({"osc", "address"}),
    "timer": frozenset(),
    "startup": frozenset(),
    "event": frozenset({"topic", "payload", "source"}),
}


def trigger_variables(kind: str) -> frozenset[str]:
    """The placeholder names a trigger of ``kind`` provides (docs/deck.md)."""
    return _COMMON_VARS | _VARIABLES[kind]


def port_matches(pattern: str, port: str) -> bool:
    """Whether a MIDI port name matches a device's pattern (shell-style, case-sensitive)."""
    return fnmatch.fnmatchcase(port, pattern)


def _show(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the deck"


def _kind(value: Any) -> str:
    return {
        dict: "a table",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a float",
    }.get(type(value), type(value).__name__)
