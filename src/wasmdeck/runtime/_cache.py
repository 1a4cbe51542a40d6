"""The persistent compile cache: compiled modules and components on disk.

Compiling is slow (an 18 MB Python component takes seconds); loading what
wasmtime compiled before takes milliseconds. Entries live under
``$WASMDECK_HOME/cache`` and are keyed by the plugin's SHA-256 digest, its
kind, and a fingerprint of the engine (its settings, the wasmtime version,
the machine), so a new wasmtime or a different configuration never loads an
old artifact.

Wasmtime's ``deserialize`` trusts its input, so an entry is checked before
it is handed over. Each entry is two files: ``KEY.cwasm``, the artifact,
and ``KEY.json``, its header: the format, kind, wasmtime version, engine
fingerprint, the source's digest and size, and the artifact's size and
SHA-256. The header also records the artifact file's identity (inode, size,
modification and change times, nanoseconds) as written and verified; while
the file still has that identity, no process has written to it since it was
verified, and the digest need not be recomputed (40 MB would take 25 ms).
Any other file is verified in full, and re-stamped when it passes. Anything
that does not match is a miss: the entry is deleted and the plugin
recompiled. The header may also carry *notes* (``note``): facts about the
artifact that cost more to read back out of it than to keep, such as a
component's imports and exports (reading them through wasmtime-py takes
hundreds of C calls, each giving up the GIL: ~2 ms of a reload under load).

Writes are atomic (a temporary file, flushed to disk, renamed into place),
so processes sharing a cache never see half an entry; two processes that
compile the same plugin at once both succeed and one's entry wins.

Plugins loaded from a file skip even reading it on a hit: ``paths/`` maps a
file's identity (its real path, inode, size and times) to its digest, so an
unchanged file is recognized by ``stat`` alone.

The cache has a size cap (``max_size``; ``$WASMDECK_CACHE_SIZE``, default
1 GiB). After a store takes it over the cap, the least recently used entries
go first — a hit stamps the header's modification time, so that time is the
entry's last use — but never one in use: a process that loaded an entry
holds a shared ``flock`` on its artifact for as long as the cache object
lives, and eviction deletes only what it can lock exclusively. An artifact
larger than the whole cap is not stored.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["DEFAULT_MAX_SIZE", "CacheInfo", "CompileCache", "Kind", "parse_size"]

FORMAT = 1
DEFAULT_MAX_SIZE = 1 << 30  # 1 GiB: a few dozen large components, thousands of small modules
SIZE_VARIABLE = "WASMDECK_CACHE_SIZE"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
Kind = Literal["module", "component"]
_HEADER_MAX = 64 * 1024
_KNOWN_MAX = 1024  # paths known by identity in memory, per cache object


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes | bytearray) -> os.stat_result:
    """Write ``data`` to ``path`` all at once, or not at all; return the file's stat."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with temporary.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path.stat()


def parse_size(text: str, what: str = SIZE_VARIABLE) -> int:
    """``"1G"``, ``"512 MiB"``, ``"1048576"`` in bytes; ValueError naming ``what`` otherwise."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{what}={text!r} is not a size: give bytes, or e.g. 500M, 2G, 1GiB")
    number, unit = float(match.group(1)), match.group(2).upper()
    size = int(number * 1024 ** " KMGT".index(unit or " "))
    if size <= 0:
        raise ValueError(f"{what}={text!r}: the cache needs a positive size")
    return size


def _default_max_size() -> int:
    text = os.environ.get(SIZE_VARIABLE)
    return DEFAULT_MAX_SIZE if not text else parse_size(text)


@dataclass(frozen=True, slots=True)
class CacheInfo:
    directory: Path
    entries: int
    size: int  # bytes on disk, artifacts and headers
    max_size: int = DEFAULT_MAX_SIZE  # the cap on the entries' size


def _release(held: dict[str, int]) -> None:
    for fd in held.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    held.clear()


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the cache knows about one plugin's source, for one engine."""

    key: str
    digest: str
    size: int
    kind: Kind


