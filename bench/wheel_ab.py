"""Two builds of the live wheel, timed side by side in one run: the shared half of bench/abi3.py
and bench/lto.py.

One container on the CPython 3.11 build base, no network, a venv per wheelhouse; the two run in
turn (A B on even rounds, B A on odd ones), each round a fresh process running
bench/wheel_loops.py, and the table shows medians and their ratio against the bar.
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

from cli import bases, wheelhouse  # noqa: E402  (the project's own build, from its checkout)

CHANNEL = "buffer_size = 1000\nmax_bots = 2\n"
LOOPS = (("backtest_ns_per_event", "backtest elapse, ns per event"),
         ("live_ns_per_call", "live wait_next_feed + depth, ns per call"))


def arguments(doc: str) -> argparse.Namespace:
    """The options every wheel comparison takes: rounds, events per backtest, live calls."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--calls", type=int, default=2_000_000)
    return parser.parse_args()


def compare(a: tuple[str, Path], b: tuple[str, Path], *, rounds: int, events: int, calls: int,
            tolerance: float) -> float:
    """Print the table of A against B; return the worst |A/B - 1| over the loops."""
    variants = dict((a, b))
    client = docker.from_env()
    base = bases.ensure(wheelhouse.BUILD_BASE)
    mounts = {str(house): {"bind": f"/{name}", "mode": "ro"} for name, house in variants.items()}
    mounts[str(ROOT / "bench")] = {"bind": "/bench", "mode": "ro"}
    container = client.containers.run(base, ["sleep", "3600"], detach=True, remove=True,
                                      network_mode="none", shm_size="256m", volumes=mounts)
    try:
        def run(command: str) -> str:
            code, output = container.exec_run(["sh", "-c", command])
            if code != 0:
                sys.exit(f"bench: `{command[:80]}` failed in the container:\n{output.decode()[-2000:]}")
            return output.decode()

        run("printf '" + CHANNEL.replace("\n", "\\n") + "' > /tmp/channel.toml")
        wheels = {}
        for name in variants:
            run(f"python3 -m venv /tmp/{name} && /tmp/{name}/bin/pip install -q --no-index --find-links /{name} "
                f"--require-hashes -r /{name}/requirements-cp311.txt")
            wheels[name] = run(f"ls /{name} | grep '^hftbacktest-'").strip()
        results: dict[str, list[dict]] = {name: [] for name in variants}
        for round_ in range(rounds):
            for name in (variants if round_ % 2 == 0 else reversed(list(variants))):
                out = run(f"HFTBACKTEST_CHANNEL_CONFIG=/tmp/channel.toml NUMBA_CACHE_DIR=/tmp/numba-{name} "
                          f"/tmp/{name}/bin/python /bench/wheel_loops.py {events} {calls}")
                results[name].append(json.loads(out.strip().splitlines()[-1]))
            print(f"bench: round {round_ + 1}/{rounds} done", file=sys.stderr)
    finally:
        container.remove(force=True)

    (na, _), (nb, _) = a, b
    for name in variants:
        print(f"{name + ':':<13} {wheels[name]}  ({variants[name].name}/)")
    print(f"{rounds} rounds, alternating; {events:,} events per backtest, {calls:,} live calls\n")
    print(f"{'loop':<44} {na:>12} {nb:>12} {'ratio':>7}  within {tolerance:.0%}")
    worst = 0.0
    for key, label in LOOPS:
        x = statistics.median(r[key] for r in results[na])
        y = statistics.median(r[key] for r in results[nb])
        worst = max(worst, abs(x / y - 1))
        print(f"{label:<44} {x:12.1f} {y:12.1f} {x / y:7.3f}  {'yes' if abs(x / y - 1) <= tolerance else 'NO'}")
    print(f"\n{na} / {nb}, medians: worst difference {worst:.1%} (bar: {tolerance:.0%})")
    return worst
