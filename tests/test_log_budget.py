"""A call's log is bounded: stdout, stderr and the log host function share one budget.

A real C plugin (tests/plugins/c/flood.c) writes 195 MiB to stdout, or logs
200,000 messages, inside its timeout; the host keeps at most the budget and
one "log truncated" line, and the call still ends normally (issue 9, item 10).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, build_c

import wasmdeck
from wasmdeck import Limits


class Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records = 0
        self.bytes = 0
        self.truncated: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.records += 1
        self.bytes += len(message) + 1
        if message.startswith("log truncated"):
            self.truncated.append(message)


@pytest.fixture(scope="module")
def flood_wasm() -> Path:
    return build_c(ROOT / "tests" / "plugins" / "c" / "flood.c")


@pytest.fixture
def counter() -> Iterator[Counter]:
    handler = Counter()
    logger = logging.getLogger("wasmdeck.plugin.flood")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)


def test_a_stdout_flood_is_cut_at_the_line_budget(flood_wasm: Path, counter: Counter) -> None:
    plugin = wasmdeck.Plugin(flood_wasm, limits=Limits(timeout=60))
    # 195 MiB of 64-byte lines: 3.2 million lines. Without a budget each is a
    # log record, and the host spends the call's whole timeout logging them.
    assert plugin.call("stdout", {"mib": 195}) == b"done"
    assert counter.records == Limits().max_log_lines + 1
    assert len(counter.truncated) == 1
    assert "more than its limit of 10,000 lines or 1,048,576 bytes" in counter.truncated[0]


def test_the_byte_budget_and_a_fresh_budget_per_call(flood_wasm: Path, counter: Counter) -> None:
    limits = Limits(max_log_bytes=64 * 100, max_log_lines=1_000_000)
    plugin = wasmdeck.Plugin(flood_wasm, limits=limits)
    for _ in range(2):  # each call gets the whole budget again
        before = counter.records
        assert plugin.call("stdout", {"mib": 1}) == b"done"
        assert counter.records - before == 100 + 1
    assert len(counter.truncated) == 2


def test_the_log_host_function_shares_the_budget(flood_wasm: Path, counter: Counter) -> None:
    plugin = wasmdeck.Plugin(flood_wasm, limits=Limits(max_log_lines=500, fuel=10**10, timeout=60))
    assert plugin.call("log", {"lines": 200_000}) == b"done"
    assert counter.records == 500 + 1 and len(counter.truncated) == 1
    # Within the budget nothing is dropped or marked.
    assert plugin.call("log", {"lines": 20}) == b"done"
    assert counter.records == 500 + 1 + 20 and len(counter.truncated) == 1


def test_log_budget_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_log_lines must be a positive integer"):
        Limits(max_log_lines=0)
