"""The mock source: the market kernel's model, run on the event loop at a set rate and labelled mock."""
from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence

from market.instrument import Instrument
from market.model import BID, BUY, DEFAULT_PARAMS, LEVEL, Event, MarketModel, ModelParams
from market.pacing import pace
from market.seed import symbol_seed

from ..config import Settings
from ..events import BookDelta, BookSnapshot, SourceState, SourceStatus, Trade
from .base import Sink, Source


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
        return {"model": "market.model", "seed": self.seed, "rate_per_symbol": self.rate}

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
        self._task = asyncio.create_task(pace(lambda: self.rate, self._step), name="mock-source")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sink is not None:
            self._sink.source_status(SourceStatus(SourceState.STOPPED, "mock source stopped"))

    def _step(self, actions: int, now: float) -> None:
        if not actions:
            return
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
