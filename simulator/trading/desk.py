"""The trading desk: /v5/private (auth, then order, execution, position, wallet) and /v5/trade (orders)."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from market.model import TRADE, Event

from ..gateway import Gateway, decode
from ..session import Session
from ..wire import now_ms, reply
from . import auth, messages
from .matching import Book, Ledger, Outcome, Refused

LOG = logging.getLogger("simulator")
PRIVATE_TOPICS = {"order", "execution", "position", "wallet"}
TRADE_OPS = ("order.create", "order.amend", "order.cancel")
INSUFFICIENT_BALANCE = (110007, "ab not enough for new order")   # Bybit's answer to an order it cannot afford
Pushes = Sequence[tuple[str, str]]   # (private topic, message)


class Market(Protocol):
    """The exchange as the desk sees it: its books, and taking liquidity from them."""

    def book_of(self, symbol: str) -> Book: ...
    def take(self, symbol: str, side: int, tick: int, lots: int) -> None: ...


class Desk:
    def __init__(self, ledger: Ledger, keys: Mapping[str, str], gateway: Gateway, market: Market) -> None:
        self.ledger = ledger
        self.keys = dict(keys)    # api key -> secret; never logged
        self.gateway = gateway
        self.market = market
        self.rejects = 0          # a fault: order.create requests to refuse before matching
        self.ack_delay_s = 0.0    # a fault: how long trade replies, and the pushes they caused, are held

    @property
    def routes(self) -> dict[str, Callable[[Session, str | bytes], None]]:
        return {"/v5/private": self.on_private, "/v5/trade": self.on_trade}

    # --- the market model's events ---

    def watching(self, symbol: str) -> bool:
        return bool(self.ledger.open[symbol])

    def on_event(self, symbol: str, event: Event, now: int) -> None:
        kind, side, tick, lots = event
        if kind == TRADE:
            self.send(self.apply(self.ledger.on_trade(symbol, side, tick, lots, now), now))
        else:
            self.ledger.on_level(symbol, side, tick, lots)

    # --- connections ---

    def _request(self, session: Session, raw: str | bytes) -> dict[str, Any] | None:
        try:
            return decode(raw)
        except ValueError as exc:
            session.send(reply("", session.conn_id, None, False, f"Failed to decode incoming data: {exc}"),
                         "reply")
            return None

    def _auth(self, session: Session, args: Any) -> auth.Failure:
        failure = auth.check_ws(self.keys, args, now_ms())
        session.authed = failure is None
        if failure:
            LOG.info("%s failed to authenticate: %s", session.peer, failure[1])
        return failure

    def on_private(self, session: Session, raw: str | bytes) -> None:
        request = self._request(session, raw)
        if request is None:
            return
        op, req_id, args = request.get("op"), request.get("req_id"), request.get("args")
        if op == "ping":
            session.send(reply("ping", session.conn_id, req_id, True, "pong"), "pong")
        elif op == "auth":
            failure = self._auth(session, args)
            message = failure[1] if failure else ""
            session.send(reply("auth", session.conn_id, req_id, failure is None, message), "reply")
        elif op in ("subscribe", "unsubscribe") and not session.authed:
            session.send(reply(op, session.conn_id, req_id, False, "Request not authorized"), "reply")
        elif op == "subscribe":
            self.gateway.subscribe(session, args, req_id, PRIVATE_TOPICS)
        elif op == "unsubscribe":
            self.gateway.unsubscribe(session, args, req_id)
        else:
            session.send(reply(str(op or ""), session.conn_id, req_id, False, "error:invalid op"), "reply")

    def on_trade(self, session: Session, raw: str | bytes) -> None:
        request = self._request(session, raw)
        if request is None:
            return
        op, req_id, args = str(request.get("op") or ""), request.get("reqId"), request.get("args")
        now = now_ms()

        def answer(code: int = 0, msg: str = "OK", data: dict[str, Any] | None = None,
                   pushes: Pushes = ()) -> None:
            text = messages.trade_reply(op, session.conn_id, req_id, code, msg, data, now)

            def ack() -> None:   # the reply, then its pushes: one callback keeps them in order when delayed
                session.send(text, "reply")
                self.send(pushes)

            if self.ack_delay_s and op in TRADE_OPS:
                asyncio.get_running_loop().call_later(self.ack_delay_s, ack)
            else:
                ack()

        if op == "ping":
            session.send(reply("ping", session.conn_id, req_id, True, "pong"), "pong")
        elif op == "auth":
            failure = self._auth(session, args)
            answer(*(failure or (0, "OK")))
        elif op not in TRADE_OPS:
            answer(10404, f"op type is not found: {op}")
        elif not session.authed:
            answer(10003, "Request not authorized: send op auth first")
        elif (late := auth.check_time(request.get("header") or {}, now)) is not None:
            answer(*late)
        elif not (isinstance(args, list) and len(args) == 1 and isinstance(args[0], dict)):
            answer(10001, "params error: args must hold one order")
        elif op == "order.create" and self.rejects:
            self.rejects -= 1
            answer(*INSUFFICIENT_BALANCE)
        else:
            try:
                order, out = self._execute(op, args[0], now)
            except Refused as refused:
                answer(refused.code, refused.msg)
                return
            ids = {"orderId": order.order_id, "orderLinkId": order.link_id}
            answer(data=ids, pushes=self.apply(out, now))

    def _execute(self, op: str, args: dict[str, Any], now: int) -> tuple[Any, Outcome]:
        symbol = str(args.get("symbol"))
        book = self.market.book_of(symbol) if symbol in self.ledger.insts else ({}, {})
        if op == "order.create":
            return self.ledger.create(args, book, now)
        if op == "order.amend":
            return self.ledger.amend(args, book, now)
        return self.ledger.cancel(args, now)

    def cancel_all(self, symbols: Sequence[str], now: int) -> list[dict[str, str]]:
        """POST /v5/order/cancel-all: every open order of `symbols` cancelled, its push sent; the ids, as acked."""
        out = self.ledger.cancel_all(symbols, now)
        self.send(self.apply(out, now))
        return [{"orderId": o.order_id, "orderLinkId": o.link_id} for o in out.orders]

    # --- the private streams ---

    def apply(self, out: Outcome, now: int) -> Pushes:
        """Take what orders took from the displayed book now; the pushes to send: order, execution, etc."""
        for symbol, side, tick, lots in out.takes:
            self.market.take(symbol, side, tick, lots)
        insts, ledger = self.ledger.insts, self.ledger
        orders = {o.order_id: o for o in out.orders}   # each order once, as it is now
        pushes = {
            "order": [messages.order_data(o, insts[o.symbol]) for o in orders.values()],
            "execution": [messages.execution_data(e, insts[e.order.symbol]) for e in out.executions],
            "position": [messages.position_data(ledger.positions[s], insts[s])
                         for s in dict.fromkeys(e.order.symbol for e in out.executions)],
            "wallet": [messages.wallet_data(ledger)] if out.executions else [],
        }
        return [(topic, messages.stream(topic, data, now)) for topic, data in pushes.items()
                if data and self.gateway.subscribed(topic)]

    def send(self, pushes: Pushes) -> None:
        for topic, text in pushes:
            self.gateway.publish(topic, [text], topic)
