"""A client that rebuilds books from the simulator's snapshots and deltas holds exactly its ground truth."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import time
import urllib.parse

from sim_harness import BookClient, truth

DEPTHS = (1, 50, 200, 1000)
BOOKS = tuple(f"orderbook.{d}.BTCUSDT" for d in DEPTHS)


def test_books_and_trades_equal_the_ground_truth_at_a_checkpoint(start_sim):
    # 10,000 actions/s: the rate the simulator must sustain, with every client still exact.
    sim = start_sim(rate=10_000, seed=3)

    async def scenario():
        client = await BookClient.open(sim.ws_url)
        reply = await client.subscribe(*BOOKS, "publicTrade.BTCUSDT")
        assert reply["success"] is True and reply["op"] == "subscribe" and reply["req_id"].startswith("sub-")
        await client.until(lambda: client.kinds["orderbook.50.BTCUSDT", "delta"] >= 40
                           and client.kinds["orderbook.1000.BTCUSDT", "delta"] >= 3 and len(client.trades) >= 20)
        checkpoint = sim.post("/control/pause")["topics"]
        await client.until(lambda: all(client.u.get(t) == checkpoint[t]["u"] for t in BOOKS))
        trades = sim.get("/control/trades", symbol="BTCUSDT")["trades"]
        await client.until(lambda: len(client.trades) and client.trades[-1]["i"] == trades[-1]["i"])
        await client.close()
        return client, trades

    client, trades = asyncio.run(scenario())
    for depth, topic in zip(DEPTHS, BOOKS):
        expected = truth(sim, "BTCUSDT", depth)
        assert client.book(topic) == {"bids": expected["bids"], "asks": expected["asks"]}, topic
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


def test_wire_format_follows_each_symbols_tick_and_lot(start_sim):
    sim = start_sim(symbols="BTCUSDT,ETHUSDT", tick_size="0.1,0.01", lot_size="0.001,0.01", price="60000,3000",
                    rate=2000)

    async def scenario():
        client = await BookClient.open(sim.ws_url)
        await client.subscribe("orderbook.50.ETHUSDT", "orderbook.50.BTCUSDT")
        await client.until(lambda: client.kinds["orderbook.50.ETHUSDT", "delta"] >= 5)
        await client.close()
        return client.raw

    raw = asyncio.run(scenario())
    eth = next(m for m in raw if '"orderbook.50.ETHUSDT","type":"delta"' in m)
    prices = re.findall(r'\["([\d.]+)","([\d.]+)"\]', eth)
    assert prices and all(re.fullmatch(r"\d+\.\d{2}", p) for p, _ in prices)
    assert all(s == "0" or re.fullmatch(r"\d+\.\d{2}", s) for _, s in prices)
    snapshot = next(m for m in raw if '"orderbook.50.BTCUSDT","type":"snapshot"' in m)
    assert re.search(r'"b":\[\["\d+\.\d","\d+\.\d{3}"\]', snapshot)
    assert re.search(r'"u":\d+,"seq":\d+\},"cts":\d+\}$', snapshot)


def test_snapshot_control_resets_clients_to_the_ground_truth(start_sim):
    sim = start_sim(rate=2000)

    async def scenario():
        client = await BookClient.open(sim.ws_url)
        await client.subscribe("orderbook.50.BTCUSDT")
        await client.until(lambda: client.kinds["orderbook.50.BTCUSDT", "delta"] >= 5)
        sim.post("/control/pause")
        before = sim.get("/control/book", depth=50)["u"]
        await client.until(lambda: client.u["orderbook.50.BTCUSDT"] == before)
        client.books["orderbook.50.BTCUSDT"][0][1.0] = 99.0   # a stale level only a reset removes
        after = sim.post("/control/snapshot", symbol="BTCUSDT")["topics"]["orderbook.50.BTCUSDT"]["u"]
        await client.until(lambda: client.kinds["orderbook.50.BTCUSDT", "snapshot"] == 2)
        await client.close()
        return client, before, after

    client, before, after = asyncio.run(scenario())
    assert after == before + 1
    assert client.snapshot_us["orderbook.50.BTCUSDT"][-1] == after
    expected = truth(sim, "BTCUSDT", 50)
    assert client.book("orderbook.50.BTCUSDT") == {"bids": expected["bids"], "asks": expected["asks"]}
    assert sim.get("/control/stats")["faults"]["snapshot"] == 1


def test_restart_stream_sends_a_snapshot_with_u_1_then_deltas_from_2(start_sim):
    sim = start_sim(rate=2000)

    async def scenario():
        client = await BookClient.open(sim.ws_url)
        await client.subscribe("orderbook.50.BTCUSDT", "orderbook.1.BTCUSDT")
        await client.until(lambda: client.u.get("orderbook.50.BTCUSDT", 0) >= 10)
        sim.post("/control/restart-stream", symbol="BTCUSDT")
        await client.until(lambda: client.snapshot_us["orderbook.50.BTCUSDT"][-1:] == [1]
                           and client.u["orderbook.50.BTCUSDT"] >= 4)
        await client.close()
        return client

    client = asyncio.run(scenario())
    assert client.snapshot_us["orderbook.50.BTCUSDT"][-1] == 1
    assert 1 in client.snapshot_us["orderbook.1.BTCUSDT"]
    assert client.gaps == []   # after the restart: 2, 3, 4 ...


def test_skip_u_shows_a_gap_of_two(start_sim):
    sim = start_sim(rate=2000)

    async def scenario():
        client = await BookClient.open(sim.ws_url)
        await client.subscribe("orderbook.50.BTCUSDT")
        await client.until(lambda: client.kinds["orderbook.50.BTCUSDT", "delta"] >= 3)
        sim.post("/control/skip-u", symbol="BTCUSDT")
        await client.until(lambda: client.gaps)
        await client.close()
        return client

    client = asyncio.run(scenario())
    topic, previous, received = client.gaps[0]
    assert topic == "orderbook.50.BTCUSDT" and received == previous + 2
    assert len(client.gaps) == 1
    assert sim.get("/control/stats")["faults"]["skip_u"] == 1


def test_malformed_frames_arrive_and_normal_data_continues(start_sim):
    sim = start_sim(rate=2000)

    async def scenario():
        client = await BookClient.open(sim.ws_url)
        await client.subscribe("orderbook.50.BTCUSDT")
        await client.until(lambda: client.kinds["orderbook.50.BTCUSDT", "delta"] >= 3)
        assert sim.post("/control/malformed")["clients"] == 1
        await client.until(lambda: len(client.unusable) == 3)
        deltas = client.kinds["orderbook.50.BTCUSDT", "delta"]
        await client.until(lambda: client.kinds["orderbook.50.BTCUSDT", "delta"] >= deltas + 5)
        await client.close()
        return client

    client = asyncio.run(scenario())
    undecodable, unknown, partial = client.unusable
    assert undecodable.startswith('{"topic":"orderbook.50.BTCUSDT"') and not undecodable.endswith("}")
    assert '"topic":"unknown.BTCUSDT"' in unknown
    assert '"topic":"orderbook.50.BTCUSDT","type":"delta"' in partial and '"u"' not in partial
    assert client.gaps == []   # the broken delta took no u


def test_drop_closes_every_connection_abruptly(start_sim):
    sim = start_sim()

    async def scenario():
        clients = [await BookClient.open(sim.ws_url) for _ in range(2)]
        for client in clients:
            await client.subscribe("orderbook.50.BTCUSDT")
        assert sim.post("/control/drop")["closed"] == 2
        for client in clients:
            await asyncio.wait_for(client.ws.wait_closed(), 10)
        again = await BookClient.open(sim.ws_url)
        await again.subscribe("orderbook.50.BTCUSDT")
        await again.until(lambda: again.kinds["orderbook.50.BTCUSDT", "snapshot"] == 1)
        stats = sim.get("/control/stats")
        await again.close()
        return clients, stats

    clients, stats = asyncio.run(scenario())
    for client in clients:
        assert client.ws.close_code == 1006   # no close frame: the TCP connection just ended
    assert stats["connections"] == 1 and stats["connections_total"] == 3
    assert stats["faults"]["drop"] == 1


def test_stall_holds_everything_including_pongs(start_sim):
    sim = start_sim(rate=500)

    async def scenario():
        client = await BookClient.open(sim.ws_url)
        await client.subscribe("orderbook.50.BTCUSDT")
        sim.post("/control/stall", seconds=1.5)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await client.request({"op": "ping", "req_id": "p1"})
        waited = loop.time() - start
        await client.close()
        return client, waited

    client, waited = asyncio.run(scenario())
    assert waited >= 1.2
    assert client.replies[-1] == {"success": True, "ret_msg": "pong", "conn_id": client.replies[0]["conn_id"],
                                  "req_id": "p1", "op": "ping"}
    assert client.gaps == []   # what was held back came afterwards, in order
    assert sim.get("/control/stats")["faults"]["stall"] == 1


def test_idle_connections_are_closed_and_pinging_ones_are_not(start_sim):
    sim = start_sim(idle_timeout_s=1)

    async def scenario():
        silent = await BookClient.open(sim.ws_url)
        pinging = await BookClient.open(sim.ws_url)

        async def keep_pinging():
            while True:
                await pinging.send({"op": "ping"})
                await asyncio.sleep(0.25)

        task = asyncio.create_task(keep_pinging())
        reader = asyncio.create_task(pinging.until(lambda: False, timeout=60))
        await asyncio.wait_for(silent.ws.wait_closed(), 10)
        open_after = pinging.ws.close_code is None
        task.cancel()
        reader.cancel()
        await asyncio.gather(task, reader, return_exceptions=True)
        stats = sim.get("/control/stats")
        await pinging.close()
        return silent, open_after, pinging, stats

    silent, open_after, pinging, stats = asyncio.run(scenario())
    assert silent.ws.close_code == 1006
    assert open_after and any(r.get("ret_msg") == "pong" for r in pinging.replies)
    assert stats["idle_closed"] == 1


def stalled_client(ws_url: str, topics: list[str]) -> socket.socket:
    """A raw WebSocket client that subscribes, then never reads: a tiny receive window, soon zero."""
    url = urllib.parse.urlsplit(ws_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # before connect: the window stays small
    sock.connect((url.hostname, url.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(1)   # byte by byte: read the handshake and nothing after it
    assert answer.startswith(b"HTTP/1.1 101"), answer
    payload = json.dumps({"op": "subscribe", "args": topics}).encode()
    mask = os.urandom(4)
    sock.sendall(bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") + mask
                 + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return sock


def test_a_client_that_reads_nothing_is_cut_off_and_the_others_keep_streaming(start_sim):
    sim = start_sim(rate=50_000, max_backlog_bytes=2**20)

    async def scenario():
        healthy = await BookClient.open(sim.ws_url)
        await healthy.subscribe("orderbook.50.BTCUSDT")
        stalled = stalled_client(sim.ws_url, [*BOOKS, "publicTrade.BTCUSDT"])
        deadline = time.monotonic() + 8
        while (stats := sim.get("/control/stats"))["connections"] > 1:
            assert time.monotonic() < deadline, f"the client that reads nothing was never cut off: {stats}"
            await asyncio.sleep(0.25)
        stalled.close()
        deltas = healthy.kinds["orderbook.50.BTCUSDT", "delta"]
        await healthy.until(lambda: healthy.kinds["orderbook.50.BTCUSDT", "delta"] >= deltas + 5)
        open_after = healthy.ws.close_code is None
        await healthy.close()
        return stats, open_after, healthy

    stats, open_after, healthy = asyncio.run(scenario())
    assert stats["connections"] == 1 and stats["slow_closed"] == 1
    assert open_after and healthy.gaps == []
    assert "fell" in sim.stderr() and "cut off" in sim.stderr()
