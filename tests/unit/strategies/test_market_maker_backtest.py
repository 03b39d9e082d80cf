"""The example market maker backtested by `python -m bot.backtest` on recordings of the service's own format:
it fills, stays inside its position limit, and two runs give the same fills."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.support import ROOT
from tests.support.market_maker_log import reports
from tests.unit.strategies.runners import finish, live_wheel, run_module, start_module
from tests.unit.strategies.synthetic_market import record

pytestmark = live_wheel
STRATEGY = ROOT / "strategies" / "market_maker.py"
BTC_ENV = {"TICK_SIZE": "0.1", "LOT_SIZE": "0.001"}


def setting(name: str) -> float:
    # read from the file, not imported: importing it needs numba in the test process
    found = [line for line in STRATEGY.read_text().splitlines() if line.startswith(f"{name} =")]
    return float(found[0].split("=")[1].split("#")[0])


def max_position() -> float:
    return setting("MAX_POSITION")


def summary(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout   # the summary is the only thing on stdout
    return json.loads(lines[0])


def test_two_backtests_of_one_recording_give_the_same_fills(recording):
    # Two processes at once: each compiles the strategy itself, so nothing carries over between them.
    runs = [start_module("bot.backtest", STRATEGY, *recording, env=BTC_ENV) for _ in range(2)]
    first, second = (summary(finish(run)) for run in runs)
    assert first == second
    assert first["fills"] >= 5 and first["volume"] > 0
    assert first["files"] == len(recording) and first["events"] > 5000
    assert first["end_ts"] > 0
    assert abs(first["position"]) <= max_position() + 1e-9


def test_a_falling_market_fills_the_bids_up_to_the_position_limit_and_no_further(tmp_path):
    # Rotated files, each starting with the whole book, as the service writes them.
    files = record(tmp_path, seed=3, steps=4000, down=0.7, rotate_events=3000)
    assert len(files) >= 3
    found = summary(run_module("bot.backtest", STRATEGY, *files, env=BTC_ENV))
    limit = max_position()
    # The largest position it held: the trend bought it all the way to the limit, and no further.
    assert found["result"] == pytest.approx(limit)
    assert found["fills"] >= round(limit / 0.001)


def test_quotes_left_behind_by_a_running_market_are_cancelled_and_placed_again(tmp_path):
    # The market falls about a tick every 80 ms: each quote it leaves behind must be cancelled and placed again
    # near the touch, and the bot must refuse none of those requests (a cancel naming no order, say).
    files = record(tmp_path, seed=3, steps=4000, down=0.7)
    done = run_module("bot.backtest", STRATEGY, *files, env=BTC_ENV)
    summary(done)
    seen = reports(done.stderr)
    assert len(seen) >= 6, done.stderr[-2000:]
    assert [r["failed"] for r in seen] == [0] * len(seen), [(r["failed"], r["code"]) for r in seen]
    # How far a quote may sit from its touch: the skew at the position limit, the half spread, the requote
    # threshold, and what the market moves between two requests of a side.
    reach = (setting("SKEW_TICKS") * max_position() / setting("ORDER_QTY") + setting("HALF_SPREAD_TICKS")
             + setting("REQUOTE_TICKS") + 10)
    far = [(r["best"], order) for r in seen for order in r["orders"]
           if order[2] == 1 and abs(order[1] - (r["best"][0] if order[0] == 1 else r["best"][1])) > reach]
    assert not far, f"quotes more than {reach:.0f} ticks from their touch (best, (side, tick, status)): {far}"
