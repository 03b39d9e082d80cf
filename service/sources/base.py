"""The market-data source interface: live and mock implementations feed the same sink."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

from ..events import BookDelta, BookSnapshot, Exchange, FeedLoss, SourceKind, SourceStatus, Trade


class Sink(Protocol):
    """Where a source delivers events; called on the event loop's thread only."""

    def book_snapshot(self, snapshot: BookSnapshot) -> None: ...
    def book_delta(self, delta: BookDelta) -> None: ...
    def trade(self, trade: Trade) -> None: ...
    def source_status(self, status: SourceStatus) -> None: ...
    def feed_loss(self, loss: FeedLoss) -> None: ...


class Source(ABC):
    kind: SourceKind
    exchange: Exchange | None = None   # where the feed comes from; a mock has none

    @abstractmethod
    async def start(self, sink: Sink) -> None:
        """Begin delivering events to `sink`; returns once started (data may follow later)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop delivering and release everything the source holds."""

    def describe(self) -> dict[str, str | int | float | None]:
        """Facts about the source for /v1/status (connector, seed, rate …)."""
        return {}
