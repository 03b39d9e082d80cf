"""Wires the simulator: the Bybit port (WebSocket and REST), the control port, the market loop, and shutdown."""
from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
import re
import signal
from collections.abc import Callable, Generator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

from market.model import spread_params

from . import rest
from .config import SimSettings
from .control import Control
from .exchange import Exchange
from .gateway import Gateway
from .trading import rest as signed
from .trading.desk import Desk
from .trading.matching import Ledger

LOG = logging.getLogger("simulator")
WS_PATH = "/v5/public/linear"
HEAD_END = b"\r\n\r\n"
CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*([0-9]{1,7})[ \t]*\r?$")
MAX_POST_BYTES = 1 << 20


def respond(status: int, body: Any) -> Response:
    """A complete HTTP response; websockets closes the connection after it (Connection: close)."""
    text = json.dumps(body, separators=(",", ":")) if not isinstance(body, str) else body
    payload = text.encode()
    kind = "text/plain; charset=utf-8" if isinstance(body, str) else "application/json"
    headers = Headers([("Connection", "close"), ("Content-Length", str(len(payload))), ("Content-Type", kind)])
    return Response(status, http.HTTPStatus(status).phrase, headers, payload)


class BybitConnection(ServerConnection):
    """websockets hangs up without a word on a request with a body, before process_request sees it: a POST's
    body (up to MAX_POST_BYTES) is taken out of the read buffer into `post_body`, where the signed POSTs read it."""

    def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
        self.post_body = bytearray()
        protocol.parser = _take_post_body(protocol.reader, protocol.parser, self.post_body)
        super().__init__(protocol, *args, **kwargs)


def _take_post_body(reader: StreamReader, parse: Generator[None], body: bytearray) -> Generator[None]:
    """Runs before websockets' own parser (resumed as data arrives): wait for the head, then for the body."""
    buffer = reader.buffer
    while (end := buffer.find(HEAD_END)) < 0 and not reader.eof and len(buffer) < MAX_POST_BYTES:
        yield
    found = CONTENT_LENGTH.search(buffer, 0, end) if end > 0 and buffer.startswith(b"POST ") else None
    if found and int(found[1]) <= MAX_POST_BYTES:
        while len(buffer) < end + 4 + int(found[1]) and not reader.eof:
            yield
        body += buffer[end + 4:end + 4 + int(found[1])]
        del buffer[end + 4:end + 4 + int(found[1])]
        buffer[found.start(1):found.end(1)] = b"0"
    yield from parse


class Simulator:
    """Both servers and the background loops, started by `start` and ended by `close`."""

    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.gateway = Gateway(settings.idle_timeout_s, settings.max_backlog_bytes)
        self.exchange = Exchange(settings.instruments, settings.prices, settings.seed, settings.rate,
                                 settings.trade_history, self.gateway, spread_params(settings.placement_ticks))
        self.gateway.topics = self.exchange.topics
        self.gateway.snapshot_for = self.exchange.snapshot_for
        ledger = Ledger({i.symbol: i for i in settings.instruments}, settings.maker_fee_bps / 1e4,
                        settings.taker_fee_bps / 1e4, settings.wallet_usdt)
        self.desk = Desk(ledger, settings.api_keys, self.gateway, self.exchange)
        self.gateway.routes = self.desk.routes
        self.exchange.trader = self.desk
        self.control = Control(self.exchange, self.gateway, self.desk)
        self._servers: list[Server] = []
        self.tasks: list[asyncio.Task[None]] = []   # the market loop and the reaper of idle and slow clients

    async def start(self) -> tuple[int, int]:
        """Listen on both ports and start the market; the ports actually bound (a configured 0 picks one)."""
        s = self.settings
        bybit = await serve(self.gateway.handle, s.host, s.port, process_request=self._bybit_http,
                            create_connection=BybitConnection,
                            ssl=s.tls_context(), ping_interval=None)   # Bybit sends no protocol pings
        control = await serve(self._never, s.bind_control, s.control_port, process_request=self._control_http)
        self._servers = [bybit, control]
        self.tasks = [asyncio.create_task(self.exchange.run(), name="market"),
                      asyncio.create_task(self.gateway.reap(), name="reaper")]
        return _port(bybit), _port(control)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for server in self._servers:
            server.close()   # open WebSockets get a 1001 close frame
        for server in self._servers:
            await server.wait_closed()

    def _bybit_http(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        # Header names upper-cased, a repeated header's last value kept: auth looks up X-BAPI-*.
        headers = {name.upper(): value for name, value in request.headers.raw_items()}
        if request.method == "POST":
            # 200 with a retCode, as Bybit answers: pybit then raises retMsg, not "status code is not 200".
            body = bytes(getattr(connection, "post_body", b""))
            return respond(200, signed.answer_post(self.desk, url.path, body, headers))
        if url.path == WS_PATH or url.path in self.desk.routes:
            return None   # the WebSocket handshake proceeds
        if request.method != "GET":
            return respond(405, f"{url.path} takes GET\n")
        account = signed.answer(self.desk.keys, self.desk.ledger, url.path, url.query, headers)
        if account is not None:
            return respond(200, account)
        query = dict(parse_qsl(url.query))
        if url.path == "/v5/market/instruments-info":
            return respond(200, rest.instruments(query, self.settings.instruments, self.exchange.launch_ms))
        if url.path == "/v5/market/time":
            return respond(200, rest.server_time())
        return respond(404, f"{url.path} is not simulated; see simulator/README.md\n")

    def _control_http(self, connection: ServerConnection, request: Request) -> Response:
        url = urlsplit(request.path)
        # Blank values kept: `?depth=` is a bad depth, not the default one.
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        status, body = self.control.handle(request.method, url.path, query)
        return respond(status, body)

    @staticmethod
    async def _never(ws: ServerConnection) -> None:
        """Unreachable: _control_http answers every request on the control port, upgrades included."""
        await ws.close(1008, "the control port speaks HTTP only")


def _port(server: Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def run(settings: SimSettings, announce: Callable[[str], None]) -> None:
    """Serve until SIGINT or SIGTERM; a failure of the market loop ends the process instead of leaving it mute."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    simulator = Simulator(settings)
    port, control_port = await simulator.start()
    scheme = "wss" if settings.tls_cert else "ws"
    web = "https" if settings.tls_cert else "http"
    announce(f"bybit {scheme}://{settings.host}:{port}{WS_PATH} rest {web}://{settings.host}:{port} "
             f"control http://{settings.bind_control}:{control_port} "
             f"symbols {','.join(settings.symbols)} rate {settings.rate:g}/s per symbol seed {settings.seed}")
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([stopping, *simulator.tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in simulator.tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()   # type: ignore[misc]
    finally:
        LOG.info("stopping")
        stopping.cancel()
        await simulator.close()
