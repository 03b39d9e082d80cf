"""When each trade stamp first left for a client: its T (ms) and the wall-clock ns its earliest write began."""
from __future__ import annotations

from collections import OrderedDict

from .session import OnSent

KEEP_STAMPS = 100_000   # a stamp is a whole ms, so at most 1,000 a second: the last 100 s of sends or more


class SendTimes:
    """One symbol's trade stamps and the start of their earliest write among all clients, the last `keep` stamps."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._first: OrderedDict[int, int] = OrderedDict()   # stamp -> ns, oldest recorded first

    def on_sent(self, stamp: int) -> OnSent:
        """The callback one publish at `stamp` hands every session; each written message costs one dict look-up."""
        fresh = True

        def sent(ns: int) -> None:
            nonlocal fresh
            held = self._first.get(stamp)
            if held is None:
                if fresh:   # a straggler does not bring back a stamp already dropped as the oldest
                    self._first[stamp] = ns
                    if len(self._first) > self.keep:
                        self._first.popitem(last=False)
            elif ns < held:   # a write can begin first yet end later, held up by its client's backpressure
                self._first[stamp] = ns
            fresh = False
        return sent

    def since(self, since_ms: int | None = None) -> list[tuple[int, int]]:
        """(T, sent_ns) by T, only T > since_ms when given; a client that subscribed late can record out of order."""
        return sorted(item for item in self._first.items() if since_ms is None or item[0] > since_ms)
