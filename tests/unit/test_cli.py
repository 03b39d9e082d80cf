"""The command line tells the user what went wrong and exits non-zero."""
import subprocess
import sys

from cli.versions import ROOT


def hftlive(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=cwd, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_unknown_base_is_named():
    done = hftlive("bases", "ubuntu")
    assert done.returncode != 0
    assert "unknown base ubuntu; choose from bookworm" in done.stderr


def test_unknown_python_is_refused_before_building():
    done = hftlive("wheels", "--python", "3.9", "--ca-bundle", "/nonexistent")
    assert done.returncode != 0
    assert "no wheels are built for CPython 3.9" in done.stderr or "MISSING" in done.stdout


def test_missing_ca_bundle_is_named():
    done = hftlive("wheels", "--ca-bundle", "/nonexistent/bundle.pem")
    assert done.returncode != 0
    assert "/nonexistent/bundle.pem not found" in done.stderr or "MISSING" in done.stdout


def test_a_test_run_that_collects_nothing_fails(tmp_path):
    (tmp_path / "empty").mkdir()
    done = hftlive("test", str(tmp_path / "empty"))
    assert done.returncode == 1
    assert "collected no tests" in done.stderr
