"""Benchmark: the order round trip, bot submit → simulator ack on the `order` stream → bot sees it.

Run with .venv/bin/python bench/orders.py after `./hftlive images` (needs hftlive/{simulator,connector,service,bot}).
One compose project (`--profile live --profile sim --profile bot`, a private name, key pair and ports) runs the
simulator's exchange, our connector with keys, the service, and bench/roundtrip_strategy.py in the bot image.
Measured side by side, in the same run, against the same simulator:
  hftlive   the strategy's hftbacktest live bot: submit_buy_order(wait=True), then cancel(wait=True); each wait
            ends when the bot receives the order update (bot → iceoryx2 → connector → trade stream →
            simulator → private `order` stream → connector → iceoryx2 → bot). Timed by the bot's clock.
  direct    a pure-Python client (websockets) on the simulator's /v5/trade and /v5/private itself: order.create,
            then wait for the `order` push saying New; order.cancel, then wait for Cancelled. The wire's own cost.
Both post the same orders: post-only buys 200 ticks below the best bid (never filled), paced ~16/s, run one
after the other (never at once). Printed: p50/p90/p99/max in microseconds, and hftlive/direct ratios.
Stops by itself: the orders are counted, every wait is bounded, the compose project is always removed.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli.compose import Failed, Project  # noqa: E402
from cli.images import FACTS, present  # noqa: E402

SYMBOL = "BTCUSDT"
SIM_PORT = int(FACTS["HFTLIVE_SIMULATOR_PORT"])
STRATEGY = ROOT / "bench" / "roundtrip_strategy.py"
DONE_TIMEOUT_S = 240
# bench/roundtrip_strategy.py's lines: roundtrip I CREATE_US CANCEL_US NEW_SEEN CANCELLED_SEEN
ROUNDTRIP = re.compile(r"roundtrip (\d+) (\d+) (\d+) (True|False) (True|False)")


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(ordered), "p50": statistics.median(ordered), "p90": at(0.90), "p99": at(0.99),
            "max": ordered[-1]}


def bot_samples(stack: Project) -> tuple[list[float], list[float], int]:
    """(create µs, cancel µs, orders whose answer was not New/Cancelled) from the bot's log."""
    create, cancel, wrong = [], [], 0
    for i, created, cancelled, ok_new, ok_cancel in ROUNDTRIP.findall(stack.logs("bot")):
        create.append(float(created))
        cancel.append(float(cancelled))
        wrong += ok_new != "True" or ok_cancel != "True"
    return create, cancel, wrong


