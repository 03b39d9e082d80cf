"""The control API (tests only): inject faults, pause the market at a checkpoint, and read the ground truth."""
from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from .book import DEPTHS
from .exchange import Exchange
from .gateway import Gateway
from .sent import MAX_LABELS
from .session import LABEL
from .trading.desk import Desk
from .trading.messages import ledger_data

Query = Mapping[str, str]
MAX_RATE = 1_000_000.0
MAX_REJECTS = 1_000_000
MAX_ACK_DELAY_MS = 60_000.0
MAX_STAMP_MS = 10**15   # a ms stamp past any clock's (year 33658); Bybit's T are 13 digits
# Query numbers are plain ASCII decimals; float() and int() also take "1e3", " 5", "1_0" and other scripts' digits.
DECIMAL = re.compile(r"[0-9]{1,16}(?:\.[0-9]{1,16})?")
DEPTH_WORDS = {str(depth): depth for depth in DEPTHS}   # "50" is a depth; "050", "50.0" and "５０" are not


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Control:
    def __init__(self, exchange: Exchange, gateway: Gateway, desk: Desk) -> None:
        self.exchange = exchange
        self.desk = desk
        self.gateway = gateway
        self.faults: Counter[str] = Counter()
        self.started = asyncio.get_running_loop().time()
        self.routes: dict[str, tuple[str, Callable[[Query], dict[str, Any]]]] = {
            "/control": ("GET", self.index),
            "/control/drop": ("POST", self.drop),
            "/control/snapshot": ("POST", self.snapshot),
            "/control/skip-u": ("POST", self.skip_u),
            "/control/malformed": ("POST", self.malformed),
            "/control/stall": ("POST", self.stall),
            "/control/pause": ("POST", self.pause),
            "/control/resume": ("POST", self.resume),
            "/control/restart-stream": ("POST", self.restart_stream),
            "/control/rate": ("POST", self.rate),
            "/control/book": ("GET", self.book),
            "/control/trades": ("GET", self.trades),
            "/control/sent": ("GET", self.sent),
            "/control/stats": ("GET", self.stats),
            "/control/ledger": ("GET", lambda query: ledger_data(self.desk.ledger)),
            "/control/reject": ("POST", self.reject),
            "/control/delay-acks": ("POST", self.delay_acks),
            "/control/drop-private": ("POST", lambda query: self._drop("drop_private", "/v5/private")),
            "/control/restart-trade": ("POST", lambda query: self._drop("restart_trade", "/v5/trade")),
        }

    def handle(self, method: str, path: str, query: Query) -> tuple[int, dict[str, Any]]:
        route = self.routes.get(path.rstrip("/") or "/")
        if route is None:
            return 404, {"error": f"no control at {path}; GET /control lists them"}
        wanted, action = route
        if method != wanted:
            return 405, {"error": f"{path} takes {wanted}, not {method}"}
        try:
            return 200, action(query)
        except BadRequest as exc:
            return exc.status, {"error": str(exc)}

    # --- parameters ---

    def _symbols(self, query: Query) -> list[str]:
        """The `symbol` given, or every symbol."""
        if "symbol" not in query:
            return list(self.exchange.feeds)
        return [self._symbol(query)]

    def _symbol(self, query: Query) -> str:
        symbol = query.get("symbol")
        if symbol is None:
            if len(self.exchange.feeds) == 1:
                return next(iter(self.exchange.feeds))
            raise BadRequest(f"give ?symbol= (one of {', '.join(self.exchange.feeds)})")
        if symbol not in self.exchange.feeds:
            raise BadRequest(f"unknown symbol {_shown(symbol)}; the simulator has {', '.join(self.exchange.feeds)}",
                             404)
        return symbol

    @staticmethod
    def _number(query: Query, name: str, low: float, high: float) -> float:
        raw = query.get(name)
        if raw is None:
            raise BadRequest(f"give ?{name}= (a number from {low:g} to {high:g})")
        value = float(raw) if DECIMAL.fullmatch(raw) else math.nan
        if not low <= value <= high:   # NaN is never in range
            raise BadRequest(f"{name}={_shown(raw)}: give a number from {low:g} to {high:g}")
        return value

    def _topics(self, symbols: list[str]) -> dict[str, dict[str, int]]:
        return {s.topic: {"u": s.u, "seq": s.seq} for sym in symbols for s in self.exchange.feeds[sym].books.values()}

    # --- actions ---

    def index(self, query: Query) -> dict[str, Any]:
        return {"routes": {path: method for path, (method, _) in self.routes.items()}}

    def drop(self, query: Query) -> dict[str, Any]:
        return self._drop("drop")

    def _drop(self, fault: str, path: str | None = None) -> dict[str, Any]:
        self.faults[fault] += 1
        return {"ok": True, "closed": self.gateway.drop(path)}

    def reject(self, query: Query) -> dict[str, Any]:
        count = self._number(query, "count", 0, MAX_REJECTS)
        if not count.is_integer():
            raise BadRequest(f"count={_shown(query['count'])}: give a whole number from 0 to {MAX_REJECTS}")
        self.faults["reject"] += 1
        self.desk.rejects = int(count)
        return {"ok": True, "rejects": self.desk.rejects}

    def delay_acks(self, query: Query) -> dict[str, Any]:
        ms = self._number(query, "ms", 0, MAX_ACK_DELAY_MS)
        self.faults["delay_acks"] += 1
        self.desk.ack_delay_s = ms / 1000
        return {"ok": True, "ms": ms}

    def snapshot(self, query: Query) -> dict[str, Any]:
        symbols = self._symbols(query)
        self.faults["snapshot"] += 1
        self.exchange.force_snapshot(symbols)
        return {"ok": True, "topics": self._topics(symbols)}

    def restart_stream(self, query: Query) -> dict[str, Any]:
        symbols = self._symbols(query)
        self.faults["restart_stream"] += 1
        self.exchange.force_snapshot(symbols, restart=True)
        return {"ok": True, "topics": self._topics(symbols)}

    def skip_u(self, query: Query) -> dict[str, Any]:
        symbols = self._symbols(query)
        self.faults["skip_u"] += 1
        self.exchange.skip_u(symbols)
        return {"ok": True, "symbols": symbols}

    def malformed(self, query: Query) -> dict[str, Any]:
        self.faults["malformed"] += 1
        return {"ok": True, "clients": self.gateway.malformed()}

    def stall(self, query: Query) -> dict[str, Any]:
        seconds = self._number(query, "seconds", 0.0, 3600.0)
        self.faults["stall"] += 1
        self.gateway.stall(seconds)
        return {"ok": True, "seconds": seconds}

    def pause(self, query: Query) -> dict[str, Any]:
        self.faults["pause"] += 1
        self.exchange.pause()
        return {"ok": True, "paused": True, "topics": self._topics(list(self.exchange.feeds))}

    def resume(self, query: Query) -> dict[str, Any]:
        self.faults["resume"] += 1
        self.exchange.resume()
        return {"ok": True, "paused": False}

    def rate(self, query: Query) -> dict[str, Any]:
        self.exchange.rate = self._number(query, "value", 0.0, MAX_RATE)
        self.faults["rate"] += 1
        return {"ok": True, "rate": self.exchange.rate}

    def book(self, query: Query) -> dict[str, Any]:
        symbol = self._symbol(query)
        raw = query.get("depth", "50")
        depth = DEPTH_WORDS.get(raw)
        if depth is None:
            raise BadRequest(f"depth={_shown(raw)}: give one of {', '.join(DEPTH_WORDS)}")
        return self.exchange.book(symbol, depth)

    def trades(self, query: Query) -> dict[str, Any]:
        return self.exchange.trades(self._symbol(query))

    def sent(self, query: Query) -> dict[str, Any]:
        symbol = self._symbol(query)
        since: int | None = None
        if "since_ms" in query:
            number = self._number(query, "since_ms", 0, MAX_STAMP_MS)
            if not number.is_integer():
                raise BadRequest(f"since_ms={_shown(query['since_ms'])}: "
                                 f"give a whole number from 0 to {MAX_STAMP_MS:g}")
            since = int(number)
        client = query.get("client")
        if client is not None and not LABEL.fullmatch(client):
            raise BadRequest(f"client={_shown(client)}: give a name of letters, digits, '_', '.' or '-', "
                             "up to 32 (as in the client's URL, ?client=NAME)")
        answer = self.exchange.sent(symbol, since, client)
        if answer is None:
            named = ", ".join(self.exchange.sent_labels(symbol)) or "none yet"
            raise BadRequest(f"client={_shown(client)}: no client of that name was sent {symbol} trades, or it "
                             f"came after the first {MAX_LABELS} names (named clients: {named}; a client names "
                             "itself with ?client=NAME in its URL)", 404)
        return answer

    def stats(self, query: Query) -> dict[str, Any]:
        gateway = self.gateway
        return {
            "connections": len(gateway.sessions),
            "connections_total": gateway.connections_total,
            "idle_closed": gateway.idle_closed,
            "slow_closed": gateway.slow_closed,
            "messages_sent": sum(gateway.sent.values()),
            "messages": dict(gateway.sent),
            "subscriptions": {topic: len(s) for topic, s in sorted(gateway.subscribers.items()) if s},
            "faults": dict(self.faults),
            "paused": self.exchange.paused,
            "stalled": gateway.stalled,
            "rate": self.exchange.rate,
            "actions": {symbol: feed.actions for symbol, feed in self.exchange.feeds.items()},
            "uptime_s": round(asyncio.get_running_loop().time() - self.started, 3),
        }


def _shown(raw: str) -> str:
    """A query value quoted for an error line, cut short: the line must stay one readable line."""
    return repr(raw if len(raw) <= 24 else raw[:24] + "...")
