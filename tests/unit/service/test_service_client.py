"""The async client against a real uvicorn server (mock source): reconnects and resynchronises from snapshots."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.request

import pytest

import uvicorn  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from service.app import create_app  # noqa: E402
from service.client import Delta, Snapshot, StreamClient, StreamRejected, Trade  # noqa: E402


class Server:
    """A real uvicorn server on 127.0.0.1 and an ephemeral port, in a background thread."""

    def __init__(self, settings):
        self.app = create_app(settings)
        self.service = self.app.state.service
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", ws="websockets-sansio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.http = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}/v1/stream"
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(15)

    def call(self, fn, *args):
        """Run fn on the server's event loop and wait for it."""
        done = threading.Event()
        self.service.loop.call_soon_threadsafe(lambda: (fn(*args), done.set()))
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
    seen = 0
    while seen < count:
        event = await asyncio.wait_for(client.next_event(), 10)
        if isinstance(event, (Delta, Trade)):
            assert event.seq == seq + 1
            seq = event.seq
            seen += 1
        assert not isinstance(event, Snapshot), "unexpected resync"
    return seq


async def next_snapshot(client: StreamClient, after: int | None = None) -> Snapshot:
    """Read until a snapshot; whatever comes before it must still continue the book from `after`."""
    while True:
        event = await asyncio.wait_for(client.next_event(), 10)
        if isinstance(event, Snapshot):
            return event
        if isinstance(event, (Delta, Trade)):
            assert after is not None and event.seq == after + 1
            after = event.seq


def test_the_client_resynchronises_after_a_disconnect_and_after_a_gap(mock_settings):
    with Server(mock_settings(mock_event_rate=2000.0)) as server:
        async def scenario():
            client = StreamClient(server.ws, ["BTCUSDT"])
            await client.connect()
            first = await next_snapshot(client)
            last = await follow(client, 100, first.seq)

            server.call(server.service.hub.close_all, 1012, "service restart")   # the server drops everyone
            again = await next_snapshot(client, last)
            assert client.reconnects == 1 and again.seq > last
            last = await follow(client, 100, again.seq)

            client.books["BTCUSDT"].seq -= 1      # pretend an event went missing
            fresh = await next_snapshot(client)
            assert client.gaps == 1 and client.reconnects == 2 and fresh.seq > last
            await follow(client, 100, fresh.seq)

            # The book the client keeps equals the service's at the same sequence number.
            rest = server.get("/v1/book?symbol=BTCUSDT")
            book = client.book("BTCUSDT")
            while book.seq < rest["seq"]:
                await asyncio.wait_for(client.next_event(), 10)
            bids, asks = book.top()
            assert book.seq == rest["seq"]
            assert [list(level) for level in bids] == rest["bids"]
            assert [list(level) for level in asks] == rest["asks"]
            await client.disconnect()
        asyncio.run(scenario())


def test_the_client_refuses_clearly_when_reconnecting_cannot_help(mock_settings):
    with Server(mock_settings(api_token="s3cret")) as server:
        async def scenario():
            with pytest.raises(StreamRejected, match="HTTP 403"):
                await StreamClient(server.ws, ["BTCUSDT"], token="wrong").connect()
            client = StreamClient(server.ws, ["DOGEUSDT"], token="s3cret")
            await client.connect()
            with pytest.raises(StreamRejected, match="unknown symbol DOGEUSDT"):
                await client.next_event()
            async with StreamClient(server.ws, ["BTCUSDT"], token="s3cret") as good:
                assert isinstance(await good.next_event(), Snapshot)
        asyncio.run(scenario())


def test_a_slow_stream_client_is_closed_with_4008_while_a_fast_one_misses_nothing(mock_settings):
    # The buffer holds many loop ticks of events (the mock publishes a batch every 10 ms).
    with Server(mock_settings(mock_event_rate=1_000.0, client_buffer=256)) as server:
        async def scenario():
            fast = StreamClient(server.ws, ["BTCUSDT"])
            await fast.connect()
            start = (await next_snapshot(fast)).seq
            # The slow client reads its socket through a tiny buffer and then not at all.
            raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # before connecting, so the window stays small
            raw.connect(("127.0.0.1", server.port))
            slow = await connect(server.ws, sock=raw, max_queue=1)
            server.call(server.squeeze, raw.getsockname()[1])
            seq = start
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
        asyncio.run(scenario())
