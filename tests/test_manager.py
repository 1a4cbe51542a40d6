"""The local plugin manager: installs and consent, upgrades, grants, loading into a host,
atomicity under ``kill -9``, and repair of damaged state."""

from __future__ import annotations

import json
import os
import pty
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pkghelp import home, key, pack, wasmdeck

import wasmdeck as wd
from wasmdeck.packages import PluginManager, generate_key

__all__ = ["home", "key"]  # fixtures used by these tests

NETWORK = {"kind": "network", "hosts": ["api.example.com"]}


def _consistent(home: Path) -> list[str]:
    """The registry opens, every row's module file matches, and the doctor finds no damage
    (leftovers of an interrupted write are notes, not damage)."""
    report = PluginManager().check()
    return [line for line in report if not line.startswith("note:")]


# -- installing and consent ------------------------------------------------------


def test_install_list_show_and_run(home: Path, key: Path, tmp_path: Path) -> None:
    path = pack(tmp_path, key, capabilities=["kv", NETWORK], license="MIT")
    result = wasmdeck("install", path, "--yes")
    assert result.returncode == 0, result.stderr
    assert "kv [low risk]" in result.stderr and "network [medium risk]" in result.stderr
    assert "signed by an unknown key" in result.stderr
    assert "granted: kv, network:api.example.com" in result.stdout
    listed = json.loads(wasmdeck("list", "--json").stdout)
    assert [(p["name"], p["version"], p["enabled"]) for p in listed] == [("demo", "1.0.0", True)]
    assert listed[0]["grants"] == ["kv", "network:api.example.com"]
    table = wasmdeck("list").stdout
    assert "demo" in table and "enabled" in table
    shown = wasmdeck("show", "demo")
    assert shown.returncode == 0
    for text in ("demo 1.0.0", "license: MIT", "[low risk]", "network:api.example.com [medium"):
        assert text in shown.stdout, text
    details = json.loads(wasmdeck("show", "demo", "--json").stdout)
    assert details["metadata"]["license"] == "MIT" and details["trust"] == "signed"
    module = home / "modules" / f"{details['digest'].removeprefix('sha256:')}.wasm"
    assert module.is_file()
    with PluginManager().load("demo") as plugin:
        assert plugin.call("ok") == b"ok"
        assert plugin.grants == wd.Grants(["kv", "network:api.example.com"])
    assert wasmdeck("show", "nothing").returncode == 2


def test_install_without_a_terminal_needs_yes_or_grant(
    home: Path, key: Path, tmp_path: Path
) -> None:
    path = pack(tmp_path, key, capabilities=["kv", NETWORK])
    refused = wasmdeck("install", path)
    assert refused.returncode == 2
    assert "pass --yes" in refused.stderr and "--grant" in refused.stderr
    assert json.loads(wasmdeck("list", "--json").stdout) == []
    narrow = wasmdeck("install", path, "--grant", "kv")
    assert narrow.returncode == 0, narrow.stderr
    assert PluginManager().get("demo").grants == wd.Grants(["kv"])
    # A plugin that asks for nothing needs no consent.
    plain = pack(tmp_path, key, name="plain")
    assert wasmdeck("install", plain).returncode == 0


def _interactive(args: list[str], answer: bytes) -> tuple[int, str]:
    """Run the CLI on a pseudo-terminal, answer its question, return (status, output)."""
    code, output = _on_a_terminal(args, answer)
    return code, output.decode(errors="replace")


