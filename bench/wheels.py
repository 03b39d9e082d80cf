"""Benchmark the wheel factory: cold first wheel, each further CPython, warm rebuild, sizes.

Usage: .venv/bin/python bench/wheels.py [--python 3.X ...]. Runs the README's build command,
`./hftlive wheels`, twice: first after clearing BuildKit's build cache and cache mounts (cold),
then again with no change (warm). Prints a table; the full logs stay in build-logs/.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOK = re.compile(r"wheels: CPython (\S+) took (\d+)s")
LOG = re.compile(r"full log: (\S+)")


def hftlive_wheels(pythons: list[str]) -> tuple[float, list[tuple[str, int]]]:
    command = [str(ROOT / "hftlive"), "wheels"] + [a for v in pythons for a in ("--python", v)]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"bench: ./hftlive wheels failed:\n{done.stderr[-3000:]}")
    log = ROOT / LOG.search(done.stderr).group(1)
    return elapsed, [(v, int(s)) for v, s in TOOK.findall(log.read_text())]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--python", action="append", default=[],
                        help="CPython versions (default: all pinned)")
    pythons = parser.parse_args().python

    print("bench: clearing build cache and cache mounts (cold start)", file=sys.stderr)
    subprocess.run(["docker", "buildx", "prune", "--all", "--force"], check=True, capture_output=True)
    cold, per_python = hftlive_wheels(pythons)
    warm, rebuilt = hftlive_wheels(pythons)

    rows = [("cold: ./hftlive wheels, everything", cold, "1.00")]
    first = per_python[0][1]
    for index, (version, seconds) in enumerate(per_python):
        label = "first wheel (all crates cold)" if index == 0 else "each further interpreter"
        rows.append((f"  CPython {version}: {label}", seconds,
                     f"{seconds / first:.2f} × first wheel"))
    rows.append(("warm: the same command, no change", warm, f"{warm / cold:.4f} × cold"))
    if rebuilt:
        rows.append(("  (warm run rebuilt wheels, unexpected)", sum(s for _, s in rebuilt), ""))
    print(f"\n{'step':<46} {'seconds':>8}  ratio")
    for label, seconds, ratio in rows:
        print(f"{label:<46} {seconds:8.0f}  {ratio}")
    manifest = json.loads((ROOT / "wheels" / "manifest.json").read_text())
    print(f"\n{'wheel':<64} {'MB':>6}")
    for wheel in manifest["wheels"]:
        print(f"{wheel['file']:<64} {wheel['size'] / 1e6:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
