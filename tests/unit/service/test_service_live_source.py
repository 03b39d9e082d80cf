"""The live source's web-process side: a spawned bot process feeds the sink; its crash never takes the web process."""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from typing import get_args

import pytest

from service.events import BookDelta, BookSnapshot, SourceState, SourceStatus, Trade
from service.sources.live_messages import MESSAGE_TYPES, BotConfig, Message, Unframer, receive, send
from service.sources.live_supervisor import LiveSource

INSTRUMENTS = (("BTCUSDT", 0.1, 0.001),)
pytestmark = pytest.mark.anyio   # for the async tests
SCRIPT = [
    BookSnapshot("BTCUSDT", 1, 2, ((1000, 1.0),), ((1001, 2.0),)),
    BookDelta("BTCUSDT", 3, 4, ((1000, 0.0), (999, 1.5)), ()),
    Trade("BTCUSDT", 5, 6, 1001, 0.25, "buy"),
]


def scripted_bot(conn, config):
    """Stands in for live_bot.run in the bot process: a few events, then what config.connector names."""
    send(conn, [SourceStatus(SourceState.WAITING_FOR_CONNECTOR, "registered")])
    send(conn, [SourceStatus(SourceState.CONNECTED, "feed"), *SCRIPT])
    if config.connector == "abort":
        os.abort()          # what a Rust panic does with panic=abort
    time.sleep(120)         # until the parent terminates it


class Recorder:
    def __init__(self):
        self.events = []
        self.received = []   # the objects themselves, in order

    def book_snapshot(self, s):
        self.received.append(s)
        self.events.append(("snapshot", s.symbol, s.bids, s.asks))

    def book_delta(self, d):
        self.received.append(d)
        self.events.append(("delta", d.symbol, d.bids, d.asks))

    def trade(self, t):
        self.received.append(t)
        self.events.append(("trade", t.symbol, t.tick, t.qty, t.side))

    def source_status(self, s):
        self.received.append(s)
        self.events.append(("status", s.state, s.detail))

    def states(self):
        return [e[1] for e in self.events if e[0] == "status"]


async def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_every_message_type_crosses_the_pipe_as_itself():
    receiver, sender = multiprocessing.Pipe(duplex=False)
    batch = [*SCRIPT, SourceStatus(SourceState.STALE, "no feed for 5s")]
    send(sender, batch)
    received = receive(receiver)
    assert received == batch and [type(m) for m in received] == [type(m) for m in batch]
    assert received[-1].state is SourceState.STALE
    assert set(MESSAGE_TYPES) == set(get_args(Message))   # a new message type gets its pickling too


def test_batches_come_off_the_pipe_whole_however_the_bytes_are_split():
    receiver, sender = multiprocessing.Pipe(duplex=False)
    batches = [SCRIPT[:1], SCRIPT, [SourceStatus(SourceState.STALE, "x" * 70_000)]]   # one over a pipe's buffer
    def write() -> None:
        for batch in batches:
            send(sender, batch)
        sender.close()
    writer = threading.Thread(target=write)
    writer.start()
    data = b""
    while chunk := os.read(receiver.fileno(), 65536):
        data += chunk
    writer.join()
    unframer, got = Unframer(), []
    for at in range(0, len(data), 7):   # seven bytes at a time: headers and pickles split anywhere
        got += unframer.feed(data[at:at + 7])
    assert got == batches and unframer.pending == b""


async def test_events_from_the_bot_process_reach_the_sink_in_order_and_stop_ends_it():
    sink = Recorder()
    source = LiveSource(BotConfig("steady", INSTRUMENTS), target=scripted_bot)
    await source.start(sink)
    await wait_for(lambda: any(e[0] == "trade" for e in sink.events))
    pid = source.describe()["bot_pid"]
    await source.stop()
    assert [e for e in sink.received if not isinstance(e, SourceStatus)] == SCRIPT   # types, times and levels
    assert sink.states() == [SourceState.STARTING, SourceState.WAITING_FOR_CONNECTOR, SourceState.CONNECTED,
                             SourceState.STOPPED]
    assert all(type(e.state) is SourceState for e in sink.received if isinstance(e, SourceStatus))
    assert isinstance(pid, int) and pid != os.getpid()
    assert not source._process.is_alive()


async def test_a_bot_process_that_aborts_is_reported_failed_and_restarted():
    sink = Recorder()
    source = LiveSource(BotConfig("abort", INSTRUMENTS), target=scripted_bot,
                        restart_delays=(0.2, 0.4))
    await source.start(sink)
    await wait_for(lambda: sink.states().count(SourceState.WAITING_FOR_CONNECTOR) >= 2)
    await source.stop()
    failed = [e for e in sink.events if e[0] == "status" and e[1] is SourceState.FAILED]
    assert failed[0][2] == "live bot process exited with code -6; restarting it in 0.2s"
    assert source.restarts >= 1


async def test_the_bot_process_sets_the_channel_config_before_loading_hftbacktest(
        tmp_path, monkeypatch):
    fake = tmp_path / "fake" / "hftbacktest"
    fake.mkdir(parents=True)
    fake.joinpath("__init__.py").write_text(
        "import os\nraise ImportError('channel config seen: ' + str(os.environ.get('HFTBACKTEST_CHANNEL_CONFIG')))\n")
    monkeypatch.syspath_prepend(str(tmp_path / "fake"))   # spawned children get the parent's sys.path

    sink = Recorder()
    source = LiveSource(BotConfig("c", INSTRUMENTS, channel_config="/etc/hftlive/channel.toml"),
                        restart_delays=(30.0, 30.0))
    await source.start(sink)
    await wait_for(lambda: any("exited with code" in e[2] for e in sink.events if e[0] == "status"))
    await source.stop()
    failed = next(e for e in sink.events if e[0] == "status" and e[1] is SourceState.FAILED)
    assert failed[2] == ("cannot load hftbacktest's live bot: ImportError: "
                         "channel config seen: /etc/hftlive/channel.toml")
    exited = [e[2] for e in sink.events if e[0] == "status" and "exited" in e[2]]
    assert exited == ["live bot process exited with code 3: cannot load hftbacktest's live bot: ImportError: "
                      "channel config seen: /etc/hftlive/channel.toml; restarting it in 30s"]


def test_the_live_source_reports_the_exchange_its_settings_name():
    from service.config import load_settings
    from service.sources import source_for

    assert source_for(load_settings(data_source="live", exchange="bybit-testnet")).exchange == "bybit-testnet"
    assert source_for(load_settings(data_source="live")).exchange == "bybit"
    assert source_for(load_settings(data_source="mock")).exchange is None
