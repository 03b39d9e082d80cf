"""The product's stream client (service.client.StreamClient) following one symbol in a thread, for tests
that drive other things meanwhile: the book it rebuilt, the trades it returned, whatever broke the stream."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

from service.client import Disconnected, Resynced, StreamClient, Trade

T = TypeVar("T")


class BookFollower:
    """`with BookFollower(stack.ws_url, "BTCUSDT") as client:` then client.levels(20), client.seq, client.trades."""

    def __init__(self, ws_url: str, symbol: str) -> None:
        self.symbol = symbol
        self.client = StreamClient(f"{ws_url}/v1/stream", [symbol])
        self.trades: list[Trade] = []
        self.breaks: list[Disconnected | Resynced] = []   # each time the client said its book was void
        self.sources: set[str] = set()                    # `source` of every message that has one
        self.error: str | None = None
        self.stopping = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.follow(),), daemon=True)
        self.thread.start()

    async def follow(self) -> None:
        try:
            async with self.client:
                while not self.stopping.is_set():
                    try:   # StreamClient resumes a next_event() cancelled by a timeout
                        event = await asyncio.wait_for(self.client.next_event(), 0.5)
                    except TimeoutError:
                        continue
                    if isinstance(event, (Disconnected, Resynced)):
                        self.breaks.append(event)
                        continue
                    self.sources.add(event.source)
                    if isinstance(event, Trade):
                        self.trades.append(event)
        except Exception as exc:   # reported by the test through `error`
            self.error = f"{type(exc).__name__}: {exc}"

    def read(self, view: Callable[[], T]) -> T:
        """`view()` run on the client's own thread, between two events: a consistent look at its book."""
        if not self.thread.is_alive():
            return view()

        async def call() -> T:
            return view()
        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    @property
    def seq(self) -> int:
        """The seq the client's book is at (0 before its snapshot)."""
        return self.read(lambda: book.seq if (book := self.client.book(self.symbol)) else 0)

    def levels(self, depth: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The best `depth` (price, qty) levels: bids descending, asks ascending; empty before the snapshot."""
        return self.read(lambda: book.top(depth) if (book := self.client.book(self.symbol)) else ([], []))

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()

    def __enter__(self) -> BookFollower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
