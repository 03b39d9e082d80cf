"""The order round trip as a strategy sees it (bench/orders.py runs it in the bot image): a post-only buy far
below the book, submitted and waited for, then cancelled and waited for, ORDERS times; each wait ends when the
connector forwards the exchange's `order` stream push. Prints one line per order, in microseconds."""
import math

from numba import njit

from hftbacktest.order import GTX, LIMIT, NEW, CANCELED

ASSET = 0
ORDERS = 200
PACE_NS = 60_000_000   # ~16 orders/s, under the bench's TRADING_MAX_ORDERS_PER_S


@njit
def strategy(hbt):
    while hbt.elapse(100_000_000) == 0:
        if not math.isnan(hbt.depth(ASSET).best_bid):
            break
    base = hbt.current_timestamp
    for i in range(ORDERS):
        depth = hbt.depth(ASSET)
        price = (depth.best_bid_tick - 200) * depth.tick_size
        t0 = hbt.current_timestamp
        hbt.submit_buy_order(ASSET, base + i, price, 0.001, GTX, LIMIT, True)
        t1 = hbt.current_timestamp
        created = hbt.orders(ASSET).get(base + i).status == NEW
        hbt.cancel(ASSET, base + i, True)
        t2 = hbt.current_timestamp
        cancelled = hbt.orders(ASSET).get(base + i).status == CANCELED
        print("roundtrip", i, (t1 - t0) // 1000, (t2 - t1) // 1000, created, cancelled)
        hbt.clear_inactive_orders(ASSET)
        if hbt.elapse(PACE_NS) != 0:
            return 0.0
    print("roundtrip: done")
    while hbt.elapse(1_000_000_000) == 0:
        pass
    return 0.0
