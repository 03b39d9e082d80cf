"""What crosses between the live source's two processes: the bot's config one way, events.py's events the other.

Imported by both the web process (live_supervisor.py) and the bot process (live_bot.py)."""
from __future__ import annotations

import copyreg
import io
import pickle
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


def send(conn: Any, batch: list[Message]) -> None:
    """Send a batch over a multiprocessing Connection (raises what Connection.send_bytes raises)."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _REDUCERS
    pickler.dump(batch)
    conn.send_bytes(buffer.getbuffer())


def receive(conn: Any) -> list[Message]:
    """The next batch; EOFError once the sending end is closed."""
    return pickle.loads(conn.recv_bytes())
