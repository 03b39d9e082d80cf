"""The command line tells the user what went wrong and exits non-zero, before touching Docker."""
import hashlib
import json

import pytest

from cli import images, wheelhouse
from cli.__main__ import main
from tests.support.commands import hftlive


@pytest.mark.parametrize("args, code, message", [
    (("bases", "ubuntu"), None, "unknown base ubuntu; choose from python3.11-bookworm"),
    (("wheels", "--python", "3.9"), 1, "no wheels are built for CPython 3.9; choose from 3.11 3.12 3.13 3.14"),
    (("wheels", "--ca-bundle", "/nonexistent/bundle.pem"), 1, "CA bundle /nonexistent/bundle.pem not found"),
    (("wheels", "--frobnicate"), None, "unrecognized arguments: --frobnicate"),
    (("images", "--target", "no-such-image"), 2,
     "invalid choice: 'no-such-image' (choose from 'service-mock', 'service', 'connector', 'simulator', "
     "'bot')"),
], ids=["unknown-base", "unknown-python", "missing-ca-bundle", "unknown-option", "unknown-image"])
def test_a_bad_argument_is_refused_naming_what_is_wrong(args, code, message):
    done = hftlive(*args)
    assert done.returncode != 0 if code is None else done.returncode == code   # None: any failure
    assert message in done.stderr


def test_missing_tooling_says_what_to_do():
    done = hftlive("wheels", "--python", "3.11")
    assert done.returncode == 1
    assert "MISSING docker CLI" in done.stdout
    assert "./hftlive setup --install" in done.stderr


def test_a_test_run_that_collects_nothing_fails(tmp_path):
    (tmp_path / "empty").mkdir()
    done = hftlive("test", str(tmp_path / "empty"))
    assert done.returncode == 1
    assert "collected no tests" in done.stderr


def test_pytest_options_pass_through(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    done = hftlive("test", "-m", "not integration", "-q", str(tmp_path / "test_one.py"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_images_need_a_wheelhouse_with_the_service_locks(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        images.check_wheelhouse(tmp_path)
    assert stop.value.code == 1
    assert "there is no wheelhouse" in capsys.readouterr().err
    # A wheelhouse built before the service locks existed (or without CPython 3.11) is named as such.
    (tmp_path / "manifest.json").write_text(json.dumps({"python_tags": ["cp313"], "locks": {"cp313": "x"}}))
    digest = hashlib.sha256((tmp_path / "manifest.json").read_bytes()).hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{digest}  manifest.json\n")
    with pytest.raises(SystemExit):
        images.check_wheelhouse(tmp_path)
    assert "no CPython 3.11 locks for the service images (it has cp313)" in capsys.readouterr().err


def test_a_wheelhouse_from_other_sources_is_told_apart_whatever_options_built_it():
    def manifest(inputs, lto="fat", abi3=True):
        return {"inputs": inputs, "python_tags": ["cp311", "cp312"], "lto": lto, "wheels": [{"abi3": abi3}]}

    pythons = ["3.11", "3.12"]
    assert not wheelhouse.other_sources(manifest(wheelhouse.fingerprint(pythons)))
    assert not wheelhouse.other_sources(manifest(wheelhouse.fingerprint(pythons, "abi3", "thin"), lto="thin"))
    pinned = manifest(wheelhouse.fingerprint(pythons, "abi3", "fat"))
    assert not wheelhouse.other_sources(pinned), "--lto fat, as pinned"
    assert not wheelhouse.other_sources(manifest(wheelhouse.fingerprint(pythons, "per-version"), abi3=False))
    assert wheelhouse.other_sources(manifest("0" * 64)), "sources changed since"
    assert wheelhouse.other_sources(manifest(wheelhouse.fingerprint(["3.11"]))), "a fingerprint of other options"
    assert not wheelhouse.other_sources(manifest(None)), "a manifest without a fingerprint cannot tell"


def test_images_from_a_wheelhouse_of_other_sources_say_so_first(monkeypatch, capsys):
    stale = {"inputs": "0" * 64, "python_tags": ["cp311"], "lto": "fat", "wheels": [{"abi3": True}]}
    monkeypatch.setattr(images, "check_wheelhouse", lambda need_connector: stale)
    with pytest.raises(SystemExit):
        main(["images", "--ca-bundle", "/nonexistent/bundle.pem"])   # stops before any Docker
    said = capsys.readouterr().err
    assert said.startswith("hftlive images: warning: ./wheels was not built from this checkout's sources")
    assert "Dockerfile.build" in said and "./hftlive wheels` rebuilds it" in said


def test_every_image_target_is_a_stage_of_the_runtime_dockerfile():
    assert set(images.TARGETS) <= set(images.stages())
