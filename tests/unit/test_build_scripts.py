"""The small programs the build runs: lock check, audit policy, wheelhouse verification."""
import hashlib
import importlib.util
import subprocess
import sys

from cli import wheelhouse
from tests.support import ROOT

BUILD = ROOT / "docker" / "build"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BUILD / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LOCK = """version = 4
[[package]]
name = "a"
version = "1.0.0"
checksum = "aa"

[[package]]
name = "b"
version = "2.0.0"
checksum = "bb"
"""


def test_lock_may_only_be_pruned(tmp_path):
    upstream = tmp_path / "up.lock"
    upstream.write_text(LOCK)
    pruned = tmp_path / "pruned.lock"
    pruned.write_text(LOCK.split("[[package]]\nname = \"b\"")[0])
    moved = tmp_path / "moved.lock"
    moved.write_text(LOCK.replace('"2.0.0"', '"2.0.1"'))
    script = str(BUILD / "lock_subset.py")
    ok = subprocess.run([sys.executable, script, str(upstream), str(pruned)], capture_output=True, text=True)
    bad = subprocess.run([sys.executable, script, str(upstream), str(moved)], capture_output=True, text=True)
    assert ok.returncode == 0
    assert bad.returncode == 1 and "b 2.0.1 is not in upstream's Cargo.lock" in bad.stderr


def test_audit_compares_glibc_versions_not_strings():
    audit = load("audit_wheels")
    assert audit.glibc("manylinux_2_28") == (2, 28)
    assert (2, 9) < audit.glibc("manylinux_2_28") < (2, 34)
    text = 'is consistent with the following platform tag: "manylinux_2_17_x86_64".'
    assert audit.TAG.search(text).group(1) == "manylinux_2_17_x86_64"


def test_wheelhouse_verification_finds_every_kind_of_damage(tmp_path):
    (tmp_path / "a.whl").write_bytes(b"wheel a")
    (tmp_path / "b.whl").write_bytes(b"wheel b")
    (tmp_path / "README.md").write_text("kept, not listed")
    digest = hashlib.sha256(b"wheel a").hexdigest()
    (tmp_path / "SHA256SUMS").write_text(
        f"{digest}  a.whl\n{hashlib.sha256(b'wheel b').hexdigest()}  b.whl\n")
    assert wheelhouse.verify(tmp_path) == []
    (tmp_path / "b.whl").write_bytes(b"tampered")
    (tmp_path / "c.whl").write_bytes(b"stray")
    (tmp_path / "a.whl").unlink()
    assert sorted(wheelhouse.verify(tmp_path)) == [
        "a.whl is listed but missing", "b.whl does not match its sha256",
        "c.whl is not listed in SHA256SUMS"]
