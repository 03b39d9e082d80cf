"""A client that rebuilds books from the simulator's snapshots and deltas holds exactly its ground truth."""
from __future__ import annotations

import asyncio
import json
import re
import socket
import time

import pytest
from sim_harness import BookClient, truth
from websockets.asyncio.client import connect

DEPTHS = (1, 50, 200, 1000)
BOOKS = tuple(f"orderbook.{d}.BTCUSDT" for d in DEPTHS)
BOOK = "orderbook.50.BTCUSDT"

pytestmark = pytest.mark.anyio


async def test_books_and_trades_equal_the_ground_truth_at_a_checkpoint(start_sim):
    # 10,000 actions/s: the rate the simulator must sustain, with every client still exact.
    sim = start_sim(rate=10_000, seed=3)
    client = await BookClient.open(sim.ws_url, *BOOKS, "publicTrade.BTCUSDT")
    await client.until(lambda: client.kinds[BOOK, "delta"] >= 40 and len(client.trades) >= 20
                       and client.kinds["orderbook.1000.BTCUSDT", "delta"] >= 3)
    checkpoint = sim.post("/control/pause")["topics"]
    await client.until(lambda: all(client.u.get(t) == checkpoint[t]["u"] for t in BOOKS))
    trades = sim.get("/control/trades", symbol="BTCUSDT")["trades"]
    await client.until(lambda: len(client.trades) and client.trades[-1]["i"] == trades[-1]["i"])
    await client.close()

    for depth, topic in zip(DEPTHS, BOOKS):
        expected = truth(sim, "BTCUSDT", depth)
        assert client.book(topic) == expected, topic
        assert len(expected["bids"]) >= min(depth, 20) and len(expected["asks"]) >= min(depth, 20)
        # The client never held more than the topic's depth: levels pushed out were deleted.
        assert client.widest[topic] <= depth
        assert client.kinds[topic, "snapshot"] >= 1
    assert client.kinds["orderbook.1.BTCUSDT", "delta"] == 0   # depth 1 is snapshots only
    assert client.gaps == []
    assert client.unusable == []

    # Every trade once, in order, the same as the simulator's record from the first one received.
    ids = [t["i"] for t in client.trades]
    assert len(set(ids)) == len(ids)
    first = [t["i"] for t in trades].index(ids[0])
    assert client.trades == trades[first:]
    assert [t["seq"] for t in client.trades] == sorted(t["seq"] for t in client.trades)
    trade = client.trades[0]
    assert set(trade) >= {"T", "s", "S", "v", "p", "L", "i", "BT", "seq"}
    assert trade["S"] in ("Buy", "Sell") and trade["BT"] is False
    assert re.fullmatch(r"\d+\.\d", trade["p"]) and re.fullmatch(r"\d+\.\d{3}", trade["v"])
    assert {t["L"] for t in client.trades} <= {"PlusTick", "ZeroPlusTick", "MinusTick", "ZeroMinusTick"}


async def test_wire_format_follows_each_symbols_tick_and_lot(start_sim):
    sim = start_sim(symbols="BTCUSDT,ETHUSDT", tick_size="0.1,0.01", lot_size="0.001,0.01",
                    price="60000,3000", rate=2000)
    client = await BookClient.open(sim.ws_url, "orderbook.50.ETHUSDT", BOOK)
    await client.more("orderbook.50.ETHUSDT", 5)
    await client.close()

    eth = next(m for m in client.raw if '"orderbook.50.ETHUSDT","type":"delta"' in m)
    prices = re.findall(r'\["([\d.]+)","([\d.]+)"\]', eth)
    assert prices and all(re.fullmatch(r"\d+\.\d{2}", p) for p, _ in prices)
    assert all(s == "0" or re.fullmatch(r"\d+\.\d{2}", s) for _, s in prices)
    snapshot = next(m for m in client.raw if f'"{BOOK}","type":"snapshot"' in m)
    assert re.search(r'"b":\[\["\d+\.\d","\d+\.\d{3}"\]', snapshot)
    assert re.search(r'"u":\d+,"seq":\d+\},"cts":\d+\}$', snapshot)


async def test_snapshot_control_resets_clients_to_the_ground_truth(start_sim):
    sim = start_sim(rate=2000)
    client = await BookClient.open(sim.ws_url, BOOK)
    await client.more(BOOK, 5)
    sim.post("/control/pause")
    before = sim.get("/control/book", depth=50)["u"]
    await client.until(lambda: client.u[BOOK] == before)
    client.books[BOOK][0][1.0] = 99.0   # a stale level only a reset removes
    after = sim.post("/control/snapshot", symbol="BTCUSDT")["topics"][BOOK]["u"]
    await client.more(BOOK, 1, "snapshot")
    await client.close()

    assert after == before + 1
    assert client.snapshot_us[BOOK][-1] == after
    assert client.book(BOOK) == truth(sim, "BTCUSDT", 50)
    assert sim.get("/control/stats")["faults"]["snapshot"] == 1


