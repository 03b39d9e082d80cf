"""One client connection: its subscriptions, and a queue drained by its own writer so one slow client stalls no one."""
from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .config import MAX_BACKLOG_BYTES

LOG = logging.getLogger("simulator")
HELD_PER_MESSAGE = 128   # bytes a waiting message costs beyond its text: the str's header, a tuple, a queue slot
# Told, once a message is written, the wall-clock ns its write began and the client's label (or None).
OnSent = Callable[[int, "str | None"], None]
LABEL = re.compile(r"[A-Za-z0-9_.-]{1,32}")   # a client may name itself in its URL: ?client=NAME


def new_conn_id() -> str:
    """Shaped like Bybit's conn_id ("cejreassvfrsfvb9v1a0-2m")."""
    return f"{secrets.token_hex(10)}-{secrets.token_hex(2)}"


class Session:
    def __init__(self, ws: ServerConnection, flowing: asyncio.Event, sent: Counter[str],
                 max_backlog_bytes: int = MAX_BACKLOG_BYTES) -> None:
        self.ws = ws
        self.conn_id = new_conn_id()
        self.topics: set[str] = set()
        self.authed = False   # on /v5/private and /v5/trade: after a good `op: auth`
        self.path = ""        # the WebSocket path it connected to, set by the gateway
        self.label: str | None = None   # the client's own name (?client=NAME), set by the gateway: its send times
        self.heard = asyncio.get_running_loop().time()   # when the client last sent anything
        self.max_backlog_bytes = max_backlog_bytes
        self.cut_off = False                             # for falling too far behind
        self._flowing = flowing
        self._sent = sent
        self._queue: asyncio.Queue[tuple[str, str, OnSent | None]] = asyncio.Queue()
        self._held = 0   # bytes of the messages queued or being sent (dumps writes ASCII: characters are bytes)

    @property
    def peer(self) -> str:
        address = self.ws.remote_address
        return f"{address[0]}:{address[1]}" if address else "?"

    @property
    def backlog(self) -> int:
        """Bytes held for this client: its messages, and the transport's buffer (websockets writes pongs there too)."""
        transport = self.ws.transport
        return self._held + (transport.get_write_buffer_size() if transport is not None else 0)

    def send(self, text: str, kind: str, on_sent: OnSent | None = None) -> None:
        """Queue `text`; `on_sent`, if given, is told when its write began (time.time_ns()) once it returned."""
        if self.cut_off:
            return
        if self.backlog + len(text) + HELD_PER_MESSAGE > self.max_backlog_bytes:
            self.cut()
            return
        self._queue.put_nowait((kind, text, on_sent))
        self._held += len(text) + HELD_PER_MESSAGE

    def cut(self) -> None:
        """A client too far behind: drop the connection and everything waiting for it, now."""
        LOG.warning("%s fell over %d bytes behind (SIM_MAX_BACKLOG_BYTES): cut off", self.peer, self.max_backlog_bytes)
        self.cut_off = True
        self.abort()   # no close frame: it would only queue behind what the client is not reading
        while not self._queue.empty():
            self._queue.get_nowait()
        self._held = 0

    def abort(self) -> None:
        """Close the TCP connection without a close frame, as a network failure would."""
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    async def write(self) -> None:
        """Send queued messages in order; while the simulator is stalled, nothing at all leaves."""
        try:
            while True:
                kind, text, on_sent = await self._queue.get()
                await self._flowing.wait()
                began = time.time_ns()   # not after: the reader it wakes can run (and receive) before we resume
                await self.ws.send(text)   # held until sent: the transport has its bytes, but this is its text
                if on_sent is not None:
                    on_sent(began, self.label)
                self._held -= len(text) + HELD_PER_MESSAGE
                self._sent[kind] += 1
        except ConnectionClosed:
            pass
