"""Runs in the bot process only: hftbacktest's live bot, a mirror of its books, their changes sent as messages.

Spawned by live_supervisor.py ('spawn'); its batches reach the web process through live_messages.py."""
from __future__ import annotations

import functools
import gc
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

try:
    import numpy as np   # the live image has it; the mock image imports this module without running it
except ImportError:  # pragma: no cover - exercised by the service-mock image only
    np = None

from ..events import BUY_EVENT, BookDelta, BookSnapshot, FeedLoss, Levels, SourceState, SourceStatus, Trade
from .live_messages import BotConfig, Message, send

# wait_next_feed's answers (hftbacktest's ElapseResult); anything else is an error code.
TIMEOUT_OR_BATCH_END, INTERRUPTED, MARKET_FEED, ORDER_RESPONSE = 0, 1, 2, 3

DRAIN_GRACE_S = 0.0002    # after a feed, how long a wait may find nothing before the books are read
MAX_DRAIN_S = 0.005       # a feed that never pauses is still read this often
LOSS_REBUILD_S = 5.0      # at most one rebuild for lost trades this often (an overloaded bot must not thrash)
IDLE_WAIT_S = 0.5         # longest single wait, so staleness is noticed promptly
PARENT_CHECK_S = 1.0
BUILD_RETRY_S = 2.0


def read_book(depth: Any, tick_size: float) -> tuple[Any, Any, int]:
    """Every level of the bot's book: (ticks, quantities, how many of them are bids).

    hftbacktest's depth snapshot lists the bids best first, then the asks best first, each level once,
    however far from the touch. Plain Python that numba can compile (one call instead of one jitclass
    call per level); the snapshot is copied, then handed back to the bot to free.
    """
    levels = depth.snapshot()
    n = len(levels)
    ticks = np.empty(n, np.int64)
    qtys = np.empty(n, np.float64)
    bids = 0
    for i in range(n):
        level = levels[i]
        ticks[i] = np.int64(np.rint(level["px"] / tick_size))
        qtys[i] = level["qty"]
        if level["ev"] & BUY_EVENT:
            bids += 1
    depth.snapshot_free(levels)
    return ticks, qtys, bids


class Window:
    """What the web process was last sent of one symbol's book, and what changed since."""

    __slots__ = ("bids", "asks")

    def __init__(self) -> None:
        self.bids: dict[int, float] | None = None
        self.asks: dict[int, float] | None = None

    def reset(self) -> None:
        self.bids = self.asks = None

    def look(self, ticks: Any, qtys: Any, n_bids: int,
             ) -> tuple[type[BookSnapshot] | type[BookDelta], Levels, Levels] | None:
        """(BookSnapshot, bids, asks) the first time there is a book, then (BookDelta, …) on a change."""
        levels = list(zip(_list(ticks), _list(qtys)))
        bids = {tick: q for tick, q in levels[:n_bids] if q > 0}
        asks = {tick: q for tick, q in levels[n_bids:] if q > 0}
        if self.bids is None or self.asks is None:
            if not bids and not asks:
                return None
            self.bids, self.asks = bids, asks
            return BookSnapshot, tuple(sorted(bids.items(), reverse=True)), tuple(sorted(asks.items()))
        bid_changes = _changes(self.bids, bids)
        ask_changes = _changes(self.asks, asks)
        self.bids, self.asks = bids, asks
        if not bid_changes and not ask_changes:
            return None
        return BookDelta, bid_changes, ask_changes


def _list(values: Any) -> list:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _changes(old: dict[int, float], new: dict[int, float]) -> Levels:
    out = [(tick, qty) for tick, qty in new.items() if old.get(tick) != qty]
    out.extend((tick, 0.0) for tick in old if tick not in new)
    return tuple(out)


