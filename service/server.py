"""How the service listens: uvicorn, with deadlines for HTTP requests, a stream that reads little and cuts
stale readers, and a shutdown that gives stream clients the final status and 1001."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.protocol import State

from .protocol import CloseCode, fit_reason

log = logging.getLogger("hftlive.server")

# The stream reads nothing a client sends (it only notices the client going away): a message larger
# than this closes the connection with 1009, and nothing is compressed, so nothing can inflate.
INBOUND_MAX_BYTES = 4096
MAX_REQUEST_HEAD = 16 * 1024   # request line and headers: more is refused with 431, unparsed and unlogged
RELEASED = "hftlive.released"   # scope["state"] key: a future done once the stream's TCP connection is gone
WIRE = "hftlive.wire"           # scope["state"] key: the StreamProtocol, for write_frames() and writable


class RequestDeadline(H11Protocol):
    """h11 where every request must arrive whole within `request_timeout_s` of the connection opening
    (or of the previous response), and a response must not sit unread that long: an idle, half-sent
    or never-reading connection is dropped, not held."""

    request_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._refused = False
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return   # the rest of a refused request: read and dropped, so the 431 is not lost to a reset
        if self.conn.their_state is h11.IDLE:   # h11 limits only a head that arrives in pieces
            self._head_bytes += len(data)
            if self._head_bytes > MAX_REQUEST_HEAD:
                self._refuse_head()
                return
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._head_bytes = 0
        if self.transport.get_protocol() is not self:
            self._disarm()   # the connection became a WebSocket

    def _refuse_head(self) -> None:
        log.warning("%s: a request line and headers over %d bytes; refused (431)", self.client, MAX_REQUEST_HEAD)
        body = f"request line and headers over {MAX_REQUEST_HEAD} bytes\n".encode()
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n"
                             b"content-type: text/plain; charset=utf-8\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(body), body))
        self._disarm()
        self._refused = True
        # Closing with the client's bytes unread would send a reset, which can discard the 431 before
        # the client reads it: end our side, drop what still comes, close a moment later.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(1.0, self.transport.close)
        self.loop.call_later(self.request_timeout_s, self.transport.abort)   # if it never reads the 431

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()   # keep-alive: the next request (and its response) has the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout_s, self._expired)

    def _disarm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.get_protocol() is not self:
            return   # a WebSocket now: its own protocol bounds it
        answering = (self.cycle is not None and not self.cycle.response_complete
                     and self.conn.their_state is h11.DONE)
        if answering and not self.flow.write_paused and not self.transport.is_closing():
            self._arm()   # the request is in and the app is still answering: look again later
            return
        # Nothing (or half a request) arrived, or the client has not read what it was sent: a plain
        # close would wait for a reader that never comes.
        log.debug("%s: no whole request, or an unread response, for %gs; dropping it",
                  self.client, self.request_timeout_s)
        self.transport.abort()


class StreamProtocol(WebSocketsSansIOProtocol):
    """WebSockets where a close never waits behind a full socket, and a peer that stops acknowledging
    (no pong within the ping timeout: it has not read what was sent before the ping) is a slow
    consumer: it gets 4008, and its connection is dropped if it does not answer within `close_grace_s`."""

    close_grace_s = 5.0

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:   # the handshake went on to the app
            self.released: asyncio.Future[None] = self.loop.create_future()
            scope["state"][RELEASED] = self.released
            scope["state"][WIRE] = self

    def write_frames(self, frames: bytes) -> bool:
        """Frames the hub built (hub.text_frame), written as they are, many in one write: the stream's data
        path, below ASGI, which would encode and write each message for each client. False, and nothing
        written, once the connection is closing. The caller waits for `writable` first (flow control)."""
        if self.close_sent or self.disconnected or self.transport.is_closing():
            return False
        self.transport.write(frames)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        released = getattr(self, "released", None)
        if released is not None and not released.done():
            released.set_result(None)

    async def send(self, message: Any) -> None:
        if (message["type"] == "websocket.close" and self.handshake_complete and self.initial_response is None
                and not self.close_sent and not self.disconnected):
            code, reason = message.get("code", CloseCode.NORMAL), fit_reason(message.get("reason") or "")
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
            self._close(code, reason)
            return
        await super().send(message)

    def keepalive_timeout(self) -> None:
        self.pong_timer = None
        self.pending_ping_payload = None
        if self.close_sent or self.transport.is_closing():
            return
        log.debug("%s: no pong within %gs: a slow consumer", self.client, self.ping_timeout)
        self.queue.put_nowait({"type": "websocket.disconnect", "code": CloseCode.SLOW_CONSUMER,
                               "reason": CloseCode.SLOW_CONSUMER.reason})
        self._close(CloseCode.SLOW_CONSUMER, CloseCode.SLOW_CONSUMER.reason)

    # Closes the peer starts, or a protocol error (1009, bad UTF-8): uvicorn answers and closes,
    # and a plain close waits for a full socket to drain; drop the connection if it has not.
    def handle_close(self, event: Any) -> None:
        super().handle_close(event)
        self._drop_later()

    def handle_parser_exception(self) -> None:
        super().handle_parser_exception()
        self._drop_later()

    def _drop_later(self) -> None:
        if not self.disconnected and self.close_timer is None:
            self.close_timer = self.loop.call_later(self.close_grace_s, self.transport.abort)

    def shutdown(self) -> None:
        if self.close_sent or self.transport.is_closing() or self.conn.state is not State.OPEN:
            self.transport.abort()   # told already (or closing) and not gone: release it
        elif self.handshake_complete and self.initial_response is None:
            self.queue.put_nowait({"type": "websocket.disconnect", "code": CloseCode.SHUTDOWN})
            self._close(CloseCode.SHUTDOWN, CloseCode.SHUTDOWN.reason)
        else:
            super().shutdown()

    def _close(self, code: int, reason: str) -> None:
        """The close frame goes out behind what is queued, without waiting; the connection is dropped
        if the peer has not answered it within close_grace_s."""
        self.stop_keepalive()
        try:
            self.conn.send_close(code, reason)
        except InvalidState:   # the peer's close crossed ours: nothing more to say
            self.close_sent = True
            self._drop_later()
            return
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:   # read on, to see the peer's answer
            self.read_paused = False
            self.transport.resume_reading()
        if self.close_timer is not None:
            self.close_timer.cancel()
        self.close_timer = self.loop.call_later(self.close_grace_s, self.transport.abort)


class Server(uvicorn.Server):
    """uvicorn's server, whose shutdown first tells stream clients (final status, then 1001)."""

    def __init__(self, config: uvicorn.Config, goodbye: Any = None) -> None:
        super().__init__(config)
        self._goodbye = goodbye

    async def shutdown(self, sockets: Any = None) -> None:
        for server in self.servers:
            server.close()   # no new clients while the present ones are told
        if self._goodbye is not None:
            try:
                await self._goodbye()
            except Exception:   # a failed goodbye must not stop the shutdown
                log.exception("telling stream clients about the shutdown failed")
        await super().shutdown(sockets)


def build_server(app: Any, host: str, port: int, log_level: str, *, max_lag_s: float,
                 request_timeout_s: float, goodbye: Any = None) -> Server:
    """The server for `app`: stream readers more than about max_lag_s behind are cut with 4008."""
    http = type("RequestDeadline", (RequestDeadline,), {"request_timeout_s": request_timeout_s})
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, http=http, ws=StreamProtocol,
        ws_max_size=INBOUND_MAX_BYTES, ws_per_message_deflate=False,
        # A ping goes out behind the data sent so far; its pong says the client has read up to there.
        ws_ping_interval=max_lag_s / 2, ws_ping_timeout=max_lag_s / 2,
        timeout_graceful_shutdown=StreamProtocol.close_grace_s + 1)
    return Server(config, goodbye)
