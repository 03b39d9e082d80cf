"""The live-wheel check: run it with the wheel installed; prints one JSON line.

Checks that the live build imports (the patched names included), that pip sees our distribution
(the local version label), and that a backtest over a small synthetic event stream produces the
book and trades the stream implies. With --strict it also compares the result with what that
stream must give and exits 1 on any difference, for cibuildwheel's test step; the wheelhouse
tests read the JSON and assert the same facts themselves.
"""
import json
import sys

SECOND = 1_000_000_000

# What the events below must produce, looked at half-way between them.
EXPECTED = {
    "live_feature": True,
    "live_names": ["build_hashmap_livebot", "HashMapMarketDepthLiveBot", "ROIVectorMarketDepthLiveBot"],
    "at": [1_500_000_000, 2_500_000_000, 3_500_000_000, 4_500_000_000],
    # bid 100.0 x2, ask 100.5 x3; then the ask moves to 100.6 x4
    "t1.5 book": {"best_bid": 100.0, "best_ask": 100.5, "best_bid_qty": 2.0, "best_ask_qty": 3.0},
    "t3.5 book": {"best_bid": 100.0, "best_ask": 100.6, "best_bid_qty": 2.0, "best_ask_qty": 4.0},
    # each trade once, in its own interval, with its taker side (True: a buyer)
    "trades": {"t1.5": [], "t2.5": [[100.5, 0.5, True]], "t3.5": [], "t4.5": [[100.0, 0.25, False]]},
}


def events():
    import numpy as np
    from hftbacktest.types import (BUY_EVENT, DEPTH_EVENT, EXCH_EVENT, LOCAL_EVENT, SELL_EVENT,
                                   TRADE_EVENT, event_dtype)
    both = EXCH_EVENT | LOCAL_EVENT
    rows = [
        # t=1s: a two-level bid and a one-level ask
        (both | BUY_EVENT | DEPTH_EVENT, 1 * SECOND, 100.0, 2.0),
        (both | BUY_EVENT | DEPTH_EVENT, 1 * SECOND, 99.9, 1.0),
        (both | SELL_EVENT | DEPTH_EVENT, 1 * SECOND, 100.5, 3.0),
        # t=2s: a buyer lifts 0.5 at 100.5
        (both | BUY_EVENT | TRADE_EVENT, 2 * SECOND, 100.5, 0.5),
        # t=3s: the ask at 100.5 is pulled, a new one at 100.6
        (both | SELL_EVENT | DEPTH_EVENT, 3 * SECOND, 100.5, 0.0),
        (both | SELL_EVENT | DEPTH_EVENT, 3 * SECOND, 100.6, 4.0),
        # t=4s: a seller hits 0.25 at 100.0
        (both | SELL_EVENT | TRADE_EVENT, 4 * SECOND, 100.0, 0.25),
        (both | BUY_EVENT | DEPTH_EVENT, 5 * SECOND, 100.0, 2.0),
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
    import numpy as np
    from hftbacktest.types import BUY_EVENT
    found = [(float(t["px"]), float(t["qty"]), bool(t["ev"] & BUY_EVENT))
             for t in np.array(hbt.last_trades(0))]
    hbt.clear_last_trades(0)
    return found


def run() -> dict:
    from importlib.metadata import version

    import hftbacktest
    from hftbacktest import (BacktestAsset, HashMapMarketDepthBacktest, HashMapMarketDepthLiveBot,
                             LiveInstrument, ROIVectorMarketDepthLiveBot, build_hashmap_livebot)
    from hftbacktest.binding import hashmaplive_modify

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
    return {
        "python": "%d.%d" % sys.version_info[:2],
        "version": hftbacktest.__version__,
        "distribution": version("hftbacktest"),
        "live_feature": hftbacktest.LIVE_FEATURE,
        "live_names": [f.__name__ for f in (build_hashmap_livebot, HashMapMarketDepthLiveBot,
                                            ROIVectorMarketDepthLiveBot)],
        "modify_symbol": hashmaplive_modify.__name__,
        "backtest": seen,
    }


def differences(result: dict) -> list[str]:
    """How `result` differs from EXPECTED (empty: the wheel is a working live build)."""
    found = []

    def compare(what: str, got, want) -> None:
        if got != want:
            found.append(f"{what}: got {got!r}, expected {want!r}")

    seen = result["backtest"]
    compare("LIVE_FEATURE", result["live_feature"], EXPECTED["live_feature"])
    compare("live names", result["live_names"], EXPECTED["live_names"])
    compare("distribution version", result["distribution"].partition("+")[2], "hftlive")
    compare("clock", [seen[t]["at"] for t in EXPECTED["trades"]], EXPECTED["at"])
    for label in ("t1.5", "t3.5"):
        got = {k: round(v, 9) for k, v in seen[label]["book"].items()}
        compare(f"book at {label}", got, EXPECTED[f"{label} book"])
    for label, want in EXPECTED["trades"].items():
        compare(f"trades at {label}", [list(t) for t in seen[label]["trades"]], want)
    return found


def main() -> int:
    result = run()
    print(json.dumps(result))
    if "--strict" in sys.argv[1:]:
        problems = differences(result)
        for problem in problems:
            print(f"wheel_check: {problem}", file=sys.stderr)
        if problems:
            return 1
        print(f"wheel_check: ok: hftbacktest {result['distribution']} on CPython {result['python']}: "
              "live imports and the known backtest", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
