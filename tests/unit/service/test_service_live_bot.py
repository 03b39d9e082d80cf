"""The bot process's loop, driven through a fake bot: book window diffs, trades, coalescing, stale and rebuild."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from service.events import BookDelta, BookSnapshot, SourceState, SourceStatus, Trade
from service.sources.live_bot import BUY_EVENT, INVALID_MAX, INVALID_MIN, BotLoop, Window, scan_window
from service.sources.live_messages import BotConfig

TICK = 0.1
SELL_EVENT = 1 << 28


class FakeDepth:
    """As much of hftbacktest's market depth as scan_window reads: each touch, each tick's qty."""

    def __init__(self):
        self.bids: dict[int, float] = {}
        self.asks: dict[int, float] = {}

    best_bid_tick = property(lambda self: max(self.bids, default=INVALID_MIN))
    best_ask_tick = property(lambda self: min(self.asks, default=INVALID_MAX))
    best_bid = property(lambda self: self.best_bid_tick * TICK if self.bids else math.nan)
    best_ask = property(lambda self: self.best_ask_tick * TICK if self.asks else math.nan)

    def bid_qty_at_tick(self, tick):
        return self.bids.get(tick, 0.0)

    def ask_qty_at_tick(self, tick):
        return self.asks.get(tick, 0.0)


class FakeBot:
    """Answers wait_next_feed from a script of (code, seconds it takes); times out when the script is empty."""

    def __init__(self, clock):
        self.clock = clock
        self.script: list[tuple[int, float]] = []
        self.depths = [FakeDepth()]
        self.trades: list[list[dict]] = [[]]
        self.cleared = 0
        self.depth_calls = 0
        self.closed = False

    def wait_next_feed(self, include_order_resp, timeout_ns):
        assert include_order_resp is False and timeout_ns >= 0
        code, took = self.script.pop(0) if self.script else (0, timeout_ns / 1e9)
        self.clock.now += took
        return code

    def depth(self, i):
        self.depth_calls += 1
        return self.depths[i]

    def last_trades(self, i):
        return self.trades[i]

    def clear_last_trades(self, i):
        self.cleared += 1
        self.trades[i] = []

    def feed_latency(self, i):
        return (111, 222)

    def close(self):
        self.closed = True


class Harness:
    def __init__(self, **config):
        self.clock = SimpleNamespace(now=100.0)
        self.bots: list[FakeBot] = []
        self.sent: list = []
        self.build_error: Exception | None = None
        self.parent = True
        self.slept: list[float] = []
        self.config = BotConfig(connector="bybit_hft", instruments=(("BTCUSDT", TICK, 0.001),),
                                book_ticks=5, stale_after_s=5.0, rebuild_after_s=15.0, **config)
        self.loop = BotLoop(self.config, self.make_bot, self.sent.extend,
                            clock=lambda: self.clock.now, wall=lambda: 999,
                            parent_alive=lambda: self.parent, sleep=self.slept.append)

    def make_bot(self):
        if self.build_error is not None:
            raise self.build_error
        self.bots.append(FakeBot(self.clock))
        return self.bots[-1]

    @property
    def bot(self):
        return self.bots[-1]

    def step(self, *script):
        start = len(self.sent)
        if self.bots:
            self.bot.script.extend(script)
        return self.loop.step(), self.sent[start:]   # alive, and what the step sent

    def feed(self):
        """One feed, well after the last scan (so it is scanned at once): what the loop sent."""
        self.clock.now += 1
        return self.step((2, 0.001))[1]

    def states(self, messages):
        return [m.state for m in messages if isinstance(m, SourceStatus)]


@pytest.fixture
def h():
    """A loop that has built its bot, which waits for the connector."""
    harness = Harness()
    harness.step()
    return harness


def test_waiting_then_a_snapshot_then_only_what_changed_inside_the_window():
    h = Harness()
    alive, out = h.step()
    assert alive and h.states(out) == [SourceState.WAITING_FOR_CONNECTOR]
    assert "registered BTCUSDT with connector 'bybit_hft'" in out[0].detail

    depth = h.bot.depths[0]
    depth.bids.update({1000: 1.0, 999: 2.0, 990: 5.0})   # 990 is 10 ticks down: outside a 5-tick window
    depth.asks.update({1001: 1.5, 1003: 1.0})
    out = h.feed()
    assert h.states(out) == [SourceState.CONNECTED]
    assert BookSnapshot("BTCUSDT", 111, 222, ((1000, 1.0), (999, 2.0)), ((1001, 1.5), (1003, 1.0))) in out

    depth.bids[1000] = 3.0
    del depth.asks[1001]            # best ask moves to 1003: the window now reaches 1007
    depth.asks[1007] = 4.0
    out = h.feed()
    assert out == [BookDelta("BTCUSDT", 111, 222, ((1000, 3.0),), ((1007, 4.0), (1001, 0.0)))]

    del depth.bids[1000], depth.bids[999]   # best bid falls to 990: the levels above leave the book
    out = h.feed()
    assert [type(m) for m in out] == [BookDelta] and out[0].asks == ()
    assert sorted(out[0].bids) == [(990, 5.0), (999, 0.0), (1000, 0.0)]

    out = h.feed()
    assert out == []                # nothing changed: nothing sent


def test_feeds_arriving_within_5ms_are_scanned_once(h):
    depth = h.bot.depths[0]
    depth.bids[1000] = 1.0
    depth.asks[1001] = 1.0
    h.clock.now += 1
    h.step((2, 0.0001))            # first feed: scanned at once
    calls = h.bot.depth_calls
    for qty in (2.0, 3.0, 4.0):    # three more feeds within a millisecond
        depth.bids[1000] = qty
        h.step((2, 0.0002))
    assert h.bot.depth_calls == calls
    _, out = h.step()              # the coalescing wait times out: one delta with the latest quantity
    assert h.bot.depth_calls == calls + 1
    assert out == [BookDelta("BTCUSDT", 111, 222, ((1000, 4.0),), ())]


def test_trades_are_copied_with_taker_side_and_tick_then_cleared_before_the_book_change(h):
    bot = h.bot
    bot.depths[0].bids[1000] = 1.0
    bot.trades[0] = [
        {"ev": BUY_EVENT | 2 | (1 << 30), "exch_ts": 5, "local_ts": 6, "px": 100.1, "qty": 0.25},
        {"ev": SELL_EVENT | 2 | (1 << 30), "exch_ts": 7, "local_ts": 8, "px": 99.99999999, "qty": 0.5},
    ]
    out = h.feed()
    trades = [m for m in out if isinstance(m, Trade)]
    assert trades == [Trade("BTCUSDT", 5, 6, 1001, 0.25, "buy"), Trade("BTCUSDT", 7, 8, 1000, 0.5, "sell")]
    assert out.index(trades[-1]) < [type(m) for m in out].index(BookSnapshot)
    assert bot.cleared == 1 and bot.trades[0] == []


def test_a_feed_that_stops_is_reported_stale_then_the_bot_is_rebuilt_and_resnapshotted(h):
    first = h.bot
    first.depths[0].bids[1000] = 1.0
    h.feed()
    messages = []
    for _ in range(40):            # 0.5 s idle waits: 20 s without a feed
        messages += h.step()[1]
        if len(h.bots) == 2:
            break
    states = h.states(messages)
    assert states[:2] == [SourceState.STALE, SourceState.WAITING_FOR_CONNECTOR]
    details = [m.detail for m in messages if isinstance(m, SourceStatus)]
    assert "no feed for 5s" in details[0]
    assert "feed stopped for 15s: rebuilding the bot" in details[1]
    assert first.closed and len(h.bots) == 2
    assert "(attempt 2)" in details[-1]
    h.bot.depths[0].bids[1000] = 1.0   # the new bot gets the connector's book: sent as a snapshot again
    out = h.feed()
    assert [type(m) for m in out] == [SourceStatus, BookSnapshot]


def test_without_a_connector_the_bot_is_rebuilt_every_rebuild_period(h):
    for _ in range(70):            # 35 s of idle waits
        h.step()
    assert len(h.bots) == 3
    statuses = [m for m in h.sent if isinstance(m, SourceStatus)]
    assert {m.state for m in statuses} == {SourceState.WAITING_FOR_CONNECTOR}
    assert any("no feed for 15s: rebuilding the bot to register with connector 'bybit_hft' again" in m.detail
               for m in statuses)


def test_a_signal_ends_the_loop_and_closes_the_bot(h):
    h.bot.script.append((1, 0.0))
    h.loop.run()
    assert h.bot.closed
    assert h.sent[-1] == SourceStatus(SourceState.STOPPED, "interrupted by a signal")


def test_an_error_code_rebuilds_the_bot(h):
    alive, out = h.step((7, 0.0))
    assert alive and out == [
        SourceStatus(SourceState.FAILED, "wait_next_feed returned error code 7; rebuilding the bot")]
    assert h.bots[0].closed
    h.step()
    assert len(h.bots) == 2


def test_a_bot_that_cannot_be_built_is_reported_and_retried():
    h = Harness()
    h.build_error = RuntimeError("iceoryx2 service creation failed")
    alive, out = h.step()
    assert alive and out == [SourceStatus(
        SourceState.FAILED, "could not build the live bot: RuntimeError: iceoryx2 service creation failed")]
    assert h.slept == [2.0]
    h.build_error = None
    h.step()
    assert len(h.bots) == 1 and h.states(h.sent)[-1] == SourceState.WAITING_FOR_CONNECTOR


def test_the_loop_ends_when_the_parent_is_gone_or_the_pipe_breaks(h):
    h.parent = False
    h.clock.now += 2
    assert h.step()[0] is False

    def broken(batch):
        raise BrokenPipeError
    h = Harness()
    h.loop.send = broken
    assert h.loop.step() is False


def test_scan_window_reads_n_ticks_from_each_touch_and_handles_empty_sides():
    depth = FakeDepth()
    bids, asks = [0.0] * 3, [0.0] * 3
    assert scan_window(depth, bids, asks)[::2] == (False, False)
    assert bids == asks == [0.0, 0.0, 0.0]
    depth.bids.update({50: 1.0, 48: 2.0, 40: 9.0})
    depth.asks.update({52: 3.0})
    assert scan_window(depth, bids, asks) == (True, 50, True, 52)
    assert bids == [1.0, 0.0, 2.0] and asks == [3.0, 0.0, 0.0]


def test_window_sends_nothing_for_an_empty_book_and_a_snapshot_first():
    window = Window()
    assert window.look(False, 0, [0.0], False, 0, [0.0]) is None
    assert window.look(True, 10, [1.0, 0.0], False, 0, [0.0, 0.0]) == (BookSnapshot, ((10, 1.0),), ())
    assert window.look(True, 10, [1.0, 0.0], False, 0, [0.0, 0.0]) is None
    assert window.look(False, 0, [0.0, 0.0], False, 0, [0.0, 0.0]) == (BookDelta, ((10, 0.0),), ())


@pytest.mark.parametrize("ticks", [1, 100])
def test_the_scan_buffers_follow_the_configured_depth(ticks):
    h = Harness()
    h.loop = BotLoop(BotConfig("c", (("X", 1.0, 1.0),), book_ticks=ticks), h.make_bot, h.sent.extend)
    assert len(h.loop.buffers[0][0]) == ticks
