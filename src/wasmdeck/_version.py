"""The installed distribution's version: pyproject.toml is the one place it is written."""

from importlib import metadata

__all__ = ["__version__"]

__version__ = metadata.version("wasmdeck")
