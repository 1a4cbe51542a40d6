"""Grant syntax and the network policy, on their own (no plugin involved)."""

from __future__ import annotations

import pytest

from wasmdeck import Grants, parse_grant
from wasmdeck.runtime._netpolicy import NetworkDenied, NetworkPolicy


@pytest.mark.parametrize(
    ("text", "kind", "scope", "risk"),
    [
        ("network:api.example.com", "network", "api.example.com", "medium"),
        ("fs:/data=./data", "fs", "/data=./data:ro", "medium"),
        ("fs:/out=/tmp/out:rw", "fs", "/out=/tmp/out:rw", "high"),
        ("filesystem:/d=/tmp:ro", "fs", "/d=/tmp:ro", "medium"),
        ("subprocess:git", "process", "git", "high"),
        ("env:HOME", "env", "HOME", "low"),
        ("kv", "kv", "", "low"),
    ],
)
def test_parse_grant(text: str, kind: str, scope: str, risk: str) -> None:
    grant = parse_grant(text)
    assert (grant.kind, grant.scope, grant.risk) == (kind, scope, risk)
    assert parse_grant(str(grant)) == grant


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("telepathy", "unknown capability 'telepathy'"),
        ("network", r"network needs a scope, written network:HOST"),
        ("events:all", "write events:publish:PATTERN or events:subscribe:PATTERN"),
        ("events", "events needs a scope"),
        ("state", "state needs a scope"),
        ("state:show:rw", "write state:NAMESPACE or state:NAMESPACE:ro"),
        ("plugins:a b", "write plugins:PLUGIN_NAME"),
        ("kv:../other", "a kv namespace is"),
        ("env:NOT A NAME", "not an environment variable name"),
        ("fs:data", "write fs:GUEST_DIR=HOST_DIR"),
        ("", "non-empty"),
    ],
)
def test_bad_grants(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_grant(text)


def test_grants_collection() -> None:
    grants = Grants(["env:A", "env:B", "env:A", "network:x.example"])
    assert grants.scopes("env") == ["A", "B"] and len(grants) == 3
    assert grants.allows("network") and not grants.allows("process")
    assert grants == Grants(["network:x.example", "env:B", "env:A"])


def policy(*scopes: str) -> NetworkPolicy:
    return NetworkPolicy(list(scopes))


@pytest.mark.parametrize(
    ("scopes", "url", "allowed"),
    [
        (["api.example.com"], "https://api.example.com/v1", True),
        (["api.example.com"], "http://api.example.com/", True),
        (["api.example.com"], "wss://api.example.com/socket", True),
        (["api.example.com"], "https://api.example.com:8443/", False),  # port not granted
        (["api.example.com:8443"], "https://api.example.com:8443/", True),
        (["https://api.example.com"], "http://api.example.com/", False),  # scheme not granted
        (["api.example.com"], "https://evil.example.com/", False),
        (["api.example.com"], "https://api.example.com.evil.net/", False),
        (["*.example.com"], "https://hooks.example.com/x", True),
        (["*.example.com"], "https://a.b.example.com/x", True),
        (["*.example.com"], "https://example.com/", False),  # wildcard means subdomains
        (["*.example.com"], "https://badexample.com/", False),
        (["127.0.0.1:4455"], "ws://127.0.0.1:4455", True),
        (["192.168.1.0/24"], "http://192.168.1.77/api", True),
        (["192.168.1.0/24"], "http://192.168.2.1/api", False),
        (["api.example.com"], "ftp://api.example.com/", False),
        (["api.example.com"], "https://user:pw@api.example.com/", False),
    ],
)
def test_url_allowlist(scopes: list[str], url: str, allowed: bool) -> None:
    if allowed:
        policy(*scopes).check_url(url, schemes=("http", "https", "ws", "wss"))
    else:
        with pytest.raises(NetworkDenied):
            policy(*scopes).check_url(url, schemes=("http", "https", "ws", "wss"))


@pytest.mark.parametrize(
    "scope",
    ["api.example.com:99999", "ftp://x.example", "*", "a.*.example.com", "*.", "host:port"],
)
def test_bad_network_scopes(scope: str) -> None:
    with pytest.raises(ValueError, match="network grant"):
        policy(scope)


def test_ssrf_guard_refuses_names_that_resolve_to_loopback(loopback_name: str) -> None:
    with pytest.raises(
        NetworkDenied,
        match=rf"127\.0\.0\.1 is a loopback address \({loopback_name} resolves to it\)",
    ):
        policy(loopback_name).resolve(f"http://{loopback_name}/", schemes=("http",))


def test_explicit_loopback_grants() -> None:
    assert (
        policy("127.0.0.1").resolve("http://127.0.0.1/", schemes=("http",)).address == "127.0.0.1"
    )
    assert (
        policy("localhost")
        .resolve("http://localhost/", schemes=("http",))
        .address.startswith("127.")
    )


def test_private_literal_needs_its_own_grant() -> None:
    # A private address is reachable only through a grant that names it.
    with pytest.raises(NetworkDenied, match="not in the plugin's network grant"):
        policy("api.example.com").resolve("http://10.0.0.8/", schemes=("http",))
    assert policy("10.0.0.0/8").check_url("http://10.0.0.8/", schemes=("http",))[1] == "10.0.0.8"
