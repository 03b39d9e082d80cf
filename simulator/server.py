"""Wires the simulator: the Bybit port (WebSocket and REST), the control port, the market loop, and shutdown."""
from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
import signal
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from . import rest
from .config import SimSettings
from .control import Control
from .exchange import Exchange
from .gateway import Gateway
from .trading.desk import Desk
from .trading.matching import Ledger

LOG = logging.getLogger("simulator")
WS_PATH = "/v5/public/linear"


def respond(status: int, body: Any) -> Response:
    """A complete HTTP response; websockets closes the connection after it (Connection: close)."""
    text = json.dumps(body, separators=(",", ":")) if not isinstance(body, str) else body
    payload = text.encode()
    kind = "text/plain; charset=utf-8" if isinstance(body, str) else "application/json"
    headers = Headers([("Connection", "close"), ("Content-Length", str(len(payload))), ("Content-Type", kind)])
    return Response(status, http.HTTPStatus(status).phrase, headers, payload)


class Simulator:
    """Both servers and the background loops, started by `start` and ended by `close`."""

    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.gateway = Gateway(settings.idle_timeout_s, settings.max_backlog_bytes)
        self.exchange = Exchange(settings.instruments, settings.prices, settings.seed, settings.rate,
                                 settings.trade_history, self.gateway)
        self.gateway.topics = self.exchange.topics
        self.gateway.snapshot_for = self.exchange.snapshot_for
        ledger = Ledger({i.symbol: i for i in settings.instruments}, settings.maker_fee_bps / 1e4,
                        settings.taker_fee_bps / 1e4, settings.wallet_usdt)
        self.desk = Desk(ledger, settings.api_keys, self.gateway, self.exchange)
        self.gateway.routes = self.desk.routes
        self.exchange.trader = self.desk
        self.control = Control(self.exchange, self.gateway, ledger)
        self._servers: list[Server] = []
        self.tasks: list[asyncio.Task[None]] = []   # the market loop and the reaper of idle and slow clients

    async def start(self) -> tuple[int, int]:
        """Listen on both ports and start the market; the ports actually bound (a configured 0 picks one)."""
        s = self.settings
        bybit = await serve(self.gateway.handle, s.host, s.port, process_request=self._bybit_http,
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
        if url.path == WS_PATH or url.path in self.desk.routes:
            return None   # the WebSocket handshake proceeds
        if request.method != "GET":
            return respond(405, f"{url.path} takes GET\n")
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
