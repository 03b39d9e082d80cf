"""`HFTLIVE_EXCHANGE=simulator docker compose --profile live --profile sim up`: the simulator's market
reaches a client of the service through the real connector and the real live wheel, and survives the
faults Bybit can throw."""
from __future__ import annotations

import subprocess
import time

import pytest

from tests.e2e.live import SYMBOL, Simulator, client_book, converged, settle
from tests.support.book import BookFollower
from tests.support.stack import Stack

DEPTH = 20   # levels compared per side


@pytest.fixture(scope="module")
def live(runtime_images):
    with Stack(["live", "sim"], HFTLIVE_EXCHANGE="simulator", SIM_RATE="40", SIM_SEED="5", LIVE_STALE_AFTER_S="2",
               LIVE_REBUILD_AFTER_S="4", READY_MAX_AGE_S="3") as stack, BookFollower(stack.ws_url, SYMBOL) as client:
        yield stack, client, Simulator(stack.published("simulator"))


def test_the_client_book_equals_the_simulator_at_every_checkpoint(live):
    stack, client, sim = live
    status, ready = stack.get("/readyz")
    assert status == 200 and (ready["source"], ready["exchange"]) == ("live", "simulator")
    status, body = stack.get("/v1/status")
    assert status == 200 and body["exchange"] == "simulator"
    assert "exchange simulator at ws://simulator:8090/v5/public/linear" in stack.logs("connector")
    for _ in range(3):
        sim.post("/control/resume")
        time.sleep(2)
        sim.post("/control/pause")
        seq = settle(stack, client)
        assert client_book(client, DEPTH) == sim.book(DEPTH), f"books differ at seq {seq}"
    assert client.breaks == [] and client.error is None and client.sources == {"live"}
    sim.post("/control/resume")


def test_every_trade_arrives_once_in_order(live):
    stack, client, sim = live
    sim.post("/control/pause")
    settle(stack, client)
    sent_before, got_before = len(sim.trades()), len(client.trades)
    sim.post("/control/resume")
    time.sleep(4)
    sim.post("/control/pause")
    settle(stack, client)
    sent = [(round(float(t["p"]) / 0.1), round(float(t["v"]) / 0.001), t["S"].lower()) for t in sim.trades()[sent_before:]]
    got = [(round(t.price / 0.1), round(t.qty / 0.001), t.side) for t in client.trades[got_before:]]
    assert len(sent) > 5
    assert got == sent
    sim.post("/control/resume")


@pytest.mark.parametrize("fault", ["drop", f"snapshot?symbol={SYMBOL}", f"skip-u?symbol={SYMBOL}",
                                   f"restart-stream?symbol={SYMBOL}", "malformed"])
def test_after_a_fault_the_book_converges_again(live, fault):
    stack, client, sim = live
    sim.post("/control/resume")
    time.sleep(1)
    sim.post(f"/control/{fault}")
    time.sleep(3)   # let the connector notice, resubscribe, reconnect
    converged(stack, client, sim, DEPTH)
    sim.post("/control/resume")
    connector = stack.container("connector")
    state = subprocess.run(["docker", "inspect", "--format", "{{.State.Running}} {{.RestartCount}}", connector],
                           capture_output=True, text=True, check=True).stdout.split()
    assert state == ["true", "0"], "the connector crashed"
    if fault == "malformed":
        assert "malformed" in stack.logs("connector").lower()


def test_a_killed_connector_turns_the_service_not_ready_then_ready_with_the_right_book(live):
    stack, client, sim = live
    sim.post("/control/resume")
    connector = stack.container("connector")
    subprocess.run(["docker", "kill", connector], check=True, capture_output=True)
    killed = time.monotonic()
    while stack.get("/readyz")[0] == 200:
        assert time.monotonic() - killed < 15, "the service stayed ready without its connector"
        time.sleep(0.25)
    not_ready_after = time.monotonic() - killed
    subprocess.run(["docker", "start", connector], check=True, capture_output=True)
    started = time.monotonic()
    while stack.get("/readyz")[0] != 200:
        assert time.monotonic() - started < 90, f"not ready again: {stack.get('/v1/status')[1]}"
        time.sleep(0.5)
    converged(stack, client, sim, DEPTH)
    sim.post("/control/resume")
    print(f"not ready {not_ready_after:.1f} s after the kill; ready {time.monotonic() - started:.1f} s after the start")
