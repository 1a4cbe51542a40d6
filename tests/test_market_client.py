"""The client commands against a real marketplace (``wasmdeck search/install/outdated/
update/publish/yank``), and the refusals against a malicious one: the client never
trusts the server."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from marketfix import MarketServer, Served, new_key, pack, unique
from pkghelp import home, wasmdeck  # noqa: F401
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wasmdeck.packages import PluginManager, load_signing_key, rotation_message


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    # The client's behaviour does not depend on the server's database: SQLite only.
    from marketfix import GENEROUS

    from wasmdeck_market import FileBlobs, Market, open_database

    tmp = tmp_path_factory.mktemp("client-market")
    market = Market(open_database(tmp), FileBlobs(tmp / "blobs"))
    with MarketServer(market, limits=GENEROUS, open_signup=True) as running:
        yield running


pytestmark = pytest.mark.usefixtures("home")


def cli(server_url: str, *args: str | Path, token: str | None = None, input: bytes = b"") -> Any:
    env = {"WASMDECK_MARKET": server_url}
    if token:
        env["WASMDECK_MARKET_TOKEN"] = token
    return wasmdeck(*args, env=env, input=input)


def test_publish_search_install_outdated_update_yank(
    sqlite_server: MarketServer, signer: Path, tmp_path: Path
) -> None:
    server = sqlite_server
    token = server.publisher(signer)
    name = unique("tool")
    caps = [{"kind": "kv"}]
    v1 = pack(tmp_path, signer, name=name, version="1.0.0", capabilities=caps)
    published = cli(server.url, "publish", v1, token=token)
    assert published.returncode == 0, published.stderr
    assert f"published {name} 1.0.0" in published.stdout
    found = cli(server.url, "search", name)
    assert found.returncode == 0 and f"{name} 1.0.0" in found.stdout, found.stdout
    # Without a terminal and without --yes: the same refusal as a local install.
    refused = cli(server.url, "install", name)
    assert refused.returncode == 2, refused.stderr
    assert "kv [low risk]" in refused.stderr and "--yes" in refused.stderr
    done = cli(server.url, "install", name, "--yes")
    assert done.returncode == 0, done.stderr
    assert f"installed {name} 1.0.0" in done.stdout
    assert "wasmdeck: downloading" in done.stderr  # the progress report, not on a terminal
    assert "it asks for:" in done.stderr  # the consent screen of a local install
    assert cli(server.url, "outdated").stdout.strip() == "all installed plugins are up to date"
    v11 = pack(tmp_path, signer, name=name, version="1.1.0", capabilities=caps)
    assert cli(server.url, "publish", v11, token=token).returncode == 0
    assert f"{name}  1.0.0 -> 1.1.0" in cli(server.url, "outdated").stdout
    updated = cli(server.url, "update", name)
    assert updated.returncode == 0, updated.stderr
    assert f"upgraded {name} 1.1.0" in updated.stdout
    assert PluginManager().get(name).version == "1.1.0"
    # A yanked version is skipped: the newest that is not yanked is installed...
    v12 = pack(tmp_path, signer, name=name, version="1.2.0", capabilities=caps)
    assert cli(server.url, "publish", v12, token=token).returncode == 0
    no_reason = cli(server.url, "yank", f"{name}@1.2.0", token=token)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    yanked = cli(server.url, "yank", f"{name}@1.2.0", "--reason", "broken", token=token)
    assert yanked.returncode == 0, yanked.stderr
    assert cli(server.url, "outdated").stdout.strip() == "all installed plugins are up to date"
    assert "is up to date" in cli(server.url, "update", name).stdout
    # ... unless it is pinned.
    pinned = cli(server.url, "install", f"{name}@1.2.0", "--yes")
    assert pinned.returncode == 0, pinned.stderr
    assert "is yanked (broken)" in pinned.stderr
    assert PluginManager().get(name).version == "1.2.0"


def test_update_to_a_chosen_version_never_back(
    sqlite_server: MarketServer, signer: Path, tmp_path: Path
) -> None:
    server = sqlite_server
    token = server.publisher(signer)
    name = unique("pin")
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        package = pack(tmp_path, signer, name=name, version=version)
        assert cli(server.url, "publish", package, token=token).returncode == 0
    assert cli(server.url, "install", f"{name}@1.0.0", "--yes").returncode == 0
    listed = json.loads(cli(server.url, "outdated", "--json").stdout)
    assert listed == [
        {"name": name, "installed": "1.0.0", "newest": "1.2.0", "choices": ["1.2.0", "1.1.0"]}
    ]
    # Not only the newest: NAME@VERSION picks one...
    middle = cli(server.url, "update", f"{name}@1.1.0")
    assert middle.returncode == 0, middle.stderr
    assert f"upgraded {name} 1.1.0" in middle.stdout
    # ... but never an older one than installed.
    back = cli(server.url, "update", f"{name}@1.0.0")
    assert back.returncode == 4, back.stderr
    assert "older than the installed 1.1.0" in back.stderr
    assert PluginManager().get(name).version == "1.1.0"


def test_publish_refuses_an_unsigned_package_and_a_missing_token(
    sqlite_server: MarketServer, signer: Path, tmp_path: Path
) -> None:
    unsigned = pack(tmp_path, None, name=unique("u"))
    result = cli(sqlite_server.url, "publish", unsigned, token="wdm_x")
    assert result.returncode == 2 and "unsigned" in result.stderr
    signed = pack(tmp_path, signer, name=unique("s"))
    result = cli(sqlite_server.url, "publish", signed)
    assert result.returncode == 2 and "API token" in result.stderr
    result = cli(sqlite_server.url, "publish", signed, token="wdm_wrong")
    assert result.returncode == 1 and "not valid" in result.stderr


def test_market_login_stores_the_token_privately() -> None:
    result = wasmdeck("market", "login", "--market", "http://127.0.0.1:1", input=b"wdm_tok\n")
    assert result.returncode == 0, result.stderr
    stored = Path(os.environ["WASMDECK_HOME"]) / "market.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    shown = wasmdeck("market", env={"WASMDECK_MARKET": ""})
    assert "http://127.0.0.1:1" in shown.stdout and "token: set" in shown.stdout
    assert "wdm_tok" not in shown.stdout


# -- a malicious marketplace -----------------------------------------------------------


class Malicious(Served):
    """Serves whatever index and files the test puts in: ``index[name]`` (the package
    JSON) and ``files[(name, version)]`` (the bytes sent as that version)."""

    def __init__(self) -> None:
        self.index: dict[str, dict[str, Any]] = {}
        self.files: dict[tuple[str, str], bytes] = {}

        async def package(request: Request) -> Response:
            name = request.path_params["name"]
            if name not in self.index:
                return JSONResponse({"error": {"code": "not_found", "message": "no"}}, 404)
            return JSONResponse(self.index[name])

        async def download(request: Request) -> Response:
            key = (request.path_params["name"], request.path_params["version"])
            return Response(self.files[key], media_type="application/octet-stream")

        super().__init__(
            Starlette(
                routes=[
                    Route("/api/v1/packages/{name}", package),
                    Route("/api/v1/packages/{name}/versions/{version}/download", download),
                ]
            )
        )

    def offer(
        self, path: Path, *, listed: Path | None = None, rotations: list[Any] | None = None
    ) -> tuple[str, str]:
        """List ``listed`` (default ``path``) honestly, but send ``path``'s bytes."""
        from wasmdeck.packages import Package

        described = Package.parse((listed or path).read_bytes())
        data = (listed or path).read_bytes()
        assert described.signature is not None
        entry = {
            "version": described.version,
            "file_digest": hashlib.sha256(data).hexdigest(),
            "digest": described.digest_hex,
            "size": len(data),
            "key_id": described.signature.key_id_hex,
            "yanked": None,
            "published_at": 1.0,
        }
        info = self.index.setdefault(
            described.name, {"name": described.name, "versions": [], "rotations": []}
        )
        info["versions"].append(entry)
        info["rotations"] = rotations or []
        self.files[(described.name, described.version)] = path.read_bytes()
        return described.name, described.version


