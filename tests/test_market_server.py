"""The marketplace server over its JSON API, on SQLite and on PostgreSQL alike:
publishing and its refusals, discovery, package data, reviews, abuse limits."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from marketfix import MarketServer, Postgres, make_market, new_key, pack, unique
from starlette.routing import Route

from wasmdeck.packages import Package, load_signing_key, sign_package
from wasmdeck_market import Limits, page_routes, rotation_message

WDPK = {"content-type": "application/vnd.wasmdeck.package.v1+wdpk"}


def published(server: MarketServer, token: str, path: Path) -> dict[str, object]:
    response = server.publish(token, path)
    assert response.status_code == 201, response.text
    return dict(response.json())


def refused(response: object, status: int, words: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    message = response.json()["error"]["message"]  # type: ignore[attr-defined]
    assert words in message, message


# -- publishing ------------------------------------------------------------------------


def test_a_signed_package_publishes_and_its_data_is_served(
    server: MarketServer, signer: Path, tmp_path: Path
) -> None:
    token = server.publisher(signer)
    name = unique("obs")
    caps = [{"kind": "network", "scope": {"host": "127.0.0.1"}}, {"kind": "kv"}]
    path = pack(tmp_path, signer, name=name, version="1.0.0", capabilities=caps,
                keywords=["streaming", "scenes"], category="streaming", author="Acme Audio")  # fmt: skip
    entry = published(server, token, path)
    data = path.read_bytes()
    assert entry["file_digest"] == hashlib.sha256(data).hexdigest()
    assert entry["size"] == len(data)
    assert entry["key_id"] == load_signing_key(signer).public.key_id
    with server.client() as http:
        info = http.get(f"/api/v1/packages/{name}").json()
    assert info["latest"] == "1.0.0" and info["category"] == "streaming"
    assert info["keywords"] == ["streaming", "scenes"] and info["author"] == "Acme Audio"
    assert info["signer_key_id"] == entry["key_id"]
    risks = {c["kind"]: c["risk"] for c in info["capabilities"]}
    assert risks == {"network": "medium", "kv": "low"}
    assert [v["version"] for v in info["versions"]] == ["1.0.0"]
    assert info["versions"][0]["published_at"] > 0
    with server.client() as http:
        got = http.get(f"/api/v1/packages/{name}/versions/1.0.0/download")
    assert got.content == data


def test_tampered_unsigned_and_foreign_key_uploads_are_refused_before_storing(
    server: MarketServer, signer: Path, tmp_path: Path
) -> None:
    token = server.publisher(signer)
    name = unique("bad")
    good = pack(tmp_path, signer, name=name).read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 1
    tampered = tmp_path / "tampered.wdpk"
    tampered.write_bytes(bytes(flipped))
    refused(server.publish(token, tampered), 422, "the package was refused")
    # Re-signed with a key of nobody here: the signature is valid, the key unknown.
    stranger = new_key(tmp_path / "k", "stranger.key")
    resigned = tmp_path / "stranger.wdpk"
    resigned.write_bytes(sign_package(Package.parse(good), load_signing_key(stranger)).encode())
    refused(server.publish(token, resigned), 403, "not registered to your account")
    unsigned = pack(tmp_path, None, name=name)
    refused(server.publish(token, unsigned), 422, "unsigned")
    with server.client() as http:
        assert http.get(f"/api/v1/packages/{name}").status_code == 404
    hashes = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (tampered, resigned, unsigned)]
    for digest in hashes:
        assert not (server.market.blobs.root / digest).exists()  # type: ignore[attr-defined]


def test_versions_are_immutable_and_only_go_up(
    server: MarketServer, signer: Path, tmp_path: Path
) -> None:
    token = server.publisher(signer)
    name = unique("ver")
    published(server, token, pack(tmp_path, signer, name=name, version="1.1.0"))
    # The same version again, even a different build of it: refused.
    again = pack(tmp_path, signer, name=name, version="1.1.0", description="changed")
    refused(server.publish(token, again), 409, "already published")
    older = pack(tmp_path, signer, name=name, version="1.0.9")
    refused(server.publish(token, older), 409, "versions only go up")
    published(server, token, pack(tmp_path, signer, name=name, version="1.2.0-rc.1"))
    published(server, token, pack(tmp_path, signer, name=name, version="1.2.0"))
    with server.client() as http:
        versions = [v["version"] for v in http.get(f"/api/v1/packages/{name}").json()["versions"]]
    assert versions == ["1.2.0", "1.2.0-rc.1", "1.1.0"]


def test_nobody_can_publish_yank_or_deprecate_another_publishers_package(
    server: MarketServer, signer: Path, tmp_path: Path
) -> None:
    owner = server.publisher(signer)
    name = unique("owned")
    published(server, owner, pack(tmp_path, signer, name=name, version="1.0.0"))
    other_key = new_key(tmp_path / "k")
    intruder = server.publisher(other_key)
    takeover = pack(tmp_path, other_key, name=name, version="9.0.0")
    refused(server.publish(intruder, takeover), 403, "belongs to another publisher")
    with server.client(intruder) as http:
        yank = http.post(f"/api/v1/packages/{name}/versions/1.0.0/yank", json={"reason": "x"})
        refused(yank, 403, "another publisher")
        refused(
            http.post(f"/api/v1/packages/{name}/deprecate", json={"reason": "x"}), 403, "another"
        )
        # A key registered to one account cannot be claimed by another.
        pub = signer.with_name(signer.name + ".pub").read_text()
        refused(http.post("/api/v1/keys", json={"public_key": pub}), 409, "another account")
    with server.client() as http:
        anonymous = http.post(f"/api/v1/packages/{name}/versions/1.0.0/yank", json={"reason": "x"})
    refused(anonymous, 401, "API token")


def test_a_new_signer_needs_the_old_keys_consent_or_an_explicit_rotation(
    server: MarketServer, signer: Path, tmp_path: Path
) -> None:
    token = server.publisher(signer)
    name = unique("rot")
    published(server, token, pack(tmp_path, signer, name=name, version="1.0.0"))
    new = new_key(tmp_path / "k", "new.key")
    new_id = load_signing_key(new).public.key_id
    with server.client(token) as http:
        pub = new.with_name("new.key.pub").read_text()
        assert http.post("/api/v1/keys", json={"public_key": pub}).status_code == 201
        v2 = pack(tmp_path, new, name=name, version="2.0.0")
        refused(server.publish(token, v2), 409, "rotate first")
        # A consent signed by the wrong key is refused...
        bad = base64.b64encode(load_signing_key(new).sign(rotation_message(name, new_id))).decode()
        refused(
            http.post(f"/api/v1/packages/{name}/rotate",
                      json={"key_id": new_id, "consent": bad, "reason": "new laptop"}),
            422, "not a valid signature by the old key",
        )  # fmt: skip
        # ... the old key's is accepted.
        old = load_signing_key(signer)
        consent = base64.b64encode(old.sign(rotation_message(name, new_id))).decode()
        rotated = http.post(
            f"/api/v1/packages/{name}/rotate",
            json={"key_id": new_id, "consent": consent, "reason": "new laptop"},
        )
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["rotations"][0]["consent"] == consent
        published(server, token, v2)
        # Back to the old key without its consent: an explicit rotation, on record.
        back = http.post(
            f"/api/v1/packages/{name}/rotate",
            json={"key_id": old.public.key_id, "reason": "lost the new key"},
        )
        assert back.status_code == 200, back.text
        assert back.json()["rotations"][-1]["consent"] is None
        # A revoked key can sign nothing more.
        assert http.delete(f"/api/v1/keys/{old.public.key_id}").status_code == 200
    v3 = pack(tmp_path, signer, name=name, version="3.0.0")
    refused(server.publish(token, v3), 403, "revoked")


def test_yank_and_deprecate_carry_a_reason(
    server: MarketServer, signer: Path, tmp_path: Path
) -> None:
    token = server.publisher(signer)
    name = unique("yank")
    published(server, token, pack(tmp_path, signer, name=name, version="1.0.0"))
    with server.client(token) as http:
        base = f"/api/v1/packages/{name}"
        refused(http.post(f"{base}/versions/1.0.0/yank", json={}), 422, "reason")
        yanked = http.post(f"{base}/versions/1.0.0/yank", json={"reason": "CVE-2026-1"})
        assert yanked.json()["yanked"] == "CVE-2026-1"
        assert http.delete(f"{base}/versions/1.0.0/yank").json()["yanked"] is None
        gone = http.post(f"{base}/deprecate", json={"reason": "use obs-control"})
        assert gone.json()["deprecated"] == "use obs-control"
        refused(http.post(f"{base}/versions/9.9.9/yank", json={"reason": "x"}), 404, "no version")


# -- discovery -------------------------------------------------------------------------


def test_search_covers_name_description_keywords_author_with_categories_sorting_pages(
    server: MarketServer, signer: Path, tmp_path: Path
) -> None:
    token = server.publisher(signer)
    tag = unique("zq").replace("-", "")  # a word no other package has
    names = []
    for i, (extra, category) in enumerate(
        [
            ({"description": f"{tag} lights"}, "lighting"),
            ({"keywords": [tag, "midi"]}, "midi"),
            ({"author": f"{tag} Studios"}, "midi"),
        ]
    ):
        name = f"{tag}-{i}"
        names.append(name)
        path = pack(tmp_path, signer, name=name, category=category, **extra)
        saved, server.market.clock = server.market.clock, lambda i=i: 2e9 + i  # one a second
        try:
            published(server, token, path)
        finally:
            server.market.clock = saved
    with server.client() as http:

        def found(**params: object) -> list[str]:
            answer = http.get("/api/v1/packages", params={"q": tag, **params})
            assert answer.status_code == 200, answer.text
            return [p["name"] for p in answer.json()["packages"]]

        assert sorted(found()) == names
        assert sorted(found(category="midi")) == names[1:]
        assert found(q=tag[:5] + " midi") == [names[1]]  # prefixes; every word must match
        assert found(q="nothing-like-this-" + tag) == []
        # FTS syntax in a query is only text.
        assert http.get("/api/v1/packages", params={"q": 'a" OR "b*) NEAR('}).status_code == 200
        for _ in range(3):
            http.get(f"/api/v1/packages/{names[2]}/versions/1.0.0/download")
        http.get(f"/api/v1/packages/{names[0]}/versions/1.0.0/download")
        assert found(sort="downloads") == [names[2], names[0], names[1]]
        assert found(sort="recent") == names[::-1]
        assert found(sort="name") == names
        page = http.get(
            "/api/v1/packages", params={"q": tag, "sort": "name", "per_page": 2, "page": 2}
        )
        assert (
            page.json()["total"] == 3 and [p["name"] for p in page.json()["packages"]] == names[2:]
        )
        refused(http.get("/api/v1/packages", params={"sort": "random"}), 422, "sort must be")
        refused(http.get("/api/v1/packages", params={"per_page": 1000}), 422, "per_page")
        categories = {c["name"] for c in http.get("/api/v1/categories").json()["categories"]}
        assert {"lighting", "midi"} <= categories


def test_sorting_by_rating_and_reviews_one_per_account_editable_report_and_hide(
    server: MarketServer, signer: Path, tmp_path: Path
) -> None:
    token = server.publisher(signer)
    tag = unique("rv").replace("-", "")
    low, high = f"{tag}-low", f"{tag}-high"
    for name in (low, high):
        published(server, token, pack(tmp_path, signer, name=name))
    _, admin_token = server.market.create_account(unique("mod"), admin=True)
    reviewer = server.publisher(new_key(tmp_path / "k"))
    with server.client(reviewer) as http:
        assert http.put(f"/api/v1/packages/{low}/reviews", json={"rating": 2}).status_code == 200
        first = http.put(f"/api/v1/packages/{high}/reviews", json={"rating": 3, "body": "ok"})
        assert first.status_code == 200, first.text
        edited = http.put(f"/api/v1/packages/{high}/reviews", json={"rating": 5, "body": "great"})
        assert edited.json()["rating"] == 5
        refused(http.put(f"/api/v1/packages/{high}/reviews", json={"rating": 6}), 422, "1 to 5")
    with server.client() as http:
        reviews = http.get(f"/api/v1/packages/{high}/reviews").json()["reviews"]
        assert [(r["rating"], r["body"]) for r in reviews] == [(5, "great")]
        info = http.get(f"/api/v1/packages/{high}").json()
        assert (info["rating"], info["rating_count"]) == (5.0, 1)
        ranked = http.get("/api/v1/packages", params={"q": tag, "sort": "rating"}).json()
        assert [p["name"] for p in ranked["packages"]] == [high, low]
    author = dict(server.client(reviewer).get("/api/v1/me").json())["name"]
    with server.client(token) as http:
        report = http.post(
            f"/api/v1/packages/{high}/reviews/{author}/report", json={"reason": "spam"}
        )
        assert report.json()["reports"] == 1
        again = http.post(
            f"/api/v1/packages/{high}/reviews/{author}/report", json={"reason": "spam"}
        )
        refused(again, 409, "already reported")
        refused(
            http.post(f"/api/v1/packages/{high}/reviews/{author}/hide", json={}), 403, "moderator"
        )
    with server.client(admin_token) as http:
        assert any(r["author"] == author for r in http.get("/api/v1/reports").json()["reports"])
        hidden = http.post(f"/api/v1/packages/{high}/reviews/{author}/hide", json={"hidden": True})
        assert hidden.json()["hidden"] is True
    with server.client() as http:
        assert http.get(f"/api/v1/packages/{high}/reviews").json()["reviews"] == []
        assert http.get(f"/api/v1/packages/{high}").json()["rating_count"] == 0


def test_downloads_are_counted_per_version_and_per_day(
    server: MarketServer, signer: Path, tmp_path: Path
) -> None:
    token = server.publisher(signer)
    name = unique("dl")
    for version in ("1.0.0", "1.1.0"):
        published(server, token, pack(tmp_path, signer, name=name, version=version))
    day = 86_400.0
    clock = [20_000 * day + 100]  # 2024-10-04
    saved = server.market.clock
    server.market.clock = lambda: clock[0]
    try:
        with server.client() as http:
            for version, step in (("1.0.0", 0), ("1.1.0", 0), ("1.1.0", day), ("1.1.0", 0)):
                clock[0] += step
                got = http.get(f"/api/v1/packages/{name}/versions/{version}/download")
                assert got.status_code == 200
            stats = http.get(f"/api/v1/packages/{name}/downloads").json()
    finally:
        server.market.clock = saved
    assert stats["total"] == 4
    assert stats["per_day"] == [
        {"day": "2024-10-04", "count": 2},
        {"day": "2024-10-05", "count": 2},
    ]
    assert stats["per_version"] == [
        {"version": "1.1.0", "downloads": 3},
        {"version": "1.0.0", "downloads": 1},
    ]


# -- accounts and abuse ----------------------------------------------------------------


def test_tokens_are_stored_hashed(server: MarketServer, signer: Path) -> None:
    token = server.publisher(signer)
    with server.market.db.transaction() as tx:
        rows = tx.all("SELECT hash FROM tokens")
    stored = {r["hash"] for r in rows}
    assert token not in stored
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    with server.client("wdm_not-a-token") as http:
        refused(http.get("/api/v1/me"), 401, "not valid")
    with server.client(token) as http:
        second = http.post("/api/v1/tokens", json={"label": "ci"}).json()["token"]
        assert http.delete("/api/v1/tokens").status_code == 200
        refused(http.get("/api/v1/me"), 401, "not valid")
    with server.client(second) as http:
        assert http.get("/api/v1/me").status_code == 200


@pytest.fixture(params=["sqlite", "postgresql"])
def strict(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """A marketplace with tight limits and a clock the test steps."""
    clock = [1000.0]
    limits = Limits(write_rate=1.0, write_burst=2, max_json=1024, max_package=4096)
    market = make_market(request.param, tmp_path, request, max_package=4096)
    with MarketServer(
        market, limits=limits, open_signup=True, clock=lambda: clock[0], routes=page_routes()
    ) as running:
        yield running, clock


def test_writes_are_rate_limited_per_client(strict: tuple[MarketServer, list[float]]) -> None:
    server, clock = strict
    with server.client() as http:
        for _ in range(2):
            assert http.post("/api/v1/accounts", json={"name": unique("a")}).status_code == 201
        limited = http.post("/api/v1/accounts", json={"name": unique("a")})
        refused(limited, 429, "too many requests")
        assert limited.headers["retry-after"] == "1"
        clock[0] += 1.0
        assert http.post("/api/v1/accounts", json={"name": unique("a")}).status_code == 201


def test_a_rate_limited_page_says_when_to_come_back(
    strict: tuple[MarketServer, list[float]],
) -> None:
    server, clock = strict
    with server.client() as http:
        for _ in range(2):  # the write burst: log-in forms are writes
            assert http.post("/login", data={"token": "wdm_wrong"}).status_code == 401
        limited = http.post("/login", data={"token": "wdm_wrong"})
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1"
        assert "too many requests; slow down (try again in 1 s)" in limited.text
        assert limited.headers["content-type"].startswith("text/html")
        clock[0] += 0.25
        assert http.post("/login", data={"token": "wdm_wrong"}).headers["retry-after"] == "1"
        clock[0] += 1.0
        assert http.post("/login", data={"token": "wdm_wrong"}).status_code == 401


def test_oversized_bodies_are_refused(
    strict: tuple[MarketServer, list[float]], signer: Path, tmp_path: Path
) -> None:
    server, clock = strict
    with server.client() as http:
        refused(http.post("/api/v1/accounts", json={"name": "x" * 2000}), 413, "at most 1024")
        token = http.post("/api/v1/accounts", json={"name": unique("a")}).json()["token"]
    big = pack(tmp_path, signer, name=unique("big"), description="x" * 5000)
    clock[0] += 10  # the write budget is refilled: what follows is refused for its size
    refused(server.publish(token, big), 413, "at most 4096")

    def chunks() -> object:  # no Content-Length: counted as it streams
        data = big.read_bytes()
        for i in range(0, len(data), 1000):
            yield data[i : i + 1000]

    with server.client(token) as http:
        streamed = http.post("/api/v1/packages", content=chunks(), headers=WDPK)
    refused(streamed, 413, "larger than 4096")


def test_openapi_describes_every_route(server: MarketServer) -> None:
    with server.client() as http:
        document = http.get("/openapi.json").json()
    described = {
        (path, method.upper()) for path, ops in document["paths"].items() for method in ops
    }
    served = {
        (route.path, method)
        for route in server.app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert described == served
    assert len(described) > 20


def test_a_lost_database_connection_is_replaced(postgres: Postgres) -> None:
    import psycopg

    from wasmdeck_market import open_database

    url = postgres.new_database()
    db = open_database(url=url)
    try:
        with db.transaction() as tx:
            assert tx.one("SELECT 1 AS one") == {"one": 1}
        with psycopg.connect(postgres.url(), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (url.rsplit("/", 1)[1],),
            )
        with pytest.raises(psycopg.OperationalError), db.transaction() as tx:
            tx.one("SELECT 1 AS one")  # the request in flight fails (a JSON 500)...
        with db.transaction() as tx:  # ... the next one gets a new connection
            assert tx.one("SELECT 1 AS one") == {"one": 1}
    finally:
        db.close()
