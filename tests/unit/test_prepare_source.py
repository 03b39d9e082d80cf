"""docker/build/prepare-source: which patches it applies (abi3 or per-version, SKIP_PATCHES), that it
leaves the patch folder as it was, and that a patch that does not apply stops it with one line.
The sdist comes from a stand-in for fetch_sdist.py: nothing is downloaded."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.commands import fake_sdist, one_line_patch

BUILD = ROOT / "docker" / "build"
# The patch of each file of the sdist.
PATCHES = {"live": "0001-live-fix.patch", "lock": "0002-lock-fix.patch",
           "abi": "0005-abi3-limited-api.patch"}


@pytest.fixture
def setup(tmp_path: Path) -> dict:
    fetch = fake_sdist(tmp_path, {f"{name}.txt": "upstream\n" for name in PATCHES})
    versions = tmp_path / "versions.env"
    versions.write_text("HFTBACKTEST_VERSION=9.9.9\nHFTBACKTEST_SDIST_SHA256=00\n")
    patches = tmp_path / "patches"
    patches.mkdir()
    for target, patch in PATCHES.items():
        (patches / patch).write_text(one_line_patch(f"{target}.txt", "upstream", "patched"))
    env = dict(os.environ, PATH=f"{BUILD}:{os.environ['PATH']}", HFTLIVE_VERSIONS=str(versions),
               FETCH_SDIST=str(fetch), PATCHES=str(patches), APPLIED_TO=str(tmp_path / "applied"))
    return {"env": env, "patches": patches, "dest": tmp_path / "src", "applied": tmp_path / "applied"}


def prepare(setup: dict, **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(BUILD / "prepare-source"), str(setup["dest"])], capture_output=True,
                          text=True, env={**setup["env"], **settings}, timeout=60)


@pytest.mark.parametrize("settings, patched, said", [
    ({}, {"abi", "live", "lock"}, "source: applied 0005-abi3-limited-api.patch"),
    ({"WHEEL_ABI": "per-version"}, {"live", "lock"},
     "source: the per-version build leaves out 0005-abi3-limited-api.patch"),
    ({"SKIP_PATCHES": "0001 0002"}, {"abi"}, "source: SKIP_PATCHES leaves out 0002-lock-fix.patch"),
    ({"SKIP_PATCHES": "all"}, set(), "source: SKIP_PATCHES leaves out 0005-abi3-limited-api.patch"),
], ids=["abi3", "per-version", "skip-some", "skip-all"])
def test_which_patches_apply_and_the_patch_folder_stays_as_it_was(setup, settings, patched, said):
    before = {p.name: p.read_text() for p in setup["patches"].iterdir()}
    done = prepare(setup, **settings)
    assert done.returncode == 0, done.stderr
    assert said in done.stdout.splitlines()
    state = {p.stem: p.read_text().strip() for p in setup["dest"].glob("*.txt")}
    assert state == {name: "patched" if name in patched else "upstream" for name in PATCHES}
    assert sorted(p.name for p in setup["applied"].glob("*")) == sorted(PATCHES[n] for n in patched)
    assert {p.name: p.read_text() for p in setup["patches"].iterdir()} == before


def test_a_patch_that_does_not_apply_stops_with_one_line(setup):
    (setup["patches"] / PATCHES["lock"]).write_text(one_line_patch("lock.txt", "other", "patched"))
    done = prepare(setup)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "source: 0002-lock-fix.patch does not apply to hftbacktest 9.9.9"


def test_a_bad_wheel_abi_is_a_usage_error(setup):
    done = prepare(setup, WHEEL_ABI="abi4")
    assert done.returncode == 2
    assert done.stderr.strip() == "source: WHEEL_ABI must be abi3 or per-version, not 'abi4'"
