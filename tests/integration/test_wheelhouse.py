"""The exported wheelhouse: installs offline on other Debian releases, and the wheel works."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from cli import versions
from tests.support import ROOT

CHECK = ROOT / "docker" / "build" / "wheel_check.py"   # also cibuildwheel's test step


# One abi3 wheel serves them all: Debian's CPython 3.11 (bookworm), 3.13 (trixie) and 3.14 (forky).
@pytest.mark.parametrize("base,tag", [("python3.11-bookworm", "cp311"), ("python3.13-trixie", "cp313"),
                                      ("python3.14-forky", "cp314")])
def test_installs_offline_and_backtests(client, base_image, wheels, base, tag):
    lock = wheels / f"requirements-{tag}.txt"
    assert lock.is_file(), f"the wheelhouse has no lock for {tag}; build it: ./hftlive wheels"
    script = (
        "set -e; python3 -m venv /tmp/venv; "
        f"/tmp/venv/bin/pip install --quiet --no-index --find-links /wheels --require-hashes -r /wheels/{lock.name}; "
        "/tmp/venv/bin/python /check/wheel_check.py --strict")
    output = client.containers.run(
        base_image(base), ["sh", "-c", script], network_mode="none", remove=True,
        volumes={str(wheels): {"bind": "/wheels", "mode": "ro"},
                 str(CHECK.parent): {"bind": "/check", "mode": "ro"}},
        stdout=True, stderr=False)
    result = json.loads(output.decode().strip().splitlines()[-1])

    assert result["python"] == f"3.{tag[3:]}"
    assert result["version"] == versions.load()["HFTBACKTEST_VERSION"]
    # pip tells ours from PyPI's by the local label (patch 0006); the import name is upstream's.
    assert result["distribution"] == versions.load()["HFTBACKTEST_VERSION"] + "+hftlive"
    assert result["live_feature"] is True
    assert result["live_names"] == ["build_hashmap_livebot", "HashMapMarketDepthLiveBot",
                                    "ROIVectorMarketDepthLiveBot"]
    seen = result["backtest"]
    assert [seen[t]["at"] for t in ("t1.5", "t2.5", "t3.5", "t4.5")] == [
        1_500_000_000, 2_500_000_000, 3_500_000_000, 4_500_000_000]
    # The book the events built: bid 100.0 x2, ask 100.5 x3; then the ask moves to 100.6 x4.
    assert seen["t1.5"]["book"] == {"best_bid": 100.0, "best_ask": 100.5,
                                    "best_bid_qty": 2.0, "best_ask_qty": 3.0}
    assert seen["t3.5"]["book"]["best_ask"] == pytest.approx(100.6)
    assert seen["t3.5"]["book"]["best_ask_qty"] == 4.0
    assert seen["t3.5"]["book"]["best_bid"] == 100.0
    # Each trade arrives once, in its own interval, with its taker side.
    assert seen["t1.5"]["trades"] == []
    assert seen["t2.5"]["trades"] == [[100.5, 0.5, True]]
    assert seen["t3.5"]["trades"] == []
    assert seen["t4.5"]["trades"] == [[100.0, 0.25, False]]


def test_manifest_agrees_with_the_wheels(wheels, manifest):
    pins = versions.load()
    assert manifest["hftbacktest_version"] == pins["HFTBACKTEST_VERSION"]
    assert manifest["sdist_sha256"] == pins["HFTBACKTEST_SDIST_SHA256"]
    assert manifest["features"] == ["live"]
    ours = sorted(p.name for p in wheels.glob("hftbacktest-*.whl"))
    assert sorted(w["file"] for w in manifest["wheels"]) == ours
    for wheel in manifest["wheels"] + manifest["runtime_wheels"]:
        assert hashlib.sha256((wheels / wheel["file"]).read_bytes()).hexdigest() == wheel["sha256"]
    # One wheel, on the limited API from CPython 3.11, locked for every pinned CPython.
    assert [re.search(r"-(cp3\d+-abi3)-", name).group(1) for name in ours] == ["cp311-abi3"]
    tags = ["cp" + v.replace(".", "") for v in pins["PYTHON_VERSIONS"].split()]
    assert manifest["python_tags"] == tags
    assert sorted(manifest["locks"]) == sorted(tags) == sorted(manifest["service_locks"])
    patches = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
               for p in (ROOT / "docker" / "patches").glob("*.patch")}
    assert {p["name"]: p["sha256"] for p in manifest["patches"]} == patches
    rustc = tuple(int(x) for x in manifest["rustc"].split()[1].split("-")[0].split("."))
    assert rustc >= tuple(int(x) for x in pins["RUST_MIN_VERSION"].split("."))
    assert manifest["maturin"].split()[-1] == pins["MATURIN_VERSION"]
    for tag, lock in manifest["locks"].items():
        text = (wheels / lock).read_text()
        wheel = manifest["wheels"][0]
        assert f"hftbacktest=={pins['HFTBACKTEST_VERSION']}" in text
        assert f"--hash=sha256:{wheel['sha256']}" in text


def glibc_tags(filename: str) -> list[tuple[int, int]]:
    platforms = Path(filename).stem.split("-")[-1].split(".")
    legacy = {"manylinux2014_x86_64": (2, 17), "manylinux2010_x86_64": (2, 12),
              "manylinux1_x86_64": (2, 5)}
    found = []
    for platform in platforms:
        match = re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", platform)
        found.append((int(match.group(1)), int(match.group(2))) if match else legacy[platform])
    return found


def test_every_wheel_is_manylinux_2_28_or_older(wheels, manifest):
    audit = (wheels / "AUDIT.txt").read_text().splitlines()
    for wheel in manifest["wheels"]:
        assert all(tag <= (2, 28) for tag in glibc_tags(wheel["file"])), wheel["file"]
        line = next(l for l in audit if wheel["file"] in l)
        assert line.startswith("audit: ok "), line
        policy = re.search(r"manylinux_(\d+)_(\d+)_x86_64", line.split("says")[1])
        assert (int(policy.group(1)), int(policy.group(2))) <= (2, 28), line
