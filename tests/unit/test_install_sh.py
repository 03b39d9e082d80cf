"""install.sh's checks that come before Docker: usage errors, and a bundle that does not verify is
refused with every bad file named. Run with the host's /bin/sh (dash on Debian: POSIX, no bash)."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT


INSTALL = ROOT / "docker" / "bundle" / "install.sh"


# What the installer reads; with install.sh and a wheels file, 9 files in all.
READ = ("images.txt", "images.tar.gz", "compose.yaml", ".env.example", "channel.toml", "README", "manifest.json")
FILES = 9


def write_sums(bundle: Path, newline: bool = True) -> None:
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(bundle)}"
             for p in sorted(bundle.rglob("*")) if p.is_file() and p.name != "SHA256SUMS"]
    (bundle / "SHA256SUMS").write_text("\n".join(lines) + ("\n" if newline else ""))


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A small bundle-shaped folder: install.sh, the files it reads, a wheels file, SHA256SUMS; and
    beside it bin/, a PATH holding only what the checks before Docker use: no docker, no compose."""
    folder = tmp_path / "bundle"
    (folder / "wheels").mkdir(parents=True)
    shutil.copy(INSTALL, folder / "install.sh")
    for name in READ:
        (folder / name).write_text(f"{name}\n")
    (folder / "images.tar.gz").write_bytes(b"layers" * 1000)
    (folder / "wheels" / "requirements-cp311.txt").write_text("numpy==2.2.6\n")
    write_sums(folder)
    (tmp_path / "bin").mkdir()
    for name in ("id", "dirname", "sha256sum", "cut", "find", "sed"):
        (tmp_path / "bin" / name).symlink_to(shutil.which(name))
    return folder


def install(bundle: Path, *args: str) -> subprocess.CompletedProcess:
    tools = bundle.parent / "bin"
    return subprocess.run([shutil.which("sh"), str(bundle / "install.sh"), *args], capture_output=True,
                          text=True, env={"PATH": str(tools), "HOME": str(bundle.parent)}, timeout=30)


def test_verify_passes_on_a_whole_bundle_and_prints_the_sums_digest(bundle):
    done = install(bundle, "--verify")
    assert done.returncode == 0, done.stderr
    digest = hashlib.sha256((bundle / "SHA256SUMS").read_bytes()).hexdigest()
    assert f"verified {FILES} files" in done.stdout and digest in done.stdout


def test_the_last_line_counts_without_a_newline(bundle):
    write_sums(bundle, newline=False)
    assert f"verified {FILES} files" in install(bundle, "--verify").stdout
    (bundle / "wheels" / "requirements-cp311.txt").write_text("numpy==2.2.7\n")   # the last line's file
    done = install(bundle, "--verify")
    assert done.returncode == 1 and "DIFFERS  wheels/requirements-cp311.txt" in done.stderr


def test_an_unlisted_file_and_an_unlisted_input_are_refused(bundle):
    (bundle / "extra.sh").write_text("echo surprise\n")
    sums = bundle / "SHA256SUMS"
    sums.write_text("".join(line + "\n" for line in sums.read_text().splitlines() if "images.txt" not in line))
    done = install(bundle, "--verify")
    assert done.returncode == 1
    assert "UNLISTED images.txt" in done.stderr and "EXTRA    extra.sh" in done.stderr


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
        "install: error: 2 files do not match SHA256SUMS: the bundle was altered or cut short; "
        "nothing was loaded")


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
