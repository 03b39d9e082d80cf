"""Helpers for the live path end to end: the simulator's controls, and checkpoints where the book a client
of the service rebuilt (tests.support.book, the product's own client) is compared with the simulator's."""
from __future__ import annotations

import json
import time
import urllib.request

from tests.support.book import BookFollower
from tests.support.stack import Stack, get

SYMBOL = "BTCUSDT"
TICK, LOT = 0.1, 0.001


def ticks(levels: list, depth: int) -> list[tuple[int, int]]:
    """Levels as (price in ticks, qty in lots): exact integers to compare a float book with."""
    return [(round(p / TICK), round(q / LOT)) for p, q in levels[:depth]]


def client_book(client: BookFollower, depth: int) -> dict[str, list[tuple[int, int]]]:
    bids, asks = client.levels(depth)
    return {"bids": ticks(bids, depth), "asks": ticks(asks, depth)}


class Simulator:
    """The simulator's control API, published on 127.0.0.1 by the sim profile."""

    def __init__(self, address: str) -> None:
        self.base = f"http://{address}"

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


def settle(stack: Stack, client: BookFollower, quiet_s: float = 1.5, timeout: float = 40.0) -> int:
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


def converged(stack: Stack, client: BookFollower, sim: Simulator, depth: int = 20,
              timeout: float = 40.0) -> dict[str, list[tuple[int, int]]]:
    """Pause the simulator and wait until the client's book equals the simulator's top `depth` levels."""
    sim.post("/control/pause")
    deadline = time.monotonic() + timeout
    while True:
        settle(stack, client, timeout=timeout)
        truth, mine = sim.book(depth), client_book(client, depth)
        if truth == mine:
            return truth
        if time.monotonic() > deadline:
            raise AssertionError(f"books differ after settling:\nsimulator {truth}\nclient    {mine}")
        time.sleep(1)
