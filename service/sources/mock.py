"""The mock source: the market model of service.market, run on the event loop at a set rate and labelled mock."""
from __future__ import annotations

import asyncio
import contextlib
import random
import time
import zlib
from collections.abc import Callable, Sequence

from ..config import Settings
from ..events import BookDelta, BookSnapshot, SourceState, SourceStatus, Trade
from ..instrument import Instrument
from ..market import BID, BUY, DEFAULT_PARAMS, LEVEL, Event, MarketModel, ModelParams
from .base import Sink, Source

TICK_S = 0.01          # one batch of actions per 10 ms of the event loop
MAX_BACKLOG_S = 0.05   # after a stall, catch up at most this much: bursts stay well inside client buffers


def symbol_seed(seed: int, symbol: str) -> int:
    """Each symbol its own stream of events, stable across processes (str hashes are not)."""
    return (seed * 1_000_003 + zlib.crc32(symbol.encode())) & 0xFFFF_FFFF_FFFF


class MockSource(Source):
    kind = "mock"

    def __init__(
        self,
        instruments: Sequence[Instrument],
        rate: float,
        seed: int | None = None,
        price: float = 60_000.0,
        params: ModelParams = DEFAULT_PARAMS,
        wall: Callable[[], int] = time.time_ns,
    ) -> None:
        self.instruments = tuple(instruments)
        self.rate = rate
        self.seed = seed if seed is not None else random.SystemRandom().randrange(1 << 31)
        self.price = price
        self.params = params
        self.wall = wall
        self.models: dict[str, MarketModel] = {}
        self._task: asyncio.Task | None = None
        self._sink: Sink | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> MockSource:
        return cls(settings.instruments, settings.mock_event_rate, settings.mock_seed, settings.mock_price)

    def describe(self) -> dict[str, str | int | float | None]:
        return {"model": "service.market", "seed": self.seed, "rate_per_symbol": self.rate}

    async def start(self, sink: Sink) -> None:
        self._sink = sink
        sink.source_status(SourceStatus(SourceState.STARTING, "building the mock market"))
        now = self.wall()
        for inst in self.instruments:
            model = MarketModel(inst.tick(self.price), symbol_seed(self.seed, inst.symbol), self.params)
            self.models[inst.symbol] = model
            bids, asks = model.snapshot()
            sink.book_snapshot(BookSnapshot(
                inst.symbol, now, now,
                tuple((t, inst.lots(n)) for t, n in bids.items()),
                tuple((t, inst.lots(n)) for t, n in asks.items())))
        sink.source_status(SourceStatus(
            SourceState.CONNECTED, f"mock market model, seed {self.seed}, {self.rate:g} actions/s per symbol"))
        self._task = asyncio.create_task(self._run(), name="mock-source")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sink is not None:
            self._sink.source_status(SourceStatus(SourceState.STOPPED, "mock source stopped"))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        due = 0.0
        while True:
            await asyncio.sleep(TICK_S)
            now = loop.time()
            due += min(now - last, MAX_BACKLOG_S) * self.rate
            last = now
            actions = int(due)
            if not actions:
                continue
            due -= actions
            stamp = self.wall()
            for inst in self.instruments:
                deliver(self._sink, inst, self.models[inst.symbol].step(actions), stamp)


def deliver(sink: Sink, inst: Instrument, events: list[Event], stamp: int) -> None:
    """Hand model events to the sink: one delta per action; a market order's trades, then its one delta.

    Relies on the model's contract: a market order's n trades are followed by its n level changes.
    """
    symbol = inst.symbol
    sweep = 0
    bids: list[tuple[int, float]] = []
    asks: list[tuple[int, float]] = []
    for kind, side, tick, lots in events:
        if kind != LEVEL:
            sink.trade(Trade(symbol, stamp, stamp, tick, inst.lots(lots), "buy" if side == BUY else "sell"))
            sweep += 1
            continue
        (bids if side == BID else asks).append((tick, inst.lots(lots)))
        if sweep:
            sweep -= 1
            if sweep:
                continue   # more levels of the same market order follow
        sink.book_delta(BookDelta(symbol, stamp, stamp, tuple(bids), tuple(asks)))
        bids, asks = [], []
