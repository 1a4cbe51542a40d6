"""Plugin packages: the byte format, strict parsing, signing, and the CLI around them."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pkghelp import home, key, metadata, pack, plugin_wasm, wasmdeck
from watgen import abi_module

import wasmdeck as wd
from wasmdeck.packages import (
    Package,
    PluginManager,
    build_package,
    generate_key,
    load_package,
    load_signing_key,
    open_package,
    sign_package,
)
from wasmdeck.packages._package import MAGIC, Manifest, canonical_json
from wasmdeck.runtime import Runtime

__all__ = ["home", "key"]  # fixtures used by these tests


def _flipped(data: bytes, position: int) -> bytes:
    changed = bytearray(data)
    changed[position] ^= 0x01
    return bytes(changed)


def _with_checksum(body: bytes) -> bytes:
    return body + b"CSUM" + struct.pack(">I", 32) + hashlib.sha256(body).digest()


def _sections(data: bytes) -> dict[str, tuple[int, bytes]]:
    """Each section's payload offset and payload (an independent reading of the format)."""
    offset, found = 10, {}
    while offset < len(data):
        tag = data[offset : offset + 4].decode()
        (length,) = struct.unpack(">I", data[offset + 4 : offset + 8])
        found[tag] = (offset + 8, data[offset + 8 : offset + 8 + length])
        offset += 8 + length
    return found


# -- the format ------------------------------------------------------------------


def test_roundtrip_of_a_signed_package(home: Path, key: Path, tmp_path: Path) -> None:
    path = pack(tmp_path, key, capabilities=["kv"])
    verified = open_package(path)
    package = verified.package
    assert package.name == "demo" and package.version == "1.0.0"
    assert package.digest == hashlib.sha256(package.module).digest()
    assert package.manifest.metadata.capabilities[0].kind == "kv"
    public = key.with_name(key.name + ".pub").read_text().split()
    assert verified.verdict.key_id == public[2]
    assert verified.verdict.level == wd.TrustLevel.SIGNED
    # Encoding is deterministic: parse + encode gives the same bytes.
    assert Package.parse(path.read_bytes()).encode() == path.read_bytes()


def test_layout_is_magic_version_and_five_sections(home: Path, key: Path, tmp_path: Path) -> None:
    data = pack(tmp_path, key).read_bytes()
    assert data[:8] == MAGIC == b"\x89WDPK\r\n\x1a" and data[8:10] == b"\x00\x01"
    sections = _sections(data)
    assert list(sections) == ["MNFT", "DGST", "WASM", "SIGN", "CSUM"]
    assert json.loads(sections["MNFT"][1])["metadata"]["name"] == "demo"
    assert sections["WASM"][1].startswith(b"\0asm")
    assert len(sections["SIGN"][1]) == 112
    csum_tag_at = sections["CSUM"][0] - 8
    assert sections["CSUM"][1] == hashlib.sha256(data[:csum_tag_at]).digest()


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_flipping_any_single_byte_is_rejected(
    home: Path, key: Path, tmp_path: Path, signed: bool
) -> None:
    data = pack(tmp_path, key if signed else None).read_bytes()
    open_package(data)  # the original is fine
    accepted = []
    for position in range(len(data)):
        try:
            open_package(_flipped(data, position))
        except wd.PackageError:
            continue
        accepted.append(position)
    assert accepted == [], f"flips accepted at byte positions {accepted}"


def test_signature_covers_every_byte_even_when_the_checksum_is_recomputed(
    home: Path, key: Path, tmp_path: Path
) -> None:
    """An attacker can recompute the (unkeyed) checksum; the signature still catches
    a change anywhere before it: header, manifest, digest, module, key id, key, signature."""
    data = pack(tmp_path, key).read_bytes()
    body = data[: _sections(data)["CSUM"][0] - 8]
    assert open_package(_with_checksum(body)).package.encode() == data
    accepted = []
    for position in range(len(body)):
        try:
            open_package(_with_checksum(_flipped(body, position)))
        except wd.PackageError:
            continue
        accepted.append(position)
    assert accepted == []


def test_truncated_and_extended_packages_are_rejected(
    home: Path, key: Path, tmp_path: Path
) -> None:
    data = pack(tmp_path, key).read_bytes()
    for length in range(len(data)):
        with pytest.raises(wd.MalformedPackage):
            Package.parse(data[:length])
    with pytest.raises(wd.MalformedPackage, match="unexpected bytes after"):
        Package.parse(data + b"\0")
    with pytest.raises(wd.MalformedPackage, match="bad magic"):
        Package.parse(b"\0asm\x01\0\0\0")


