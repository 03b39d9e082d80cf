"""An async client for the service's stream that reconnects and resynchronises by itself (websockets, pydantic)."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from .book import Book, SequenceGap
from .events import DeltaMessage as Delta
from .events import SnapshotMessage as Snapshot
from .events import StatusMessage as Status
from .events import TradeMessage as Trade
from .events import stream_message

log = logging.getLogger("hftlive.client")

SLOW_CONSUMER = 4008
UNKNOWN_SYMBOL = 4404
Event = Snapshot | Delta | Trade | Status


class StreamRejected(Exception):
    """The service refused the stream (wrong token, unknown symbol): reconnecting would not help."""


class StreamClient:
    """connect(), next_event(), disconnect().

    After a reconnect, or a gap in a symbol's sequence numbers, it drops its books and waits for
    the fresh snapshots the server sends on connect, so every event it returns continues a book:

        client = StreamClient("ws://127.0.0.1:8000/v1/stream", ["BTCUSDT"])
        await client.connect()
        while True:
            event = await client.next_event()   # Snapshot, Delta, Trade or Status
    """

    def __init__(
        self,
        url: str,
        symbols: Sequence[str] | None = None,
        token: str | None = None,
        *,
        reconnect_delays: tuple[float, float] = (0.1, 5.0),
        open_timeout: float = 10.0,
    ) -> None:
        query = f"symbols={','.join(symbols)}" if symbols else ""
        self.url = url + (("&" if "?" in url else "?") + query if query else "")
        self.token = token
        self.reconnect_delays = reconnect_delays
        self.open_timeout = open_timeout
        self.books: dict[str, Book] = {}   # price → qty, per symbol; present once its snapshot arrived
        self.reconnects = 0
        self.gaps = 0
        self._ws: ClientConnection | None = None
        self._closing = False

    # --- the three calls a backend needs ---

    async def connect(self) -> None:
        """Open the stream; raises StreamRejected or OSError if the first attempt fails."""
        self._closing = False
        await self._open()

    async def next_event(self) -> Event:
        """The next event that continues the books (snapshots included); reconnects as needed."""
        while True:
            if self._closing:
                raise ConnectionError("the client was disconnected")
            if self._ws is None:
                await self._reconnect()
                continue
            try:
                raw = await self._ws.recv()
            except ConnectionClosed as closed:
                self._lost(closed)
                continue
            event = stream_message.validate_json(raw)
            if isinstance(event, Status):
                return event
            if isinstance(event, Snapshot):
                book = self.books[event.symbol] = Book(event.symbol)
                book.load(event.seq, event.bids, event.asks)
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
                await self._drop_connection()
                continue
            return event

    async def disconnect(self) -> None:
        self._closing = True
        await self._drop_connection()

    # --- conveniences ---

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
                self.url, additional_headers=headers, open_timeout=self.open_timeout,
                max_size=None, close_timeout=2)
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
        self.books.clear()

    async def _reconnect(self) -> None:
        delay, longest = self.reconnect_delays
        while not self._closing:
            try:
                await self._open()
                self.reconnects += 1
                return
            except (TimeoutError, OSError) as exc:
                log.warning("stream %s unreachable (%s); retrying in %.1fs", self.url, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, longest)

    def _lost(self, closed: ConnectionClosed) -> None:
        code = closed.rcvd.code if closed.rcvd is not None else None
        reason = closed.rcvd.reason if closed.rcvd is not None else ""
        self._ws = None
        self.books.clear()
        if code == UNKNOWN_SYMBOL:
            raise StreamRejected(f"{self.url}: {reason}")
        if not self._closing:
            log.warning("stream closed (%s %s); reconnecting", code, reason)

    async def _drop_connection(self) -> None:
        ws, self._ws = self._ws, None
        self.books.clear()
        if ws is not None:
            await ws.close()


__all__ = ["Delta", "Event", "Snapshot", "Status", "StreamClient", "StreamRejected", "Trade"]
