"""A matching engine and ledger on the simulator's own book: orders, fills and fees, positions, a USDT wallet.

Integer ticks and lots, no I/O: the caller applies `Outcome.takes` to the displayed book and publishes."""
from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from market.instrument import Instrument
from market.model import ASK, BID

Book = tuple[Mapping[int, int], Mapping[int, int]]   # (bids, asks): tick -> displayed lots
SIDES = {"Buy": BID, "Sell": ASK}
TIFS = ("GTC", "IOC", "FOK", "PostOnly")
OPEN = ("New", "PartiallyFilled")
MAX_CANCEL_ALL = 500   # Bybit's cap for linear: a cancel-all request cancels at most this many orders


class Refused(Exception):
    """A request Bybit answers with a non-zero retCode; nothing changed."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


@dataclass(slots=True)
class Order:
    order_id: str
    link_id: str
    symbol: str
    side: int          # BID (Buy) or ASK (Sell)
    kind: str          # Limit or Market
    tif: str
    tick: int | None   # None for a market order
    lots: int
    created: int
    updated: int
    filled: int = 0
    value: float = 0.0   # sum of price * qty filled
    fee: float = 0.0
    status: str = "New"
    reject: str = "EC_NoError"
    ahead: int = 0       # displayed lots queued before it at its price


@dataclass(frozen=True, slots=True)
class Execution:
    exec_id: str
    order: Order         # the order as it is now; the fields below are this fill's
    tick: int
    lots: int
    fee: float
    fee_rate: float
    maker: bool
    leaves: int
    closed: int          # lots of position this fill closed
    time: int


@dataclass(slots=True)
class Position:
    symbol: str
    size: int = 0          # lots, negative when short
    entry: float = 0.0     # average entry price
    realised: float = 0.0  # closed P&L minus every fee paid
    updated: int = 0


@dataclass(slots=True)
class Outcome:
    """What a request or a market event changed, in order, for the private streams and the displayed book."""
    orders: list[Order] = field(default_factory=list)
    executions: list[Execution] = field(default_factory=list)
    takes: list[tuple[str, int, int, int]] = field(default_factory=list)   # (symbol, book side, tick, lots)


class Ledger:
    def __init__(self, instruments: Mapping[str, Instrument], maker_rate: float, taker_rate: float,
                 balance: float) -> None:
        self.insts = dict(instruments)
        self.maker_rate, self.taker_rate = maker_rate, taker_rate
        self.balance = balance
        self.orders: dict[str, Order] = {}
        self.links: dict[str, str] = {}   # orderLinkId -> orderId, kept for ever (Bybit refuses reuse)
        self.open: dict[str, dict[str, Order]] = {s: {} for s in self.insts}
        self.executions: list[Execution] = []
        self.positions = {s: Position(s) for s in self.insts}

    # --- requests ---

    def create(self, args: Mapping[str, Any], book: Book, now: int) -> tuple[Order, Outcome]:
        inst = self._inst(args)
        side = SIDES.get(args.get("side"))    # type: ignore[arg-type]
        kind = args.get("orderType")
        if side is None or kind not in ("Limit", "Market"):
            raise Refused(10001, "params error: side must be Buy or Sell, orderType Limit or Market")
        tif = args.get("timeInForce") or ("IOC" if kind == "Market" else "GTC")
        if tif not in TIFS:
            raise Refused(10001, f"params error: timeInForce must be one of {', '.join(TIFS)}")
        lots = _units(args.get("qty"), inst.lot_size, "qty")
        tick = _units(args.get("price"), inst.tick_size, "price") if kind == "Limit" else None
        link = str(args.get("orderLinkId") or "")
        if link in self.links:
            raise Refused(110072, "OrderLinkedID is duplicate")
        order = Order(str(uuid.uuid4()), link, inst.symbol, side, kind, tif, tick, lots, now, now)
        self.orders[order.order_id] = order
        if link:
            self.links[link] = order.order_id
        out = Outcome()
        self._match(order, book, now, out)
        return order, out

    def cancel(self, args: Mapping[str, Any], now: int) -> tuple[Order, Outcome]:
        order = self._find(args, "cancel")
        self._end(order, "Cancelled", now)
        return order, Outcome(orders=[order])

    def cancel_all(self, symbols: Sequence[str], now: int) -> Outcome:
        """Every open order of these symbols, oldest first (Bybit cancels at most 500 per request)."""
        out = Outcome()
        found = sorted((o for s in symbols for o in self.open.get(s, {}).values()), key=lambda o: o.created)
        for order in found[:MAX_CANCEL_ALL]:
            self._end(order, "Cancelled", now, out)
        return out

    def amend(self, args: Mapping[str, Any], book: Book, now: int) -> tuple[Order, Outcome]:
        order = self._find(args, "replace")
        inst = self.insts[order.symbol]
        lots = _units(args["qty"], inst.lot_size, "qty") if args.get("qty") else order.lots
        tick = _units(args["price"], inst.tick_size, "price") if args.get("price") else order.tick
        if lots <= order.filled:
            raise Refused(10001, "params error: qty must be above the qty already filled")
        # A new price, or more qty, loses the order's place in the queue (as on Bybit); less qty keeps it.
        requeue = tick != order.tick or lots > order.lots
        order.lots, order.tick, order.updated = lots, tick, now
        out = Outcome()
        if requeue:
            del self.open[order.symbol][order.order_id]
            self._match(order, book, now, out)
        else:
            out.orders.append(order)
        return order, out

    # --- the market model's events ---

    def on_trade(self, symbol: str, taker: int, tick: int, lots: int, now: int) -> Outcome:
        """A model trade eats the queue ahead of each order at its price; one through its price fills it.
        At its price our orders share the trade's lots in the order they queued, never more than it traded."""
        out = Outcome()
        taken = 0   # of the trade's lots, by our orders at its price
        for order in [o for o in self.open[symbol].values() if o.side != taker]:
            assert order.tick is not None
            through = tick < order.tick if order.side == BID else tick > order.tick
            if tick != order.tick and not through:
                continue
            left = order.lots - order.filled
            if through:
                order.ahead, fill = 0, left
            else:
                eaten = min(order.ahead, lots)
                order.ahead -= eaten
                fill = max(0, min(left, lots - eaten - taken))
                taken += fill
            if fill:
                self._fill(order, order.tick, fill, True, now, out)
                if order.filled == order.lots:
                    del self.open[symbol][order.order_id]
        return out

    def on_level(self, symbol: str, side: int, tick: int, lots: int) -> None:
        """A level shrank (cancels, trades): the queue ahead of an order is at most what is displayed."""
        for order in self.open[symbol].values():
            if order.side == side and order.tick == tick and order.ahead > lots:
                order.ahead = lots

    # --- inside ---

    def _inst(self, args: Mapping[str, Any]) -> Instrument:
        inst = self.insts.get(str(args.get("symbol")))
        if args.get("category", "linear") != "linear" or inst is None:
            raise Refused(10001, "params error: symbol invalid (linear only)")
        return inst

    def _find(self, args: Mapping[str, Any], verb: str) -> Order:
        order_id = args.get("orderId") or self.links.get(str(args.get("orderLinkId")), "")
        order = self.open.get(str(args.get("symbol")), {}).get(str(order_id))
        if order is None:
            raise Refused(110001, f"order not exists or too late to {verb}")
        return order

    def _match(self, order: Order, book: Book, now: int, out: Outcome) -> None:
        """Take what crosses, then rest (GTC, PostOnly) or end (Market, IOC, FOK) the remainder."""
        fills = self._crossing(order, book)
        if fills and order.tif == "PostOnly":
            order.reject = "EC_PostOnlyWillTakeLiquidity"
            return self._end(order, "Cancelled", now, out)
        if order.tif == "FOK" and sum(lots for _, lots in fills) < order.lots - order.filled:
            order.reject = "EC_FOKOrderCannotBeFilled"
            return self._end(order, "Cancelled", now, out)
        for tick, lots in fills:
            self._fill(order, tick, lots, False, now, out)
            out.takes.append((order.symbol, ASK if order.side == BID else BID, tick, lots))
        if order.filled == order.lots:
            return None
        if order.kind == "Market" or order.tif != "GTC" and order.tif != "PostOnly":
            return self._end(order, "Cancelled", now, out)
        assert order.tick is not None
        order.ahead = book[order.side].get(order.tick, 0)   # the back of its level's queue
        self.open[order.symbol][order.order_id] = order
        out.orders.append(order)
        return None

    def _crossing(self, order: Order, book: Book) -> list[tuple[int, int]]:
        """The displayed levels the order takes, best first; the model needs one lot left on the side."""
        other = book[ASK if order.side == BID else BID]
        room = sum(other.values()) - 1
        wanted = order.lots - order.filled
        out = []
        for tick in sorted(other, reverse=order.side == ASK):
            if order.tick is not None and (tick > order.tick if order.side == BID else tick < order.tick):
                break
            take = min(wanted, other[tick], room)
            if take <= 0:
                break
            out.append((tick, take))
            wanted -= take
            room -= take
        return out

    def _end(self, order: Order, status: str, now: int, out: Outcome | None = None) -> None:
        order.status, order.updated = status, now
        self.open[order.symbol].pop(order.order_id, None)
        if out is not None:
            out.orders.append(order)

    def _fill(self, order: Order, tick: int, lots: int, maker: bool, now: int, out: Outcome) -> None:
        inst = self.insts[order.symbol]
        price, qty = inst.price(tick), inst.lots(lots)
        rate = self.maker_rate if maker else self.taker_rate
        fee = price * qty * rate
        order.filled += lots
        order.value += price * qty
        order.fee += fee
        order.updated = now
        order.status = "Filled" if order.filled == order.lots else "PartiallyFilled"
        closed = self._position(order.symbol, lots if order.side == BID else -lots, price, fee, now)
        execution = Execution(str(uuid.uuid4()), order, tick, lots, fee, rate, maker,
                              order.lots - order.filled, closed, now)
        self.executions.append(execution)
        out.executions.append(execution)
        out.orders.append(order)

    def _position(self, symbol: str, signed: int, price: float, fee: float, now: int) -> int:
        """Apply a fill of `signed` lots at `price`; the lots it closed. Fees come off P&L and the wallet."""
        pos = self.positions[symbol]
        inst = self.insts[symbol]
        closed = min(abs(pos.size), abs(signed)) if pos.size * signed < 0 else 0
        pnl = (price - pos.entry) * inst.lots(closed) * (1 if pos.size > 0 else -1) - fee
        size = pos.size + signed
        if size == 0:
            pos.entry = 0.0
        elif pos.size == 0 or pos.size * size < 0:
            pos.entry = price   # opened, or flipped through zero
        elif abs(size) > abs(pos.size):
            pos.entry = (pos.entry * abs(pos.size) + price * abs(signed)) / abs(size)
        pos.size, pos.updated = size, now
        pos.realised += pnl
        self.balance += pnl
        return closed


def _units(text: Any, step: float, name: str) -> int:
    """A decimal string (or number) as a whole positive count of `step`; anything else is Bybit's 10001."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise Refused(10001, f"params error: {name} {text!r} is not a number") from None
    units = round(value / step)
    if units <= 0 or abs(units * step - value) > step * 1e-6:
        raise Refused(10001, f"params error: {name} {text!r} is not a positive multiple of {step:g}")
    return units
