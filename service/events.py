"""What a source hands the feed: book snapshots and deltas, trades and source states (prices in integer ticks)."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, get_args

SourceKind = Literal["live", "mock"]
# The venues a live source can be fed from; the mock has none. The connector's entrypoint and
# compose.yaml spell the same names (tests/unit/test_connector_entrypoint.py checks).
Exchange = Literal["simulator", "bybit", "bybit-testnet"]
EXCHANGES: tuple[Exchange, ...] = get_args(Exchange)
TakerSide = Literal["buy", "sell"]

# hftbacktest's documented event flags: what its bot reports (live_bot) and its data files hold (recorder).
DEPTH_EVENT, TRADE_EVENT, DEPTH_CLEAR_EVENT, DEPTH_SNAPSHOT_EVENT = 1, 2, 3, 4
EXCH_EVENT, LOCAL_EVENT, BUY_EVENT, SELL_EVENT = 1 << 31, 1 << 30, 1 << 29, 1 << 28

# A level as it travels inside the service: (integer tick, quantity); quantity 0 deletes the level.
Levels = tuple[tuple[int, float], ...]


class SourceState(StrEnum):
    STARTING = "starting"
    WAITING_FOR_CONNECTOR = "waiting_for_connector"
    CONNECTED = "connected"
    STALE = "stale"
    FAILED = "failed"
    STOPPED = "stopped"


# --- the hot path: plain dataclasses (what goes on the wire is in protocol.py) ---

@dataclass(frozen=True, slots=True)
class _BookLevels:
    symbol: str
    exch_ts: int
    local_ts: int
    bids: Levels
    asks: Levels
    # When the live bot read it (wall clock, ns; 0 from a source without a bot): a stamp, not content.
    read_ns: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class BookSnapshot(_BookLevels):
    """The source's whole book for a symbol: replaces whatever the service had."""


@dataclass(frozen=True, slots=True)
class BookDelta(_BookLevels):
    """Changed levels only."""


@dataclass(frozen=True, slots=True)
class Trade:
    symbol: str
    exch_ts: int
    local_ts: int
    tick: int
    qty: float
    side: TakerSide
    read_ns: int = field(default=0, compare=False)   # as _BookLevels.read_ns


@dataclass(frozen=True, slots=True)
class FeedLoss:
    """Trades the source knows it lost before they reached the service (a bot buffer overflowed)."""
    symbol: str
    trades: int


@dataclass(frozen=True, slots=True)
class SourceStatus:
    state: SourceState
    detail: str = ""
