"""The bot process's loop, driven through a fake bot: book diffs at every level, trades and their numbers,
coalescing, stale and rebuild."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from service.events import BookDelta, BookSnapshot, FeedLoss, SourceState, SourceStatus, Trade
from service.sources import live_bot
from service.sources.live_bot import BUY_EVENT, BotLoop, Window, read_book
from service.sources.live_messages import BotConfig

TICK = 0.1
SELL_EVENT = 1 << 28


@pytest.fixture(autouse=True)
def plain_numpy(monkeypatch):
    """The unit venv has no numpy (like the service-mock image): read_book's few numpy calls, in plain
    Python. The compiled read on a real hftbacktest depth runs end to end (tests/e2e/test_every_level.py
    checks the service never fell back to reading the book in Python)."""
    shim = SimpleNamespace(empty=lambda n, dtype: [dtype(0)] * n, int64=int, float64=float, rint=round)
    monkeypatch.setattr(live_bot, "np", shim)


class FakeDepth:
    """As much of hftbacktest's market depth as read_book uses: its snapshot (bids best first, then asks
    best first, as hftbacktest lists them) and snapshot_free, which must be called once per snapshot."""

    def __init__(self):
        self.bids: dict[int, float] = {}
        self.asks: dict[int, float] = {}
        self.outstanding = 0

    def snapshot(self):
        rows = [{"ev": BUY_EVENT, "px": tick * TICK, "qty": qty} for tick, qty in sorted(self.bids.items(), reverse=True)]
        rows += [{"ev": SELL_EVENT, "px": tick * TICK, "qty": qty} for tick, qty in sorted(self.asks.items())]
        self.outstanding += 1
        return rows

    def snapshot_free(self, levels):
        self.outstanding -= 1


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
        self.batches: list[list] = []
        self.build_error: Exception | None = None
        self.parent = True
        self.slept: list[float] = []
        self.config = BotConfig(connector="bybit_hft", instruments=(("BTCUSDT", TICK, 0.001),),
                                stale_after_s=5.0, rebuild_after_s=15.0, **config)
        self.loop = BotLoop(self.config, self.make_bot, self.send,
                            clock=lambda: self.clock.now, wall=lambda: 999,
                            parent_alive=lambda: self.parent, sleep=self.slept.append)

    def send(self, batch):
        self.batches.append(list(batch))
        self.sent.extend(batch)

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
        """One feed, then the channel found empty (so the books are read): what the loop sent."""
        self.clock.now += 1
        out = self.step((2, 0.001))[1]
        return out + self.step((0, 0.0))[1]

    def states(self, messages):
        return [m.state for m in messages if isinstance(m, SourceStatus)]


@pytest.fixture
def h():
    """A loop that has built its bot, which waits for the connector."""
    harness = Harness()
    harness.step()
    return harness


def test_waiting_then_a_snapshot_of_every_level_then_only_what_changed():
    h = Harness()
    alive, out = h.step()
    assert alive and h.states(out) == [SourceState.WAITING_FOR_CONNECTOR]
    assert "registered BTCUSDT with connector 'bybit_hft'" in out[0].detail

    depth = h.bot.depths[0]
    depth.bids.update({1000: 1.0, 999: 2.0, 500: 5.0})   # 500 ticks below the touch: still in the book
    depth.asks.update({1001: 1.5, 1003: 1.0, 9001: 7.0})
    out = h.feed()
    assert h.states(out) == [SourceState.CONNECTED]
    assert BookSnapshot("BTCUSDT", 111, 222, ((1000, 1.0), (999, 2.0), (500, 5.0)),
                        ((1001, 1.5), (1003, 1.0), (9001, 7.0))) in out

    depth.bids[1000] = 3.0
    del depth.asks[1001]
    depth.asks[20007] = 4.0            # 19,000 ticks away
    out = h.feed()
    assert out == [BookDelta("BTCUSDT", 111, 222, ((1000, 3.0),), ((20007, 4.0), (1001, 0.0)))]

    del depth.bids[1000], depth.bids[999]
    out = h.feed()
    assert [type(m) for m in out] == [BookDelta] and out[0].asks == ()
    assert sorted(out[0].bids) == [(999, 0.0), (1000, 0.0)]

    out = h.feed()
    assert out == []                # nothing changed: nothing sent
    assert depth.outstanding == 0, "every snapshot was handed back to be freed"


def test_a_thousand_levels_far_apart_all_reach_the_web_process():
    h = Harness()
    h.step()
    depth = h.bot.depths[0]
    depth.bids.update({100_000 - 250 * i: 1.0 + i for i in range(500)})
    depth.asks.update({100_001 + 250 * i: 2.0 + i for i in range(500)})
    snapshot = [m for m in h.feed() if isinstance(m, BookSnapshot)][0]
    assert dict(snapshot.bids) == depth.bids and dict(snapshot.asks) == depth.asks


def test_a_burst_of_feeds_is_drained_then_read_once(h):
    depth = h.bot.depths[0]
    depth.bids[1000] = 1.0
    depth.asks[1001] = 1.0
    h.feed()
    calls = h.bot.depth_calls
    timeouts = []
    wait = h.bot.wait_next_feed
    h.bot.wait_next_feed = lambda inc, timeout_ns: timeouts.append(timeout_ns) or wait(inc, timeout_ns)
    for qty in (2.0, 3.0, 4.0):    # one exchange message's events, back to back
        depth.bids[1000] = qty
        h.step((2, 0.0001))
    assert h.bot.depth_calls == calls, "not read while events are waiting"
    _, out = h.step()              # the channel is empty: read once, with the latest quantity
    assert timeouts == [int(0.5e9), 200_000, 200_000, 200_000], "an idle wait, then short waits that drain the channel"
    assert h.bot.depth_calls == calls + 1
    assert out == [BookDelta("BTCUSDT", 111, 222, ((1000, 4.0),), ())]


def test_a_feed_that_never_pauses_is_still_read_every_5ms(h):
    depth = h.bot.depths[0]
    depth.bids[1000] = 1.0
    h.feed()
    calls = h.bot.depth_calls
    for i in range(10):            # an event every 2 ms for 20 ms, never a wait that finds the channel empty
        depth.bids[1000] = 2.0 + i
        h.step((2, 0.002))
    assert h.bot.depth_calls - calls == 2, "read at 8 and 16 ms into the stream (5 ms after its first unread event), not after each event"


def trade(side, px, qty, number=0, ts=(5, 6)):
    return {"ev": side | 2 | (1 << 30), "exch_ts": ts[0], "local_ts": ts[1], "px": px, "qty": qty, "ival": number}


def test_trades_are_copied_with_taker_side_and_tick_then_cleared_before_the_book_change(h):
    bot = h.bot
    bot.depths[0].bids[1000] = 1.0
    bot.trades[0] = [trade(BUY_EVENT, 100.1, 0.25), trade(SELL_EVENT, 99.99999999, 0.5, ts=(7, 8))]
    out = h.feed()
    trades = [m for m in out if isinstance(m, Trade)]
    assert trades == [Trade("BTCUSDT", 5, 6, 1001, 0.25, "buy"), Trade("BTCUSDT", 7, 8, 1000, 0.5, "sell")]
    assert out.index(trades[-1]) < [type(m) for m in out].index(BookSnapshot)
    assert bot.cleared == 1 and bot.trades[0] == []
    assert not any(isinstance(m, FeedLoss) for m in out), "unnumbered trades: nothing to tell"
    read = [m.read_ns for m in out if isinstance(m, (Trade, BookSnapshot))]
    assert read == [999, 999, 999], "each trade and book change carries when the bot read it (the hop metric)"


def test_trades_leave_the_bot_process_before_its_books_are_read(h):
    """A trade's latency does not include reading (up to) every level of the book."""
    batches, events = [], []
    h.loop.send = lambda batch: (batches.append(batch), events.append(("sent", [type(m) for m in batch])))
    read = h.loop.read
    h.loop.read = lambda depth, tick: (events.append(("read", None)), read(depth, tick))[1]
    h.bot.depths[0].bids[1000] = 1.0
    h.bot.trades[0] = [trade(BUY_EVENT, 100.1, 0.25)]
    h.feed()
    first_read = events.index(("read", None))
    trade_sends = [i for i, (what, types) in enumerate(events) if what == "sent" and Trade in types]
    assert trade_sends and trade_sends[0] < first_read, events
    assert any(BookSnapshot in types for what, types in events[first_read:] if what == "sent"), events


