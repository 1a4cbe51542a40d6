"""The trust store, trust levels, policies, wrong and revoked keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pkghelp import home, key, pack, wasmdeck

import wasmdeck as wd
from wasmdeck.packages import PluginManager, TrustStore, generate_key, load_package

__all__ = ["home", "key"]  # fixtures used by these tests


def _key_id(keyfile: Path) -> str:
    return keyfile.with_name(keyfile.name + ".pub").read_text().split()[2]


@pytest.fixture
def packages(home: Path, key: Path, tmp_path: Path) -> dict[str, Path]:
    """One package per trust level: verified (key trusted as Acme), signed, unsigned."""
    stranger = tmp_path / "keys" / "stranger.key"
    generate_key(stranger)
    TrustStore().add(wd.load_public_key(f"{key}.pub"), "Acme")
    return {
        "verified": pack(tmp_path, key, name="by-acme"),
        "signed": pack(tmp_path, stranger, name="by-stranger"),
        "unsigned": pack(tmp_path, None, name="by-nobody"),
    }


ALLOWED = {
    "require-verified": {"verified"},
    "allow-signed": {"verified", "signed"},
    "allow-unsigned": {"verified", "signed", "unsigned"},
}


@pytest.mark.parametrize("policy", list(ALLOWED))
def test_each_policy_allows_exactly_its_trust_levels(
    packages: dict[str, Path], policy: str
) -> None:
    for level, path in packages.items():
        assert wd.open_package(path).verdict.level.label == level
        if level in ALLOWED[policy]:
            with load_package(path, policy=policy) as plugin:
                assert plugin.call("ok") == b"ok"
        else:
            with pytest.raises(wd.PolicyRefused, match=f"the policy is {policy}"):
                load_package(path, policy=policy)


def test_the_default_policy_is_allow_signed_and_is_a_stored_setting(
    packages: dict[str, Path],
) -> None:
    assert TrustStore().policy is wd.Policy.ALLOW_SIGNED
    load_package(packages["signed"]).close()
    with pytest.raises(wd.PolicyRefused, match="unsigned and the policy is allow-signed"):
        load_package(packages["unsigned"])
    assert wasmdeck("trust", "policy").stdout.strip() == "allow-signed"
    assert wasmdeck("trust", "policy", "require-verified").returncode == 0
    assert TrustStore().policy is wd.Policy.REQUIRE_VERIFIED
    with pytest.raises(wd.PolicyRefused, match="trust its key"):
        load_package(packages["signed"])
    load_package(packages["verified"]).close()
    bad = wasmdeck("trust", "policy", "anything-goes")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_install_follows_the_policy_and_its_escape_hatches(packages: dict[str, Path]) -> None:
    refused = wasmdeck("install", packages["unsigned"], "--yes")
    assert refused.returncode == 4 and "--allow-unsigned" in refused.stderr
    assert wasmdeck("install", packages["unsigned"], "--yes", "--allow-unsigned").returncode == 0
    assert wasmdeck("trust", "policy", "require-verified").returncode == 0
    refused = wasmdeck("install", packages["signed"], "--yes")
    assert refused.returncode == 4 and "require-verified" in refused.stderr
    ok = wasmdeck("install", packages["signed"], "--yes", "--policy", "allow-signed")
    assert ok.returncode == 0, ok.stderr
    assert wasmdeck("install", packages["verified"], "--yes").returncode == 0
    listed = {p["name"]: p for p in json.loads(wasmdeck("list", "--json").stdout)}
    assert {n: p["trust"] for n, p in listed.items()} == {
        "by-acme": "verified",
        "by-stranger": "signed",
        "by-nobody": "unsigned",
    }
    # The per-plugin choice made at install holds for its loads.
    assert listed["by-nobody"]["policy"] == "allow-unsigned"
    assert listed["by-acme"]["policy"] == "require-verified"
    manager = PluginManager()
    for name in listed:
        with manager.load(name) as plugin:
            assert plugin.call("ok") == b"ok"


def test_trust_add_list_and_remove(home: Path, key: Path, tmp_path: Path) -> None:
    other = tmp_path / "keys" / "other.key"
    generate_key(other)
    assert wasmdeck("trust", "add", f"{key}.pub", "--name", "Acme").returncode == 0
    assert wasmdeck("trust", "add", f"{other}.pub", "--name", "Acme").returncode == 0  # rotation
    listing = wasmdeck("trust", "list")
    assert _key_id(key) in listing.stdout and "Acme" in listing.stdout
    assert "policy: allow-signed" in listing.stdout
    again = wasmdeck("trust", "add", f"{key}.pub", "--name", "Someone Else")
    assert again.returncode == 2 and "already trusted as 'Acme'" in again.stderr
    removed = wasmdeck("trust", "remove", _key_id(other)[:10])  # a key id prefix
    assert removed.returncode == 0 and _key_id(other) in removed.stdout
    assert [k.key_id for k in TrustStore().trusted_keys()] == [_key_id(key)]
    assert wasmdeck("trust", "remove", "Acme").returncode == 0
    assert TrustStore().trusted_keys() == []
    missing = wasmdeck("trust", "remove", "Acme")
    assert missing.returncode == 2 and "no trusted key" in missing.stderr
    private = wasmdeck("trust", "add", key, "--name", "Oops")
    assert private.returncode == 2 and "is a private key" in private.stderr
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("ssh-rsa AAAA\n")
    assert wasmdeck("trust", "add", garbage, "--name", "X").returncode == 2


def test_a_package_signed_by_the_wrong_key_is_not_verified(
    home: Path, key: Path, tmp_path: Path
) -> None:
    """The trust store knows Acme's key; a package claiming to be Acme's but signed by
    another key is only 'signed', and refused under require-verified."""
    impostor = tmp_path / "keys" / "impostor.key"
    generate_key(impostor)
    TrustStore().add(wd.load_public_key(f"{key}.pub"), "Acme")
    wasm_pkg = pack(tmp_path, impostor, name="acme-plugin")
    verified = wd.open_package(wasm_pkg)
    assert verified.verdict.level is wd.TrustLevel.SIGNED and verified.verdict.publisher is None
    with pytest.raises(wd.PolicyRefused):
        load_package(wasm_pkg, policy="require-verified")
    shown = wasmdeck("verify", wasm_pkg, "--policy", "require-verified")
    assert shown.returncode == 4 and "signed by an unknown key" in shown.stderr


def test_a_revoked_key_is_refused_under_every_policy(home: Path, key: Path, tmp_path: Path) -> None:
    path = pack(tmp_path, key)
    assert wasmdeck("trust", "add", f"{key}.pub", "--name", "Acme").returncode == 0
    assert wasmdeck("install", path, "--yes").returncode == 0
    revoked = wasmdeck("trust", "revoke", "Acme")
    assert revoked.returncode == 0 and _key_id(key) in revoked.stdout
    for policy in ALLOWED:
        with pytest.raises(wd.RevokedKey, match="revoked"):
            load_package(path, policy=policy)
    shown = wasmdeck("verify", path)
    assert shown.returncode == 4 and "revoked" in shown.stderr
    refused = wasmdeck("install", path, "--yes", "--allow-unsigned")
    assert refused.returncode == 4 and "revoked" in refused.stderr
    # The installed plugin stops loading, and says why.
    with pytest.raises(wd.RevokedKey):
        PluginManager().load("demo")
    assert json.loads(wasmdeck("list", "--json").stdout)[0]["trust"] == "revoked"
    assert "REVOKED" in wasmdeck("show", "demo").stdout


def test_a_revoked_key_stays_revoked_when_added_again_until_unrevoked(
    home: Path, key: Path, tmp_path: Path
) -> None:
    path = pack(tmp_path, key)
    assert wasmdeck("trust", "add", f"{key}.pub", "--name", "Acme").returncode == 0
    assert wasmdeck("trust", "revoke", _key_id(key)[:12]).returncode == 0
    readd = wasmdeck("trust", "add", f"{key}.pub", "--name", "Acme")
    assert readd.returncode == 2 and "trust unrevoke" in readd.stderr
    with pytest.raises(wd.RevokedKey):
        load_package(path)
    listing = wasmdeck("trust", "list", "--json")
    assert json.loads(listing.stdout)["revoked"][0]["key_id"] == _key_id(key)
    assert wasmdeck("trust", "unrevoke", _key_id(key)).returncode == 0
    assert wd.open_package(path).verdict.level is wd.TrustLevel.SIGNED  # no longer trusted
    assert wasmdeck("trust", "add", f"{key}.pub", "--name", "Acme").returncode == 0
    assert wd.open_package(path).verdict.level is wd.TrustLevel.VERIFIED


def test_revoking_a_key_never_trusted(home: Path, key: Path, tmp_path: Path) -> None:
    path = pack(tmp_path, key)
    by_file = wasmdeck("trust", "revoke", f"{key}.pub")
    assert by_file.returncode == 0
    with pytest.raises(wd.RevokedKey):
        load_package(path)
    other = tmp_path / "keys" / "other.key"
    generate_key(other)
    assert wasmdeck("trust", "revoke", _key_id(other)).returncode == 0
    assert TrustStore().is_revoked(_key_id(other))
    short = wasmdeck("trust", "revoke", "abcdef12")
    assert short.returncode == 2 and "full 32-digit key id" in short.stderr


def test_a_damaged_trust_store_is_reported_and_repaired(
    home: Path, key: Path, tmp_path: Path
) -> None:
    assert wasmdeck("trust", "add", f"{key}.pub", "--name", "Acme").returncode == 0
    assert wasmdeck("trust", "revoke", "Acme").returncode == 0
    store = home / "trust.json"
    store.write_bytes(store.read_bytes()[:40])
    for args in (("trust", "list"), ("verify", str(pack(tmp_path, key)))):
        broken = wasmdeck(*args)
        assert broken.returncode == 4, broken.stderr
        assert "trust store" in broken.stderr and "doctor --repair" in broken.stderr
    assert wasmdeck("doctor").returncode == 4
    repaired = wasmdeck("doctor", "--repair")
    assert repaired.returncode == 0 and "restored from trust.json.bak" in repaired.stdout
    assert TrustStore().is_revoked(_key_id(key))  # the revocation survived
    # With the backup damaged too, it starts empty and says so.
    store.write_text("{")
    (home / "trust.json.bak").write_text("{")
    repaired = wasmdeck("doctor", "--repair")
    assert repaired.returncode == 0 and "started empty" in repaired.stdout
    assert TrustStore().trusted_keys() == [] and TrustStore().policy is wd.Policy.ALLOW_SIGNED
