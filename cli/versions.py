"""The pinned versions file (docker/versions.env), shared with the Dockerfiles and tests."""
from __future__ import annotations

import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSIONS_FILE = ROOT / "docker" / "versions.env"


def load(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """Parse KEY=VALUE lines; values may be quoted. Raises ValueError on a malformed line."""
    pins: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {line!r}")
        words = shlex.split(value)
        pins[key] = " ".join(words)
    return pins


def python_versions(pins: dict[str, str]) -> list[str]:
    return pins["PYTHON_VERSIONS"].split()


def runtime_pins(pins: dict[str, str], python: str) -> list[str]:
    """The runtime requirements (name==version) for one CPython version, e.g. '3.13'."""
    key = "RUNTIME_PINS_CP" + python.replace(".", "")
    return pins.get(key, pins["RUNTIME_PINS"]).split()
