"""Benchmark the live wheel as hftlive builds it (WHEEL_LTO=thin: ThinLTO, 16 codegen units) against
upstream's release profile (fat LTO, one codegen unit), side by side in one run.

Usage: .venv/bin/python bench/lto.py [--rounds N] [--events N] [--calls N]
The thin wheel comes from ./wheels; the fat one is built into .wheels-fat/ (`./hftlive wheels
--lto fat --python 3.11`, about 10 minutes from warm crates) unless it is there already.
bench/wheel_ab.py runs the two in turn and prints the table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.wheel_ab import compare  # noqa: E402
from cli import buildx, wheelhouse  # noqa: E402

FAT = ROOT / ".wheels-fat"
TOLERANCE = 0.03    # the same bar as abi3 against per-version


def lto_of(house: Path) -> str | None:
    manifest = house / "manifest.json"
    return json.loads(manifest.read_text()).get("lto") if manifest.is_file() else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--calls", type=int, default=2_000_000)
    args = parser.parse_args()
    thin = ROOT / "wheels"
    if lto_of(thin) != "thin":
        sys.exit("bench: ./wheels was not built with WHEEL_LTO=thin; rebuild it with ./hftlive wheels --lto thin")
    if wheelhouse.verify(FAT) or lto_of(FAT) != "fat":
        print("bench: building the fat-LTO wheel (.wheels-fat)", file=sys.stderr)
        wheelhouse.build(["3.11"], offline=False, ca=buildx.ca_bundle(None), rustup=False, lto="fat", dest=FAT)
    compare(("thin", thin), ("fat", FAT), rounds=args.rounds, events=args.events, calls=args.calls,
            tolerance=TOLERANCE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
