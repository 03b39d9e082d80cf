"""Run inside a clean container after installing from the wheelhouse; prints one JSON line.

Checks that the live build imports (the patched names included) and that a backtest over a
small synthetic event stream produces the book and trades the stream implies.
"""
import json
import sys

import numpy as np

import hftbacktest
from hftbacktest import (BacktestAsset, HashMapMarketDepthBacktest, HashMapMarketDepthLiveBot,
                         LiveInstrument, ROIVectorMarketDepthLiveBot, build_hashmap_livebot)
from hftbacktest.binding import hashmaplive_modify
from hftbacktest.types import (BUY_EVENT, DEPTH_EVENT, EXCH_EVENT, LOCAL_EVENT, SELL_EVENT,
                               TRADE_EVENT, event_dtype)

SECOND = 1_000_000_000
BOTH = EXCH_EVENT | LOCAL_EVENT


def events() -> np.ndarray:
    rows = [
        # t=1s: a two-level bid and a one-level ask
        (BOTH | BUY_EVENT | DEPTH_EVENT, 1 * SECOND, 100.0, 2.0),
        (BOTH | BUY_EVENT | DEPTH_EVENT, 1 * SECOND, 99.9, 1.0),
        (BOTH | SELL_EVENT | DEPTH_EVENT, 1 * SECOND, 100.5, 3.0),
        # t=2s: a buyer lifts 0.5 at 100.5
        (BOTH | BUY_EVENT | TRADE_EVENT, 2 * SECOND, 100.5, 0.5),
        # t=3s: the ask at 100.5 is pulled, a new one at 100.6
        (BOTH | SELL_EVENT | DEPTH_EVENT, 3 * SECOND, 100.5, 0.0),
        (BOTH | SELL_EVENT | DEPTH_EVENT, 3 * SECOND, 100.6, 4.0),
        # t=4s: a seller hits 0.25 at 100.0
        (BOTH | SELL_EVENT | TRADE_EVENT, 4 * SECOND, 100.0, 0.25),
        (BOTH | BUY_EVENT | DEPTH_EVENT, 5 * SECOND, 100.0, 2.0),
    ]
    data = np.zeros(len(rows), dtype=event_dtype)
    for i, (ev, ts, px, qty) in enumerate(rows):
        data[i]["ev"], data[i]["exch_ts"], data[i]["local_ts"] = ev, ts, ts
        data[i]["px"], data[i]["qty"] = px, qty
    return data


def book(hbt) -> dict:
    depth = hbt.depth(0)
    return {"best_bid": depth.best_bid, "best_ask": depth.best_ask,
            "best_bid_qty": depth.best_bid_qty, "best_ask_qty": depth.best_ask_qty}


def trades(hbt) -> list:
    found = [(float(t["px"]), float(t["qty"]), bool(t["ev"] & BUY_EVENT))
             for t in np.array(hbt.last_trades(0))]
    hbt.clear_last_trades(0)
    return found


def main() -> None:
    asset = (BacktestAsset().data(events()).linear_asset(1.0).constant_order_latency(0, 0)
             .risk_adverse_queue_model().no_partial_fill_exchange()
             .trading_value_fee_model(0.0, 0.0).tick_size(0.1).lot_size(0.001)
             .last_trades_capacity(16))
    hbt = HashMapMarketDepthBacktest([asset])
    seen = {}
    # The clock starts at the first event (t=1s); look at the market half-way between events.
    for label, step in (("t1.5", SECOND // 2), ("t2.5", SECOND), ("t3.5", SECOND), ("t4.5", SECOND)):
        hbt.elapse(step)
        seen[label] = {"at": hbt.current_timestamp, "book": book(hbt), "trades": trades(hbt)}
    hbt.close()
    LiveInstrument().connector("check").symbol("BTCUSDT").tick_size(0.1).lot_size(0.001)
    print(json.dumps({
        "python": "%d.%d" % sys.version_info[:2],
        "version": hftbacktest.__version__,
        "live_feature": hftbacktest.LIVE_FEATURE,
        "live_names": [f.__name__ for f in (build_hashmap_livebot, HashMapMarketDepthLiveBot,
                                            ROIVectorMarketDepthLiveBot)],
        "modify_symbol": hashmaplive_modify.__name__,
        "backtest": seen,
    }))


if __name__ == "__main__":
    main()
