"""A strategy that asks for more than the connector allows, once each way (tests/e2e/test_trading.py runs it
with TRADING_MAX_ORDER_QTY 0.005, TRADING_MAX_POSITION 0.004, TRADING_MAX_OPEN_ORDERS 4, TRADING_MAX_ORDERS_PER_S 3)."""
import math

from numba import njit

from hftbacktest.order import GTX, IOC, LIMIT

ASSET = 0
SECOND = 1_000_000_000


@njit
def resting_buy(hbt, order_id, ticks_below):
    depth = hbt.depth(ASSET)
    price = (depth.best_bid_tick - ticks_below) * depth.tick_size
    hbt.submit_buy_order(ASSET, order_id, price, 0.001, GTX, LIMIT, True)


@njit
def strategy(hbt):
    while hbt.elapse(100_000_000) == 0:
        if not math.isnan(hbt.depth(ASSET).best_bid):
            break
    base = hbt.current_timestamp
    depth = hbt.depth(ASSET)
    # Too large: max_order_qty.
    hbt.submit_buy_order(ASSET, base + 1, (depth.best_bid_tick - 50) * depth.tick_size, 0.01, GTX, LIMIT, True)
    # Sells that take liquidity: 0.002 twice reaches max_position (-0.004); one more lot is refused.
    for i in range(3):
        depth = hbt.depth(ASSET)
        qty = 0.002 if i < 2 else 0.001
        hbt.submit_sell_order(ASSET, base + 30 + i, (depth.best_bid_tick - 20) * depth.tick_size, qty, IOC, LIMIT, True)
        hbt.elapse(400_000_000)
    hbt.elapse(1_200_000_000)
    # Five at once: three pass, then max_orders_per_s.
    for i in range(5):
        resting_buy(hbt, base + 10 + i, 50 + i)
    hbt.elapse(1_200_000_000)
    # Two more a second later: the fourth open order passes, the fifth meets max_open_orders.
    for i in range(2):
        resting_buy(hbt, base + 20 + i, 60 + i)
    print("greedy: done, position", hbt.position(ASSET))
    while hbt.elapse(SECOND) == 0:
        pass
    return 0.0
