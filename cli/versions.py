"""The pins (docker/versions.env) and the runtime images' facts (docker/runtime.env): KEY=VALUE
files shared with the Dockerfiles, compose.yaml and the tests."""
from __future__ import annotations

import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSIONS_FILE = ROOT / "docker" / "versions.env"
RUNTIME_FILE = ROOT / "docker" / "runtime.env"


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
        pins[key] = " ".join(shlex.split(value))
    return pins


def runtime_facts() -> dict[str, str]:
    """docker/runtime.env: the UID, ports, connector name and CPython of the runtime images."""
    return load(RUNTIME_FILE)
