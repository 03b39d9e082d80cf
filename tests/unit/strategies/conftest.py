"""The strategy runners' tests: each runs in the Python that has what it needs (runners.NEEDS), and one
synthetic recording per session for the backtests."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.strategies.runners import NEEDS
from tests.unit.strategies.synthetic_market import record

LEFT = pytest.StashKey[dict[str, int]]()


def pytest_collection_modifyitems(config, items):
    """Deselect, never skip, the tests whose need this Python lacks; the summary names who runs them."""
    left = {marker: 0 for marker in NEEDS}
    kept, gone = [], []
    for item in items:
        lacking = [marker for marker, (holds, _, _) in NEEDS.items() if item.get_closest_marker(marker) and not holds]
        for marker in lacking:
            left[marker] += 1
        (gone if lacking else kept).append(item)
    config.stash[LEFT] = left
    if gone:
        config.hook.pytest_deselected(items=gone)
        items[:] = kept


@pytest.hookimpl(trylast=True)   # after the durations table, next to the counts
def pytest_terminal_summary(terminalreporter, config):
    for marker, count in config.stash.get(LEFT, {}).items():
        if count:
            _, why, runner = NEEDS[marker]
            terminalreporter.write_line(f"{count} {marker} test(s) deselected ({why}): {runner}", yellow=True)


@pytest.fixture(scope="session")
def recording(tmp_path_factory) -> list[Path]:
    return record(tmp_path_factory.mktemp("recording"))
