"""One client connection: its subscriptions, and a queue drained by its own writer so one slow client stalls no one."""
from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

LOG = logging.getLogger("simulator")
MAX_BACKLOG = 100_000   # messages a client may fall behind before it is cut off


def new_conn_id() -> str:
    """Shaped like Bybit's conn_id ("cejreassvfrsfvb9v1a0-2m")."""
    return f"{secrets.token_hex(10)}-{secrets.token_hex(2)}"


class Session:
    def __init__(self, ws: ServerConnection, flowing: asyncio.Event, sent: Counter[str]) -> None:
        self.ws = ws
        self.conn_id = new_conn_id()
        self.topics: set[str] = set()
        self.heard = asyncio.get_running_loop().time()   # when the client last sent anything
        self._flowing = flowing
        self._sent = sent
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    @property
    def peer(self) -> str:
        address = self.ws.remote_address
        return f"{address[0]}:{address[1]}" if address else "?"

    def send(self, text: str, kind: str) -> None:
        if self._queue.qsize() >= MAX_BACKLOG:
            LOG.warning("%s fell %d messages behind: cut off", self.peer, MAX_BACKLOG)
            self.abort()
            return
        self._queue.put_nowait((kind, text))

    def abort(self) -> None:
        """Close the TCP connection without a close frame, as a network failure would."""
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    async def write(self) -> None:
        """Send queued messages in order; while the simulator is stalled, nothing at all leaves."""
        try:
            while True:
                kind, text = await self._queue.get()
                await self._flowing.wait()
                await self.ws.send(text)
                self._sent[kind] += 1
        except ConnectionClosed:
            pass
