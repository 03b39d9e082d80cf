"""The matching engine on a book of its own: takes, queue, post-only, fees, position, P&L, orderLinkId."""
from __future__ import annotations

import pytest

from market.instrument import Instrument
from market.model import ASK, BID
from simulator.exchange import SymbolFeed
from simulator.trading.matching import Ledger, Refused

INST = Instrument("BTCUSDT", 0.1, 0.001)
MAKER, TAKER = 0.0002, 0.00055


def ledger() -> Ledger:
    return Ledger({"BTCUSDT": INST}, MAKER, TAKER, 10_000.0)


def book() -> tuple[dict[int, int], dict[int, int]]:
    """Bids 99.9 (5 lots), 99.8 (5); asks 100.0 (2 lots), 100.1 (3), 100.2 (10)."""
    return {999: 5, 998: 5}, {1000: 2, 1001: 3, 1002: 10}


def order(side: str, qty: str, price: str | None = None, **extra) -> dict:
    kind = {"orderType": "Limit", "price": price} if price else {"orderType": "Market"}
    return {"category": "linear", "symbol": "BTCUSDT", "side": side, "qty": qty, **kind, **extra}


def test_a_marketable_order_walks_the_levels_at_book_prices_and_pays_taker_fees():
    led = ledger()
    placed, out = led.create(order("Buy", "0.006", "100.1"), book(), 1)
    assert [(e.tick, e.lots, e.maker) for e in out.executions] == [(1000, 2, False), (1001, 3, False)]
    assert out.takes == [("BTCUSDT", ASK, 1000, 2), ("BTCUSDT", ASK, 1001, 3)]   # for the displayed book
    assert placed.status == "PartiallyFilled" and placed.filled == 5 and led.open["BTCUSDT"]   # 1 lot rests
    assert out.executions[1].fee == pytest.approx(100.1 * 0.003 * TAKER)
    market, out = led.create(order("Sell", "0.020"), book(), 2)
    assert [(e.tick, e.lots) for e in out.executions] == [(999, 5), (998, 4)]   # one lot stays on the side
    assert market.status == "Cancelled" and market.filled == 9


def test_orders_stacked_at_one_price_share_a_trade_in_the_order_they_queued():
    led = ledger()
    first, _ = led.create(order("Buy", "0.001", "99.7"), book(), 1)    # nothing displayed there: no queue
    second, _ = led.create(order("Buy", "0.001", "99.7"), book(), 2)
    out = led.on_trade("BTCUSDT", ASK, 997, 1, 3)                        # one lot traded: one fill
    assert [(e.order.order_id, e.lots) for e in out.executions] == [(first.order_id, 1)]
    assert led.positions["BTCUSDT"].size == 1 and second.status == "New"


def test_a_resting_order_fills_only_after_the_queue_ahead_of_it_trades():
    led = ledger()
    placed, out = led.create(order("Buy", "0.004", "99.9"), book(), 1)
    assert placed.status == "New" and placed.ahead == 5 and not out.executions
    assert not led.on_trade("BTCUSDT", ASK, 999, 3, 2).executions   # 3 of the 5 ahead
    led.on_level("BTCUSDT", BID, 999, 1)                               # a cancel ahead: 1 left
    out = led.on_trade("BTCUSDT", ASK, 999, 3, 3)                      # 1 ahead, then 2 for us
    assert [(e.tick, e.lots, e.maker) for e in out.executions] == [(999, 2, True)]
    assert out.executions[0].fee == pytest.approx(99.9 * 0.002 * MAKER)
    assert not led.on_trade("BTCUSDT", BID, 999, 9, 4).executions      # a buy taker never fills a bid
    out = led.on_trade("BTCUSDT", ASK, 997, 1, 5)                      # a trade through its price: the rest
    assert out.executions[0].lots == 2 and placed.status == "Filled" and not led.open["BTCUSDT"]


def test_post_only_that_would_cross_is_cancelled_with_bybits_reason():
    led = ledger()
    placed, out = led.create(order("Buy", "0.001", "100.0", timeInForce="PostOnly"), book(), 1)
    assert (placed.status, placed.reject) == ("Cancelled", "EC_PostOnlyWillTakeLiquidity")
    assert not out.executions and not out.takes
    resting, _ = led.create(order("Buy", "0.001", "99.9", timeInForce="PostOnly"), book(), 2)
    assert resting.status == "New"


def test_position_average_entry_realised_pnl_and_wallet():
    led = ledger()
    led.create(order("Buy", "0.002"), book(), 1)                       # 2 lots at 100.0
    led.create(order("Buy", "0.002", "100.1"), book(), 2)              # 2 lots at 100.0 again (fresh book)
    pos = led.positions["BTCUSDT"]
    assert pos.size == 4 and pos.entry == pytest.approx(100.0)
    led.create(order("Sell", "0.006"), book(), 3)                      # 5 at 99.9, 1 at 99.8: 4 close, 2 open
    fees = sum(e.fee for e in led.executions)
    pnl = (99.9 - 100.0) * 0.004 - fees
    assert pos.size == -2 and pos.entry == pytest.approx(99.85)
    assert pos.realised == pytest.approx(pnl) and led.balance == pytest.approx(10_000.0 + pnl)
    assert [e.closed for e in led.executions[-2:]] == [4, 0]


def test_cancel_amend_and_a_duplicate_order_link_id():
    led = ledger()
    placed, _ = led.create(order("Sell", "0.003", "100.3", orderLinkId="a"), book(), 1)
    with pytest.raises(Refused) as refused:
        led.create(order("Sell", "0.001", "100.4", orderLinkId="a"), book(), 2)
    assert refused.value.code == 110072
    led.amend({"symbol": "BTCUSDT", "orderLinkId": "a", "qty": "0.002"}, book(), 3)
    assert placed.lots == 2 and placed.status == "New"
    assert placed.ahead == 0                                            # less qty keeps its place
    _, out = led.amend({"symbol": "BTCUSDT", "orderId": placed.order_id, "price": "100.0"}, book(), 4)
    assert not out.executions and placed.ahead == 2                     # a new price: the back of that queue
    _, out = led.amend({"symbol": "BTCUSDT", "orderLinkId": "a", "price": "99.9"}, book(), 5)
    assert [(e.tick, e.lots) for e in out.executions] == [(999, 2)] and placed.status == "Filled"
    led2 = ledger()
    other, _ = led2.create(order("Sell", "0.003", "100.3", orderLinkId="b"), book(), 1)
    led2.cancel({"symbol": "BTCUSDT", "orderLinkId": "b"}, 2)
    assert other.status == "Cancelled"
    with pytest.raises(Refused) as refused:
        led2.cancel({"symbol": "BTCUSDT", "orderLinkId": "b"}, 3)
    assert refused.value.code == 110001


def test_what_an_order_takes_leaves_the_displayed_book_and_prints_a_trade():
    feed = SymbolFeed(INST, 60_000.0, 1, 100)
    feed.push(50, 0)
    best = min(feed.model.asks)
    resting = feed.model.asks[best]
    trade = feed.take(ASK, best, resting, 1)                           # the whole best ask
    assert best not in feed.model.asks and feed.model.best_ask == min(feed.model.asks)
    push = feed.push(50, 2)
    assert push is not None and (best, 0) in push.asks                 # the stream deletes the level
    assert (trade["S"], trade["p"], trade["v"]) == ("Buy", feed.prices.price(best), feed.prices.size(resting))
    assert list(feed.trades) == [trade]