@dataclass(eq=False)
class BotLoop:
    """Waits on the bot, mirrors its books and trades, and rebuilds it when the feed stops.

    Every level of each book is mirrored, however far from the touch. Our connector sends each exchange
    message as one batch: the bot applies it inside one wait, which answers 0 at the batch's end, and the
    books are read then. For events sent one by one (upstream's connectors) the bot answers 2 for each;
    the loop then drains what follows (waits of DRAIN_GRACE_S) and reads the books once a wait finds
    nothing, so one exchange message is read once. A feed that never pauses is still read MAX_DRAIN_S
    after its first unread event. What `send` gets are batches
    of live_messages.Message: BookSnapshot, BookDelta, Trade, FeedLoss and SourceStatus.
    The callables stand for the process around the loop, so a test can drive it without one.
    """

    config: BotConfig
    make_bot: Callable[[], Any]
    send: Callable[[list[Message]], None]
    read: Callable[[Any, float], tuple[Any, Any, int]] = read_book
    slack: Callable[[bool], None] = lambda tight: None
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], int] = time.time_ns
    parent_alive: Callable[[], bool] = lambda: True
    sleep: Callable[[float], None] = time.sleep
    freeze: Callable[[], None] = lambda: None   # gc.freeze in the bot process (see warmed)
    outbox: list[Message] = field(init=False, default_factory=list)
    bot: Any = field(init=False, default=None)
    builds: int = field(init=False, default=0)
    status: SourceStatus | None = field(init=False, default=None)   # the last one sent
    built_at: float = field(init=False, default=0.0)
    last_feed: float | None = field(init=False, default=None)
    last_scan: float = field(init=False, default=0.0)
    dirty_since: float | None = field(init=False, default=None)   # the first feed not yet read
    feed_times: bool = field(init=False, default=True)
    broken: bool = field(init=False, default=False)   # a send failed: the web process is gone

    def __post_init__(self) -> None:
        self.windows = [Window() for _ in self.config.instruments]
        # The connector numbers each symbol's trades (1, 2, …, in the event's ival): the last number seen,
        # kept across rebuilds (trades the connector sent while no bot listened are lost too), and whether
        # the current bot has seen one yet.
        self.trade_numbers = [0 for _ in self.config.instruments]
        self.numbered = [False for _ in self.config.instruments]
        self.loss_rebuilt_at = -LOSS_REBUILD_S
        self.rebuild_due = False
        self.parent_checked = self.clock()
        self.cold = {"trades", "book"}   # reads not yet done once (numba compiles each on its first call)

    # --- the loop ---

    def run(self) -> None:
        try:
            while self.step():
                pass
        finally:
            self.close_bot()
            self.flush()

    def step(self) -> bool:
        """One wait on the bot and what follows; False when the process should end."""
        now = self.clock()
        if self.bot is None and not self.build(now):
            self.sleep(BUILD_RETRY_S)
            return self.flush() and self.parent_ok(self.clock())
        draining = self.dirty_since is not None
        self.slack(draining)
        timeout = DRAIN_GRACE_S if draining else IDLE_WAIT_S
        rc = int(self.bot.wait_next_feed(False, int(timeout * 1e9)))
        now = self.clock()
        if rc == INTERRUPTED:
            self.set_state(SourceState.STOPPED, "interrupted by a signal", again=True)
            return False
        if rc == MARKET_FEED:
            self.feed_seen(now)
            if self.dirty_since is None:
                self.dirty_since = now
            elif now - self.dirty_since >= MAX_DRAIN_S:
                self.look(now)
        elif rc in (TIMEOUT_OR_BATCH_END, ORDER_RESPONSE):
            self.look(now)
        else:
            self.set_state(SourceState.FAILED, f"wait_next_feed returned error code {rc}; rebuilding the bot",
                           again=True)
            self.close_bot()
            return self.flush() and self.parent_ok(now)
        self.check_health(now)
        return self.flush() and self.parent_ok(now)

    def build(self, now: float) -> bool:
        self.builds += 1
        try:
            self.bot = self.make_bot()
        except Exception as exc:  # a bad symbol or IPC setup error: report it and try again
            self.set_state(SourceState.FAILED, f"could not build the live bot: {type(exc).__name__}: {exc}",
                           again=True)
            return False
        self.built_at = now
        self.last_feed = None
        self.dirty_since = None
        for window in self.windows:
            window.reset()
        self.numbered = [False for _ in self.config.instruments]
        symbols = ", ".join(symbol for symbol, _, _ in self.config.instruments)
        attempt = f" (attempt {self.builds})" if self.builds > 1 else ""
        self.set_state(SourceState.WAITING_FOR_CONNECTOR,
                       f"registered {symbols} with connector {self.config.connector!r}; "
                       f"waiting for its first feed{attempt}", again=True)
        return True

    def close_bot(self) -> None:
        if self.bot is not None:
            bot, self.bot = self.bot, None
            try:
                bot.close()
            except Exception:  # closing is best effort: the next build starts clean
                pass

    def check_health(self, now: float) -> None:
        cfg = self.config
        quiet_since = self.last_feed if self.last_feed is not None else self.built_at
        quiet = now - quiet_since
        if quiet >= cfg.rebuild_after_s:
            self.close_bot()
            what = "no feed" if self.last_feed is None else "feed stopped"
            self.set_state(SourceState.WAITING_FOR_CONNECTOR,
                           f"{what} for {quiet:.0f}s: rebuilding the bot to register with "
                           f"connector {cfg.connector!r} again", again=True)
        elif self.last_feed is not None and quiet >= cfg.stale_after_s:
            self.set_state(SourceState.STALE, f"no feed for {quiet:.0f}s from connector {cfg.connector!r}")

    # --- reading the bot ---

    def look(self, now: float) -> None:
        """Collect every symbol's trades and read its book; anything new counts as a feed.

        Trades the connector numbered but the bot never got mean its buffer overflowed: book changes were
        lost with them, so the bot is rebuilt (at most every LOSS_REBUILD_S), and registering again brings
        the connector's whole book. A gap just after a build is what the rebuild itself missed: counted,
        and the new bot already has the whole book."""
        self.last_scan = now
        self.dirty_since = None
        found = False
        lost = []
        read_ns = self.wall()   # one stamp per look: the hop from the connector to the bot ends here
        for i, (symbol, tick_size, _) in enumerate(self.config.instruments):
            trades, missing = self.collect_trades(i, symbol, tick_size, read_ns)
            found |= trades
            if missing:
                lost.append(f"{missing} {symbol} trade(s)")
                self.rebuild_due = True
        rebuild = self.rebuild_due and now - self.loss_rebuilt_at >= LOSS_REBUILD_S
        if found:
            # Trades go out now: reading the books (every level) would only delay them. A broken pipe ends
            # the loop at the step's own flush. When this look rebuilds the bot, its trades and loss wait
            # for the rebuild's note: one batch, so /v1/status never counts the loss before the log says why.
            if not rebuild:
                self.flush()
            self.warmed("trades")
        if rebuild:
            self.rebuild_due = False
            self.loss_rebuilt_at = now
            self.feed_seen(now)
            self.close_bot()
            what = f"lost {', '.join(lost)}" if lost else "lost trades"
            self.set_state(SourceState.WAITING_FOR_CONNECTOR,
                           f"{what} between connector {self.config.connector!r} and the bot "
                           "(its IPC buffer overflowed): rebuilding the bot for the whole book", again=True)
            return
        for i, (symbol, tick_size, _) in enumerate(self.config.instruments):
            change = self.windows[i].look(*self.read(self.bot.depth(i), tick_size))
            if change is not None:
                message, bids, asks = change
                exch_ts, local_ts = self.times(i)
                self.outbox.append(message(symbol, exch_ts, local_ts, bids, asks, read_ns))
                found = True
                self.warmed("book")
        if found:
            self.feed_seen(now)

    def warmed(self, read: str) -> None:
        """Once trades and a book have both been read (numba has compiled what they call), everything alive is
        moved out of the garbage collector's reach (`freeze`): a full collection then walks only what the loop
        made since, instead of numba's and hftbacktest's whole heap, which here took 12 ms or more and held up
        whatever was being read at that moment (a book change more often than not)."""
        if read in self.cold:
            self.cold.discard(read)
            if not self.cold:
                self.freeze()

    def feed_seen(self, now: float) -> None:
        self.last_feed = now
        if self.status is None or self.status.state is not SourceState.CONNECTED:   # called for every event
            self.set_state(SourceState.CONNECTED, f"feed from connector {self.config.connector!r}")

    def collect_trades(self, i: int, symbol: str, tick_size: float, read_ns: int) -> tuple[bool, int]:
        """(any trades, how many this bot missed while it ran); all missed ones, those lost while no bot
        listened (before this bot's first numbered trade) included, go out as a FeedLoss."""
        records = self.bot.last_trades(i)
        if not len(records):
            return False, 0
        trades = [(int(r["ev"]), int(r["exch_ts"]), int(r["local_ts"]), float(r["px"]), float(r["qty"]),
                   int(r["ival"])) for r in records]   # a view into the bot's memory: copy before clearing
        self.bot.clear_last_trades(i)
        lost = missed_live = 0
        for ev, exch_ts, local_ts, px, qty, number in trades:
            live = self.numbered[i]
            missing = self.count_lost(i, number)
            lost += missing
            missed_live += missing if live else 0
            side = "buy" if ev & BUY_EVENT else "sell"
            self.outbox.append(Trade(symbol, exch_ts, local_ts, round(px / tick_size), qty, side, read_ns))
        if lost:
            self.outbox.append(FeedLoss(symbol, lost))
        return True, missed_live

    def count_lost(self, i: int, number: int) -> int:
        """Trades skipped before this one; 0 for a connector that does not number them, or one that restarted."""
        last, self.trade_numbers[i] = self.trade_numbers[i], number
        self.numbered[i] = self.numbered[i] or number > 0
        if number <= 0 or last <= 0 or number <= last:
            return 0
        return number - last - 1

    def times(self, i: int) -> tuple[int, int]:
        """(exchange, local) time of the symbol's last feed, or now when the bot cannot say."""
        if self.feed_times:
            try:
                latency = self.bot.feed_latency(i)
            except Exception:  # not every build exposes feed_latency to Python
                self.feed_times = False
            else:
                if latency is not None:
                    return int(latency[0]), int(latency[1])
        now = self.wall()
        return now, now

    # --- talking to the web process ---

    def set_state(self, state: SourceState, detail: str, again: bool = False) -> None:
        """Tell the web process about a new state (or, with again=True, a new attempt in the same state)."""
        last = self.status
        if last is None or last.state != state or (again and last.detail != detail):
            self.status = SourceStatus(state, detail)
            self.outbox.append(self.status)

    def flush(self) -> bool:
        """Send what is waiting; False once a send has failed (this one or an earlier one)."""
        if self.broken:
            return False
        if not self.outbox:
            return True
        batch, self.outbox = self.outbox, []
        try:
            self.send(batch)
        except (BrokenPipeError, EOFError, OSError):
            self.broken = True
            return False
        return True

    def parent_ok(self, now: float) -> bool:
        if now - self.parent_checked < PARENT_CHECK_S:
            return True
        self.parent_checked = now
        return self.parent_alive()


