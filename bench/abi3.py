"""Benchmark the abi3 wheel against a per-version wheel of the same source, side by side in one run.

Usage: .venv/bin/python bench/abi3.py [--rounds N] [--events N] [--calls N]
The abi3 wheel comes from ./wheels (`./hftlive wheels`); the per-version CPython 3.11 wheel is
built into .wheels-per-version/ (`--per-version`: the same build without patch 0004) unless it is
there already. One container on the CPython 3.11 base, no network, a venv per wheel; the two run
in turn (A B A B …), each round a fresh process, and the table shows medians and their ratio.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli import bases, buildx, wheelhouse  # noqa: E402  (the project's own build, from its checkout)

PER_VERSION = ROOT / ".wheels-per-version"
TOLERANCE = 0.03    # the bar: abi3 within 3 % of the per-version wheel
CHANNEL = "buffer_size = 1000\nmax_bots = 2\n"


def per_version_wheelhouse() -> Path:
    if wheelhouse.verify(PER_VERSION) or not list(PER_VERSION.glob("hftbacktest-*-cp311-cp311-*.whl")):
        print("bench: building the per-version CPython 3.11 wheel (.wheels-per-version)", file=sys.stderr)
        wheelhouse.build(["3.11"], offline=False, ca=buildx.ca_bundle(None), rustup=False,
                         abi="per-version", dest=PER_VERSION)
    return PER_VERSION


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--calls", type=int, default=2_000_000)
    args = parser.parse_args()

    abi3 = ROOT / "wheels"
    if not list(abi3.glob("hftbacktest-*-abi3-*.whl")):
        sys.exit("bench: ./wheels holds no abi3 wheel; build it with ./hftlive wheels")
    per_version = per_version_wheelhouse()
    client = docker.from_env()
    base = bases.ensure(wheelhouse.BUILD_BASE)
    container = client.containers.run(
        base, ["sleep", "3600"], detach=True, remove=True, network_mode="none", shm_size="256m",
        volumes={str(abi3): {"bind": "/abi3", "mode": "ro"},
                 str(per_version): {"bind": "/per-version", "mode": "ro"},
                 str(ROOT / "bench"): {"bind": "/bench", "mode": "ro"}})
    try:
        def run(command: str) -> str:
            code, output = container.exec_run(["sh", "-c", command])
            if code != 0:
                sys.exit(f"bench: `{command[:80]}` failed in the container:\n{output.decode()[-2000:]}")
            return output.decode()

        variants = {"abi3": "/abi3", "per-version": "/per-version"}
        run(f"printf '{CHANNEL}' > /tmp/channel.toml")
        wheels = {}
        for name, house in variants.items():
            run(f"python3 -m venv /tmp/{name} && /tmp/{name}/bin/pip install -q --no-index --find-links {house} "
                f"--require-hashes -r {house}/requirements-cp311.txt")
            wheels[name] = run(f"ls {house} | grep '^hftbacktest-'").strip()
        results: dict[str, list[dict]] = {name: [] for name in variants}
        for round_ in range(args.rounds):
            for name in (variants if round_ % 2 == 0 else reversed(list(variants))):
                out = run(f"HFTBACKTEST_CHANNEL_CONFIG=/tmp/channel.toml NUMBA_CACHE_DIR=/tmp/numba-{name} "
                          f"/tmp/{name}/bin/python /bench/abi3_worker.py {args.events} {args.calls}")
                results[name].append(json.loads(out.strip().splitlines()[-1]))
            print(f"bench: round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        container.remove(force=True)

    print(f"\nabi3 wheel:        {wheels['abi3']}\nper-version wheel: {wheels['per-version']}")
    print(f"{args.rounds} rounds, alternating; {args.events:,} events per backtest, {args.calls:,} live calls\n")
    print(f"{'loop':<44} {'abi3':>9} {'per-version':>12} {'ratio':>7}  within 3 %")
    worst = 0.0
    for key, label in (("backtest_ns_per_event", "backtest elapse, ns per event"),
                       ("live_ns_per_call", "live wait_next_feed + depth, ns per call")):
        a = statistics.median(r[key] for r in results["abi3"])
        b = statistics.median(r[key] for r in results["per-version"])
        worst = max(worst, abs(a / b - 1))
        print(f"{label:<44} {a:9.1f} {b:12.1f} {a / b:7.3f}  {'yes' if abs(a / b - 1) <= TOLERANCE else 'NO'}")
    print(f"\nabi3 / per-version, medians: worst difference {worst:.1%} (bar: {TOLERANCE:.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
