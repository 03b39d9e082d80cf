"""Bybit v5 private shapes: order, execution, position and wallet data, their messages, and trade replies."""
from __future__ import annotations

import secrets
from typing import Any

from market.instrument import Instrument
from market.model import BID

from ..wire import dumps
from .matching import Execution, Ledger, Order, Position

SIDE = {0: "Buy", 1: "Sell"}
FEE_DECIMALS = 8


def _num(value: float, decimals: int = FEE_DECIMALS) -> str:
    return f"{value:.{decimals}f}"


def order_data(order: Order, inst: Instrument) -> dict[str, Any]:
    qty = inst.qty_decimals
    leaves = order.lots - order.filled if order.status in ("New", "PartiallyFilled") else 0
    avg = order.value / inst.lots(order.filled) if order.filled else 0.0
    return {
        "category": "linear", "symbol": order.symbol, "orderId": order.order_id, "orderLinkId": order.link_id,
        "side": SIDE[order.side], "orderType": order.kind, "timeInForce": order.tif,
        "price": _num(inst.price(order.tick), inst.price_decimals) if order.tick is not None else "0",
        "qty": _num(inst.lots(order.lots), qty), "orderStatus": order.status, "rejectReason": order.reject,
        "avgPrice": _num(avg, inst.price_decimals) if order.filled else "",
        "leavesQty": _num(inst.lots(leaves), qty),
        "cumExecQty": _num(inst.lots(order.filled), qty), "cumExecValue": _num(order.value),
        "cumExecFee": _num(order.fee), "positionIdx": 0, "reduceOnly": False, "isLeverage": "",
        "createdTime": str(order.created), "updatedTime": str(order.updated),
    }


def execution_data(ex: Execution, inst: Instrument) -> dict[str, Any]:
    order, qty = ex.order, inst.qty_decimals
    price = inst.price(ex.tick)
    return {
        "category": "linear", "symbol": order.symbol, "orderId": order.order_id, "orderLinkId": order.link_id,
        "side": SIDE[order.side], "orderType": order.kind, "execId": ex.exec_id, "execType": "Trade",
        "execPrice": _num(price, inst.price_decimals), "execQty": _num(inst.lots(ex.lots), qty),
        "execValue": _num(price * inst.lots(ex.lots)), "execFee": _num(ex.fee), "feeRate": _num(ex.fee_rate),
        "isMaker": ex.maker, "leavesQty": _num(inst.lots(ex.leaves), qty),
        "closedSize": _num(inst.lots(ex.closed), qty), "execTime": str(ex.time),
        "orderPrice": _num(inst.price(order.tick), inst.price_decimals) if order.tick is not None else "0",
        "orderQty": _num(inst.lots(order.lots), qty),
    }


def position_data(pos: Position, inst: Instrument) -> dict[str, Any]:
    size = inst.lots(abs(pos.size))
    return {
        "category": "linear", "symbol": pos.symbol, "positionIdx": 0, "tradeMode": 0,
        "side": "" if not pos.size else SIDE[BID if pos.size > 0 else 1],
        "size": _num(size, inst.qty_decimals),
        "entryPrice": _num(pos.entry, inst.price_decimals + 2), "positionValue": _num(pos.entry * size),
        "cumRealisedPnl": _num(pos.realised), "positionStatus": "Normal", "updatedTime": str(pos.updated),
    }


def wallet_data(ledger: Ledger) -> dict[str, Any]:
    balance = _num(ledger.balance)
    coin = {"coin": "USDT", "walletBalance": balance, "equity": balance,
            "cumRealisedPnl": _num(sum(p.realised for p in ledger.positions.values()))}
    return {"accountType": "UNIFIED", "totalWalletBalance": balance, "totalEquity": balance, "coin": [coin]}


def stream(topic: str, data: list[dict[str, Any]], now: int) -> str:
    """A private stream message: {id, topic, creationTime, data: [...]}."""
    return dumps({"id": secrets.token_hex(16), "topic": topic, "creationTime": now, "data": data})


def trade_reply(op: str, conn_id: str, req_id: Any, code: int = 0, msg: str = "OK",
                data: dict[str, Any] | None = None, now: int = 0) -> str:
    """The /v5/trade answer; an auth reply has no data or header; reqId only when one was sent."""
    reply: dict[str, Any] = {"reqId": req_id} if req_id is not None else {}
    reply.update(retCode=code, retMsg=msg, op=op)
    if op != "auth":
        reply.update(data=data or {}, retExtInfo={}, header={
            "X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "9", "X-Bapi-Limit-Reset-Timestamp": str(now),
            "Traceid": secrets.token_hex(16), "Timenow": str(now)})
    reply["connId"] = conn_id
    return dumps(reply)


def ledger_data(ledger: Ledger) -> dict[str, Any]:
    """The ground truth, in the streams' shapes: every order and execution, the positions and the wallet."""
    insts = ledger.insts
    return {
        "orders": [order_data(o, insts[o.symbol]) for o in ledger.orders.values()],
        "executions": [execution_data(e, insts[e.order.symbol]) for e in ledger.executions],
        "positions": [position_data(p, insts[p.symbol]) for p in ledger.positions.values()],
        "wallet": wallet_data(ledger),
    }
