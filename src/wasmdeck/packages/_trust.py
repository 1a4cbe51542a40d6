"""The trust store (trusted and revoked keys), trust levels and the loading policy.

Kept in ``$WASMDECK_HOME/trust.json`` (written atomically; the previous good
version is kept as ``trust.json.bak`` for ``wasmdeck doctor --repair``).

Trust levels, best first: ``verified`` (signed by a key in the trust store),
``signed`` (a valid signature by a key the store does not know), ``unsigned``.
A key the user revoked is refused under every policy, and stays revoked when
it is added again until it is explicitly un-revoked.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import PolicyRefused, RevokedKey, TrustStoreCorrupt
from .._home import home
from ._files import atomic_write, locked
from ._package import Package
from ._signing import PublicKey

__all__ = ["DEFAULT_POLICY", "Policy", "TrustLevel", "TrustStore", "TrustedKey", "Verdict"]

_KEY_ID = re.compile(r"^[0-9a-f]{8,32}$")
_NAME = re.compile(r"^[^\x00-\x1f]{1,128}$")


class TrustLevel(enum.IntEnum):
    """How far a package is trusted: unsigned < signed by an unknown key < verified publisher."""

    UNSIGNED = 0
    SIGNED = 1
    VERIFIED = 2

    def __str__(self) -> str:
        return {0: "unsigned", 1: "signed by an unknown key", 2: "verified publisher"}[self.value]

    @property
    def label(self) -> str:
        return self.name.lower()


class Policy(enum.Enum):
    """What may load: each policy allows its trust level and the ones above it."""

    REQUIRE_VERIFIED = "require-verified"
    ALLOW_SIGNED = "allow-signed"
    ALLOW_UNSIGNED = "allow-unsigned"

    @property
    def minimum(self) -> TrustLevel:
        return {
            Policy.REQUIRE_VERIFIED: TrustLevel.VERIFIED,
            Policy.ALLOW_SIGNED: TrustLevel.SIGNED,
            Policy.ALLOW_UNSIGNED: TrustLevel.UNSIGNED,
        }[self]

    @classmethod
    def parse(cls, value: Policy | str) -> Policy:
        if isinstance(value, Policy):
            return value
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(p.value for p in cls)
            raise ValueError(f"unknown policy {value!r}; choose one of {choices}") from None

    def check(self, verdict: Verdict) -> None:
        """Raise ``PolicyRefused`` unless the package's trust level is allowed."""
        if verdict.level >= self.minimum:
            return
        if verdict.level is TrustLevel.UNSIGNED:
            hint = (
                "sign it (wasmdeck sign), or allow unsigned packages for this install "
                "with --allow-unsigned"
            )
        else:
            hint = (
                f"trust its key ({verdict.key_id}) with 'wasmdeck trust add KEYFILE.pub "
                "--name PUBLISHER' if you know the publisher"
            )
        raise PolicyRefused(
            f"the package is {verdict.level} and the policy is {self.value}; {hint}",
            plugin=verdict.name,
        )


# Justified in docs/plugin-manager.md: signatures give integrity and a stable
# publisher identity (pinned on upgrade); the sandbox and the capability
# consent are what keep an unknown publisher's plugin harmless.
DEFAULT_POLICY = Policy.ALLOW_SIGNED


@dataclass(frozen=True, slots=True)
class TrustedKey:
    key_id: str
    public_key: bytes
    name: str
    added: float


@dataclass(frozen=True, slots=True)
class Verdict:
    """Who signed a package and how much the trust store trusts them."""

    name: str
    level: TrustLevel
    key_id: str | None = None
    publisher: str | None = None  # the trust store's name for a verified key

    def describe(self) -> str:
        if self.level is TrustLevel.VERIFIED:
            return f"verified publisher {self.publisher!r} (key {self.key_id})"
        if self.level is TrustLevel.SIGNED:
            return f"signed by an unknown key {self.key_id}"
        return "unsigned"


