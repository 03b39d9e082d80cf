"""Helpers for the live path end to end: a stream client of the service, the simulator's controls, checkpoints."""
from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request

import websockets

from tests.integration.stack import Stack, get

SYMBOL = "BTCUSDT"
TICK, LOT = 0.1, 0.001


def ticks(levels: list[list[float]], depth: int) -> list[tuple[int, int]]:
    """Levels as (price in ticks, qty in lots): exact integers to compare a float book with."""
    return [(round(p / TICK), round(q / LOT)) for p, q in levels[:depth]]


class StreamClient:
    """Follows the service's WebSocket stream in a thread: the book it rebuilds, every trade, any gap."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lock = threading.Lock()
        self.book: dict[str, dict[float, float]] = {"bids": {}, "asks": {}}
        self.seq = 0
        self.trades: list[dict] = []
        self.gaps: list[tuple[int, int]] = []
        self.snapshots = 0
        self.closed: str | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self.follow()), daemon=True)
        self.thread.start()

    async def follow(self) -> None:
        try:
            async with websockets.connect(f"{self.url}/v1/stream?symbols={SYMBOL}", max_size=2**24) as ws:
                while not self.stop.is_set():
                    try:
                        message = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                    except asyncio.TimeoutError:
                        continue
                    self.apply(message)
        except Exception as exc:   # reported by the test through `closed`
            self.closed = f"{type(exc).__name__}: {exc}"

    def apply(self, message: dict) -> None:
        assert message["source"] == "live", message
        with self.lock:
            if message["type"] == "status":
                return
            if message["type"] == "snapshot":
                self.snapshots += 1
                self.book = {side: dict(map(tuple, message[side])) for side in ("bids", "asks")}
            else:
                if message["seq"] != self.seq + 1:
                    self.gaps.append((self.seq, message["seq"]))
                if message["type"] == "delta":
                    for side in ("bids", "asks"):
                        for price, qty in message[side]:
                            if qty == 0:
                                self.book[side].pop(price, None)
                            else:
                                self.book[side][price] = qty
                elif message["type"] == "trade":
                    self.trades.append(message)
            self.seq = message["seq"]

    def levels(self, depth: int) -> dict[str, list[tuple[int, int]]]:
        with self.lock:
            bids = sorted(self.book["bids"].items(), reverse=True)
            asks = sorted(self.book["asks"].items())
        return {"bids": ticks([list(x) for x in bids], depth), "asks": ticks([list(x) for x in asks], depth)}

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


class Simulator:
    """The simulator's control API, published on 127.0.0.1 by the sim profile."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def post(self, path: str) -> dict:
        request = urllib.request.Request(self.base + path, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def get(self, path: str) -> dict:
        status, body = get(self.base + path)
        assert status == 200, body
        return body

    def book(self, depth: int) -> dict[str, list[tuple[int, int]]]:
        truth = self.get(f"/control/book?symbol={SYMBOL}&depth=50")
        return {side: ticks(truth[side], depth) for side in ("bids", "asks")}

    def trades(self) -> list[dict]:
        return self.get(f"/control/trades?symbol={SYMBOL}")["trades"]


def settle(stack: Stack, client: StreamClient, quiet_s: float = 1.5, timeout: float = 40.0) -> int:
    """With the simulator paused: wait until the service's seq stops moving and the client holds it."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        status, book = stack.get(f"/v1/book?symbol={SYMBOL}&depth=1")
        seq = book["seq"] if status == 200 else None
        if seq != last:
            last, since = seq, time.monotonic()
        elif seq is not None and time.monotonic() - since >= quiet_s and client.seq >= seq:
            return seq
        time.sleep(0.25)
    raise AssertionError(f"the service's book never settled (seq {last}, client at {client.seq})")


def converged(stack: Stack, client: StreamClient, sim: Simulator, depth: int = 20,
              timeout: float = 40.0) -> dict[str, list[tuple[int, int]]]:
    """Pause the simulator and wait until the client's book equals the simulator's top `depth` levels."""
    sim.post("/control/pause")
    deadline = time.monotonic() + timeout
    while True:
        settle(stack, client, timeout=timeout)
        truth, mine = sim.book(depth), client.levels(depth)
        if truth == mine:
            return truth
        if time.monotonic() > deadline:
            raise AssertionError(f"books differ after settling:\nsimulator {truth}\nclient    {mine}")
        time.sleep(1)
