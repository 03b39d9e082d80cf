"""Cross-build the live wheel and the connector for aarch64 here, check them under qemu-user
(Dockerfile.build's aarch64 stages do both), and export what passed to dist/aarch64."""
from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path

from . import bases, buildx, wheelhouse
from .progress import Step, fail
from .versions import ROOT

TARGET = "aarch64-export"
DEST = ROOT / "dist" / "aarch64"
CHECKS = "CHECKS.txt"  # one line per check the build ran under qemu


def run(*, offline: bool, ca: Path, dest: Path = DEST) -> int:
    """Build, check and export the aarch64 wheel and connector; 0 when every check passed.

    A failed build or check stops with the build log's tail (buildx.build), as other builds do."""
    started = time.monotonic()
    args = {"BUILD_BASE": bases.ensure(wheelhouse.BUILD_BASE, offline=offline)}
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".aarch64-", dir=dest.parent) as scratch:
        out = Path(scratch) / "export"
        buildx.build("Dockerfile.build", TARGET, build_args=args, ca=ca,
                     output=f"type=local,dest={out}", name="aarch64", echo_all=True)
        if not (out / CHECKS).is_file():
            fail(f"the aarch64 export has no {CHECKS}; see the log in build-logs/")
        with Step("aarch64 dist") as step:
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir()
            for new in out.iterdir():
                shutil.move(str(new), dest / new.name)
            step.say(f"wrote {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
    summary(dest, time.monotonic() - started)
    return 0


def summary(directory: Path, seconds: float) -> None:
    print(f"\n{'aarch64 (cross-built on x86_64)':<64} {'MB':>6}  sha256")
    for path in sorted(directory.iterdir()):
        if path.name != CHECKS:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            print(f"{path.name:<64} {path.stat().st_size / 1e6:6.1f}  {digest[:16]}")
    print()
    print((directory / CHECKS).read_text().rstrip())
    print(f"aarch64: built and checked in {seconds:.0f} s")