class Reader:
    """read_book compiled by numba, or plain Python if compiling it fails (said once on stderr)."""

    def __init__(self) -> None:
        try:
            from numba import njit
            self.fn = njit(read_book)
        except Exception as exc:  # numba missing or broken: correctness first, speed second
            print(f"hftlive live bot: numba unavailable ({exc}); reading the book in Python", file=sys.stderr)
            self.fn = read_book

    def __call__(self, depth: Any, tick_size: float) -> tuple[Any, Any, int]:
        try:
            return self.fn(depth, tick_size)
        except Exception as exc:
            if self.fn is read_book:
                raise
            print(f"hftlive live bot: compiled book read failed ({type(exc).__name__}: {exc}); "
                  "reading the book in Python", file=sys.stderr)
            self.fn = read_book
            return read_book(depth, tick_size)


PR_SET_TIMERSLACK = 29   # prctl(2); a value of 0 restores the thread's default slack


class TimerSlack:
    """Short sleeps short only while a feed is being drained.

    hftbacktest's receive loop polls with iceoryx2's node.wait(1 ns); Linux's default 50 µs timer slack
    makes each poll a 50-90 µs sleep. Upstream's loop slept before every receive, so a 100-level delta took
    5 ms to drain; patch 0007 sleeps only when nothing is queued, but a feed sent event by event (not in
    batches) still pauses between events. A 1 ns slack makes the poll a spin: right while such a feed is
    drained (and for DRAIN_GRACE_S after), a core burned while idle, so idle waits keep the default."""

    def __init__(self) -> None:
        self.tight: bool | None = None
        try:
            import ctypes
            self.prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):   # not Linux: the default slack, slower but correct
            self.prctl = None

    def __call__(self, tight: bool) -> None:
        if self.prctl is not None and tight is not self.tight:
            self.tight = tight
            self.prctl(PR_SET_TIMERSLACK, 1 if tight else 0, 0, 0, 0)


