"""The service as `python -m service` runs it, probed as a hostile or careless client would: inbound
limits, stale readers cut in time and released, close codes on shutdown and for long reasons, and
HTTP connections that must send a request in time."""
from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.service import Service

LAG_S = 2   # CLIENT_MAX_LAG_S for the tests of readers that fall behind
pytestmark = pytest.mark.anyio   # for the async tests


def wait_for(check, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start <= timeout, f"{what}: not within {timeout}s"
        time.sleep(0.1)
    return time.monotonic() - start


async def close_of(ws, timeout: float) -> tuple[int | None, str, list[str]]:
    """Read a stream until it closes (`timeout` s at most): its close code and reason ((None, "") if
    it stayed open), and the states of the status messages it sent."""
    states: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "status":
                    states.append(message["state"])
    except ConnectionClosed as closed:
        return (closed.rcvd.code, closed.rcvd.reason, states) if closed.rcvd else (None, "", states)
    except TimeoutError:
        return None, "", states


# --- 2. what clients send: small, uncompressed ---
async def test_the_stream_negotiates_no_compression_and_closes_on_a_big_inbound_message():
    with Service() as service:
        async with connect(service.ws, compression="deflate", max_size=None) as ws:
            extensions = [type(e).__name__ for e in ws.protocol.extensions]
            assert extensions == [], "per-message deflate must not be negotiated: nothing is read"
            await ws.send("x" * 65536)
            code, _, _ = await close_of(ws, 5)
        assert code == 1009, f"a 64 KiB inbound message should close the stream with 1009, got {code}"
        assert json.loads(urllib.request.urlopen(service.url + "/healthz", timeout=5).read())["status"] == "alive"


# --- 3. a stalled reader is cut in time, told 4008, and its connection released ---
async def test_a_stalled_reader_is_cut_with_4008_within_the_lag_bound_and_then_told():
    with Service(CLIENT_MAX_LAG_S=str(LAG_S), MOCK_EVENT_RATE="2000") as service:
        async with connect(service.ws, max_queue=4, max_size=None) as ws:
            await asyncio.sleep(LAG_S + 3)          # read nothing: the service must not wait for us
            code, _, _ = await close_of(ws, 20)
        assert code == 4008, f"{LAG_S + 3}s behind: should be told 4008 (slow consumer), got {code}"
        assert service.metric("hftlive_slow_consumers_total") == 1
        assert service.metric("hftlive_stream_clients") == 0


async def test_a_reader_that_never_reads_again_has_its_connection_released():
    with Service(CLIENT_MAX_LAG_S=str(LAG_S), MOCK_EVENT_RATE="3000") as service:
        async with connect(service.ws, max_queue=4, max_size=None) as ws:
            ws.transport.pause_reading()   # like a frozen process: the kernel's buffers fill, then stay full
            await asyncio.sleep(0.5)
            assert service.established() == 1
            took = await asyncio.to_thread(wait_for, lambda: service.established() == 0, 20,
                                           "the service's end of a frozen reader's connection")
        assert took < LAG_S + 5 + 3, f"released only after {took:.1f}s"
        assert service.metric("hftlive_slow_consumers_total") == 1
        assert service.metric("hftlive_stream_clients") == 0


# --- 4. SIGTERM: the final status, then 1001 ---
async def test_on_sigterm_stream_clients_get_the_stopped_status_then_1001():
    with Service() as service:
        async with connect(service.ws, max_size=None) as ws:
            for _ in range(3):
                await ws.recv()                    # snapshot, status, ...: the stream is flowing
            service.proc.send_signal(signal.SIGTERM)
            code, reason, states = await close_of(ws, 15)
        assert code == 1001 and "shutting down" in reason, f"got close {code} {reason!r}"
        assert states and states[-1] == "stopped", f"status messages after SIGTERM: {states}"
        # uvicorn re-raises the signal once it has shut down, so the exit is the signal's (143 in Docker).
        assert service.proc.wait(15) == -signal.SIGTERM


# --- 5. a close reason from what the client asked for fits in a close frame ---
async def test_an_unknown_symbol_in_multibyte_characters_gets_4404_with_a_reason_that_fits():
    with Service() as service:
        async with connect(service.ws + "?symbols=" + "€" * 60 + ",BTCUSDT", max_size=None) as ws:
            code, reason, _ = await close_of(ws, 10)
        assert code == 4404, f"got {code}"
        assert reason.startswith("unknown symbol €") and len(reason.encode()) <= 123


# --- 13. an HTTP connection must send its request in time ---
@pytest.mark.parametrize("sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"], ids=["idle", "half-sent"])
def test_an_idle_or_half_sent_http_connection_is_dropped(sent):
    with Service(HTTP_REQUEST_TIMEOUT_S="1") as service:
        with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
            sock.sendall(sent)
            started = time.monotonic()
            try:
                data = sock.recv(4096)
            except TimeoutError:
                data = None
            took = time.monotonic() - started
        assert data is not None and took < 4, f"the connection was held {took:.1f}s"
        # A whole request on a fresh connection is still answered.
        assert json.loads(urllib.request.urlopen(service.url + "/healthz", timeout=5).read())["status"] == "alive"


