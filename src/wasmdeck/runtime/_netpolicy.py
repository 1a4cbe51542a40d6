"""Which network endpoints a plugin may reach (the ``network`` capability).

A grant scope is ``[SCHEME://]HOST[:PORT]``:

- ``HOST`` is a name (``api.example.com``), a wildcard (``*.example.com``:
  any subdomain, not the bare domain), an IP literal (``192.168.1.20``,
  ``[::1]``), a network (``192.168.1.0/24``) or ``localhost``;
- without ``SCHEME`` any of http, https, ws, wss is allowed; without
  ``PORT`` only the scheme's default port (80 or 443).

After DNS resolution every address is checked again (the SSRF guard):
loopback, private, link-local and other non-public addresses are refused
unless the grant that matched the request (its host, scheme and port) names
them — an IP literal or network covering the address, or ``localhost`` for
loopback. Grants never combine: ``localhost:8080`` lets no other grant's
names reach loopback, on any port. A name that merely resolves to such an
address is not enough. The vetted address is the one connected to, so a
second lookup cannot swap it (DNS rebinding).

Names are resolved with ``socket.getaddrinfo`` on a helper thread, so a
lookup that hangs is abandoned at the request's deadline (``timeout``).
``NetworkPolicy(resolver=...)`` replaces the lookup (a function of host and
port returning addresses), for embedders with their own resolver.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Endpoint", "NetworkDenied", "NetworkPolicy", "Resolver", "system_resolver"]

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]


class NetworkDenied(Exception):
    """The policy refuses this request; the message says why and what to grant."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A vetted destination: what the plugin asked for and where to connect."""

    scheme: str
    host: str  # as in the URL (for Host headers, TLS SNI and certificates)
    port: int
    address: str  # the resolved, checked IP to connect to
    path: str  # path and query, at least "/"


@dataclass(frozen=True, slots=True)
class _Rule:
    scheme: str | None
    host: str | None  # lower-case name, "*.suffix", or None for an IP rule
    network: IPNetwork | None
    port: int | None

    @property
    def explicit(self) -> tuple[IPNetwork, ...]:
        """The non-public addresses this grant names (and so allows)."""
        if self.network is not None:
            return (self.network,)
        return _LOOPBACK if self.host == "localhost" else ()

    def matches(self, scheme: str, host: str, port: int) -> bool:
        if self.scheme is not None and self.scheme != scheme:
            return False
        wanted_port = self.port if self.port is not None else DEFAULT_PORTS[scheme]
        if port != wanted_port:
            return False
        if self.network is not None:
            address = _ip(host)
            return address is not None and address in self.network
        assert self.host is not None
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and host != self.host[2:]
        return host == self.host


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


_LOOPBACK: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


