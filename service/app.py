"""The web app: health, readiness, metrics, the REST and WebSocket API, and the live page; built by create_app()."""
# No `from __future__ import annotations`: FastAPI must see the route closures' real annotations.

import asyncio
import contextlib
import html
import json
import logging
import secrets
import time
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated

import anyio
from fastapi import Depends, FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from .config import Settings
from .events import EXCHANGES, Exchange, SourceKind, SourceState, SourceStatus
from .feed import Feed
from .hub import Hub, Subscriber, SubscriberClosed
from .metrics import Metrics
from .protocol import CloseCode, SnapshotMessage, StatusResponse, TradesResponse, unknown_symbol_reason
from .recorder import Recorder
from .server import INBOUND_MAX_BYTES, RELEASED, WIRE
from .sources import source_for
from .sources.base import Source
from .trading import ConnectorControl, ControlError, KillResponse, TradingResponse, trading_off, with_origin

CLOSE_TIMEOUT_S = 5.0
GOODBYE_DRAIN_S = 1.0   # of the final status, at shutdown; then once more for the close itself
MAX_DEPTH = 1000
MAX_TRADES = 10_000
KILL_NEEDS_TOKEN = ("the kill switch needs the service's API_TOKEN: set API_TOKEN and send it as "
                    "'Authorization: Bearer …' (without a token, anyone who reaches the port could stop the bot)")

log = logging.getLogger("hftlive.trading")


class Service:
    """What one app instance holds: settings, source, feed, hub and metrics."""

    def __init__(self, settings: Settings, source: Source) -> None:
        self.settings = settings
        self.source = source
        self.metrics = Metrics(source.kind, settings.symbols, {"connector": settings.connector_name},
                               exchange=source.exchange)
        self.hub = Hub(on_slow=self.metrics.on_slow, max_lag_s=settings.client_max_lag_s)
        self.recorder = None if settings.record_dir is None else Recorder(
            settings.record_dir, settings.instruments, settings.record_rotate_s,
            settings.record_rotate_events, on_error=self.metrics.record_errors.inc)
        self.feed = Feed(settings.instruments, source.kind, self.hub, self.metrics, settings.trade_history,
                         exchange=source.exchange, recorder=self.recorder)
        self.started = time.monotonic()
        self.streams = 0   # stream connections open (the clients gauge, readable)
        self.token = settings.api_token.get_secret_value() if settings.api_token is not None else None
        url = settings.connector_control_url
        self.control = ConnectorControl(url) if source.kind == "live" and url is not None else None
        self.trading_off = (
            "the mock source has no connector: trading needs DATA_SOURCE=hft_connector" if source.kind == "mock"
            else "CONNECTOR_CONTROL_URL is off: this service does not ask the connector about trading")

    def authorized(self, presented: str | None) -> bool:
        if self.token is None:
            return True
        return presented is not None and secrets.compare_digest(presented.encode(), self.token.encode())

    async def goodbye(self, drain_s: float = GOODBYE_DRAIN_S) -> None:
        """Before the server stops: every stream client gets the final `stopped` status, then SHUTDOWN.
        A client that cannot take its status within drain_s (a stalled reader) gets SHUTDOWN at once;
        returns when every stream has closed, or drain_s later (the server then drops what is left)."""
        self.feed.source_status(SourceStatus(SourceState.STOPPED, CloseCode.SHUTDOWN.reason))
        told = self.hub.close_all(drain=True)
        for last_call in (False, True):
            with contextlib.suppress(TimeoutError):
                with anyio.fail_after(drain_s):
                    while self.streams > 0:
                        await asyncio.sleep(0.02)
            if last_call or self.streams == 0:
                return
            for subscriber in told:
                subscriber.close(CloseCode.SHUTDOWN, CloseCode.SHUTDOWN.reason)   # cut: no more draining

    def symbol(self, name: str | None) -> str:
        symbol = (name or self.settings.symbols[0]).strip().upper()
        if symbol not in self.feed.symbols:
            served = ", ".join(self.settings.symbols)
            raise HTTPException(404, f"unknown symbol {_echo(symbol)}; this service serves {served}")
        return symbol


