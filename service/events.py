"""What flows through the service: book snapshots and deltas, trades and source states, and their JSON shapes."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, Field, TypeAdapter

SourceKind = Literal["live", "mock"]
# The venues a live source can be fed from; the mock has none. The connector's entrypoint and
# compose.yaml spell the same names (tests/unit/test_connector_entrypoint.py checks).
Exchange = Literal["simulator", "bybit", "bybit-testnet"]
EXCHANGES: tuple[Exchange, ...] = get_args(Exchange)
TakerSide = Literal["buy", "sell"]

# A level as it travels inside the service: (integer tick, quantity); quantity 0 deletes the level.
Levels = tuple[tuple[int, float], ...]


class SourceState(StrEnum):
    STARTING = "starting"
    WAITING_FOR_CONNECTOR = "waiting_for_connector"
    CONNECTED = "connected"
    STALE = "stale"
    FAILED = "failed"
    STOPPED = "stopped"


# --- the hot path: what sources hand the feed (prices in integer ticks) ---

@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """The source's whole book for a symbol: replaces whatever the service had."""
    symbol: str
    exch_ts: int
    local_ts: int
    bids: Levels
    asks: Levels


@dataclass(frozen=True, slots=True)
class BookDelta:
    """Changed levels only."""
    symbol: str
    exch_ts: int
    local_ts: int
    bids: Levels
    asks: Levels


@dataclass(frozen=True, slots=True)
class Trade:
    symbol: str
    exch_ts: int
    local_ts: int
    tick: int
    qty: float
    side: TakerSide


@dataclass(frozen=True, slots=True)
class SourceStatus:
    state: SourceState
    detail: str = ""


# --- the wire: JSON messages on /v1/stream and the REST answers (prices as numbers) ---

PriceLevel = tuple[float, float]


class SnapshotMessage(BaseModel):
    """A whole book at `seq`: bids descending, asks ascending. Replaces the client's book."""
    type: Literal["snapshot"] = "snapshot"
    source: SourceKind
    exchange: Exchange | None = Field(description="where the live source's feed comes from; null for the mock")
    symbol: str
    seq: int = Field(description="sequence number of the last event this book includes")
    exch_ts: int = Field(description="exchange time of the last change, ns since the epoch")
    local_ts: int = Field(description="time the service received the last change, ns since the epoch")
    tick_size: float
    lot_size: float
    bids: list[PriceLevel]
    asks: list[PriceLevel]


class DeltaMessage(BaseModel):
    """Changed levels; qty 0 deletes the level. Its seq follows the previous event's."""
    type: Literal["delta"] = "delta"
    source: SourceKind
    exchange: Exchange | None
    symbol: str
    seq: int
    exch_ts: int
    local_ts: int
    bids: list[PriceLevel]
    asks: list[PriceLevel]


class TradeMessage(BaseModel):
    type: Literal["trade"] = "trade"
    source: SourceKind
    exchange: Exchange | None
    symbol: str
    seq: int
    exch_ts: int
    local_ts: int
    price: float
    qty: float
    side: TakerSide = Field(description="the taker's side")


class StatusMessage(BaseModel):
    type: Literal["status"] = "status"
    source: SourceKind
    exchange: Exchange | None
    state: SourceState
    detail: str
    ts: int


StreamMessage = Annotated[
    SnapshotMessage | DeltaMessage | TradeMessage | StatusMessage, Field(discriminator="type")]
stream_message = TypeAdapter(StreamMessage)


class TradesResponse(BaseModel):
    source: SourceKind
    exchange: Exchange | None
    symbol: str
    seq: int
    trades: list[TradeMessage] = Field(description="newest first")


class SymbolStatus(BaseModel):
    seq: int
    best_bid: float | None
    best_ask: float | None
    bid_levels: int
    ask_levels: int
    trades: int = Field(description="trades received since start")
    last_event_age_s: float | None = Field(description="seconds since the last event; null before the first")


class StatusResponse(BaseModel):
    source: SourceKind
    exchange: Exchange | None = Field(description="where the live source's feed comes from; null for the mock")
    state: SourceState
    detail: str
    state_since_s: float = Field(description="seconds in the current state")
    ready: bool
    uptime_s: float
    clients: int
    source_info: dict[str, str | int | float | None]
    symbols: dict[str, SymbolStatus]
