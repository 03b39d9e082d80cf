"""Signed REST reads of the account, GET /v5/position/list and /v5/order/realtime, checked as on Bybit."""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from ..rest import CATEGORIES
from ..wire import instrument_info, now_ms, rest
from . import auth
from .matching import Ledger, Refused
from .messages import order_data, position_data

if TYPE_CHECKING:
    from .desk import Desk


def answer(keys: Mapping[str, str], ledger: Ledger, path: str, query_string: str,
           headers: Mapping[str, str]) -> dict[str, Any] | None:
    """Bybit's envelope for a signed read (None when `path` is not one); the raw query is what is signed."""
    read = READS.get(path)
    if read is None:
        return None
    failure = auth.check_rest(keys, headers, query_string, now_ms())
    if failure:
        return rest({}, *failure)
    query = dict(parse_qsl(query_string))
    category = query.get("category", "")
    if category not in CATEGORIES:
        return rest({}, 10001, "Illegal category")
    try:
        found = read(ledger, query) if category == "linear" else []
    except Refused as refused:
        return rest({}, refused.code, refused.msg)
    return rest({"category": category, "list": found, "nextPageCursor": ""})


def answer_post(desk: Desk, path: str, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """Bybit's envelope for a signed POST: the raw body is what is signed. Only cancel-all is emulated."""
    if path != "/v5/order/cancel-all":
        return rest({}, 10017, f"POST {path} is not emulated by the simulator (only /v5/order/cancel-all); "
                               "place, amend and cancel orders on the /v5/trade WebSocket")
    text = body.decode("utf-8", "replace")
    failure = auth.check_rest(desk.keys, headers, text, now_ms())
    if failure:
        return rest({}, *failure)
    try:
        args = json.loads(text)
    except ValueError:
        args = None
    if not isinstance(args, dict):
        return rest({}, 10001, "params error: the body must be a JSON object")
    if args.get("category") not in CATEGORIES:
        return rest({}, 10001, "Illegal category")
    # One of symbol, baseCoin, settleCoin selects, in that order of priority (Bybit ignores the others).
    given = next(({k: str(args[k])} for k in ("symbol", "baseCoin", "settleCoin") if args.get(k)), {})
    try:
        symbols = _symbols(desk.ledger, given, ("symbol", "baseCoin", "settleCoin")) \
            if args["category"] == "linear" else []
    except Refused as refused:
        return rest({}, refused.code, refused.msg)
    cancelled = desk.cancel_all(symbols, now_ms())
    return rest({"list": cancelled, "success": "1"})


def _symbols(ledger: Ledger, query: Mapping[str, str], needs: tuple[str, ...]) -> list[str]:
    """The symbols the query's symbol, baseCoin and settleCoin select; linear needs one of `needs`."""
    if not query.keys() & set(needs):
        raise Refused(10001, f"params error: give {' or '.join(needs)}")
    infos = {symbol: instrument_info(inst, 0) for symbol, inst in ledger.insts.items()}
    keys = ("symbol", "baseCoin", "settleCoin")
    return [s for s, info in infos.items() if all(query.get(k, info[k]) == info[k] for k in keys)]


def positions(ledger: Ledger, query: Mapping[str, str]) -> list[dict[str, Any]]:
    """A symbol asked for is listed even when flat; by settleCoin, only open positions (as on Bybit)."""
    out = []
    for symbol in _symbols(ledger, query, ("symbol", "settleCoin")):
        pos = ledger.positions[symbol]
        if pos.size or "symbol" in query:
            data = position_data(pos, ledger.insts[symbol])
            data["avgPrice"] = data.pop("entryPrice")   # the stream says entryPrice, REST avgPrice
            out.append(data)
    return out


def open_orders(ledger: Ledger, query: Mapping[str, str]) -> list[dict[str, Any]]:
    """Open orders, newest first, narrowed by orderId or orderLinkId when given; openOnly=1 adds
    the closed ones (Bybit keeps the recent 500: here, all of this run)."""
    symbols = _symbols(ledger, query, ("symbol", "baseCoin", "settleCoin"))
    closed_too = query.get("openOnly") == "1"
    pool = [o for o in ledger.orders.values() if o.symbol in symbols] if closed_too else \
        [o for s in symbols for o in ledger.open[s].values()]
    found = [o for o in pool
             if query.get("orderId", o.order_id) == o.order_id
             and query.get("orderLinkId", o.link_id) == o.link_id]
    found.sort(key=lambda o: o.created, reverse=True)
    return [order_data(o, ledger.insts[o.symbol]) for o in found]


READS: dict[str, Callable[[Ledger, Mapping[str, str]], list[dict[str, Any]]]] = {
    "/v5/position/list": positions, "/v5/order/realtime": open_orders}
