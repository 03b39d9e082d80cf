"""The one pacing loop: whole actions at the rate asked, nothing while the rate is 0, a bounded catch-up after a stall."""
from __future__ import annotations

import asyncio
import contextlib
import time

from market.pacing import MAX_BACKLOG_S, TICK_S, pace


def run_for(seconds: float, rate, step) -> None:
    with contextlib.suppress(TimeoutError):
        asyncio.run(asyncio.wait_for(pace(rate, step), seconds))


def test_actions_come_at_the_rate_in_whole_numbers_and_fractions_carry_over():
    for per_second in (2_000.0, 30.0):   # 20 actions a tick; 0.3 of an action a tick
        calls: list[tuple[int, float]] = []
        started = time.monotonic()
        run_for(0.5, lambda: per_second, lambda actions, now: calls.append((actions, now)))
        elapsed = time.monotonic() - started
        total = sum(actions for actions, _ in calls)
        assert all(isinstance(actions, int) and actions >= 0 for actions, _ in calls)
        assert 0.5 * per_second * 0.5 <= total <= per_second * elapsed + 1, (per_second, total, elapsed)
        assert len(calls) >= 0.5 / TICK_S / 3   # step runs every tick, with 0 actions too
        if per_second < 1 / TICK_S:
            assert 0 in {actions for actions, _ in calls}


def test_a_rate_of_zero_pauses_the_flow_and_a_new_rate_resumes_it():
    rate = {"now": 0.0}
    seen: list[int] = []

    def step(actions: int, now: float) -> None:
        seen.append(actions)
        if len(seen) == 20:
            rate["now"] = 1_000.0

    run_for(0.4, lambda: rate["now"], step)
    assert len(seen) > 20
    assert sum(seen[:20]) == 0
    assert sum(seen[20:]) > 0


def test_after_a_stall_the_catch_up_is_bounded():
    per_second = 10_000.0
    seen: list[int] = []

    def step(actions: int, now: float) -> None:
        seen.append(actions)
        if len(seen) == 5:
            time.sleep(0.3)   # the event loop stalls: 3000 actions were due, at most 500 come

    run_for(0.5, lambda: per_second, step)
    assert max(seen[5:]) <= MAX_BACKLOG_S * per_second + 1
    assert seen[5] >= 0.5 * MAX_BACKLOG_S * per_second
