"""The documentation is true of this repository: the files it and the code's
comments cite exist, and its snippets marked runnable run as written."""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from wasmdeck.toolchains import LANGUAGES

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Where comments live: the package, the kits, the WIT package, tests, examples, tools.
COMMENTED = ["src", "sdk", "wit", "tests", "examples", "benchmarks", "scripts"]
SUFFIXES = {".py", ".ts", ".wit", ".rs", ".go", ".zig", ".h", ".c", ".toml", ".sh", ""}
# Notes kept outside the repository: a comment citing them cites nothing a reader has.
OUTSIDE = re.compile(r"\b(DESIGN\.md|WASMTIME-NOTES\.md|\.\./shared/)")


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
        if OUTSIDE.search(text):
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


# -- snippets that run ----------------------------------------------------------------
#
# A fenced block followed by ``<!-- snippet: run -->`` runs, in the order of its
# page, in one scratch directory per page (a copy of examples/, its own
# WASMDECK_HOME, this venv's ``wasmdeck`` and ``python`` first on PATH);
# ``<!-- snippet: file NAME -->`` writes the block to NAME there instead.
#
# - sh: each command (continued lines joined) must exit 0, or the code its
#   comment names ("# exit code 1"); a next line ``# {...}`` (or ``[``, ``"``)
#   is its stdout, ``...`` matching anything.
# - python: runs as a script; an expression followed by a line ``# <repr>``
#   must have that repr.

MARKER = re.compile(r"<!-- snippet: (run|file [\w.-]+) -->")
FENCE = re.compile(r"^```(\w*)\s*$")
OUTPUT = re.compile(r"^# ?([\[{\"].*|b'.*)$")


@dataclass(frozen=True)
class Snippet:
    doc: Path
    line: int  # of the opening fence
    language: str
    text: str
    action: str  # "run" or "file NAME"


def snippets(doc: Path) -> list[Snippet]:
    lines = doc.read_text().splitlines()
    found = []
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        after = next((line for line in lines[end + 1 :] if line.strip()), "")
        marker = MARKER.fullmatch(after.strip())
        if marker:
            text = "\n".join(lines[index + 1 : end])
            found.append(Snippet(doc, index + 1, fence.group(1), text, marker.group(1)))
        index = end + 1
    return found


def _commands(text: str) -> list[tuple[str, str | None]]:
    """Each shell command with the output its next line documents (or None)."""
    commands: list[tuple[str, str | None]] = []
    pending = ""
    for line in text.splitlines():
        if pending:
            pending += "\n" + line
        elif not line.strip():
            continue
        elif line.lstrip().startswith("#"):
            output = OUTPUT.match(line.strip())
            if output and commands and commands[-1][1] is None:
                commands[-1] = (commands[-1][0], output.group(1))
            continue
        else:
            pending = line
        if not pending.endswith("\\"):
            commands.append((pending, None))
            pending = ""
    return commands


def _matches(expected: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual, re.S) is not None


