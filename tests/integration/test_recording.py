"""A recording the service image made replays in hftbacktest's own backtest to the book the service served."""
from __future__ import annotations

import json
import subprocess
import time
import uuid


from cli import versions
from service.events import DEPTH_CLEAR_EVENT, TRADE_EVENT
from tests.support.stack import get

TICK, LOT = 0.1, 0.001
RECORDINGS = "/var/lib/hftlive/recordings"   # the image's folder for compose's `recordings` volume
# Run inside the image: the recorded files, cut at the seq /v1/book answered with (ival holds each row's
# seq), through HashMapMarketDepthBacktest to the end: all of them, and the one file holding that seq
# alone; prints the two books at /v1/book's ticks and the row facts.
BACKTEST = f"""
import glob, json, sys
import numpy as np
from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest
book_seq, status_seq, bids, asks = json.loads(sys.argv[1])
files = sorted(glob.glob("{RECORDINGS}/*.npz"))
data = [np.load(f)["data"] for f in files]
rows = np.concatenate(data)

def book(rows):
    cut = rows[rows["ival"] <= book_seq]   # named: hftbacktest reads the array's memory without holding it
    asset = (BacktestAsset().data([cut]).linear_asset(1.0).constant_order_latency(0, 0)
             .risk_adverse_queue_model().no_partial_fill_exchange().trading_value_fee_model(0.0, 0.0)
             .tick_size({TICK}).lot_size({LOT}))
    hbt = HashMapMarketDepthBacktest([asset])
    while hbt.elapse(3_600_000_000_000) == 0:
        pass
    depth = hbt.depth(0)
    return {{"best": [depth.best_bid_tick, depth.best_ask_tick],
             "bids": [depth.bid_qty_at_tick(t) for t in bids], "asks": [depth.ask_qty_at_tick(t) for t in asks]}}

kind = rows["ev"] & 0xFF
print(json.dumps({{
    "files": [f.rsplit("/", 1)[1] for f in files], "dtype": str(rows.dtype),
    "temporary": glob.glob("{RECORDINGS}/.*"),
    "all": book(rows), "alone": book([d for d in data if d["ival"][0] <= book_seq][-1]),
    "trades": int(((kind == {TRADE_EVENT}) & (rows["ival"] <= status_seq)).sum()),
    "clears": int((kind == {DEPTH_CLEAR_EVENT}).sum()), "last_seq": int(rows["ival"].max()),
    "local_ts_ordered": bool((np.diff(rows["local_ts"]) >= 0).all()),
}}))
"""


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def test_a_recording_backtests_to_the_book_and_trades_the_service_served(runtime_images):
    service_image = runtime_images["service"]   # the live image: it has hftbacktest and numpy
    name, port = f"hftlive-rec-{uuid.uuid4().hex[:8]}", versions.runtime_facts()["HFTLIVE_SERVICE_PORT"]
    try:
        # A fresh named volume at the image's recordings folder, as compose mounts it: it must start out
        # writable for the image's user.
        started = docker("run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
                         "-p", f"127.0.0.1::{port}", "-v", f"{name}:{RECORDINGS}",
                         "-e", "DATA_SOURCE=mock", "-e", "MOCK_SEED=11", "-e", "MOCK_EVENT_RATE=500",
                         "-e", f"TICK_SIZE={TICK}", "-e", f"LOT_SIZE={LOT}",
                         "-e", f"RECORD_DIR={RECORDINGS}", "-e", "RECORD_ROTATE_S=1", service_image)
        assert started.returncode == 0, started.stderr
        url = "http://" + docker("port", name, port).stdout.split()[0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if get(f"{url}/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        time.sleep(3.5)   # several 1 s files
        _, status = get(f"{url}/v1/status")
        _, book = get(f"{url}/v1/book?depth=1000")
        assert status["source_info"]["record_dir"] == RECORDINGS and "record_error" not in status["source_info"]
        stopped = docker("stop", "-t", "20", name)   # SIGTERM: the service writes its last partial file
        assert stopped.returncode == 0, stopped.stderr
        logs = docker("logs", name).stderr
        assert "recorder" not in logs, logs
        symbol = status["symbols"]["BTCUSDT"]
        ticks = {side: [round(price / TICK) for price, _ in book[side]] for side in ("bids", "asks")}
        replay = docker("run", "--rm", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
                        "-v", f"{name}:{RECORDINGS}:ro", "--entrypoint", "python", service_image, "-c", BACKTEST,
                        json.dumps([book["seq"], symbol["seq"], ticks["bids"], ticks["asks"]]), timeout=300)
    finally:
        docker("rm", "-f", name)
        docker("volume", "rm", "-f", name)
    assert replay.returncode == 0, replay.stderr
    found = json.loads(replay.stdout.strip().splitlines()[-1])
    assert found["dtype"] == ("[('ev', '<u8'), ('exch_ts', '<i8'), ('local_ts', '<i8'), ('px', '<f8'), "
                              "('qty', '<f8'), ('order_id', '<u8'), ('ival', '<i8'), ('fval', '<f8')]")
    assert len(found["files"]) >= 3 and all(f.startswith("BTCUSDT_") for f in found["files"])
    assert found["temporary"] == []   # every file renamed into place
    assert found["local_ts_ordered"] and found["clears"] == 2 * len(found["files"])   # each starts whole
    assert found["last_seq"] > book["seq"] and found["last_seq"] > symbol["seq"]   # flushed at SIGTERM
    served = {"best": [ticks["bids"][0], ticks["asks"][0]],
              "bids": [qty for _, qty in book["bids"]], "asks": [qty for _, qty in book["asks"]]}
    assert found["all"] == served
    assert found["alone"] == served   # the file holding that seq, backtested on its own
    assert found["trades"] == symbol["trades"] > 0
