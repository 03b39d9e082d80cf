"""How unit tests run things as a user would: `./hftlive` with no Docker on PATH, and the build's
scripts against stand-ins (an sdist and its fetcher, patches, executables), not the network."""
from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

from tests.support import ROOT


def hftlive(*args: str) -> subprocess.CompletedProcess:
    # No docker on PATH: argument errors must be reported before any tooling check.
    env = {"PYTHONPATH": str(ROOT), "PATH": "/nonexistent"}
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def executables(folder: Path, **scripts: str) -> Path:
    """Each script written into `folder` as an executable of that name; returns `folder`."""
    folder.mkdir(exist_ok=True)
    for name, text in scripts.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return folder


def fake_sdist(folder: Path, files: dict[str, str], version: str = "9.9.9") -> Path:
    """hftbacktest-VERSION.tar.gz holding `files`, and a stand-in for fetch_sdist.py that copies it
    (the fetcher's interface: NAME VERSION SHA256 DEST_DIR); returns the stand-in."""
    sdist = folder / "sdist" / f"hftbacktest-{version}"
    sdist.mkdir(parents=True)
    for name, text in files.items():
        (sdist / name).write_text(text)
    archive = folder / f"hftbacktest-{version}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(sdist, arcname=sdist.name)
    fetch = folder / "fetch.py"
    fetch.write_text(f"import shutil, sys\nshutil.copy({str(archive)!r}, sys.argv[4])\n")
    return fetch


def one_line_patch(path: str, old: str, new: str) -> str:
    """A patch that turns the one line `old` of `path` into `new`."""
    return f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-{old}\n+{new}\n"