def create_app(settings: Settings, source: Source | None = None) -> FastAPI:
    """A new app serving `source` (by default the one the settings ask for)."""
    service = Service(settings, source if source is not None else source_for(settings))
    page = _page(settings, service.source.kind, service.source.exchange, trading=service.control is not None)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.source.start(service.feed)
        try:
            yield
        finally:
            service.hub.close_all()
            await asyncio.sleep(0)   # let stream handlers send their close frames
            await service.source.stop()
            if service.recorder is not None:   # the last partial files, written off the event loop
                await asyncio.to_thread(service.recorder.close)

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

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422, with what the client sent shortened as in a 404 (never a 100 KB echo)."""
        errors = [{**error, "input": _echo(str(error["input"]))} if "input" in error else error
                  for error in exc.errors()]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)
    bearer = HTTPBearer(auto_error=False, description="the service's API_TOKEN")

    async def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        presented = credentials.credentials if credentials is not None else None
        if not service.authorized(presented):
            raise HTTPException(401, CloseCode.UNAUTHORIZED.reason, headers={"WWW-Authenticate": "Bearer"})

    # Only a service with a token asks for one, so only its schema declares bearer auth and 401.
    guard = [Depends(require_token)] if service.token is not None else []
    refusals = {401: _UNAUTHORIZED} if service.token is not None else {}

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

    @app.get("/v1/status", tags=["market data"], dependencies=guard, responses=refusals)
    async def status() -> StatusResponse:
        feed = service.feed
        ready, _ = feed.readiness(settings.ready_max_age_s)
        return StatusResponse(
            source=service.source.kind, exchange=service.source.exchange, state=feed.state, detail=feed.detail,
            state_since_s=round(time.monotonic() - feed.state_since, 3), ready=ready,
            uptime_s=round(time.monotonic() - service.started, 3), clients=len(service.hub),
            source_info={**service.source.describe(),
                         **(service.recorder.describe() if service.recorder is not None else {})},
            symbols={s: feed.symbol_status(s) for s in feed.symbols},
        )

    @app.get("/v1/book", tags=["market data"], dependencies=guard,
             responses={**refusals, 404: _UNKNOWN_SYMBOL}, response_model=SnapshotMessage)
    async def book(
        symbol: Annotated[str | None, Query(description="default: the first configured symbol")] = None,
        depth: Annotated[int | None, Query(ge=1, le=MAX_DEPTH, description="levels per side; default all")] = None,
    ) -> dict:
        """The book at its current sequence number, in the stream's snapshot shape."""
        return service.feed.snapshot(service.symbol(symbol), depth)

    @app.get("/v1/trades", tags=["market data"], dependencies=guard,
             responses={**refusals, 404: _UNKNOWN_SYMBOL}, response_model=TradesResponse)
    async def trades(
        symbol: Annotated[str | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_TRADES)] = 100,
    ) -> dict:
        """The most recent trades, newest first (at most TRADE_HISTORY are kept)."""
        name = service.symbol(symbol)
        return {"source": service.source.kind, "exchange": service.source.exchange, "symbol": name,
                "seq": service.feed.symbols[name].book.seq, "trades": service.feed.trades(name, limit)}

    @app.get("/v1/trading", tags=["trading"], dependencies=guard, response_model=TradingResponse,
             response_model_exclude_unset=True, responses={**refusals, **_CONTROL_FAILED})
    async def trading() -> TradingResponse:
        """The bot's position, average price, realised P&L and open orders per symbol, from the connector's
        control API (CONNECTOR_CONTROL_URL), labelled with the exchange; `enabled: false` and a `reason` when
        the connector trades nothing, or this service does not ask it (the mock, or CONNECTOR_CONTROL_URL=off)."""
        kind, exchange = service.source.kind, service.source.exchange
        if service.control is None:
            return trading_off(kind, exchange, service.trading_off)
        try:
            return with_origin(await service.control.trading(), TradingResponse, kind, exchange)
        except ControlError as exc:
            raise HTTPException(exc.status, str(exc)) from None

    # A service without a token refuses the kill switch outright, so only a service with one declares bearer auth.
    @app.post("/v1/trading/kill", tags=["trading"], dependencies=guard, response_model=KillResponse,
              response_model_exclude_unset=True,
              responses={**(refusals or {403: _KILL_REFUSED}), 409: _TRADING_OFF, **_CONTROL_FAILED})
    async def kill(request: Request) -> KillResponse:
        """The kill switch: the connector cancels every open order and refuses new ones until it restarts.
        Needs the service's API_TOKEN as a bearer token, always: a service without one refuses (403)."""
        if service.token is None:
            raise HTTPException(403, KILL_NEEDS_TOKEN)
        if service.control is None:
            raise HTTPException(409, f"trading is off: {service.trading_off}")
        who = request.client.host if request.client is not None else "a client"
        log.warning("kill switch pulled by %s: POST /kill to %s", who, service.control.url)
        try:
            # Shielded: once pulled, the kill goes through even if the asking client hangs up.
            answer = with_origin(await asyncio.shield(service.control.kill()), KillResponse, service.source.kind,
                                 service.source.exchange)
        except ControlError as exc:
            log.error("kill switch: %s", exc)
            raise HTTPException(exc.status, str(exc)) from None
        log.warning("kill switch: the connector says killed=%s after %d cancel requests",
                    answer.killed, answer.cancel_requests)
        return answer

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
        await websocket.close(CloseCode.UNAUTHORIZED, CloseCode.UNAUTHORIZED.reason)
        return
    wanted = websocket.query_params.get("symbols") or websocket.query_params.get("symbol")
    symbols = [s.strip().upper() for s in wanted.split(",") if s.strip()] if wanted else list(service.feed.symbols)
    unknown = [s for s in symbols if s not in service.feed.symbols]
    await websocket.accept()
    if unknown or not symbols:
        await websocket.close(CloseCode.UNKNOWN_SYMBOL, unknown_symbol_reason(unknown, service.feed.symbols))
        return
    subscriber = service.feed.subscribe(symbols, service.settings.client_buffer)
    service.metrics.clients.inc()
    service.streams += 1
    try:
        await _serve_subscriber(service, websocket, subscriber)
    finally:
        service.hub.unsubscribe(subscriber)
        # The gauge counts connections, so it drops when the TCP connection is gone, not before.
        released = websocket.scope.get("state", {}).get(RELEASED)
        if released is not None:
            with contextlib.suppress(Exception):
                with anyio.fail_after(CLOSE_TIMEOUT_S + 1):
                    await asyncio.shield(released)
        service.streams -= 1
        service.metrics.clients.dec()