async def test_restart_stream_sends_a_snapshot_with_u_1_then_deltas_from_2(start_sim):
    sim = start_sim(rate=2000)
    client = await BookClient.open(sim.ws_url, BOOK, "orderbook.1.BTCUSDT")
    await client.until(lambda: client.u.get(BOOK, 0) >= 10)
    sim.post("/control/restart-stream", symbol="BTCUSDT")
    await client.until(lambda: client.snapshot_us[BOOK][-1:] == [1] and client.u[BOOK] >= 4)
    await client.close()

    assert 1 in client.snapshot_us["orderbook.1.BTCUSDT"]
    assert client.gaps == []   # after the restart: 2, 3, 4 ...


async def test_skip_u_shows_a_gap_of_two(start_sim):
    sim = start_sim(rate=2000)
    client = await BookClient.open(sim.ws_url, BOOK)
    await client.more(BOOK, 3)
    sim.post("/control/skip-u", symbol="BTCUSDT")
    await client.until(lambda: client.gaps)
    await client.close()

    [(topic, previous, received)] = client.gaps
    assert topic == BOOK and received == previous + 2
    assert sim.get("/control/stats")["faults"]["skip_u"] == 1


async def test_malformed_frames_arrive_and_normal_data_continues(start_sim):
    sim = start_sim(rate=2000)
    client = await BookClient.open(sim.ws_url, BOOK)
    await client.more(BOOK, 3)
    assert sim.post("/control/malformed")["clients"] == 1
    await client.until(lambda: len(client.unusable) == 3)
    await client.more(BOOK, 5)
    await client.close()

    undecodable, unknown, partial = client.unusable
    assert undecodable.startswith(f'{{"topic":"{BOOK}"') and not undecodable.endswith("}")
    assert '"topic":"unknown.BTCUSDT"' in unknown
    assert f'"topic":"{BOOK}","type":"delta"' in partial and '"u"' not in partial
    assert client.gaps == []   # the broken delta took no u


async def test_drop_closes_every_connection_abruptly(start_sim):
    sim = start_sim()
    clients = [await BookClient.open(sim.ws_url, BOOK) for _ in range(2)]
    assert sim.post("/control/drop")["closed"] == 2
    for client in clients:
        await asyncio.wait_for(client.ws.wait_closed(), 10)
        assert client.ws.close_code == 1006   # no close frame: the TCP connection just ended
    again = await BookClient.open(sim.ws_url, BOOK)
    await again.more(BOOK, 1, "snapshot")
    stats = sim.get("/control/stats")
    await again.close()
    assert stats["connections"] == 1 and stats["connections_total"] == 3
    assert stats["faults"]["drop"] == 1


async def test_stall_holds_everything_including_pongs(start_sim):
    sim = start_sim(rate=500)
    client = await BookClient.open(sim.ws_url, BOOK)
    sim.post("/control/stall", seconds=1.5)
    start = time.monotonic()
    await client.request({"op": "ping", "req_id": "p1"})
    waited = time.monotonic() - start
    await client.close()

    assert waited >= 1.2
    assert client.replies[-1] == {"success": True, "ret_msg": "pong", "req_id": "p1", "op": "ping",
                                  "conn_id": client.replies[0]["conn_id"]}
    assert client.gaps == []   # what was held back came afterwards, in order
    assert sim.get("/control/stats")["faults"]["stall"] == 1


async def test_idle_connections_are_closed_and_pinging_ones_are_not(start_sim):
    sim = start_sim(idle_timeout_s=1)
    silent = await BookClient.open(sim.ws_url)
    pinging = await BookClient.open(sim.ws_url)

    async def keep_pinging():
        while True:
            await pinging.send({"op": "ping"})
            await asyncio.sleep(0.25)

    task = asyncio.create_task(keep_pinging())
    reader = asyncio.create_task(pinging.until(lambda: False, timeout=60))
    await asyncio.wait_for(silent.ws.wait_closed(), 10)
    assert silent.ws.close_code == 1006
    assert pinging.ws.close_code is None
    task.cancel()
    reader.cancel()
    await asyncio.gather(task, reader, return_exceptions=True)
    assert any(r.get("ret_msg") == "pong" for r in pinging.replies)
    assert sim.get("/control/stats")["idle_closed"] == 1
    await pinging.close()


async def test_a_client_that_reads_nothing_is_cut_off_and_the_others_keep_streaming(start_sim):
    sim = start_sim(rate=50_000, max_backlog_bytes=2**20)
    healthy = await BookClient.open(sim.ws_url, BOOK)
    # A client that subscribes, then never reads: a tiny receive window, soon zero.
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # before connecting: it stays small
    raw.connect(("127.0.0.1", sim.port))
    stalled = await connect(sim.ws_url, sock=raw, compression=None)   # uncompressed: fills fast
    await stalled.send(json.dumps({"op": "subscribe", "args": [*BOOKS, "publicTrade.BTCUSDT"]}))
    stalled.transport.pause_reading()
    deadline = time.monotonic() + 8
    while (stats := sim.get("/control/stats"))["connections"] > 1:
        assert time.monotonic() < deadline, f"the stalled client was never cut off: {stats}"
        await asyncio.sleep(0.25)
    stalled.transport.abort()
    await healthy.more(BOOK, 5)
    assert healthy.ws.close_code is None and healthy.gaps == []
    await healthy.close()
    assert stats["connections"] == 1 and stats["slow_closed"] == 1
    assert "fell" in sim.stderr() and "cut off" in sim.stderr()
