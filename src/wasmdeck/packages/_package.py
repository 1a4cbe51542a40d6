"""The plugin package (docs/package-format.md): one file, parsed strictly.

Layout (all integers big-endian; ``docs/package-format.md`` is the reference)::

    magic    8 bytes   89 57 44 50 4B 0D 0A 1A   ("\\x89WDPK\\r\\n\\x1a")
    version  2 bytes   0x0001
    then five sections, in this order, each ``tag(4) | length(u32) | payload``:
      MNFT   the manifest, canonical JSON (see ``canonical_json``)
      DGST   32 bytes: SHA-256 of the module
      WASM   the WebAssembly module (or component)
      SIGN   empty (unsigned) or key id (16) | ed25519 public key (32) | signature (64)
      CSUM   32 bytes: SHA-256 of every byte before this section's tag
    and nothing after.

Every byte is either covered by the checksum and re-checked by parsing
(magic, version, tags, lengths, the canonical manifest, the digest) or
covered by the signature; flipping any single byte makes ``parse`` fail.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import InvalidMetadata, MalformedPackage, TamperedPackage
from .._json import JSONInputError, loads
from .._metadata import PluginMetadata

__all__ = [
    "MAGIC",
    "MAX_MANIFEST",
    "MAX_MODULE",
    "Manifest",
    "Package",
    "Signature",
    "build_manifest",
    "canonical_json",
    "signed_message",
]

MAGIC = b"\x89WDPK\r\n\x1a"
FORMAT_VERSION = 1
TAGS = (b"MNFT", b"DGST", b"WASM", b"SIGN", b"CSUM")
MAX_MANIFEST = 1 << 20
MAX_MODULE = 256 << 20
MAX_PACKAGE = len(MAGIC) + 2 + 5 * 8 + MAX_MANIFEST + 32 + MAX_MODULE + 112 + 32
KEY_ID_LEN, PUBLIC_KEY_LEN, SIGNATURE_LEN = 16, 32, 64
SIGN_LEN = KEY_ID_LEN + PUBLIC_KEY_LEN + SIGNATURE_LEN
SIGNATURE_DOMAIN = b"wasmdeck-package-signature-v1\x00"
WASM_MAGIC = b"\0asm"

_TEXT_FIELDS = ("publisher", "homepage", "license")
_MANIFEST_KEYS = {"metadata", "min_wasmdeck", *_TEXT_FIELDS}
_VERSION = re.compile(r"^[0-9]{1,6}(\.[0-9]{1,6}){0,3}$")


def canonical_json(value: object) -> bytes:
    """The canonical encoding: sorted keys, no whitespace, ASCII with ``\\uXXXX`` escapes."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        ).encode("ascii")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the manifest cannot be written as canonical JSON: {exc}") from None