def _on_a_terminal(
    args: list[str], answer: bytes, *, questions: tuple[tuple[bytes, bytes], ...] = ()
) -> tuple[int, bytes]:
    """Run the CLI on a pseudo-terminal, answer each question (``(prompt, answer)`` in
    turn, then ``[y/N]`` with ``answer``); (status, the bytes it wrote)."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execv(sys.executable, [sys.executable, "-m", "wasmdeck", *args])
    pending = [*questions, (b"[y/N]", answer)]
    output = b""
    asked_at = 0  # answer each prompt once, in order
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
        while pending and pending[0][0] in output[asked_at:]:
            prompt, reply = pending.pop(0)
            asked_at = output.index(prompt, asked_at) + len(prompt)
            os.write(fd, reply)
    if time.monotonic() >= deadline:  # it hung: stop it, the asserts will say so
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output


def _screen(output: bytes, columns: int = 160, lines: int = 60) -> list[str]:
    """What a terminal shows after receiving ``output`` (pyte emulates a VT terminal)."""
    import pyte

    screen = pyte.Screen(columns, lines)
    pyte.ByteStream(screen).feed(output)
    return [line.rstrip() for line in screen.display]


def test_install_asks_on_a_terminal(home: Path, key: Path, tmp_path: Path) -> None:
    path = pack(tmp_path, key, capabilities=["kv"])
    code, output = _interactive(["install", str(path)], b"n\n")
    assert code == 1 and "declined" in output and "kv [low risk]" in output
    assert PluginManager().list() == []
    code, output = _interactive(["install", str(path)], b"y\n")
    assert code == 0, output
    assert PluginManager().get("demo").grants == wd.Grants(["kv"])


# Moves the cursor up and erases lines (ESC and the 8-bit C1 CSI), then reverses the
# rest with a bidi override: what a hostile manifest uses to hide its requests.
_ERASE = "\x1b[1A\x1b[2K\u009b1A\u009b2K" * 12 + "\r\u202e"


def test_the_consent_screen_shows_every_capability_whatever_the_manifest_says(
    home: Path, key: Path, tmp_path: Path
) -> None:
    hostile = [
        "kv",
        {"kind": "process", "commands": ["sh"]},
        {"kind": "network", "hosts": ["evil.example"], "note": _ERASE + "    - kv [low risk]"},
    ]
    path = pack(
        tmp_path,
        key,
        description="a clock\x1b[2J\x1b[H" + _ERASE,
        author="\x1b]0;title\x07\u2066me",
        capabilities=hostile,
    )
    code, output = _on_a_terminal(["install", str(path)], b"y\n")
    assert code == 0, output
    # Not one control character of the manifest reached the terminal.
    for raw in (b"\x1b", "\u009b".encode(), "\u202e".encode(), "\u2066".encode()):
        assert raw not in output
    screen = _screen(output)
    for request in ("kv [low risk]", "process [high risk]", "network [medium risk]"):
        assert any(line.startswith(f"    - {request}") for line in screen), (request, screen)
    granted = {"kv [low risk]", "process:sh [high risk]", "network:evil.example [medium risk]"}
    assert granted <= {line.removeprefix("    - ") for line in screen}, screen
    assert any("\\x1b[2J" in line for line in screen)  # shown, not obeyed
    # What the user saw is exactly what was granted.
    assert PluginManager().get("demo").grants == wd.Grants(
        ["kv", "process:sh", "network:evil.example"]
    )


def test_list_show_and_plugin_messages_are_escaped(home: Path, key: Path, tmp_path: Path) -> None:
    path = pack(tmp_path, key, description="tick\x1b[2J\u202etock", capabilities=["kv"])
    assert wasmdeck("install", path, "--yes").returncode == 0
    for args in (("show", "demo"), ("list",), ("list", "--json"), ("show", "demo", "--json")):
        shown = wasmdeck(*args)
        assert shown.returncode == 0
        assert "\x1b" not in shown.stdout and "\u202e" not in shown.stdout, args


def test_scoped_capabilities_asked_without_scope_need_an_explicit_grant(
    home: Path, key: Path, tmp_path: Path
) -> None:
    path = pack(tmp_path, key, capabilities=["network", "kv"])
    result = wasmdeck("install", path, "--yes")
    assert result.returncode == 0
    assert "grant it with --grant network:SCOPE" in result.stderr
    assert PluginManager().get("demo").grants == wd.Grants(["kv"])


def test_enable_disable_grant_revoke_uninstall(home: Path, key: Path, tmp_path: Path) -> None:
    assert wasmdeck("install", pack(tmp_path, key, capabilities=["kv"]), "--yes").returncode == 0
    assert wasmdeck("disable", "demo").returncode == 0
    assert PluginManager().load_enabled() == []
    with pytest.raises(wd.PluginNotFound, match="disabled"):
        PluginManager().load("demo")
    assert wasmdeck("enable", "demo").returncode == 0
    granted = wasmdeck("grant", "demo", "env:LANG")
    assert granted.returncode == 0 and "[low risk]" in granted.stdout
    assert wasmdeck("grant", "demo", "network:a.example").returncode == 0
    assert wasmdeck("grant", "demo", "network:b.example").returncode == 0
    assert PluginManager().get("demo").grants == wd.Grants(
        ["kv", "env:LANG", "network:a.example", "network:b.example"]
    )
    assert wasmdeck("revoke", "demo", "network:a.example").returncode == 0
    assert wasmdeck("revoke", "demo", "env").returncode == 0  # a bare kind: every scope
    assert PluginManager().get("demo").grants == wd.Grants(["kv", "network:b.example"])
    missing = wasmdeck("revoke", "demo", "process:git")
    assert missing.returncode == 2 and "has no grant" in missing.stderr
    bad = wasmdeck("grant", "demo", "teleport")
    assert bad.returncode == 2 and "unknown capability" in bad.stderr
    assert wasmdeck("grant", "ghost", "kv").returncode == 2
    digest = PluginManager().get("demo").digest
    assert wasmdeck("uninstall", "demo").returncode == 0
    assert PluginManager().list() == []
    assert not (home / "modules" / f"{digest}.wasm").exists()
    again = wasmdeck("uninstall", "demo")
    assert again.returncode == 2 and "not installed" in again.stderr


def test_the_host_loads_enabled_plugins_with_their_grants(
    home: Path, key: Path, tmp_path: Path
) -> None:
    manager = PluginManager()
    manager.install(pack(tmp_path, key, name="one", capabilities=["kv"]), yes=True)
    manager.install(pack(tmp_path, key, name="two"), grants=["env:HOME"])
    manager.install(pack(tmp_path, key, name="off"))
    manager.disable("off")
    with wd.PluginHost() as host:
        loaded = manager.load_into(host)
        assert sorted(p.name for p in loaded) == ["one", "two"] and "off" not in host
        assert host.call("ok", plugin="one") == b"ok"
        assert host.get("one").grants == wd.Grants(["kv"])
        assert host.get("two").grants == wd.Grants(["env:HOME"])
    with wd.PluginHost() as host:  # the same through the host, from $WASMDECK_HOME
        assert sorted(p.name for p in host.load_installed()) == ["one", "two"]
        assert host.call("ok", plugin="two") == b"ok"


# -- upgrades ----------------------------------------------------------------------


def test_upgrade_keeps_grants_until_the_plugin_asks_for_more(
    home: Path, key: Path, tmp_path: Path
) -> None:
    v1 = pack(tmp_path, key, capabilities=["kv"])
    assert wasmdeck("install", v1, "--yes").returncode == 0
    assert wasmdeck("grant", "demo", "env:LANG").returncode == 0
    same = pack(tmp_path, key, version="1.1.0", capabilities=["kv"])
    upgraded = wasmdeck("install", same)  # no --yes needed: nothing new is asked
    assert upgraded.returncode == 0, upgraded.stderr
    assert "upgraded demo 1.1.0" in upgraded.stdout and "asks for nothing new" in upgraded.stderr
    assert PluginManager().get("demo").grants == wd.Grants(["kv", "env:LANG"])
    more = pack(tmp_path, key, version="2.0.0", capabilities=["kv", NETWORK])
    refused = wasmdeck("install", more)
    assert refused.returncode == 2 and "more capabilities than before" in refused.stderr
    assert PluginManager().get("demo").version == "1.1.0"
    assert wasmdeck("install", more, "--yes").returncode == 0
    plugin = PluginManager().get("demo")
    assert plugin.version == "2.0.0"
    assert plugin.grants == wd.Grants(["kv", "env:LANG", "network:api.example.com"])
    # The old module file went with the old version.
    assert len(list((home / "modules").glob("*.wasm"))) == 1


def test_upgrade_signed_by_another_key_is_refused_unless_accepted(
    home: Path, key: Path, tmp_path: Path
) -> None:
    assert wasmdeck("install", pack(tmp_path, key), "--yes").returncode == 0
    other = tmp_path / "keys" / "other.key"
    generate_key(other)
    v2 = pack(tmp_path, other, version="2.0.0")
    refused = wasmdeck("install", v2, "--yes")
    assert refused.returncode == 4 and "--replace-signer" in refused.stderr
    unsigned = pack(tmp_path, None, version="2.0.0")
    refused = wasmdeck("install", unsigned, "--yes", "--allow-unsigned")
    assert refused.returncode == 4 and "is unsigned" in refused.stderr
    assert PluginManager().get("demo").version == "1.0.0"
    assert wasmdeck("install", v2, "--yes", "--replace-signer").returncode == 0
    # A key the user trusts may take over without the flag.
    third = tmp_path / "keys" / "third.key"
    generate_key(third)
    assert wasmdeck("trust", "add", f"{third}.pub", "--name", "New Owner").returncode == 0
    assert wasmdeck("install", pack(tmp_path, third, version="3.0.0"), "--yes").returncode == 0
    assert PluginManager().get("demo").version == "3.0.0"


def test_a_tampered_package_installs_nothing(home: Path, key: Path, tmp_path: Path) -> None:
    data = pack(tmp_path, key).read_bytes()
    for position in (0, 200, len(data) // 2, len(data) - 80, len(data) - 1):
        bad = tmp_path / f"bad{position}.wdpk"
        changed = bytearray(data)
        changed[position] ^= 0x01
        bad.write_bytes(bytes(changed))
        result = wasmdeck("install", bad, "--yes")
        assert result.returncode == 4, (position, result.stderr)
    assert PluginManager().list() == []
    assert list((home / "modules").iterdir()) == []


# -- atomicity -------------------------------------------------------------------


def _install_killed_at(package: Path, point: str) -> None:
    """Start a real install that stops at ``point``, then kill -9 it there."""
    process = subprocess.Popen(
        [sys.executable, "-m", "wasmdeck", "install", str(package), "--yes"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "WASMDECK_TEST_PAUSE": point},
    )
    assert process.stderr is not None
    try:
        for line in process.stderr:
            if line.startswith(b"wasmdeck-test-paused"):
                break
        else:
            pytest.fail(f"the install never reached {point}")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.parametrize(
    ("point", "version"),
    [("module-written", "1.0.0"), ("in-transaction", "1.0.0"), ("committed", "2.0.0")],
)
def test_kill_9_during_an_upgrade_leaves_a_usable_registry(
    home: Path, key: Path, tmp_path: Path, point: str, version: str
) -> None:
    assert wasmdeck("install", pack(tmp_path, key, capabilities=["kv"]), "--yes").returncode == 0
    v2 = pack(tmp_path, key, version="2.0.0", capabilities=["kv"])
    _install_killed_at(v2, point)
    assert _consistent(home) == []
    manager = PluginManager()
    installed = manager.get("demo")
    assert installed.version == version and installed.grants == wd.Grants(["kv"])
    with manager.load("demo") as plugin:
        assert plugin.metadata.version == version and plugin.call("ok") == b"ok"
    # What the kill left behind is cleaned up, and the upgrade then goes through.
    assert wasmdeck("doctor", "--repair").returncode == 0
    assert len(list((home / "modules").iterdir())) == 1
    assert wasmdeck("install", v2, "--yes").returncode == 0
    assert PluginManager().get("demo").version == "2.0.0"


def test_kill_9_at_random_moments_of_installs(home: Path, key: Path, tmp_path: Path) -> None:
    rng = random.Random(5)
    versions = [pack(tmp_path, key, version=f"1.{i}.0", capabilities=["kv"]) for i in range(4)]
    assert wasmdeck("install", versions[0], "--yes").returncode == 0
    seen = set()
    for attempt in range(6):
        target = versions[1 + attempt % 3]
        process = subprocess.Popen(
            [sys.executable, "-m", "wasmdeck", "install", str(target), "--yes"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.05, 0.45))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert _consistent(home) == []
        installed = PluginManager().get("demo")
        seen.add(installed.version)
        with PluginManager().load("demo") as plugin:
            assert plugin.call("ok") == b"ok" and plugin.metadata.version == installed.version
    assert seen  # every state seen was a whole version, old or new


# -- damaged state -----------------------------------------------------------------


def test_a_garbage_registry_gives_a_clear_error_and_is_restored_from_backup(
    home: Path, key: Path, tmp_path: Path
) -> None:
    assert wasmdeck("install", pack(tmp_path, key, capabilities=["kv"]), "--yes").returncode == 0
    database = home / "registry.sqlite3"
    database.write_bytes(os.urandom(8192))
    for args in (("list",), ("show", "demo"), ("install", str(pack(tmp_path, key, name="b")))):
        broken = wasmdeck(*args)
        assert broken.returncode == 4, broken.stderr
        assert "registry" in broken.stderr and "doctor --repair" in broken.stderr
    with pytest.raises(wd.RegistryCorrupt):
        PluginManager().list()
    checked = wasmdeck("doctor")
    assert checked.returncode == 4 and "registry" in checked.stdout
    repaired = wasmdeck("doctor", "--repair")
    assert repaired.returncode == 0 and "restored from registry.sqlite3.bak" in repaired.stdout
    assert list(home.glob("registry.sqlite3.corrupt-*"))
    with PluginManager().load("demo") as plugin:
        assert plugin.call("ok") == b"ok" and plugin.grants == wd.Grants(["kv"])
    assert wasmdeck("doctor").stdout.strip() == "all is well"


def test_a_registry_without_a_usable_backup_starts_empty(
    home: Path, key: Path, tmp_path: Path
) -> None:
    assert wasmdeck("install", pack(tmp_path, key), "--yes").returncode == 0
    database = home / "registry.sqlite3"
    half = database.read_bytes()
    database.write_bytes(half[:100] + b"\xff" * (len(half) - 100))  # header kept, pages gone
    (home / "registry.sqlite3.bak").write_bytes(b"not a database either")
    assert wasmdeck("list").returncode == 4
    repaired = wasmdeck("doctor", "--repair")
    assert repaired.returncode == 0 and "new, empty registry" in repaired.stdout
    assert json.loads(wasmdeck("list", "--json").stdout) == []
    assert wasmdeck("install", pack(tmp_path, key), "--yes").returncode == 0


@pytest.mark.parametrize("damage", ["altered", "missing"])
def test_a_damaged_module_file_is_refused_and_repaired(
    home: Path, key: Path, tmp_path: Path, damage: str
) -> None:
    path = pack(tmp_path, key)
    assert wasmdeck("install", path, "--yes").returncode == 0
    assert wasmdeck("install", pack(tmp_path, key, name="other"), "--yes").returncode == 0
    module = home / "modules" / f"{PluginManager().get('demo').digest}.wasm"
    if damage == "altered":
        data = bytearray(module.read_bytes())
        data[-1] ^= 0x01
        module.write_bytes(bytes(data))
    else:
        module.unlink()
    with pytest.raises(wd.ModuleFileCorrupt, match="doctor --repair"):
        PluginManager().load("demo")
    # One damaged plugin does not keep the others from loading; it is reported.
    loaded = PluginManager().load_enabled()
    assert [p.name for p in loaded] == ["other"]
    assert isinstance(loaded.failures["demo"], wd.ModuleFileCorrupt)
    loaded[0].close()
    with wd.PluginHost() as host:
        assert [p.name for p in host.load_installed()] == ["other"]
    checked = wasmdeck("doctor")
    assert checked.returncode == 4 and "plugin 'demo'" in checked.stdout
    repaired = wasmdeck("doctor", "--repair")
    assert repaired.returncode == 0 and "dropped 1 plugin(s)" in repaired.stdout
    assert [p.name for p in PluginManager().list()] == ["other"]
    PluginManager().load("other").close()
    assert wasmdeck("install", path, "--yes").returncode == 0
    PluginManager().load("demo").close()


def test_a_tampered_registry_row_is_caught_at_load(home: Path, key: Path, tmp_path: Path) -> None:
    path = pack(tmp_path, key, capabilities=["kv"])
    assert wasmdeck("install", path, "--yes").returncode == 0
    with sqlite3.connect(home / "registry.sqlite3") as conn:
        (manifest,) = conn.execute("SELECT manifest FROM plugins").fetchone()
        forged = manifest.replace(b"demo for tests", b"demo for jests")
        conn.execute("UPDATE plugins SET manifest = ?", (forged,))
    with pytest.raises(wd.SignatureInvalid):
        PluginManager().load("demo")
    with sqlite3.connect(home / "registry.sqlite3") as conn:
        conn.execute("UPDATE plugins SET manifest = ?", (b"{not json",))
    broken = wasmdeck("show", "demo")
    assert broken.returncode == 4 and "registry row is damaged" in broken.stderr
    repaired = wasmdeck("doctor", "--repair")
    assert repaired.returncode == 0 and "dropped 1" in repaired.stdout


def test_a_plugin_importing_gated_host_functions_packs_and_needs_its_grant(
    home: Path, key: Path, tmp_path: Path
) -> None:
    from hostcall import host_call_module

    wasm = tmp_path / "caller.wasm"
    wasm.write_bytes(host_call_module("http_request", {"url": "https://api.example.com/"}))
    package = tmp_path / "caller.wdpk"
    assert wasmdeck("pack", wasm, "--out", package, "--key", key).returncode == 0
    refused = wasmdeck("install", package, "--yes")
    assert refused.returncode == 2 and "--grant network:HOST" in refused.stderr
    assert PluginManager().list() == []
    granted = wasmdeck("install", package, "--grant", "network:api.example.com")
    assert granted.returncode == 0, granted.stderr
    PluginManager().load("host-caller").close()


# -- races and damage ----------------------------------------------------------------


class _Paused:
    """A real ``wasmdeck install`` stopped at a pause point until ``resume()``."""

    def __init__(self, tmp_path: Path, package: Path, point: str, *args: str) -> None:
        self.resume_file = tmp_path / f"resume-{point}-{package.name}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "wasmdeck", "install", str(package), "--yes", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={
                **os.environ,
                "WASMDECK_TEST_PAUSE": point,
                "WASMDECK_TEST_RESUME": str(self.resume_file),
            },
        )
        assert self.process.stderr is not None
        self.said = b""
        for line in self.process.stderr:
            if line.startswith(b"wasmdeck-test-paused"):
                break
            self.said += line
        else:
            self.process.kill()
            pytest.fail(f"the install never reached {point}: {self.said!r}")

    def resume(self) -> None:
        self.resume_file.touch()

    def finish(self) -> tuple[int, str, str]:
        try:
            out, err = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            pytest.fail("the install did not finish")
        return self.process.returncode, out.decode(), (self.said + err).decode()


def test_concurrent_installs_signed_by_different_keys_cannot_both_succeed(
    home: Path, key: Path, tmp_path: Path
) -> None:
    other = tmp_path / "keys" / "other.key"
    generate_key(other)
    mine = pack(tmp_path, key, out="mine.wdpk")
    theirs = pack(tmp_path, other, out="theirs.wdpk")
    # The first holds the registry lock; the second has made its plan (nothing was
    # installed then) and waits for the lock.
    first = _Paused(tmp_path, mine, "module-written")
    second = _Paused(tmp_path, theirs, "before-lock")
    second.resume()
    first.resume()
    assert first.finish()[0] == 0
    code, _, err = second.finish()
    assert code == 4 and "--replace-signer" in err, err
    installed = PluginManager().get("demo")
    assert installed.key_id == load_key_id(key)


def load_key_id(keyfile: Path) -> str:
    from wasmdeck.packages import load_signing_key

    return load_signing_key(keyfile).public.key_id


def test_a_downgrade_is_refused_unless_asked_for(home: Path, key: Path, tmp_path: Path) -> None:
    assert wasmdeck("install", pack(tmp_path, key, version="0.3.0"), "--yes").returncode == 0
    old = pack(tmp_path, key, version="0.1.0")
    refused = wasmdeck("install", old, "--yes")
    assert refused.returncode == 4 and "--allow-downgrade" in refused.stderr
    assert PluginManager().get("demo").version == "0.3.0"
    with pytest.raises(wd.DowngradeRefused):
        PluginManager().install(old, yes=True)
    done = wasmdeck("install", old, "--yes", "--allow-downgrade")
    assert done.returncode == 0, done.stderr
    assert "downgraded demo 0.1.0" in done.stdout and "upgraded" not in done.stdout
    assert "downgrade 0.3.0 -> demo 0.1.0" in done.stderr
    assert PluginManager().get("demo").version == "0.1.0"
    again = wasmdeck("install", old, "--yes")
    assert again.returncode == 0 and "reinstalled demo 0.1.0" in again.stdout


def test_a_registry_deleted_during_an_install_loses_no_plugin(
    home: Path, key: Path, tmp_path: Path
) -> None:
    assert wasmdeck("install", pack(tmp_path, key, name="keep"), "--yes").returncode == 0
    kept = home / "modules" / f"{PluginManager().get('keep').digest}.wasm"
    backup = (home / "registry.sqlite3.bak").read_bytes()
    install = _Paused(tmp_path, pack(tmp_path, key, name="new"), "module-written")
    (home / "registry.sqlite3").unlink()
    install.resume()
    code, _, err = install.finish()
    assert code == 4 and "missing" in err and "doctor --repair" in err, err
    assert (home / "registry.sqlite3.bak").read_bytes() == backup  # not overwritten
    listed = wasmdeck("list")
    assert listed.returncode == 4 and "missing" in listed.stderr
    assert kept.is_file()
    repaired = wasmdeck("doctor", "--repair")
    assert repaired.returncode == 0 and "restored from registry.sqlite3.bak" in repaired.stdout
    assert kept.is_file()
    assert [p.name for p in PluginManager().list()] == ["keep"]
    with PluginManager().load("keep") as plugin:
        assert plugin.call("ok") == b"ok"


def _make_read_only(path: Path) -> None:
    if os.geteuid() == 0:  # root writes through permission bits: the file is made immutable
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available here")
    else:
        path.chmod(0o444)


def _make_writable(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    path.chmod(0o600)


def test_a_read_only_registry_is_reported_as_read_only(
    home: Path, key: Path, tmp_path: Path
) -> None:
    assert wasmdeck("install", pack(tmp_path, key, capabilities=["kv"]), "--yes").returncode == 0
    database = home / "registry.sqlite3"
    _make_read_only(database)
    try:
        assert json.loads(wasmdeck("list", "--json").stdout)[0]["name"] == "demo"
        for args in (
            ("disable", "demo"),
            ("install", str(pack(tmp_path, key, name="other")), "--yes"),
        ):
            result = wasmdeck(*args)
            assert result.returncode != 0
            assert "read-only" in result.stderr and "damaged" not in result.stderr, result.stderr
        with pytest.raises(wd.StateReadOnly):
            PluginManager().disable("demo")
    finally:
        _make_writable(database)
    assert PluginManager().get("demo").enabled
    assert _consistent(home) == []


# -- kv belongs to the installed identity ------------------------------------------


def _kv_package(tmp_path: Path, keyfile: Path, function: str, request: dict[str, object],
                version: str) -> Path:  # fmt: skip
    from hostcall import host_call_module

    from wasmdeck.packages import build_package, load_signing_key

    wasm = tmp_path / f"obs-{function}-{version}-{keyfile.stem}.wasm"
    wasm.write_bytes(host_call_module(function, request, name="obs", version=version))
    target = wasm.with_suffix(".wdpk")
    target.write_bytes(build_package(wasm, key=load_signing_key(keyfile)).encode())
    return target


def test_kv_data_belongs_to_the_installed_plugin_and_its_signer(
    home: Path, key: Path, tmp_path: Path
) -> None:
    from hostcall import host_call_module

    manager = PluginManager()
    secret = {"key": "password", "value": "hunter2"}
    manager.install(_kv_package(tmp_path, key, "kv_set", secret, "1.0.0"), grants=["kv"])
    with manager.load("obs") as plugin:
        assert json.loads(plugin.call("go")) == {}
    # Its next version (same signer) reads what it stored.
    reader = _kv_package(tmp_path, key, "kv_get", {"key": "password"}, "1.1.0")
    manager.install(reader, grants=["kv"])
    with manager.load("obs") as plugin:
        assert json.loads(plugin.call("go")) == {"value": "hunter2"}
    # A module that merely declares the name "obs" reads nothing of it...
    impostor = host_call_module("kv_get", {"key": "password"}, name="obs", version="9.0.0")
    with wd.Plugin(impostor, grants=["kv"]) as plugin:
        assert json.loads(plugin.call("go")) == {"value": None}
    (tmp_path / "obs.wasm").write_bytes(impostor)
    with wd.Plugin(tmp_path / "obs.wasm", grants=["kv"]) as plugin:
        assert json.loads(plugin.call("go")) == {"value": None}
    # ...and neither does a package of that name signed by another key.
    other = tmp_path / "keys" / "other.key"
    generate_key(other)
    taken = _kv_package(tmp_path, other, "kv_get", {"key": "password"}, "2.0.0")
    manager.install(taken, grants=["kv"], replace_signer=True)
    with manager.load("obs") as plugin:
        assert json.loads(plugin.call("go")) == {"value": None}


# -- a user's rough edges ------------------------------------------------------------


def _host_caller(
    tmp_path: Path, key: Path, function: str, request: dict[str, object], **metadata: object
) -> Path:
    """A signed package of a module that makes one host call (tests/hostcall.py)."""
    from hostcall import host_call_module

    from wasmdeck.packages import build_package, load_signing_key

    wasm = tmp_path / f"{function}.wasm"
    wasm.write_bytes(host_call_module(function, request, **metadata))
    target = tmp_path / f"{function}.wdpk"
    target.write_bytes(build_package(wasm, key=load_signing_key(key)).encode())
    return target


def test_a_package_asking_for_network_without_a_host_is_installable(
    home: Path, key: Path, tmp_path: Path
) -> None:
    package = _host_caller(
        tmp_path, key, "http_request", {"url": "http://127.0.0.1:9/"}, capabilities=["network"]
    )
    refused = wasmdeck("install", package, "--yes")
    assert refused.returncode == 2, refused.stderr  # advice, not "invalid plugin"
    assert "without saying which" in refused.stderr and "--grant network:HOST" in refused.stderr
    assert PluginManager().list() == []
    # On a terminal, the consent step asks for the scope.
    code, output = _on_a_terminal(
        ["install", str(package)], b"y\n", questions=((b"grant network to", b"127.0.0.1\n"),)
    )
    text = output.decode(errors="replace")
    assert code == 0, text
    assert "- network:127.0.0.1 [medium risk]" in text
    assert PluginManager().get("host-caller").grants == wd.Grants(["network:127.0.0.1"])
    assert wasmdeck("uninstall", "host-caller").returncode == 0
    granted = wasmdeck("install", package, "--grant", "network:127.0.0.1")
    assert granted.returncode == 0, granted.stderr


def test_revoking_a_needed_capability_marks_the_plugin_not_loadable(
    home: Path, key: Path, tmp_path: Path
) -> None:
    package = _host_caller(tmp_path, key, "http_request", {"url": "http://127.0.0.1:9/"})
    assert wasmdeck("install", package, "--grant", "network:127.0.0.1").returncode == 0
    assert wasmdeck("install", pack(tmp_path, key, name="fine"), "--yes").returncode == 0
    assert json.loads(wasmdeck("list", "--json").stdout)[1]["loadable"] is True
    revoked = wasmdeck("revoke", "host-caller", "network")
    assert revoked.returncode == 0 and "will not load" in revoked.stderr
    listed = json.loads(wasmdeck("list", "--json").stdout)
    assert [(p["name"], p["loadable"]) for p in listed] == [("fine", True), ("host-caller", False)]
    assert "network" in listed[1]["problem"]
    table = wasmdeck("list").stdout
    assert "NOT LOADABLE" in table and "host-caller will not load" in table
    doctor = wasmdeck("doctor")
    assert doctor.returncode == 0 and "'host-caller'" in doctor.stdout
    assert "it will not load" in doctor.stdout
    loaded = PluginManager().load_enabled()
    assert [p.name for p in loaded] == ["fine"] and "host-caller" in loaded.failures
    loaded[0].close()


def test_run_an_installed_plugin_by_name_with_its_configuration_and_secrets(
    home: Path, key: Path, tmp_path: Path
) -> None:
    package = _host_caller(tmp_path, key, "config_get", {})
    assert wasmdeck("install", package).returncode == 0
    assert wasmdeck("config", "host-caller", "url", "ws://127.0.0.1:4455").returncode == 0
    assert wasmdeck("config", "host-caller", "port", "4455").returncode == 0
    secret = wasmdeck("config", "host-caller", "password", "--secret", input=b"s3cret\n")
    assert secret.returncode == 0 and "s3cret" not in secret.stdout + secret.stderr
    shown = wasmdeck("config", "host-caller")
    assert shown.returncode == 0 and "s3cret" not in shown.stdout
    assert 'url = "ws://127.0.0.1:4455"' in shown.stdout and "port = 4455" in shown.stdout
    assert "password = <secret>" in shown.stdout
    assert wasmdeck("config", "host-caller", "password").stdout.strip() == "<secret>"
    secrets = home / "secrets"
    (file,) = secrets.iterdir()
    assert file.stat().st_mode & 0o777 == 0o600 and secrets.stat().st_mode & 0o777 == 0o700
    assert b"s3cret" not in (home / "registry.sqlite3").read_bytes()
    ran = wasmdeck("run", "host-caller", "go")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {
        "value": {"url": "ws://127.0.0.1:4455", "port": 4455, "password": "s3cret"}
    }
    with PluginManager().load("host-caller") as plugin:  # the Python API, the same
        assert json.loads(plugin.call("go"))["value"]["password"] == "s3cret"
    assert wasmdeck("config", "host-caller", "port", "--unset").returncode == 0
    assert "port" not in wasmdeck("config", "host-caller").stdout
    refused = wasmdeck("run", "host-caller", "go", "--grant", "kv")
    assert refused.returncode == 2 and "wasmdeck grant" in refused.stderr
    missing = wasmdeck("run", "nothing-installed", "go")
    assert missing.returncode == 2 and "not installed" in missing.stderr
    assert wasmdeck("uninstall", "host-caller").returncode == 0
    assert list(secrets.iterdir()) == []


def test_run_a_package_file(home: Path, key: Path, tmp_path: Path) -> None:
    assert wasmdeck("trust", "add", f"{key}.pub", "--name", "Me").returncode == 0
    ran = wasmdeck("run", pack(tmp_path, key), "ok")
    assert ran.returncode == 0 and ran.stdout == "ok", ran.stderr
    unsigned = wasmdeck("run", pack(tmp_path, None), "ok")
    assert unsigned.returncode == 4 and "unsigned" in unsigned.stderr
