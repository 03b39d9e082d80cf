"""The simulated exchange: one market model per symbol, stepped at a rate, published as Bybit book and trade streams."""
from __future__ import annotations

import asyncio
import random
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

from market.instrument import Instrument
from market.model import ASK, BID, BUY, DEFAULT_PARAMS, TRADE, Event, MarketModel, ModelParams
from market.pacing import pace
from market.seed import symbol_seed

from .book import DEPTHS, DepthStream, Push
from .sent import KEEP_STAMPS, SendTimes
from .session import OnSent
from .wire import Prices, book_message, now_ms, trade_messages


class Outlet(Protocol):
    """Where streams go: the WebSocket gateway."""

    def subscribed(self, topic: str) -> bool: ...
    def publish(self, topic: str, texts: list[str], kind: str, on_sent: OnSent | None = None) -> None: ...


class Trader(Protocol):
    """Who trades on the books (the desk): it sees the model's events while it has orders resting."""

    def watching(self, symbol: str) -> bool: ...
    def on_event(self, symbol: str, event: Event, now: int) -> None: ...


class SymbolFeed:
    """One symbol: its model, its cross sequence, its four book streams and its trade stream."""

    def __init__(self, inst: Instrument, price: float, seed: int, history: int,
                 params: ModelParams = DEFAULT_PARAMS) -> None:
        self.inst = inst
        self.prices = Prices(inst)
        self.model = MarketModel(inst.tick(price), symbol_seed(seed, inst.symbol), params)
        self.books = {depth: DepthStream(inst.symbol, depth) for depth in DEPTHS}
        self.trade_topic = f"publicTrade.{inst.symbol}"
        self.seq = 0                  # Bybit's cross sequence: here one per model event
        self.cts = now_ms()           # the "matching engine" time of the last step
        self.actions = 0
        self.trades: deque[dict[str, Any]] = deque(maxlen=history)   # every trade sent, for the ground truth
        self.trades_sent = 0
        self.send_times = SendTimes(KEEP_STAMPS)   # not SIM_TRADE_HISTORY: a benchmark keeps few trades, every send
        self._ids = random.Random(symbol_seed(seed, inst.symbol) ^ 0x5EED)
        self._last_tick: int | None = None
        self._last_move = "ZeroPlusTick"

    def step(self, actions: int, stamp: int, trader: Trader | None = None) -> list[dict[str, Any]]:
        """Run the model for `actions` actions; the trades they made, as Bybit writes them."""
        trades = []
        watching = trader is not None and trader.watching(self.inst.symbol)
        for event in self.model.step(actions):
            kind, side, tick, lots = event
            self.seq += 1
            if kind == TRADE:
                trades.append(self._trade(side, tick, lots, stamp))
            if watching:
                trader.on_event(self.inst.symbol, event, stamp)   # type: ignore[union-attr]
        self.actions += actions
        self.cts = stamp
        self.record(trades)
        return trades

    def record(self, trades: list[dict[str, Any]]) -> None:
        self.trades.extend(trades)
        self.trades_sent += len(trades)

    def take(self, side: int, tick: int, lots: int, stamp: int) -> dict[str, Any]:
        """A trader's order took `lots` displayed at `tick` on `side`: the book shrinks and a trade prints."""
        self.model.take(side, tick, lots)
        self.seq += 1
        trade = self._trade(ASK if side == BID else BID, tick, lots, stamp)   # the taker is on the other side
        self.record([trade])
        return trade

    def _trade(self, side: int, tick: int, lots: int, stamp: int) -> dict[str, Any]:
        last = self._last_tick
        if last is not None and tick != last:
            self._last_move = "PlusTick" if tick > last else "MinusTick"
        elif last is not None:
            self._last_move = "ZeroPlusTick" if self._last_move in ("PlusTick", "ZeroPlusTick") else "ZeroMinusTick"
        self._last_tick = tick
        return {
            "T": stamp, "s": self.inst.symbol, "S": "Buy" if side == BUY else "Sell",
            "v": self.prices.size(lots), "p": self.prices.price(tick), "L": self._last_move,
            "i": str(uuid.UUID(int=self._ids.getrandbits(128), version=4)), "BT": False, "RPI": False,
            "seq": self.seq,
        }

    def push(self, depth: int, stamp: int) -> Push | None:
        return self.books[depth].advance(self.model.bids, self.model.asks, self.seq, self.cts, stamp)

    def encode(self, stream: DepthStream, push: Push) -> str:
        return book_message(stream.topic, push.kind, self.prices, push.bids, push.asks,
                            push.u, push.seq, push.ts, push.cts)