@pytest.fixture
def malicious() -> Any:
    with Malicious() as server:
        yield server


def test_a_download_that_is_not_the_listed_file_is_refused(
    malicious: Malicious, signer: Path, tmp_path: Path
) -> None:
    name = unique("evil")
    good = pack(tmp_path, signer, name=name, version="1.0.0")
    malicious.offer(good)
    data = bytearray(good.read_bytes())
    data[-40] ^= 1  # inside the checksum: the bytes differ from what the index says
    malicious.files[(name, "1.0.0")] = bytes(data)
    result = cli(malicious.url, "install", name, "--yes")
    assert result.returncode == 4, result.stderr
    assert "is not the one the marketplace lists" in result.stderr
    # More bytes than listed: cut off and refused.
    malicious.files[(name, "1.0.0")] = good.read_bytes() + b"\0" * 100_000
    result = cli(malicious.url, "install", name, "--yes")
    assert result.returncode == 4 and "more than the" in result.stderr, result.stderr
    assert PluginManager().list() == []


def test_a_swapped_package_is_refused_even_with_a_matching_file_digest(
    malicious: Malicious, signer: Path, tmp_path: Path
) -> None:
    name = unique("swap")
    other = pack(tmp_path, signer, name=unique("other"), version="1.0.0", out="other.wdpk")
    wanted = pack(tmp_path, signer, name=name, version="1.0.0")
    malicious.offer(wanted)
    # The index entry re-described to match the other package's file, name kept.
    data = other.read_bytes()
    entry = malicious.index[name]["versions"][0]
    entry.update(file_digest=hashlib.sha256(data).hexdigest(), size=len(data))
    malicious.files[(name, "1.0.0")] = data
    result = cli(malicious.url, "install", name, "--yes")
    assert result.returncode == 4, result.stderr
    assert "another package than it lists" in result.stderr
    assert PluginManager().list() == []


