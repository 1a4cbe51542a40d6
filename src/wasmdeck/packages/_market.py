"""The marketplace client: search, fetch, publish and yank against a ``wasmdeck-market``.

It never trusts the server. A package it downloads is checked here before the
plugin manager sees it: the file's size and SHA-256 against the index entry,
the module digest, name, version and signer key against what the index said
(a server that swaps in another package, or another version, is caught), and
then the manager verifies the package again as for any local file (format,
signature, trust policy), keeps signer continuity against what is installed
and refuses a downgrade. Which version is newest is decided here, from the
versions the server lists, never from a field the server fills in; yanked
versions are never chosen unless asked for by number.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import os
import re
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._capabilities import KINDS
from .._errors import DowngradeRefused, TamperedPackage, WasmdeckError
from .._home import home
from .._json import JSONInputError, dumps, loads
from .._metadata import CapabilityRequest
from ._files import atomic_write
from ._package import MAX_PACKAGE, Package, version_tuple

if TYPE_CHECKING:
    from ._manager import InstalledPlugin

__all__ = [
    "DEFAULT_MARKET",
    "PACKAGE_CONTENT_TYPE",
    "MarketClient",
    "MarketDownload",
    "MarketError",
    "MarketSettings",
    "MarketVersion",
    "UpdateOffer",
    "capability_risks",
    "check_download",
    "fetch_from_market",
    "newest_listed",
    "rotation_message",
    "update_offer",
    "update_offers",
    "version_key",
]

DEFAULT_MARKET = "http://127.0.0.1:8470"
ROTATION_DOMAIN = b"wasmdeck-market-rotation-v1\x00"


def rotation_message(package: str, new_key_id: str) -> bytes:
    """What a package's old signing key signs to consent to ``new_key_id`` signing
    its next versions (the marketplace's ``rotate``, docs/marketplace.md)."""
    return ROTATION_DOMAIN + package.encode() + b"\x00" + new_key_id.encode()


PACKAGE_CONTENT_TYPE = "application/vnd.wasmdeck.package.v1+wdpk"
_UPDATES_PER_REQUEST = 500  # names per update check (the server takes up to 1000)
_SUFFIX = re.compile(r"^[0-9]+(?:\.[0-9]+)*(.*)$")


class MarketError(WasmdeckError):
    """The marketplace refused a request, or could not be reached (``status`` is the
    HTTP status, 0 when there was no answer; ``code`` the server's error code;
    ``retry_after`` the seconds a rate limit asks to wait, when it said)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str = "error",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


def version_key(version: str) -> tuple[tuple[int, ...], int, str]:
    """The order of versions: by number, then a pre-release (``1.0.0-rc1``) before
    the release it leads to."""
    numbers = version_tuple(version)
    numbers = numbers + (0,) * (4 - len(numbers)) if len(numbers) < 4 else numbers
    match = _SUFFIX.match(version)
    suffix = match.group(1) if match else version
    return (numbers, 0 if suffix else 1, suffix)


def capability_risks(requests: Iterable[CapabilityRequest]) -> list[dict[str, Any]]:
    """Each requested capability with its risk level and what it lets a plugin do."""
    out = []
    for request in requests:
        kind = KINDS.get(request.kind)
        out.append(
            {
                "kind": request.kind,
                "scope": dict(request.scope),
                "risk": kind.risk if kind else "unknown",
                "description": kind.description if kind else "a capability this wasmdeck lacks",
            }
        )
    return out


@dataclass(frozen=True, slots=True)
class MarketVersion:
    """One version as the index lists it (what the download is checked against)."""

    name: str
    version: str
    file_digest: str  # SHA-256 of the package file
    digest: str  # SHA-256 of the module, as in the package's DGST section
    size: int
    key_id: str
    yanked: str | None
    published_at: float

    @classmethod
    def from_json(cls, name: str, obj: Any) -> MarketVersion:
        try:
            return cls(
                name=name,
                version=str(obj["version"]),
                file_digest=str(obj["file_digest"]),
                digest=str(obj["digest"]),
                size=int(obj["size"]),
                key_id=str(obj["key_id"]),
                yanked=None if obj.get("yanked") is None else str(obj["yanked"]),
                published_at=float(obj["published_at"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise MarketError(
                f"the marketplace sent a malformed version entry for {name}"
            ) from None


Progress = Callable[[int, int], None]  # (bytes so far, total)


class MarketClient:
    """A marketplace at ``url`` (``token`` for publishing, yanking and reviews).

    A read refused by a rate limit (429) whose ``Retry-After`` is at most
    ``max_wait`` seconds is waited out (``sleep``) and sent once more; a longer
    wait, or a refused write, is a ``MarketError`` that says how long to wait."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        max_wait: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import httpx

        self.url = url.rstrip("/")
        headers = {"user-agent": "wasmdeck"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, verify=_tls_context()
        )
        self._httpx = httpx
        self.max_wait = max_wait
        self._sleep = sleep

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MarketClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------

    def _request(self, method: str, path: str, *, read: bool = False, **kwargs: Any) -> Any:
        """``read``: a POST that only asks (sent again after a short rate limit, as a GET)."""
        for attempt in (1, 2):
            try:
                response = self._http.request(method, "/api/v1" + path, **kwargs)
            except self._httpx.HTTPError as exc:
                raise MarketError(f"cannot reach the marketplace at {self.url}: {exc}") from None
            if not self._wait_out(response, read or method == "GET", attempt):
                break
        return self._json(response)

    def _wait_out(self, response: Any, read: bool, attempt: int) -> bool:
        """Whether a rate-limited read is worth one more try: then it has waited."""
        wait = _retry_after(response) if response.status_code == 429 else None
        if not read or attempt > 1 or wait is None or wait > self.max_wait:
            return False
        self._sleep(wait)
        return True

    def _json(self, response: Any) -> Any:
        try:
            body = loads(response.content, what="the marketplace's answer", max_bytes=16 << 20)
        except JSONInputError:
            body = None
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            retry = _retry_after(response) if response.status_code == 429 else None
            later = f" (it asks to wait {retry:.0f} s before trying again)" if retry else ""
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                raise MarketError(
                    f"the marketplace refused: {error['message']}{later}",
                    status=response.status_code,
                    code=str(error.get("code", "error")),
                    retry_after=retry,
                )
            raise MarketError(
                f"the marketplace answered HTTP {response.status_code}{later}",
                status=response.status_code,
                retry_after=retry,
            )
        if body is None:
            raise MarketError("the marketplace's answer is not JSON")
        return body

    def search(self, text: str = "", **params: Any) -> dict[str, Any]:
        result = self._request("GET", "/packages", params={"q": text, **params})
        if not isinstance(result, dict) or not isinstance(result.get("packages"), list):
            raise MarketError("the marketplace sent a malformed search result")
        return result

    def package(self, name: str) -> dict[str, Any]:
        result = self._request("GET", f"/packages/{_quote(name)}")
        if not isinstance(result, dict) or not isinstance(result.get("versions"), list):
            raise MarketError(f"the marketplace sent a malformed entry for {name}")
        return result

    def updates(self, installed: Mapping[str, str]) -> dict[str, list[MarketVersion] | None]:
        """``POST /updates``: for each installed name and version, the versions the
        server says are newer (None: not listed), in one request per 500 names.
        A server older than that endpoint answers 404 or 405 (``update_offers``
        then asks per plugin)."""
        found: dict[str, list[MarketVersion] | None] = {}
        items = list(installed.items())
        for start in range(0, len(items), _UPDATES_PER_REQUEST):
            chunk = dict(items[start : start + _UPDATES_PER_REQUEST])
            result = self._request("POST", "/updates", read=True, json={"installed": chunk})
            answer = result.get("updates") if isinstance(result, dict) else None
            if not isinstance(answer, dict):
                raise MarketError("the marketplace sent a malformed update check")
            for name in chunk:  # only what was asked: anything else it sent is ignored
                entry = answer.get(name)
                newer = entry.get("newer") if isinstance(entry, dict) else None
                if entry is not None and not isinstance(newer, list):
                    raise MarketError(f"the marketplace sent a malformed update entry for {name}")
                found[name] = (
                    None if newer is None else [MarketVersion.from_json(name, v) for v in newer]
                )
        return found

    def versions(self, name: str) -> list[MarketVersion]:
        return [MarketVersion.from_json(name, v) for v in self.package(name)["versions"]]

    def choose(self, name: str, version: str | None = None) -> MarketVersion:
        """The version to install: ``version`` exactly (yanked or not: it was asked
        for by number), else the newest that is not yanked, by our own ordering."""
        return _choose(name, self.versions(name), version)

    def download(self, entry: MarketVersion, *, progress: Progress | None = None) -> bytes:
        """The package file of ``entry``, checked against the index entry's size and
        SHA-256 while it streams (a server sending more than it said is cut off)."""
        if not 0 < entry.size <= MAX_PACKAGE:
            raise TamperedPackage(
                f"the marketplace lists a size of {entry.size} bytes", plugin=entry.name
            )
        path = f"/api/v1/packages/{_quote(entry.name)}/versions/{_quote(entry.version)}/download"
        chunks: list[bytes] = []
        got = 0
        digest = hashlib.sha256()
        try:
            with self._stream(path) as response:
                for chunk in response.iter_bytes():
                    got += len(chunk)
                    if got > entry.size:
                        raise TamperedPackage(
                            f"the marketplace sent more than the {entry.size} bytes it listed",
                            plugin=entry.name,
                        )
                    digest.update(chunk)
                    chunks.append(chunk)
                    if progress is not None:
                        progress(got, entry.size)
        except self._httpx.HTTPError as exc:
            raise MarketError(f"the download from {self.url} failed: {exc}") from None
        if got != entry.size or digest.hexdigest() != entry.file_digest:
            raise TamperedPackage(
                f"the downloaded file ({got} bytes, sha256:{digest.hexdigest()}) is not the "
                f"one the marketplace lists ({entry.size} bytes, sha256:{entry.file_digest})",
                plugin=entry.name,
            )
        return b"".join(chunks)

    @contextlib.contextmanager
    def _stream(self, path: str) -> Iterator[Any]:
        """A streamed GET that answered 2xx (a short rate limit waited out once)."""
        for attempt in (1, 2):
            with self._http.stream("GET", path) as response:
                if response.status_code < 400:
                    yield response
                    return
                response.read()
                if not self._wait_out(response, True, attempt):
                    self._json(response)  # raises the refusal
        raise AssertionError("unreachable: the second refusal raised")

    def publish(self, data: bytes) -> dict[str, Any]:
        result = self._request(
            "POST", "/packages", content=data, headers={"content-type": PACKAGE_CONTENT_TYPE}
        )
        if not isinstance(result, dict):
            raise MarketError("the marketplace sent a malformed answer")
        return result

    def add_key(self, public_key_line: str) -> dict[str, Any]:
        """Register a public key (the ``.pub`` line) to the token's account."""
        result = self._request("POST", "/keys", json={"public_key": public_key_line})
        if not isinstance(result, dict):
            raise MarketError("the marketplace sent a malformed answer")
        return result

    def rotate(
        self, name: str, key_id: str, reason: str, *, consent: bytes | None = None
    ) -> dict[str, Any]:
        """Let ``key_id`` sign ``name`` from now on; ``consent`` is the old key's
        signature over ``rotation_message(name, key_id)``."""
        body: dict[str, Any] = {"key_id": key_id, "reason": reason}
        if consent is not None:
            body["consent"] = base64.b64encode(consent).decode()
        result = self._request("POST", f"/packages/{_quote(name)}/rotate", json=body)
        if not isinstance(result, dict):
            raise MarketError("the marketplace sent a malformed answer")
        return result

    def yank(self, name: str, version: str, reason: str, *, undo: bool = False) -> dict[str, Any]:
        path = f"/packages/{_quote(name)}/versions/{_quote(version)}/yank"
        result = self._request("DELETE" if undo else "POST", path, json={"reason": reason})
        if not isinstance(result, dict):
            raise MarketError("the marketplace sent a malformed answer")
        return result


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi, or SSL_CERT_FILE/SSL_CERT_DIR), made once:
    making it loads the CA bundle, 30-50 ms, which every new client paid (the local
    UI makes one per page it asks the marketplace for)."""
    import httpx

    return httpx.create_ssl_context()


def _retry_after(response: Any) -> float | None:
    """The seconds of a ``Retry-After`` header (wasmdeck-market sends whole seconds;
    an HTTP date, which it never sends, counts as not said)."""
    text = str(response.headers.get("retry-after", "")).strip()
    return float(text) if text.isdigit() and len(text) <= 6 else None


def _quote(part: str) -> str:
    from urllib.parse import quote

    return quote(part, safe="")


def check_download(entry: MarketVersion, package: Package) -> None:
    """The package downloaded for ``entry`` must be the one the index describes:
    same name, version, module digest and signer (a swapped package is refused)."""
    signature = package.signature
    problems = []
    if package.name != entry.name:
        problems.append(f"it is the plugin {package.name!r}, not {entry.name!r}")
    if package.version != entry.version:
        problems.append(f"it is version {package.version}, not {entry.version}")
    if package.digest_hex != entry.digest:
        problems.append("its module digest is not the one listed")
    if signature is None or signature.key_id_hex != entry.key_id:
        problems.append(
            f"it is signed by {signature.key_id_hex if signature else 'nobody'}, "
            f"not by the listed key {entry.key_id}"
        )
    if problems:
        raise TamperedPackage(
            "the marketplace sent another package than it lists: " + "; ".join(problems),
            plugin=entry.name,
        )


@dataclass(frozen=True, slots=True)
class MarketSettings:
    """Which marketplace to use and the API token for it: ``--market``/``--token``,
    else ``$WASMDECK_MARKET``/``$WASMDECK_MARKET_TOKEN``, else ``market.json`` in the
    home (written by ``wasmdeck market login``, mode 0600), else the default URL."""

    url: str = DEFAULT_MARKET
    token: str | None = field(default=None, repr=False)

    @staticmethod
    def path() -> Path:
        return home() / "market.json"

    @classmethod
    def load(cls, url: str | None = None, token: str | None = None) -> MarketSettings:
        stored: dict[str, Any] = {}
        path = cls.path()
        if path.exists():
            try:
                value = loads(path.read_bytes(), what=str(path), max_bytes=64 << 10)
            except JSONInputError as exc:
                raise MarketError(
                    f"{path} is damaged ({exc}); write it again with 'wasmdeck market login'"
                ) from None
            stored = value if isinstance(value, dict) else {}
        chosen_url = url or os.environ.get("WASMDECK_MARKET") or stored.get("url") or DEFAULT_MARKET
        chosen_token = token or os.environ.get("WASMDECK_MARKET_TOKEN")
        if chosen_token is None and stored.get("url") == chosen_url:
            chosen_token = stored.get("token") if isinstance(stored.get("token"), str) else None
        return cls(str(chosen_url).rstrip("/"), chosen_token)

    def save(self) -> Path:
        path = self.path()
        atomic_write(path, dumps({"url": self.url, "token": self.token}), mode=0o600)
        return path

    def client(self) -> MarketClient:
        return MarketClient(self.url, token=self.token)


@dataclass(frozen=True, slots=True)
class MarketDownload:
    """A package fetched from the marketplace and checked against its index entry."""

    entry: MarketVersion
    data: bytes
    replace_signer: bool  # the installed version's key consented to the new signer
    notes: tuple[str, ...] = ()


def fetch_from_market(
    client: MarketClient,
    name: str,
    version: str | None = None,
    *,
    installed: InstalledPlugin | None = None,
    progress: Progress | None = None,
) -> MarketDownload:
    """Choose, download and check a package for install or update.

    Refuses a rollback: with nothing pinned, a newest version older than the
    installed one (``DowngradeRefused``); never picks a yanked version unless
    ``version`` names it. The download must be the package the index lists
    (``check_download``). A new signer is accepted here only with a consent the
    installed key signed (``rotation_message``); otherwise the plugin manager's
    own signer check decides (trust the new key, or ``--replace-signer``).
    """
    info = client.package(name)
    versions = [MarketVersion.from_json(name, v) for v in info["versions"]]
    entry = _choose(name, versions, version)
    notes = []
    if entry.yanked is not None:
        notes.append(f"{name} {entry.version} is yanked ({entry.yanked}); installing it as pinned")
    if isinstance(info.get("deprecated"), str):
        notes.append(f"{name} is deprecated: {info['deprecated']}")
    rollback = installed is not None and version_key(entry.version) < version_key(installed.version)
    if rollback and version is None:
        assert installed is not None
        raise DowngradeRefused(
            f"the marketplace offers {entry.version} as the newest, older than the "
            f"installed {installed.version}: refusing a rollback (name a version with "
            "NAME@VERSION and --allow-downgrade to install it anyway)",
            plugin=name,
        )
    data = client.download(entry, progress=progress)
    package = Package.parse(data)
    check_download(entry, package)
    replace = False
    signature = installed.signature if installed is not None else None
    if signature is not None and signature.key_id_hex != entry.key_id:
        replace = _consented(info, name, signature.public_key, signature.key_id_hex, entry.key_id)
    return MarketDownload(entry, data, replace, tuple(notes))


def _choose(name: str, versions: list[MarketVersion], version: str | None) -> MarketVersion:
    if version is not None:
        for entry in versions:
            if entry.version == version:
                return entry
        listed = ", ".join(v.version for v in versions) or "(none)"
        raise MarketError(
            f"{name} has no version {version} on the marketplace; it has: {listed}",
            status=404,
            code="not_found",
        )
    usable = [v for v in versions if v.yanked is None]
    if not usable:
        raise MarketError(
            f"{name} has no version that is not yanked; name one (NAME@VERSION)",
            status=404,
            code="not_found",
        )
    return max(usable, key=lambda v: version_key(v.version))


def _consented(
    info: dict[str, Any], name: str, old_public: bytes, old: str | None, new: str
) -> bool:
    """Whether the package's rotations hold a consent by the installed key ``old``
    to ``new``, signed over ``rotation_message`` (checked here, not believed)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    rotations = info.get("rotations")
    for rotation in rotations if isinstance(rotations, list) else []:
        if not isinstance(rotation, dict) or rotation.get("from_key") != old:
            continue
        if rotation.get("to_key") != new or not isinstance(rotation.get("consent"), str):
            continue
        try:
            signature = base64.b64decode(rotation["consent"], validate=True)
            Ed25519PublicKey.from_public_bytes(old_public).verify(
                signature, rotation_message(name, new)
            )
        except (binascii.Error, ValueError, InvalidSignature):
            continue
        return True
    return False