class TrustStore:
    """Trusted publisher keys, revoked keys and the policy setting, under the home."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else home() / "trust.json"
        self.backup = self.path.with_name(self.path.name + ".bak")
        self._lock = self.path.with_name(self.path.name + ".lock")

    # -- reading and writing -------------------------------------------------

    def _read(self) -> dict[str, Any]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {"version": 1, "keys": [], "revoked": []}
        try:
            return self._validate(json.loads(data))
        except (ValueError, TypeError, KeyError) as exc:
            raise TrustStoreCorrupt(
                f"the trust store {self.path} is damaged ({exc}); "
                "run 'wasmdeck doctor --repair' to restore it from its backup"
            ) from None

    @staticmethod
    def _validate(obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict) or obj.get("version") != 1:
            raise ValueError("not a version 1 trust store")
        if "policy" in obj:
            Policy.parse(obj["policy"])
        for entry in obj["keys"]:
            raw = base64.b64decode(entry["public_key"], validate=True)
            if PublicKey(raw).key_id != entry["key_id"] or not isinstance(entry["name"], str):
                raise ValueError(f"key entry {entry.get('key_id')!r} is inconsistent")
        for entry in obj["revoked"]:
            if not isinstance(entry["key_id"], str) or len(entry["key_id"]) != 32:
                raise ValueError("a revoked key entry is invalid")
        return obj

    def _write(self, obj: dict[str, Any]) -> None:
        data = json.dumps(obj, indent=2, sort_keys=True).encode() + b"\n"
        atomic_write(self.path, data)
        atomic_write(self.backup, data)  # the last good version, for repair

    @contextlib.contextmanager
    def _edit(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self._lock):
            obj = self._read()
            yield obj
            self._write(obj)

    # -- queries -------------------------------------------------------------

    def trusted_keys(self) -> list[TrustedKey]:
        return [
            TrustedKey(k["key_id"], base64.b64decode(k["public_key"]), k["name"], k["added"])
            for k in self._read()["keys"]
        ]

    def revoked(self) -> list[dict[str, Any]]:
        return list(self._read()["revoked"])

    def is_revoked(self, key_id: str) -> bool:
        return any(r["key_id"] == key_id for r in self._read()["revoked"])

    @property
    def policy(self) -> Policy:
        return Policy.parse(self._read().get("policy", DEFAULT_POLICY.value))

    def set_policy(self, policy: Policy | str) -> Policy:
        policy = Policy.parse(policy)
        with self._edit() as obj:
            obj["policy"] = policy.value
        return policy

    def assess(self, package: Package) -> Verdict:
        """The trust level of a package whose signature was checked; refuses revoked keys."""
        signature = package.signature
        return self.assess_key(package.name, signature.key_id_hex if signature else None)

    def assess_key(self, name: str, key_id: str | None) -> Verdict:
        if key_id is None:
            return Verdict(name, TrustLevel.UNSIGNED)
        obj = self._read()
        for entry in obj["revoked"]:
            if entry["key_id"] == key_id:
                raise RevokedKey(
                    f"it is signed by key {key_id}, which was revoked"
                    + (f" ({entry['name']})" if entry.get("name") else ""),
                    plugin=name,
                )
        for entry in obj["keys"]:
            if entry["key_id"] == key_id:
                return Verdict(name, TrustLevel.VERIFIED, key_id, entry["name"])
        return Verdict(name, TrustLevel.SIGNED, key_id)

    # -- changes -------------------------------------------------------------

    def add(self, key: PublicKey, name: str) -> TrustedKey:
        """Trust ``key`` as publisher ``name``. A revoked key must be un-revoked first."""
        if not _NAME.match(name):
            raise ValueError("a publisher name must be 1-128 printable characters")
        with self._edit() as obj:
            if any(r["key_id"] == key.key_id for r in obj["revoked"]):
                raise ValueError(
                    f"key {key.key_id} was revoked; it stays refused until you run "
                    f"'wasmdeck trust unrevoke {key.key_id}'"
                )
            for entry in obj["keys"]:
                if entry["key_id"] == key.key_id:
                    if entry["name"] != name:
                        raise ValueError(
                            f"key {key.key_id} is already trusted as {entry['name']!r}"
                        )
                    return TrustedKey(key.key_id, key.raw, name, entry["added"])
            entry = {
                "key_id": key.key_id,
                "public_key": base64.b64encode(key.raw).decode(),
                "name": name,
                "added": time.time(),
            }
            obj["keys"].append(entry)
        return TrustedKey(key.key_id, key.raw, name, entry["added"])

    def _match(self, obj: dict[str, Any], which: str) -> list[dict[str, Any]]:
        by_name = [k for k in obj["keys"] if k["name"] == which]
        if by_name:
            return by_name
        lowered = which.lower()
        if _KEY_ID.match(lowered):
            by_id = [k for k in obj["keys"] if k["key_id"].startswith(lowered)]
            if len(by_id) > 1:
                raise ValueError(f"key id prefix {which!r} is ambiguous; give more digits")
            return by_id
        return []

    def remove(self, which: str) -> list[str]:
        """Stop trusting the keys of publisher ``which`` (or the key with that id)."""
        with self._edit() as obj:
            matched = self._match(obj, which)
            if not matched:
                raise LookupError(f"no trusted key has the name or key id {which!r}")
            obj["keys"] = [k for k in obj["keys"] if k not in matched]
        return [k["key_id"] for k in matched]

    def revoke(self, which: str | PublicKey) -> list[str]:
        """Revoke keys: a publisher's, one by id (trusted or not), or a public key."""
        with self._edit() as obj:
            if isinstance(which, PublicKey):
                matched = [{"key_id": which.key_id, "name": ""}]
            else:
                matched = self._match(obj, which)
                if not matched and re.fullmatch(r"[0-9a-f]{32}", which.lower()):
                    matched = [{"key_id": which.lower(), "name": ""}]
            if not matched:
                raise LookupError(
                    f"no trusted key has the name or key id {which!r} "
                    "(to revoke a key you never trusted, give its full 32-digit key id)"
                )
            ids = [k["key_id"] for k in matched]
            obj["keys"] = [k for k in obj["keys"] if k["key_id"] not in ids]
            known = {r["key_id"] for r in obj["revoked"]}
            for k in matched:
                if k["key_id"] not in known:
                    obj["revoked"].append(
                        {"key_id": k["key_id"], "name": k["name"], "revoked": time.time()}
                    )
        return ids

    def unrevoke(self, key_id: str) -> str:
        lowered = key_id.lower()
        with self._edit() as obj:
            matched = [r for r in obj["revoked"] if r["key_id"].startswith(lowered)]
            if len(matched) != 1 or not _KEY_ID.match(lowered):
                raise LookupError(f"no single revoked key has the key id {key_id!r}")
            obj["revoked"].remove(matched[0])
        return str(matched[0]["key_id"])

    # -- repair --------------------------------------------------------------

    def check(self) -> str | None:
        """None when the store reads fine, else what is wrong."""
        try:
            self._read()
        except TrustStoreCorrupt as exc:
            return exc.message
        return None

    def repair(self) -> str:
        """Restore a damaged store from its backup, or start it afresh; say what was done."""
        with locked(self._lock):
            try:
                self._read()
                return "the trust store is fine"
            except TrustStoreCorrupt:
                pass
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            try:
                restored = self._validate(json.loads(self.backup.read_bytes()))
            except (OSError, ValueError, TypeError, KeyError):
                return (
                    f"the trust store was damaged and had no usable backup; it was moved to "
                    f"{aside.name} and started empty: add your trusted keys again"
                )
            atomic_write(self.path, json.dumps(restored, indent=2, sort_keys=True).encode())
            return f"the trust store was damaged; restored from {self.backup.name} (damaged copy: {aside.name})"