def test_an_older_version_served_as_newest_is_refused(
    malicious: Malicious, signer: Path, tmp_path: Path
) -> None:
    name = unique("roll")
    PluginManager().install(pack(tmp_path, signer, name=name, version="2.0.0"), yes=True)
    malicious.offer(pack(tmp_path, signer, name=name, version="1.0.0"))
    for command in (("update", name), ("install", name, "--yes"), ("update",)):
        result = cli(malicious.url, *command)
        assert result.returncode == 4 or command == ("update",), (command, result.stderr)
        if command != ("update",):
            assert "refusing a rollback" in result.stderr
    # `update` with nothing newer listed leaves it be.
    assert PluginManager().get(name).version == "2.0.0"


def test_a_new_signer_is_refused_unless_the_installed_key_consented(
    malicious: Malicious, signer: Path, tmp_path: Path
) -> None:
    name = unique("keys")
    PluginManager().install(pack(tmp_path, signer, name=name, version="1.0.0"), yes=True)
    thief = new_key(tmp_path / "k", "thief.key")
    (tmp_path / "t").mkdir()
    stolen = pack(tmp_path / "t", thief, name=name, version="2.0.0")
    thief_id = load_signing_key(thief).public.key_id
    # A "consent" the server made up (signed by the new key itself) is not believed.
    forged = base64.b64encode(load_signing_key(thief).sign(rotation_message(name, thief_id)))
    old_id = load_signing_key(signer).public.key_id
    rotation = {"from_key": old_id, "to_key": thief_id, "consent": forged.decode()}
    malicious.offer(stolen, rotations=[rotation])
    result = cli(malicious.url, "update", name, "--yes")
    assert result.returncode == 4, result.stderr
    assert f"signed by key {old_id}" in result.stderr and "--replace-signer" in result.stderr
    assert PluginManager().get(name).version == "1.0.0"
    # The installed key's real consent is accepted.
    real = base64.b64encode(load_signing_key(signer).sign(rotation_message(name, thief_id)))
    malicious.index[name]["rotations"] = [{**rotation, "consent": real.decode()}]
    result = cli(malicious.url, "update", name, "--yes")
    assert result.returncode == 0, result.stderr
    assert "the installed version's key consented" in result.stderr
    assert PluginManager().get(name).key_id == thief_id


def test_a_signer_rotation_reaches_installed_clients_only_with_the_old_keys_consent(
    sqlite_server: MarketServer, signer: Path, tmp_path: Path
) -> None:
    server = sqlite_server
    token = server.publisher(signer)
    name = unique("rotate")

    def publish(key: Path, version: str) -> None:
        (tmp_path / version).mkdir()
        path = pack(tmp_path / version, key, name=name, version=version)
        result = cli(server.url, "publish", path, token=token)
        assert result.returncode == 0, result.stderr

    publish(signer, "1.0.0")
    assert cli(server.url, "install", name, "--yes").returncode == 0
    laptop = new_key(tmp_path / "k", "laptop.key")
    pub = laptop.with_name("laptop.key.pub")
    assert cli(server.url, "market", "add-key", pub, token=token).returncode == 0
    no_reason = cli(server.url, "market", "rotate", name, pub, token=token)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    rotated = cli(server.url, "market", "rotate", name, pub, "--consent-key", signer,
                  "--reason", "new laptop", token=token)  # fmt: skip
    assert rotated.returncode == 0 and "with the old key's consent" in rotated.stdout
    publish(laptop, "2.0.0")
    updated = cli(server.url, "update", name)
    assert updated.returncode == 0, updated.stderr
    assert PluginManager().get(name).key_id == load_signing_key(laptop).public.key_id
    # An explicit rotation (no consent): installed clients refuse the new signer...
    spare = new_key(tmp_path / "k", "spare.key")
    spare_pub = spare.with_name("spare.key.pub")
    assert cli(server.url, "market", "add-key", spare_pub, token=token).returncode == 0
    explicit = cli(server.url, "market", "rotate", name, spare_pub, "--reason", "lost", token=token)
    assert explicit.returncode == 0 and "explicit rotation" in explicit.stdout
    publish(spare, "3.0.0")
    refused = cli(server.url, "update", name)
    assert refused.returncode == 4 and "--replace-signer" in refused.stderr, refused.stderr
    assert PluginManager().get(name).version == "2.0.0"
    # ... until the user accepts it.
    accepted = cli(server.url, "update", name, "--replace-signer")
    assert accepted.returncode == 0, accepted.stderr
    assert PluginManager().get(name).version == "3.0.0"


