"""`python -m bot`'s path to the strategy, with a stand-in for hftbacktest's live bot: it waits for the
connector's first feed (building the bot again while none comes), runs the strategy, and closes the bot."""
from __future__ import annotations

import signal
import time
import uuid

import bot.__main__ as live
from bot.settings import Instrument
from tests.unit.strategies.runners import finish, live_wheel, start_module

BTC = Instrument("bybit_hft", "BTCUSDT", 0.1, 0.001)
FEED, QUIET, SIGNAL = live.MARKET_FEED, 0, live.INTERRUPTED
BATCH = "batch"   # a batch of market events (our connector's): answered 0 at its end, with a feed time kept


class FakeBot:
    """Answers wait_next_feed from a script (then QUIET); remembers being closed and whether a feed came."""

    def __init__(self, answers: list) -> None:
        self.answers = list(answers)
        self.closed = False
        self.ran = False
        self.fed = False

    def wait_next_feed(self, include_order_resp: bool, timeout_ns: int) -> int:
        answer = self.answers.pop(0) if self.answers else QUIET
        self.fed |= answer in (FEED, BATCH)
        return QUIET if answer == BATCH else answer

    def feed_latency(self, asset_no: int) -> tuple[int, int] | None:
        return (1, 2) if self.fed else None

    def close(self) -> int:
        self.closed = True
        return 0


def builder(*scripts: list[int]):
    built: list[FakeBot] = []

    def build(instrument: Instrument) -> FakeBot:
        assert instrument == BTC
        built.append(FakeBot(scripts[len(built)] if len(built) < len(scripts) else []))
        return built[-1]

    return build, built


def test_the_first_feed_hands_the_bot_over():
    build, built = builder([QUIET, QUIET, FEED])
    assert live.connect(build, BTC) is built[0]
    assert len(built) == 1 and not built[0].closed


def test_a_batch_of_market_events_counts_as_the_first_feed(monkeypatch):
    monkeypatch.setattr(live, "FIRST_FEED_S", 0.05)   # a bot that missed the batch is built again, and fed
    build, built = builder([QUIET, BATCH], [FEED])
    assert live.connect(build, BTC) is built[0]
    assert len(built) == 1 and not built[0].closed


def test_a_bot_that_hears_nothing_is_built_again(monkeypatch, capsys):
    monkeypatch.setattr(live, "FIRST_FEED_S", 0.05)
    build, built = builder([], [FEED])
    assert live.connect(build, BTC) is built[1]
    assert built[0].closed and not built[1].closed
    said = capsys.readouterr().err
    assert "bot: no feed for BTCUSDT from connector 'bybit_hft' in 0s (attempt 1); is the connector running?" in said


def test_a_signal_before_the_first_feed_stops_cleanly(monkeypatch):
    build, built = builder([QUIET, SIGNAL])
    assert live.connect(build, BTC) is None
    assert built[0].closed


def test_main_runs_the_strategy_on_the_live_bot_and_closes_it(monkeypatch, tmp_path, capsys):
    path = tmp_path / "mine.py"
    path.write_text("def strategy(hbt):\n    hbt.ran = True\n    return 7\n")
    build, built = builder([FEED])
    monkeypatch.setattr(live, "live_bot_factory", lambda: build)
    for name, value in {"TICK_SIZE": "0.1", "LOT_SIZE": "0.001"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CONNECTOR_NAME", raising=False)
    monkeypatch.delenv("SYMBOL", raising=False)
    assert live.main([str(path)]) == 0
    assert built[0].ran and built[0].closed
    said = capsys.readouterr().err.splitlines()
    assert said[0] == "bot: registering BTCUSDT with connector 'bybit_hft'; waiting for its first feed"
    assert said[-1] == "bot: the strategy returned 7; bot closed"


@live_wheel
def test_with_the_real_live_bot_and_no_connector_it_waits_and_stops_on_sigterm(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("def strategy(hbt):\n    raise SystemExit('the strategy must not run without a feed')\n")
    connector = f"hftlive_test_{uuid.uuid4().hex[:8]}"   # nobody publishes under it
    bot = start_module("bot", path, env={"TICK_SIZE": "0.1", "LOT_SIZE": "0.001", "CONNECTOR_NAME": connector})
    try:
        first = bot.stderr.readline()
        assert first == f"bot: registering BTCUSDT with connector {connector!r}; waiting for its first feed\n"
        # iceoryx2 takes over SIGTERM at its first wait, just after that line; it makes the wait return
        time.sleep(2)
        bot.send_signal(signal.SIGTERM)
    finally:
        done = finish(bot, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "bot: stopped before the first feed"
