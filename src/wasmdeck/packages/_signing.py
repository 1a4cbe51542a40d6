"""ed25519 keys: generate, store, load, sign packages and check their signatures.

A private key is a PKCS#8 PEM file (encrypted with a passphrase when one is
given, mode 0600). Its public key is one line in ``KEYFILE.pub``::

    wasmdeck-ed25519 <base64 of the 32-byte raw public key> <key id>

The key id is the first 16 bytes of SHA-256("wasmdeck-key-v1\\0" | public key),
written as 32 hex digits; it is derived, so it cannot be forged separately.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .._errors import KeyFileError, SignatureInvalid
from ._package import KEY_ID_LEN, PUBLIC_KEY_LEN, Package, Signature

__all__ = [
    "PublicKey",
    "SigningKey",
    "check_signature",
    "generate_key",
    "key_id",
    "load_public_key",
    "load_signing_key",
    "sign_package",
]

KEY_ID_DOMAIN = b"wasmdeck-key-v1\x00"
PUBLIC_PREFIX = "wasmdeck-ed25519"


def key_id(public_key: bytes) -> bytes:
    """The 16-byte key id of a raw 32-byte ed25519 public key."""
    return hashlib.sha256(KEY_ID_DOMAIN + public_key).digest()[:KEY_ID_LEN]


@dataclass(frozen=True, slots=True)
class PublicKey:
    """An ed25519 public key (32 raw bytes); ``key_id`` names it."""

    raw: bytes

    @property
    def key_id(self) -> str:
        return key_id(self.raw).hex()

    def to_line(self) -> str:
        return f"{PUBLIC_PREFIX} {base64.b64encode(self.raw).decode()} {self.key_id}\n"

    @classmethod
    def from_text(cls, text: str, *, source: str = "public key") -> PublicKey:
        """Read the one-line ``.pub`` format, or a PEM ``PUBLIC KEY``."""
        text = text.strip()
        if "PRIVATE KEY" in text:
            raise KeyFileError(f"{source} is a private key; give its .pub file instead")
        if text.startswith("-----BEGIN PUBLIC KEY-----"):
            try:
                pem = serialization.load_pem_public_key(text.encode())
            except ValueError:
                raise KeyFileError(f"{source} is not a valid PEM public key") from None
            if not isinstance(pem, Ed25519PublicKey):
                raise KeyFileError(f"{source} is not an ed25519 key")
            return cls(pem.public_bytes_raw())
        fields = text.split()
        if len(fields) < 2 or fields[0] != PUBLIC_PREFIX:
            raise KeyFileError(
                f"{source} is not a wasmdeck public key (expected '{PUBLIC_PREFIX} BASE64 KEYID')"
            )
        try:
            raw = base64.b64decode(fields[1], validate=True)
        except (binascii.Error, ValueError):
            raise KeyFileError(f"{source}: the key is not valid base64") from None
        if len(raw) != PUBLIC_KEY_LEN:
            raise KeyFileError(f"{source}: an ed25519 public key is 32 bytes, not {len(raw)}")
        key = cls(raw)
        if len(fields) >= 3 and fields[2] != key.key_id:
            raise KeyFileError(f"{source}: the key id {fields[2]} does not match the key")
        return key


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An ed25519 private key that signs packages."""

    private: Ed25519PrivateKey

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.private.public_key().public_bytes_raw())

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)


def generate_key(out: str | os.PathLike[str], *, passphrase: bytes | None = None) -> SigningKey:
    """Write a new private key to ``out`` (0600, never overwriting) and ``out.pub``."""
    out = Path(out)
    pub = out.with_name(out.name + ".pub")
    for path in (out, pub):
        if path.exists():
            raise FileExistsError(17, "refusing to overwrite an existing file", str(path))
    key = SigningKey(Ed25519PrivateKey.generate())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(out, 0o600)  # whatever the umask was
    pub.write_text(key.public.to_line())
    return key


def key_is_encrypted(path: str | os.PathLike[str]) -> bool:
    try:
        return b"ENCRYPTED" in Path(path).read_bytes()[:200]
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None


def load_signing_key(path: str | os.PathLike[str], passphrase: bytes | None = None) -> SigningKey:
    """Read a signing key file (``wasmdeck keygen``); KeyFileError if it cannot be used."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError:
        if passphrase:
            raise KeyFileError(f"key file {path} is not encrypted; give no passphrase") from None
        raise KeyFileError(
            f"key file {path} is encrypted: give its passphrase "
            "(--passphrase-file, WASMDECK_KEY_PASSPHRASE, or type it when asked)"
        ) from None
    except ValueError:
        if passphrase and b"ENCRYPTED" in data:
            raise KeyFileError(f"wrong passphrase for key file {path}") from None
        raise KeyFileError(f"{path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an ed25519 private key")
    return SigningKey(key)


def load_public_key(path: str | os.PathLike[str]) -> PublicKey:
    """Read a public key file (``<name>.pub``); KeyFileError if it is not one."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    return PublicKey.from_text(text, source=str(path))


def sign_package(package: Package, key: SigningKey) -> Package:
    """The package signed (or re-signed) by ``key``."""
    public = key.public.raw
    return package.with_signature(Signature(key_id(public), public, key.sign(package.message)))


def check_signature(package: Package) -> None:
    """Raise ``SignatureInvalid`` unless the package's signature (if any) verifies."""
    signature = package.signature
    if signature is None:
        return
    if key_id(signature.public_key) != signature.key_id:
        raise SignatureInvalid(
            f"the signature's key id {signature.key_id.hex()} does not belong to its public key",
            plugin=package.name,
        )
    try:
        Ed25519PublicKey.from_public_bytes(signature.public_key).verify(
            signature.signature, package.message
        )
    except (InvalidSignature, ValueError):
        raise SignatureInvalid(
            f"the signature by key {signature.key_id.hex()} does not verify: "
            "the package was altered after signing or signed wrongly",
            plugin=package.name,
        ) from None
