"""cibuildwheel really runs here: `./hftlive cibuildwheel` builds the live wheel with release.yml's
configuration in the local manylinux-like image, and the wheel passes the same checks as our own
build's: the live-wheel check, offline, on a clean Debian; auditwheel's manylinux_2_28 policy; and
the same files as the wheelhouse's wheel."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cli import cibw, versions
from tests.support import ROOT
from tests.unit.test_versions import runtime_pins

CHECK = ROOT / "docker" / "build" / "wheel_check.py"


@pytest.fixture(scope="module")
def built() -> dict:
    done = subprocess.run([sys.executable, "-m", "cli", "cibuildwheel"], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=2400)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    wheels = sorted(cibw.OUT.glob("*.whl"))
    assert len(wheels) == 1, [w.name for w in wheels]
    return {"wheel": wheels[0], "output": output}


def test_cibuildwheel_builds_repairs_and_tests_one_abi3_wheel(built):
    version = versions.load()["HFTBACKTEST_VERSION"]
    assert built["wheel"].name == f"hftbacktest-{version}+hftlive-cp311-abi3-manylinux_2_28_x86_64.whl"
    output = built["output"]
    # cibuildwheel's own steps, in the workflow's configuration
    assert "Repairing wheel..." in output and "Testing wheel..." in output
    assert "ensure-rust: rustc" in output, "before-all ran"
    assert "ensure-rust: libclang at" in output and "installing libclang" not in output
    assert "wheel_check: ok: hftbacktest " + version + "+hftlive on CPython 3.11" in output
    assert "Auditing wheel..." in output, "cibuildwheel's abi3 audit ran"


def test_the_wheel_installs_offline_and_passes_the_live_wheel_check(built, client, base_image, wheels):
    """As the wheelhouse's own wheel is checked: the runtime wheels from ./wheels, no network."""
    runtime = " ".join(runtime_pins(versions.load(), "3.11"))
    script = ("set -e; python3 -m venv /tmp/venv; "
              f"/tmp/venv/bin/pip install --quiet --no-index --find-links /wheels /built/{built['wheel'].name} {runtime}; "
              "/tmp/venv/bin/python /check/wheel_check.py --strict")
    output = client.containers.run(
        base_image("python3.11-bookworm"), ["sh", "-c", script], network_mode="none", remove=True,
        volumes={str(wheels): {"bind": "/wheels", "mode": "ro"},
                 str(built["wheel"].parent): {"bind": "/built", "mode": "ro"},
                 str(CHECK.parent): {"bind": "/check", "mode": "ro"}},
        stdout=True, stderr=False)
    result = json.loads(output.decode().strip().splitlines()[-1])
    assert result["live_feature"] is True
    assert result["distribution"].endswith("+hftlive")


def test_auditwheel_places_it_at_the_policy_or_older(built, client):
    shown = client.containers.run(
        f"{cibw.IMAGE}:latest", ["auditwheel", "show", f"/built/{built['wheel'].name}"], network_mode="none",
        remove=True, volumes={str(built["wheel"].parent): {"bind": "/built", "mode": "ro"}}).decode()
    text = " ".join(shown.split())
    policy = re.search(r'"manylinux_(\d+)_(\d+)_x86_64"', text)
    assert policy, text
    assert (int(policy.group(1)), int(policy.group(2))) <= (2, 28), text


def test_it_holds_the_same_files_as_the_wheelhouse_wheel(built, manifest, wheels):
    ours = wheels / manifest["wheels"][0]["file"]

    def names(path: Path) -> set[str]:
        with zipfile.ZipFile(path) as z:
            # auditwheel repacks: it rewrites RECORD and WHEEL and adds folder entries; the rest
            # is what maturin packed
            return {n for n in z.namelist() if not n.endswith(("/RECORD", "/WHEEL", "/"))}

    assert ours.name == built["wheel"].name
    assert names(ours) == names(built["wheel"])
