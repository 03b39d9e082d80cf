"""Trading faults from the control API, as pybit meets them: rejected orders, late acks, dropped streams."""
from __future__ import annotations

import threading
import time

from pybit.unified_trading import WebSocket, WebSocketTrading
from tests.support.bybit_clients import close, pointed_at, wait_for

DELAY_MS = 600


def clients(sim):
    """pybit's trade socket and private stream, pointed at the simulator (they authenticate on connecting)."""
    base = sim.ws_url.rsplit("/v5/", 1)[0]
    trade = pointed_at(WebSocketTrading, base + "/v5/trade")(
        api_key=sim.api_key, api_secret=sim.api_secret, testnet=False)
    private = pointed_at(WebSocket, base + "/v5/private")(
        channel_type="private", api_key=sim.api_key, api_secret=sim.api_secret, testnet=False)
    return trade, private


def test_rejected_orders_and_delayed_acks(trading_sim):
    sim = trading_sim
    trade, private = clients(sim)
    lock = threading.Lock()
    replies: list[tuple[float, dict]] = []
    pushes: list[tuple[float, dict]] = []

    def keep(message):   # pybit's threads: each reply, or each pushed order, with when it arrived
        with lock:
            into = pushes if "topic" in message else replies
            into.extend((time.monotonic(), m) for m in (message["data"] if into is pushes else [message]))

    def place(link: str) -> float:
        sent = time.monotonic()
        count = len(replies)
        trade.place_order(keep, keep, category="linear", symbol="BTCUSDT", side="Buy",
                          orderType="Limit", price="1000", qty="0.001", orderLinkId=link)
        wait_for(lambda: len(replies) > count, timeout=10)
        return sent

    try:
        private.order_stream(keep)
        wait_for(lambda: private.auth and trade.auth)
        assert sim.post("/control/reject", count=2)["rejects"] == 2
        for link in ("r1", "r2", "r3"):
            place(link)
        assert sim.post("/control/delay-acks", ms=DELAY_MS)["ms"] == DELAY_MS
        sent = place("slow")
        wait_for(lambda: any(p["orderLinkId"] == "slow" for _, p in pushes), timeout=10)
    finally:
        close(trade)
        close(private)
    assert [(r["retCode"], r["retMsg"]) for _, r in replies[:3]] == \
        [(110007, "ab not enough for new order")] * 2 + [(0, "OK")]
    assert [p["orderLinkId"] for _, p in pushes] == ["r3", "slow"]   # a refusal creates no order
    (slow_ack,) = [t for t, r in replies if r["data"].get("orderLinkId") == "slow"]
    (slow_push,) = [t for t, p in pushes if p["orderLinkId"] == "slow"]
    assert min(slow_ack, slow_push) - sent >= DELAY_MS / 1000
    assert sim.get("/control/stats")["faults"] == {"reject": 1, "delay_acks": 1}


def test_dropped_private_and_restarted_trade_streams_reconnect(trading_sim):
    sim = trading_sim
    trade, private = clients(sim)
    lock = threading.Lock()
    links: list[str] = []

    def pushed(message):
        with lock:
            links.extend(o["orderLinkId"] for o in message["data"])

    try:
        private.order_stream(pushed)
        wait_for(lambda: private.auth and trade.auth)
        stats = lambda: sim.get("/control/stats")  # noqa: E731
        before = stats()["connections_total"]
        assert sim.post("/control/drop-private")["closed"] == 1       # the trade socket stays
        assert sim.post("/control/restart-trade")["closed"] == 1
        # pybit sees the lost connections, reconnects, authenticates and subscribes again.
        wait_for(lambda: stats()["connections_total"] == before + 2, timeout=15)
        wait_for(lambda: trade.auth and stats()["connections"] == 2
                 and stats()["subscriptions"].get("order") == 1)
        replies: list[dict] = []
        trade.place_order(replies.append, replies.append, category="linear", symbol="BTCUSDT", side="Sell",
                          orderType="Limit", price="900000", qty="0.001", orderLinkId="again")
        wait_for(lambda: replies and "again" in links, timeout=10)
    finally:
        close(trade)
        close(private)
    assert replies[0]["retCode"] == 0 and links == ["again"]


def test_fault_parameters_are_strict(trading_sim):
    for path, params in (("/control/reject", {}), ("/control/reject", {"count": "1.5"}),
                         ("/control/reject", {"count": "-1"}), ("/control/delay-acks", {"ms": "1e3"}),
                         ("/control/delay-acks", {"ms": "60001"})):
        status, body = trading_sim.call("POST", path, **params)
        assert status == 400 and body["error"].startswith(("give ?", "count=", "ms=")), (path, params, body)
    assert trading_sim.call("GET", "/control/reject", count="1")[0] == 405
    assert trading_sim.post("/control/delay-acks", ms="0")["ms"] == 0