def _rebuilt(package: Package, manifest_bytes: bytes) -> bytes:
    """A package with other manifest bytes, every length, digest and checksum right."""
    parts = [MAGIC, b"\x00\x01"]
    for tag, payload in (
        (b"MNFT", manifest_bytes),
        (b"DGST", package.digest),
        (b"WASM", package.module),
        (b"SIGN", b""),
    ):
        parts += [tag, struct.pack(">I", len(payload)), payload]
    return _with_checksum(b"".join(parts))


def test_manifest_must_be_canonical_and_of_the_known_shape(home: Path, tmp_path: Path) -> None:
    package = Package.parse(pack(tmp_path, None).read_bytes())
    obj = {**package.manifest.to_dict(), "publisher": "P", "license": "MIT"}
    assert Package.parse(_rebuilt(package, canonical_json(obj))).name == "demo"
    bad = {
        "whitespace": json.dumps(obj, sort_keys=True).encode(),
        "unsorted": json.dumps(dict(reversed(obj.items())), separators=(",", ":")).encode(),
        "duplicate key": canonical_json(obj)[:-1] + b',"zz":"MIT","zz":"MIT"}',
        "not ascii": canonical_json(obj).replace(b"demo for", "démo for".encode()),
        "unknown field": canonical_json({**obj, "extra": 1}),
        "no metadata": canonical_json({"publisher": "x"}),
        "bad metadata": canonical_json({"metadata": {"name": "x"}}),
        "bad min version": canonical_json({**obj, "min_wasmdeck": "soon"}),
        "not an object": b"[]",
    }
    for what, manifest in bad.items():
        with pytest.raises(wd.MalformedPackage):
            Package.parse(_rebuilt(package, manifest))
            pytest.fail(f"accepted a manifest with {what}")


def test_other_format_versions_are_refused(home: Path, tmp_path: Path) -> None:
    data = pack(tmp_path, None).read_bytes()
    body = data[: _sections(data)["CSUM"][0] - 8]
    with pytest.raises(wd.MalformedPackage, match="format version 2 is not supported"):
        Package.parse(_with_checksum(body[:8] + b"\x00\x02" + body[10:]))