def test_search_results_reach_the_terminal_escaped(
    sqlite_server: MarketServer, signer: Path, tmp_path: Path
) -> None:
    token = sqlite_server.publisher(signer)
    name = unique("esc")
    hostile = "fine\x1b[2K\rtotally safe \u202egnp.exe"
    published = sqlite_server.publish(token, pack(tmp_path, signer, name=name, description=hostile))
    assert published.status_code == 201, published.text
    found = cli(sqlite_server.url, "search", name)
    assert found.returncode == 0, found.stderr
    assert "\x1b" not in found.stdout and "\u202e" not in found.stdout
    assert "fine\\x1b[2K\\rtotally safe \\u202egnp.exe" in found.stdout


def test_the_progress_bar_draws_on_a_terminal_and_names_what_it_downloads() -> None:
    import io

    from wasmdeck.cli._progress import ProgressBar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    bar = ProgressBar("evil\x1b[2Jname", stream=out)
    for done in (0, 512 << 10, 1 << 20, 2 << 20):
        bar(done, 2 << 20)
    bar.finish()
    text = out.getvalue()
    assert "[------------------------------]   0% 0.0 kB/2.0 MB" in text  # the first draw
    assert "[##############################] 100% 2.0 MB/2.0 MB" in text
    assert "\x1b[2J" not in text and "evil\\x1b[2Jname" in text
    assert text.endswith("\n") and "downloaded evil\\x1b[2Jname (2.0 MB)" in text


# -- rate limits ----------------------------------------------------------------------


@pytest.fixture
def limited(tmp_path: Path) -> Any:
    """A marketplace allowing one read and one write per 4 s (burst 1), on a clock the
    test steps; the client's sleep steps it too, so waiting takes no time."""
    from wasmdeck_market import FileBlobs, Limits, Market, open_database

    clock = [1000.0]
    market = Market(open_database(tmp_path / "db"), FileBlobs(tmp_path / "blobs"))
    limits = Limits(read_rate=0.25, read_burst=1, write_rate=0.25, write_burst=1)
    with MarketServer(market, limits=limits, open_signup=True, clock=lambda: clock[0]) as server:
        yield server, clock


def test_a_short_retry_after_is_waited_out_once_for_reads(limited: Any) -> None:
    from wasmdeck.packages import MarketClient, MarketError

    server, clock = limited
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    with MarketClient(server.url, sleep=sleep) as client:
        assert client.search("")["total"] == 0
        assert client.search("")["total"] == 0  # refused, waited 4 s, sent again
        assert slept == [4.0]
    # Longer than the client waits: refused, saying how long.
    with (
        MarketClient(server.url, sleep=sleep, max_wait=2.0) as client,
        pytest.raises(MarketError) as refused,
    ):
        client.search("")
    assert refused.value.status == 429 and refused.value.retry_after == 4.0
    assert "too many requests; slow down (it asks to wait 4 s before trying again)" in str(
        refused.value
    )
    assert slept == [4.0]
    # A write is never sent twice: the refusal says when to try again.
    clock[0] += 10
    with MarketClient(server.url, token="wdm_x", sleep=sleep) as client:
        with pytest.raises(MarketError) as first:
            client.add_key("not a key")
        assert first.value.status == 401
        with pytest.raises(MarketError) as second:
            client.add_key("not a key")
    assert second.value.status == 429 and "wait 4 s" in str(second.value)
    assert slept == [4.0]


def test_the_cli_prints_how_long_a_rate_limit_asks_to_wait(tmp_path: Path) -> None:
    from wasmdeck_market import FileBlobs, Limits, Market, open_database

    market = Market(open_database(tmp_path / "db"), FileBlobs(tmp_path / "blobs"))
    limits = Limits(read_rate=0.01, read_burst=1)  # one search per 100 s
    with MarketServer(market, limits=limits) as server:
        assert cli(server.url, "search", "x").returncode == 0
        result = cli(server.url, "search", "x")
    assert result.returncode == 1, result.stderr
    assert re.search(
        r"^wasmdeck: the marketplace refused: too many requests; slow down "
        r"\(it asks to wait (9\d|100) s before trying again\)$",
        result.stderr,
        re.M,
    ), result.stderr
