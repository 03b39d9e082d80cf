"""`python -m bot.backtest STRATEGY.py FILE.npz...`: the file's strategy(hbt) in hftbacktest's
HashMapMarketDepthBacktest on recordings (service/recorder.py's .npz files, in the order given).

Settings (environment): TICK_SIZE and LOT_SIZE (required), as for the live bot. Prints one line of JSON to
stdout: fills, final position, balance, fees, volume, what the strategy returned, and a digest of them
that is equal for equal runs."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

from . import MISSING_RUNTIME_EXIT, USAGE_EXIT, MissingRuntime, UsageError
from .settings import step
from .strategy_file import load_strategy

USAGE = "usage: python -m bot.backtest STRATEGY.py FILE.npz [FILE.npz ...]   (settings: TICK_SIZE, LOT_SIZE)"
# The exchange the backtest assumes: Bybit linear's base fee rates, a few ms each way, queue position
# taken pessimistically, no partial fills.
ORDER_ENTRY_NS = 5_000_000
ORDER_RESPONSE_NS = 5_000_000
MAKER_FEE = 0.0002
TAKER_FEE = 0.00055
EVENT_FIELDS = ("ev", "exch_ts", "local_ts", "px", "qty", "order_id", "ival", "fval")


def say(message: str) -> None:
    print(f"bot.backtest: {message}", file=sys.stderr, flush=True)


def load_recording(path: str) -> Any:
    """The `data` array of a recording file, checked to be hftbacktest's event rows."""
    import numpy as np

    try:
        with np.load(path) as npz:
            if "data" not in npz.files:
                raise UsageError(f"{path} holds no `data` array: not a recording of hftlive's")
            data = npz["data"]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UsageError(f"{path} is not a readable .npz recording ({type(exc).__name__}: {exc})") from None
    if data.dtype.names != EVENT_FIELDS:
        raise UsageError(f"{path}: `data` has fields {data.dtype.names}, not hftbacktest's event rows")
    return data


def summary(state: Any, result: Any, events: int, files: int, end_ts: int) -> dict[str, Any]:
    found: dict[str, Any] = {
        "files": files, "events": events,
        "fills": int(state.num_trades), "position": float(state.position), "balance": float(state.balance),
        "fee": float(state.fee), "volume": float(state.trading_volume), "value": float(state.trading_value),
        "end_ts": int(end_ts),
        "result": float(result) if isinstance(result, (int, float)) and not isinstance(result, bool) else None,
    }
    # floats by repr: two runs that agree to the last bit have the same digest
    found["digest"] = hashlib.sha256(repr(sorted(found.items())).encode()).hexdigest()[:16]
    return found


def run(strategy_path: str, files: list[str], tick_size: float, lot_size: float) -> dict[str, Any]:
    strategy = load_strategy(strategy_path)
    try:
        from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest
    except ImportError as exc:
        raise MissingRuntime(f"cannot import hftbacktest ({exc}): pip install hftbacktest==2.4.4, "
                             "or run it in the bot image") from None
    data = [load_recording(path) for path in files]

    # `data` stays referenced until the end: hftbacktest reads the arrays' memory without holding them.
    asset = (BacktestAsset().data(data).linear_asset(1.0)
             .constant_order_latency(ORDER_ENTRY_NS, ORDER_RESPONSE_NS)
             .risk_adverse_queue_model().no_partial_fill_exchange()
             .trading_value_fee_model(MAKER_FEE, TAKER_FEE)
             .tick_size(tick_size).lot_size(lot_size))
    hbt = HashMapMarketDepthBacktest([asset])
    try:
        with contextlib.redirect_stdout(sys.stderr):   # what the strategy prints; stdout is the summary's
            result = strategy(hbt)
        state = hbt.state_values(0)
        found = summary(state, result, sum(len(d) for d in data), len(data), hbt.current_timestamp)
    finally:
        hbt.close()
    del data
    return found


def main(argv: list[str]) -> int:
    try:
        if len(argv) < 2 or any(arg.startswith("-") for arg in argv):
            raise UsageError(USAGE)
        tick_size = step("TICK_SIZE", os.environ.get("TICK_SIZE"))
        lot_size = step("LOT_SIZE", os.environ.get("LOT_SIZE"))
        missing = [path for path in argv[1:] if not Path(path).is_file()]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise UsageError(f"{missing[0]} does not exist{more}: give recordings the service wrote (RECORD_DIR)")
        found = run(argv[0], argv[1:], tick_size, lot_size)
    except UsageError as exc:
        say(str(exc))
        return USAGE_EXIT
    except MissingRuntime as exc:
        say(str(exc))
        return MISSING_RUNTIME_EXIT
    print(json.dumps(found), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
