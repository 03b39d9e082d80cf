"""The WebSocket side of /v5/public/linear: subscribe, unsubscribe and ping as Bybit answers them, and fan-out."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .config import MAX_BACKLOG_BYTES
from .session import LABEL, OnSent, Session
from .wire import dumps, now_ms, reply

LOG = logging.getLogger("simulator")
MAX_NESTING = 32   # Bybit's requests nest two deep; deeper is refused before anything recurses through it


def client_label(query: str) -> str | None:
    """The name a client gave itself in its URL (`?client=NAME`, letters, digits, `_.-`, up to 32), else None:
    the simulator then also keeps the send times of that client's own writes (/control/sent?client=NAME)."""
    names = parse_qs(query).get("client", [])
    return names[0] if len(names) == 1 and LABEL.fullmatch(names[0]) else None


def decode(raw: str | bytes) -> dict[str, Any]:
    """A request: a JSON object nested at most MAX_NESTING deep; a ValueError saying why for anything else."""
    try:
        request = json.loads(raw)   # bad JSON and bad UTF-8 raise ValueError
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_NESTING} levels") from None
    if not isinstance(request, dict):
        raise ValueError("expected a JSON object")
    if _deeper_than(request, MAX_NESTING):
        raise ValueError(f"nested deeper than {MAX_NESTING} levels")
    return request


def _deeper_than(value: Any, limit: int) -> bool:
    """Without recursion: the decoded value's lists and objects nest more than `limit` deep."""
    pending = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, (dict, list)):
            if level > limit:
                return True
            pending.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


