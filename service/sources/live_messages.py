"""What crosses between the live source's two processes: the bot's config one way, events.py's events the other.

Imported by both the web process (live_supervisor.py) and the bot process (live_bot.py)."""
from __future__ import annotations

import copyreg
import io
import os
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from ..events import BookDelta, BookSnapshot, FeedLoss, SourceStatus, Trade

# What the bot process sends, in batches (lists), in the order they happened.
Message = BookSnapshot | BookDelta | Trade | SourceStatus | FeedLoss
MESSAGE_TYPES: tuple[type[Message], ...] = (BookDelta, Trade, BookSnapshot, SourceStatus, FeedLoss)


@dataclass(frozen=True)
class BotConfig:
    """What the web process tells the bot process, once, when it spawns it."""
    connector: str
    instruments: tuple[tuple[str, float, float], ...]   # (symbol, tick size, lot size)
    stale_after_s: float = 5.0
    rebuild_after_s: float = 15.0
    trades_capacity: int = 1000
    channel_config: str | None = None


def _by_fields(cls: type[Message]) -> Callable[[Any], tuple]:
    values = attrgetter(*(f.name for f in fields(cls)))   # every message type has two fields or more
    return lambda message: (cls, values(message))


# Pickled as (class, fields), so unpickling calls the class: a frozen slots dataclass's default (a per-field
# Python __setstate__) made a batch 1.3x (one message) to 3x (twenty) slower to pickle and unpickle.
_REDUCERS = copyreg.dispatch_table | {cls: _by_fields(cls) for cls in MESSAGE_TYPES}


HEADER = struct.Struct("!I")   # each batch on the pipe: its pickle's length, then the pickle
READ_CHUNK = 1 << 20


def send(conn: Any, batch: list[Message]) -> None:
    """Write a batch to the pipe under a multiprocessing Connection (blocking; raises OSError if it broke)."""
    buffer = io.BytesIO()
    buffer.write(bytes(HEADER.size))
    pickler = pickle.Pickler(buffer, pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _REDUCERS
    pickler.dump(batch)
    view = buffer.getbuffer()
    HEADER.pack_into(view, 0, len(view) - HEADER.size)
    fd = conn.fileno()
    while view:
        view = view[os.write(fd, view):]


class Unframer:
    """The web process's end: bytes as they come off the pipe in, whole batches out."""

    def __init__(self) -> None:
        self.pending = bytearray()

    def feed(self, data: bytes) -> list[list[Message]]:
        pending = self.pending
        pending += data
        batches, at = [], 0
        while len(pending) - at >= HEADER.size:
            (size,) = HEADER.unpack_from(pending, at)
            end = at + HEADER.size + size
            if end > len(pending):
                break
            batches.append(pickle.loads(memoryview(pending)[at + HEADER.size:end]))
            at = end
        del pending[:at]
        return batches


def receive(conn: Any) -> list[Message]:
    """The next batch, blocking (tests; the service reads on its event loop); EOFError once the sender is gone."""
    fd = conn.fileno()

    def exactly(size: int) -> bytes:
        data = b""
        while len(data) < size:
            more = os.read(fd, size - len(data))
            if not more:
                raise EOFError("the bot process closed the pipe")
            data += more
        return data
    return pickle.loads(exactly(HEADER.unpack(exactly(HEADER.size))[0]))
