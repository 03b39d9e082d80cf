"""pybit's HTTP client reads the account pybit's WebSocketTrading traded; bad keys and POSTs get retCodes."""
from __future__ import annotations

import json
import time
import urllib.request

import pytest
from pybit.exceptions import InvalidRequestError
from pybit.unified_trading import WebSocket, WebSocketTrading
from tests.support.bybit_clients import close, http, pointed_at, wait_for

from simulator.trading.auth import rest_signature


def test_positions_and_open_orders_equal_the_ledger(trading_sim):
    sim = trading_sim
    trade = pointed_at(WebSocketTrading, sim.ws_url.rsplit("/v5/", 1)[0] + "/v5/trade")(
        api_key=sim.api_key, api_secret=sim.api_secret, testnet=False)
    replies: list[dict] = []
    try:
        wait_for(lambda: trade.auth)
        for side, kind, price, link in (("Buy", "Market", None, "taker"), ("Buy", "Limit", "1000", "low"),
                                        ("Sell", "Limit", "900000", "high")):
            trade.place_order(replies.append, category="linear", symbol="BTCUSDT", side=side, orderType=kind,
                              qty="0.002", orderLinkId=link, **({"price": price} if price else {}))
            wait_for(lambda: replies and replies[-1]["data"]["orderLinkId"] == link)
    finally:
        close(trade)
    assert [r["retCode"] for r in replies] == [0, 0, 0]

    client = http(sim.rest_url, sim.api_key, sim.api_secret)
    ledger = sim.get("/control/ledger")
    position = client.get_positions(category="linear", symbol="BTCUSDT")
    assert position["retCode"] == 0 and position["result"]["category"] == "linear"
    (got,) = position["result"]["list"]
    wanted = dict(ledger["positions"][0])
    wanted["avgPrice"] = wanted.pop("entryPrice")
    assert got == wanted and (got["side"], got["size"]) == ("Buy", "0.002")
    assert client.get_positions(category="linear", settleCoin="USDT")["result"]["list"] == [got]
    orders = client.get_open_orders(category="linear", symbol="BTCUSDT")["result"]["list"]
    resting = {o["orderLinkId"]: o for o in ledger["orders"] if o["orderStatus"] == "New"}
    assert [o["orderLinkId"] for o in orders] == ["high", "low"]          # newest first
    assert orders == [resting["high"], resting["low"]]
    by_link = client.get_open_orders(category="linear", symbol="BTCUSDT", orderLinkId="low")["result"]["list"]
    by_id = client.get_open_orders(category="linear", settleCoin="USDT", orderId=orders[0]["orderId"])
    assert by_link == [resting["low"]] and by_id["result"]["list"] == [resting["high"]]


def test_bad_keys_missing_params_and_posts_get_bybits_codes(trading_sim):
    sim = trading_sim

    def refused(call, secret: str = sim.api_secret, key: str = sim.api_key) -> tuple[int, str]:
        with pytest.raises(InvalidRequestError) as caught:
            call(http(sim.rest_url, key, secret))
        return caught.value.status_code, caught.value.message

    code, msg = refused(lambda c: c.get_positions(category="linear", symbol="BTCUSDT"), secret="wrong")
    assert code == 10004 and msg.startswith("error sign!")
    assert refused(lambda c: c.get_open_orders(category="linear"), key="nobody")[0] == 10003
    assert refused(lambda c: c.get_open_orders(category="linear"))[0] == 10001   # no symbol nor coin
    code, msg = refused(lambda c: c.place_order(category="linear", symbol="BTCUSDT", side="Buy",
                                                orderType="Market", qty="0.001"))
    assert code == 10017 and "not emulated" in msg and "/v5/trade" in msg
    code, msg = refused(lambda c: c.cancel_all_orders(category="linear", symbol="BTCUSDT"), secret="wrong")
    assert code == 10004 and msg.startswith("error sign!")    # a POST's signature covers its body
    assert refused(lambda c: c.cancel_all_orders(category="linear"))[0] == 10001   # no symbol nor coin
    flat = http(sim.rest_url, sim.api_key, sim.api_secret).get_positions(category="linear", settleCoin="USDT")
    assert flat["result"]["list"] == []
    # pybit retries a 10002 with a wider window, so a plain request shows the code for a stale timestamp.
    stale, query = str(time.time_ns() // 1_000_000 - 6000), "category=linear&symbol=BTCUSDT"
    request = urllib.request.Request(f"{sim.rest_url}/v5/position/list?{query}", headers={
        "X-BAPI-API-KEY": sim.api_key, "X-BAPI-TIMESTAMP": stale, "X-BAPI-RECV-WINDOW": "5000",
        "X-BAPI-SIGN": rest_signature(sim.api_secret, stale, sim.api_key, "5000", query)})
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert json.loads(answer.read())["retCode"] == 10002


def test_cancel_all_cancels_every_open_order_and_the_order_stream_says_so(trading_sim):
    """POST /v5/order/cancel-all, signed over its body as pybit signs it: the acked ids, then each order's
    Cancelled push on the private stream, as on Bybit (the reply is only an ack)."""
    sim = trading_sim
    base = sim.ws_url.rsplit("/v5/", 1)[0]
    pushes: list[dict] = []
    private = pointed_at(WebSocket, base + "/v5/private")(
        channel_type="private", api_key=sim.api_key, api_secret=sim.api_secret, testnet=False)
    trade = pointed_at(WebSocketTrading, base + "/v5/trade")(
        api_key=sim.api_key, api_secret=sim.api_secret, testnet=False)
    replies: list[dict] = []
    try:
        private.order_stream(lambda message: pushes.extend(message["data"]))
        wait_for(lambda: private.auth and trade.auth)
        for price, link in (("1000", "low-1"), ("1100", "low-2"), ("900000", "high-1")):
            trade.place_order(replies.append, category="linear", symbol="BTCUSDT", side="Sell" if
                              price == "900000" else "Buy", orderType="Limit", price=price, qty="0.001",
                              orderLinkId=link)
        wait_for(lambda: len(replies) == 3)
        answer = http(sim.rest_url, sim.api_key, sim.api_secret).cancel_all_orders(
            category="linear", symbol="BTCUSDT", settleCoin="EUR")   # symbol wins over settleCoin
        wait_for(lambda: {(o["orderLinkId"], o["orderStatus"]) for o in pushes} >=
                 {("low-1", "Cancelled"), ("low-2", "Cancelled"), ("high-1", "Cancelled")})
    finally:
        close(private)
        close(trade)
    assert [r["retCode"] for r in replies] == [0, 0, 0]
    assert answer["retCode"] == 0 and answer["result"]["success"] == "1"
    ids = {r["data"]["orderId"]: r["data"]["orderLinkId"] for r in replies}
    assert {o["orderId"]: o["orderLinkId"] for o in answer["result"]["list"]} == ids
    ledger = sim.get("/control/ledger")
    assert {o["orderLinkId"]: o["orderStatus"] for o in ledger["orders"]} == dict.fromkeys(ids.values(), "Cancelled")
    again = http(sim.rest_url, sim.api_key, sim.api_secret).cancel_all_orders(category="linear", settleCoin="USDT")
    assert again["retCode"] == 0 and again["result"]["list"] == []
