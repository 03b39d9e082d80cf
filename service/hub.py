"""Fan-out of encoded stream messages to subscribers with bounded buffers: the slow are cut off, never waited for."""
from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable

from .protocol import CloseCode, fit_reason


class SubscriberClosed(Exception):
    """The subscriber was cut off (code and reason say why)."""


def text_frame(text: str) -> bytes:
    """`text` as a server sends it on a WebSocket (RFC 6455 section 5.2): one unmasked, unfragmented text frame.
    The same bytes for every client, so the hub builds them once per message, not once per client."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 1 << 16:
        return b"\x81\x7e" + size.to_bytes(2, "big") + payload
    return b"\x81\x7f" + size.to_bytes(8, "big") + payload


class Subscriber:
    """One stream client's buffer of encoded messages, each with the time it was queued (and its frame)."""

    __slots__ = ("symbols", "capacity", "max_lag_s", "_buffer", "_ready", "closed", "code", "reason", "_cut")

    def __init__(self, symbols: Iterable[str], capacity: int, max_lag_s: float | None = None) -> None:
        self.symbols = frozenset(symbols)
        self.capacity = capacity
        self.max_lag_s = max_lag_s
        self._buffer: deque[tuple[float, str, bytes]] = deque()
        self._ready = asyncio.Event()
        self._cut = asyncio.Event()
        self.closed = False
        self.code: int = CloseCode.NORMAL
        self.reason = ""

    def __len__(self) -> int:
        return len(self._buffer)

    def offer(self, text: str, now: float | None = None, frame: bytes | None = None) -> bool:
        """Queue a message (and its frame, built here if not given); False (and nothing queued) when
        closed, full, or the oldest queued one is too old."""
        if self.closed or len(self._buffer) >= self.capacity:
            return False
        now = time.monotonic() if now is None else now
        if self.max_lag_s is not None and self._buffer and now - self._buffer[0][0] > self.max_lag_s:
            return False
        self._buffer.append((now, text, text_frame(text) if frame is None else frame))
        self._ready.set()
        return True

    async def get(self) -> str:
        """The next message, waiting for one; raises SubscriberClosed once cut off (after a drain, once empty)."""
        while not self._buffer:
            if self.closed:
                raise SubscriberClosed(self.code, self.reason)
            self._ready.clear()
            await self._ready.wait()
        return self._buffer.popleft()[1]

    async def take(self, most: int = 256) -> tuple[float, list[bytes]]:
        """(when the oldest was queued, the frames of up to `most` queued messages), at least one, waiting
        for it, oldest first; raises SubscriberClosed as get() does. One write of them all costs a client
        what one message did."""
        buffer = self._buffer
        while not buffer:
            if self.closed:
                raise SubscriberClosed(self.code, self.reason)
            self._ready.clear()
            await self._ready.wait()
        return buffer[0][0], [buffer.popleft()[2] for _ in range(min(len(buffer), most))]

    def close(self, code: int, reason: str, *, drain: bool = False) -> int:
        """Cut off (drain: after what is queued is delivered); returns how many queued messages were discarded.
        A drained subscriber closed again without drain is cut now: its drain took too long."""
        if self.closed:
            if drain or self._cut.is_set():
                return 0
            dropped = len(self._buffer)
            self._buffer.clear()
            self._cut.set()
            return dropped
        self.closed = True
        self.code = code
        self.reason = fit_reason(reason)
        self._ready.set()
        if drain:
            return 0
        dropped = len(self._buffer)
        self._buffer.clear()
        self._cut.set()
        return dropped

    async def wait_cut(self) -> None:
        """Returns when the subscriber is closed without a drain: whatever is being sent to it is stale."""
        await self._cut.wait()


class Hub:
    """Subscribers by symbol. publish() never blocks: a subscriber that falls behind, in messages
    (its capacity) or in time (max_lag_s for its oldest queued message), is closed as a slow consumer."""

    def __init__(self, on_slow: Callable[[int], None] | None = None, max_lag_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._by_symbol: dict[str, set[Subscriber]] = {}
        self._all: set[Subscriber] = set()
        self._on_slow = on_slow
        self.max_lag_s = max_lag_s
        self._clock = clock

    def __len__(self) -> int:
        return len(self._all)

    def subscribe(self, symbols: Iterable[str], capacity: int) -> Subscriber:
        subscriber = Subscriber(symbols, capacity, self.max_lag_s)
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
        if subscribers:
            self._offer(subscribers, text)

    def broadcast(self, text: str) -> None:
        self._offer(self._all, text)

    def _offer(self, subscribers: Iterable[Subscriber], text: str) -> None:
        now = self._clock()
        frame = text_frame(text)
        slow = [s for s in subscribers if not s.offer(text, now, frame)]
        for subscriber in slow:
            self._cut(subscriber, dropped_now=1)

    def close_all(self, code: int = CloseCode.SHUTDOWN, reason: str = CloseCode.SHUTDOWN.reason, *,
                  drain: bool = False) -> list[Subscriber]:
        """Close every subscriber (returned); with drain, each still gets what is queued for it (a final status)."""
        closed = list(self._all)
        for subscriber in closed:
            subscriber.close(code, reason, drain=drain)
            self.unsubscribe(subscriber)
        return closed

    def cut_slow(self, subscriber: Subscriber) -> None:
        """Cut off a subscriber found slow elsewhere (its connection stopped acknowledging)."""
        self._cut(subscriber, dropped_now=0)

    def _cut(self, subscriber: Subscriber, dropped_now: int) -> None:
        if subscriber.closed:   # closed for another reason and not yet unsubscribed
            self.unsubscribe(subscriber)
            return
        dropped = subscriber.close(CloseCode.SLOW_CONSUMER, CloseCode.SLOW_CONSUMER.reason) + dropped_now
        self.unsubscribe(subscriber)
        if self._on_slow is not None:
            self._on_slow(dropped)