async def _serve_subscriber(service: Service, websocket: WebSocket, subscriber: Subscriber) -> None:
    gone: dict = {}
    async with anyio.create_task_group() as group:
        async def first_to_finish(part) -> None:
            await part()
            group.cancel_scope.cancel()

        async def listen() -> None:
            gone.update(await _listen(websocket))

        group.start_soon(first_to_finish, lambda: _pump(websocket, subscriber, service.metrics))
        group.start_soon(first_to_finish, listen)
        group.start_soon(first_to_finish, subscriber.wait_cut)
    if gone:
        if gone.get("code") == CloseCode.SLOW_CONSUMER:   # the connection stopped acknowledging in time
            service.hub.cut_slow(subscriber)
        return
    # Cut off by the hub (slow consumer, shutdown), or the send failed. The close frame goes out
    # without waiting for a full socket to drain; the server drops a peer that does not answer it.
    code, reason = ((subscriber.code, subscriber.reason) if subscriber.closed
                    else (CloseCode.INTERNAL_ERROR, CloseCode.INTERNAL_ERROR.reason))
    with contextlib.suppress(Exception):
        with anyio.fail_after(CLOSE_TIMEOUT_S):
            await websocket.close(code, reason)


async def _pump(websocket: WebSocket, subscriber: Subscriber, metrics: Metrics) -> None:
    """Sends the subscriber's messages: on our server, every frame queued in one write once the socket takes
    more; elsewhere (an ASGI test client) one send_text per message."""
    count, delay = metrics.events_out, metrics.send_delay
    wire = websocket.scope.get("state", {}).get(WIRE)
    try:
        if wire is None:
            while True:
                await websocket.send_text(await subscriber.get())
                count.inc()
        while True:
            await wire.writable.wait()
            queued, frames = await subscriber.take()
            if not wire.write_frames(b"".join(frames)):
                return
            delay.observe(time.monotonic() - queued)
            count.inc(len(frames))
    except SubscriberClosed:
        return
    except Exception:  # the connection broke mid-send: the handler closes up
        return


