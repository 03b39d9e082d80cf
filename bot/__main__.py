"""`python -m bot STRATEGY.py`: the file's strategy(hbt) trading live through the connector.

Settings (environment): CONNECTOR_NAME [bybit_hft], SYMBOL [BTCUSDT], TICK_SIZE and LOT_SIZE (required).
Exit status: 0 when the strategy returns (it does on SIGINT/SIGTERM), 2 for a mistake the user can fix,
3 when this Python's hftbacktest cannot trade live, 75 when the connector restarted (compose starts the bot again)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from . import MISSING_RUNTIME_EXIT, USAGE_EXIT, MissingRuntime, UsageError
from .settings import Instrument, from_env
from .strategy_file import load_strategy
from .watch import RESTART_EXIT

DEFAULT_CONTROL_URL = "http://connector:8092"   # the connector's control API on the compose network

USAGE = "usage: python -m bot STRATEGY.py   (settings: CONNECTOR_NAME, SYMBOL, TICK_SIZE, LOT_SIZE)"
FIRST_FEED_S = 10.0    # without a feed this long, register with the connector again (it may have started later)
# wait_next_feed's answers (hftbacktest's ElapseResult)
MARKET_FEED, INTERRUPTED = 2, 1


def say(message: str) -> None:
    print(f"bot: {message}", file=sys.stderr, flush=True)


def live_bot_factory() -> Callable[[Instrument], Any]:
    """A function that builds hftbacktest's live bot for an instrument."""
    try:
        import hftbacktest
        from hftbacktest import LiveInstrument
    except ImportError as exc:
        raise MissingRuntime(f"cannot import hftbacktest ({exc}): run the bot image "
                             "(./hftlive up --strategy FILE)") from None
    if not getattr(hftbacktest, "LIVE_FEATURE", False) or not hasattr(hftbacktest, "HashMapMarketDepthLiveBot"):
        raise MissingRuntime("this hftbacktest was built without the live feature (a PyPI wheel?): run the bot "
                             "image (./hftlive up --strategy FILE), or backtest with python -m bot.backtest")

    def build(instrument: Instrument) -> Any:
        live = (LiveInstrument().connector(instrument.connector).symbol(instrument.symbol)
                .tick_size(instrument.tick_size).lot_size(instrument.lot_size).last_trades_capacity(0))
        return hftbacktest.HashMapMarketDepthLiveBot([live])

    return build


def connect(build: Callable[[Instrument], Any], instrument: Instrument) -> Any | None:
    """The live bot once its first feed arrived; None if a signal came first.

    A bot built before the connector runs never hears from it, so it is built again until a feed arrives."""
    attempt = 0
    while True:
        attempt += 1
        hbt = build(instrument)
        deadline = time.monotonic() + FIRST_FEED_S
        while time.monotonic() < deadline:
            rc = hbt.wait_next_feed(False, 1_000_000_000)
            if rc == INTERRUPTED:
                hbt.close()
                return None
            # Our connector sends each exchange message as one batch, answered 0 at its end (upstream's, 2 per
            # event): a feed has come once the bot has a feed time.
            if rc == MARKET_FEED or hbt.feed_latency(0) is not None:
                return hbt
        hbt.close()
        say(f"no feed for {instrument.symbol} from connector {instrument.connector!r} in {FIRST_FEED_S:.0f}s "
            f"(attempt {attempt}); is the connector running? registering again")


def main(argv: list[str]) -> int:
    try:
        if len(argv) != 1 or argv[0].startswith("-"):
            raise UsageError(USAGE)
        instrument = from_env(os.environ)
        strategy = load_strategy(argv[0])
        build = live_bot_factory()
    except UsageError as exc:
        say(str(exc))
        return USAGE_EXIT
    except MissingRuntime as exc:
        say(str(exc))
        return MISSING_RUNTIME_EXIT
    watcher = start_watcher()
    try:
        say(f"registering {instrument.symbol} with connector {instrument.connector!r}; waiting for its first feed")
        hbt = connect(build, instrument)
        if hbt is None:
            say("stopped before the first feed")
            return restart_or(0, watcher)
        say(f"feed received: running {argv[0]} (Ctrl-C or SIGTERM stops it)")
        try:
            result = strategy(hbt)
        finally:
            hbt.close()
        say(f"the strategy returned {result!r}; bot closed")
        return restart_or(0, watcher)
    finally:
        if watcher is not None and watcher.poll() is None:
            watcher.terminate()


def start_watcher() -> subprocess.Popen | None:
    """bot.watch on the connector's control API (CONNECTOR_CONTROL_URL; empty: http://connector:8092; off: none)."""
    url = os.environ.get("CONNECTOR_CONTROL_URL", "").strip() or DEFAULT_CONTROL_URL
    if url == "off":
        say("CONNECTOR_CONTROL_URL=off: a restarted connector will not restart this bot")
        return None
    return subprocess.Popen([sys.executable, "-m", "bot.watch", url.rstrip("/"), str(os.getpid())])


def restart_or(code: int, watcher: subprocess.Popen | None) -> int:
    """RESTART_EXIT when the watcher stopped the strategy because the connector restarted."""
    if watcher is not None:
        try:
            if watcher.wait(timeout=0.5) == RESTART_EXIT:
                return RESTART_EXIT
        except subprocess.TimeoutExpired:
            pass
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