class CompileCache:
    """Compiled artifacts on disk, shared by processes and runtimes.

    ``directory`` defaults to ``home("cache")`` (resolved on first use, so it
    follows ``WASMDECK_HOME``). ``max_size`` caps the entries' bytes on disk
    (default ``$WASMDECK_CACHE_SIZE``, else 1 GiB); least recently used
    entries not in use by any process are evicted past it.
    """

    def __init__(
        self, directory: str | os.PathLike[str] | None = None, *, max_size: int | None = None
    ) -> None:
        self._directory = Path(directory) if directory is not None else None
        self._made = False  # whether _directory was made (directory)
        if max_size is not None and (type(max_size) is not int or max_size <= 0):
            raise ValueError(f"max_size must be a positive number of bytes, not {max_size!r}")
        self._max_size = max_size
        # Keys of the entries this object loaded -> the descriptor holding their shared lock.
        self._held: dict[str, int] = {}
        # Keys of the entries this object fetched or stored -> their notes.
        self._notes: dict[str, dict[str, Any]] = {}
        # (path as given, engine) -> (the file's identity, its Lookup): a file
        # seen before by this object is known by one stat (see known_path).
        self._known: dict[tuple[str, str], tuple[list[int], Lookup]] = {}
        self._finalizer = weakref.finalize(self, _release, self._held)

    @property
    def max_size(self) -> int:
        """The cap, in bytes; ``$WASMDECK_CACHE_SIZE`` is read on first use (ValueError if bad)."""
        if self._max_size is None:
            self._max_size = _default_max_size()
        return self._max_size

    def close(self) -> None:
        """Release the locks that mark the entries this cache loaded as in use."""
        _release(self._held)

    @property
    def directory(self) -> Path:
        if self._directory is None:
            from .._home import home

            return home("cache")
        if not self._made:  # once: each look costs syscalls, each a GIL release
            self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._made = True
        return self._directory

    def __repr__(self) -> str:
        return f"<CompileCache {str(self._directory or '$WASMDECK_HOME/cache')!r}>"

    # -- keys ------------------------------------------------------------------

    @staticmethod
    def key(engine: str, kind: Kind, digest: str) -> str:
        text = f"{FORMAT}\0{engine}\0{kind}\0{digest}"
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    def known_path(self, path: Path, engine: str) -> Lookup | None:
        """The digest of an unchanged file seen before, found by ``stat`` alone.

        A file this object saw before under the same path is known by one
        ``stat`` (which follows symlinks: a path re-pointed at another file
        has another identity); else by its real path's record in ``paths/``.
        Each syscall gives up the GIL, which under load means waiting to get
        it back, on a reload's path (benchmarks/reload.py).
        """
        given = (os.fspath(path), engine)
        try:
            st = os.stat(path)
        except OSError:
            return None
        seen = self._known.get(given)
        if seen is not None and seen[0] == _identity(st):
            return seen[1]
        try:
            real = path.resolve()
            st = real.stat()
            record = json.loads(self._path_record(real).read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("identity") != _identity(st):
            return None
        digest, kind = record.get("sha256"), record.get("kind")
        if not isinstance(digest, str) or kind not in ("module", "component"):
            return None
        lookup = Lookup(self.key(engine, kind, digest), digest, st.st_size, kind)
        self._remember_known(given, _identity(st), lookup)
        return lookup

    def _remember_known(self, given: tuple[str, str], identity: list[int], lookup: Lookup) -> None:
        if len(self._known) >= _KNOWN_MAX:
            self._known.clear()
        self._known[given] = (identity, lookup)

    def remember_path(self, path: Path, lookup: Lookup, st: os.stat_result) -> None:
        """Record a file's digest under its identity (``st`` taken before it was read)."""
        real = path.resolve()
        with contextlib.suppress(OSError):
            if _identity(real.stat()) != _identity(st):
                return  # it changed while being read: do not vouch for it
            record = {"path": str(real), "identity": _identity(st), "sha256": lookup.digest}
            record["kind"] = lookup.kind
            target = self._path_record(real)
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _write_atomic(target, json.dumps(record).encode())

    def _path_record(self, real: Path) -> Path:
        name = hashlib.sha256(os.fsencode(real)).hexdigest()[:40]
        return self.directory / "paths" / f"{name}.json"

    # -- entries -------------------------------------------------------------

    def fetch(
        self, lookup: Lookup, engine: str, wasmtime_version: str, load: Callable[[str], Any]
    ) -> Any | None:
        """The cached artifact loaded by ``load(path)``, or None (a miss; bad entries go)."""
        directory = self.directory
        artifact = directory / f"{lookup.key}.cwasm"
        header_path = directory / f"{lookup.key}.json"
        try:
            with header_path.open("rb") as file:
                header = json.loads(file.read(_HEADER_MAX))
            st = artifact.stat()
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            self._discard(lookup.key)
            return None
        expected = {
            "format": FORMAT,
            "kind": lookup.kind,
            "wasmtime": wasmtime_version,
            "engine": engine,
            "source_sha256": lookup.digest,
            "source_size": lookup.size,
        }
        if not isinstance(header, dict) or any(header.get(k) != v for k, v in expected.items()):
            self._discard(lookup.key)
            return None
        if st.st_size != header.get("artifact_size"):
            self._discard(lookup.key)
            return None
        if header.get("identity") != _identity(st):
            # Written or replaced since it was verified: check every byte.
            if _sha256_file(artifact) != header.get("artifact_sha256"):
                self._discard(lookup.key)
                return None
            header["identity"] = _identity(artifact.stat())
            with contextlib.suppress(OSError):
                _write_atomic(header_path, json.dumps(header).encode())
        self._hold(lookup.key, artifact)
        try:
            loaded = load(str(artifact))
        except Exception:  # wasmtime refused it (e.g. built for other CPU features)
            self._unhold(lookup.key)
            self._discard(lookup.key)
            return None
        now = time.time_ns()
        with contextlib.suppress(OSError):  # the header's mtime is the entry's last use
            os.utime(header_path, ns=(now, now))
        notes = header.get("notes")
        self._notes[lookup.key] = notes if isinstance(notes, dict) else {}
        return loaded

    def notes(self, key: str) -> dict[str, Any]:
        """The notes of entry ``key``, as this object fetched, stored or noted them."""
        return self._notes.get(key, {})

    def note(self, key: str, name: str, value: Any) -> None:
        """Keep the JSON value ``value`` as note ``name`` in entry ``key``'s header.

        For what is derived from the artifact alone; the reader checks what it
        gets back, as from any file. A failure to write is not an error (the
        next load derives it again).
        """
        header_path = self.directory / f"{key}.json"
        try:
            with header_path.open("rb") as file:
                header = json.loads(file.read(_HEADER_MAX))
            if not isinstance(header, dict):
                return
            notes = header.get("notes")
            notes = notes if isinstance(notes, dict) else {}
            notes[name] = value
            header["notes"] = notes
            encoded = json.dumps(header).encode()
            if len(encoded) > _HEADER_MAX:
                return
            _write_atomic(header_path, encoded)
        except (OSError, ValueError, TypeError):
            return
        self._notes.setdefault(key, {})[name] = value

    def _hold(self, key: str, artifact: Path) -> None:
        """Mark the entry in use (a shared lock on its artifact) while this cache lives."""
        if key in self._held:
            return
        try:
            fd = os.open(artifact, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # being evicted right now: the load will miss
            os.close(fd)
            return
        self._held[key] = fd

    def _unhold(self, key: str) -> None:
        fd = self._held.pop(key, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def store(
        self,
        lookup: Lookup,
        engine: str,
        wasmtime_version: str,
        artifact: bytes | bytearray,
        *,
        name: str = "",
    ) -> None:
        """Save a compiled artifact; a failure to write leaves no entry and is not an error.

        An artifact larger than ``max_size`` is not kept; storing one that
        takes the cache over ``max_size`` evicts least recently used entries.
        """
        if len(artifact) > self.max_size:
            return
        directory = self.directory
        with contextlib.suppress(OSError):  # (deleted since it was first made?)
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        header: dict[str, Any] = {
            "format": FORMAT,
            "kind": lookup.kind,
            "wasmtime": wasmtime_version,
            "engine": engine,
            "source_sha256": lookup.digest,
            "source_size": lookup.size,
            "artifact_size": len(artifact),
            "artifact_sha256": hashlib.sha256(artifact).hexdigest(),
            "name": name,
            "created": time.time(),
        }
        try:
            st = _write_atomic(directory / f"{lookup.key}.cwasm", artifact)
            header["identity"] = _identity(st)
            _write_atomic(directory / f"{lookup.key}.json", json.dumps(header).encode())
        except OSError:
            self._discard(lookup.key)
            return
        self._notes[lookup.key] = {}
        self.evict(keep=lookup.key)

    def evict(self, *, keep: str | None = None) -> list[str]:
        """Delete least recently used entries until the entries fit ``max_size``.

        Skips ``keep`` and every entry some process holds (``_hold``); one
        process evicts at a time (others skip: it does their work). Returns
        the keys evicted.
        """
        directory = self.directory
        entries = []  # (last use, key, bytes)
        total = 0
        for header_path in directory.glob("*.json"):
            artifact = header_path.with_suffix(".cwasm")
            try:
                used = header_path.stat()
                size = used.st_size + artifact.stat().st_size
            except OSError:
                continue
            total += size
            entries.append((used.st_mtime_ns, header_path.stem, size))
        if total <= self.max_size:
            return []
        evicted: list[str] = []
        with open(directory / ".evict.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return evicted
            for _, key, size in sorted(entries):
                if total <= self.max_size:
                    break
                if key == keep or key in self._held:
                    continue
                if self._evict_one(key):
                    total -= size
                    evicted.append(key)
        return evicted

    def _evict_one(self, key: str) -> bool:
        """Delete one entry unless a process holds it; whether it was deleted."""
        artifact = self.directory / f"{key}.cwasm"
        try:
            fd = os.open(artifact, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._discard(key)
            return True
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # in use
        else:
            self._discard(key)  # under the lock, so no process starts to hold it meanwhile
            return True
        finally:
            os.close(fd)

    def _discard(self, key: str) -> None:
        for suffix in (".json", ".cwasm"):
            with contextlib.suppress(OSError):
                (self.directory / f"{key}{suffix}").unlink()

    # -- maintenance ---------------------------------------------------------

    def entries(self) -> list[dict[str, Any]]:
        """The headers of the entries, each with its ``key`` and ``path``."""
        found = []
        for header_path in sorted(self.directory.glob("*.json")):
            try:
                header = json.loads(header_path.read_bytes())
            except (OSError, ValueError):
                continue
            if isinstance(header, dict):
                header["key"] = header_path.stem
                header["path"] = str(header_path.with_suffix(".cwasm"))
                found.append(header)
        return found

    def info(self) -> CacheInfo:
        directory = self.directory
        size = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
        return CacheInfo(directory, len(list(directory.glob("*.cwasm"))), size, self.max_size)

    def clear(self) -> int:
        """Delete every entry; return how many there were."""
        directory = self.directory
        count = len(list(directory.glob("*.cwasm")))
        for path in directory.iterdir():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
        return count
