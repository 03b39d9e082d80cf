"""A mock market: a latent price drives order flow into a book whose levels are added, cancelled and traded.

Integer ticks and lots throughout, and no web or asyncio code: the mock source and the simulator both run it."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

BID, ASK = 0, 1          # book sides; a taker BUY (=BID) trades against asks
BUY, SELL = BID, ASK
LEVEL, TRADE = 0, 1

Event = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class ModelParams:
    levels: int = 30            # levels each side the flow keeps the book near
    order_lots: float = 20.0    # mean size of a limit order, in lots
    taker_lots: float = 30.0    # mean size of a market order, in lots
    placement: float = 0.1      # limit orders land geometric(placement) ticks from the latent price
    volatility: float = 1.0     # ticks of latent-price move per action (standard deviation)
    add: float = 0.55           # share of limit orders among actions
    cancel: float = 0.30        # share of cancels; the rest are market orders
    sweep_levels: int = 5       # a market order takes at most this many levels

    @property
    def floor_ticks(self) -> int:
        """The lowest tick the book starts at and the latent price falls to: room for the levels below it."""
        return 4 * self.levels + 10


DEFAULT_PARAMS = ModelParams()
DEFAULT_PLACEMENT_TICKS = 9.0   # the mean of geometric(0.1) placement: (1 - p) / p


def spread_params(placement_ticks: float) -> ModelParams:
    """DEFAULT_PARAMS with limit orders landing `placement_ticks` ticks from the latent price on average."""
    return replace(DEFAULT_PARAMS, placement=1.0 / (1.0 + placement_ticks))


class MarketModel:
    """One symbol's book and the order flow that moves it; same seed, same events.

    step() returns event tuples: (LEVEL, side, tick, lots) sets a level's new total (0 removes it);
    (TRADE, taker_side, tick, lots) fills against resting liquidity on the other side. A market
    order yields its n trades (one per level it takes, best first), then those n level changes.
    The book never crosses, and a side is never emptied.
    """

    def __init__(self, mid_tick: int, seed: int, params: ModelParams = DEFAULT_PARAMS) -> None:
        p = params
        self.params = p
        self.rng = random.Random(seed)
        floor = p.floor_ticks
        mid = max(int(mid_tick), floor)   # the service's and the simulator's settings refuse a lower start
        self._floor = floor
        self.fair = float(mid)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        for i in range(p.levels):
            self.bids[mid - 1 - i] = self._size(p.order_lots)
            self.asks[mid + 1 + i] = self._size(p.order_lots)
        self.best_bid = mid - 1
        self.best_ask = mid + 1

    # --- reading ---

    def snapshot(self) -> tuple[dict[int, int], dict[int, int]]:
        return dict(self.bids), dict(self.asks)

    # --- order flow ---

    def step(self, actions: int) -> list[Event]:
        """Run `actions` order-flow actions and return the events they produced, in order."""
        out: list[Event] = []
        rng = self.rng
        p = self.params
        for _ in range(actions):
            self._walk()
            side = BID if rng.random() < 0.5 else ASK
            count = len(self.bids) if side == BID else len(self.asks)
            r = rng.random()
            if count < p.levels // 2 or (count <= 2 * p.levels and r < p.add):
                self._add(side, out)
            elif count > 2 * p.levels or r < p.add + p.cancel:
                self._cancel(side, out)
            else:
                self._market(out)
        return out

    def _walk(self) -> None:
        fair = self.fair + self.rng.gauss(0.0, self.params.volatility)
        # The latent price may run ahead of the book, but not far: flow pulls the book after it.
        self.fair = min(max(fair, self.best_bid - 3, self._floor), self.best_ask + 3)

    def _size(self, mean: float) -> int:
        return 1 + int(self.rng.expovariate(1.0 / mean))

    def _offset(self) -> int:
        u = self.rng.random()
        return int(math.log1p(-u) / math.log1p(-self.params.placement))

    def _add(self, side: int, out: list[Event]) -> None:
        lots = self._size(self.params.order_lots)
        if side == BID:
            # Never cross: a bid stays at least one tick below the best ask.
            tick = max(1, min(math.floor(self.fair) - self._offset(), self.best_ask - 1))
            total = self.bids.get(tick, 0) + lots
            self.bids[tick] = total
            self.best_bid = max(self.best_bid, tick)
        else:
            tick = max(math.ceil(self.fair) + self._offset(), self.best_bid + 1)
            total = self.asks.get(tick, 0) + lots
            self.asks[tick] = total
            self.best_ask = min(self.best_ask, tick)
        out.append((LEVEL, side, tick, total))

    def _cancel(self, side: int, out: list[Event]) -> None:
        book = self.bids if side == BID else self.asks
        if len(book) < 2:
            return   # a side is never emptied, so the touch is always defined
        tick = self.rng.choice(list(book))
        lots = book[tick]
        cancelled = self._size(self.params.order_lots)
        if cancelled >= lots:
            del book[tick]
            left = 0
            if tick == (self.best_bid if side == BID else self.best_ask):
                self._repair(side)
        else:
            left = lots - cancelled
            book[tick] = left
        out.append((LEVEL, side, tick, left))

    def _market(self, out: list[Event]) -> None:
        p = self.params
        rng = self.rng
        mid = (self.best_bid + self.best_ask) / 2
        # Takers lean towards the latent price: that is what moves the book.
        lean = max(-0.4, min(0.4, (self.fair - mid) / 4))
        taker = BUY if rng.random() < 0.5 + lean else SELL
        book = self.asks if taker == BUY else self.bids
        if len(book) < 2:
            return
        wanted = self._size(p.taker_lots)
        # Walk from the touch; leave at least one level so the side never empties.
        ticks = sorted(book) if taker == BUY else sorted(book, reverse=True)
        ticks = ticks[: min(p.sweep_levels, len(ticks) - 1)]
        changes: list[Event] = []
        for tick in ticks:
            if wanted <= 0:
                break
            resting = book[tick]
            take = min(wanted, resting)
            wanted -= take
            out.append((TRADE, taker, tick, take))
            left = resting - take
            if left:
                book[tick] = left
            else:
                del book[tick]
            changes.append((LEVEL, ASK if taker == BUY else BID, tick, left))
        out.extend(changes)
        self._repair(ASK if taker == BUY else BID)

    def take(self, side: int, tick: int, lots: int) -> None:
        """A trader outside the model took `lots` displayed at `tick` on `side` (never a side's last lot)."""
        book = self.bids if side == BID else self.asks
        left = book[tick] - lots
        if left:
            book[tick] = left
        else:
            del book[tick]
        self._repair(side)

    def _repair(self, side: int) -> None:
        if side == BID:
            self.best_bid = max(self.bids)
        else:
            self.best_ask = min(self.asks)
