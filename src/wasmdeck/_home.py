"""Where wasmdeck keeps its state (docs/architecture.md, "The home directory").

Everything — trust store, installed plugins, grants, key-value data, the
compile cache — lives under one directory: ``$WASMDECK_HOME`` when set,
otherwise the platform's user data directory for wasmdeck.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["home"]


def home(*parts: str, create: bool = True) -> Path:
    """The home directory (or a path inside it), created on first use."""
    root = os.environ.get("WASMDECK_HOME")
    if root:
        base = Path(root).expanduser()
    else:
        import platformdirs

        base = Path(platformdirs.user_data_dir("wasmdeck", appauthor=False))
    path = base.joinpath(*parts)
    if create:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
