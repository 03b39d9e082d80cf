"""A small market maker: one bid and one ask around the mid, skewed against inventory, inside hard limits.

`strategy(hbt)` is one numba function that runs unchanged in hftbacktest's HashMapMarketDepthBacktest and
HashMapMarketDepthLiveBot (asset 0):
    python -m bot.backtest strategies/market_maker.py recordings/BTCUSDT_*.npz   # on hftlive's recordings
    ./hftlive up --strategy strategies/market_maker.py                           # live, through the connector
It returns the largest |position| it saw (a number the backtest summary shows).
"""
import math

import numpy as np
from numba import njit

from hftbacktest.order import BUY, GTX, LIMIT, NEW, NONE, PARTIALLY_FILLED, SELL

ASSET = 0
ORDER_QTY = 0.001           # each quote, in the symbol's units (BTC)
MAX_POSITION = 0.01         # a quote is placed only if its fill keeps |position| within this
HALF_SPREAD_TICKS = 2.0     # from the mid to each quote
SKEW_TICKS = 1.0            # both quotes move this many ticks against each ORDER_QTY held
REQUOTE_TICKS = 2           # a quote this far from where it belongs is cancelled and placed again
STEP_NS = 100_000_000       # how often it looks at the book
SIDE_GAP_NS = 500_000_000   # per side at most one request (new or cancel) this often: 4/s, under the connector's 5/s
REPORT_NS = 5_000_000_000   # how often it prints its position and open orders (the bot's log)


@njit
def resting(hbt, side):
    """(found, order_id, price_tick, cancellable) of our live order on one side (there is at most one)."""
    values = hbt.orders(ASSET).values()
    while values.has_next():
        order = values.get()
        alive = order.status == NONE or order.status == NEW or order.status == PARTIALLY_FILLED
        if order.side == side and (alive or order.req != NONE):   # req != NONE: an answer is pending
            return True, order.order_id, order.price_tick, order.cancellable
    # np.uint64(0), not 0: numba unifies uint64 with an int literal as float64, and a float order id
    # (rounded to 256) names no order: every cancel would fail with OrderNotFound.
    return False, np.uint64(0), 0, False


@njit
def quote(hbt, side, target_tick, allowed, order_id):
    """Keep one order on `side` at target_tick, or none if not allowed: (placed an order, sent a request,
    the bot's answer: 0, or hftbacktest's error code)."""
    found, resting_id, resting_tick, cancellable = resting(hbt, side)
    if found:
        if cancellable and (not allowed or abs(resting_tick - target_tick) >= REQUOTE_TICKS):
            return False, True, hbt.cancel(ASSET, resting_id, False)
        return False, False, 0
    if not allowed:
        return False, False, 0
    price = target_tick * hbt.depth(ASSET).tick_size
    if side == BUY:
        code = hbt.submit_buy_order(ASSET, order_id, price, ORDER_QTY, GTX, LIMIT, False)
    else:
        code = hbt.submit_sell_order(ASSET, order_id, price, ORDER_QTY, GTX, LIMIT, False)
    return code == 0, True, code


@njit
def open_orders(hbt):
    count = 0
    values = hbt.orders(ASSET).values()
    while values.has_next():
        order = values.get()
        if order.status == NEW or order.status == PARTIALLY_FILLED:
            count += 1
    return count


@njit
def report(hbt, position, failed, last_code):
    """The bot's log: position, open orders, the book's best ticks, requests the bot refused (with the last
    error code), then each order it holds."""
    depth = hbt.depth(ASSET)
    print("market_maker: position", position, "open orders", open_orders(hbt),
          "best", depth.best_bid_tick, depth.best_ask_tick, "failed requests", failed, "last code", last_code)
    values = hbt.orders(ASSET).values()
    while values.has_next():
        order = values.get()
        print("market_maker:   order", order.order_id, "side", order.side, "tick", order.price_tick,
              "status", order.status, "req", order.req)


@njit
def strategy(hbt):
    # Order ids follow the clock (ns), so ids of a restarted bot never repeat: the connector makes
    # Bybit orderLinkIds of them, which must be unique forever.
    last_id = 0
    last_request = [-SIDE_GAP_NS, -SIDE_GAP_NS]   # [buy, sell]: when each side last sent a request
    peak = 0.0
    last_report = 0
    failed = 0
    last_code = 0
    while hbt.elapse(STEP_NS) == 0:
        hbt.clear_inactive_orders(ASSET)
        position = hbt.position(ASSET)
        peak = max(peak, abs(position))
        if hbt.current_timestamp - last_report >= REPORT_NS:
            last_report = hbt.current_timestamp
            report(hbt, position, failed, last_code)
        depth = hbt.depth(ASSET)
        if math.isnan(depth.best_bid) or math.isnan(depth.best_ask):
            continue
        mid_tick = (depth.best_bid_tick + depth.best_ask_tick) / 2.0
        centre = mid_tick - SKEW_TICKS * position / ORDER_QTY
        # Post-only quotes never cross: a bid at most the best bid, an ask at least the best ask.
        bid_tick = min(int(math.floor(centre - HALF_SPREAD_TICKS)), depth.best_bid_tick)
        ask_tick = max(int(math.ceil(centre + HALF_SPREAD_TICKS)), depth.best_ask_tick)
        now = hbt.current_timestamp
        for i in range(2):
            side = BUY if i == 0 else SELL
            if now - last_request[i] < SIDE_GAP_NS:
                continue
            # One order per side at a time, so a fill can never take |position| past MAX_POSITION
            # (an order that brings |position| down is always allowed).
            after = abs(position + side * ORDER_QTY)
            allowed = after <= MAX_POSITION + 1e-9 or after < abs(position)
            next_id = max(last_id + 1, now)
            submitted, requested, code = quote(hbt, side, bid_tick if i == 0 else ask_tick, allowed, next_id)
            if code != 0:
                failed += 1
                last_code = code
            if submitted:
                last_id = next_id
            if requested:
                last_request[i] = now
    # Stopped (end of data, or a signal live): leave nothing resting.
    for side in (BUY, SELL):
        found, order_id, _, cancellable = resting(hbt, side)
        if found and cancellable:
            hbt.cancel(ASSET, order_id, False)
    return peak
