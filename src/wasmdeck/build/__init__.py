"""Building plugins from source with toolchains from the package registries."""

from ._c import C_FLAGS, BuildError, compile_c, sdk_dir

__all__ = ["C_FLAGS", "BuildError", "compile_c", "sdk_dir"]
