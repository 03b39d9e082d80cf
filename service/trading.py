"""The bot's trading state from the connector's control API (GET /trading, POST /kill), over plain HTTP/1.1.

The client is h11 (uvicorn's HTTP parser, pinned in requirements.txt) on an asyncio socket: the service
needs two requests to one host on the compose network, not an HTTP library."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from typing import Any, Literal
from urllib.parse import urlsplit

import h11
from pydantic import BaseModel, ConfigDict, ValidationError

from .events import Exchange, SourceKind

READ_TIMEOUT_S = 2.0    # GET /trading: the page asks every second; a slower answer is an outage
KILL_TIMEOUT_S = 5.0    # POST /kill: the connector answers once it has sent its cancels
MAX_ANSWER_BYTES = 1 << 20
REASON_CHARS = 200      # of a connector's error body, in a reason


class ControlError(Exception):
    """The connector's control API could not be used; str() is one line, and `status` the HTTP status to answer."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status


class HungUp(Exception):
    """The connector closed the connection before any answer."""


# --- the connector's answers (extra keys pass through: the connector may say more than this service reads) ---

class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class OpenOrder(_Answer):
    order_id: int
    link_id: str
    side: Literal["Buy", "Sell"]
    price: float
    qty: float
    leaves_qty: float
    status: str


class SymbolTrading(_Answer):
    position: float
    avg_price: float | None = None
    realised_pnl: float
    fills: int
    open_orders: list[OpenOrder] = []


class Limits(_Answer):
    max_order_qty: float
    max_position: float
    max_open_orders: int
    max_orders_per_s: float


class TradingResponse(_Answer):
    """GET /v1/trading: the connector's GET /trading, with the service's source and exchange; or trading off."""

    source: SourceKind
    exchange: Exchange | None
    enabled: bool
    reason: str | None = None
    exchange_url: str | None = None
    killed: bool = False
    reconciled: bool = False
    symbols: dict[str, SymbolTrading] = {}
    limits: Limits | None = None


class KillResponse(_Answer):
    """POST /v1/trading/kill: the connector's POST /kill answer, with the service's source and exchange."""

    source: SourceKind
    exchange: Exchange | None
    killed: bool
    cancel_requests: int


class ConnectorControl:
    """The control API at `url` (http://host:port[/prefix]); one GET /trading in flight, however many ask."""

    def __init__(self, url: str, read_timeout_s: float = READ_TIMEOUT_S,
                 kill_timeout_s: float = KILL_TIMEOUT_S) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or ""
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.read_timeout_s = read_timeout_s
        self.kill_timeout_s = kill_timeout_s
        self._reading: asyncio.Future[dict] | None = None

    async def trading(self) -> dict:
        """The connector's GET /trading (a JSON object), shared by every caller while one is in flight."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self.call("GET", "/trading", self.read_timeout_s))
            self._reading.add_done_callback(_retrieve)
        return await asyncio.shield(self._reading)

    async def kill(self) -> dict:
        return await self.call("POST", "/kill", self.kill_timeout_s)

    async def call(self, method: str, path: str, timeout_s: float) -> dict:
        """One request on a fresh connection; its JSON object answer, or a ControlError."""
        where = f"the connector's control API at {self.url}"
        try:
            async with asyncio.timeout(timeout_s):
                status, body = await self._exchange(method, path)
        except TimeoutError:
            raise ControlError(f"{where} did not answer {method} {path} within {timeout_s:g} s", 503) from None
        except socket.gaierror:
            raise ControlError(f"{where} is unreachable: cannot resolve {self.host!r}", 503) from None
        except OSError as exc:
            # asyncio's connect errors carry the address in strerror; the errno's own words are the reason.
            reason = os.strerror(exc.errno).lower() if exc.errno else " ".join(str(exc).split())[:REASON_CHARS]
            reason = reason or type(exc).__name__
            raise ControlError(f"{where} is unreachable: {reason}", 503) from None
        except HungUp:
            raise ControlError(f"{where} closed the connection without answering {method} {path}", 502) from None
        except h11.ProtocolError as exc:
            raise ControlError(f"{where} answered {method} {path} with broken HTTP ({exc})", 502) from None
        text = body.decode("utf-8", "replace")
        if status != 200:
            shown = " ".join(text.split())[:REASON_CHARS]
            raise ControlError(f"{where} answered {method} {path} with HTTP {status}: {shown}", 502)
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ControlError(f"{where} answered {method} {path} with something other than a JSON object", 502)
        return answer

    async def _exchange(self, method: str, path: str) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            http = h11.Connection(our_role=h11.CLIENT)
            host = f"[{self.host}]" if ":" in self.host else self.host
            headers = [("Host", f"{host}:{self.port}"), ("Accept", "application/json"),
                       ("Connection", "close"), ("Content-Length", "0")]
            writer.write(http.send(h11.Request(method=method, target=self.prefix + path, headers=headers)))
            writer.write(http.send(h11.EndOfMessage()))
            await writer.drain()
            status, body = 0, bytearray()
            while True:
                event = http.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    if not data and status == 0:
                        raise HungUp
                    http.receive_data(data)
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > MAX_ANSWER_BYTES:
                        raise h11.RemoteProtocolError(f"an answer over {MAX_ANSWER_BYTES} bytes")
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    return status, bytes(body)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def trading_off(source: SourceKind, exchange: Exchange | None, reason: str) -> TradingResponse:
    return TradingResponse(source=source, exchange=exchange, enabled=False, reason=reason)


def with_origin(answer: dict[str, Any], model: type[BaseModel], source: SourceKind,
                exchange: Exchange | None) -> BaseModel:
    """The connector's answer, checked against the contract, with this service's source and exchange."""
    try:
        return model.model_validate({**answer, "source": source, "exchange": exchange})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "the answer"
        raise ControlError(f"the connector's control API answered in an unexpected shape: {where}: "
                           f"{first.get('msg', 'invalid')}", 502) from None


def _retrieve(future: asyncio.Future) -> None:
    """A shared read whose every caller went away still has its error retrieved (no 'never retrieved' log)."""
    if not future.cancelled():
        future.exception()

