"""pybit trading on the simulator: auth, order entry, the private streams, and the ledger they match."""
from __future__ import annotations

import threading
import time

from pybit.unified_trading import WebSocket, WebSocketTrading
from tests.support.bybit_clients import close, pointed_at, wait_for


def test_pybit_trades_and_its_streams_equal_the_simulators_ledger(trading_sim):
    sim = trading_sim
    key, secret = sim.api_key, sim.api_secret
    base = sim.ws_url.rsplit("/v5/", 1)[0]
    lock = threading.Lock()
    got: dict[str, list[dict]] = {"order": [], "execution": [], "position": [], "wallet": []}

    def collect(message):   # pybit's thread
        with lock:
            got[message["topic"]].extend(message["data"])

    private = pointed_at(WebSocket, base + "/v5/private")(
        channel_type="private", api_key=key, api_secret=secret, testnet=False)
    trade = pointed_at(WebSocketTrading, base + "/v5/trade")(
        api_key=key, api_secret=secret, testnet=False)
    replies: list[dict] = []
    try:
        for subscribe in (private.order_stream, private.execution_stream, private.position_stream,
                          private.wallet_stream):
            subscribe(collect)
        wait_for(lambda: private.auth and trade.auth)
        bid = sim.get("/control/book", symbol="BTCUSDT", depth=1)["bids"][0][0]
        trade.place_order(replies.append, category="linear", symbol="BTCUSDT", side="Buy", orderType="Market",
                          qty="0.050", orderLinkId="taker-1")
        trade.place_order(replies.append, category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit",
                          price=f"{bid:.1f}", qty="0.001", orderLinkId="maker-1")
        trade.place_order(replies.append, replies.append, category="linear", symbol="BTCUSDT", side="Buy",
                          orderType="Limit", price="1000", qty="0.001", orderLinkId="taker-1")   # a duplicate
        wait_for(lambda: len(replies) == 3)
        # The market's sellers work through the queue ahead of the resting order.
        states = lambda: {(o["orderLinkId"], o["orderStatus"]) for o in got["order"]}  # noqa: E731
        wait_for(lambda: ("maker-1", "Filled") in states(), timeout=60)   # the price can drift off it a while
        sim.post("/control/pause")
        time.sleep(0.3)   # the last pushes reach pybit
    finally:
        close(private)
        close(trade)

    assert [r["retCode"] for r in replies] == [0, 0, 110072]
    assert replies[2]["retMsg"] == "OrderLinkedID is duplicate"
    assert {r["op"] for r in replies} == {"order.create"} and all(r["connId"] for r in replies)
    ledger = sim.get("/control/ledger")
    # Each order's last push is the ledger's order; every execution arrived once; position and wallet agree.
    last = {o["orderId"]: o for o in got["order"]}
    assert list(last.values()) == [o for o in ledger["orders"] if o["orderId"] in last] and len(last) == 2
    assert [r["data"]["orderId"] for r in replies[:2]] == list(last)
    assert got["execution"] == ledger["executions"]
    assert got["position"][-1] == ledger["positions"][0] and got["wallet"][-1] == ledger["wallet"]
    taker = [e for e in got["execution"] if e["orderLinkId"] == "taker-1"]
    maker = [e for e in got["execution"] if e["orderLinkId"] == "maker-1"]
    assert taker and not any(e["isMaker"] for e in taker) and all(e["isMaker"] for e in maker)
    assert round(sum(float(e["execQty"]) for e in taker), 3) == 0.05 and float(maker[0]["execPrice"]) == bid
    # What the market order took printed on the public trade stream, at the book's prices.
    trades = sim.get("/control/trades", symbol="BTCUSDT")["trades"]
    printed = {(t["p"], t["v"]) for t in trades if t["S"] == "Buy"}
    assert {(e["execPrice"], e["execQty"]) for e in taker} <= printed


def test_a_wrong_secret_gets_bybits_auth_failure(trading_sim):
    base = trading_sim.ws_url.rsplit("/v5/", 1)[0]
    trade_refused: list = []
    private_refused: list = []
    trade = pointed_at(WebSocketTrading, base + "/v5/trade", trade_refused)(
        api_key=trading_sim.api_key, api_secret="wrong", testnet=False)
    private = pointed_at(WebSocket, base + "/v5/private", private_refused)(
        channel_type="private", api_key=trading_sim.api_key, api_secret="wrong", testnet=False)
    try:
        wait_for(lambda: trade_refused and private_refused)
    finally:
        close(trade)
        close(private)
    (trade_reply, trade_error), = trade_refused
    (private_reply, private_error), = private_refused
    assert {k: trade_reply[k] for k in ("retCode", "retMsg", "op")} == \
        {"retCode": 10004, "retMsg": "Invalid sign", "op": "auth"}
    assert {k: private_reply[k] for k in ("success", "ret_msg", "op")} == \
        {"success": False, "ret_msg": "Invalid sign", "op": "auth"}
    assert "Authorization for WebSocket Trading (Auth) failed" in trade_error and "failed" in private_error
    assert not trade.auth and not private.auth
