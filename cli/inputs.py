"""What the wheelhouse and the runtime images are built from, as one fingerprint each: `./hftlive
up` rebuilds them only when it changed; BuildKit's cache redoes only the steps whose input moved."""
from __future__ import annotations

import hashlib
from pathlib import Path

from .versions import ROOT

# Paths relative to the checkout; a folder means every file below it.
WHEELHOUSE = ("Dockerfile.build", "docker/build", "docker/patches", "docker/versions.env",
              "connector/Cargo.toml", "connector/Cargo.lock", "connector/src", "connector/tests",
              "service/requirements.txt")
IMAGES = ("Dockerfile.runtime", "docker/runtime", "docker/runtime.env", "docker/channel.toml", "market", "service",
          "simulator", "bot", "strategies", "wheels/SHA256SUMS")
SKIPPED = {"__pycache__", ".pytest_cache"}


def files(paths: tuple[str, ...], root: Path = ROOT) -> list[Path]:
    found = []
    for name in paths:
        path = root / name
        if path.is_dir():
            found += [p for p in path.rglob("*") if p.is_file() and not SKIPPED & set(p.parts)]
        elif path.is_file():
            found.append(path)
    return sorted(found)


def fingerprint(paths: tuple[str, ...], *extra: str, root: Path = ROOT) -> str:
    """sha256 over the files' paths and contents (and `extra` words, such as build options)."""
    digest = hashlib.sha256()
    for word in extra:
        digest.update(f"option {word}\n".encode())
    for path in files(paths, root):
        digest.update(f"{path.relative_to(root)}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
