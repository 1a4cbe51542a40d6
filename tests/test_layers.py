"""The package's shape: no import cycles, layers import downward only, and a
layer is used through its ``__init__`` (docs/architecture.md, "Layers").

Every import counts, also those inside functions and under ``TYPE_CHECKING``:
a lazy import that closes a cycle is a cycle all the same.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "wasmdeck"

# Rank of each layer folder under src/wasmdeck: a module may import only from
# a lower rank (or its own layer). The top-level private modules (_errors.py,
# _context.py, ...) are the shared base, rank 0, below every layer.
LAYERS = {
    "cli": 6,
    "daemon": 5,
    "deck": 4,
    # The trigger engine matches events to the deck's bindings: just above the deck.
    "triggers": 4.25,
    "host": 3,
    "packages": 2,
    "runtime": 1,
}
BASE = 0
# Build tooling for the CLI: it may use the layers below the daemon, and
# only the CLI may use it.
TOOLCHAINS = "toolchains"
TOOLCHAINS_RANK = 4.5
TOOLCHAINS_USERS = {"cli"}
# `python -m wasmdeck` and the package's facade, which re-exports the public API.
ENTRY_POINTS = {"wasmdeck", "wasmdeck.__main__"}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (a module or package of this tree)
    line: int


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module of the package at ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(root: Path) -> list[Import]:
    """Every import of one module of the tree by another."""
    names = modules(root)
    top = root.name
    result = []
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for alias in node.names:
                    # `from . import _build` imports the module _build.
                    sub = f"{module}.{alias.name}"
                    targets.append(sub if sub in names else module)
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            for target in targets:
                if (target == top or target.startswith(top + ".")) and target != name:
                    while target not in names:  # `import wasmdeck.x.y` of a name
                        target = target.rpartition(".")[0]
                    result.append(Import(name, target, node.lineno))
    return list(dict.fromkeys(result))  # `from x import a, b` is one import


def cycles(edges: list[Import]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer(module: str) -> str | None:
    """The layer folder a module belongs to; None for the shared base and the facade."""
    parts = module.split(".")
    return (
        parts[1] if len(parts) > 2 or (len(parts) == 2 and not parts[1].startswith("_")) else None
    )


def violations(root: Path) -> list[str]:
    """Every import that goes upward, skips a layer's ``__init__``, or uses the
    toolchains outside the CLI; and every layer folder the table does not know."""
    top = root.name
    problems = []
    known = set(LAYERS) | {TOOLCHAINS}
    for folder in sorted(p.name for p in root.iterdir() if (p / "__init__.py").exists()):
        if folder not in known:
            problems.append(f"{top}/{folder}/ is in no layer: add it to LAYERS in {__file__}")

    def rank(module: str) -> float:
        name = layer(module)
        if name is None:
            return BASE
        if name == TOOLCHAINS:
            return TOOLCHAINS_RANK
        return LAYERS.get(name, BASE)

    for edge in imports(root):
        where = f"{edge.source} (line {edge.line}) imports {edge.target}"
        if edge.source in {f"{top}.__main__"} or edge.source == top:
            continue
        if edge.target == top:
            problems.append(f"{where}: only entry points import the package's facade")
            continue
        source_layer, target_layer = layer(edge.source), layer(edge.target)
        if source_layer == target_layer:
            continue
        if target_layer == TOOLCHAINS and source_layer not in TOOLCHAINS_USERS:
            problems.append(f"{where}: only {', '.join(TOOLCHAINS_USERS)} may use the toolchains")
        elif rank(edge.target) >= rank(edge.source) and target_layer is not None:
            problems.append(f"{where}: an upward (or sideways) import across layers")
        if target_layer is not None and edge.target != f"{top}.{target_layer}":
            problems.append(
                f"{where}: a private module of another layer; "
                f"export what is needed from {top}/{target_layer}/__init__.py"
            )
    return problems


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(imports(SRC)) == []


def test_layers_import_downward_through_each_layers_init() -> None:
    assert violations(SRC) == []


def test_every_layer_folder_in_the_tree_is_ranked() -> None:
    # The table above matches the docs' picture: the layers, top to bottom.
    architecture = (SRC.parent.parent / "docs" / "architecture.md").read_text()
    for name in LAYERS:
        if (SRC / name).is_dir():
            assert f"`{name}/`" in architecture, f"docs/architecture.md does not describe {name}/"


# -- the checker itself finds what it is meant to find ---------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    package = root / "wasmdeck"
    for relative, text in files.items():
        path = package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    return _tree(
        tmp_path,
        {
            "__init__.py": "from .runtime import Plugin\n",
            "_errors.py": "",
            "runtime/__init__.py": "from ._plugin import Plugin\n",
            "runtime/_plugin.py": "from .._errors import *\nclass Plugin: ...\n",
            "packages/__init__.py": "from ._manager import M\n",
            "packages/_manager.py": "from ..runtime import Plugin\nclass M: ...\n",
            "packages/_doctor.py": "",
            "cli/__init__.py": "",
            "cli/_main.py": "from ..packages import M\n",
            "toolchains/__init__.py": "",
        },
    )


def test_the_checker_passes_a_clean_tree(fake: Path) -> None:
    assert cycles(imports(fake)) == []
    assert violations(fake) == []


def test_the_checker_finds_a_lazy_import_cycle(fake: Path) -> None:
    (fake / "packages" / "_doctor.py").write_text("def f():\n    from ._manager import M\n")
    (fake / "packages" / "_manager.py").write_text("from . import _doctor\nclass M: ...\n")
    assert cycles(imports(fake)) == [["wasmdeck.packages._doctor", "wasmdeck.packages._manager"]]


def test_the_checker_finds_upward_private_and_toolchain_imports(fake: Path) -> None:
    (fake / "runtime" / "_plugin.py").write_text("from ..packages import M\n")
    (fake / "cli" / "_main.py").write_text("from ..packages._manager import M\n")
    (fake / "packages" / "_doctor.py").write_text("import wasmdeck.toolchains\n")
    (fake / "web").mkdir()
    (fake / "web" / "__init__.py").write_text("")
    found = violations(fake)
    assert any("runtime._plugin" in p and "upward" in p for p in found), found
    assert any("cli._main" in p and "private module" in p for p in found), found
    assert any("packages._doctor" in p and "toolchains" in p for p in found), found
    assert any("web/ is in no layer" in p for p in found), found
    assert len(found) == 4, found


# -- the marketplace server: a separate program --------------------------------------

MARKET = SRC.parent / "wasmdeck_market"
# What wasmdeck-market may use of wasmdeck: the package format and signing code,
# through the packages layer's __init__ (docs/marketplace.md).
MARKET_MAY_IMPORT = {"wasmdeck.packages"}


def market_imports(root: Path) -> list[tuple[str, int, str]]:
    """(file, line, module) for every import of wasmdeck by the marketplace's code."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from wasmdeck import X` uses the facade's X; anything else, the module.
                names = (
                    [f"wasmdeck.{a.name}" for a in node.names]
                    if node.module == "wasmdeck"
                    else [node.module]
                )
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name == "wasmdeck" or name.startswith("wasmdeck."):
                    found.append((path.name, node.lineno, name))
    return found


def test_the_marketplace_uses_only_the_package_code_of_wasmdeck() -> None:
    used = market_imports(MARKET)
    assert used, "the marketplace verifies packages with wasmdeck's code"
    assert [u for u in used if u[2] not in MARKET_MAY_IMPORT] == []


def test_the_marketplace_check_finds_a_runtime_import(tmp_path: Path) -> None:
    (tmp_path / "_x.py").write_text(
        "from wasmdeck.packages import Package\nfrom wasmdeck.runtime import Plugin\n"
        "import wasmdeck.packages._verify\nfrom wasmdeck import Plugin\n"
    )
    bad = [u for u in market_imports(tmp_path) if u[2] not in MARKET_MAY_IMPORT]
    assert [u[2] for u in bad] == [
        "wasmdeck.runtime",
        "wasmdeck.packages._verify",
        "wasmdeck.Plugin",
    ]
