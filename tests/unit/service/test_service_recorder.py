"""The recorder's rows (hftbacktest's event layout and flags), file rotation and settings; no numpy here."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from market.instrument import Instrument
from service.config import ConfigError, load_settings
from service.events import BookDelta, BookSnapshot, Trade
from service.feed import Feed
from service.hub import Hub
from service.metrics import Metrics
from service.recorder import Recorder, file_name

T0 = 1_700_000_000_000_000_000
BTC = Instrument("BTCUSDT", 0.1, 0.001)
BUY, SELL = 0xE000_0000, 0xD000_0000   # EXCH | LOCAL | BUY_EVENT and | SELL_EVENT, written out


class Disk:
    """A stand-in writer: files by name, or an error for the first `failures` writes."""

    def __init__(self, failures: int = 0) -> None:
        self.files: dict[str, list] = {}
        self.failures = failures

    def __call__(self, path, rows) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError(28, "No space left on device")
        self.files[path.name] = rows


def recorder(disk: Disk, rotate_s: float = 60, rotate_events: int = 1000, **kwargs) -> Recorder:
    return Recorder("/rec", [BTC], rotate_s, rotate_events, write=disk, **kwargs)


def test_events_become_hftbacktest_rows_with_the_seq_in_ival():
    disk = Disk()
    rec = recorder(disk)
    rec.snapshot(BookSnapshot("BTCUSDT", T0, T0 + 5, ((1000, 1.0), (990, 2.0)), ((1010, 0.5),)), 1)
    rec.delta(BookDelta("BTCUSDT", T0 + 6, T0 + 7, ((1000, 0.0),), ((1005, 0.25),)), 2)
    rec.trade(Trade("BTCUSDT", T0 + 8, T0 + 9, 1005, 0.002, "buy"), 3)
    rec.trade(Trade("BTCUSDT", T0 + 8, T0 + 9, 1000, 0.001, "sell"), 4)
    rec.close()
    assert disk.files == {file_name("BTCUSDT", T0 + 5): [
        (BUY | 3, T0, T0 + 5, 99.0, 0.0, 0, 1, 0.0),     # clear bids down to the lowest ever seen
        (BUY | 4, T0, T0 + 5, 100.0, 1.0, 0, 1, 0.0),
        (BUY | 4, T0, T0 + 5, 99.0, 2.0, 0, 1, 0.0),
        (SELL | 3, T0, T0 + 5, 101.0, 0.0, 0, 1, 0.0),   # clear asks up to the highest ever seen
        (SELL | 4, T0, T0 + 5, 101.0, 0.5, 0, 1, 0.0),
        (BUY | 1, T0 + 6, T0 + 7, 100.0, 0.0, 0, 2, 0.0),
        (SELL | 1, T0 + 6, T0 + 7, 100.5, 0.25, 0, 2, 0.0),
        (BUY | 2, T0 + 8, T0 + 9, 100.5, 0.002, 0, 3, 0.0),
        (SELL | 2, T0 + 8, T0 + 9, 100.0, 0.001, 0, 4, 0.0),
    ]}
    assert file_name("BTCUSDT", T0 + 5) == "BTCUSDT_20231114T221320.000000005Z.npz"


def test_a_snapshot_clears_each_side_to_the_farthest_level_ever_recorded_and_local_ts_never_goes_back():
    disk = Disk()
    rec = recorder(disk)
    rec.delta(BookDelta("BTCUSDT", T0, T0 + 10, ((900, 1.0),), ((1200, 1.0),)), 1)
    rec.snapshot(BookSnapshot("BTCUSDT", T0, T0 + 3, ((1000, 1.0),), ()), 2)   # arrives stamped earlier
    rec.close()
    (rows,) = disk.files.values()
    clears = [(row[0] & 0xF, row[2], row[3]) for row in rows if row[0] & 0xF == 3]
    assert clears == [(3, T0 + 10, 90.0), (3, T0 + 10, 120.0)]
    assert [row[2] for row in rows] == sorted(row[2] for row in rows)


def test_files_rotate_by_age_or_row_count_and_names_never_collide():
    disk = Disk()
    rec = recorder(disk, rotate_s=1, rotate_events=3)
    for i in range(7):   # three rows, then three more: two full files
        rec.trade(Trade("BTCUSDT", T0, T0, 1000, 0.001, "buy"), i + 1)
    rec.trade(Trade("BTCUSDT", T0, T0 + 10**9, 1000, 0.001, "buy"), 8)   # a second later: a new file
    rec.close()
    assert [len(rows) for rows in disk.files.values()] == [3, 3, 1, 1]
    assert sorted(disk.files) == list(disk.files)
    assert [rows[0][6] for rows in disk.files.values()] == [1, 4, 7, 8]


def test_a_failed_write_is_counted_once_kept_and_written_with_the_next_file(caplog):
    disk, errors = Disk(failures=1), []
    rec = recorder(disk, rotate_events=1, on_error=lambda: errors.append(1))
    rec.trade(Trade("BTCUSDT", T0, T0, 1000, 0.001, "buy"), 1)
    rec.writer.submit(lambda: None).result()   # the first write has failed
    assert rec.describe()["record_unwritten_files"] == 1
    assert "No space left on device" in rec.describe()["record_error"]
    rec.trade(Trade("BTCUSDT", T0, T0 + 1, 1000, 0.001, "buy"), 2)
    rec.close()
    assert [rows[0][6] for rows in disk.files.values()] == [1, 2]
    assert errors == [1] and len([r for r in caplog.records if r.levelname == "ERROR"]) == 1
    assert rec.describe() == {"record_dir": "/rec", "record_files": 2, "record_unwritten_files": 0,
                              "record_error": rec.last_error}


def test_the_feed_hands_each_applied_event_to_the_recorder_with_its_seq():
    disk = Disk()
    rec = recorder(disk)
    feed = Feed([BTC], "mock", Hub(), Metrics("mock", ("BTCUSDT",), {}), recorder=rec)
    feed.book_snapshot(BookSnapshot("BTCUSDT", T0, T0, ((1000, 1.0),), ((1010, 1.0),)))
    feed.book_delta(BookDelta("BTCUSDT", T0, T0, ((1001, 1.0),), ()))
    feed.trade(Trade("BTCUSDT", T0, T0, 1010, 0.5, "buy"))
    feed.trade(Trade("ETHUSDT", T0, T0, 1010, 0.5, "buy"))   # not served: not recorded either
    rec.close()
    (rows,) = disk.files.values()
    assert [row[6] for row in rows] == [1, 1, 1, 1, 2, 3] and feed.symbols["BTCUSDT"].book.seq == 3


def test_each_file_starts_with_the_whole_book_so_it_backtests_on_its_own():
    disk = Disk()
    rec = recorder(disk, rotate_events=6)
    feed = Feed([BTC], "mock", Hub(), Metrics("mock", ("BTCUSDT",), {}), recorder=rec)
    feed.book_snapshot(BookSnapshot("BTCUSDT", T0, T0, ((1000, 1.0), (999, 2.0)), ((1010, 1.0),)))
    feed.book_delta(BookDelta("BTCUSDT", T0, T0 + 1, ((1001, 3.0),), ()))   # the first file is full
    feed.trade(Trade("BTCUSDT", T0, T0 + 2, 1010, 0.5, "buy"))              # the second starts here
    rec.close()
    first, second = disk.files.values()
    assert [row[6] for row in first] == [1] * 5 + [2]
    whole = [(row[0], row[3], row[4]) for row in second if row[0] & 0xF in (3, 4)]
    assert whole == [(BUY | 3, 99.9, 0.0), (BUY | 4, 100.0, 1.0), (BUY | 4, 99.9, 2.0), (BUY | 4, 100.1, 3.0),
                     (SELL | 3, 101.0, 0.0), (SELL | 4, 101.0, 1.0)]
    assert second[-1][0] == BUY | 2 and all(row[6] == 3 for row in second)


def test_a_book_deeper_than_a_file_still_lets_each_file_hold_rotate_events_rows():
    disk = Disk()
    rec = recorder(disk, rotate_events=3)
    feed = Feed([BTC], "mock", Hub(), Metrics("mock", ("BTCUSDT",), {}), recorder=rec)
    deep = tuple((1000 - i, 1.0) for i in range(10))
    feed.book_snapshot(BookSnapshot("BTCUSDT", T0, T0, deep, ((1010, 1.0),)))
    for i in range(6):
        feed.trade(Trade("BTCUSDT", T0, T0 + i, 1010, 0.5, "buy"))
    rec.close()
    trades = [sum(row[0] & 0xF == 2 for row in rows) for rows in disk.files.values()]
    assert trades == [0, 3, 3]   # the snapshot's file, then whole book + 3 trades, twice


@pytest.fixture
def no_record_env(monkeypatch):
    for name in ("RECORD_DIR", "RECORD_ROTATE_S", "RECORD_ROTATE_EVENTS"):
        monkeypatch.delenv(name, raising=False)


def test_recording_is_off_by_default_and_its_numbers_are_ranged(no_record_env, monkeypatch):
    settings = load_settings(data_source="mock")
    defaults = (settings.record_dir, settings.record_rotate_s, settings.record_rotate_events)
    assert defaults == (None, 3600, 1_000_000)
    for name, value, says in (("RECORD_ROTATE_S", "0.5", "greater than or equal to 1"),
                              ("RECORD_ROTATE_EVENTS", "1e6", "'1e6' is not a whole number"),
                              ("RECORD_ROTATE_EVENTS", "10", "greater than or equal to 100")):
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigError, match=f"{name}='{value}': .*{says}"):
            load_settings(data_source="mock")
        monkeypatch.delenv(name)


def test_a_record_dir_without_numpy_or_not_writable_is_refused(no_record_env, tmp_path, monkeypatch):
    assert importlib.util.find_spec("numpy") is None   # the unit venv, like the service-mock image, has none
    with pytest.raises(ConfigError, match="recording needs numpy, which this image lacks .*unset RECORD_DIR"):
        load_settings(data_source="mock", record_dir=str(tmp_path))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    with pytest.raises(ConfigError, match=r"RECORD_DIR: cannot write to /nonexistent/rec \(No such file"):
        load_settings(data_source="mock", record_dir="/nonexistent/rec")
    assert load_settings(data_source="mock", record_dir=f" {tmp_path}").record_dir == str(tmp_path)
    assert load_settings(data_source="mock", record_dir=" ").record_dir is None


def test_python_m_service_with_a_record_dir_but_no_numpy_exits_2_with_one_line(service_env, tmp_path):
    done = subprocess.run([sys.executable, "-m", "service"], capture_output=True, text=True, timeout=120,
                          env={**service_env, "DATA_SOURCE": "mock", "RECORD_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"hftlive service: bad configuration: RECORD_DIR={str(tmp_path)!r}: recording needs numpy, "
        "which this image lacks (service-mock has none); use the service image, or unset RECORD_DIR"]
