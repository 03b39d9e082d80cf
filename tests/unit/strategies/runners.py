"""The runners as a user starts them (`python -m bot…` from the repository's root), and what their tests need."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

HAS_HFTBACKTEST = all(importlib.util.find_spec(name) is not None for name in ("hftbacktest", "numpy", "numba"))


def has_live_hftbacktest() -> bool:
    if not HAS_HFTBACKTEST:
        return False
    import hftbacktest
    return bool(getattr(hftbacktest, "LIVE_FEATURE", False))


# What a test needs of this Python (pytest.ini's markers): a test whose need does not hold here is deselected,
# never skipped, and the Python that has it runs it (conftest.py says which, in the terminal summary).
live_wheel = pytest.mark.live_wheel
no_hftbacktest = pytest.mark.no_hftbacktest
NEEDS = {
    "live_wheel": (has_live_hftbacktest(), "this Python has no hftbacktest with the live feature",
                   "tests/integration/test_strategies_live_wheel.py runs them in a venv made from ./wheels"),
    "no_hftbacktest": (not HAS_HFTBACKTEST, "hftbacktest is importable in this Python",
                       "`./hftlive test` runs them in .venv, which has no hftbacktest"),
}

SETTINGS = ("CONNECTOR_NAME", "SYMBOL", "TICK_SIZE", "LOT_SIZE")


def start_module(module: str, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m MODULE ARGS` from the repository's root, as a user runs it, with only `env` as settings."""
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    return subprocess.Popen([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env={**base, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 300) -> subprocess.CompletedProcess:
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_module(module: str, *args: str | Path, env: dict[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    return finish(start_module(module, *args, env=env), timeout)
