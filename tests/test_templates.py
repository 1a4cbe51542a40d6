"""Every language x every template: generated, built from source, run.

``wasmdeck new`` renders the template, ``wasmdeck build``'s library half
builds it with the language's real toolchain, and the plugin must answer
the same way in every language: the templates share their behaviour and
their test cases (``sdk/common/templates/*/tests.json``). A language added
to ``wasmdeck.toolchains.LANGUAGES`` is tested here without further ado.
The ``trigger`` template publishes from its poll, so it runs in a host,
granted to publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wasmdeck
from wasmdeck import (
    ActionNotFound,
    FuelLimitExceeded,
    Limits,
    PluginReportedError,
    TriggerContext,
)
from wasmdeck.host import PluginHost
from wasmdeck.toolchains import (
    LANGUAGES,
    TEMPLATES,
    BuildError,
    ProjectError,
    build_project,
    new_project,
)
from wasmdeck.toolchains._cases import load_cases, run_cases

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = ROOT / ".cache" / "test-projects"

# (action, params, context) -> output: the same in every language.
EXPECTED = {
    "minimal": ("hello", {}, {}, "hello from {name}"),
    "json": ("scale", {"max": 254}, {"velocity": 100}, '{"value":200,"velocity":100}'),
    "template": (
        "greet",
        {"who": "world"},
        {"velocity": 3},
        '{"text":"Hello, world!","greeted":1}',
    ),
    "trigger": ("tick", {}, {}, '{"n":1}'),
}


@contextlib.contextmanager
def loaded(template: str, wasm: Path, **options: Any) -> Iterator[wasmdeck.Plugin]:
    """The template's plugin; the trigger template's in a host, granted to publish."""
    if template != "trigger":
        with wasmdeck.Plugin(wasm, **options) as plugin:
            yield plugin
        return
    with PluginHost() as host:
        yield host.add(wasmdeck.Plugin(wasm, grants=["events:publish:*"], **options))


@pytest.fixture(
    scope="session",
    params=[(lang, t) for lang in LANGUAGES for t in TEMPLATES],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def built(request: pytest.FixtureRequest) -> tuple[str, str, Path, Path]:
    """(language, template, project directory, built .wasm), once per run."""
    lang, template = request.param
    project = PROJECTS / lang / template
    if project.exists():
        shutil.rmtree(project)
    name = f"{lang}-{template}".replace("assemblyscript", "as")
    new_project(project, name, lang, template)
    try:
        wasm = build_project(project)
    except BuildError as exc:
        pytest.fail(f"building the {lang} {template} template failed: {exc}", pytrace=False)
    return lang, template, project, wasm


def test_template_builds_and_answers(built: tuple[str, str, Path, Path]) -> None:
    _, template, project, wasm = built
    with loaded(template, wasm) as plugin:
        name = project.joinpath("wasmdeck.toml").read_text().split('name = "')[1].split('"')[0]
        assert plugin.name == name and plugin.metadata.version == "0.1.0"
        action, params, context, output = EXPECTED[template]
        assert plugin.metadata.actions[0].name == action
        if template == "trigger":  # the kit's helper made it one
            assert plugin.metadata.raw["type"] == "trigger"
            assert plugin.metadata.raw["poll"] == {"action": "tick", "interval_ms": 1000}
        got = plugin.call(action, params, TriggerContext.from_dict(context))
        assert got.decode() == output.replace("{name}", name)
        with pytest.raises(ActionNotFound):
            plugin.call("no-such-action")


def test_template_cases_pass(built: tuple[str, str, Path, Path]) -> None:
    """The tests.json the author gets passes, case by case."""
    _, _, project, wasm = built
    results = list(run_cases(wasm, load_cases(project)))
    failures = [f"{r.name}: {r.detail}" for r in results if not r.passed]
    assert not failures and len(results) >= 1


def test_template_errors_reach_the_user(built: tuple[str, str, Path, Path]) -> None:
    _, template, _, wasm = built
    if template in ("minimal", "trigger"):
        return  # one action, no params: nothing to get wrong
    plugin = wasmdeck.Plugin(wasm)
    action, params, message = {
        "json": ("scale", {"max": 0}, "max must be a positive integer, not 0"),
        "template": ("greet", {"who": ""}, "greet needs a non-empty 'who'"),
    }[template]
    with pytest.raises(PluginReportedError) as caught:
        plugin.call(action, params)
    assert caught.value.message == message and caught.value.action == action
    assert plugin.call(*EXPECTED[template][:2]).startswith(b"{")  # and it carries on


def test_template_logs_and_reads_config(
    built: tuple[str, str, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    _, template, _, wasm = built
    if template != "template":
        return
    caplog.set_level("INFO", logger="wasmdeck.plugin")
    plugin = wasmdeck.Plugin(wasm, config={"greeting": "Yo $who"})
    out = json.loads(plugin.call("greet", {"who": "Ann"}, TriggerContext(velocity=9)))
    assert out == {"text": "Yo Ann", "greeted": 1}
    assert json.loads(plugin.call("stats")) == {"greeted": 1}
    assert "greeted Ann (velocity 9)" in [r.getMessage() for r in caplog.records]


def test_template_limits_and_containment(built: tuple[str, str, Path, Path]) -> None:
    """A starved plugin stops with a typed error; the same plugin then works again."""
    _, template, _, wasm = built
    action, params, context, _ = EXPECTED[template]
    # The budget covers starting an instance too (a runtime's start-up, init).
    with (
        pytest.raises(FuelLimitExceeded, match="ran out of fuel"),
        loaded(template, wasm, limits=Limits(fuel=2_000)) as starved,
    ):
        starved.call(action, params, TriggerContext.from_dict(context))
    with loaded(template, wasm) as plugin:
        assert plugin.call(action, params, TriggerContext.from_dict(context))


async def test_template_async(built: tuple[str, str, Path, Path]) -> None:
    _, template, project, wasm = built
    action, params, context, output = EXPECTED[template]
    hit = TriggerContext.from_dict(context)
    with loaded(template, wasm) as plugin:
        results = await asyncio.gather(*(plugin.call_async(action, params, hit) for _ in range(3)))
    if template in ("template", "trigger"):  # the instance counts its greetings, its polls
        key = "greeted" if template == "template" else "n"
        assert sorted(json.loads(r)[key] for r in results) == [1, 2, 3]
    else:
        name = project.joinpath("wasmdeck.toml").read_text().split('name = "')[1].split('"')[0]
        assert results == [output.replace("{name}", name).encode()] * 3


def test_trigger_template_cases_check_what_it_publishes(
    built: tuple[str, str, Path, Path], tmp_path: Path
) -> None:
    """``wasmdeck test`` keeps what a case's call published (``events``)."""
    lang, template, project, wasm = built
    if (lang, template) != ("c", "trigger"):
        return  # the same in every language: the cases above pass in each
    cases = load_cases(project)
    topic = cases["cases"][0]["events"][0]["topic"]
    cases["cases"][0]["events"] = [{"topic": topic, "payload": {"n": 7}}]
    [first, second] = run_cases(wasm, cases)
    assert not first.passed and second.passed
    assert first.detail == (
        f'expected events [{{"topic": "{topic}", "payload": {{"n": 7}}}}], '
        f'published [{{"topic": "{topic}", "payload": {{"n": 1}}}}]'
    )
    bad = {"cases": [{"action": "tick", "json": {}, "events": [{"payload": 1}]}]}
    (tmp_path / "tests.json").write_text(json.dumps(bad))
    with pytest.raises(ProjectError, match='case 1: "events" must be a list of'):
        load_cases(tmp_path)


