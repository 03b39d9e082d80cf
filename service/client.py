"""An async client for the service's stream: reconnects and resynchronises by itself, and says so."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from .book import Book, SequenceGap
from .protocol import CloseCode, stream_message
from .protocol import DeltaMessage as Delta
from .protocol import SnapshotMessage as Snapshot
from .protocol import StatusMessage as Status
from .protocol import TradeMessage as Trade

log = logging.getLogger("hftlive.client")

ResyncReason = Literal["reconnect", "gap", "restart"]


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The stream was lost: every book the client kept is void from now on (client.books is empty).

    `reason` says what happened (closed by the service, keepalive ping timeout, connection broken, or a
    sequence gap the client reconnects to repair); `code` is the close code the service sent, if any;
    `ts` is when the client noticed, ns since the epoch. next_event() goes on reconnecting."""
    type: ClassVar[str] = "disconnected"
    reason: str
    code: int | None
    ts: int


@dataclass(frozen=True, slots=True)
class Resynced:
    """The next event is a fresh Snapshot of `symbol`, whose book was voided; `reason` says why.

    "reconnect": the stream was lost and is back; "gap": the client reconnected because a seq was
    skipped; "restart": the snapshot's `seq` is below `last_seq`, the last one seen for the symbol,
    so the service restarted and numbers its events afresh (anything kept by seq is void)."""
    type: ClassVar[str] = "resynced"
    symbol: str
    reason: ResyncReason
    last_seq: int | None   # the last seq seen for the symbol before its book was voided
    seq: int               # the fresh snapshot's


Event = Snapshot | Delta | Trade | Status | Disconnected | Resynced


class StreamRejected(Exception):
    """The service refused the stream (wrong token, unknown symbol): reconnecting would not help."""