def test_a_package_another_tool_writes_from_the_docs_is_accepted(
    home: Path, tmp_path: Path
) -> None:
    """docs/package-format.md, implemented independently here (struct, hashlib and
    cryptography only): wasmdeck must accept what it describes."""
    module = abi_module(metadata=metadata("external", "2.0.0"))
    manifest = json.dumps(
        {"metadata": metadata("external", "2.0.0"), "publisher": "Other Tool"},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    digest = hashlib.sha256(module).digest()
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes_raw()
    key_id = hashlib.sha256(b"wasmdeck-key-v1\x00" + public).digest()[:16]
    message = b"wasmdeck-package-signature-v1\x00" + digest + struct.pack(">I", len(manifest))
    signature = private.sign(message + manifest)
    body = b"\x89WDPK\r\n\x1a" + b"\x00\x01"
    for tag, payload in (
        (b"MNFT", manifest),
        (b"DGST", digest),
        (b"WASM", module),
        (b"SIGN", key_id + public + signature),
    ):
        body += tag + struct.pack(">I", len(payload)) + payload
    data = _with_checksum(body)
    verified = open_package(data)
    assert verified.verdict.key_id == key_id.hex()
    assert verified.manifest.publisher == "Other Tool"
    pub_line = f"wasmdeck-ed25519 {base64.b64encode(public).decode()} {key_id.hex()}"
    (tmp_path / "other.pub").write_text(pub_line + "\n")
    wd.TrustStore().add(wd.load_public_key(tmp_path / "other.pub"), "Other")
    assert open_package(data).verdict.level == wd.TrustLevel.VERIFIED


# -- signatures ------------------------------------------------------------------


def test_a_signature_by_another_key_does_not_verify(home: Path, key: Path, tmp_path: Path) -> None:
    package = Package.parse(pack(tmp_path, key).read_bytes())
    assert package.signature is not None
    other = tmp_path / "other.key"
    generate_key(other)
    other_public = load_signing_key(other).public
    # Swap in the other key (and its matching id), keeping the first key's signature.
    forged = package.with_signature(
        wd.Signature(
            bytes.fromhex(other_public.key_id), other_public.raw, package.signature.signature
        )
    )
    with pytest.raises(wd.SignatureInvalid, match="does not verify"):
        open_package(forged.encode())
    # A key id that does not belong to the public key.
    mislabeled = package.with_signature(
        wd.Signature(b"\0" * 16, package.signature.public_key, package.signature.signature)
    )
    with pytest.raises(wd.SignatureInvalid, match="does not belong"):
        open_package(mislabeled.encode())


def test_resigning_replaces_the_signature(home: Path, key: Path, tmp_path: Path) -> None:
    package = Package.parse(pack(tmp_path, key).read_bytes())
    other = tmp_path / "other.key"
    generate_key(other)
    resigned = sign_package(package, load_signing_key(other))
    assert resigned.signature is not None and package.signature is not None
    assert resigned.signature.key_id != package.signature.key_id
    assert open_package(resigned.encode()).verdict.key_id == load_signing_key(other).public.key_id
    assert resigned.module == package.module and resigned.manifest_bytes == package.manifest_bytes


def test_loading_verifies_before_compiling(
    home: Path, key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = pack(tmp_path, key).read_bytes()
    compiled: list[int] = []
    original = Runtime.compile

    def spy(self: Runtime, source: bytes, **options: Any) -> object:
        compiled.append(len(source))
        return original(self, source, **options)

    monkeypatch.setattr(Runtime, "compile", spy)
    module_at = _sections(data)["WASM"][0]
    for position in (3, module_at + 20, len(data) - 70, len(data) - 1):
        with pytest.raises(wd.PackageError):
            load_package(_flipped(data, position))
    assert compiled == []
    plugin = load_package(data)
    assert compiled and plugin.call("ok") == b"ok"
    plugin.close()


def test_a_module_whose_metadata_differs_from_its_manifest_is_refused(
    home: Path, tmp_path: Path
) -> None:
    package = Package.parse(pack(tmp_path, None).read_bytes())
    liar = Manifest.from_dict({"metadata": metadata("demo", "1.0.0", capabilities=[])})
    other_module = abi_module(metadata=metadata("demo", "1.0.0", capabilities=["kv"]))
    forged = Package.create(other_module, liar)
    assert forged.manifest.metadata.capabilities == ()
    with pytest.raises(wd.TamperedPackage, match="differs from the metadata in its manifest"):
        load_package(forged.encode(), policy="allow-unsigned")
    assert package.name == "demo"


def test_a_package_needing_a_newer_wasmdeck_is_refused(home: Path, tmp_path: Path) -> None:
    wasm = plugin_wasm(tmp_path / "future.wasm", "future")
    data = build_package(wasm, min_wasmdeck="99.0").encode()
    with pytest.raises(wd.PackageError, match=r"needs wasmdeck 99\.0 or newer"):
        load_package(data, policy="allow-unsigned")
    with pytest.raises(wd.PackageError, match=r"needs wasmdeck 99\.0"):
        PluginManager().install(data, policy="allow-unsigned")


# -- the command line ------------------------------------------------------------


def test_keygen_writes_a_private_key_0600_and_a_public_key(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "my.key"
    result = wasmdeck("keygen", "--out", out)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert out.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    pub = out.with_name("my.key.pub").read_text().split()
    assert pub[0] == "wasmdeck-ed25519" and pub[2] in result.stdout
    again = wasmdeck("keygen", "--out", out)
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr


def test_keygen_with_a_passphrase_and_signing_with_it(home: Path, tmp_path: Path) -> None:
    out, secret, wrong = tmp_path / "enc.key", tmp_path / "pass", tmp_path / "wrong"
    secret.write_text("correct horse\n")
    wrong.write_text("battery staple\n")
    assert wasmdeck("keygen", "--out", out, "--passphrase-file", secret).returncode == 0
    assert b"ENCRYPTED PRIVATE KEY" in out.read_bytes()
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    wasm = plugin_wasm(tmp_path / "p.wasm")
    package = tmp_path / "p.wdpk"
    no_pass = wasmdeck("pack", wasm, "--out", package, "--key", out)
    assert no_pass.returncode == 2 and "encrypted" in no_pass.stderr and not package.exists()
    bad = wasmdeck("pack", wasm, "--out", package, "--key", out, "--passphrase-file", wrong)
    assert bad.returncode == 2 and "wrong passphrase" in bad.stderr
    good = wasmdeck(
        "pack",
        wasm,
        "--out",
        package,
        "--key",
        out,
        env={"WASMDECK_KEY_PASSPHRASE": "correct horse"},
    )
    assert good.returncode == 0, good.stderr
    assert (
        open_package(package).verdict.key_id == out.with_name("enc.key.pub").read_text().split()[2]
    )


def test_pack_a_project_directory_with_wasmdeck_toml(home: Path, key: Path, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "build").mkdir(parents=True)
    plugin_wasm(project / "build" / "demo.wasm")
    (project / "wasmdeck.toml").write_text(
        '[plugin]\nname = "demo"\nlanguage = "c"\nfuture = true\n\n'
        '[package]\npublisher = "Acme Audio"\nhomepage = "https://acme.example"\n'
        'license = "MIT"\nmin_wasmdeck = "0.1"\n\n[build]\nflags = ["-O2"]\n'
    )
    out = tmp_path / "demo.wdpk"
    result = wasmdeck("pack", project, "--out", out, "--key", key)
    assert result.returncode == 0, result.stderr
    manifest = open_package(out).manifest
    assert (manifest.publisher, manifest.homepage, manifest.license, manifest.min_wasmdeck) == (
        "Acme Audio",
        "https://acme.example",
        "MIT",
        "0.1",
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = wasmdeck("pack", empty, "--out", tmp_path / "x.wdpk")
    assert missing.returncode == 2 and "no built module" in missing.stderr


def test_sign_and_verify_on_the_command_line(home: Path, key: Path, tmp_path: Path) -> None:
    unsigned = pack(tmp_path, None)
    shown = wasmdeck("verify", unsigned)
    assert shown.returncode == 0, shown.stderr
    assert "signer: none" in shown.stdout and "trust: unsigned" in shown.stdout
    assert "policy allow-signed: would refuse it" in shown.stdout
    signed = wasmdeck("sign", unsigned, "--key", key)
    assert signed.returncode == 0, signed.stderr
    key_id = key.with_name(key.name + ".pub").read_text().split()[2]
    shown = wasmdeck("verify", unsigned)
    assert shown.returncode == 0
    assert f"signer: key {key_id}" in shown.stdout
    assert "trust: signed by an unknown key" in shown.stdout
    as_json = json.loads(wasmdeck("verify", unsigned, "--json").stdout)
    assert as_json["trust"] == "signed" and as_json["key_id"] == key_id and as_json["valid"]
    assert wasmdeck("trust", "add", f"{key}.pub", "--name", "Acme").returncode == 0
    shown = wasmdeck("verify", unsigned)
    assert "trust: verified publisher 'Acme'" in shown.stdout


def test_verify_rejects_tampered_and_malformed_packages_with_exit_4(
    home: Path, key: Path, tmp_path: Path
) -> None:
    data = pack(tmp_path, key).read_bytes()
    sections = _sections(data)
    positions = {
        "magic": 1,
        "manifest": sections["MNFT"][0] + 5,
        "module": sections["WASM"][0] + 30,
        "signature": sections["SIGN"][0] + 100,
        "checksum": len(data) - 1,
    }
    for what, position in positions.items():
        bad = tmp_path / f"bad-{what}.wdpk"
        bad.write_bytes(_flipped(data, position))
        result = wasmdeck("verify", bad)
        assert result.returncode == 4, (what, result.stderr)
        assert result.stdout == "" and result.stderr.startswith("wasmdeck: ")
    forged = tmp_path / "forged.wdpk"
    in_description = data.index(b"for tests")  # still valid, canonical JSON when flipped
    forged.write_bytes(_with_checksum(_flipped(data, in_description)[: len(data) - 40]))
    result = wasmdeck("verify", forged)
    assert result.returncode == 4 and "does not verify" in result.stderr
    (tmp_path / "text.wdpk").write_text("hello")
    result = wasmdeck("verify", tmp_path / "text.wdpk")
    assert result.returncode == 4 and "not a wasmdeck package" in result.stderr
    result = wasmdeck("verify", tmp_path / "missing.wdpk")
    assert result.returncode == 2 and "No such file" in result.stderr


def test_verify_with_an_explicit_policy(home: Path, key: Path, tmp_path: Path) -> None:
    signed = pack(tmp_path, key)
    result = wasmdeck("verify", signed, "--policy", "require-verified")
    assert result.returncode == 4 and "policy is require-verified" in result.stderr
    assert wasmdeck("verify", signed, "--policy", "allow-signed").returncode == 0


def test_sign_refuses_a_package_whose_signature_is_broken(
    home: Path, key: Path, tmp_path: Path
) -> None:
    data = pack(tmp_path, key).read_bytes()
    forged = tmp_path / "forged.wdpk"
    forged.write_bytes(_with_checksum(_flipped(data, data.index(b"for tests"))[: len(data) - 40]))
    result = wasmdeck("sign", forged, "--key", key)
    assert result.returncode == 4 and "does not verify" in result.stderr


def test_special_and_huge_files_are_refused_before_reading(home: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.wdpk"
    os.mkfifo(fifo)  # no writer: reading it would wait for ever
    huge = tmp_path / "huge.wdpk"
    with huge.open("wb") as f:
        f.truncate(400 << 20)  # sparse: nothing is written, but its size says 400 MiB
    for path, what in (
        ("/dev/zero", "character device"),
        (fifo, "FIFO"),
        (huge, "larger than a package may be"),
        (tmp_path, "directory"),
    ):
        for command in ("verify", "install"):
            result = wasmdeck(command, path, "--yes" if command == "install" else "--json")
            assert result.returncode == 4 and what in result.stderr, (command, result.stderr)
        with pytest.raises(wd.MalformedPackage, match=what):
            open_package(path)
