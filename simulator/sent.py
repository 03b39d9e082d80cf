"""When each trade stamp left for the clients: its T (ms) and the wall-clock ns its earliest write began, among all
clients and per named client (a client that names itself, `?client=NAME`, is timed from its own write: the
simulator writes its clients one after another, so the earliest write would charge a later client the others')."""
from __future__ import annotations

from collections import OrderedDict

from .session import OnSent

KEEP_STAMPS = 100_000   # a stamp is a whole ms, so at most 1,000 a second: the last 100 s of sends or more
MAX_LABELS = 4          # named clients timed on their own (each keeps `keep` stamps); more are timed only among all


class Stamps:
    """Trade stamps and the start of their earliest write, the last `keep` stamps."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._first: OrderedDict[int, int] = OrderedDict()   # stamp -> ns, oldest recorded first

    def record(self, stamp: int, ns: int, fresh: bool) -> None:
        held = self._first.get(stamp)
        if held is None:
            if fresh:   # a straggler does not bring back a stamp already dropped as the oldest
                self._first[stamp] = ns
                if len(self._first) > self.keep:
                    self._first.popitem(last=False)
        elif ns < held:   # a write can begin first yet end later, held up by its client's backpressure
            self._first[stamp] = ns

    def since(self, since_ms: int | None = None) -> list[tuple[int, int]]:
        return sorted(item for item in self._first.items() if since_ms is None or item[0] > since_ms)


class SendTimes:
    """One symbol's trade stamps and the start of their earliest write among all clients, and among each named
    client's own writes, the last `keep` stamps of each."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._all = Stamps(keep)
        self._by_label: dict[str, Stamps] = {}

    def on_sent(self, stamp: int) -> OnSent:
        """The callback one publish at `stamp` hands every session; each written message costs a dict look-up or two."""
        fresh = True
        fresh_for: set[str] = set()

        def sent(ns: int, label: str | None = None) -> None:
            nonlocal fresh
            self._all.record(stamp, ns, fresh)
            fresh = False
            if label is None:
                return
            own = self._by_label.get(label)
            if own is None:
                if len(self._by_label) >= MAX_LABELS:
                    return
                own = self._by_label[label] = Stamps(self.keep)
            own.record(stamp, ns, label not in fresh_for)
            fresh_for.add(label)
        return sent

    def since(self, since_ms: int | None = None, label: str | None = None) -> list[tuple[int, int]] | None:
        """(T, sent_ns) by T, only T > since_ms when given; a client that subscribed late can record out of order.
        With a label, that client's own writes (None if no client of that name was written to)."""
        if label is None:
            return self._all.since(since_ms)
        own = self._by_label.get(label)
        return None if own is None else own.since(since_ms)

    def labels(self) -> list[str]:
        return sorted(self._by_label)
