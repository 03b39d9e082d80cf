"""Fan-out of encoded stream messages to subscribers with bounded buffers: the slow are cut off, never waited for."""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable

SLOW_CONSUMER_CODE = 4008
SLOW_CONSUMER_REASON = "slow consumer"
SHUTDOWN_CODE = 1001
SHUTDOWN_REASON = "service shutting down"


class SubscriberClosed(Exception):
    """The subscriber was cut off (code and reason say why)."""


class Subscriber:
    """One stream client's buffer of encoded messages."""

    __slots__ = ("symbols", "capacity", "_buffer", "_ready", "closed", "code", "reason", "_closed_event")

    def __init__(self, symbols: Iterable[str], capacity: int) -> None:
        self.symbols = frozenset(symbols)
        self.capacity = capacity
        self._buffer: deque[str] = deque()
        self._ready = asyncio.Event()
        self._closed_event = asyncio.Event()
        self.closed = False
        self.code = 1000
        self.reason = ""

    def __len__(self) -> int:
        return len(self._buffer)

    def offer(self, text: str) -> bool:
        """Queue a message; False (and nothing queued) when the buffer is full or closed."""
        if self.closed or len(self._buffer) >= self.capacity:
            return False
        self._buffer.append(text)
        self._ready.set()
        return True

    async def get(self) -> str:
        """The next message, waiting for one; raises SubscriberClosed once cut off."""
        while not self._buffer:
            if self.closed:
                raise SubscriberClosed(self.code, self.reason)
            self._ready.clear()
            await self._ready.wait()
        if self.closed:
            raise SubscriberClosed(self.code, self.reason)
        return self._buffer.popleft()

    def close(self, code: int, reason: str) -> int:
        """Cut off; returns how many queued messages were discarded."""
        if self.closed:
            return 0
        self.closed = True
        self.code = code
        self.reason = reason
        dropped = len(self._buffer)
        self._buffer.clear()
        self._ready.set()
        self._closed_event.set()
        return dropped

    async def wait_closed(self) -> None:
        await self._closed_event.wait()


class Hub:
    """Subscribers by symbol. publish() never blocks: a full buffer closes that subscriber with 4008."""

    def __init__(self, on_slow: Callable[[int], None] | None = None) -> None:
        self._by_symbol: dict[str, set[Subscriber]] = {}
        self._all: set[Subscriber] = set()
        self._on_slow = on_slow

    def __len__(self) -> int:
        return len(self._all)

    def subscribe(self, symbols: Iterable[str], capacity: int) -> Subscriber:
        subscriber = Subscriber(symbols, capacity)
        self._all.add(subscriber)
        for symbol in subscriber.symbols:
            self._by_symbol.setdefault(symbol, set()).add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._all.discard(subscriber)
        for symbol in subscriber.symbols:
            self._by_symbol.get(symbol, set()).discard(subscriber)

    def publish(self, symbol: str, text: str) -> None:
        subscribers = self._by_symbol.get(symbol)
        if not subscribers:
            return
        slow = [s for s in subscribers if not s.offer(text)]
        for subscriber in slow:
            self._cut(subscriber, dropped_now=1)

    def broadcast(self, text: str) -> None:
        slow = [s for s in self._all if not s.offer(text)]
        for subscriber in slow:
            self._cut(subscriber, dropped_now=1)

    def close_all(self, code: int = SHUTDOWN_CODE, reason: str = SHUTDOWN_REASON) -> None:
        for subscriber in list(self._all):
            subscriber.close(code, reason)
            self.unsubscribe(subscriber)

    def _cut(self, subscriber: Subscriber, dropped_now: int) -> None:
        if subscriber.closed:   # closed for another reason and not yet unsubscribed
            self.unsubscribe(subscriber)
            return
        dropped = subscriber.close(SLOW_CONSUMER_CODE, SLOW_CONSUMER_REASON) + dropped_now
        self.unsubscribe(subscriber)
        if self._on_slow is not None:
            self._on_slow(dropped)
