"""A synthetic market (a random walk of a book, with trades) written by the service's own recorder."""
from __future__ import annotations

import random
from pathlib import Path

from market.instrument import Instrument
from service.book import Book
from service.events import BookDelta, BookSnapshot, Trade
from service.recorder import Recorder

BTC = Instrument("BTCUSDT", 0.1, 0.001)
T0 = 1_700_000_000_000_000_000
STEP_NS = 10_000_000            # one market event every 10 ms
LATENCY_NS = 1_000_000          # exchange → recorder
LEVELS = 20


def random_walk_market(seed: int, steps: int, down: float = 0.5):
    """A book of LEVELS a side that walks a tick at a time (down with probability `down`), with trades at
    the touch; one tick wide."""
    rng = random.Random(seed)
    ask = 1_000_000   # the best ask's tick (100000.0); the best bid is one tick below
    bids = {ask - 1 - i: lots(rng) for i in range(LEVELS)}
    asks = {ask + i: lots(rng) for i in range(LEVELS)}
    yield BookSnapshot("BTCUSDT", T0, T0 + LATENCY_NS, tuple(bids.items()), tuple(asks.items()))
    for step in range(1, steps + 1):
        ts = T0 + step * STEP_NS
        r = rng.random()
        if r < 0.3:   # the touch is taken out: a trade at it, then the book moves a tick
            falls = rng.random() < down
            touch = ask - 1 if falls else ask
            taken = bids if falls else asks
            yield Trade("BTCUSDT", ts, ts + LATENCY_NS, touch, taken[touch], "sell" if falls else "buy")
            ask += -1 if falls else 1
            new_bids = {ask - 1 - i: bids.get(ask - 1 - i) or lots(rng) for i in range(LEVELS)}
            new_asks = {ask + i: asks.get(ask + i) or lots(rng) for i in range(LEVELS)}
            yield BookDelta("BTCUSDT", ts, ts + LATENCY_NS, changes(bids, new_bids), changes(asks, new_asks))
            bids, asks = new_bids, new_asks
        elif r < 0.6:   # a trade that leaves some of the touch
            buy = rng.random() < 0.5
            side, touch = (asks, ask) if buy else (bids, ask - 1)
            qty = BTC.lots(rng.randrange(1, 10))
            yield Trade("BTCUSDT", ts, ts + LATENCY_NS, touch, qty, "buy" if buy else "sell")
            side[touch] = max(BTC.qty(side[touch] - qty), BTC.lot_size)
            level = ((touch, side[touch]),)
            yield BookDelta("BTCUSDT", ts, ts + LATENCY_NS, () if buy else level, level if buy else ())
        else:   # a level's size changes
            buy = rng.random() < 0.5
            side, tick = (bids, ask - 1 - rng.randrange(LEVELS)) if buy else (asks, ask + rng.randrange(LEVELS))
            side[tick] = lots(rng)
            level = ((tick, side[tick]),)
            yield BookDelta("BTCUSDT", ts, ts + LATENCY_NS, level if buy else (), () if buy else level)


def lots(rng: random.Random) -> float:
    return BTC.lots(rng.randrange(10, 500))


def changes(old: dict[int, float], new: dict[int, float]) -> tuple[tuple[int, float], ...]:
    return tuple([(t, q) for t, q in new.items() if old.get(t) != q] + [(t, 0.0) for t in old if t not in new])


def record(directory: Path, seed: int = 7, steps: int = 4000, down: float = 0.5,
           rotate_events: int = 10**9) -> list[Path]:
    """The market above as the service records it: recorder.py's rows in its .npz files."""
    recorder = Recorder(directory, [BTC], rotate_s=3600, rotate_events=rotate_events)
    book = Book("BTCUSDT")   # kept as service/feed.py keeps it: each rotated file starts with the whole book
    for seq, event in enumerate(random_walk_market(seed, steps, down), start=1):
        if isinstance(event, BookSnapshot):
            book.load(seq, event.bids, event.asks)
            recorder.snapshot(event, seq)
        elif isinstance(event, BookDelta):
            book.apply(seq, event.bids, event.asks)
            recorder.delta(event, seq, book)
        else:
            book.advance(seq)
            recorder.trade(event, seq, book)
    recorder.close()
    return sorted(directory.glob("*.npz"))
