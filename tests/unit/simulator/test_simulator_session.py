"""A client that reads nothing costs the simulator a bounded number of bytes, then is cut off and forgotten."""
from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections import Counter

from simulator.session import Session

BOUND = 4 * 2**20     # SIM_MAX_BACKLOG_BYTES's default
MESSAGE = 64 * 2**10
IN_FLIGHT = 64 * 2**10   # what the peer's transport holds: websockets' write limit (32 KiB) and a message


class StalledPeer:
    """Enough of a websockets ServerConnection, and its transport, for a peer that stopped reading:
    send() never completes and the buffer stays full, until abort() drops the connection."""

    remote_address = ("127.0.0.1", 40000)

    def __init__(self) -> None:
        self.transport = self
        self.aborted = False

    async def send(self, text: str) -> None:
        await asyncio.Event().wait()

    def get_write_buffer_size(self) -> int:
        return 0 if self.aborted else IN_FLIGHT

    def abort(self) -> None:
        self.aborted = True


def test_a_client_that_reads_nothing_is_held_to_the_byte_bound_then_cut_off_and_released():
    async def scenario():
        peer = StalledPeer()
        flowing = asyncio.Event()
        flowing.set()
        session = Session(peer, flowing, Counter())
        writer = asyncio.create_task(session.write())
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            held = []
            for i in range(3 * BOUND // MESSAGE):   # three times the bound, each message a fresh string
                session.send(f"{i:08d}".ljust(MESSAGE, "x"), "book_delta")
                await asyncio.sleep(0)   # the writer takes the first one and blocks in send()
                held.append(tracemalloc.get_traced_memory()[0] - base + peer.transport.get_write_buffer_size())
            released = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        return peer, held, released

    peer, held, released = asyncio.run(scenario())
    assert max(held) <= BOUND, f"held {max(held):,} bytes for a client that reads nothing (bound {BOUND:,})"
    assert peer.transport.aborted, "the client that reads nothing was not cut off"
    # Cut off, it holds nothing more than the one message its writer had in hand (the gateway then cancels it).
    assert released <= 2 * MESSAGE, f"{released:,} bytes still held after the cut"
