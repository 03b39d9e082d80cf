"""docker/build/prepare-source: which patches it applies (abi3 or per-version, SKIP_PATCHES), that it
leaves the patch folder as it was, and that a patch that does not apply stops it with one line.
The sdist comes from a stand-in for fetch_sdist.py: nothing is downloaded."""
from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.support import ROOT


BUILD = ROOT / "docker" / "build"
PATCH = """--- a/{name}.txt
+++ b/{name}.txt
@@ -1 +1 @@
-upstream
+patched
"""


@pytest.fixture
def setup(tmp_path: Path) -> dict:
    sdist = tmp_path / "sdist" / "hftbacktest-9.9.9"
    sdist.mkdir(parents=True)
    for name in ("live", "lock", "abi"):
        (sdist / f"{name}.txt").write_text("upstream\n")
    archive = tmp_path / "hftbacktest-9.9.9.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(sdist, arcname=sdist.name)
    fetch = tmp_path / "fetch.py"   # the fetcher's interface: NAME VERSION SHA256 DEST_DIR
    fetch.write_text(f"import shutil, sys\nshutil.copy({str(archive)!r}, sys.argv[4])\n")
    versions = tmp_path / "versions.env"
    versions.write_text("HFTBACKTEST_VERSION=9.9.9\nHFTBACKTEST_SDIST_SHA256=00\n")
    patches = tmp_path / "patches"
    patches.mkdir()
    for number, name, target in (("0001", "live-fix", "live"), ("0002", "lock-fix", "lock"),
                                 ("0005", "abi3-limited-api", "abi")):
        (patches / f"{number}-{name}.patch").write_text(PATCH.format(name=target))
    env = dict(os.environ, PATH=f"{BUILD}:{os.environ['PATH']}", HFTLIVE_VERSIONS=str(versions),
               FETCH_SDIST=str(fetch), PATCHES=str(patches), APPLIED_TO=str(tmp_path / "applied"))
    return {"env": env, "patches": patches, "dest": tmp_path / "src", "applied": tmp_path / "applied"}


def prepare(setup: dict, **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(BUILD / "prepare-source"), str(setup["dest"])], capture_output=True,
                          text=True, env={**setup["env"], **settings}, timeout=60)


def state(setup: dict) -> dict[str, str]:
    return {p.stem: p.read_text().strip() for p in sorted(setup["dest"].glob("*.txt"))}


def test_abi3_applies_every_patch_and_records_them(setup):
    before = {p.name: p.read_text() for p in setup["patches"].iterdir()}
    done = prepare(setup)
    assert done.returncode == 0, done.stderr
    assert state(setup) == {"abi": "patched", "live": "patched", "lock": "patched"}
    assert sorted(p.name for p in setup["applied"].iterdir()) == sorted(before)
    assert {p.name: p.read_text() for p in setup["patches"].iterdir()} == before, "the patch folder is untouched"


def test_per_version_leaves_out_the_abi3_patch(setup):
    done = prepare(setup, WHEEL_ABI="per-version")
    assert done.returncode == 0, done.stderr
    assert state(setup) == {"abi": "upstream", "live": "patched", "lock": "patched"}
    assert "0005-abi3-limited-api.patch" not in {p.name for p in setup["applied"].iterdir()}


@pytest.mark.parametrize("skip, expected", [
    ("0001 0002", {"abi": "patched", "live": "upstream", "lock": "upstream"}),
    ("all", {"abi": "upstream", "live": "upstream", "lock": "upstream"}),
])
def test_skip_patches(setup, skip, expected):
    done = prepare(setup, SKIP_PATCHES=skip)
    assert done.returncode == 0, done.stderr
    assert state(setup) == expected
    assert "SKIP_PATCHES leaves out" in done.stdout


def test_a_patch_that_does_not_apply_stops_with_one_line(setup):
    (setup["patches"] / "0002-lock-fix.patch").write_text(PATCH.format(name="lock").replace("-upstream", "-other"))
    done = prepare(setup)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "source: 0002-lock-fix.patch does not apply to hftbacktest 9.9.9"


def test_a_bad_wheel_abi_is_a_usage_error(setup):
    done = prepare(setup, WHEEL_ABI="abi4")
    assert done.returncode == 2
    assert done.stderr.strip() == "source: WHEEL_ABI must be abi3 or per-version, not 'abi4'"
