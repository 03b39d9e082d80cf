"""The live path with a thin book (`SIM_PLACEMENT_TICKS=300`: levels hundreds of ticks apart): every level
the connector holds reaches a client of the service; and a bot that falls behind its IPC buffer is noticed,
counted and resynchronised, never silently wrong."""
from __future__ import annotations

import re
import subprocess
import time

import pytest

from tests.e2e.live import SYMBOL, Simulator, client_book, converged, settle
from tests.support.book import BookFollower
from tests.support.stack import Stack

DEPTH = 50            # the connector's orderbook.50: all of it
OLD_WINDOW = 100      # the ticks each side of the touch the service used to mirror
STOP_S = 6            # how long the bot process is frozen
FAST_RATE = "20000"   # order-book actions per second meanwhile: far more events than the bot's buffer holds


@pytest.fixture(scope="module")
def thin(runtime_images):
    with Stack(["live", "sim"], HFTLIVE_EXCHANGE="simulator", SIM_RATE="40", SIM_SEED="11",
               SIM_PLACEMENT_TICKS="300", READY_MAX_AGE_S="3") as stack, \
            BookFollower(stack.ws_url, SYMBOL) as client:
        yield stack, client, Simulator(stack.published("simulator"))


def test_every_level_reaches_the_client_however_far_from_the_touch(thin):
    stack, client, sim = thin
    for _ in range(3):
        sim.post("/control/resume")
        time.sleep(2)
        truth = converged(stack, client, sim, DEPTH)
        bids, asks = truth["bids"], truth["asks"]
        # The test means something only if the book reaches past the old window on both sides.
        assert bids[0][0] - bids[-1][0] > OLD_WINDOW and asks[-1][0] - asks[0][0] > OLD_WINDOW, truth
        status, body = stack.get("/v1/status")
        assert (body["symbols"][SYMBOL]["bid_levels"], body["symbols"][SYMBOL]["ask_levels"]) == (len(bids), len(asks))
        assert client_book(client, 1000) == truth, "the client holds a level the simulator does not"
    assert "reading the book in Python" not in stack.logs("service"), "numba did not compile read_book"
    print(f"{len(bids)} bids over {bids[0][0] - bids[-1][0]} ticks, {len(asks)} asks over {asks[-1][0] - asks[0][0]}")
    sim.post("/control/resume")


def signal_bot(stack: Stack, signal: str) -> None:
    pid = stack.get("/v1/status")[1]["source_info"]["bot_pid"]
    assert isinstance(pid, int), "the live source reports no bot process"
    subprocess.run(["docker", "exec", stack.container("service"), "python", "-c",
                    f"import os, signal; os.kill({pid}, signal.{signal})"], check=True, capture_output=True)


def lost_metric(stack: Stack) -> float:
    metrics = stack.get("/metrics")[1]
    found = re.search(rf'^hftlive_feed_lost_total{{kind="trade",symbol="{SYMBOL}"}} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_bot_frozen_past_its_buffer_reports_the_loss_and_recovers_the_whole_book(thin):
    stack, client, sim = thin
    assert lost_metric(stack) == 0 and stack.get("/v1/status")[1]["symbols"][SYMBOL]["trades_lost"] == 0
    sim.post("/control/resume")
    signal_bot(stack, "SIGSTOP")
    try:
        sim.post(f"/control/rate?value={FAST_RATE}")
        time.sleep(STOP_S)
        sim.post("/control/rate?value=40")
    finally:
        signal_bot(stack, "SIGCONT")
    deadline = time.monotonic() + 30
    while (lost := stack.get("/v1/status")[1]["symbols"][SYMBOL]["trades_lost"]) == 0:
        assert time.monotonic() < deadline, "the overflow went unreported"
        time.sleep(0.5)
    assert lost_metric(stack) == lost
    # The web process logs the loss and the rebuild as it counts the loss; Docker's log takes a moment.
    told = ("trade(s) lost between the connector and the bot (its IPC buffer overflowed)",
            "rebuilding the bot for the whole book")
    deadline = time.monotonic() + 5
    while not all(line in (logs := stack.logs("service")) for line in told):
        assert time.monotonic() < deadline, [line for line in told if line not in logs]
        time.sleep(0.2)
    # The rebuilt bot gets the connector's whole book: the client's equals the simulator's again.
    converged(stack, client, sim, DEPTH, timeout=60)
    settle(stack, client)
    assert client.error is None
    print(f"{lost:.0f} trades lost while the bot was frozen for {STOP_S} s at {FAST_RATE} actions/s; book recovered")
    sim.post("/control/resume")
