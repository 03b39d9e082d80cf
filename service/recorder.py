"""The recorder: each book and trade the feed applies, as hftbacktest event rows in rotated .npz files.
Rows are plain tuples; numpy is imported by the writer only, in the writer's thread."""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from market.instrument import Instrument

from .book import Book
from .events import (
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EXCH_EVENT,
    LOCAL_EVENT,
    SELL_EVENT,
    TRADE_EVENT,
    BookDelta,
    BookSnapshot,
    Levels,
    Trade,
)

FEED = EXCH_EVENT | LOCAL_EVENT
EVENT_DTYPE = [("ev", "u8"), ("exch_ts", "i8"), ("local_ts", "i8"), ("px", "f8"), ("qty", "f8"),
               ("order_id", "u8"), ("ival", "i8"), ("fval", "f8")]
# A row in EVENT_DTYPE's field order; ival carries the service's seq of the event the row came from.
Row = tuple[int, int, int, float, float, int, int, float]
Write = Callable[[Path, list[Row]], None]

log = logging.getLogger("hftlive.recorder")


def write_npz(path: Path, rows: list[Row]) -> None:
    """rows as one `data` array of hftbacktest's event dtype, at `path` whole or not at all."""
    import numpy as np

    temp = path.with_name(f".{path.name}.tmp")   # hidden: a reader globbing *.npz never sees a half file
    with open(temp, "wb") as file:   # a file object: savez would append .npz to a name
        np.savez_compressed(file, data=np.array(rows, dtype=EVENT_DTYPE))
    os.replace(temp, path)


def file_name(symbol: str, start_ns: int) -> str:
    """<SYMBOL>_<UTC start, to the nanosecond>.npz: names sort in time order."""
    seconds, ns = divmod(start_ns, 10**9)
    return f"{symbol}_{time.strftime('%Y%m%dT%H%M%S', time.gmtime(seconds))}.{ns:09d}Z.npz"


class SymbolRecording:
    """One symbol's rows since its file started, and what its next rows need to know."""

    __slots__ = ("instrument", "rows", "whole", "start_ns", "last_local", "last_name_ns", "low_bid",
                 "high_ask")

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.rows: list[Row] = []
        self.whole = 0           # rows of the whole book the file starts with: not counted for rotation
        self.start_ns = 0
        self.last_local = 0      # local_ts is clamped to never go back
        self.last_name_ns = -1   # the last file's start: the next one's is later, so names never collide
        # The lowest bid and highest ask ever recorded: a snapshot's clear reaches them (see snapshot_rows).
        self.low_bid: int | None = None
        self.high_ask: int | None = None

    def local(self, local_ts: int) -> int:
        self.last_local = max(self.last_local, local_ts)
        return self.last_local

    def levels(self, flags: int, levels: Levels, exch_ts: int, local_ts: int, seq: int) -> list[Row]:
        price = self.instrument.price
        return [(flags, exch_ts, local_ts, price(tick), qty, 0, seq, 0.0) for tick, qty in levels]

    def seen(self, bids: Levels, asks: Levels) -> None:
        if bids:
            low = min(tick for tick, _ in bids)
            self.low_bid = low if self.low_bid is None else min(self.low_bid, low)
        if asks:
            high = max(tick for tick, _ in asks)
            self.high_ask = high if self.high_ask is None else max(self.high_ask, high)

    def delta_rows(self, delta: BookDelta, seq: int) -> list[Row]:
        self.seen(delta.bids, delta.asks)
        local = self.local(delta.local_ts)
        return (self.levels(DEPTH_EVENT | FEED | BUY_EVENT, delta.bids, delta.exch_ts, local, seq)
                + self.levels(DEPTH_EVENT | FEED | SELL_EVENT, delta.asks, delta.exch_ts, local, seq))

    def snapshot_rows(self, snapshot: BookSnapshot, seq: int) -> list[Row]:
        """Per side a clear, then the side's levels. hftbacktest clears a side from its best level to the
        clear's px (bids down to it, asks up to it), so px is the farthest level the side ever had."""
        self.seen(snapshot.bids, snapshot.asks)
        exch, local, price = snapshot.exch_ts, self.local(snapshot.local_ts), self.instrument.price
        rows: list[Row] = []
        sides = ((BUY_EVENT, self.low_bid, snapshot.bids), (SELL_EVENT, self.high_ask, snapshot.asks))
        for side, far, levels in sides:
            px = 0.0 if far is None else price(far)   # a side never seen has nothing to clear
            rows.append((DEPTH_CLEAR_EVENT | FEED | side, exch, local, px, 0.0, 0, seq, 0.0))
            rows += self.levels(DEPTH_SNAPSHOT_EVENT | FEED | side, levels, exch, local, seq)
        return rows

    def trade_row(self, trade: Trade, seq: int) -> Row:
        side = BUY_EVENT if trade.side == "buy" else SELL_EVENT
        return (TRADE_EVENT | FEED | side, trade.exch_ts, self.local(trade.local_ts),
                self.instrument.price(trade.tick), trade.qty, 0, seq, 0.0)

    def take(self) -> tuple[str, list[Row]]:
        """The current file's name and rows; the next rows start a new file."""
        self.last_name_ns = max(self.start_ns, self.last_name_ns + 1)
        rows, self.rows = self.rows, []
        return file_name(self.instrument.symbol, self.last_name_ns), rows


