"""Test tiers by folder: tests/unit (no Docker), tests/integration (real containers), tests/e2e (compose profiles)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import ROOT


def pytest_collection_modifyitems(items):
    for item in items:
        tier = Path(str(item.fspath)).relative_to(ROOT / "tests").parts[0]
        if tier in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, tier))
