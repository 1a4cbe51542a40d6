"""The documentation is true of this repository: the files it and the code's
comments cite exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Where comments live: the package, the kits, the WIT package, tests, examples, tools.
COMMENTED = ["src", "sdk", "wit", "tests", "examples", "benchmarks", "scripts"]
SUFFIXES = {".py", ".ts", ".wit", ".rs", ".go", ".zig", ".h", ".c", ".toml", ".sh", ""}
# Notes kept outside the repository: a comment citing them cites nothing a reader has.
OUTSIDE = re.compile(r"\b(DESIGN\.md|WASMTIME-NOTES\.md|\.\./shared/)")
# runtime/_component.py is being restructured on another branch, which carries
# the fix for its first line; remove this entry when that lands.
PENDING = {"src/wasmdeck/runtime/_component.py"}


def _commented_files() -> list[Path]:
    files = []
    for top in COMMENTED:
        for path in (ROOT / top).rglob("*"):
            parts = set(path.relative_to(ROOT).parts)
            if (
                path.is_file()
                and path.suffix in SUFFIXES
                and not parts & {"__pycache__", "node_modules", "target", "build", ".zig-cache"}
            ):
                files.append(path)
    return files


def test_comments_cite_only_documents_in_the_repository() -> None:
    outside = []
    missing = []
    for path in _commented_files():
        relative = str(path.relative_to(ROOT))
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if OUTSIDE.search(text) and relative not in PENDING:
            outside.append(relative)
        for cited in re.findall(r"\bdocs/[\w-]+\.md\b", text):
            if not (ROOT / cited).is_file():
                missing.append(f"{relative}: {cited}")
    assert outside == [], "cite docs/architecture.md (or another page in docs/) instead"
    assert missing == []


def test_docs_link_only_to_files_that_exist() -> None:
    missing = []
    for doc in DOCS:
        text = doc.read_text()
        assert not OUTSIDE.search(text), doc.name
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (doc.parent / target).exists():
                missing.append(f"{doc.name}: {target}")
    assert missing == []
