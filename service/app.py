"""The web app: health, readiness, metrics, the REST and WebSocket API, and the live page; built by create_app()."""
# No `from __future__ import annotations`: FastAPI must see the route closures' real annotations.

import asyncio
import contextlib
import html
import json
import secrets
import time
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated

import anyio
from fastapi import Depends, FastAPI, HTTPException, Query, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from .config import Settings
from .events import EXCHANGES, Exchange, SnapshotMessage, StatusResponse, TradesResponse
from .feed import Feed
from .hub import Hub, Subscriber, SubscriberClosed
from .metrics import Metrics
from .sources import source_for
from .sources.base import Source

UNKNOWN_SYMBOL_CODE = 4404
UNAUTHORIZED_CODE = 1008   # before the handshake completes: the client sees HTTP 403
CLOSE_TIMEOUT_S = 5.0
MAX_DEPTH = 1000
MAX_TRADES = 10_000


class Service:
    """What one app instance holds: settings, source, feed, hub and metrics."""

    def __init__(self, settings: Settings, source: Source) -> None:
        self.settings = settings
        self.source = source
        self.metrics = Metrics(source.kind, settings.symbols, {"connector": settings.connector_name},
                               exchange=source.exchange)
        self.hub = Hub(on_slow=self.metrics.on_slow)
        self.feed = Feed(settings.instruments, source.kind, self.hub, self.metrics, settings.trade_history,
                         exchange=source.exchange)
        self.started = time.monotonic()
        self.loop: asyncio.AbstractEventLoop | None = None   # the loop serving this app, once started
        self.token = settings.api_token.get_secret_value() if settings.api_token is not None else None

    def authorized(self, presented: str | None) -> bool:
        if self.token is None:
            return True
        return presented is not None and secrets.compare_digest(presented.encode(), self.token.encode())

    def symbol(self, name: str | None) -> str:
        symbol = (name or self.settings.symbols[0]).strip().upper()
        if symbol not in self.feed.symbols:
            served = ", ".join(self.settings.symbols)
            raise HTTPException(404, f"unknown symbol {symbol!r}; this service serves {served}")
        return symbol


def create_app(settings: Settings, source: Source | None = None) -> FastAPI:
    """A new app serving `source` (by default the one the settings ask for)."""
    service = Service(settings, source if source is not None else source_for(settings))
    page = _page(settings, service.source.kind, service.source.exchange)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.loop = asyncio.get_running_loop()
        await service.source.start(service.feed)
        try:
            yield
        finally:
            service.hub.close_all()
            await asyncio.sleep(0)   # let stream handlers send their close frames
            await service.source.stop()

    app = FastAPI(
        title="hftlive connector service",
        summary=f"Market data from {'hftbacktest live' if service.source.kind == 'live' else 'a MOCK market model'}",
        description=_API_DESCRIPTION,
        lifespan=lifespan,
        # The interactive docs pages load their scripts from a CDN; the schema itself is served.
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    bearer = HTTPBearer(auto_error=False, description="API_TOKEN, when the service has one")

    async def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        presented = credentials.credentials if credentials is not None else None
        if not service.authorized(presented):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict:
        """The process is alive (says nothing about data)."""
        return {"status": "alive", "source": service.source.kind, "exchange": service.source.exchange}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "not ready; `reason` says why"}})
    async def readyz() -> JSONResponse:
        """200 when the source is connected and every symbol's data is fresher than READY_MAX_AGE_S."""
        ready, reason = service.feed.readiness(settings.ready_max_age_s)
        return JSONResponse({"ready": ready, "reason": reason, "source": service.source.kind,
                             "exchange": service.source.exchange}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus text format."""
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    @app.get("/v1/status", tags=["market data"], dependencies=[Depends(require_token)])
    async def status() -> StatusResponse:
        feed = service.feed
        ready, _ = feed.readiness(settings.ready_max_age_s)
        return StatusResponse(
            source=service.source.kind, exchange=service.source.exchange, state=feed.state, detail=feed.detail,
            state_since_s=round(time.monotonic() - feed.state_since, 3), ready=ready,
            uptime_s=round(time.monotonic() - service.started, 3), clients=len(service.hub),
            source_info=service.source.describe(),
            symbols={s: feed.symbol_status(s) for s in feed.symbols},
        )

    @app.get("/v1/book", tags=["market data"], dependencies=[Depends(require_token)],
             response_model=SnapshotMessage)
    async def book(
        symbol: Annotated[str | None, Query(description="default: the first configured symbol")] = None,
        depth: Annotated[int | None, Query(ge=1, le=MAX_DEPTH, description="levels per side; default all")] = None,
    ) -> dict:
        """The book at its current sequence number, in the stream's snapshot shape."""
        return service.feed.snapshot(service.symbol(symbol), depth)

    @app.get("/v1/trades", tags=["market data"], dependencies=[Depends(require_token)],
             response_model=TradesResponse)
    async def trades(
        symbol: Annotated[str | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_TRADES)] = 100,
    ) -> dict:
        """The most recent trades, newest first (at most TRADE_HISTORY are kept)."""
        name = service.symbol(symbol)
        return {"source": service.source.kind, "exchange": service.source.exchange, "symbol": name,
                "seq": service.feed.symbols[name].book.seq, "trades": service.feed.trades(name, limit)}

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket) -> None:
        await _stream(service, websocket)

    app.mount("/static", StaticFiles(packages=[("service", "static")]), name="static")
    return app


