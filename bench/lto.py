"""Benchmark the live wheel built with ThinLTO over 16 codegen units against upstream's release
profile (fat LTO, one codegen unit), side by side in one run.

Usage: .venv/bin/python bench/lto.py [--rounds N] [--events N] [--calls N]
Each is built for CPython 3.11 into its own folder, .wheels-thin/ and .wheels-fat/ (`./hftlive
wheels --lto thin|fat --python 3.11`, about 4 minutes each on 2 cores), unless it is there already.
bench/wheel_ab.py runs the two in turn and prints the table.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.wheel_ab import arguments, compare  # noqa: E402
from cli import buildx, wheelhouse  # noqa: E402

BUILT = {"thin": ROOT / ".wheels-thin", "fat": ROOT / ".wheels-fat"}
TOLERANCE = 0.03    # the same bar as abi3 against per-version


def lto_of(house: Path) -> str | None:
    manifest = house / "manifest.json"
    return json.loads(manifest.read_text()).get("lto") if manifest.is_file() else None


def main() -> int:
    args = arguments(__doc__)
    for lto, house in BUILT.items():
        if wheelhouse.verify(house) or lto_of(house) != lto:
            print(f"bench: building the {lto}-LTO wheel ({house.name})", file=sys.stderr)
            wheelhouse.build(["3.11"], offline=False, ca=buildx.ca_bundle(None), rustup=False, lto=lto, dest=house)
    compare(("thin", BUILT["thin"]), ("fat", BUILT["fat"]), rounds=args.rounds, events=args.events,
            calls=args.calls, tolerance=TOLERANCE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
