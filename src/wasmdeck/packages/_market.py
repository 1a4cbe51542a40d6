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

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .._capabilities import KINDS
from .._errors import TamperedPackage, WasmdeckError
from .._json import JSONInputError, loads
from .._metadata import CapabilityRequest
from ._package import MAX_PACKAGE, version_tuple

__all__ = [
    "PACKAGE_CONTENT_TYPE",
    "MarketClient",
    "MarketError",
    "MarketVersion",
    "capability_risks",
    "check_download",
    "version_key",
]

PACKAGE_CONTENT_TYPE = "application/vnd.wasmdeck.package.v1+wdpk"
_SUFFIX = re.compile(r"^[0-9]+(?:\.[0-9]+)*(.*)$")


class MarketError(WasmdeckError):
    """The marketplace refused a request, or could not be reached (``status`` is the
    HTTP status, 0 when there was no answer; ``code`` the server's error code)."""

    def __init__(self, message: str, *, status: int = 0, code: str = "error") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


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
    """A marketplace at ``url`` (``token`` for publishing, yanking and reviews)."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 60.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        headers = {"user-agent": "wasmdeck"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._httpx = httpx

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MarketClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, "/api/v1" + path, **kwargs)
        except self._httpx.HTTPError as exc:
            raise MarketError(f"cannot reach the marketplace at {self.url}: {exc}") from None
        return self._json(response)

    def _json(self, response: Any) -> Any:
        try:
            body = loads(response.content, what="the marketplace's answer", max_bytes=16 << 20)
        except JSONInputError:
            body = None
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                raise MarketError(
                    f"the marketplace refused: {error['message']}",
                    status=response.status_code,
                    code=str(error.get("code", "error")),
                )
            raise MarketError(
                f"the marketplace answered HTTP {response.status_code}",
                status=response.status_code,
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

    def versions(self, name: str) -> list[MarketVersion]:
        return [MarketVersion.from_json(name, v) for v in self.package(name)["versions"]]

    def choose(self, name: str, version: str | None = None) -> MarketVersion:
        """The version to install: ``version`` exactly (yanked or not: it was asked
        for by number), else the newest that is not yanked, by our own ordering."""
        versions = self.versions(name)
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
            with self._http.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    self._json(response)
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

    def publish(self, data: bytes) -> dict[str, Any]:
        result = self._request(
            "POST", "/packages", content=data, headers={"content-type": PACKAGE_CONTENT_TYPE}
        )
        if not isinstance(result, dict):
            raise MarketError("the marketplace sent a malformed answer")
        return result

    def yank(self, name: str, version: str, reason: str, *, undo: bool = False) -> dict[str, Any]:
        path = f"/packages/{_quote(name)}/versions/{_quote(version)}/yank"
        result = self._request("DELETE" if undo else "POST", path, json={"reason": reason})
        if not isinstance(result, dict):
            raise MarketError("the marketplace sent a malformed answer")
        return result


def _quote(part: str) -> str:
    from urllib.parse import quote

    return quote(part, safe="")


def check_download(entry: MarketVersion, package: Any) -> None:
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
