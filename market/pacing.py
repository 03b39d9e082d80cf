"""Pacing: order flow at a rate in actions per second, handed out in whole actions every 10 ms of the event loop."""
from __future__ import annotations

import asyncio
from collections.abc import Callable

TICK_S = 0.01          # one batch of actions per 10 ms of the event loop
MAX_BACKLOG_S = 0.05   # after a stall, catch up at most this much: bursts stay well inside client buffers


async def pace(rate: Callable[[], float], step: Callable[[int, float], None]) -> None:
    """Forever: every TICK_S, step(actions, now) with the whole actions due at rate() per second since the last.

    rate() is read every tick (0 pauses the flow); step runs every tick, with 0 actions when none is due,
    and a fraction of an action carries over. `now` is the event loop's clock.
    """
    loop = asyncio.get_running_loop()
    last = loop.time()
    due = 0.0
    while True:
        await asyncio.sleep(TICK_S)
        now = loop.time()
        due += min(now - last, MAX_BACKLOG_S) * rate()
        last = now
        actions = int(due)
        due -= actions
        step(actions, now)
