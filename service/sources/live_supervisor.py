"""Runs in the web process: the live source, which starts, watches and restarts the bot process (live_bot.py).

What the bot process sends (live_messages.py) goes to the feed as it came: snapshots, deltas, trades, states."""
from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from collections.abc import Callable
from typing import Any

from ..config import DEFAULT_EXCHANGE, Settings
from ..events import BookDelta, BookSnapshot, Exchange, FeedLoss, SourceState, SourceStatus, Trade
from .base import Sink, Source
from .live_bot import run
from .live_messages import READ_CHUNK, BotConfig, Message, Unframer

STOP_GRACE_S = 5.0
STABLE_RUN_S = 60.0   # a bot process that ran this long resets the restart back-off


class LiveSource(Source):
    """Runs, watches and restarts the bot process.

    Why a process of its own ('spawn', never fork): the bot's jitclass calls hold the GIL while they wait,
    iceoryx2 takes over the process's signal handlers, and an IPC failure aborts the whole process.
    The bot process sends batches over a pipe, which the event loop reads as it becomes readable.
    """

    kind = "live"

    def __init__(
        self,
        config: BotConfig,
        target: Callable[[Any, BotConfig], None] = run,
        restart_delays: tuple[float, float] = (1.0, 30.0),
        exchange: Exchange = DEFAULT_EXCHANGE,
    ) -> None:
        self.config = config
        self.exchange = exchange   # reported, not used: the connector is the one that connects
        self.target = target
        self.restart_delays = restart_delays
        self.restarts = 0
        self.last_detail = ""
        self._sink: Sink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._process: Any = None
        self._stopping = False
        self._stop_requested = asyncio.Event()

    @classmethod
    def from_settings(cls, settings: Settings) -> LiveSource:
        return cls(BotConfig(
            connector=settings.connector_name,
            instruments=tuple((i.symbol, i.tick_size, i.lot_size) for i in settings.instruments),
            stale_after_s=settings.live_stale_after_s,
            rebuild_after_s=settings.live_rebuild_after_s,
            trades_capacity=settings.live_trades_capacity,
            channel_config=settings.hftbacktest_channel_config,
        ), exchange=settings.exchange or DEFAULT_EXCHANGE)

    def describe(self) -> dict[str, str | int | float | None]:
        process = self._process
        return {
            "connector": self.config.connector,
            "bot_pid": process.pid if process is not None and process.is_alive() else None,
            "bot_restarts": self.restarts,
            "channel_config": self.config.channel_config,
        }

    async def start(self, sink: Sink) -> None:
        self._sink = sink
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._stop_requested = asyncio.Event()
        sink.source_status(SourceStatus(SourceState.STARTING, "starting the live bot process"))
        self._task = asyncio.create_task(self._supervise(), name="live-source")

    async def stop(self) -> None:
        self._stopping = True
        self._stop_requested.set()
        process = self._process
        if process is not None and process.is_alive():
            process.terminate()   # iceoryx2's handler turns SIGTERM into an interrupted wait: a clean exit
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE_S * 2)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
            self._task = None
        self._emit(SourceStatus(SourceState.STOPPED, "live source stopped"))

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        first, longest = self.restart_delays
        delay = first
        while not self._stopping:
            started = loop.time()
            try:
                code = await self._run_bot_process()
                why = f": {self.last_detail}" if self.last_detail else ""
                what = f"live bot process exited with code {code}{why}"
            except Exception as exc:  # the process could not even be started
                what = f"live bot process could not start: {type(exc).__name__}: {exc}"
            if self._stopping:
                return
            if loop.time() - started >= STABLE_RUN_S:
                delay = first
            self._emit(SourceStatus(SourceState.FAILED, f"{what}; restarting it in {delay:g}s"))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), delay)
            delay = min(delay * 2, longest)
            self.restarts += 1

    async def _run_bot_process(self) -> int | None:
        loop = asyncio.get_running_loop()
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=self.target, args=(sender, self.config), name="hftlive-live-bot", daemon=True)
        self.last_detail = ""
        await loop.run_in_executor(None, process.start)
        sender.close()   # the bot process holds the only sending end: EOF means it is gone
        self._process = process
        closed: asyncio.Future = loop.create_future()
        fd, unframer = receiver.fileno(), Unframer()
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._read, fd, unframer, closed)
        try:
            await closed
        finally:
            loop.remove_reader(fd)
            receiver.close()
        await loop.run_in_executor(None, process.join, STOP_GRACE_S)
        if process.is_alive():
            process.kill()
            await loop.run_in_executor(None, process.join, STOP_GRACE_S)
        return process.exitcode

    def _read(self, fd: int, unframer: Unframer, closed: asyncio.Future) -> None:
        """On the event loop, when the pipe is readable: what is there now, each whole batch delivered at once
        (no reader thread: no hand-over under the GIL, and one read takes every batch waiting under load)."""
        while True:
            try:
                data = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:   # the bot process holds the only sending end: it is gone
                _resolve(closed)
                return
            for batch in unframer.feed(data):
                self._deliver(batch)
            if len(data) < READ_CHUNK:
                return

    def _deliver(self, batch: list[Message]) -> None:
        sink = self._sink
        if sink is None or self._stopping:
            return
        for message in batch:
            match message:
                case BookDelta():
                    sink.book_delta(message)
                case Trade():
                    sink.trade(message)
                case BookSnapshot():
                    sink.book_snapshot(message)
                case FeedLoss():
                    sink.feed_loss(message)
                case SourceStatus(state=state, detail=detail):
                    # Kept to explain a crash: what the bot last said, unless all was well.
                    self.last_detail = "" if state is SourceState.CONNECTED else detail
                    self._emit(message)

    def _emit(self, status: SourceStatus) -> None:
        if self._sink is not None:
            self._sink.source_status(status)


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
