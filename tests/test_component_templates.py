"""The Python plugin templates, built with componentize-py and run like any plugin."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from componentgen import COMPILED, ROOT, build_python

import wasmdeck
from wasmdeck import (
    ActionNotFound,
    FuelLimitExceeded,
    Limits,
    MemoryLimitExceeded,
    PluginReportedError,
    Runtime,
    TriggerContext,
)
from wasmdeck.build import TEMPLATES, ProjectError, new_project

TEMPLATE_BUILDS = ROOT / ".cache" / "test-templates"


@pytest.fixture(scope="session")
def runtime() -> Runtime:
    return Runtime(cache=COMPILED)


@pytest.fixture(scope="session", params=TEMPLATES)
def template(request: pytest.FixtureRequest) -> tuple[str, Path]:
    """(template name, its component): the template rendered as plugin ``py-<template>``."""
    name = request.param
    project = TEMPLATE_BUILDS / name
    if project.exists():
        shutil.rmtree(project)
    new_project(project, f"py-{name}", "python", name)
    return name, build_python(project)


def test_new_refuses_to_overwrite(tmp_path: Path) -> None:
    new_project(tmp_path, "x", "python", "minimal")
    with pytest.raises(ProjectError, match="already exists"):
        new_project(tmp_path, "x", "python", "json")
    with pytest.raises(ProjectError, match="unknown template 'nope'"):
        new_project(tmp_path / "y", "x", "python", "nope")


def test_template_loads_with_its_metadata(template: tuple[str, Path], runtime: Runtime) -> None:
    name, wasm = template
    plugin = wasmdeck.Plugin(wasm, runtime=runtime)
    assert plugin.abi == "component-v1"
    assert plugin.name == f"py-{name}"
    assert plugin.metadata.version == "0.1.0"
    assert plugin.metadata.actions


EXPECTED = {
    "minimal": ("hello", {}, b"hello from py-minimal"),
    "json": ("scale", {"max": 254}, b'{"value":200,"velocity":100}'),
    "template": ("greet", {"who": "world"}, b'{"text":"Hello, world!","greeted":1}'),
}
BAD_PARAMS = {
    "minimal": None,
    "json": ("scale", {"max": 0}, "max must be a positive integer, not 0"),
    "template": ("greet", {"who": ""}, "greet needs a non-empty 'who'"),
}


def test_template_routes_and_answers(template: tuple[str, Path], runtime: Runtime) -> None:
    name, wasm = template
    plugin = wasmdeck.Plugin(wasm, runtime=runtime)
    action, params, output = EXPECTED[name]
    assert plugin.call(action, params, TriggerContext(velocity=100)) == output
    with pytest.raises(ActionNotFound):
        plugin.call("no-such-action")


def test_template_errors(template: tuple[str, Path], runtime: Runtime) -> None:
    name, wasm = template
    if BAD_PARAMS[name] is None:
        pytest.skip("the minimal template takes no params")
    action, params, message = BAD_PARAMS[name]  # type: ignore[misc]
    plugin = wasmdeck.Plugin(wasm, runtime=runtime)
    with pytest.raises(PluginReportedError) as caught:
        plugin.call(action, params)
    assert caught.value.message == message
    assert caught.value.plugin == f"py-{name}" and caught.value.action == action


def test_template_limits_and_containment(template: tuple[str, Path], runtime: Runtime) -> None:
    name, wasm = template
    action, params, output = EXPECTED[name]
    # The budget applies to starting the instance too (CPython's start-up).
    with pytest.raises(FuelLimitExceeded, match="ran out of fuel"):
        starved = wasmdeck.Plugin(wasm, runtime=runtime, limits=Limits(fuel=2_000))
        starved.call(action, params, TriggerContext(velocity=100))
    with pytest.raises(MemoryLimitExceeded, match="initial memory is larger"):
        wasmdeck.Plugin(wasm, runtime=runtime, limits=Limits(max_memory=1024 * 1024))
    plugin = wasmdeck.Plugin(wasm, runtime=runtime)
    assert plugin.call(action, params, TriggerContext(velocity=100)) == output


def test_template_config_and_log(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    project = TEMPLATE_BUILDS / "template"
    wasm = build_python(project) if project.exists() else None
    if wasm is None:
        pytest.skip("built by the parametrized tests")
    caplog.set_level("INFO", logger="wasmdeck.plugin")
    plugin = wasmdeck.Plugin(wasm, runtime=runtime, config={"greeting": "Hi $who"})
    out = json.loads(plugin.call("greet", {"who": "Ann"}, TriggerContext(velocity=9)))
    assert out == {"text": "Hi Ann", "greeted": 1}
    assert json.loads(plugin.call("stats")) == {"greeted": 1}
    assert "greeted Ann (velocity 9)" in [r.getMessage() for r in caplog.records]


async def test_template_async(template: tuple[str, Path], runtime: Runtime) -> None:
    import asyncio

    name, wasm = template
    action, params, output = EXPECTED[name]
    plugin = wasmdeck.Plugin(wasm, runtime=runtime)
    context = TriggerContext(velocity=100)
    results = await asyncio.gather(*(plugin.call_async(action, params, context) for _ in range(3)))
    if name == "template":
        assert sorted(json.loads(r)["greeted"] for r in results) == [1, 2, 3]
    else:
        assert results == [output] * 3
