"""The service's view of the market: per symbol a sequenced book and a trade tape, fanned out to stream clients."""
from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from itertools import islice

from market.instrument import Instrument

from .book import Book
from .events import BookDelta, BookSnapshot, Exchange, FeedLoss, SourceKind, SourceState, SourceStatus, Trade
from .hub import Hub, Subscriber
from .metrics import Metrics
from .protocol import SymbolStatus, delta_message, encode, snapshot_message, status_message, trade_message
from .recorder import Recorder

log = logging.getLogger("hftlive.feed")


class SymbolFeed:
    __slots__ = ("instrument", "book", "tape", "exch_ts", "local_ts", "received_at", "trades_total", "trades_lost")

    def __init__(self, instrument: Instrument, trade_history: int) -> None:
        self.instrument = instrument
        self.book = Book(instrument.symbol)
        self.tape: deque[dict] = deque(maxlen=trade_history)
        self.exch_ts = 0
        self.local_ts = 0
        self.received_at: float | None = None
        self.trades_total = 0
        self.trades_lost = 0

    def levels(self, levels: Iterable[tuple[int, float]]) -> list[list[float]]:
        price, qty = self.instrument.price, self.instrument.qty
        return [[price(tick), qty(q)] for tick, q in levels]


class Feed:
    """The sink every source feeds. Each delta, trade and source snapshot takes its symbol's next
    sequence number, so a client can tell when it missed something."""

    def __init__(
        self,
        instruments: Iterable[Instrument],
        source_kind: SourceKind,
        hub: Hub,
        metrics: Metrics,
        trade_history: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], int] = time.time_ns,
        exchange: Exchange | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.source_kind = source_kind
        self.recorder = recorder
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
        if self.recorder is not None:
            self.recorder.snapshot(snapshot, feed.book.seq)
        self._received(feed, snapshot.exch_ts, snapshot.local_ts, hops=False)
        self.metrics.snapshots_in[snapshot.symbol].inc()
        self.hub.publish(snapshot.symbol, encode(self.snapshot(snapshot.symbol)))

    def book_delta(self, delta: BookDelta) -> None:
        feed = self.symbols.get(delta.symbol)
        if feed is None:
            return
        book = feed.book
        seq = book.seq + 1
        book.apply(seq, delta.bids, delta.asks)
        if self.recorder is not None:
            self.recorder.delta(delta, seq, book)
        self._received(feed, delta.exch_ts, delta.local_ts, delta.read_ns)
        self.metrics.deltas_in[delta.symbol].inc()
        self.hub.publish(delta.symbol, encode(delta_message(
            self.source_kind, self.exchange, delta.symbol, seq, delta.exch_ts, delta.local_ts,
            feed.levels(delta.bids), feed.levels(delta.asks))))

    def trade(self, trade: Trade) -> None:
        feed = self.symbols.get(trade.symbol)
        if feed is None:
            return
        seq = feed.book.seq + 1
        feed.book.advance(seq)
        if self.recorder is not None:
            self.recorder.trade(trade, seq, feed.book)
        self._received(feed, trade.exch_ts, trade.local_ts, trade.read_ns)
        feed.trades_total += 1
        message = trade_message(
            self.source_kind, self.exchange, trade.symbol, seq, trade.exch_ts, trade.local_ts,
            feed.instrument.price(trade.tick), feed.instrument.qty(trade.qty), trade.side)
        feed.tape.append(message)   # kept for /v1/trades
        self.metrics.trades_in[trade.symbol].inc()
        self.hub.publish(trade.symbol, encode(message))

    def feed_loss(self, loss: FeedLoss) -> None:
        """Said loudly, counted, and shown in /v1/status: a gap the source found but could not fill."""
        feed = self.symbols.get(loss.symbol)
        if feed is None or loss.trades <= 0:
            return
        feed.trades_lost += loss.trades
        self.metrics.trades_lost[loss.symbol].inc(loss.trades)
        log.warning("%s: %d trade(s) lost between the connector and the bot (its IPC buffer overflowed); "
                    "%d lost since start", loss.symbol, loss.trades, feed.trades_lost)

    def source_status(self, status: SourceStatus) -> None:
        if (status.state, status.detail) != (self.state, self.detail):
            # Said where an operator sees it (WARNING) when data stops or goes wrong; the rest at INFO.
            bad = status.state in (SourceState.FAILED, SourceState.STALE) or (
                status.state is SourceState.WAITING_FOR_CONNECTOR and self.state is SourceState.CONNECTED)
            log.log(logging.WARNING if bad else logging.INFO,
                    "source %s%s", status.state.value, f": {status.detail}" if status.detail else "")
        if status.state != self.state:
            self.state_since = self.clock()
        self.state = status.state
        self.detail = status.detail
        self.metrics.set_state(status.state)
        self.hub.broadcast(encode(self.status_message()))

    def _received(self, feed: SymbolFeed, exch_ts: int, local_ts: int, read_ns: int = 0, hops: bool = True) -> None:
        """A message arrived; with hops, its times are an exchange event's (a snapshot's may be a
        registration's: the connector stamps it with the book's last exchange time)."""
        feed.exch_ts = exch_ts
        feed.local_ts = local_ts
        feed.received_at = self.clock()
        now = self.wall()
        if exch_ts > 0:
            self.metrics.lag_of[feed.instrument.symbol].observe(max(0, now - exch_ts) / 1e9)
        hop = self.metrics.hops_of.get(feed.instrument.symbol) if hops else None
        if hop is not None and local_ts > 0:
            to_connector, to_bot, to_service, connector_to_service = hop
            if exch_ts > 0:
                to_connector.observe(max(0, local_ts - exch_ts) / 1e9)
            if read_ns > 0:
                to_bot.observe(max(0, read_ns - local_ts) / 1e9)
                to_service.observe(max(0, now - read_ns) / 1e9)
            connector_to_service.observe(max(0, now - local_ts) / 1e9)

    # --- what the web layer reads ---

    def snapshot(self, symbol: str, depth: int | None = None) -> dict:
        feed = self.symbols[symbol]
        bids, asks = feed.book.top(depth)
        return snapshot_message(
            self.source_kind, self.exchange, symbol, feed.book.seq, feed.exch_ts, feed.local_ts,
            feed.instrument.tick_size, feed.instrument.lot_size, feed.levels(bids), feed.levels(asks))

    def trades(self, symbol: str, limit: int) -> list[dict]:
        """The newest `limit` trades, newest first."""
        return list(islice(reversed(self.symbols[symbol].tape), limit))

    def status_message(self) -> dict:
        return status_message(self.source_kind, self.exchange, self.state, self.detail, self.wall())

    def subscribe(self, symbols: Iterable[str], capacity: int) -> Subscriber:
        """A new stream subscriber whose buffer starts with each symbol's snapshot, then the source state."""
        symbols = set(symbols)
        subscriber = self.hub.subscribe(symbols, max(capacity, len(symbols) + 1))
        for symbol in sorted(subscriber.symbols):
            subscriber.offer(encode(self.snapshot(symbol)))
        subscriber.offer(encode(self.status_message()))
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

    def symbol_status(self, symbol: str) -> SymbolStatus:
        feed = self.symbols[symbol]
        book = feed.book
        best_bid, best_ask = book.best_bid(), book.best_ask()
        age = self.age(symbol)
        return SymbolStatus(
            seq=book.seq,
            best_bid=None if best_bid is None else feed.instrument.price(best_bid),
            best_ask=None if best_ask is None else feed.instrument.price(best_ask),
            bid_levels=len(book.bids), ask_levels=len(book.asks),
            trades=feed.trades_total,
            trades_lost=feed.trades_lost,
            last_event_age_s=None if age is None else round(age, 3),
        )
