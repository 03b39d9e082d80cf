"""One orderbook.{depth}.{symbol} stream: the book its clients hold, and the next message that keeps them right."""
from __future__ import annotations

import heapq
from dataclasses import dataclass

from .wire import Levels

# Linear push intervals in seconds (Bybit's orderbook docs: 1 → 10 ms, 50 → 20 ms, 200 → 100 ms, 1000 → 300 ms).
DEPTHS: dict[int, float] = {1: 0.010, 50: 0.020, 200: 0.100, 1000: 0.300}
# Bybit re-sends an unchanged level-1 book as a snapshot (same u) after 3 s.
LEVEL1_REPEAT_MS = 3000


@dataclass(frozen=True, slots=True)
class Push:
    """One orderbook message: bids best (highest) first, asks best (lowest) first."""
    kind: str          # "snapshot" or "delta"
    bids: Levels
    asks: Levels
    u: int
    seq: int
    ts: int
    cts: int


def _top(book: dict[int, int], depth: int, highest: bool) -> dict[int, int]:
    if len(book) <= depth:
        return dict(book)
    ticks = heapq.nlargest(depth, book) if highest else heapq.nsmallest(depth, book)
    return {tick: book[tick] for tick in ticks}


def _changes(held: dict[int, int], new: dict[int, int], highest: bool) -> Levels:
    """What turns `held` into `new`: changed or new levels, and 0 for levels that left (deleted or pushed out)."""
    out = [(tick, lots) for tick, lots in new.items() if held.get(tick) != lots]
    out += [(tick, 0) for tick in held if tick not in new]
    out.sort(reverse=highest)
    return out


def _sorted(book: dict[int, int], highest: bool) -> Levels:
    return sorted(book.items(), reverse=highest)


class DepthStream:
    """The view a correct client of this topic holds: the model's top `depth` levels as of the last push.

    Diffing that view against the model's current top levels, rather than replaying the model's events,
    is what makes a level that slides into the window (because others left) arrive in the same delta.
    """

    def __init__(self, symbol: str, depth: int) -> None:
        self.symbol = symbol
        self.depth = depth
        self.topic = f"orderbook.{depth}.{symbol}"
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.u = 0
        self.seq = 0
        self.ts = 0
        self.cts = 0
        # Faults and resets that shape the next message.
        self.snapshot_due = True    # a stream's first message is a snapshot
        self.restart_due = False    # ... with u = 1, as after Bybit restarts its service
        self.skip_due = False       # ... whose u jumps by 2

    def advance(self, bids: dict[int, int], asks: dict[int, int], seq: int, cts: int, now: int) -> Push | None:
        """The message that brings clients to the model's book (`bids`, `asks`), or None when they have it."""
        new_bids = _top(bids, self.depth, highest=True)
        new_asks = _top(asks, self.depth, highest=False)
        if self.snapshot_due or self.depth == 1:
            if not self.snapshot_due and new_bids == self.bids and new_asks == self.asks:
                if now - self.ts < LEVEL1_REPEAT_MS:
                    return None
                self.ts = now
                return self.snapshot()
            kind = "snapshot"
            push_bids, push_asks = _sorted(new_bids, True), _sorted(new_asks, False)
        else:
            push_bids = _changes(self.bids, new_bids, highest=True)
            push_asks = _changes(self.asks, new_asks, highest=False)
            if not push_bids and not push_asks:
                return None
            kind = "delta"
        self.u = 1 if self.restart_due else self.u + (2 if self.skip_due else 1)
        self.snapshot_due = self.restart_due = self.skip_due = False
        self.bids, self.asks = new_bids, new_asks
        self.seq, self.cts, self.ts = seq, cts, now
        return Push(kind, push_bids, push_asks, self.u, self.seq, self.ts, self.cts)

    def snapshot(self) -> Push:
        """The held book as a snapshot with the current u: what a new subscriber starts from."""
        return Push("snapshot", _sorted(self.bids, True), _sorted(self.asks, False),
                    self.u, self.seq, self.ts, self.cts)
