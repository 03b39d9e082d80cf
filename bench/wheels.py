"""Benchmark the wheel factory: cold first wheel, each further CPython, warm rebuild, sizes.

Usage: .venv/bin/python bench/wheels.py [--python 3.X ...]. Clears BuildKit's cache mounts and
build cache first (the cold case), so run it on a machine where that is acceptable. Prints a
table; the build logs stay in build-logs/.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cli import bases, buildx, versions  # noqa: E402

TOOK = re.compile(r"wheels: CPython (\S+) took (\d+)s")


def run_build(pythons: list[str], *extra: str) -> tuple[float, str, Path]:
    base = bases.ensure("bookworm")
    out = Path(tempfile.mkdtemp(prefix="bench-wheels-"))
    command = ["docker", "buildx", "build", "--progress=plain", "-f", "Dockerfile.build",
               "--target", "export", "--secret", f"id=ca,src={buildx.SYSTEM_CA_BUNDLE}",
               "--build-arg", f"BUILD_BASE={base}", "--build-arg", f"PYTHON_VERSIONS={' '.join(pythons)}",
               "--output", f"type=local,dest={out}", *extra, "."]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, cwd=versions.ROOT)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"bench: build failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed, done.stdout + done.stderr, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--python", action="append", help="CPython versions (default: all pinned)")
    pythons = parser.parse_args().python or versions.python_versions(versions.load())

    print("bench: clearing build cache and cache mounts (cold start)", file=sys.stderr)
    subprocess.run(["docker", "buildx", "prune", "--all", "--force"], check=True, capture_output=True)
    cold, log, out = run_build(pythons)
    per_python = [(v, int(s)) for v, s in TOOK.findall(log)]
    warm, _, _ = run_build(pythons)

    rows = [("cold build, everything (toolchain → export)", cold, "")]
    first = per_python[0][1]
    for index, (version, seconds) in enumerate(per_python):
        label = "first wheel (cold crates)" if index == 0 else "further interpreter"
        ratio = f"{seconds / first:.2f} × first" if index else "1.00"
        rows.append((f"  CPython {version}: {label}", seconds, ratio))
    rows.append(("warm rebuild, no change (layer cache)", warm, f"{warm / cold:.4f} × cold"))
    print(f"\n{'step':<48} {'seconds':>9}  ratio")
    for label, seconds, ratio in rows:
        print(f"{label:<48} {seconds:9.0f}  {ratio}")
    print(f"\n{'wheel':<64} {'MB':>6}")
    for wheel in sorted(out.glob("hftbacktest-*.whl")):
        print(f"{wheel.name:<64} {wheel.stat().st_size / 1e6:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
