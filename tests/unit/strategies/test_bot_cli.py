"""The runners' mistakes a user can make: one line that says what to do, exit status 2, no traceback.
Most need no hftbacktest; the marked ones need the live wheel, or no hftbacktest at all."""
from __future__ import annotations

import pytest

from tests.support import ROOT
from tests.unit.strategies.runners import live_wheel, no_hftbacktest, run_module

BTC_ENV = {"TICK_SIZE": "0.1", "LOT_SIZE": "0.001"}
NO_STRATEGY = "import math\n\ndef trade(hbt):\n    return 0\n"
GOOD = "def strategy(hbt):\n    return 0\n"


def one_line(done) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert done.stdout == ""
    return lines[0]


@pytest.fixture
def strategy_file(tmp_path):
    def write(text: str, name: str = "mine.py"):
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


@pytest.mark.parametrize("module", ["bot", "bot.backtest"])
def test_no_arguments_prints_the_usage(module):
    done = run_module(module, env=BTC_ENV)
    assert done.returncode == 2
    assert one_line(done).startswith(f"{module}: usage: python -m {module} STRATEGY.py")


@pytest.mark.parametrize("args", [["nowhere.py"], ["nowhere.py", "x.npz"]])
def test_a_missing_strategy_file_is_named(tmp_path, args):
    module = "bot" if len(args) == 1 else "bot.backtest"
    if module == "bot.backtest":
        args[1] = str(tmp_path / "x.npz")
        (tmp_path / "x.npz").write_bytes(b"")
    done = run_module(module, tmp_path / args[0], *args[1:], env=BTC_ENV)
    assert done.returncode == 2
    assert one_line(done) == f"{module}: {tmp_path / 'nowhere.py'} does not exist: give the path of a .py file " \
                             "that defines strategy(hbt)"


def test_a_folder_is_not_a_strategy_file(tmp_path):
    done = run_module("bot", tmp_path, env=BTC_ENV)
    assert done.returncode == 2
    assert "is a folder, not a strategy file" in one_line(done)


def test_a_file_without_a_strategy_function_says_what_it_needs(strategy_file):
    done = run_module("bot", strategy_file(NO_STRATEGY), env=BTC_ENV)
    assert done.returncode == 2
    assert one_line(done).endswith("defines no `strategy`: it needs a function strategy(hbt) (a numba @njit one)")


def test_a_strategy_that_is_not_a_function_is_refused(strategy_file):
    done = run_module("bot", strategy_file("strategy = 3\n"), env=BTC_ENV)
    assert done.returncode == 2
    assert one_line(done).endswith("`strategy` is a int, not a function strategy(hbt)")


@pytest.mark.parametrize("text, said", [
    ("def strategy(hbt)\n    return 0\n", "failed to load: SyntaxError: expected ':' (mine.py, line 1) (line 1)"),
    ("x = 1\nimport no_such_module_here\n", "failed to load: ModuleNotFoundError: No module named "
                                            "'no_such_module_here' (line 2)"),
])
def test_a_strategy_file_that_fails_to_load_says_why_and_where(strategy_file, text, said):
    done = run_module("bot", strategy_file(text), env=BTC_ENV)
    assert done.returncode == 2
    assert one_line(done).endswith(said)


@pytest.mark.parametrize("module", ["bot", "bot.backtest"])
@pytest.mark.parametrize("env, said", [
    ({"LOT_SIZE": "0.001"}, "TICK_SIZE is not set: give the symbol's tick size, e.g. TICK_SIZE=0.1 for BTCUSDT"),
    ({"TICK_SIZE": "0.1"}, "LOT_SIZE is not set: give the symbol's lot size, e.g. LOT_SIZE=0.001 for BTCUSDT"),
    ({"TICK_SIZE": "ten cents", "LOT_SIZE": "0.001"}, "TICK_SIZE='ten cents' is not a number"),
    ({"TICK_SIZE": "0.1", "LOT_SIZE": "-1"}, "LOT_SIZE='-1' must be a number between 1e-09 and 1e+09"),
    ({"TICK_SIZE": "nan", "LOT_SIZE": "0.001"}, "TICK_SIZE='nan' must be a number between 1e-09 and 1e+09"),
])
def test_bad_tick_or_lot_sizes_are_named(strategy_file, tmp_path, module, env, said):
    recording = tmp_path / "r.npz"
    recording.write_bytes(b"")
    args = [strategy_file(GOOD)] + ([recording] if module == "bot.backtest" else [])
    done = run_module(module, *args, env=env)
    assert done.returncode == 2
    assert one_line(done) == f"{module}: {said}"


def test_a_bad_connector_name_is_named(strategy_file):
    done = run_module("bot", strategy_file(GOOD), env={**BTC_ENV, "CONNECTOR_NAME": "bybit hft"})
    assert done.returncode == 2
    assert one_line(done) == "bot: CONNECTOR_NAME='bybit hft' is not a name (letters, digits, _ . -; at most 64)"


def test_a_missing_recording_is_named(strategy_file, tmp_path):
    done = run_module("bot.backtest", strategy_file(GOOD), tmp_path / "gone.npz", env=BTC_ENV)
    assert done.returncode == 2
    assert one_line(done) == (f"bot.backtest: {tmp_path / 'gone.npz'} does not exist: give recordings the "
                              "service wrote (RECORD_DIR)")


@no_hftbacktest
def test_without_a_live_hftbacktest_the_bot_says_so_in_one_line(strategy_file):
    done = run_module("bot", strategy_file(GOOD), env=BTC_ENV, timeout=60)
    assert done.returncode == 3
    line = one_line(done)
    assert line.startswith("bot: ") and "bot image" in line


@no_hftbacktest
@pytest.mark.parametrize("module", ["bot", "bot.backtest"])
def test_the_example_without_hftbacktest_says_where_to_run_it(tmp_path, module):
    recording = tmp_path / "r.npz"
    recording.write_bytes(b"")
    args = [ROOT / "strategies" / "market_maker.py"] + ([recording] if module == "bot.backtest" else [])
    done = run_module(module, *args, env=BTC_ENV)
    assert done.returncode == 3
    line = one_line(done)
    assert line.startswith(f"{module}: ") and "which this Python lacks: run it in the bot image" in line


@live_wheel
def test_a_file_that_is_not_a_recording_is_named(strategy_file, tmp_path):
    bad = tmp_path / "notes.npz"
    bad.write_text("not a zip")
    done = run_module("bot.backtest", strategy_file(GOOD), bad, env=BTC_ENV)
    assert done.returncode == 2
    assert one_line(done).startswith(f"bot.backtest: {bad} is not a readable .npz recording (")
