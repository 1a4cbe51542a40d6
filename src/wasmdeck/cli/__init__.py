"""The ``wasmdeck`` command line."""

from ._main import main, run

__all__ = ["main", "run"]
