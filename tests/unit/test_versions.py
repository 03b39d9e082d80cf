"""docker/versions.env is the one place for pins, and everything that reads it finds its keys."""
import re

import pytest

from cli import versions
from tests.support import ROOT


def runtime_pins(pins: dict[str, str], python: str) -> list[str]:
    """The runtime requirements (name==version) for one CPython ('3.13'), as docker/build reads them:
    RUNTIME_PINS_CP313 when pinned, else RUNTIME_PINS."""
    return pins.get("RUNTIME_PINS_CP" + python.replace(".", ""), pins["RUNTIME_PINS"]).split()


def test_every_key_the_build_reads_is_pinned():
    pins = versions.load()
    readers = [ROOT / "Dockerfile.build", *(ROOT / "docker" / "build").iterdir()]
    used = set()
    for path in readers:
        used |= set(re.findall(r"\$\(pins ([A-Z0-9_]+)\)", path.read_text()))
        used |= set(re.findall(r"values\[\"([A-Z0-9_]+)\"\]", path.read_text()))
    assert used, "the build no longer reads docker/versions.env?"
    assert sorted(used - set(pins)) == []


def test_pins_are_exact():
    pins = versions.load()
    assert re.fullmatch(r"[0-9a-f]{64}", pins["HFTBACKTEST_SDIST_SHA256"])
    assert pins["PYTHON_VERSIONS"].split() == ["3.11", "3.12", "3.13", "3.14"]
    for python in pins["PYTHON_VERSIONS"].split():
        runtime = runtime_pins(pins, python)
        assert sorted(p.split("==")[0] for p in runtime) == ["llvmlite", "numba", "numpy"]
        assert all(re.fullmatch(r"[a-z]+==[0-9.]+", p) for p in runtime)
    assert runtime_pins(pins, "3.14") != runtime_pins(pins, "3.11")


def test_malformed_line_is_reported_with_its_place(tmp_path):
    bad = tmp_path / "versions.env"
    bad.write_text("A=1\nthis is not a pin\n")
    with pytest.raises(ValueError, match="versions.env:2"):
        versions.load(bad)


def test_the_build_base_default_is_the_public_image_the_cli_tries_first():
    from cli import bases, wheelhouse

    dockerfile = (ROOT / "Dockerfile.build").read_text()
    default = re.search(r"^ARG BUILD_BASE=(\S+)$", dockerfile, re.M).group(1)
    assert default == bases.BASES[wheelhouse.BUILD_BASE].public