def version_tuple(text: str) -> tuple[int, ...]:
    """``"1.2.3"`` as ``(1, 2, 3)``; a suffix after the numbers (``1.2.3rc1``) is ignored."""
    match = re.match(r"^[0-9]+(\.[0-9]+)*", text)
    return tuple(int(p) for p in match.group(0).split(".")) if match else ()


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a package says about its plugin: the metadata plus publishing fields."""

    metadata: PluginMetadata
    publisher: str | None = None
    homepage: str | None = None
    license: str | None = None
    min_wasmdeck: str | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def version(self) -> str:
        return self.metadata.version

    def to_dict(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"metadata": dict(self.metadata.raw)}
        for key in (*_TEXT_FIELDS, "min_wasmdeck"):
            value = getattr(self, key)
            if value is not None:
                obj[key] = value
        return obj

    def encode(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        """Parse the manifest bytes strictly: canonical JSON of the documented shape only."""
        try:
            obj = loads(data, what="the manifest", max_bytes=MAX_MANIFEST)
        except JSONInputError as exc:
            raise MalformedPackage(str(exc)) from None
        if not isinstance(obj, dict):
            raise MalformedPackage("the manifest must be a JSON object")
        try:
            canonical = canonical_json(obj)
        except ValueError as exc:
            raise MalformedPackage(str(exc)) from None
        if canonical != data:
            raise MalformedPackage(
                "the manifest is not in canonical form (sorted keys, no whitespace, "
                "ASCII escapes, no duplicate keys)"
            )
        return cls.from_dict(obj)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Manifest:
        unknown = sorted(set(obj) - _MANIFEST_KEYS)
        if unknown:
            raise MalformedPackage(f"the manifest has unknown fields: {', '.join(unknown)}")
        if not isinstance(obj.get("metadata"), dict):
            raise MalformedPackage("the manifest lacks the plugin's 'metadata' object")
        try:
            metadata = PluginMetadata.from_dict(obj["metadata"])
        except InvalidMetadata as exc:
            raise MalformedPackage(f"the manifest's metadata is invalid: {exc.message}") from None
        fields: dict[str, str | None] = {}
        for key in (*_TEXT_FIELDS, "min_wasmdeck"):
            value = obj.get(key)
            if value is not None and (not isinstance(value, str) or not value or len(value) > 512):
                raise MalformedPackage(f"manifest field {key!r} must be a string of 1-512 chars")
            fields[key] = value
        if fields["min_wasmdeck"] is not None and not _VERSION.match(fields["min_wasmdeck"]):
            raise MalformedPackage(
                f"manifest field 'min_wasmdeck' must be a version like 0.1.0, "
                f"not {fields['min_wasmdeck']!r}"
            )
        return cls(metadata=metadata, **fields)


def build_manifest(
    metadata: PluginMetadata | Mapping[str, Any],
    *,
    publisher: str | None = None,
    homepage: str | None = None,
    license: str | None = None,
    min_wasmdeck: str | None = None,
) -> Manifest:
    """A manifest for a plugin; homepage and license default to the metadata's."""
    raw = dict(metadata.raw if isinstance(metadata, PluginMetadata) else metadata)
    obj: dict[str, Any] = {"metadata": raw}
    values = {
        "publisher": publisher or raw.get("author"),
        "homepage": homepage or raw.get("homepage"),
        "license": license or raw.get("license"),
        "min_wasmdeck": min_wasmdeck,
    }
    obj.update({k: v for k, v in values.items() if v is not None})
    # Round-trip through the strict parser so a manifest that is built always parses.
    return Manifest.decode(canonical_json(obj))


@dataclass(frozen=True, slots=True)
class Signature:
    """An ed25519 signature with the signer's public key and key id."""

    key_id: bytes
    public_key: bytes
    signature: bytes

    @property
    def key_id_hex(self) -> str:
        return self.key_id.hex()

    def encode(self) -> bytes:
        return self.key_id + self.public_key + self.signature


def signed_message(digest: bytes, manifest: bytes) -> bytes:
    """The exact bytes a package signature signs: domain | digest | len(manifest) | manifest."""
    return SIGNATURE_DOMAIN + digest + struct.pack(">I", len(manifest)) + manifest


