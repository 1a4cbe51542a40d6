"""Per-plugin configuration of installed plugins, kept under the home.

``$WASMDECK_HOME/config/NAME.json`` holds the plain values and
``$WASMDECK_HOME/secrets/NAME.json`` the secret ones (a token, a password),
apart, with mode 0600 in a 0700 directory. Both are given to the plugin at load
as its configuration (``config_get``); secrets are never shown: ``shown()``
replaces them by ``<secret>``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from .. import _json
from .._errors import StateCorrupt
from ._files import atomic_write

__all__ = ["SECRET", "ConfigStore"]

SECRET = "<secret>"  # how a secret value is shown
MAX_CONFIG = 1 << 20  # bytes of one plugin's configuration file


class ConfigStore:
    """Each installed plugin's configuration: plain values and secrets."""

    SECRET = SECRET

    def __init__(self, root: Path) -> None:
        self.plain_dir = root / "config"
        self.secret_dir = root / "secrets"

    def _path(self, name: str, secret: bool) -> Path:
        # Plugin names are 1-128 printable characters; the file name must not be
        # a path of the plugin's choosing.
        safe = "".join(c if c.isalnum() or c in "-_." else f"%{ord(c):02x}" for c in name)
        safe = safe.replace("..", "%2e%2e") if safe.startswith(".") or ".." in safe else safe
        return (self.secret_dir if secret else self.plain_dir) / f"{safe}.json"

    def _read(self, name: str, secret: bool) -> dict[str, Any]:
        path = self._path(name, secret)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            value = _json.loads(data, what=f"configuration file {path}", max_bytes=MAX_CONFIG)
        except ValueError as exc:
            raise StateCorrupt(f"the configuration file {path} is damaged ({exc})") from None
        if not isinstance(value, dict):
            raise StateCorrupt(f"the configuration file {path} is damaged (not an object)")
        return value

    def _write(self, name: str, secret: bool, values: dict[str, Any]) -> None:
        path = self._path(name, secret)
        if not values:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)
        atomic_write(path, _json.dumps(values), mode=0o600)

    def values(self, name: str) -> dict[str, Any]:
        """The configuration a plugin gets at load: plain values and secrets."""
        return {**self._read(name, False), **self._read(name, True)}

    def shown(self, name: str) -> dict[str, Any]:
        """The configuration as it may be shown: secrets as ``<secret>``."""
        return {**self._read(name, False), **dict.fromkeys(self._read(name, True), SECRET)}

    def set(self, name: str, key: str, value: Any, *, secret: bool = False) -> None:
        """Set ``key``; a key is either plain or secret, never both."""
        if not key:
            raise ValueError("a configuration key must not be empty")
        mine, other = self._read(name, secret), self._read(name, not secret)
        mine[key] = value
        self._write(name, secret, mine)
        if other.pop(key, None) is not None:
            self._write(name, not secret, other)

    def unset(self, name: str, key: str) -> bool:
        found = False
        for secret in (False, True):
            values = self._read(name, secret)
            if key in values:
                del values[key]
                self._write(name, secret, values)
                found = True
        return found

    def remove(self, name: str) -> None:
        """Forget a plugin's configuration (it was uninstalled)."""
        for secret in (False, True):
            with contextlib.suppress(FileNotFoundError):
                self._path(name, secret).unlink()