class Recorder:
    """Takes each event the feed applies (one call each), and hands full files to a writer thread.

    A file ends when its first row is rotate_s old (by the events' local_ts) or holds rotate_events rows;
    a file that fails to write is logged once, counted, kept in memory and tried again with the next one."""

    def __init__(self, directory: str | Path, instruments: Iterable[Instrument], rotate_s: float,
                 rotate_events: int, write: Write = write_npz,
                 on_error: Callable[[], None] = lambda: None) -> None:
        self.directory = Path(directory)
        self.symbols = {i.symbol: SymbolRecording(i) for i in instruments}
        self.rotate_ns = int(rotate_s * 1e9)
        self.rotate_events = rotate_events
        self.write = write
        self.on_error = on_error
        self.files = 0
        self.failed: list[tuple[str, list[Row]]] = []   # touched by the writer thread only
        self.last_error = ""
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="recorder")

    def snapshot(self, snapshot: BookSnapshot, seq: int) -> None:
        self._add(snapshot, self.symbols[snapshot.symbol].snapshot_rows(snapshot, seq), seq)

    def delta(self, delta: BookDelta, seq: int, book: Book | None = None) -> None:
        self._add(delta, self.symbols[delta.symbol].delta_rows(delta, seq), seq, book)

    def trade(self, trade: Trade, seq: int, book: Book | None = None) -> None:
        self._add(trade, [self.symbols[trade.symbol].trade_row(trade, seq)], seq, book)

    def _add(self, event: BookSnapshot | BookDelta | Trade, rows: list[Row], seq: int,
             book: Book | None = None) -> None:
        recording = self.symbols[event.symbol]
        if recording.rows and event.local_ts - recording.start_ns >= self.rotate_ns:
            self._flush(recording)
        if not recording.rows:
            # Every file starts with the whole book (the feed's, this event applied: its levels are
            # absolute, so they apply again harmlessly), so each file backtests on its own.
            whole: list[Row] = []
            if book is not None:
                now = BookSnapshot(event.symbol, event.exch_ts, event.local_ts,
                                   tuple(book.bids.items()), tuple(book.asks.items()))
                whole = recording.snapshot_rows(now, seq)
            rows, recording.whole = whole + rows, len(whole)
            recording.start_ns = rows[0][2] if rows else event.local_ts
        recording.rows += rows
        # A book deeper than rotate_events must not make every event a file of its own.
        if len(recording.rows) - recording.whole >= self.rotate_events:
            self._flush(recording)

    def _flush(self, recording: SymbolRecording) -> None:
        self.writer.submit(self._write, *recording.take())

    def _write(self, name: str, rows: list[Row]) -> None:
        """In the writer thread: the files that failed before, then this one."""
        pending, self.failed = [*self.failed, (name, rows)], []
        for index, (file, data) in enumerate(pending):
            try:
                self.write(self.directory / file, data)
                self.files += 1
            except Exception as exc:  # a full or broken disk must not stop the feed
                if index == len(pending) - 1:   # new to failing: said once, not on every retry
                    self.last_error = f"cannot write {file}: {exc}"
                    log.error("recorder: %s; its %d rows stay in memory, tried again with the next file",
                              self.last_error, len(data))
                    self.on_error()
                self.failed.append((file, data))

    def close(self) -> None:
        """Write every symbol's partial file and wait for the writer (blocking: not on the event loop)."""
        for recording in self.symbols.values():
            if recording.rows:
                self._flush(recording)
        self.writer.shutdown(wait=True)
        if self.failed:
            log.error("recorder: %d files (%d rows) could not be written and are lost: %s", len(self.failed),
                      sum(len(rows) for _, rows in self.failed), self.last_error)

    def describe(self) -> dict[str, str | int]:
        info: dict[str, str | int] = {"record_dir": str(self.directory), "record_files": self.files,
                                      "record_unwritten_files": len(self.failed)}
        if self.last_error:
            info["record_error"] = self.last_error
        return info
