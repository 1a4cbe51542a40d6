"""``wasmdeck test``: a project's test cases, run against its built plugin.

A project's ``tests.json`` lists cases; they run in order on one plugin
instance (so state carries from case to case, as it would between triggers)::

    {"config": {"greeting": "Hi $who"},
     "cases": [
       {"name": "greets", "action": "greet", "params": {"who": "Ann"},
        "context": {"velocity": 100}, "json": {"text": "Hi Ann", "greeted": 1}},
       {"action": "greet", "params": {"who": ""}, "error": "greet needs a non-empty 'who'"},
       {"action": "hello", "output": "hello from my-plugin"}]}

A case expects exactly one of ``output`` (the output as text), ``json``
(the output parsed as JSON) or ``error`` (the message the plugin reports),
and may expect ``events``: what the call published, in order, each
``{"topic": ..., "payload": ...}``. The plugin runs on its own, with the
document's ``grants``: what it publishes reaches no subscriber and is kept
for the cases to compare (a trigger plugin's poll, docs/teamwork.md);
calling another plugin answers ``unavailable``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._context import TriggerContext
from .._errors import HostRequestError, PluginReportedError, WasmdeckError
from ..runtime import Plugin
from ._project import ProjectError

__all__ = ["CASES_FILE", "CaseResult", "load_cases", "run_cases"]

CASES_FILE = "tests.json"
_EXPECT = ("output", "json", "error")


@dataclass(frozen=True)
class CaseResult:
    name: str
    passed: bool
    detail: str  # what went wrong, empty when it passed


def load_cases(project_root: Path) -> dict[str, Any]:
    """Read and check ``tests.json``; ProjectError says what is wrong with it."""
    path = project_root / CASES_FILE
    if not path.is_file():
        raise ProjectError(f"{project_root} has no {CASES_FILE} with test cases")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{path} is not valid JSON: {exc}") from None
    cases = document.get("cases") if isinstance(document, dict) else None
    if not isinstance(document, dict) or not isinstance(cases, list) or not cases:
        raise ProjectError(f'{path} must be an object with a non-empty list of "cases"')
    for index, case in enumerate(cases, 1):
        where = f"{path}: case {index}"
        if not isinstance(case, dict) or not isinstance(case.get("action"), str):
            raise ProjectError(f'{where} needs an "action" (a string)')
        expected = [key for key in _EXPECT if key in case]
        if len(expected) != 1:
            raise ProjectError(f"{where} must expect exactly one of {', '.join(_EXPECT)}")
        if "error" in case and not isinstance(case["error"], str):
            raise ProjectError(f'{where}: "error" must be the expected message (a string)')
        events = case.get("events", [])
        if not isinstance(events, list) or not all(
            isinstance(e, dict)
            and isinstance(e.get("topic"), str)
            and set(e) <= {"topic", "payload"}
            for e in events
        ):
            raise ProjectError(
                f'{where}: "events" must be a list of {{"topic", "payload"}} objects'
            )
    return document


class _Kept:
    """The plugin's links (runtime.HostLinks) under test: its events are kept."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def publish(self, topic: str, payload: object, deadline: float) -> int:
        self.events.append({"topic": topic, "payload": payload})
        return 0  # delivered to no one

    def call(self, plugin: str, action: str, params: Mapping[str, Any], deadline: float) -> bytes:
        raise HostRequestError(
            "unavailable", f"plugin_call: under `wasmdeck test` there is no plugin {plugin!r}"
        )

    def state_changed(self, namespace: str, key: str, version: int, deleted: bool) -> None:
        pass


def run_cases(wasm: Path, document: Mapping[str, Any]) -> Iterator[CaseResult]:
    """Run each case in order on one plugin, yielding its result as it finishes."""
    with Plugin(wasm, config=document.get("config"), grants=document.get("grants", ())) as plugin:
        kept = _Kept()
        plugin.links = kept
        for index, case in enumerate(document["cases"], 1):
            before = len(kept.events)
            result = _run_case(plugin, case, case.get("name") or f"case {index} ({case['action']})")
            if result.passed and "events" in case:
                result = _compare_events(result.name, case["events"], kept.events[before:])
            yield result


def _compare_events(
    name: str, expected: list[dict[str, Any]], published: list[dict[str, Any]]
) -> CaseResult:
    wanted = [{"topic": e["topic"], "payload": e.get("payload")} for e in expected]
    if published == wanted:
        return CaseResult(name, True, "")
    return CaseResult(
        name, False, f"expected events {json.dumps(wanted)}, published {json.dumps(published)}"
    )


def _run_case(plugin: Plugin, case: Mapping[str, Any], name: str) -> CaseResult:
    try:
        context = TriggerContext.from_dict(case.get("context") or {})
        output = plugin.call(case["action"], case.get("params"), context)
    except PluginReportedError as exc:
        if "error" in case:
            if exc.message == case["error"]:
                return CaseResult(name, True, "")
            return CaseResult(name, False, f"expected error {case['error']!r}, got {exc.message!r}")
        return CaseResult(name, False, f"unexpected error: {exc.message}")
    except (WasmdeckError, ValueError) as exc:
        return CaseResult(name, False, f"{type(exc).__name__}: {exc}")
    if "error" in case:
        return CaseResult(name, False, f"expected error {case['error']!r}, got output {output!r}")
    if "output" in case:
        text = output.decode("utf-8", "replace")
        if text == case["output"]:
            return CaseResult(name, True, "")
        return CaseResult(name, False, f"expected output {case['output']!r}, got {text!r}")
    try:
        value = json.loads(output)
    except ValueError:
        return CaseResult(name, False, f"expected JSON, got {output!r}")
    if value == case["json"]:
        return CaseResult(name, True, "")
    return CaseResult(name, False, f"expected {json.dumps(case['json'])}, got {json.dumps(value)}")