def _presented_token(websocket: WebSocket) -> str | None:
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return websocket.query_params.get("token")   # browsers cannot set headers on a WebSocket


async def _stream(service: Service, websocket: WebSocket) -> None:
    if not service.authorized(_presented_token(websocket)):
        await websocket.close(code=UNAUTHORIZED_CODE, reason="missing or wrong bearer token")
        return
    wanted = websocket.query_params.get("symbols") or websocket.query_params.get("symbol")
    symbols = [s.strip().upper() for s in wanted.split(",") if s.strip()] if wanted else list(service.feed.symbols)
    unknown = [s for s in symbols if s not in service.feed.symbols]
    await websocket.accept()
    if unknown or not symbols:
        reason = f"unknown symbol {','.join(unknown)[:40]}; served: {','.join(service.feed.symbols)[:60]}"
        await websocket.close(code=UNKNOWN_SYMBOL_CODE, reason=reason[:120])
        return
    subscriber = service.feed.subscribe(symbols, service.settings.client_buffer)
    service.metrics.clients.inc()
    client_gone = False
    try:
        async with anyio.create_task_group() as group:
            async def first_to_finish(part) -> None:
                await part()
                group.cancel_scope.cancel()

            async def listen() -> None:
                nonlocal client_gone
                await _listen(websocket)
                client_gone = True

            group.start_soon(first_to_finish, lambda: _pump(websocket, subscriber, service.metrics))
            group.start_soon(first_to_finish, listen)
            group.start_soon(first_to_finish, subscriber.wait_closed)
    finally:
        service.hub.unsubscribe(subscriber)
        service.metrics.clients.dec()
    if client_gone:
        return
    # Cut off by the hub (slow consumer, shutdown), or the send failed. A slow client's socket may
    # be full: give the close frame a while, then let the server drop the connection.
    code, reason = (subscriber.code, subscriber.reason) if subscriber.closed else (1011, "stream ended")
    with contextlib.suppress(Exception):
        with anyio.fail_after(CLOSE_TIMEOUT_S):
            await websocket.close(code, reason)


async def _pump(websocket: WebSocket, subscriber: Subscriber, metrics: Metrics) -> None:
    count = metrics.events_out
    try:
        while True:
            text = await subscriber.get()
            await websocket.send_text(text)
            count.inc()
    except SubscriberClosed:
        return
    except Exception:  # the connection broke mid-send: the handler closes up
        return


async def _listen(websocket: WebSocket) -> None:
    """Reads (and ignores) what the client sends, to notice when it goes away."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except Exception:  # a broken connection counts as gone
        return


def _page(settings: Settings, kind: str, exchange: Exchange | None) -> str:
    template = resources.files("service").joinpath("static/index.html").read_text(encoding="utf-8")
    config = {"source": kind, "exchange": exchange, "symbols": list(settings.symbols),
              "auth": settings.api_token is not None}
    label = ("LIVE" if kind == "live" else "MOCK") + (f" · {exchange}" if exchange else "")
    explain = (f"live market data from {exchange or 'the exchange'} through hftbacktest's bot via connector "
               f"{settings.connector_name}"
               if kind == "live" else "MOCK data from a simulated market model: not a real exchange")
    return (template
            .replace("{{SOURCE_KIND}}", kind)
            .replace("{{EXCHANGE}}", html.escape(exchange or ""))
            .replace("{{SOURCE_LABEL}}", html.escape(label))
            .replace("{{SOURCE_EXPLAIN}}", html.escape(explain))
            .replace("{{CONFIG_JSON}}", json.dumps(config).replace("</", "<\\/")))


_API_DESCRIPTION = """
Order books and trades from hftbacktest's live bot (`source: live`) or from a mock market model
(`source: mock`); every payload says which, and which exchange feeds the live bot (`exchange`:
{exchanges}; null for the mock).

**Stream** `WS /v1/stream?symbols=BTCUSDT[,ETHUSDT][&token=…]`: first a `snapshot` per symbol, then
a `status`, then `delta` and `trade` messages. Per symbol, every delta, trade and mid-stream snapshot
takes the next `seq`; a gap means the client must resynchronise (reconnect). Close codes: **4008**
slow consumer (the client fell more than CLIENT_BUFFER messages behind), **4404** unknown symbol,
**1001** service shutting down; a missing or wrong token rejects the handshake (HTTP 403).
""".format(exchanges=", ".join(f"`{name}`" for name in EXCHANGES))
