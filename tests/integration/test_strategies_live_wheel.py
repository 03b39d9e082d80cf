"""tests/unit/strategies in a venv installed from the wheelhouse (its hash lock, then pytest): the live_wheel
tests, which .venv deselects for want of hftbacktest, run and pass here."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import venv
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.support import ROOT

STRATEGY_TESTS = "tests/unit/strategies"
# .venv's own run-time settings must not leak into the wheel venv's pytest.
DROPPED = ("PYTHONPATH", "PYTEST_ADDOPTS", "VIRTUAL_ENV", "PYTHONHOME")


def run(args: list[str | Path], timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    try:
        return subprocess.run(list(map(str, args)), cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(map(str, args))} did not finish in {timeout:.0f}s")


@pytest.fixture(scope="module")
def wheel_python(wheels: Path, tmp_path_factory) -> Path:
    """A venv with hftbacktest, numpy, numba and llvmlite from the wheelhouse's lock, and .venv's pytest."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    lock = json.loads((wheels / "manifest.json").read_text())["locks"].get(tag)
    if lock is None:
        pytest.fail(f"./wheels has no lock for {tag}: build it with `./hftlive wheels` for this Python")
    home = tmp_path_factory.mktemp("wheel-venv")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    for args in (["--no-index", "--find-links", wheels, "--require-hashes", "-r", wheels / lock],
                 [f"pytest=={version('pytest')}"]):
        done = run([python, "-m", "pip", "install", "--quiet", *args], timeout=600)
        assert done.returncode == 0, f"pip install {' '.join(map(str, args))} failed:\n{done.stderr[-3000:]}"
    return python


def test_the_live_wheel_tests_run_and_pass_in_a_venv_from_the_wheelhouse(wheel_python):
    listed = run([wheel_python, "-m", "pytest", STRATEGY_TESTS, "-q", "-p", "no:cacheprovider", "--collect-only",
                  "-m", "live_wheel"], timeout=300)
    assert listed.returncode == 0, listed.stdout[-3000:] + listed.stderr[-3000:]
    live = {line for line in listed.stdout.splitlines() if line.startswith(f"{STRATEGY_TESTS}/")}
    assert live, f"no live_wheel test was collected in the wheel venv:\n{listed.stdout[-3000:]}"

    done = run([wheel_python, "-m", "pytest", STRATEGY_TESTS, "-q", "-rA", "-p", "no:cacheprovider"], timeout=900)
    report = done.stdout[-6000:] + done.stderr[-3000:]
    assert done.returncode == 0, report
    passed = set(re.findall(r"^PASSED (\S+)", done.stdout, re.MULTILINE))
    assert live <= passed, f"live_wheel tests that did not pass: {sorted(live - passed)}\n{report}"
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", done.stdout.strip().splitlines()[-1])}
    assert set(counts) <= {"passed", "deselected", "warning", "warnings"}, report
    assert counts["passed"] >= len(live)
    # the venv has hftbacktest, so the no_hftbacktest tests are deselected there and said to be left to .venv
    assert re.search(r"^\d+ no_hftbacktest test\(s\) deselected", done.stdout, re.MULTILINE), report
