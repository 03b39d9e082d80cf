"""The service's view of the market: per symbol a sequenced book and a trade tape, fanned out to stream clients."""
from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from itertools import islice

from .book import Book
from .events import BookDelta, BookSnapshot, Exchange, SourceState, SourceStatus, Trade
from .hub import Hub, Subscriber
from .instrument import Instrument
from .metrics import Metrics

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False).encode


class SymbolFeed:
    __slots__ = ("instrument", "book", "tape", "exch_ts", "local_ts", "received_at", "trades_total")

    def __init__(self, instrument: Instrument, trade_history: int) -> None:
        self.instrument = instrument
        self.book = Book(instrument.symbol)
        self.tape: deque[dict] = deque(maxlen=trade_history)
        self.exch_ts = 0
        self.local_ts = 0
        self.received_at: float | None = None
        self.trades_total = 0

    def levels(self, levels: Iterable[tuple[int, float]]) -> list[list[float]]:
        price, qty = self.instrument.price, self.instrument.qty
        return [[price(tick), qty(q)] for tick, q in levels]


class Feed:
    """The sink every source feeds. Each delta, trade and source snapshot takes its symbol's next
    sequence number, so a client can tell when it missed something."""

    def __init__(
        self,
        instruments: Iterable[Instrument],
        source_kind: str,
        hub: Hub,
        metrics: Metrics,
        trade_history: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], int] = time.time_ns,
        exchange: Exchange | None = None,
    ) -> None:
        self.source_kind = source_kind
        self.exchange = exchange
        self.hub = hub
        self.metrics = metrics
        self.clock = clock
        self.wall = wall
        self.symbols: dict[str, SymbolFeed] = {i.symbol: SymbolFeed(i, trade_history) for i in instruments}
        self.state = SourceState.STARTING
        self.detail = ""
        self.state_since = clock()
        for symbol in self.symbols:
            metrics.event_age.labels(symbol).set_function(lambda s=symbol: self._age_or_never(s))

    # --- what sources call ---

    def book_snapshot(self, snapshot: BookSnapshot) -> None:
        feed = self.symbols.get(snapshot.symbol)
        if feed is None:
            return
        feed.book.load(feed.book.seq + 1, snapshot.bids, snapshot.asks)
        self._received(feed, snapshot.exch_ts, snapshot.local_ts)
        self.metrics.snapshots_in[snapshot.symbol].inc()
        self.hub.publish(snapshot.symbol, _encode(self.snapshot(snapshot.symbol)))

    def book_delta(self, delta: BookDelta) -> None:
        feed = self.symbols.get(delta.symbol)
        if feed is None:
            return
        book = feed.book
        seq = book.seq + 1
        book.apply(seq, delta.bids, delta.asks)
        self._received(feed, delta.exch_ts, delta.local_ts)
        self.metrics.deltas_in[delta.symbol].inc()
        self.hub.publish(delta.symbol, _encode({
            "type": "delta", "source": self.source_kind, "exchange": self.exchange,
            "symbol": delta.symbol, "seq": seq,
            "exch_ts": delta.exch_ts, "local_ts": delta.local_ts,
            "bids": feed.levels(delta.bids), "asks": feed.levels(delta.asks),
        }))

    def trade(self, trade: Trade) -> None:
        feed = self.symbols.get(trade.symbol)
        if feed is None:
            return
        seq = feed.book.seq + 1
        feed.book.advance(seq)
        self._received(feed, trade.exch_ts, trade.local_ts)
        feed.trades_total += 1
        message = {
            "type": "trade", "source": self.source_kind, "exchange": self.exchange,
            "symbol": trade.symbol, "seq": seq,
            "exch_ts": trade.exch_ts, "local_ts": trade.local_ts,
            "price": feed.instrument.price(trade.tick), "qty": feed.instrument.qty(trade.qty),
            "side": trade.side,
        }
        feed.tape.append(message)
        self.metrics.trades_in[trade.symbol].inc()
        self.hub.publish(trade.symbol, _encode(message))

    def source_status(self, status: SourceStatus) -> None:
        if status.state != self.state:
            self.state_since = self.clock()
        self.state = status.state
        self.detail = status.detail
        self.metrics.set_state(status.state)
        self.hub.broadcast(_encode(self.status_message()))

    def _received(self, feed: SymbolFeed, exch_ts: int, local_ts: int) -> None:
        feed.exch_ts = exch_ts
        feed.local_ts = local_ts
        feed.received_at = self.clock()
        if exch_ts > 0:
            self.metrics.lag_of[feed.instrument.symbol].observe(max(0, self.wall() - exch_ts) / 1e9)

    # --- what the web layer reads ---

    def snapshot(self, symbol: str, depth: int | None = None) -> dict:
        feed = self.symbols[symbol]
        bids, asks = feed.book.top(depth)
        return {
            "type": "snapshot", "source": self.source_kind, "exchange": self.exchange,
            "symbol": symbol, "seq": feed.book.seq,
            "exch_ts": feed.exch_ts, "local_ts": feed.local_ts,
            "tick_size": feed.instrument.tick_size, "lot_size": feed.instrument.lot_size,
            "bids": feed.levels(bids), "asks": feed.levels(asks),
        }

    def trades(self, symbol: str, limit: int) -> list[dict]:
        """The newest `limit` trades, newest first."""
        return list(islice(reversed(self.symbols[symbol].tape), limit))

    def status_message(self) -> dict:
        return {"type": "status", "source": self.source_kind, "exchange": self.exchange,
                "state": self.state.value, "detail": self.detail, "ts": self.wall()}

    def subscribe(self, symbols: Iterable[str], capacity: int) -> Subscriber:
        """A new stream subscriber whose buffer starts with each symbol's snapshot, then the source state."""
        symbols = set(symbols)
        subscriber = self.hub.subscribe(symbols, max(capacity, len(symbols) + 1))
        for symbol in sorted(subscriber.symbols):
            subscriber.offer(_encode(self.snapshot(symbol)))
        subscriber.offer(_encode(self.status_message()))
        return subscriber

    def age(self, symbol: str) -> float | None:
        received = self.symbols[symbol].received_at
        return None if received is None else self.clock() - received

    def _age_or_never(self, symbol: str) -> float:
        age = self.age(symbol)
        return -1.0 if age is None else age

    def readiness(self, max_age: float) -> tuple[bool, str]:
        """Ready when the source is connected and every symbol has data younger than max_age seconds."""
        if self.state is not SourceState.CONNECTED:
            return False, f"source is {self.state.value}" + (f": {self.detail}" if self.detail else "")
        for symbol in self.symbols:
            age = self.age(symbol)
            if age is None:
                return False, f"no data for {symbol} yet"
            if age > max_age:
                return False, f"{symbol} data is {age:.1f}s old (limit {max_age:g}s)"
        return True, "ok"

    def symbol_status(self, symbol: str) -> dict:
        feed = self.symbols[symbol]
        book = feed.book
        best_bid, best_ask = book.best_bid(), book.best_ask()
        age = self.age(symbol)
        return {
            "seq": book.seq,
            "best_bid": None if best_bid is None else feed.instrument.price(best_bid),
            "best_ask": None if best_ask is None else feed.instrument.price(best_ask),
            "bid_levels": len(book.bids), "ask_levels": len(book.asks),
            "trades": feed.trades_total,
            "last_event_age_s": None if age is None else round(age, 3),
        }
