"""The async client against a real uvicorn server (mock source): reconnects, resynchronises from snapshots and
reports outages and resyncs as events."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.request

import pytest

import uvicorn
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from service.app import create_app
from service.client import Delta, Snapshot, Status, StreamClient, StreamRejected, Trade
from service.protocol import DeltaMessage, SnapshotMessage
from tests.support import ROOT

pytestmark = pytest.mark.anyio


class Server:
    """A real uvicorn server on 127.0.0.1 and an ephemeral port, in a background thread."""

    def __init__(self, settings, port: int = 0):
        self.app = create_app(settings)
        self.service = self.app.state.service
        config = uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.02)
        self.loop = self.server.servers[0].get_loop()
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.http = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}/v1/stream"
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(15)

    def call(self, fn, *args):
        done = threading.Event()
        self.loop.call_soon_threadsafe(lambda: (fn(*args), done.set()))
        assert done.wait(5)

    def squeeze(self, client_port: int) -> None:
        """Shrink the server's send buffers for one client, so its backlog shows after a few KB, not MBs."""
        for connection in list(self.server.server_state.connections):
            if connection.client and connection.client[1] == client_port:
                connection.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
                connection.transport.set_write_buffer_limits(high=4096)

    def get(self, path):
        with urllib.request.urlopen(self.http + path, timeout=5) as answer:
            return json.load(answer)


async def follow(client: StreamClient, count: int, after: int) -> int:
    """Read `count` deltas/trades and check they continue `after` without a gap; returns the last seq."""
    seq = after
    while seq < after + count:
        event = await asyncio.wait_for(client.next_event(), 10)
        assert isinstance(event, (Delta, Trade, Status)), f"unexpected resync: {event}"
        if not isinstance(event, Status):
            assert event.seq == seq + 1
            seq = event.seq
    return seq


