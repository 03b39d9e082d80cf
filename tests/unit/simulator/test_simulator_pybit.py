"""Bybit's own SDK, pybit, pointed at the simulator: its callback book equals the ground truth at a checkpoint."""
from __future__ import annotations

import copy
import threading

from pybit.unified_trading import WebSocket
from sim_harness import truth

from tests.support.bybit_clients import pointed_at, wait_for

TOPIC = "orderbook.50.BTCUSDT"


def test_pybit_rebuilds_the_simulators_book_and_receives_its_trades(start_sim):
    sim = start_sim(rate=2000, seed=11)
    lock = threading.Lock()
    books: list[dict] = []
    trades: list[dict] = []

    def on_book(message):   # runs on pybit's thread; its data is pybit's live dict, so copy it
        with lock:
            books.append(copy.deepcopy(message["data"]))

    def on_trade(message):
        with lock:
            trades.extend(message["data"])

    ws = pointed_at(WebSocket, sim.ws_url)(channel_type="linear", testnet=False)
    try:
        ws.orderbook_stream(depth=50, symbol="BTCUSDT", callback=on_book)
        ws.trade_stream(symbol="BTCUSDT", callback=on_trade)
        wait_for(lambda: len(books) >= 30 and len(trades) >= 10)
        checkpoint = sim.post("/control/pause")["topics"][TOPIC]["u"]
        wait_for(lambda: books[-1]["u"] == checkpoint)
        sent = sim.get("/control/trades", symbol="BTCUSDT")["trades"]
        wait_for(lambda: trades[-1]["i"] == sent[-1]["i"])
    finally:
        ws.exit()

    book = books[-1]
    # pybit appends new levels at the end of its lists: order them before comparing.
    bids = sorted(([float(p), float(s)] for p, s in book["b"]), reverse=True)
    asks = sorted([float(p), float(s)] for p, s in book["a"])
    assert {"bids": bids, "asks": asks} == truth(sim, "BTCUSDT", 50)
    assert len(bids) >= 20 and len(asks) >= 20
    us = [b["u"] for b in books]
    assert us == list(range(us[0], us[0] + len(us)))   # one callback per message, none missed
    first = [t["i"] for t in sent].index(trades[0]["i"])
    assert trades == sent[first:]