def test_the_heap_is_frozen_once_trades_and_a_book_have_both_been_read(h):
    """A full garbage collection over numba's heap stalls the read it lands in; frozen once every read is compiled."""
    frozen = []
    h.loop.freeze = lambda: frozen.append(len(h.sent))
    h.bot.trades[0] = [trade(BUY_EVENT, 100.1, 0.25)]
    h.feed()
    assert frozen == [], "the book has not been read yet: its compiled read would land outside the frozen heap"
    h.bot.depths[0].bids[1000] = 1.0
    h.feed()
    assert len(frozen) == 1
    h.bot.trades[0] = [trade(SELL_EVENT, 100.0, 0.5)]
    h.bot.depths[0].bids[1001] = 2.0
    h.feed()
    assert len(frozen) == 1, "frozen once: freezing again would keep whatever garbage is young at the time"


def test_skipped_trade_numbers_are_reported_as_lost_and_the_bot_is_rebuilt_for_the_whole_book(h):
    bot = h.bot
    bot.depths[0].bids[1000] = 1.0
    bot.trades[0] = [trade(BUY_EVENT, 100.0, 0.1, n) for n in (41, 42, 43)]
    assert not any(isinstance(m, FeedLoss) for m in h.feed())
    bot.trades[0] = [trade(BUY_EVENT, 100.0, 0.1, n) for n in (1, 2)]   # the connector restarted: a new count
    assert not any(isinstance(m, FeedLoss) for m in h.feed())
    bot.depths[0].bids[1000] = 9.0
    bot.trades[0] = [trade(BUY_EVENT, 100.0, 0.1, n) for n in (3, 9, 10, 20)]
    out = h.feed()
    assert [m for m in out if isinstance(m, FeedLoss)] == [FeedLoss("BTCUSDT", 5 + 9)]
    assert len([m for m in out if isinstance(m, Trade)]) == 4, "what arrived is still delivered"
    assert not any(isinstance(m, (BookDelta, BookSnapshot)) for m in out), "a book that lost changes is not sent"
    assert bot.closed and h.states(out)[-1] == SourceState.WAITING_FOR_CONNECTOR
    assert "lost 14 BTCUSDT trade(s) between connector 'bybit_hft' and the bot" in out[-1].detail
    together = [b for b in h.batches if FeedLoss("BTCUSDT", 5 + 9) in b]
    assert len(together) == 1 and together[0][-1] == out[-1], "the loss and its rebuild are told in one batch"
    h.step()                                    # a new bot registers: the connector sends it the whole book
    h.bot.depths[0].bids[1000] = 9.0
    h.bot.trades[0] = [trade(BUY_EVENT, 100.0, 0.1, n) for n in (25, 26)]
    out = h.feed()
    assert len(h.bots) == 2 and BookSnapshot("BTCUSDT", 111, 222, ((1000, 9.0),), ()) in out
    # 21-24 went while no bot listened: counted, and no second rebuild (this bot has the whole book).
    assert [m for m in out if isinstance(m, FeedLoss)] == [FeedLoss("BTCUSDT", 4)] and not h.bot.closed