class NetworkPolicy:
    """The network grants of one plugin, checked for every request and redirect."""

    def __init__(self, scopes: list[str], *, resolver: Resolver | None = None) -> None:
        self._rules = [self._parse(scope) for scope in scopes]
        self.scopes = list(scopes)
        self.resolver: Resolver = resolver or system_resolver

    @staticmethod
    def _parse(scope: str) -> _Rule:
        text = scope.strip()
        scheme = None
        if "://" in text:
            scheme, _, text = text.partition("://")
            scheme = scheme.lower()
            if scheme not in DEFAULT_PORTS:
                raise ValueError(f"network grant {scope!r}: scheme must be http, https, ws or wss")
        host, port = text, None
        if text.startswith("["):  # [v6]:port
            end = text.find("]")
            host, rest = text[1:end], text[end + 1 :]
            if rest.startswith(":"):
                port = rest[1:]
        elif text.count(":") == 1:
            host, port = text.split(":")
        if port is not None and (not port.isdigit() or not 0 < int(port) < 65536):
            raise ValueError(f"network grant {scope!r}: {port!r} is not a port number")
        host = host.lower().rstrip(".")
        if not host or ("/" in host and _ip(host.split("/")[0]) is None):
            raise ValueError(f"network grant {scope!r}: write [SCHEME://]HOST[:PORT]")
        network = None
        if _ip(host.split("/")[0]) is not None:
            network = ipaddress.ip_network(host, strict=False)
            host = None  # type: ignore[assignment]
        elif "*" in host and (not host.startswith("*.") or "*" in host[2:] or not host[2:]):
            raise ValueError(
                f"network grant {scope!r}: '*' may only lead a domain, as in *.example.com"
            )
        return _Rule(scheme, host, network, int(port) if port else None)

    def check_url(self, url: str, *, schemes: tuple[str, ...]) -> tuple[str, str, int, str]:
        """Check a URL against the grants (before DNS): (scheme, host, port, path)."""
        scheme, host, port, path, _ = self._match(url, schemes)
        return scheme, host, port, path

    def _match(self, url: str, schemes: tuple[str, ...]) -> tuple[str, str, int, str, list[_Rule]]:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise NetworkDenied(f"invalid URL {url!r}: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in schemes:
            raise NetworkDenied(f"URL {url!r}: the scheme must be one of {', '.join(schemes)}")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise NetworkDenied(f"URL {url!r} has no host")
        if parts.username or parts.password:
            raise NetworkDenied(f"URL {url!r}: credentials in URLs are not allowed; send a header")
        port = port or DEFAULT_PORTS[scheme]
        matched = [rule for rule in self._rules if rule.matches(scheme, host, port)]
        if not matched:
            shown = f"[{host}]" if ":" in host else host
            granted = ", ".join(self.scopes) or "nothing"
            raise NetworkDenied(
                f"{scheme}://{shown}:{port} is not in the plugin's network grant ({granted}); "
                f"grant it with --grant network:{shown}"
                + (f":{port}" if port != DEFAULT_PORTS[scheme] else "")
            )
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return scheme, host, port, path, matched

    def resolve(
        self, url: str, *, schemes: tuple[str, ...], timeout: float | None = None
    ) -> Endpoint:
        """Check the URL, resolve its host and check every address (SSRF guard).

        Raises ``NetworkDenied``, or ``TimeoutError`` when the lookup takes
        longer than ``timeout`` seconds.
        """
        scheme, host, port, path, matched = self._match(url, schemes)
        literal = _ip(host)
        if literal is not None:
            candidates = [literal]
        else:
            try:
                found = _lookup(self.resolver, host, port, timeout)
            except TimeoutError:
                raise
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise NetworkDenied(f"cannot resolve {host!r}: {reason}") from None
            candidates = list(dict.fromkeys(ipaddress.ip_address(a) for a in found))
            if not candidates:
                raise NetworkDenied(f"cannot resolve {host!r}: no addresses")
        # Only the grants that matched this request may allow a non-public
        # address: never the union of all grants.
        explicit = [network for rule in matched for network in rule.explicit]
        # Every address must pass, or a name with one public and one private
        # address could be steered to the private one.
        for address in candidates:
            if not _is_public(address) and not any(address in net for net in explicit):
                via = "" if literal is not None else f" ({host} resolves to it)"
                raise NetworkDenied(
                    f"{address} is a {_kind(address)} address{via}; such addresses are refused "
                    f"unless granted explicitly, e.g. --grant network:{address}"
                    + (f":{port}" if port != DEFAULT_PORTS[scheme] else "")
                )
        return Endpoint(scheme, host, port, str(candidates[0]), path)


def _kind(address: IPAddress) -> str:
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_private:
        return "private"
    if address.is_multicast:
        return "multicast"
    return "non-public"


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses of ``host`` from the system's resolver (``getaddrinfo``)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _lookup(resolver: Resolver, host: str, port: int, timeout: float | None) -> list[str]:
    """``resolver(host, port)``, abandoned after ``timeout`` seconds.

    ``getaddrinfo`` takes no timeout and cannot be interrupted, so it runs
    on a daemon thread that is left to finish on its own when time is up.
    """
    if timeout is None:
        return resolver(host, port)
    outcome: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append((True, resolver(host, port)))
        except BaseException as exc:
            outcome.append((False, exc))
        done.set()

    threading.Thread(target=run, name="wasmdeck-resolve", daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError(f"resolving {host!r} took longer than {timeout:.3g} s")
    ok, value = outcome[0]
    if not ok:
        if isinstance(value, OSError):
            raise value
        raise OSError(f"the resolver failed: {value!r}")
    return list(value)