@dataclass(frozen=True, slots=True)
class Package:
    """A parsed package. ``parse`` checks the format; ``plugins.verify`` checks the signature."""

    manifest: Manifest
    manifest_bytes: bytes
    digest: bytes
    module: bytes
    signature: Signature | None

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def digest_hex(self) -> str:
        return self.digest.hex()

    @property
    def message(self) -> bytes:
        return signed_message(self.digest, self.manifest_bytes)

    @classmethod
    def create(
        cls, module: bytes, manifest: Manifest, signature: Signature | None = None
    ) -> Package:
        if not module.startswith(WASM_MAGIC):
            raise MalformedPackage("the module is not WebAssembly (no \\0asm header)")
        if len(module) > MAX_MODULE:
            raise MalformedPackage(f"the module is larger than {MAX_MODULE} bytes")
        return cls(manifest, manifest.encode(), hashlib.sha256(module).digest(), module, signature)

    def with_signature(self, signature: Signature | None) -> Package:
        return Package(self.manifest, self.manifest_bytes, self.digest, self.module, signature)

    def encode(self) -> bytes:
        parts = [MAGIC, struct.pack(">H", FORMAT_VERSION)]
        sign = self.signature.encode() if self.signature else b""
        for tag, payload in zip(
            TAGS[:4], (self.manifest_bytes, self.digest, self.module, sign), strict=True
        ):
            parts += [tag, struct.pack(">I", len(payload)), payload]
        body = b"".join(parts)
        checksum = hashlib.sha256(body).digest()
        return body + TAGS[4] + struct.pack(">I", len(checksum)) + checksum

    @classmethod
    def parse(cls, data: bytes) -> Package:
        """Parse a package strictly; raise ``MalformedPackage`` or ``TamperedPackage``."""
        data = bytes(data)
        if len(data) > MAX_PACKAGE:
            raise MalformedPackage(
                f"the file is larger than a package may be ({MAX_PACKAGE} bytes)"
            )
        if not data.startswith(MAGIC):
            raise MalformedPackage("not a wasmdeck package (bad magic bytes)")
        if len(data) < len(MAGIC) + 2:
            raise MalformedPackage("the package is truncated")
        (version,) = struct.unpack_from(">H", data, len(MAGIC))
        if version != FORMAT_VERSION:
            raise MalformedPackage(
                f"package format version {version} is not supported (this wasmdeck reads "
                f"version {FORMAT_VERSION})"
            )
        offset = len(MAGIC) + 2
        payloads: list[bytes] = []
        checksum_at = 0
        limits = (MAX_MANIFEST, 32, MAX_MODULE, SIGN_LEN, 32)
        for tag, limit in zip(TAGS, limits, strict=True):
            if len(data) < offset + 8:
                raise MalformedPackage(f"the package is truncated before section {tag.decode()}")
            if data[offset : offset + 4] != tag:
                raise MalformedPackage(
                    f"expected section {tag.decode()} at byte {offset}, "
                    f"found {data[offset : offset + 4]!r}"
                )
            if tag == b"CSUM":
                checksum_at = offset
            (length,) = struct.unpack_from(">I", data, offset + 4)
            if length > limit:
                raise MalformedPackage(f"section {tag.decode()} is too long ({length} bytes)")
            offset += 8
            if len(data) < offset + length:
                raise MalformedPackage(f"the package is truncated inside section {tag.decode()}")
            payloads.append(data[offset : offset + length])
            offset += length
        if offset != len(data):
            raise MalformedPackage(f"{len(data) - offset} unexpected bytes after the package")
        manifest_bytes, digest, module, sign, checksum = payloads
        if len(checksum) != 32 or hashlib.sha256(data[:checksum_at]).digest() != checksum:
            raise TamperedPackage("the package's checksum does not match: it is damaged or altered")
        if len(digest) != 32:
            raise MalformedPackage("section DGST must be 32 bytes")
        if len(sign) not in (0, SIGN_LEN):
            raise MalformedPackage(f"section SIGN must be empty or {SIGN_LEN} bytes")
        if not module.startswith(WASM_MAGIC):
            raise MalformedPackage("section WASM does not hold WebAssembly")
        if hashlib.sha256(module).digest() != digest:
            raise TamperedPackage("the module does not match the package's SHA-256 digest")
        manifest = Manifest.decode(manifest_bytes)
        signature = None
        if sign:
            signature = Signature(
                sign[:KEY_ID_LEN],
                sign[KEY_ID_LEN : KEY_ID_LEN + PUBLIC_KEY_LEN],
                sign[KEY_ID_LEN + PUBLIC_KEY_LEN :],
            )
        return cls(manifest, manifest_bytes, digest, module, signature)