def run(conn: Any, config: BotConfig) -> None:
    """The bot process's entry point (multiprocessing 'spawn' target); `conn` is its end of the pipe."""
    # A terminal's Ctrl-C goes to the whole process group: leave it, so the web process decides when to stop.
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if config.channel_config:
        os.environ["HFTBACKTEST_CHANNEL_CONFIG"] = config.channel_config

    send_batch = functools.partial(send, conn)
    send_batch([SourceStatus(SourceState.STARTING, "loading hftbacktest's live bot")])
    try:
        import hftbacktest
        if not getattr(hftbacktest, "LIVE_FEATURE", False):
            raise ImportError("hftbacktest was built without the live feature")
        if np is None:
            raise ImportError("numpy is missing")
        from hftbacktest import HashMapMarketDepthLiveBot, LiveInstrument
    except Exception as exc:
        send_batch([SourceStatus(SourceState.FAILED,
                                 f"cannot load hftbacktest's live bot: {type(exc).__name__}: {exc}")])
        conn.close()
        sys.exit(3)

    def make_bot() -> Any:
        instruments = [
            LiveInstrument().connector(config.connector).symbol(symbol).tick_size(tick).lot_size(lot)
            .last_trades_capacity(config.trades_capacity)
            for symbol, tick, lot in config.instruments
        ]
        return HashMapMarketDepthLiveBot(instruments)

    import multiprocessing
    parent = multiprocessing.parent_process()
    gc.freeze()   # the imports' heap (numba, numpy, hftbacktest): see BotLoop.warmed
    loop = BotLoop(
        config, make_bot, send_batch, read=Reader(), slack=TimerSlack(),
        parent_alive=(lambda: parent is None or parent.is_alive()), freeze=gc.freeze,
    )
    loop.run()
    conn.close()
