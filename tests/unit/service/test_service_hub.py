"""Fan-out: a subscriber that falls behind its buffer is cut off with 4008; the others get every message."""
from __future__ import annotations

import asyncio

import pytest

from service.hub import Hub, SubscriberClosed
from service.protocol import CloseCode, fit_reason

pytestmark = pytest.mark.anyio


async def test_a_slow_subscriber_is_closed_and_a_fast_one_keeps_every_message():
    cut = []
    hub = Hub(on_slow=cut.append)
    fast = hub.subscribe(["BTCUSDT"], capacity=4)
    slow = hub.subscribe(["BTCUSDT"], capacity=4)
    received = []

    async def consume():
        while True:
            received.append(await fast.get())

    reader = asyncio.create_task(consume())
    for i in range(50):
        hub.publish("BTCUSDT", f"m{i}")
        await asyncio.sleep(0)          # the fast reader keeps up; the slow one never reads
    await asyncio.sleep(0)
    reader.cancel()
    assert received == [f"m{i}" for i in range(50)]
    assert slow.closed and (slow.code, slow.reason) == (CloseCode.SLOW_CONSUMER, "slow consumer")
    assert not fast.closed
    assert len(hub) == 1
    assert cut == [5]            # 4 buffered + the one that did not fit, counted once


async def test_a_cut_subscriber_raises_instead_of_delivering_stale_messages():
    hub = Hub()
    sub = hub.subscribe(["X"], capacity=2)
    for i in range(3):
        hub.publish("X", str(i))
    with pytest.raises(SubscriberClosed):
        await sub.get()
    await asyncio.wait_for(sub.wait_cut(), 1)


async def test_messages_go_only_to_subscribers_of_that_symbol_and_broadcasts_to_all():
    hub = Hub()
    btc = hub.subscribe(["BTCUSDT"], 8)
    both = hub.subscribe(["BTCUSDT", "ETHUSDT"], 8)
    hub.publish("ETHUSDT", "eth")
    hub.publish("BTCUSDT", "btc")
    hub.broadcast("status")
    hub.publish("SOLUSDT", "nobody")
    assert [await btc.get() for _ in range(len(btc))] == ["btc", "status"]
    assert [await both.get() for _ in range(len(both))] == ["eth", "btc", "status"]


def test_a_subscriber_closed_for_another_reason_is_not_counted_as_slow():
    cut = []
    hub = Hub(on_slow=cut.append)
    sub = hub.subscribe(["X"], 1)
    hub.close_all()
    hub.publish("X", "after")
    assert sub.closed and sub.code == CloseCode.SHUTDOWN and cut == []


def test_a_subscriber_whose_oldest_message_is_older_than_the_lag_bound_is_cut_even_with_room():
    now = [0.0]
    cut = []
    hub = Hub(on_slow=cut.append, max_lag_s=2.0, clock=lambda: now[0])
    stalled = hub.subscribe(["BTCUSDT"], capacity=1000)
    for second in range(4):          # one a second: far below the buffer, but older and older
        now[0] = float(second)
        hub.publish("BTCUSDT", f"m{second}")
    assert stalled.closed and stalled.code == CloseCode.SLOW_CONSUMER
    assert cut == [4]                    # m0..m2 queued, m3 refused: the oldest was 3 s old


def test_close_reasons_fit_a_close_frame_without_splitting_a_character():
    reason = fit_reason("unknown symbol " + "€" * 60)
    assert len(reason.encode()) <= 123 and reason.startswith("unknown symbol €") and reason.endswith("...")
    assert fit_reason("short") == "short"


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_a_message_is_framed_as_the_websockets_library_frames_it(size):
    from websockets.frames import Frame, Opcode

    from service.hub import text_frame
    text = "é" * (size // 2) + "x" * (size % 2)   # multibyte: the length is in bytes, not characters
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    assert text_frame(text) == expected


async def test_take_hands_over_every_queued_frame_in_order_with_the_oldest_queue_time():
    times = iter([10.0, 11.0, 12.0])
    hub = Hub(clock=lambda: next(times))
    sub = hub.subscribe(["X"], capacity=8)
    for text in ("a", "b", "c"):
        hub.publish("X", text)
    queued, frames = await sub.take(most=2)
    assert (queued, frames) == (10.0, [b"\x81\x01a", b"\x81\x01b"])
    assert await sub.take() == (12.0, [b"\x81\x01c"])