def test_losses_in_a_row_rebuild_the_bot_at_most_every_5s(h):
    h.bot.depths[0].bids[1000] = 1.0
    number, rebuilt = 0, []
    for second in range(12):                    # a gap of one trade every second (h.feed: 1 s apart)
        number += 2
        h.bot.trades[0] = [trade(BUY_EVENT, 100.0, 0.1, number)]
        h.bot.depths[0].bids[1000] = 1.0 + second
        start = len(h.batches)
        h.feed()
        if h.bot.closed:
            rebuilt.append(second)
            h.step()                            # the rebuild
        elif second:
            told = next(b for b in h.batches[start:] if any(isinstance(m, FeedLoss) for m in b))
            assert not any(isinstance(m, (BookDelta, BookSnapshot)) for m in told), \
                "a loss with no rebuild due does not hold its trades back behind the book's read"
    losses = [m for m in h.sent if isinstance(m, FeedLoss)]
    assert len(losses) == 11, "every gap is reported"
    assert rebuilt == [1, 6, 11], "rebuilt at the first gap, then at most every 5 s"


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


def test_a_pipe_that_breaks_on_the_trades_ends_the_loop_though_the_book_has_no_change(h):
    """The trades go out before the book is read: their send failing must end the step like any other."""
    h.step((2, 0.001))   # connected: the status is sent
    sends = []

    def broken(batch):
        sends.append(batch)
        raise BrokenPipeError
    h.loop.send = broken
    h.bot.trades[0] = [trade(BUY_EVENT, 100.1, 0.25)]   # no book at all: nothing else to send
    assert h.loop.step() is False
    assert [type(m) for m in sends[0]] == [Trade]


def test_read_book_splits_bids_from_asks_in_ticks_and_frees_the_snapshot():
    depth = FakeDepth()
    ticks, qtys, n_bids = read_book(depth, TICK)
    assert (list(ticks), list(qtys), n_bids) == ([], [], 0)
    depth.bids.update({50: 1.0, 48: 2.0, -40: 9.0})
    depth.asks.update({52: 3.0, 5_000_000: 4.0})
    ticks, qtys, n_bids = read_book(depth, TICK)
    assert list(ticks) == [50, 48, -40, 52, 5_000_000] and list(qtys) == [1.0, 2.0, 9.0, 3.0, 4.0]
    assert n_bids == 3 and depth.outstanding == 0


def test_window_sends_nothing_for_an_empty_book_and_a_snapshot_first():
    window = Window()
    assert window.look([], [], 0) is None
    assert window.look([10], [1.0], 1) == (BookSnapshot, ((10, 1.0),), ())
    assert window.look([10], [1.0], 1) is None
    assert window.look([], [], 0) == (BookDelta, ((10, 0.0),), ())
