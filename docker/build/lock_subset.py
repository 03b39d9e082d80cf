"""Check that cargo only pruned Cargo.lock: every locked package must be in upstream's lock.

Usage: lock_subset.py ORIGINAL_LOCK CURRENT_LOCK. The sdist ships upstream's workspace lock
(with crates of members not in the sdist); cargo drops those, which is fine. A package that is
new or at another version or checksum means the build is not what upstream locked: exit 1.
"""
from __future__ import annotations

import sys
import tomllib


def packages(path: str) -> set[tuple[str, str, str]]:
    with open(path, "rb") as handle:
        lock = tomllib.load(handle)
    return {(p["name"], p["version"], p.get("checksum", "")) for p in lock.get("package", [])}


def main(original: str, current: str) -> int:
    extra = sorted(packages(current) - packages(original))
    if extra:
        for name, version, _ in extra:
            print(f"lock: {name} {version} is not in upstream's Cargo.lock", file=sys.stderr)
        return 1
    print(f"lock: {len(packages(current))} packages, all as upstream locked them")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
