"""The wire contract: the JSON messages of /v1/stream and /v1/*, how the feed builds them, and how a stream
closes. The feed, hub, app, server and client import it; the page gets the close codes from the app."""
from __future__ import annotations

import json
from collections.abc import Iterable
from enum import IntEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

from .events import Exchange, SourceKind, SourceState, TakerSide

# --- how a stream closes ---


class CloseCode(IntEnum):
    """The codes a /v1/stream connection closes with, each with the reason the service sends (if any)."""

    reason: str

    def __new__(cls, code: int, reason: str = "") -> CloseCode:
        member = int.__new__(cls, code)
        member._value_ = code
        member.reason = reason
        return member

    NORMAL = 1000
    SHUTDOWN = 1001, "service shutting down"               # SIGTERM, after a final `stopped` status
    ABNORMAL = 1006                                        # never sent: how a client reports no close frame
    UNAUTHORIZED = 1008, "missing or wrong bearer token"   # before the handshake: the client sees HTTP 403
    MESSAGE_TOO_BIG = 1009                                 # a client message over server.INBOUND_MAX_BYTES
    INTERNAL_ERROR = 1011, "stream ended"                  # the send failed
    RESYNC = 4000                                          # sent by a client that missed a seq (the page)
    SLOW_CONSUMER = 4008, "slow consumer"
    UNKNOWN_SYMBOL = 4404, "unknown symbol"                # followed by which: unknown_symbol_reason()


MAX_REASON_BYTES = 123   # RFC 6455: a close frame's payload is at most 125 bytes, 2 of them the code


def fit_reason(reason: str) -> str:
    """`reason` cut to what a close frame can carry (123 bytes of UTF-8), never mid-character."""
    encoded = reason.encode("utf-8")
    if len(encoded) <= MAX_REASON_BYTES:
        return reason
    return encoded[:MAX_REASON_BYTES - 3].decode("utf-8", errors="ignore") + "..."


def unknown_symbol_reason(asked: Iterable[str], served: Iterable[str]) -> str:
    shown = ",".join(asked)[:40] or "(none)"
    return f"{CloseCode.UNKNOWN_SYMBOL.reason} {shown}; served: {','.join(served)}"


# --- the messages (prices as numbers) ---

PriceLevel = tuple[float, float]


class _Sequenced(BaseModel):
    """The head of a message about one symbol's book: its seq follows the previous one's."""
    type: str
    source: SourceKind
    exchange: Exchange | None
    symbol: str
    seq: int
    exch_ts: int
    local_ts: int


class SnapshotMessage(_Sequenced):
    """A whole book at `seq`: bids descending, asks ascending. Replaces the client's book."""
    type: Literal["snapshot"] = "snapshot"
    exchange: Exchange | None = Field(description="where the live source's feed comes from; null for the mock")
    seq: int = Field(description="sequence number of the last event this book includes")
    exch_ts: int = Field(description="exchange time of the last change, ns since the epoch")
    local_ts: int = Field(description="time the service received the last change, ns since the epoch")
    tick_size: float
    lot_size: float
    bids: list[PriceLevel]
    asks: list[PriceLevel]


class DeltaMessage(_Sequenced):
    """Changed levels; qty 0 deletes the level."""
    type: Literal["delta"] = "delta"
    bids: list[PriceLevel]
    asks: list[PriceLevel]


class TradeMessage(_Sequenced):
    type: Literal["trade"] = "trade"
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
    trades_lost: int = Field(0, description="trades the source lost before they reached the service "
                                            "(a bot buffer overflowed); 0 when none")
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


# --- building them on the hot path: plain dicts in the models' field order, encoded once each, never
# validated (tests/unit/service/test_service_protocol.py checks that dicts and models agree) ---

PriceLevels = list[list[float]]   # [[price, qty], …], as the feed converts them from ticks
encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False).encode


def snapshot_message(source: SourceKind, exchange: Exchange | None, symbol: str, seq: int, exch_ts: int,
                     local_ts: int, tick_size: float, lot_size: float, bids: PriceLevels,
                     asks: PriceLevels) -> dict:
    return {"type": "snapshot", "source": source, "exchange": exchange, "symbol": symbol, "seq": seq,
            "exch_ts": exch_ts, "local_ts": local_ts, "tick_size": tick_size, "lot_size": lot_size,
            "bids": bids, "asks": asks}


def delta_message(source: SourceKind, exchange: Exchange | None, symbol: str, seq: int, exch_ts: int,
                  local_ts: int, bids: PriceLevels, asks: PriceLevels) -> dict:
    return {"type": "delta", "source": source, "exchange": exchange, "symbol": symbol, "seq": seq,
            "exch_ts": exch_ts, "local_ts": local_ts, "bids": bids, "asks": asks}


def trade_message(source: SourceKind, exchange: Exchange | None, symbol: str, seq: int, exch_ts: int,
                  local_ts: int, price: float, qty: float, side: TakerSide) -> dict:
    return {"type": "trade", "source": source, "exchange": exchange, "symbol": symbol, "seq": seq,
            "exch_ts": exch_ts, "local_ts": local_ts, "price": price, "qty": qty, "side": side}


def status_message(source: SourceKind, exchange: Exchange | None, state: SourceState, detail: str, ts: int) -> dict:
    return {"type": "status", "source": source, "exchange": exchange, "state": state.value, "detail": detail,
            "ts": ts}