async def _listen(websocket: WebSocket) -> dict:
    """Reads (and ignores) what the client sends, to notice when it goes away; returns the disconnect."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return {"code": message.get("code"), "reason": message.get("reason", "")}
    except Exception:  # a broken connection counts as gone
        return {"code": None}


def _page(settings: Settings, kind: SourceKind, exchange: Exchange | None, trading: bool) -> str:
    # Outside static/: the raw template, placeholders and all, must never be served as a file.
    template = resources.files("service").joinpath("templates/index.html").read_text(encoding="utf-8")
    config = {"source": kind, "exchange": exchange, "symbols": list(settings.symbols),
              "auth": settings.api_token is not None,
              "trading": trading,   # the page polls /v1/trading only when the service asks a connector
              "close_codes": {code.name: code.value for code in CloseCode}}   # app.js has no copy
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
takes the next `seq`; a gap means the client must resynchronise (reconnect). Close codes: **{slow:d}**
slow consumer (the client fell more than CLIENT_BUFFER messages or CLIENT_MAX_LAG_S seconds behind),
**{unknown:d}** unknown symbol, **{shutdown:d}** service shutting down (after a final `stopped` status), **{big:d}** a
client message over {inbound_kib:g} KiB (the stream reads nothing); a missing or wrong token rejects the handshake
(HTTP 403).
""".format(exchanges=", ".join(f"`{name}`" for name in EXCHANGES), slow=CloseCode.SLOW_CONSUMER,
           unknown=CloseCode.UNKNOWN_SYMBOL, shutdown=CloseCode.SHUTDOWN, big=CloseCode.MESSAGE_TOO_BIG,
           inbound_kib=INBOUND_MAX_BYTES / 1024)


ECHO_CHARS = 32   # of a client's unknown symbol, in an error: enough to recognise it, never a 100 KB echo


def _echo(text: str) -> str:
    """What a client sent, quoted for an error message: its first ECHO_CHARS characters, printable ASCII only."""
    shown = "".join(c if " " <= c <= "~" else "?" for c in text[:ECHO_CHARS])
    return repr(shown + ("…" if len(text) > ECHO_CHARS else ""))


def _error_body(detail: str) -> dict:
    """The schema of every error body this API raises itself: FastAPI's {"detail": "..."}."""
    return {"application/json": {"schema": {
        "title": "Error", "type": "object", "required": ["detail"],
        "properties": {"detail": {"title": "Detail", "type": "string", "description": detail}},
    }}}


_UNAUTHORIZED = {
    "description": "Missing or wrong bearer token",
    "headers": {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    "content": _error_body(CloseCode.UNAUTHORIZED.reason),
}
_KILL_REFUSED = {"description": "The service has no API_TOKEN: the kill switch is never open to anyone",
                 "content": _error_body(KILL_NEEDS_TOKEN)}
_TRADING_OFF = {"description": "Trading is off (the mock source, or CONNECTOR_CONTROL_URL=off)",
                "content": _error_body("why")}
_CONTROL_FAILED = {
    502: {"description": "The connector's control API answered, but not as agreed",
          "content": _error_body("what it answered, in one line")},
    503: {"description": "The connector's control API is unreachable or did not answer in time",
          "content": _error_body("why, in one line")},
}
_UNKNOWN_SYMBOL = {
    "description": "Unknown symbol",
    "content": _error_body(f"the symbol asked for (its first {ECHO_CHARS} characters, printable ASCII only) "
                           "and the symbols this service serves"),
}