def wasmdeck_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "wasmdeck", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.mark.toolchain  # the CLI builds in a subprocess
def test_cli_new_build_test(tmp_path: Path) -> None:
    """The two commands a plugin author runs, as they run them (C: the quickest build)."""
    created = wasmdeck_cli("new", "pad-hello", "--lang", "c", "--template", "json", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    project = tmp_path / "pad-hello"
    assert {p.name for p in project.iterdir()} >= {"wasmdeck.toml", "tests.json", "plugin.c"}
    built = wasmdeck_cli("build", str(project))
    assert built.returncode == 0, built.stderr
    wasm = Path(built.stdout.strip().splitlines()[-1])
    assert wasm == project / "build" / "pad-hello.wasm" and wasm.is_file()
    tested = wasmdeck_cli("test", str(project), "--no-build")
    assert tested.returncode == 0 and tested.stdout.splitlines()[-1] == "4 passed, 0 failed"
    ran = wasmdeck_cli(
        "run", str(wasm), "scale", "--params", '{"max": 10}', "--context", '{"velocity": 127}'
    )
    assert ran.stdout == '{"value":10,"velocity":127}'


@pytest.mark.toolchain  # the CLI builds in a subprocess
def test_cli_test_reports_failures(tmp_path: Path) -> None:
    project = tmp_path / "p"
    new_project(project, "p", "c", "minimal")
    cases = json.loads((project / "tests.json").read_text())
    cases["cases"].append({"name": "wrong on purpose", "action": "hello", "output": "bye"})
    (project / "tests.json").write_text(json.dumps(cases))
    tested = wasmdeck_cli("test", str(project))
    assert tested.returncode == 1
    assert "FAIL  wrong on purpose: expected output 'bye', got 'hello from p'" in tested.stdout
    assert tested.stdout.splitlines()[-1] == "1 passed, 1 failed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["new", "Bad_Name", "--lang", "c"], "is not a valid plugin name"),
        (["new", "ok", "--lang", "cobol"], "invalid choice: 'cobol'"),
        (["new", "ok", "--lang", "c", "--template", "huge"], "invalid choice: 'huge'"),
        (["build", "."], "is not a plugin project: it has no wasmdeck.toml"),
    ],
)
def test_cli_refusals(tmp_path: Path, args: list[str], message: str) -> None:
    result = wasmdeck_cli(*args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr


def test_new_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = wasmdeck_cli("new", "x", "--lang", "c", "--dir", str(tmp_path))
    assert (
        result.returncode == 2 and "already exists and is not an empty directory" in result.stderr
    )
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.toolchain  # the CLI builds in a subprocess
def test_build_error_comes_through_readably(tmp_path: Path) -> None:
    project = tmp_path / "broken"
    new_project(project, "broken", "c", "minimal")
    (project / "plugin.c").write_text('#include "wasmdeck.h"\nint wasmdeck_execute(oops) {}\n')
    result = wasmdeck_cli("build", str(project))
    assert result.returncode == 1
    assert "plugin.c:2" in result.stderr and "error" in result.stderr
    assert not (project / "build" / "broken.wasm").exists()
