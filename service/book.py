"""An L2 order book (price level → quantity) that follows a stream with contiguous sequence numbers."""
from __future__ import annotations

import heapq
from collections.abc import Iterable

# A level is (price key, quantity): the key is an integer tick in the service, a price in the client.
Level = tuple[float, float]


class SequenceGap(Exception):
    """An event arrived out of order: the book no longer matches the stream and needs a new snapshot."""

    def __init__(self, symbol: str, expected: int, got: int) -> None:
        super().__init__(f"{symbol}: expected sequence {expected}, got {got}")
        self.symbol = symbol
        self.expected = expected
        self.got = got


class Book:
    """Bids and asks keyed by price; quantity 0 in a delta deletes a level."""

    __slots__ = ("symbol", "seq", "bids", "asks")

    def __init__(self, symbol: str, seq: int = 0) -> None:
        self.symbol = symbol
        self.seq = seq
        self.bids: dict = {}
        self.asks: dict = {}

    def load(self, seq: int, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace everything with a snapshot taken at `seq`."""
        self.seq = seq
        self.bids = {price: qty for price, qty in bids if qty > 0}
        self.asks = {price: qty for price, qty in asks if qty > 0}

    def advance(self, seq: int) -> None:
        """Accept the next event's sequence number, or raise SequenceGap if one was missed."""
        if seq != self.seq + 1:
            raise SequenceGap(self.symbol, self.seq + 1, seq)
        self.seq = seq

    def apply(self, seq: int, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Apply the delta numbered `seq` (which must follow the last one)."""
        self.advance(seq)
        self.update(bids, asks)

    def update(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Apply level changes without sequence checks."""
        _merge(self.bids, bids)
        _merge(self.asks, asks)

    def best_bid(self):
        return max(self.bids) if self.bids else None

    def best_ask(self):
        return min(self.asks) if self.asks else None

    def top(self, depth: int | None = None) -> tuple[list[Level], list[Level]]:
        """The best `depth` levels each side (all when None): bids descending, asks ascending."""
        if depth is None:
            return (sorted(self.bids.items(), reverse=True), sorted(self.asks.items()))
        return (heapq.nlargest(depth, self.bids.items()), heapq.nsmallest(depth, self.asks.items()))


def _merge(side: dict, levels: Iterable[Level]) -> None:
    for price, qty in levels:
        if qty > 0:
            side[price] = qty
        else:
            side.pop(price, None)
