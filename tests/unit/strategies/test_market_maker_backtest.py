"""The example market maker backtested by `python -m bot.backtest` on recordings of the service's own format:
it fills, stays inside its position limit, and two runs give the same fills."""
from __future__ import annotations

import json
import subprocess

from tests.support import ROOT
from tests.unit.strategies.runners import finish, live_wheel, run_module, start_module
from tests.unit.strategies.synthetic_market import record

pytestmark = live_wheel
STRATEGY = ROOT / "strategies" / "market_maker.py"
BTC_ENV = {"TICK_SIZE": "0.1", "LOT_SIZE": "0.001"}


def max_position() -> float:
    # read from the file, not imported: importing it needs numba in the test process
    found = [line for line in STRATEGY.read_text().splitlines() if line.startswith("MAX_POSITION =")]
    return float(found[0].split("=")[1].split("#")[0])


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
    assert found["position"] >= limit - 1e-9    # the trend bought it all the way to the limit…
    assert found["result"] <= limit + 1e-9      # …and the largest position it ever held was no more
    assert found["fills"] >= round(limit / 0.001)