async def direct(url: str, key: str, secret: str, orders: int) -> tuple[list[float], list[float]]:
    """The same orders from a pure-Python client straight to the simulator."""
    import websockets

    def auth() -> str:
        expires = int(time.time() * 1000) + 10_000
        sign = hmac.new(secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
        return json.dumps({"op": "auth", "args": [key, expires, sign]})

    async with websockets.connect(f"{url}/v5/private") as private, websockets.connect(f"{url}/v5/trade") as trade:
        for ws in (private, trade):
            await ws.send(auth())
            await asyncio.wait_for(ws.recv(), 10)
        await private.send(json.dumps({"op": "subscribe", "args": ["order"]}))
        await asyncio.wait_for(private.recv(), 10)

        async def until(link: str, status: str) -> None:
            while True:
                message = json.loads(await asyncio.wait_for(private.recv(), 10))
                if any(o["orderLinkId"] == link and o["orderStatus"] == status for o in message.get("data", [])):
                    return

        async def op(name: str, args: dict) -> None:
            header = {"X-BAPI-TIMESTAMP": str(int(time.time() * 1000)), "X-BAPI-RECV-WINDOW": "5000"}
            await trade.send(json.dumps({"reqId": uuid.uuid4().hex, "header": header, "op": name, "args": [args]}))

        create, cancel = [], []
        base = f"direct{secrets.token_hex(3)}"
        for i in range(orders):
            link = f"{base}-{i}"
            t0 = time.perf_counter()
            await op("order.create", {"category": "linear", "symbol": SYMBOL, "side": "Buy", "orderType": "Limit",
                                      "qty": "0.001", "price": "1000", "timeInForce": "PostOnly", "orderLinkId": link})
            await until(link, "New")
            t1 = time.perf_counter()
            await op("order.cancel", {"category": "linear", "symbol": SYMBOL, "orderLinkId": link})
            await until(link, "Cancelled")
            t2 = time.perf_counter()
            create.append((t1 - t0) * 1e6)
            cancel.append((t2 - t1) * 1e6)
            await asyncio.sleep(0.06)
        return create, cancel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=200, help="orders for the direct client (the bot's are fixed "
                        "in bench/roundtrip_strategy.py: 200)")
    args = parser.parse_args()
    missing = [t for t in ("simulator", "connector", "service", "bot") if not present(t)]
    if missing:
        print(f"bench/orders.py: images missing ({', '.join(missing)}): run ./hftlive images", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="hftlive-bench-orders-") as scratch:
        folder = Path(scratch)
        key, secret = f"bench{secrets.token_hex(4)}", secrets.token_hex(16)
        for name, value in (("key", key), ("secret", secret)):
            (folder / name).write_text(value)
            os.chmod(folder / name, 0o644)
        override = folder / "publish-simulator.yaml"
        override.write_text(f'services:\n  simulator:\n    ports: ["127.0.0.1:0:{SIM_PORT}"]\n')
        settings = {"HFTLIVE_PORT": "0", "SIM_CONTROL_PORT": "0", "HFTLIVE_EXCHANGE": "simulator", "SIM_RATE": "5",
                    "BYBIT_API_KEY_FILE": str(folder / "key"), "BYBIT_API_SECRET_FILE": str(folder / "secret"),
                    "SIM_API_KEY": key, "SIM_API_SECRET_FILE": "/run/secrets/bybit_api_secret",
                    "HFTLIVE_STRATEGY": str(STRATEGY), "TRADING_MAX_ORDERS_PER_S": "25"}
        stack = Project(["live", "sim", "bot"], name=f"hftlive-bench-{uuid.uuid4().hex[:8]}", settings=settings,
                        files=[override])
        try:
            print("starting simulator, connector, service and the round-trip bot ...", file=sys.stderr)
            stack.start()
            deadline = time.monotonic() + DONE_TIMEOUT_S
            while "roundtrip: done" not in stack.logs("bot"):
                if time.monotonic() > deadline:
                    print("bench/orders.py: the bot did not finish in time:\n" + stack.logs("bot", tail=20),
                          file=sys.stderr)
                    return 1
                time.sleep(2)
            create, cancel, wrong = bot_samples(stack)
            url = f"ws://{stack.published('simulator', SIM_PORT)}"
            print(f"the direct client at {url} ...", file=sys.stderr)
            direct_create, direct_cancel = asyncio.run(direct(url, key, secret, args.orders))
        except Failed as error:
            print(f"bench/orders.py: {error}", file=sys.stderr)
            return 1
        finally:
            stack.stop()
    rows = [("hftlive bot", "create", create), ("hftlive bot", "cancel", cancel),
            ("direct client", "create", direct_create), ("direct client", "cancel", direct_cancel)]
    print("\norder round trip: request sent → exchange's `order` push received (µs)\n")
    print(f"| {'path':<13} | {'request':<7} | {'n':>4} | {'p50':>8} | {'p90':>8} | {'p99':>8} | {'max':>8} |")
    print(f"|{'-' * 15}|{'-' * 9}|{'-' * 6}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
    stats = {}
    for path, request, samples in rows:
        s = stats[path, request] = percentiles(samples)
        print(f"| {path:<13} | {request:<7} | {s['n']:>4} | {s['p50']:>8.0f} | {s['p90']:>8.0f} | {s['p99']:>8.0f} "
              f"| {s['max']:>8.0f} |")
    print()
    for request in ("create", "cancel"):
        bot, wire = stats["hftlive bot", request], stats["direct client", request]
        print(f"{request}: hftlive / direct  p50 {bot['p50'] / wire['p50']:.2f}   p99 {bot['p99'] / wire['p99']:.2f}")
    if wrong:
        print(f"\n{wrong} bot orders were not answered New then Cancelled (see the bot's log)")
    return 0 if not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
