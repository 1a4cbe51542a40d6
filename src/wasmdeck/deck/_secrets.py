"""Secrets a deck references: ``{ env = "NAME" }`` or ``{ secret = "NAME" }``.

A secret named ``NAME`` is the file ``$WASMDECK_HOME/secrets/NAME`` (its
text, without the final newline). The file must belong to the user and be
readable by nobody else (mode 0600), as ssh demands of private keys.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from typing import Any

from .._errors import WasmdeckError
from .._home import home
from ._model import SecretRef

__all__ = ["SecretMissing", "resolve_secret", "resolve_secrets"]


class SecretMissing(WasmdeckError):
    """A secret the deck references is not set, or its file is unsafe."""


def resolve_secret(ref: SecretRef, environ: Mapping[str, str] | None = None) -> str:
    if ref.source == "env":
        value = (os.environ if environ is None else environ).get(ref.name)
        if value is None:
            raise SecretMissing(f"the environment variable {ref.name} is not set")
        return value
    path = home("secrets") / ref.name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise SecretMissing(f"no secret {ref.name!r}: create {path} (mode 0600)") from None
    except OSError as exc:
        raise SecretMissing(
            f"cannot read the secret {ref.name!r} ({path}): {exc.strerror}"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077 or info.st_uid != os.getuid():
            raise SecretMissing(
                f"the secret file {path} must be a regular file of yours with mode 0600 "
                f"(it is {stat.filemode(info.st_mode)})"
            )
        data = os.read(fd, 64 * 1024 + 1)
    finally:
        os.close(fd)
    if len(data) > 64 * 1024:
        raise SecretMissing(f"the secret file {path} is larger than 64 KiB")
    return data.decode("utf-8", "replace").removesuffix("\n")


def resolve_secrets(
    config: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``config`` with every ``SecretRef`` replaced by the secret's text."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, SecretRef):
            out[key] = resolve_secret(value, environ)
        elif isinstance(value, Mapping):
            out[key] = resolve_secrets(value, environ)
        else:
            out[key] = value
    return out