class StreamClient:
    """connect(), next_event(), disconnect().

    Every Delta and Trade it returns continues a book. When that stops being true it says so first:

    - Disconnected: the stream was lost (closed, broken, a frozen service, or a seq gap). Every book
      is void; a backend stops acting on them. Returned once per lost connection, not per failed
      reconnect attempt: the next next_event() call keeps reconnecting with back-off until it can.
    - Resynced: comes right before the fresh Snapshot of each symbol whose book was voided; the
      Snapshot rebuilds it. reason "restart" (the snapshot's seq went backwards) means the service
      restarted: forget anything kept by seq.

    A frozen service (socket open, nothing arriving, pings unanswered) is reported within
    `stall_bound` = ping_interval + ping_timeout + close_timeout (8 s by default). The service sends
    nothing periodically, so a quiet stream alone is not an outage; a stalled source is a Status.

        client = StreamClient("ws://127.0.0.1:8000/v1/stream", ["BTCUSDT"])
        await client.connect()
        while True:
            event = await client.next_event()   # Snapshot, Delta, Trade, Status, Disconnected or Resynced
    """

    def __init__(
        self,
        url: str,
        symbols: Sequence[str] | None = None,
        token: str | None = None,
        *,
        reconnect_delays: tuple[float, float] = (0.1, 5.0),
        open_timeout: float = 10.0,
        ping_interval: float = 3.0,
        ping_timeout: float = 3.0,
        close_timeout: float = 2.0,
    ) -> None:
        query = f"symbols={','.join(symbols)}" if symbols else ""
        self.url = url + (("&" if "?" in url else "?") + query if query else "")
        self.token = token
        self.reconnect_delays = reconnect_delays
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.books: dict[str, Book] = {}   # price → qty, per symbol; present once its snapshot arrived
        self.reconnects = 0
        self.gaps = 0
        self.restarts = 0
        self._ws: ClientConnection | None = None
        self._closing = False
        self._last_seq: dict[str, int] = {}          # per symbol, the last seq returned
        self._voided: dict[str, ResyncReason] = {}   # symbols whose book was dropped, and why
        self._held: Snapshot | None = None           # a snapshot to return after its Resynced
        self._delay = reconnect_delays[0]
        self._closers: set[asyncio.Task] = set()     # closing handshakes of connections given up on

    # --- the three calls a backend needs ---

    async def connect(self) -> None:
        """Open the stream; raises StreamRejected or OSError if the first attempt fails."""
        self._closing = False
        await self._open()

    async def next_event(self) -> Event:
        """The next event that continues the books (snapshots included), or says they stopped; reconnects as needed."""
        while True:
            if self._closing:
                raise ConnectionError("the client was disconnected")
            if self._held is not None:
                event, self._held = self._held, None
            elif self._ws is None:
                await self._reconnect()
                continue
            else:
                try:
                    raw = await self._ws.recv()
                except ConnectionClosed as closed:
                    lost = self._lost(closed)
                    if self._closing:
                        continue
                    return lost
                event = stream_message.validate_json(raw)
            if isinstance(event, Status):
                return event
            if isinstance(event, Snapshot):
                reason = self._voided.pop(event.symbol, None)
                if reason is not None:
                    self._held = event
                    return self._resynced(event, reason)
                book = self.books[event.symbol] = Book(event.symbol)
                book.load(event.seq, event.bids, event.asks)
                self._last_seq[event.symbol] = event.seq
                return event
            book = self.books.get(event.symbol)
            if book is None:
                continue   # waiting for this symbol's snapshot
            try:
                if isinstance(event, Delta):
                    book.apply(event.seq, event.bids, event.asks)
                else:
                    book.advance(event.seq)
            except SequenceGap as gap:
                self.gaps += 1
                log.warning("%s; resynchronising from a new snapshot", gap)
                self._drop_connection("gap")
                return Disconnected(f"sequence gap: {gap}; reconnecting for fresh snapshots", None, time.time_ns())
            self._last_seq[event.symbol] = event.seq
            return event

    async def disconnect(self) -> None:
        self._closing = True
        self._drop_connection("reconnect")
        await asyncio.gather(*self._closers, return_exceptions=True)

    # --- conveniences ---

    @property
    def stall_bound(self) -> float:
        """Seconds within which a frozen service is reported: a ping, its timeout, then the close's."""
        return self.ping_interval + self.ping_timeout + self.close_timeout

    def book(self, symbol: str) -> Book | None:
        return self.books.get(symbol)

    async def __aenter__(self) -> StreamClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    def __aiter__(self) -> StreamClient:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self.next_event()
        except ConnectionError:
            raise StopAsyncIteration from None

    # --- connection handling ---

    async def _open(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        try:
            self._ws = await connect(
                self.url, additional_headers=headers, open_timeout=self.open_timeout, max_size=None,
                ping_interval=self.ping_interval, ping_timeout=self.ping_timeout, close_timeout=self.close_timeout)
        except InvalidStatus as exc:
            status = exc.response.status_code
            if not 400 <= status < 500:   # a proxy's 502 while the service restarts: worth retrying
                raise ConnectionError(f"the service answered HTTP {status}") from None
            raise StreamRejected(f"{self.url}: the service answered HTTP {status} "
                                 f"({'wrong or missing token' if status in (401, 403) else 'refused'})") from None
        except InvalidURI as exc:
            raise StreamRejected(str(exc)) from None
        except InvalidHandshake as exc:   # the connection broke during the handshake
            raise ConnectionError(f"handshake failed: {exc}") from None
        self._void_books("reconnect")

    async def _reconnect(self) -> None:
        # The back-off lives on self, so a caller that cancels next_event() (asyncio.wait_for) resumes it.
        while not self._closing:
            try:
                await self._open()
                self.reconnects += 1
                self._delay = self.reconnect_delays[0]
                return
            except (TimeoutError, OSError) as exc:
                log.warning("stream %s unreachable (%s); retrying in %.1fs", self.url, exc, self._delay)
                await asyncio.sleep(self._delay)
                self._delay = min(self._delay * 2, self.reconnect_delays[1])

    def _lost(self, closed: ConnectionClosed) -> Disconnected:
        self._ws = None
        self._void_books("reconnect")
        if closed.rcvd is not None:
            code, reason = closed.rcvd.code, f"closed by the service: {closed.rcvd.code} {closed.rcvd.reason}".rstrip()
        elif closed.sent is not None and closed.sent.reason == "keepalive ping timeout":   # websockets' words
            code, reason = None, (f"keepalive ping timeout: no answer within {self.ping_timeout:g}s "
                                  "(the service is frozen or the network is down)")
        elif closed.sent is not None and closed.sent.reason:
            code, reason = None, closed.sent.reason
        else:
            code, reason = None, "connection broken"
        if code == CloseCode.UNKNOWN_SYMBOL:
            raise StreamRejected(f"{self.url}: {closed.rcvd.reason}")
        if not self._closing:
            log.warning("stream lost (%s); reconnecting", reason)
        return Disconnected(reason, code, time.time_ns())

    def _resynced(self, snapshot: Snapshot, reason: ResyncReason) -> Resynced:
        last = self._last_seq.get(snapshot.symbol)
        if last is not None and snapshot.seq < last:
            reason = "restart"
            self.restarts += 1
            log.warning("%s: seq went back from %d to %d: the service restarted", snapshot.symbol, last, snapshot.seq)
        return Resynced(snapshot.symbol, reason, last, snapshot.seq)

    def _void_books(self, reason: ResyncReason) -> None:
        """Drop every book; each one's next snapshot is announced by a Resynced saying why (the first cause wins)."""
        for symbol in self.books:
            self._voided.setdefault(symbol, reason)
        self.books.clear()
        self._held = None

    def _drop_connection(self, reason: ResyncReason) -> None:
        ws, self._ws = self._ws, None
        self._void_books(reason)
        if ws is not None:
            # In the background: the close frame may wait behind unread messages for close_timeout.
            closer = asyncio.create_task(ws.close())
            self._closers.add(closer)
            closer.add_done_callback(self._closers.discard)


__all__ = ["Delta", "Disconnected", "Event", "Resynced", "ResyncReason", "Snapshot", "Status", "StreamClient",
           "StreamRejected", "Trade"]