# --- 12. a 100 KB request reaches neither a response body nor the log ---
def test_a_huge_request_line_is_refused_and_never_logged_whole():
    with Service(LOG_LEVEL="info") as service:
        with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
            sock.sendall(b"GET /v1/book?symbol=" + b"A" * 100_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        output = service.stop()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
    assert len(answer) < 1000, f"the answer echoed {len(answer)} bytes"
    longest = max(map(len, output.splitlines()), default=0)
    assert longest < 1000, f"a {longest}-character log line"


# --- what a reader that stopped reading may still do: close, over-send, pipeline; and a shutdown meanwhile ---
def raw_stream(port: int) -> socket.socket:
    """A WebSocket on /v1/stream by hand, with a tiny receive buffer and nothing read after the handshake."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert sock.recv(12) == b"HTTP/1.1 101"
    return sock


def masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    size = bytes([0x80 | len(payload)]) if len(payload) < 126 else b"\xfe" + len(payload).to_bytes(2, "big")
    return bytes([0x80 | opcode]) + size + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize("frame", [masked_frame(0x8, b"\x03\xe8"), masked_frame(0x1, b"x" * 5000)],
                         ids=["its-close", "a-5KiB-message"])
def test_a_reader_that_stopped_reading_is_released_after_it_closes_or_oversends(frame):
    # No cut for lag or buffer meanwhile: the client's own close (or message) must be what ends it.
    with Service(MOCK_EVENT_RATE="20000", CLIENT_BUFFER="1000000", CLIENT_MAX_LAG_S="600") as service:
        sock = raw_stream(service.port)
        time.sleep(4)                         # past the kernel's buffers: the service's own fills
        sock.sendall(frame)
        took = wait_for(lambda: service.established() == 0, 12, "release of a non-reading client's connection")
        output = service.stop()
        sock.close()
    assert took < 5 + 3
    assert service.proc.returncode == -signal.SIGTERM and "Traceback" not in output, output[-2000:]


def test_a_pipelining_client_that_never_reads_its_answers_is_dropped():
    with Service(HTTP_REQUEST_TIMEOUT_S="1", MOCK_EVENT_RATE="5000") as service:
        time.sleep(1)                         # a full tape: each answer below is ~150 KB
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", service.port))
        sock.sendall(b"GET /v1/trades?limit=1000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 250)
        took = wait_for(lambda: service.established() == 0, 10, "release of a client that never reads")
        sock.close()
    assert took < 1 * 2 + 3


async def test_sigterm_with_a_stalled_reader_stops_in_seconds_and_still_tells_the_others():
    with Service(MOCK_EVENT_RATE="5000") as service:
        async with connect(service.ws, max_queue=1, max_size=None) as stalled, \
                connect(service.ws, max_size=None) as good:
            stalled.transport.pause_reading()
            await asyncio.sleep(1.5)
            started = time.monotonic()
            service.proc.send_signal(signal.SIGTERM)
            code, _, states = await close_of(good, 15)
            await asyncio.to_thread(service.proc.wait, 15)
            took = time.monotonic() - started
    assert code == 1001 and states[-1:] == ["stopped"]
    assert took < 4, f"the service took {took:.1f}s to stop (compose's runner gives it 5)"


# --- 6. many clients of a fast feed: every message whole and in order (each write carries many) ---
async def test_ten_clients_of_a_fast_feed_each_get_every_message_whole_and_in_sequence():
    with Service(MOCK_EVENT_RATE="20000", CLIENT_BUFFER="16384") as service:
        async def follow() -> tuple[int, list[int]]:
            seqs: list[int] = []
            async with connect(service.ws + "?symbols=BTCUSDT", max_size=None) as ws:
                end = time.monotonic() + 2
                while time.monotonic() < end:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    if message["type"] in ("snapshot", "delta", "trade"):
                        seqs.append(message["seq"])
            return len(seqs), seqs
        results = await asyncio.gather(*(follow() for _ in range(10)))
        writes = service.metric("hftlive_send_delay_seconds_count")
        sent = service.metric("hftlive_events_out_total")
    for count, seqs in results:
        assert count > 2000, f"a client got only {count} messages in 2 s of a 20,000/s feed"
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a seq gap: a message was lost or garbled"
    assert 0 < writes < sent, f"{writes} writes for {sent} messages: each write should carry what is queued"
