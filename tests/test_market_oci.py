"""The OCI blob store against a real registry (Debian's docker-registry, CNCF
distribution): packages pushed as OCI artifacts, served back checked."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from marketfix import GENEROUS, MarketServer, Registry, make_market, pack, unique

from wasmdeck_market import ARTIFACT_TYPE, PACKAGE_MEDIA_TYPE


@pytest.fixture(params=["sqlite", "postgresql"])
def oci_server(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    market = make_market(request.param, tmp_path, request, oci=True)
    with MarketServer(market, limits=GENEROUS, open_signup=True) as running:
        yield running


def test_a_package_is_pushed_as_an_oci_artifact_and_served_back(
    oci_server: MarketServer, registry: Registry, signer: Path, tmp_path: Path
) -> None:
    token = oci_server.publisher(signer)
    name = unique("oci")
    path = pack(tmp_path, signer, name=name, version="1.2.3")
    published = oci_server.publish(token, path)
    assert published.status_code == 201, published.text
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    repo = f"{oci_server.market.blobs.namespace}/{name}"  # type: ignore[attr-defined]
    manifest = httpx.get(
        f"{registry.url}/v2/{repo}/manifests/1.2.3",
        headers={"accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert manifest.status_code == 200, manifest.text
    body = manifest.json()
    assert body["artifactType"] == ARTIFACT_TYPE
    assert body["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert [(layer["mediaType"], layer["digest"], layer["size"]) for layer in body["layers"]] == [
        (PACKAGE_MEDIA_TYPE, f"sha256:{digest}", len(data))
    ]
    blob = httpx.get(f"{registry.url}/v2/{repo}/blobs/sha256:{digest}")
    assert blob.content == data
    with oci_server.client() as http:
        got = http.get(f"/api/v1/packages/{name}/versions/1.2.3/download")
    assert got.status_code == 200 and got.content == data


def test_a_blob_altered_in_the_registry_is_not_served(
    oci_server: MarketServer, registry: Registry, signer: Path, tmp_path: Path
) -> None:
    token = oci_server.publisher(signer)
    name = unique("alter")
    path = pack(tmp_path, signer, name=name)
    assert oci_server.publish(token, path).status_code == 201
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    stored = next(
        registry.root.glob(f"data/docker/registry/v2/blobs/sha256/{digest[:2]}/{digest}/data")
    )
    original = stored.read_bytes()
    stored.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        with oci_server.client() as http:
            got = http.get(f"/api/v1/packages/{name}/versions/1.0.0/download")
        assert got.status_code == 500, got.text
        assert got.json()["error"]["code"] == "blob_corrupt"
    finally:
        stored.write_bytes(original)
