"""install.sh's checks that come before Docker: usage errors, and a bundle that does not verify is
refused with every bad file named. Run with the host's /bin/sh (dash on Debian: POSIX, no bash)."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from cli.versions import ROOT

INSTALL = ROOT / "docker" / "bundle" / "install.sh"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A small bundle-shaped folder: install.sh, two files and their SHA256SUMS."""
    shutil.copy(INSTALL, tmp_path / "install.sh")
    (tmp_path / "wheels").mkdir()
    (tmp_path / "images.tar.gz").write_bytes(b"layers" * 1000)
    (tmp_path / "wheels" / "requirements-cp311.txt").write_text("numpy==2.2.6\n")
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(tmp_path)}\n"
             for p in sorted(tmp_path.rglob("*")) if p.is_file()]
    (tmp_path / "SHA256SUMS").write_text("".join(lines))
    return tmp_path


def install(bundle: Path, *args: str) -> subprocess.CompletedProcess:
    # PATH without docker: these checks must finish before Docker is needed.
    return subprocess.run(["sh", str(bundle / "install.sh"), *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(bundle)}, timeout=30)


def test_verify_passes_on_a_whole_bundle_and_prints_the_sums_digest(bundle):
    done = install(bundle, "--verify")
    assert done.returncode == 0, done.stderr
    digest = hashlib.sha256((bundle / "SHA256SUMS").read_bytes()).hexdigest()
    assert "verified 3 files" in done.stdout and digest in done.stdout


def test_a_changed_byte_and_a_missing_file_are_each_named_and_nothing_proceeds(bundle):
    data = bytearray((bundle / "images.tar.gz").read_bytes())
    data[100] ^= 1
    (bundle / "images.tar.gz").write_bytes(bytes(data))
    (bundle / "wheels" / "requirements-cp311.txt").unlink()
    done = install(bundle)            # a full install, not only --verify: it must stop before Docker
    assert done.returncode == 1
    assert "DIFFERS  images.tar.gz" in done.stderr
    assert "MISSING  wheels/requirements-cp311.txt" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "install: error: 2 of 3 files do not match SHA256SUMS: the bundle was altered or cut short; "
        "nothing was loaded")
    assert "docker" not in done.stderr.lower()


def test_a_bundle_without_sums_is_refused(bundle):
    (bundle / "SHA256SUMS").unlink()
    done = install(bundle, "--verify")
    assert done.returncode == 1 and "SHA256SUMS is missing" in done.stderr


def test_sums_cannot_point_outside_the_bundle(bundle):
    (bundle / "SHA256SUMS").write_text("0" * 64 + "  ../etc/passwd\n")
    done = install(bundle, "--verify")
    assert done.returncode == 1 and "outside the bundle" in done.stderr


@pytest.mark.parametrize("args, message", [
    (["--profile", "paper"], "--profile must be live+sim, live or mock, not 'paper'"),
    (["--timeout", "soon"], "--timeout must be a whole number of seconds, not 'soon'"),
    (["--dir"], "--dir needs a value"),
    (["--force"], "unknown argument '--force'"),
])
def test_usage_errors_are_one_line_and_exit_2(bundle, args, message):
    done = install(bundle, *args)
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == f"install: {message}"
