"""Bybit v5 public shapes: the JSON the simulator writes, with prices and sizes as decimal strings."""
from __future__ import annotations

import json
import time
from typing import Any

from market.instrument import Instrument

Levels = list[tuple[int, int]]   # (tick, lots); lots 0 deletes the level


def dumps(message: Any) -> str:
    return json.dumps(message, separators=(",", ":"))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Prices:
    """Ticks and lots as Bybit writes them: "60000.1", "0.006", and a plain "0" for a deleted level."""

    def __init__(self, inst: Instrument) -> None:
        self.inst = inst
        self._price = f"{{:.{inst.price_decimals}f}}".format
        self._size = f"{{:.{inst.qty_decimals}f}}".format
        self._cache: dict[int, str] = {}

    def price(self, tick: int) -> str:
        text = self._cache.get(tick)
        if text is None:
            if len(self._cache) > 100_000:   # a wandering price must not grow the cache for ever
                self._cache.clear()
            text = self._cache[tick] = self._price(self.inst.price(tick))
        return text

    def size(self, lots: int) -> str:
        return self._size(self.inst.lots(lots)) if lots else "0"

    def levels(self, levels: Levels) -> list[list[str]]:
        return [[self.price(tick), self.size(lots)] for tick, lots in levels]


def book_message(topic: str, kind: str, prices: Prices, bids: Levels, asks: Levels,
                 u: int, seq: int, ts: int, cts: int) -> str:
    return dumps({
        "topic": topic, "type": kind, "ts": ts,
        "data": {"s": prices.inst.symbol, "b": prices.levels(bids), "a": prices.levels(asks), "u": u, "seq": seq},
        "cts": cts,
    })


def trade_messages(topic: str, trades: list[dict[str, Any]], ts: int) -> list[str]:
    """Bybit puts at most 1024 trades in one message."""
    return [dumps({"topic": topic, "type": "snapshot", "ts": ts, "data": trades[i:i + 1024]})
            for i in range(0, len(trades), 1024)]


def reply(op: str, conn_id: str, req_id: Any, success: bool = True, ret_msg: str = "") -> str:
    """The answer to subscribe, unsubscribe and ping (ret_msg "pong"); req_id only when the client sent one."""
    message: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": conn_id}
    if req_id is not None:
        message["req_id"] = req_id
    if op:
        message["op"] = op
    return dumps(message)


def rest(result: dict[str, Any], code: int = 0, msg: str = "OK") -> dict[str, Any]:
    return {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": now_ms()}


def _coins(symbol: str) -> tuple[str, str]:
    for quote in ("USDT", "USDC"):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    if symbol.endswith("PERP") and len(symbol) > 4:   # Bybit's USDC perpetuals are named like BTCPERP
        return symbol[:-4], "USDC"
    return symbol, "USDT"


def instrument_info(inst: Instrument, launch_ms: int) -> dict[str, Any]:
    """A linear perpetual as /v5/market/instruments-info lists it; the filters follow the tick and lot sizes."""
    base, quote = _coins(inst.symbol)
    tick = f"{inst.tick_size:.{inst.price_decimals}f}"
    step = f"{inst.lot_size:.{inst.qty_decimals}f}"
    return {
        "symbol": inst.symbol, "contractType": "LinearPerpetual", "status": "Trading",
        "baseCoin": base, "quoteCoin": quote, "settleCoin": quote,
        "launchTime": str(launch_ms), "deliveryTime": "0", "deliveryFeeRate": "",
        "priceScale": str(inst.price_decimals),
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": tick, "maxPrice": f"{inst.price(inst.tick(1_999_999.0)):.{inst.price_decimals}f}",
                        "tickSize": tick},
        "lotSizeFilter": {"maxOrderQty": f"{inst.lots(1_000_000):.{inst.qty_decimals}f}", "minOrderQty": step,
                          "qtyStep": step, "postOnlyMaxOrderQty": f"{inst.lots(1_000_000):.{inst.qty_decimals}f}",
                          "maxMktOrderQty": f"{inst.lots(100_000):.{inst.qty_decimals}f}", "minNotionalValue": "5"},
        "unifiedMarginTrade": True, "fundingInterval": 480, "copyTrading": "both",
        "upperFundingRate": "0.005", "lowerFundingRate": "-0.005", "isPreListing": False, "preListingInfo": None,
        "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"}, "displayName": "",
    }