class Exchange:
    """Every symbol's feed, the loop that moves them, and the switches the control API throws."""

    def __init__(self, instruments: Sequence[Instrument], prices: Sequence[float], seed: int, rate: float,
                 history: int, outlet: Outlet, params: ModelParams = DEFAULT_PARAMS) -> None:
        self.feeds = {inst.symbol: SymbolFeed(inst, price, seed, history, params)
                      for inst, price in zip(instruments, prices)}
        self.rate = rate
        self.paused = False
        self.outlet = outlet
        self.trader: Trader | None = None
        self.launch_ms = now_ms()
        stamp = now_ms()
        for feed in self.feeds.values():
            for depth in DEPTHS:
                feed.push(depth, stamp)   # each stream's first snapshot (u = 1), before anyone subscribes

    @property
    def topics(self) -> set[str]:
        out = set()
        for feed in self.feeds.values():
            out.add(feed.trade_topic)
            out.update(stream.topic for stream in feed.books.values())
        return out

    def snapshot_for(self, topic: str) -> str | None:
        """A new subscriber's first message on a book topic (None for trades: they start with the next one)."""
        for feed in self.feeds.values():
            for stream in feed.books.values():
                if stream.topic == topic:
                    return feed.encode(stream, stream.snapshot())
        return None

    async def run(self) -> None:
        """The order flow at `rate` (none while paused), and each depth's books pushed on its interval."""
        next_push = dict.fromkeys(DEPTHS, asyncio.get_running_loop().time())

        def tick(actions: int, now: float) -> None:
            if actions:
                self.step(actions)
            for depth, interval in DEPTHS.items():
                if now >= next_push[depth]:
                    next_push[depth] = max(next_push[depth] + interval, now)
                    self.publish_books(depth)

        await pace(lambda: 0.0 if self.paused else self.rate, tick)

    def step(self, actions: int) -> None:
        stamp = now_ms()
        for feed in self.feeds.values():
            self._print(feed, feed.step(actions, stamp, self.trader), stamp)

    def _print(self, feed: SymbolFeed, trades: list[dict[str, Any]], stamp: int) -> None:
        if trades and self.outlet.subscribed(feed.trade_topic):
            self.outlet.publish(feed.trade_topic, trade_messages(feed.trade_topic, trades, stamp), "trade",
                                feed.send_times.on_sent(stamp))

    def book_of(self, symbol: str) -> tuple[dict[int, int], dict[int, int]]:
        """The model's book (what the depth streams show at their next push)."""
        model = self.feeds[symbol].model
        return model.bids, model.asks

    def take(self, symbol: str, side: int, tick: int, lots: int) -> None:
        stamp = now_ms()
        feed = self.feeds[symbol]
        self._print(feed, [feed.take(side, tick, lots, stamp)], stamp)

    def publish_books(self, depth: int, symbols: Sequence[str] | None = None) -> None:
        stamp = now_ms()
        for symbol in symbols or self.feeds:
            feed = self.feeds[symbol]
            push = feed.push(depth, stamp)
            stream = feed.books[depth]
            if push is not None and self.outlet.subscribed(stream.topic):
                self.outlet.publish(stream.topic, [feed.encode(stream, push)], f"book_{push.kind}")

    # --- switches (the control API) ---

    def pause(self) -> None:
        """Stop the order flow, then push every book: clients now hold exactly the ground truth."""
        self.paused = True
        for depth in DEPTHS:
            self.publish_books(depth)

    def resume(self) -> None:
        self.paused = False

    def force_snapshot(self, symbols: Sequence[str], restart: bool = False) -> None:
        """Send a snapshot now on every book topic of `symbols`; with restart, its u is 1."""
        for symbol in symbols:
            for stream in self.feeds[symbol].books.values():
                stream.snapshot_due = True
                stream.restart_due = restart
        for depth in DEPTHS:
            self.publish_books(depth, symbols)

    def skip_u(self, symbols: Sequence[str]) -> None:
        for symbol in symbols:
            for stream in self.feeds[symbol].books.values():
                stream.skip_due = True

    # --- ground truth ---

    def book(self, symbol: str, depth: int) -> dict[str, Any]:
        feed = self.feeds[symbol]
        stream = feed.books[depth]
        held = stream.snapshot()
        inst = feed.inst
        return {
            "symbol": symbol, "depth": depth, "topic": stream.topic, "u": held.u, "seq": held.seq,
            "ts": held.ts, "cts": held.cts, "paused": self.paused,
            "bids": [[inst.price(t), inst.lots(n)] for t, n in held.bids],
            "asks": [[inst.price(t), inst.lots(n)] for t, n in held.asks],
            "topics": {s.topic: {"u": s.u, "seq": s.seq} for s in feed.books.values()},
        }

    def trades(self, symbol: str) -> dict[str, Any]:
        feed = self.feeds[symbol]
        return {"symbol": symbol, "topic": feed.trade_topic, "sent": feed.trades_sent,
                "kept": len(feed.trades), "trades": list(feed.trades)}

    def sent(self, symbol: str, since_ms: int | None = None, client: str | None = None) -> dict[str, Any] | None:
        """When each trade stamp's messages were first written to a client (ns), for latency finer than T's ms;
        with `client`, to the client of that name (None if none was)."""
        feed = self.feeds[symbol]
        sent = feed.send_times.since(since_ms, client)
        if sent is None:
            return None
        answer = {"symbol": symbol, "topic": feed.trade_topic, "sent": sent}
        return answer if client is None else {**answer, "client": client}

    def sent_labels(self, symbol: str) -> list[str]:
        return self.feeds[symbol].send_times.labels()