def _listed_versions(client: MarketClient, name: str) -> list[MarketVersion] | None:
    """The package's versions, or None when the marketplace does not list it."""
    try:
        return list(client.versions(name))
    except MarketError as exc:
        if exc.status == 404:
            return None
        raise


def newest_listed(client: MarketClient, name: str) -> MarketVersion | None:
    """The newest version that is not yanked, or None when the package is not listed."""
    versions = _listed_versions(client, name)
    if versions is None:
        return None
    usable = [v for v in versions if v.yanked is None]
    return max(usable, key=lambda v: version_key(v.version)) if usable else None


@dataclass(frozen=True, slots=True)
class UpdateOffer:
    """What the marketplace offers an installed plugin: ``choices`` are the versions
    an update may go to unpinned (newer than ``installed``, not yanked), newest
    first; ``skipped`` the newer ones that are yanked (only ``NAME@VERSION`` takes
    one). ``wasmdeck outdated``/``update`` and the local UI's update read this."""

    name: str
    installed: str
    choices: tuple[MarketVersion, ...]
    skipped: tuple[MarketVersion, ...]

    @property
    def newest(self) -> MarketVersion | None:
        return self.choices[0] if self.choices else None


def update_offer(client: MarketClient, name: str, installed: str) -> UpdateOffer | None:
    """The update offer for ``name`` at version ``installed``; None when the
    marketplace does not list it (a plugin installed from a local file)."""
    versions = _listed_versions(client, name)
    if versions is None:
        return None
    return _offer(name, installed, versions)


def update_offers(
    client: MarketClient, installed: Mapping[str, str]
) -> dict[str, UpdateOffer | None]:
    """``update_offer`` for every ``{name: installed version}``: one request
    (``POST /updates``), or one per plugin against a marketplace older than that
    endpoint. Either way the offer is decided here from the versions listed."""
    if not installed:
        return {}
    try:
        listed = client.updates(installed)
    except MarketError as exc:
        if exc.status not in (404, 405):
            raise
        return {name: update_offer(client, name, version) for name, version in installed.items()}
    return {
        name: None if versions is None else _offer(name, installed[name], versions)
        for name, versions in listed.items()
    }


def _offer(name: str, installed: str, versions: list[MarketVersion]) -> UpdateOffer:
    floor = version_key(installed)
    newer = sorted(
        (v for v in versions if version_key(v.version) > floor),
        key=lambda v: version_key(v.version),
        reverse=True,
    )
    return UpdateOffer(
        name,
        installed,
        tuple(v for v in newer if v.yanked is None),
        tuple(v for v in newer if v.yanked is not None),
    )
