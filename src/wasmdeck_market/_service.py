"""The marketplace's rules, one method per thing it does; the JSON API and any
page on top of it (server-rendered HTML) call these and nothing else.

Publishing checks, in this order, before anything is stored: the package
parses and verifies with wasmdeck's own code (format, checksum, module digest,
canonical manifest, ed25519 signature); it is signed; the key is registered
to this account and not revoked; the name is free or the account's; the
version is new and higher than every published one (versions are immutable
and only go up); the key is the package's current signer (a new key needs
the old key's signed consent or an explicit rotation, ``rotate``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wasmdeck.packages import (
    Manifest,
    Package,
    PackageError,
    PublicKey,
    capability_risks,
    check_signature,
    rotation_message,
    version_key,
)

from ._blobs import BlobStore
from ._db import Database, Tx, search_words
from ._errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized

__all__ = ["Account", "Market", "rotation_message"]

NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,38}$")
# Versions are also OCI tags and URL path segments: no '+', no '/'.
VERSION = re.compile(r"^[0-9]{1,9}(?:\.[0-9]{1,9}){0,3}(?:-[0-9A-Za-z.-]{1,32})?$")
CATEGORY = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
SORTS = ("relevance", "downloads", "rating", "recent", "name")
TOKEN_PREFIX = "wdm_"
MAX_REVIEW = 4000
MAX_REASON = 500
MAX_UPDATES = 1000  # names in one update check


def hash_token(token: str) -> str:
    # Tokens are 256 random bits: a plain SHA-256 is enough to make the stored
    # hashes useless to whoever reads the database (no dictionary to try).
    return hashlib.sha256(token.encode()).hexdigest()


def _sort_key(version: str) -> str:
    numbers, release, suffix = version_key(version)
    return ".".join(f"{n:09d}" for n in numbers) + ("~" if release else "-" + suffix)


def _text(value: Any, what: str, *, limit: int, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        raise BadRequest(f"{what} must be a string of 1-{limit} characters")
    return value


@dataclass(frozen=True, slots=True)
class Account:
    """A publisher (and reviewer) account."""

    id: int
    name: str
    admin: bool


class Market:
    """The marketplace over a database and a blob store; ``clock`` is injectable."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        *,
        max_package: int = 64 << 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.max_package = max_package
        self.clock = clock

    def close(self) -> None:
        self.db.close()
        self.blobs.close()

    # -- accounts, tokens, keys ----------------------------------------------

    def create_account(self, name: str, *, admin: bool = False) -> tuple[Account, str]:
        """A new account and its first API token (shown once; only its hash is kept)."""
        if not isinstance(name, str) or not ACCOUNT.match(name):
            raise BadRequest(
                "an account name is 1-39 letters, digits, '.', '_' or '-', starting with "
                "a letter or digit"
            )
        with self.db.transaction(write=True) as tx:
            if tx.one("SELECT id FROM accounts WHERE lower(name) = lower(?)", (name,)):
                raise Conflict(f"the account name {name!r} is taken")
            row = tx.one(
                "INSERT INTO accounts (name, admin, created_at) VALUES (?, ?, ?) RETURNING id",
                (name, int(admin), self.clock()),
            )
            assert row is not None
            account = Account(int(row["id"]), name, admin)
            token = self._new_token(tx, account, "first token")
        return account, token

    def _new_token(self, tx: Tx, account: Account, label: str) -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        tx.run(
            "INSERT INTO tokens (hash, account_id, label, created_at) VALUES (?, ?, ?, ?)",
            (hash_token(token), account.id, label, self.clock()),
        )
        return token

    def new_token(self, account: Account, label: str = "token") -> str:
        label = _text(label, "a token label", limit=100)
        with self.db.transaction(write=True) as tx:
            return self._new_token(tx, account, label)

    def revoke_token(self, account: Account, token: str) -> None:
        with self.db.transaction(write=True) as tx:
            tx.run(
                "DELETE FROM tokens WHERE hash = ? AND account_id = ?",
                (hash_token(token), account.id),
            )

    def authenticate(self, token: str | None) -> Account:
        if not token:
            raise Unauthorized("this needs an API token (Authorization: Bearer TOKEN)")
        with self.db.transaction() as tx:
            row = tx.one(
                "SELECT a.id, a.name, a.admin FROM tokens t JOIN accounts a "
                "ON a.id = t.account_id WHERE t.hash = ?",
                (hash_token(token),),
            )
        if row is None:
            raise Unauthorized("the API token is not valid")
        return Account(int(row["id"]), str(row["name"]), bool(row["admin"]))

    def add_key(self, account: Account, public_key: str) -> dict[str, Any]:
        """Register an ed25519 public key (the ``.pub`` line or PEM) to the account."""
        try:
            key = PublicKey.from_text(_text(public_key, "public_key", limit=1000))
        except Exception as exc:  # KeyFileError: the text is not a public key
            raise BadRequest(f"public_key: {exc}") from None
        line = key.to_line().strip()
        with self.db.transaction(write=True) as tx:
            row = tx.one("SELECT account_id FROM keys WHERE key_id = ?", (key.key_id,))
            if row is not None and int(row["account_id"]) != account.id:
                raise Conflict(f"key {key.key_id} is registered to another account")
            if row is None:
                tx.run(
                    "INSERT INTO keys (key_id, account_id, public_key, added_at) "
                    "VALUES (?, ?, ?, ?)",
                    (key.key_id, account.id, line, self.clock()),
                )
        return {"key_id": key.key_id, "public_key": line}

    def revoke_key(self, account: Account, key_id: str) -> dict[str, Any]:
        with self.db.transaction(write=True) as tx:
            row = tx.one("SELECT account_id FROM keys WHERE key_id = ?", (key_id,))
            if row is None or int(row["account_id"]) != account.id:
                raise NotFound(f"your account has no key {key_id}")
            tx.run(
                "UPDATE keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (self.clock(), key_id),
            )
        return {"key_id": key_id, "revoked": True}

    def account(self, name: str) -> dict[str, Any]:
        with self.db.transaction() as tx:
            row = tx.one("SELECT id, name, created_at FROM accounts WHERE name = ?", (name,))
            if row is None:
                raise NotFound(f"no account {name!r}")
            keys = tx.all(
                "SELECT key_id, public_key, added_at, revoked_at FROM keys "
                "WHERE account_id = ? ORDER BY added_at",
                (row["id"],),
            )
            packages = tx.all(
                "SELECT name, latest FROM packages WHERE owner_id = ? ORDER BY name", (row["id"],)
            )
        return {
            "name": row["name"],
            "created_at": row["created_at"],
            "keys": keys,
            "packages": packages,
        }

    # -- publishing ----------------------------------------------------------

    def publish(self, account: Account, data: bytes) -> dict[str, Any]:
        """Verify and store a package file; the new version's entry."""
        if len(data) > self.max_package:
            raise BadRequest(f"the package is larger than {self.max_package} bytes")
        try:
            package = Package.parse(data)
            check_signature(package)
        except PackageError as exc:
            raise BadRequest(f"the package was refused: {exc.message}") from None
        if package.signature is None:
            raise BadRequest("the package is unsigned: sign it with a key registered here")
        name, version = package.name, package.version
        if not NAME.match(name):
            raise BadRequest(
                f"the plugin name {name!r} cannot be published: 1-64 lowercase letters, "
                "digits and '-', not starting or ending with '-'"
            )
        if not VERSION.match(version):
            raise BadRequest(
                f"the version {version!r} cannot be published: numbers and dots, "
                "optionally -SUFFIX (like 1.2.0 or 1.2.0-rc.1)"
            )
        fields = _listing(package.manifest)
        key_id = package.signature.key_id_hex
        self._check_key(account, key_id)
        self._check_name(account, name, version, key_id)  # fail early, before the upload
        file_digest = self.blobs.put(name, version, data)
        now = self.clock()
        with self.db.transaction(write=True) as tx:
            self._check_key(account, key_id, tx)
            row = self._check_name(account, name, version, key_id, tx)
            if row is None:
                try:
                    created = tx.one(
                        "INSERT INTO packages (name, owner_id, description, keywords, author, "
                        "category, homepage, license, readme, latest, signer_key_id, "
                        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                        "RETURNING id",
                        (name, account.id, *fields.values(), version, key_id, now, now),
                    )
                except self.db.integrity_errors:
                    # Another process created it between our check and this insert.
                    raise Conflict(f"{name} was just published by another request") from None
                assert created is not None
                package_id = int(created["id"])
            else:
                package_id = int(row["id"])
                tx.run(
                    "UPDATE packages SET description = ?, keywords = ?, author = ?, "
                    "category = ?, homepage = ?, license = ?, readme = ?, latest = ?, "
                    "updated_at = ? WHERE id = ?",
                    (*fields.values(), version, now, package_id),
                )
            try:
                tx.run(
                    "INSERT INTO versions (package_id, version, sort_key, digest, file_digest, "
                    "size, key_id, manifest, published_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        package_id,
                        version,
                        _sort_key(version),
                        package.digest_hex,
                        file_digest,
                        len(data),
                        key_id,
                        package.manifest_bytes.decode("ascii"),
                        now,
                    ),
                )
            except self.db.integrity_errors:
                raise Conflict(f"{name} {version} is already published") from None
            self.db.index(tx, package_id, {"name": name, **fields})
        return self.version(name, version)

    def _check_key(self, account: Account, key_id: str, tx: Tx | None = None) -> None:
        with self._tx(tx) as t:
            row = t.one("SELECT account_id, revoked_at FROM keys WHERE key_id = ?", (key_id,))
        if row is None or int(row["account_id"]) != account.id:
            raise Forbidden(
                f"the package is signed by key {key_id}, which is not registered to your "
                "account (POST /api/v1/keys)"
            )
        if row["revoked_at"] is not None:
            raise Forbidden(f"key {key_id} is revoked")

    def _check_name(
        self, account: Account, name: str, version: str, key_id: str, tx: Tx | None = None
    ) -> dict[str, Any] | None:
        with self._tx(tx) as t:
            row = t.one(
                "SELECT id, owner_id, signer_key_id FROM packages WHERE name = ?"
                + self.db.lock_row,
                (name,),
            )
            if row is None:
                return None
            if int(row["owner_id"]) != account.id:
                raise Forbidden(f"{name} belongs to another publisher")
            if t.one(
                "SELECT 1 AS x FROM versions WHERE package_id = ? AND version = ?",
                (row["id"], version),
            ):
                raise Conflict(f"{name} {version} is already published; versions are immutable")
            top = t.one(
                "SELECT version FROM versions WHERE package_id = ? ORDER BY sort_key DESC LIMIT 1",
                (row["id"],),
            )
        if top is not None and version_key(version) <= version_key(str(top["version"])):
            raise Conflict(
                f"{name} {version} is not newer than the published {top['version']}: "
                "versions only go up"
            )
        if row["signer_key_id"] != key_id:
            raise Conflict(
                f"{name} is signed by key {row['signer_key_id']}; to sign it with {key_id}, "
                "rotate first (POST /api/v1/packages/{name}/rotate) with the old key's consent "
                "or as an explicit rotation"
            )
        return row

    def _tx(self, tx: Tx | None) -> contextlib.AbstractContextManager[Tx]:
        return contextlib.nullcontext(tx) if tx is not None else self.db.transaction()

    def _owned(self, tx: Tx, account: Account, name: str) -> dict[str, Any]:
        row = tx.one("SELECT * FROM packages WHERE name = ?" + self.db.lock_row, (name,))
        if row is None:
            raise NotFound(f"no package {name!r}")
        if int(row["owner_id"]) != account.id:
            raise Forbidden(f"{name} belongs to another publisher")
        return row

    def yank(self, account: Account, name: str, version: str, reason: str | None) -> dict[str, Any]:
        """Yank a version (``reason`` given) or take the yank back (``None``)."""
        if reason is not None:
            reason = _text(reason, "reason", limit=MAX_REASON)
        with self.db.transaction(write=True) as tx:
            row = self._owned(tx, account, name)
            if not tx.run(
                "UPDATE versions SET yanked = ? WHERE package_id = ? AND version = ?",
                (reason, row["id"], version),
            ):
                raise NotFound(f"{name} has no version {version}")
        return self.version(name, version)

    def deprecate(self, account: Account, name: str, reason: str | None) -> dict[str, Any]:
        if reason is not None:
            reason = _text(reason, "reason", limit=MAX_REASON)
        with self.db.transaction(write=True) as tx:
            row = self._owned(tx, account, name)
            tx.run("UPDATE packages SET deprecated = ? WHERE id = ?", (reason, row["id"]))
        return self.package(name)

    def rotate(
        self, account: Account, name: str, key_id: str, *, consent: str | None, reason: str
    ) -> dict[str, Any]:
        """Let ``key_id`` sign the next versions of ``name``: with ``consent`` (the old
        key's signature over ``rotation_message``, base64) or, without it, as an explicit
        rotation (the old key is lost), which is recorded and shown to every client."""
        reason = _text(reason, "reason", limit=MAX_REASON)
        self._check_key(account, key_id)
        with self.db.transaction(write=True) as tx:
            row = self._owned(tx, account, name)
            old = str(row["signer_key_id"])
            if old == key_id:
                raise Conflict(f"{name} is already signed by key {key_id}")
            if consent is not None:
                self._check_consent(tx, name, old, key_id, consent)
            tx.run("UPDATE packages SET signer_key_id = ? WHERE id = ?", (key_id, row["id"]))
            tx.run(
                "INSERT INTO rotations (package_id, from_key, to_key, consent, reason, at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (row["id"], old, key_id, consent, reason, self.clock()),
            )
        return self.package(name)

    def _check_consent(self, tx: Tx, name: str, old: str, new: str, consent: str) -> None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        row = tx.one("SELECT public_key FROM keys WHERE key_id = ?", (old,))
        if row is None:
            raise Conflict(f"the old key {old} is not known here; rotate without consent")
        try:
            signature = base64.b64decode(_text(consent, "consent", limit=200), validate=True)
            public = PublicKey.from_text(str(row["public_key"]))
            Ed25519PublicKey.from_public_bytes(public.raw).verify(
                signature, rotation_message(name, new)
            )
        except (binascii.Error, ValueError, InvalidSignature):
            raise BadRequest(f"the consent is not a valid signature by the old key {old}") from None

    # -- reading -------------------------------------------------------------

    def search(
        self,
        q: str = "",
        *,
        category: str | None = None,
        sort: str | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> dict[str, Any]:
        words = search_words(q or "")
        sort = sort or ("relevance" if words else "downloads")
        if sort not in SORTS:
            raise BadRequest(f"sort must be one of {', '.join(SORTS)}")
        if not 1 <= per_page <= 100 or not 1 <= page <= 10_000:
            raise BadRequest("page is 1-10000 and per_page 1-100")
        join, where, args = "", ["1 = 1"], list[Any]()
        if words:
            join, condition, args = self.db.match(words)
            where.append(condition)
        if category:
            where.append("p.category = ?")
            args.append(category)
        order_args: list[Any] = []
        if sort == "relevance" and words:
            order, order_args = self.db.rank(words)
            order += ", p.downloads DESC"
        else:
            order = {
                "relevance": "p.downloads DESC",
                "downloads": "p.downloads DESC",
                "rating": "p.rating DESC, p.rating_count DESC",
                "recent": "p.updated_at DESC",
                "name": "p.name ASC",
            }[sort]
        base = f"FROM packages p {join} WHERE {' AND '.join(where)}"
        with self.db.transaction() as tx:
            total = tx.one(f"SELECT count(*) AS n {base}", args)
            rows = tx.all(
                f"SELECT p.name, p.description, p.keywords, p.author, p.category, p.latest, "
                f"p.downloads, p.rating, p.rating_count, p.updated_at, p.deprecated {base} "
                f"ORDER BY {order}, p.name LIMIT ? OFFSET ?",
                [*args, *order_args, per_page, (page - 1) * per_page],
            )
        for row in rows:
            row["keywords"] = _keywords(row["keywords"])
        return {
            "total": int(total["n"]) if total else 0,
            "page": page,
            "per_page": per_page,
            "sort": sort,
            "packages": rows,
        }

    def categories(self) -> list[dict[str, Any]]:
        with self.db.transaction() as tx:
            return tx.all(
                "SELECT category AS name, count(*) AS packages FROM packages "
                "WHERE category IS NOT NULL GROUP BY category ORDER BY category"
            )

    def package(self, name: str) -> dict[str, Any]:
        with self.db.transaction() as tx:
            row = tx.one(
                "SELECT p.*, a.name AS owner FROM packages p JOIN accounts a "
                "ON a.id = p.owner_id WHERE p.name = ?",
                (name,),
            )
            if row is None:
                raise NotFound(f"no package {name!r}")
            versions = tx.all(
                "SELECT * FROM versions WHERE package_id = ? ORDER BY sort_key DESC", (row["id"],)
            )
            rotations = tx.all(
                "SELECT from_key, to_key, consent, reason, at FROM rotations "
                "WHERE package_id = ? ORDER BY at",
                (row["id"],),
            )
        latest = next((v for v in versions if v["version"] == row["latest"]), None)
        result = {
            key: row[key]
            for key in (
                "name",
                "owner",
                "description",
                "author",
                "category",
                "homepage",
                "license",
                "readme",
                "latest",
                "signer_key_id",
                "deprecated",
                "created_at",
                "updated_at",
                "downloads",
                "rating",
                "rating_count",
            )
        }
        result["keywords"] = _keywords(row["keywords"])
        result["versions"] = [_version(v, name) for v in versions]
        result["capabilities"] = result["versions"][0]["capabilities"] if versions else []
        result["latest_entry"] = _version(latest, name) if latest else None
        result["rotations"] = rotations
        return result

    def version(self, name: str, version: str) -> dict[str, Any]:
        with self.db.transaction() as tx:
            row = tx.one(
                "SELECT v.* FROM versions v JOIN packages p ON p.id = v.package_id "
                "WHERE p.name = ? AND v.version = ?",
                (name, version),
            )
        if row is None:
            raise NotFound(f"{name} has no version {version}")
        return _version(row, name)

    def updates(self, installed: Any) -> dict[str, Any]:
        """For each ``{name: installed version}``, in one query: the newest version
        that is not yanked and every version newer than the installed one (yanked
        ones marked), newest first; None for a name not listed here. What
        ``wasmdeck outdated`` and the local UI's plugins page ask for every plugin
        at once (the client decides from ``newer`` itself, packages/_market.py)."""
        if not isinstance(installed, dict) or len(installed) > MAX_UPDATES:
            raise BadRequest(f"installed must be an object of at most {MAX_UPDATES} names")
        floors: dict[str, tuple[tuple[int, ...], int, str]] = {}
        for name, number in installed.items():
            if not isinstance(number, str) or not VERSION.match(number):
                raise BadRequest(f"installed[{name!r}] must be a version like 1.2.0")
            floors[name] = version_key(number)
        answer: dict[str, Any] = dict.fromkeys(floors)
        names = [n for n in floors if NAME.match(n)]
        if not names:
            return answer
        with self.db.transaction() as tx:
            rows = tx.all(
                "SELECT p.name AS package, v.* FROM versions v JOIN packages p "
                f"ON p.id = v.package_id WHERE p.name IN ({', '.join('?' * len(names))}) "
                "ORDER BY v.sort_key DESC",
                names,
            )
        for name in names:
            answer[name] = None
        for row in rows:
            name = str(row["package"])
            found = answer[name]
            if found is None:
                found = answer[name] = {"newest": None, "newer": []}
            if found["newest"] is None and row["yanked"] is None:
                found["newest"] = _version(row, name)
            if version_key(str(row["version"])) > floors[name]:
                found["newer"].append(_version(row, name))
        return answer

    def download(self, name: str, version: str) -> tuple[dict[str, Any], bytes]:
        """The package file, counted as a download (per version and per day)."""
        entry = self.version(name, version)
        data = self.blobs.get(name, entry["file_digest"])
        day = datetime.datetime.fromtimestamp(self.clock(), datetime.UTC).date().isoformat()
        with self.db.transaction(write=True) as tx:
            row = tx.one("SELECT id FROM packages WHERE name = ?", (name,))
            assert row is not None
            pid = row["id"]
            tx.run("UPDATE packages SET downloads = downloads + 1 WHERE id = ?", (pid,))
            tx.run(
                "UPDATE versions SET downloads = downloads + 1 WHERE package_id = ? AND version = ?",
                (pid, version),
            )
            tx.run(
                "INSERT INTO downloads_daily (package_id, version, day, count) VALUES (?, ?, ?, 1) "
                "ON CONFLICT (package_id, version, day) DO UPDATE SET "
                "count = downloads_daily.count + 1",
                (pid, version, day),
            )
        return entry, data

    def downloads(self, name: str) -> dict[str, Any]:
        with self.db.transaction() as tx:
            row = tx.one("SELECT id, downloads FROM packages WHERE name = ?", (name,))
            if row is None:
                raise NotFound(f"no package {name!r}")
            days = tx.all(
                "SELECT day, sum(count) AS count FROM downloads_daily WHERE package_id = ? "
                "GROUP BY day ORDER BY day",
                (row["id"],),
            )
            versions = tx.all(
                "SELECT version, downloads FROM versions WHERE package_id = ? "
                "ORDER BY sort_key DESC",
                (row["id"],),
            )
        return {
            "name": name,
            "total": row["downloads"],
            "per_day": [{"day": d["day"], "count": int(d["count"])} for d in days],
            "per_version": versions,
        }

    # -- reviews -------------------------------------------------------------

    def _package_id(self, tx: Tx, name: str) -> int:
        row = tx.one("SELECT id FROM packages WHERE name = ?", (name,))
        if row is None:
            raise NotFound(f"no package {name!r}")
        return int(row["id"])

    def review(self, account: Account, name: str, rating: Any, body: Any) -> dict[str, Any]:
        """Rate and review a package: one review per account, editable."""
        if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
            raise BadRequest("rating must be a whole number from 1 to 5")
        text = _text(body, "body", limit=MAX_REVIEW, required=False)
        now = self.clock()
        with self.db.transaction(write=True) as tx:
            pid = self._package_id(tx, name)
            tx.run(
                "INSERT INTO reviews (package_id, account_id, rating, body, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (package_id, account_id) "
                "DO UPDATE SET rating = excluded.rating, body = excluded.body, "
                "updated_at = excluded.updated_at",
                (pid, account.id, rating, text, now, now),
            )
            self._rerate(tx, pid)
        return self._review(name, account.name)

    def _rerate(self, tx: Tx, pid: int) -> None:
        # Hidden reviews do not count toward the rating.
        agg = tx.one(
            "SELECT count(*) AS n, coalesce(sum(rating), 0) AS s FROM reviews "
            "WHERE package_id = ? AND hidden = 0",
            (pid,),
        )
        assert agg is not None
        n, s = int(agg["n"]), int(agg["s"])
        tx.run(
            "UPDATE packages SET rating_sum = ?, rating_count = ?, rating = ? WHERE id = ?",
            (s, n, s / n if n else 0.0, pid),
        )

    def _review(self, name: str, author: str) -> dict[str, Any]:
        for review in self.reviews(name, include_hidden=True):
            if review["author"] == author:
                return review
        raise NotFound(f"{author} has not reviewed {name}")

    def reviews(self, name: str, *, include_hidden: bool = False) -> list[dict[str, Any]]:
        with self.db.transaction() as tx:
            pid = self._package_id(tx, name)
            rows = tx.all(
                "SELECT a.name AS author, r.rating, r.body, r.created_at, r.updated_at, "
                "r.hidden, r.reports FROM reviews r JOIN accounts a ON a.id = r.account_id "
                "WHERE r.package_id = ? ORDER BY r.updated_at DESC",
                (pid,),
            )
        for row in rows:
            row["hidden"] = bool(row["hidden"])
        return [r for r in rows if include_hidden or not r["hidden"]]

    def report(self, account: Account, name: str, author: str, reason: str) -> dict[str, Any]:
        """Report a review to the moderators (once per account and review)."""
        reason = _text(reason, "reason", limit=MAX_REASON)
        with self.db.transaction(write=True) as tx:
            pid = self._package_id(tx, name)
            author_row = tx.one("SELECT id FROM accounts WHERE name = ?", (author,))
            if author_row is None or not tx.one(
                "SELECT 1 AS x FROM reviews WHERE package_id = ? AND account_id = ?",
                (pid, author_row["id"]),
            ):
                raise NotFound(f"{author} has not reviewed {name}")
            try:
                tx.run(
                    "INSERT INTO review_reports (package_id, author_id, reporter_id, reason, "
                    "created_at) VALUES (?, ?, ?, ?, ?)",
                    (pid, author_row["id"], account.id, reason, self.clock()),
                )
            except self.db.integrity_errors:
                raise Conflict("you have already reported this review") from None
            tx.run(
                "UPDATE reviews SET reports = reports + 1 WHERE package_id = ? AND account_id = ?",
                (pid, author_row["id"]),
            )
        return self._review(name, author)

    def hide(self, account: Account, name: str, author: str, hidden: bool) -> dict[str, Any]:
        """Hide (or show again) a review: moderators only."""
        if not account.admin:
            raise Forbidden("only a moderator (an admin account) may hide reviews")
        with self.db.transaction(write=True) as tx:
            pid = self._package_id(tx, name)
            author_row = tx.one("SELECT id FROM accounts WHERE name = ?", (author,))
            if author_row is None or not tx.run(
                "UPDATE reviews SET hidden = ? WHERE package_id = ? AND account_id = ?",
                (int(hidden), pid, author_row["id"]),
            ):
                raise NotFound(f"{author} has not reviewed {name}")
            self._rerate(tx, pid)
        return self._review(name, author)

    def reports(self, account: Account) -> list[dict[str, Any]]:
        """Reported reviews, for moderators."""
        if not account.admin:
            raise Forbidden("only a moderator (an admin account) may see reports")
        with self.db.transaction() as tx:
            return tx.all(
                "SELECT p.name AS package, a.name AS author, r.rating, r.body, r.reports, "
                "r.hidden FROM reviews r JOIN packages p ON p.id = r.package_id "
                "JOIN accounts a ON a.id = r.account_id WHERE r.reports > 0 "
                "ORDER BY r.reports DESC"
            )


def _keywords(text: str) -> list[str]:
    return [k for k in text.split(" ") if k]


def _listing(manifest: Manifest) -> dict[str, Any]:
    """The searchable and shown fields of a package, from its manifest."""
    meta = manifest.metadata
    extra = meta.extra
    keywords = extra.get("keywords", [])
    if not isinstance(keywords, list) or not all(
        isinstance(k, str) and 0 < len(k) <= 32 and " " not in k for k in keywords
    ):
        raise BadRequest("metadata 'keywords' must be a list of words (1-32 characters each)")
    category = extra.get("category")
    if category is not None and (not isinstance(category, str) or not CATEGORY.match(category)):
        raise BadRequest("metadata 'category' must be a lowercase word like 'streaming'")
    readme = extra.get("readme", "")
    if not isinstance(readme, str) or len(readme) > 100_000:
        raise BadRequest("metadata 'readme' must be text of at most 100000 characters")
    return {
        "description": meta.description,
        "keywords": " ".join(keywords[:20]),
        "author": meta.author or manifest.publisher or "",
        "category": category,
        "homepage": manifest.homepage,
        "license": manifest.license,
        "readme": readme,
    }


def _version(row: dict[str, Any], name: str) -> dict[str, Any]:
    manifest = Manifest.decode(str(row["manifest"]).encode("ascii"))
    return {
        "name": name,
        "version": row["version"],
        "published_at": row["published_at"],
        "digest": row["digest"],
        "file_digest": row["file_digest"],
        "size": int(row["size"]),
        "key_id": row["key_id"],
        "yanked": row["yanked"],
        "downloads": int(row["downloads"]),
        "min_wasmdeck": manifest.min_wasmdeck,
        "capabilities": capability_risks(manifest.metadata.capabilities),
    }