class Gateway:
    """Every connected client, who subscribed to what, and the faults that act on connections."""

    def __init__(self, idle_timeout_s: float, max_backlog_bytes: int = MAX_BACKLOG_BYTES) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.max_backlog_bytes = max_backlog_bytes
        self.sessions: set[Session] = set()
        self.subscribers: dict[str, set[Session]] = {}
        self.sent: Counter[str] = Counter()
        self.connections_total = 0
        self.idle_closed = 0
        self.slow_closed = 0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._stall: asyncio.TimerHandle | None = None
        # Set by the server once the exchange exists: the topics there are, and a book topic's first message.
        self.topics: set[str] = set()
        self.snapshot_for: Callable[[str], str | None] = lambda topic: None
        # Set by the server: the handler of each other WebSocket path (the trading desk's).
        self.routes: dict[str, Callable[[Session, str | bytes], None]] = {}

    # --- the outlet the exchange publishes to ---

    def subscribed(self, topic: str) -> bool:
        return bool(self.subscribers.get(topic))

    def publish(self, topic: str, texts: list[str], kind: str, on_sent: OnSent | None = None) -> None:
        for session in self.subscribers.get(topic, ()):
            for text in texts:
                session.send(text, kind, on_sent)

    # --- a connection ---

    async def handle(self, ws: ServerConnection) -> None:
        session = Session(ws, self.flowing, self.sent, self.max_backlog_bytes)
        self.sessions.add(session)
        self.connections_total += 1
        writer = asyncio.create_task(session.write(), name=f"writer-{session.conn_id}")
        target = urlsplit(ws.request.path) if ws.request else urlsplit("")
        session.path = path = target.path
        session.label = client_label(target.query)
        on_message = self.routes.get(path, self.on_message)
        LOG.info("%s connected (%s)", session.peer, session.conn_id)
        try:
            async for raw in ws:
                session.heard = asyncio.get_running_loop().time()
                on_message(session, raw)
        except ConnectionClosed:
            pass
        finally:
            if session.cut_off:
                self.slow_closed += 1
            self.sessions.discard(session)
            for topic in session.topics:
                self.subscribers.get(topic, set()).discard(session)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            LOG.info("%s disconnected (%s)", session.peer, session.conn_id)

    def on_message(self, session: Session, raw: str | bytes) -> None:
        try:
            request = decode(raw)
        except ValueError as exc:
            # Bybit answers undecodable input and keeps the socket open.
            session.send(reply("", session.conn_id, None, False, f"Failed to decode incoming data: {exc}"), "reply")
            return
        op, req_id, args = request.get("op"), request.get("req_id"), request.get("args")
        if op == "ping":
            session.send(reply("ping", session.conn_id, req_id, True, "pong"), "pong")
        elif op == "subscribe":
            self.subscribe(session, args, req_id)
        elif op == "unsubscribe":
            self.unsubscribe(session, args, req_id)
        else:
            session.send(reply(str(op or ""), session.conn_id, req_id, False, "error:invalid op"), "reply")

    def subscribe(self, session: Session, args: Any, req_id: Any, known: set[str] | None = None) -> None:
        topics = args if isinstance(args, list) and args and all(isinstance(a, str) for a in args) else None
        if topics is None:
            session.send(reply("subscribe", session.conn_id, req_id, False, "error:args must be a list of topics"),
                         "reply")
            return
        # One bad topic fails the whole request, and nothing in it is subscribed (as on Bybit).
        for topic in topics:
            problem = ("handler not found" if topic not in (self.topics if known is None else known)
                       else "already subscribed" if topic in session.topics or topics.count(topic) > 1 else None)
            if problem:
                session.send(reply("subscribe", session.conn_id, req_id, False, f"error:{problem},topic:{topic}"),
                             "reply")
                return
        session.send(reply("subscribe", session.conn_id, req_id), "reply")
        for topic in topics:
            snapshot = self.snapshot_for(topic)
            if snapshot is not None:
                session.send(snapshot, "book_snapshot")
            session.topics.add(topic)
            self.subscribers.setdefault(topic, set()).add(session)

    def unsubscribe(self, session: Session, args: Any, req_id: Any) -> None:
        topics = args if isinstance(args, list) and all(isinstance(a, str) for a in args) else []
        missing = [t for t in topics if t not in session.topics]
        if not topics or missing:
            topic = missing[0] if missing else ""
            session.send(reply("unsubscribe", session.conn_id, req_id, False, f"error:not subscribed,topic:{topic}"),
                         "reply")
            return
        for topic in topics:
            session.topics.discard(topic)
            self.subscribers.get(topic, set()).discard(session)
        session.send(reply("unsubscribe", session.conn_id, req_id), "reply")

    async def reap(self) -> None:
        """Cut connections whose client has sent nothing (not even a ping) for the idle timeout, or fell too far behind.

        Sending checks the backlog too; this catches what websockets writes itself, such as pongs to a ping flood.
        """
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.idle_timeout_s / 4))
            now = loop.time()
            for session in [s for s in self.sessions if now - s.heard > self.idle_timeout_s]:
                LOG.info("%s sent nothing for %gs: closed", session.peer, self.idle_timeout_s)
                self.idle_closed += 1
                session.abort()
            for session in [s for s in self.sessions if not s.cut_off and s.backlog > s.max_backlog_bytes]:
                session.cut()

    # --- faults ---

    def drop(self, path: str | None = None) -> int:
        """Abort every connection (or those on one WebSocket path); the count aborted."""
        sessions = [s for s in self.sessions if path is None or s.path == path]
        for session in sessions:
            session.abort()
        return len(sessions)

    def malformed(self) -> int:
        """Send every client an undecodable frame, a message on a topic nobody has, and a delta missing its fields."""
        stamp = now_ms()
        for session in self.sessions:
            books = sorted(t for t in session.topics if t.startswith("orderbook."))
            topic = books[0] if books else min(t for t in self.topics if t.startswith("orderbook.50."))
            symbol = topic.rsplit(".", 1)[-1]
            session.send('{"topic":"' + topic + '","type":"delta","ts":', "malformed")   # cut off mid-object
            unknown = {"topic": f"unknown.{symbol}", "type": "snapshot", "ts": stamp, "data": {}}
            session.send(dumps(unknown), "malformed")
            session.send(dumps({"topic": topic, "type": "delta", "ts": stamp, "data": {"s": symbol}}), "malformed")
        return len(self.sessions)

    def stall(self, seconds: float) -> None:
        """Nothing leaves for `seconds` (pongs included); what queues up meanwhile is sent afterwards."""
        if self._stall is not None:
            self._stall.cancel()
        self.flowing.clear()
        self._stall = asyncio.get_running_loop().call_later(seconds, self._unstall)

    def _unstall(self) -> None:
        self._stall = None
        self.flowing.set()

    @property
    def stalled(self) -> bool:
        return not self.flowing.is_set()