def _python_script(text: str) -> str:
    """The snippet with each documented result turned into an assertion."""
    lines = text.splitlines()
    out = []
    for number, line in enumerate(lines):
        documented = OUTPUT.match(lines[number + 1].strip()) if number + 1 < len(lines) else None
        expression = None
        if documented and not line.startswith((" ", "\t")):
            with contextlib.suppress(SyntaxError):
                tree = ast.parse(line)
                if len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr):
                    expression = ast.get_source_segment(line, tree.body[0].value)
        if documented and expression:
            wanted = documented.group(1)
            out.append(f"_result = ({expression})")
            out.append(f"assert repr(_result) == {wanted!r}, (repr(_result), {line!r})")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def run_snippets(found: list[Snippet], scratch: Path) -> None:
    """Run a page's snippets in order in ``scratch``; AssertionError naming the first to fail."""
    env = dict(os.environ, WASMDECK_HOME=str(scratch / "home"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("WASMDECK_CACHE_SIZE", None)
    for snippet in found:
        where = f"{snippet.doc.name}:{snippet.line}"
        if snippet.action.startswith("file "):
            (scratch / snippet.action.split(" ", 1)[1]).write_text(snippet.text + "\n")
        elif snippet.language == "python":
            script = scratch / f"snippet-{snippet.line}.py"
            script.write_text(_python_script(snippet.text))
            result = subprocess.run(
                [sys.executable, str(script)],
                cwd=scratch,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert result.returncode == 0, f"{where}: {result.stderr[-3000:]}"
        elif snippet.language in ("sh", "bash"):
            for command, output in _commands(snippet.text):
                code = re.search(r"#.*\bexit code (\d+)", command)
                result = subprocess.run(
                    ["bash", "-o", "pipefail", "-c", "set -e\n" + command],
                    cwd=scratch,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=900,
                    stdin=subprocess.DEVNULL,
                )
                expected = int(code.group(1)) if code else 0
                assert result.returncode == expected, (
                    f"{where}: `{command}` exited {result.returncode}, not {expected}:\n"
                    f"{result.stdout[-2000:]}{result.stderr[-3000:]}"
                )
                if output is not None:
                    assert _matches(output, result.stdout.strip()), (
                        f"{where}: `{command}` printed {result.stdout.strip()!r}, "
                        f"the doc says {output!r}"
                    )
        else:
            raise AssertionError(f"{where}: cannot run a {snippet.language!r} block")


RUNNABLE = [doc for doc in DOCS if snippets(doc)]


def _scratch(tmp_path: Path) -> Path:
    shutil.copytree(
        ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("build", "target")
    )
    return tmp_path


@pytest.mark.toolchain  # the snippets build plugins with the toolchains, in subprocesses
@pytest.mark.parametrize("doc", RUNNABLE, ids=[doc.name for doc in RUNNABLE])
def test_the_snippets_marked_runnable_run_as_written(doc: Path, tmp_path: Path) -> None:
    run_snippets(snippets(doc), _scratch(tmp_path))


def test_snippets_are_marked_in_the_readme_and_the_guides() -> None:
    marked = {doc.name for doc in RUNNABLE}
    assert {"README.md", "abi.md"} | {f"guide-{lang}.md" for lang in LANGUAGES} <= marked
    for doc in DOCS:  # every marker belongs to a block
        text = doc.read_text()
        assert len(MARKER.findall(text)) == len(snippets(doc)), doc.name


def test_a_snippet_whose_output_differs_from_the_doc_fails(tmp_path: Path) -> None:
    doc = tmp_path / "page.md"
    doc.write_text('```sh\necho \'{"a": 1}\'\n# {"a": 2}\n```\n<!-- snippet: run -->\n')
    with pytest.raises(AssertionError, match="the doc says"):
        run_snippets(snippets(doc), tmp_path)
    doc.write_text("```python\nsorted([2, 1])\n# [2, 1]\n```\n<!-- snippet: run -->\n")
    with pytest.raises(AssertionError, match=r"\[1, 2\]"):
        run_snippets(snippets(doc), tmp_path)
    doc.write_text("```sh\nfalse   # succeeds, says the doc\n```\n<!-- snippet: run -->\n")
    with pytest.raises(AssertionError, match="exited 1, not 0"):
        run_snippets(snippets(doc), tmp_path)
    doc.write_text('```sh\necho \'{"a": [1, 2]}\'\n# {"a": [...]}\n```\n<!-- snippet: run -->\n')
    run_snippets(snippets(doc), tmp_path)  # `...` stands for anything


# -- commands and paths ---------------------------------------------------------------

REPO_PATH = re.compile(
    r"(?<![\w./-])((?:examples|sdk|tests|src/wasmdeck|docs|benchmarks|scripts|wit)/[\w./-]*+)"
    r"(?![<*{])"  # a pattern such as docs/guide-<lang>.md
)


def _code(text: str) -> list[str]:
    """The inline code spans and the lines of fenced blocks of a page."""
    blocks = re.findall(r"^```\w*\n(.*?)^```", text, re.S | re.M)
    outside = re.sub(r"^```\w*\n.*?^```", "", text, flags=re.S | re.M)
    return re.findall(r"`([^`\n]+)`", outside) + [line for b in blocks for line in b.splitlines()]


def test_the_docs_name_paths_that_exist() -> None:
    missing = []
    for doc in DOCS:
        for path in REPO_PATH.findall(doc.read_text()):
            path = path.rstrip(".")
            if "/build/" in path or path.endswith("/build"):
                continue  # build outputs exist once built
            if not (ROOT / path).exists():
                missing.append(f"{doc.name}: {path}")
    assert missing == []


def test_the_docs_name_commands_that_exist() -> None:
    import argparse

    from wasmdeck.cli._main import build_parser

    (commands,) = [
        action.choices
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    ]
    unknown = []
    for doc in DOCS:
        for code in _code(doc.read_text()):
            for command in re.findall(r"(?:^|[;&|]\s*|`)wasmdeck ([a-z][\w-]*)", code.strip()):
                if command not in commands:
                    unknown.append(f"{doc.name}: wasmdeck {command}")
    assert unknown == []
