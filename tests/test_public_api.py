"""The public API is exactly what is listed here: every name importable from
``wasmdeck``, with its own docstring, and described in docs/api.md."""

from __future__ import annotations

import ast
import builtins
import inspect
import re
from importlib import metadata
from pathlib import Path

import pytest

import wasmdeck

API_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"

PUBLIC = [
    "ABIViolation",
    "ActionNotFound",
    "ActionSpec",
    "BuildError",
    "CapabilityRequest",
    "ConsentRequired",
    "Daemon",
    "Deck",
    "DeckError",
    "DeckProblem",
    "DowngradeRefused",
    "FuelLimitExceeded",
    "Grant",
    "Grants",
    "ImportNotAllowed",
    "InstallPlan",
    "InstalledPlugin",
    "InvalidMetadata",
    "InvalidModule",
    "InvalidPlugin",
    "KeyFileError",
    "LimitExceeded",
    "Limits",
    "MalformedPackage",
    "MemoryLimitExceeded",
    "MissingExport",
    "ModuleFileCorrupt",
    "ModuleTooLarge",
    "OutputLimitExceeded",
    "Package",
    "PackageError",
    "Plugin",
    "PluginError",
    "PluginHost",
    "PluginManager",
    "PluginMetadata",
    "PluginNotFound",
    "PluginReportedError",
    "PluginTrap",
    "Policy",
    "PolicyRefused",
    "ProjectError",
    "PublicKey",
    "RegistryCorrupt",
    "ReloadFailed",
    "RevokedKey",
    "RoutingError",
    "Runtime",
    "Signature",
    "SignatureInvalid",
    "SigningKey",
    "StackLimitExceeded",
    "StateCorrupt",
    "StateLimitExceeded",
    "StateReadOnly",
    "TableLimitExceeded",
    "TamperedPackage",
    "TimeLimitExceeded",
    "ToolchainMissing",
    "TriggerContext",
    "TriggerEngine",
    "TrustLevel",
    "TrustStore",
    "TrustStoreCorrupt",
    "Verdict",
    "WasmdeckError",
    "__version__",
    "build_package",
    "check_deck",
    "generate_key",
    "load_package",
    "load_public_key",
    "load_signing_key",
    "open_package",
    "parse_deck",
    "parse_grant",
    "read_deck",
    "sign_package",
]


def test_all_is_exactly_the_public_api() -> None:
    assert sorted(wasmdeck.__all__) == PUBLIC
    assert len(set(wasmdeck.__all__)) == len(wasmdeck.__all__)


def test_star_import_gives_the_public_api() -> None:
    namespace: dict[str, object] = {}
    exec("from wasmdeck import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(PUBLIC)


@pytest.mark.parametrize("name", [n for n in PUBLIC if n != "__version__"])
def test_every_public_name_has_its_own_docstring(name: str) -> None:
    value = getattr(wasmdeck, name)
    doc = vars(value).get("__doc__") if inspect.isclass(value) else value.__doc__
    assert doc and doc.strip(), f"{name} has no docstring"
    # A dataclass without one gets its signature as __doc__: that is not documentation.
    assert not doc.startswith(f"{name}("), f"{name} has only its generated signature"


def test_docs_api_describes_every_public_name_and_no_other() -> None:
    text = API_DOC.read_text()
    named = set(re.findall(r"`(\w+)`", text))
    assert set(PUBLIC) - named == set(), "not described in docs/api.md"
    exported_elsewhere = {"wasmdeck"}  # the page also names the package itself
    looks_public = {n for n in named if n[:1].isupper() or n in dir(wasmdeck)}
    assert looks_public - set(PUBLIC) - exported_elsewhere == set(), "in docs/api.md, not public"


def test_every_exception_users_catch_is_in_the_tree() -> None:
    for name in PUBLIC:
        value = getattr(wasmdeck, name)
        if inspect.isclass(value) and issubclass(value, BaseException):
            assert issubclass(value, wasmdeck.WasmdeckError), name


def test_the_version_comes_from_the_package_metadata() -> None:
    assert wasmdeck.__version__ == metadata.version("wasmdeck")
    pyproject = (API_DOC.parent.parent / "pyproject.toml").read_text()
    assert f'\nversion = "{wasmdeck.__version__}"\n' in pyproject
    # ... and is written nowhere else in the package.
    for path in (API_DOC.parent.parent / "src" / "wasmdeck").rglob("*.py"):
        assert not re.search(r"__version__\s*=\s*['\"]", path.read_text()), path


def test_every_exception_class_is_in_the_tree_or_documented_as_outside_it() -> None:
    src = API_DOC.parent.parent / "src" / "wasmdeck"
    tree_doc = inspect.getdoc(wasmdeck._errors) or ""
    outside = tree_doc[tree_doc.index("Outside the tree") :]
    builtin = {n for n in dir(builtins) if n.endswith(("Error", "Exception"))}
    undocumented = []
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
                documented = node.name == "WasmdeckError" or f"``{node.name}``" in outside
                if bases & builtin and not documented:
                    undocumented.append(f"{path.relative_to(src)}: {node.name}")
    assert undocumented == [], "subclass WasmdeckError, or say why not in _errors.py"
