"""Benchmark the wheel factory: the cold wheelhouse with fat LTO and with ThinLTO, a warm rebuild,
and per-version wheels.

Usage: .venv/bin/python bench/wheels.py [--no-other-lto] [--per-version 3.X ...]
Runs the README's build command, `./hftlive wheels` (one abi3 wheel for every pinned CPython, and
the connector, built side by side), after clearing BuildKit's build cache and cache mounts: first
with the LTO that WHEEL_LTO does not pin (`--lto thin` while fat is pinned), then cleared again,
with the pinned one, then again with no change (warm). With --per-version, also upstream's way on the
now warm crate cache: one wheel per named CPython (`./hftlive wheels --per-version`), so the cost of
each further interpreter stands beside the one abi3 build in the same run. Prints a table; logs
stay in build-logs/. Leaves ./wheels as `./hftlive wheels` builds it.
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
sys.path.insert(0, str(ROOT))

from cli.versions import load  # noqa: E402

TOOK = re.compile(r"wheels: CPython (\S+) took (\d+)s")
LOG = re.compile(r"full log: (\S+)")


def hftlive_wheels(*args: str, cold: bool = False) -> tuple[float, list[tuple[str, int]]]:
    if cold:
        print(f"bench: clearing build cache and cache mounts, then ./hftlive wheels {' '.join(args)}", file=sys.stderr)
        subprocess.run(["docker", "buildx", "prune", "--all", "--force"], check=True, capture_output=True)
    started = time.monotonic()
    done = subprocess.run([str(ROOT / "hftlive"), "wheels", *args], cwd=ROOT, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"bench: ./hftlive wheels {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    log = ROOT / LOG.search(done.stderr).group(1)
    return elapsed, [(v, int(s)) for v, s in TOOK.findall(log.read_text())]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-other-lto", action="store_true", help="skip the cold build with the unpinned LTO")
    parser.add_argument("--per-version", action="append", default=[], metavar="3.X",
                        help="also build upstream's per-version wheel for this CPython (repeatable)")
    args = parser.parse_args()

    other = {"fat": "thin", "thin": "fat"}[load()["WHEEL_LTO"]]
    rows = []
    if not args.no_other_lto:
        other_cold, other_wheel = hftlive_wheels("--lto", other, cold=True)
    cold, pinned = hftlive_wheels(cold=True)
    manifest = json.loads((ROOT / "wheels" / "manifest.json").read_text())
    warm, rebuilt = hftlive_wheels()
    wheel = pinned[0][1]
    rows += [(f"cold: ./hftlive wheels ({manifest['lto']} LTO: abi3 + connector)", cold, "1.00 × cold"),
             (f"  the abi3 wheel, {manifest['lto']} LTO ({len(manifest['python_tags'])} CPythons)", wheel,
              f"{wheel / cold:.2f} × cold")]
    if not args.no_other_lto:
        rows += [(f"cold: ./hftlive wheels --lto {other}", other_cold, f"{other_cold / cold:.2f} × cold"),
                 (f"  the abi3 wheel, {other} LTO", other_wheel[0][1],
                  f"{other_wheel[0][1] / wheel:.2f} × {manifest['lto']} wheel")]
    rows.append(("warm: ./hftlive wheels again, no change", warm, f"{warm / cold:.4f} × cold"))
    if rebuilt:
        rows.append(("  (warm run rebuilt wheels, unexpected)", sum(s for _, s in rebuilt), ""))
    if args.per_version:
        total, each = hftlive_wheels("--per-version", *[a for v in args.per_version for a in ("--python", v)])
        for version, seconds in each:
            rows.append((f"per-version: CPython {version}, warm crates", seconds, f"{seconds / wheel:.2f} × abi3 wheel"))
        rows.append(("per-version: ./hftlive wheels --per-version", total, f"{total / cold:.2f} × cold"))
        hftlive_wheels()    # leave ./wheels as the default build left it
    print(f"\n{'step':<56} {'seconds':>8}  ratio")
    for label, seconds, ratio in rows:
        print(f"{label:<56} {seconds:8.0f}  {ratio}")
    print(f"\n{'wheel':<64} {'MB':>6}")
    for built in manifest["wheels"]:
        print(f"{built['file']:<64} {built['size'] / 1e6:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