class FreezableProxy:
    """A TCP proxy on 127.0.0.1 that can stop forwarding both ways while its sockets stay open: what a frozen
    service (or a dead network path) looks like to a client — no data, no pongs, no FIN."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> FreezableProxy:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.ws = f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/stream"
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        self.thaw()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        """Forward again; the connections open during the freeze are cut (their client gave up on them)."""
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        self.flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.flowing.wait()
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except (OSError, asyncio.CancelledError):   # the service is gone, or the test is over
            writer.transport.abort()
            return
        self.writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()   # frozen: hold what was read, read nothing more
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()


async def next_signal(client: StreamClient, after: int | None = None, limit: float = 10) -> tuple[object, int | None]:
    """Read past deltas, trades and statuses (checking they continue `after`) to the next other event:
    a snapshot, or what the client says about the stream. Returns it and the last seq read before it."""
    while True:
        event = await asyncio.wait_for(client.next_event(), limit)
        if isinstance(event, (Delta, Trade)):
            assert after is not None and event.seq == after + 1, (event, after)
            after = event.seq
        elif not isinstance(event, Status):
            return event, after


async def next_snapshot(client: StreamClient, after: int | None = None) -> Snapshot:
    """Read past whatever the client says about the stream to its next snapshot."""
    event, after = await next_signal(client, after)
    while not isinstance(event, Snapshot):
        event, after = await next_signal(client, after)
    return event


async def catch_up(client: StreamClient, rest: dict) -> None:
    """Read on until the client's book is at the service's `rest` book: then the two are equal."""
    book = client.book("BTCUSDT")
    while book.seq < rest["seq"]:
        event = await asyncio.wait_for(client.next_event(), 10)
        assert isinstance(event, (Delta, Trade, Status)), event
    levels = [[list(level) for level in side] for side in book.top()]
    assert (book.seq, *levels) == (rest["seq"], rest["bids"], rest["asks"])


async def test_the_client_resynchronises_after_a_disconnect_and_after_a_gap(mock_settings):
    with Server(mock_settings(mock_event_rate=2000.0)) as server:
        client = StreamClient(server.ws, ["BTCUSDT"])
        await client.connect()
        last = await follow(client, 100, (await next_snapshot(client)).seq)

        server.call(server.service.hub.close_all, 1012, "service restart")   # drops everyone
        again = await next_snapshot(client, last)
        assert client.reconnects == 1 and again.seq >= last   # equal when no event came in between
        last = await follow(client, 100, again.seq)

        client.books["BTCUSDT"].seq -= 1      # pretend an event went missing
        fresh = await next_snapshot(client)
        assert client.gaps == 1 and client.reconnects == 2 and fresh.seq >= last
        await follow(client, 100, fresh.seq)
        await catch_up(client, server.get("/v1/book?symbol=BTCUSDT"))
        await client.disconnect()


async def test_the_client_refuses_clearly_when_reconnecting_cannot_help(mock_settings):
    with Server(mock_settings(api_token="s3cret")) as server:
        with pytest.raises(StreamRejected, match="HTTP 403"):
            await StreamClient(server.ws, ["BTCUSDT"], token="wrong").connect()
        client = StreamClient(server.ws, ["DOGEUSDT"], token="s3cret")
        await client.connect()
        with pytest.raises(StreamRejected, match="unknown symbol DOGEUSDT"):
            await client.next_event()
        async with StreamClient(server.ws, ["BTCUSDT"], token="s3cret") as good:
            assert isinstance(await good.next_event(), Snapshot)


async def test_a_slow_stream_client_is_closed_with_4008_while_a_fast_one_misses_nothing(
        mock_settings):
    # The buffer holds many loop ticks of events (the mock publishes a batch every 10 ms).
    with Server(mock_settings(mock_event_rate=1_000.0, client_buffer=256)) as server:
        fast = StreamClient(server.ws, ["BTCUSDT"])
        await fast.connect()
        seq = (await next_snapshot(fast)).seq
        # The slow client reads its socket through a tiny buffer and then not at all.
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # before connecting: stays small
        raw.connect(("127.0.0.1", server.port))
        slow = await connect(server.ws, sock=raw, max_queue=1)
        server.call(server.squeeze, raw.getsockname()[1])
        deadline = time.monotonic() + 20
        while server.service.metrics.slow_consumers._value.get() == 0:
            assert time.monotonic() < deadline, "the slow client was never cut off"
            seq = await follow(fast, 50, seq)
        # Drain what the slow client had buffered: the stream ends with the documented close.
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(slow.recv(), 10)
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4008, "slow consumer")
        assert fast.gaps == 0 and fast.reconnects == 0
        await follow(fast, 200, seq)
        await fast.disconnect()
        metrics = urllib.request.urlopen(server.http + "/metrics", timeout=5).read().decode()
        assert "hftlive_slow_consumers_total 1.0" in metrics


async def test_a_frozen_service_is_reported_as_disconnected_within_the_bound_and_the_client_resynchronises(
        mock_settings):
    with Server(mock_settings(mock_event_rate=200.0)) as server:
        async with FreezableProxy(server.port) as proxy:
            client = StreamClient(proxy.ws, ["BTCUSDT"], ping_interval=0.5, ping_timeout=1.0,
                                  close_timeout=0.5)
            await client.connect()
            last = (await next_snapshot(client)).seq
            quiet_until = time.monotonic() + 2.0   # a few pings answered: not reported lost
            while time.monotonic() < quiet_until:
                last = await follow(client, 1, last)

            proxy.freeze()
            frozen_at = time.monotonic()
            lost, last = await next_signal(client, last, limit=10)   # not websockets' 40 s
            elapsed = time.monotonic() - frozen_at
            assert lost.type == "disconnected", lost
            assert elapsed < client.stall_bound + 1.0, f"noticed after {elapsed:.1f}s"
            assert "ping" in lost.reason and lost.code is None
            assert client.book("BTCUSDT") is None   # the book is void from here on

            proxy.thaw()
            resync, _ = await next_signal(client)
            assert (resync.type, resync.symbol, resync.reason, resync.last_seq) == (
                "resynced", "BTCUSDT", "reconnect", last)
            again, _ = await next_signal(client)
            assert isinstance(again, Snapshot) and again.seq == resync.seq >= last
            assert client.book("BTCUSDT").seq == again.seq
            await follow(client, 20, again.seq)
            assert client.reconnects == 1
            await client.disconnect()


def test_the_default_stall_bound_is_seconds_and_is_the_documented_one():
    client = StreamClient("ws://127.0.0.1:1/v1/stream")
    assert client.stall_bound <= 10.0   # websockets' own defaults take 20 s + 20 s
    readme = " ".join((ROOT / "service" / "README.md").read_text().split())
    stated = (f"= {client.ping_interval:g} + {client.ping_timeout:g} + {client.close_timeout:g} "
              f"= {client.stall_bound:g} s by default")
    assert stated in readme
    assert f"({client.stall_bound:g} s by default)" in " ".join(StreamClient.__doc__.split())


async def test_a_restarted_service_is_reported_as_a_resync_whose_seq_went_backwards(mock_settings):
    old = Server(mock_settings(mock_event_rate=2000.0))
    await asyncio.to_thread(old.__enter__)
    client = StreamClient(old.ws, ["BTCUSDT"])
    await client.connect()
    last = await follow(client, 1000, (await next_snapshot(client)).seq)

    # A new service on the same port numbers its events from the start again, and slowly.
    await asyncio.to_thread(old.__exit__)
    new = Server(mock_settings(mock_event_rate=50.0), port=old.port)
    await asyncio.to_thread(new.__enter__)
    try:
        lost, last = await next_signal(client, last)
        assert lost.type == "disconnected" and lost.code is not None, lost
        resync, _ = await next_signal(client)
        assert (resync.type, resync.symbol, resync.reason, resync.last_seq) == (
            "resynced", "BTCUSDT", "restart", last), resync
        assert resync.seq < last
        fresh, _ = await next_signal(client)
        assert isinstance(fresh, Snapshot) and fresh.seq == resync.seq
        assert client.restarts == 1 and client.reconnects == 1
        # The book is rebuilt from the new service's snapshot and equals its book.
        await catch_up(client, await asyncio.to_thread(new.get, "/v1/book?symbol=BTCUSDT"))
        await client.disconnect()
    finally:
        await asyncio.to_thread(new.__exit__)


async def test_a_gap_is_reported_as_a_disconnect_then_a_resync_from_a_fresh_snapshot():
    def snapshot(seq: int, bid: float) -> str:
        return SnapshotMessage(source="mock", exchange=None, symbol="BTCUSDT", seq=seq, exch_ts=1,
                               local_ts=1, tick_size=0.1, lot_size=0.001, bids=[(bid, 1.0)],
                               asks=[(bid + 0.5, 1.0)]).model_dump_json()

    def delta(seq: int, bid: float) -> str:
        return DeltaMessage(source="mock", exchange=None, symbol="BTCUSDT", seq=seq, exch_ts=1, local_ts=1,
                            bids=[(bid, 2.0)], asks=[]).model_dump_json()

    # A stand-in for the service: the first connection skips seq 12; the second starts from a fresh snapshot.
    scripts = [[snapshot(10, 100.0), delta(11, 99.9), delta(13, 99.8)],
               [snapshot(14, 101.0), delta(15, 100.9)]]

    async def serve_script(websocket: ServerConnection) -> None:
        for message in scripts.pop(0):
            await websocket.send(message)
        await websocket.wait_closed()

    async with serve(serve_script, "127.0.0.1", 0) as service:
        port = service.sockets[0].getsockname()[1]
        client = StreamClient(f"ws://127.0.0.1:{port}/v1/stream", ["BTCUSDT"])
        await client.connect()
        got = []
        while [event.type for event in got].count("snapshot") < 2 or got[-1].type != "delta":
            got.append(await asyncio.wait_for(client.next_event(), 5))
        assert [event.type for event in got] == [
            "snapshot", "delta", "disconnected", "resynced", "snapshot", "delta"], got
        lost, resync = got[2], got[3]
        assert "gap" in lost.reason and "expected sequence 12, got 13" in lost.reason
        assert lost.code is None
        assert (resync.symbol, resync.reason, resync.last_seq, resync.seq) == (
            "BTCUSDT", "gap", 11, 14)
        assert client.gaps == 1 and client.reconnects == 1
        assert client.book("BTCUSDT").top() == ([(101.0, 1.0), (100.9, 2.0)], [(101.5, 1.0)])
        await client.disconnect()
