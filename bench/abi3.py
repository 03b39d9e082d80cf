"""Benchmark the abi3 wheel against a per-version wheel of the same source, side by side in one run.

Usage: .venv/bin/python bench/abi3.py [--rounds N] [--events N] [--calls N]
The abi3 wheel comes from ./wheels (`./hftlive wheels`); the per-version CPython 3.11 wheel is
built into .wheels-per-version/ (`--per-version`: the same build without patch 0005) unless it is
there already. bench/wheel_ab.py runs the two in turn and prints the table.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.wheel_ab import arguments, compare  # noqa: E402
from cli import buildx, wheelhouse  # noqa: E402

PER_VERSION = ROOT / ".wheels-per-version"
TOLERANCE = 0.03    # the bar: abi3 within 3 % of the per-version wheel


def per_version_wheelhouse() -> Path:
    if wheelhouse.verify(PER_VERSION) or not list(PER_VERSION.glob("hftbacktest-*-cp311-cp311-*.whl")):
        print("bench: building the per-version CPython 3.11 wheel (.wheels-per-version)", file=sys.stderr)
        wheelhouse.build(["3.11"], offline=False, ca=buildx.ca_bundle(None), rustup=False,
                         abi="per-version", dest=PER_VERSION)
    return PER_VERSION


def main() -> int:
    args = arguments(__doc__)
    abi3 = ROOT / "wheels"
    if not list(abi3.glob("hftbacktest-*-abi3-*.whl")):
        sys.exit("bench: ./wheels holds no abi3 wheel; build it with ./hftlive wheels")
    compare(("abi3", abi3), ("per-version", per_version_wheelhouse()), rounds=args.rounds,
            events=args.events, calls=args.calls, tolerance=TOLERANCE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
