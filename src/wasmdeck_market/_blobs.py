"""Where package files are kept: a directory (the default) or an OCI registry.

Files are addressed by the SHA-256 of the whole package file, so a put is
idempotent and two server processes writing the same package cannot clash.
A blob whose database row never committed (a process killed between the two)
is unreferenced and harmless. Whatever a store hands back is checked against
its digest before it is served: a damaged or altered store is an error, not a
download.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Protocol
from urllib.parse import urljoin

import httpx

from wasmdeck.packages import atomic_write

from ._errors import NotFound, ServerError

__all__ = [
    "ARTIFACT_TYPE",
    "PACKAGE_MEDIA_TYPE",
    "BlobStore",
    "FileBlobs",
    "OciBlobs",
]

# The OCI artifact a package is pushed as (image-spec 1.1 "artifact" guidance):
# an image manifest with this artifactType, the empty config, and the package
# file as its one layer.
ARTIFACT_TYPE = "application/vnd.wasmdeck.package.v1"
PACKAGE_MEDIA_TYPE = "application/vnd.wasmdeck.package.v1+wdpk"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
_MANIFEST_ATTEMPTS = 5


class BlobStore(Protocol):
    """Put and get package files by the SHA-256 of the file (hex)."""

    name: str

    def put(self, package: str, version: str, data: bytes) -> str: ...

    def get(self, package: str, digest: str) -> bytes: ...

    def close(self) -> None: ...


class BlobCorrupt(ServerError):
    """A stored package file does not match its digest."""

    status, code = 500, "blob_corrupt"


def _checked(data: bytes, digest: str, where: str) -> bytes:
    if hashlib.sha256(data).hexdigest() != digest:
        raise BlobCorrupt(f"the stored package file sha256:{digest} in {where} is damaged")
    return data


class FileBlobs:
    """``ROOT/sha256/<hex>``, written atomically and durably."""

    name = "filesystem"

    def __init__(self, root: Path) -> None:
        self.root = root / "sha256"
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, package: str, version: str, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.root / digest
        if not path.exists():
            atomic_write(path, data, mode=0o644)
        return digest

    def get(self, package: str, digest: str) -> bytes:
        try:
            data = (self.root / digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"the package file sha256:{digest} is missing") from None
        return _checked(data, digest, str(self.root))

    def close(self) -> None:
        pass


class OciBlobs:
    """An OCI registry (the distribution spec's HTTP API): each version of a package
    is an artifact in repository ``NAMESPACE/<package>``, tagged with its version."""

    name = "oci"

    def __init__(self, url: str, *, namespace: str = "wasmdeck", timeout: float = 60.0) -> None:
        self.url = url.rstrip("/") + "/"
        self.namespace = namespace.strip("/")
        self._http = httpx.Client(timeout=timeout, follow_redirects=True)

    def _repo(self, package: str) -> str:
        return f"{self.namespace}/{package}"

    def _fail(self, what: str, response: httpx.Response) -> ServerError:
        return ServerError(
            f"the OCI registry refused {what}: HTTP {response.status_code} {response.text[:200]}",
            status=502,
            code="registry_error",
        )

    def _push_blob(self, repo: str, data: bytes, digest: str) -> None:
        base = urljoin(self.url, f"v2/{repo}/")
        if self._http.head(f"{base}blobs/sha256:{digest}").status_code == 200:
            return
        started = self._http.post(f"{base}blobs/uploads/")
        if started.status_code != 202 or "location" not in started.headers:
            raise self._fail("starting an upload", started)
        location = urljoin(self.url, started.headers["location"])
        joiner = "&" if "?" in location else "?"
        done = self._http.put(
            f"{location}{joiner}digest=sha256:{digest}",
            content=data,
            headers={"content-type": "application/octet-stream"},
        )
        if done.status_code != 201:
            raise self._fail("a blob", done)

    def put(self, package: str, version: str, data: bytes) -> str:
        repo = self._repo(package)
        digest = hashlib.sha256(data).hexdigest()
        empty = hashlib.sha256(EMPTY_CONFIG).hexdigest()
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": {
                "mediaType": EMPTY_MEDIA_TYPE,
                "digest": f"sha256:{empty}",
                "size": len(EMPTY_CONFIG),
            },
            "layers": [
                {
                    "mediaType": PACKAGE_MEDIA_TYPE,
                    "digest": f"sha256:{digest}",
                    "size": len(data),
                    "annotations": {"org.opencontainers.image.title": f"{package}-{version}.wdpk"},
                }
            ],
            "annotations": {"org.opencontainers.image.version": version},
        }
        for attempt in range(_MANIFEST_ATTEMPTS):
            self._push_blob(repo, EMPTY_CONFIG, empty)
            self._push_blob(repo, data, digest)
            response = self._http.put(
                urljoin(self.url, f"v2/{repo}/manifests/{version}"),
                content=json.dumps(manifest, sort_keys=True).encode(),
                headers={"content-type": MANIFEST_MEDIA_TYPE},
            )
            if response.status_code == 201:
                return digest
            # Two processes pushing the same blob at once: distribution can answer
            # the manifest with MANIFEST_BLOB_UNKNOWN while the other upload is being
            # linked (tests/test_market_processes.py found it); push again, then retry.
            if "BLOB_UNKNOWN" not in response.text or attempt == _MANIFEST_ATTEMPTS - 1:
                break
        raise self._fail("the manifest", response)

    def get(self, package: str, digest: str) -> bytes:
        url = urljoin(self.url, f"v2/{self._repo(package)}/blobs/sha256:{digest}")
        response = self._http.get(url)
        if response.status_code == 404:
            raise NotFound(f"the package file sha256:{digest} is missing from the registry")
        if response.status_code != 200:
            raise self._fail("a download", response)
        return _checked(response.content, digest, self.url)

    def close(self) -> None:
        self._http.close()
