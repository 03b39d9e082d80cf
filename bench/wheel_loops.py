"""Runs inside a wheel benchmark's container (bench/abi3.py, bench/lto.py), in one wheel's venv; prints one JSON line of timings.

Two loops a strategy runs, both in numba-compiled code as strategies do: a backtest's `elapse`
over a large synthetic event array, and the live bot's `wait_next_feed` + depth reads (no
connector runs, so each wait returns at once: this times the call path, not a feed).
Usage: python wheel_loops.py EVENTS LIVE_CALLS
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np
from numba import njit

from hftbacktest import (BacktestAsset, HashMapMarketDepthBacktest, HashMapMarketDepthLiveBot,
                         LiveInstrument)
from hftbacktest.types import (BUY_EVENT, DEPTH_EVENT, EXCH_EVENT, LOCAL_EVENT, SELL_EVENT,
                               TRADE_EVENT, event_dtype)

STEP_NS = 1_000_000   # one event per millisecond of exchange time


def events(count: int) -> np.ndarray:
    """A random walk of a 20-level book with a trade every 10th event, reproducible."""
    rng = np.random.default_rng(7)
    data = np.zeros(count, dtype=event_dtype)
    side = rng.integers(0, 2, count)
    level = rng.integers(0, 20, count)
    mid = 60_000.0 + np.cumsum(rng.integers(-1, 2, count)) * 0.1
    trade = np.arange(count) % 10 == 9
    data["ev"] = np.where(trade, TRADE_EVENT, DEPTH_EVENT) | np.where(side == 1, BUY_EVENT, SELL_EVENT) \
        | EXCH_EVENT | LOCAL_EVENT
    data["exch_ts"] = data["local_ts"] = (np.arange(count) + 1) * STEP_NS
    data["px"] = np.where(side == 1, mid - 0.1 * (level + 1), mid + 0.1 * (level + 1))
    data["qty"] = np.where(rng.random(count) < 0.2, 0.0, rng.integers(1, 100, count) * 0.001)
    return data


@njit
def elapse_all(hbt, steps):
    total = 0.0
    for _ in range(steps):
        if hbt.elapse(10 * STEP_NS) != 0:
            break
        depth = hbt.depth(0)
        total += depth.best_bid + depth.best_ask
        hbt.clear_last_trades(0)
    return total


@njit
def wait_and_read(bot, calls):
    total = 0.0
    for _ in range(calls):
        bot.wait_next_feed(False, 0)
        depth = bot.depth(0)
        total += depth.bid_qty_at_tick(depth.best_bid_tick) + depth.ask_qty_at_tick(depth.best_ask_tick)
    return total


def main(count: int, calls: int) -> None:
    data = events(count)
    asset = (BacktestAsset().data(data).linear_asset(1.0).constant_order_latency(0, 0)
             .risk_adverse_queue_model().no_partial_fill_exchange().trading_value_fee_model(0.0, 0.0)
             .tick_size(0.1).lot_size(0.001).last_trades_capacity(64))
    hbt = HashMapMarketDepthBacktest([asset])
    elapse_all(hbt, 1)                       # compile first: only the loop is timed
    started = time.perf_counter()
    elapse_all(hbt, count // 10)
    backtest_s = time.perf_counter() - started
    hbt.close()

    inst = LiveInstrument().connector("abi3bench").symbol("BTCUSDT").tick_size(0.1).lot_size(0.001)
    bot = HashMapMarketDepthLiveBot([inst])
    wait_and_read(bot, 10)
    started = time.perf_counter()
    wait_and_read(bot, calls)
    live_s = time.perf_counter() - started
    bot.close()
    print(json.dumps({"python": "%d.%d" % sys.version_info[:2],
                      "backtest_ns_per_event": backtest_s / count * 1e9,
                      "live_ns_per_call": live_s / calls * 1e9}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
