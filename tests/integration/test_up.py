"""`./hftlive up` as a newcomer runs it: the live path against the bundled simulator, with a strategy
beside it, and a fast, clear failure when the exchange cannot be reached. Each test runs its own compose project on 127.0.0.1
ports Docker picks, so a stack the user started is left alone."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid

import pytest

from cli import apikeys
from cli.compose import Project
from tests.support import ROOT
from tests.support.stack import get


@pytest.fixture
def project(runtime_images):
    """Settings for a private stack; whatever it leaves is removed afterwards, also on failure."""
    name = f"hftlive-test-up-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, PYTHONPATH=str(ROOT), HFTLIVE_PROJECT=name, HFTLIVE_PORT="0", SIM_CONTROL_PORT="0")
    yield env
    Project(["live", "sim", "mock", "bot"], name=name, settings={}).stop()


def hftlive(env: dict, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def running(name: str) -> list[str]:
    return subprocess.run(["docker", "ps", "--filter", f"label=com.docker.compose.project={name}",
                           "--format", "{{.Names}}"], capture_output=True, text=True).stdout.split()


def test_up_starts_the_live_path_against_the_simulator(project):
    done = hftlive(project, "up")

    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    url = re.search(r"http://127\.0\.0\.1:([0-9]+)/", last)
    assert url and url.group(1) != "0", last   # the port Docker picked, as compose reports it
    url = url.group(0)
    assert "profile live + sim" in last and "exchange simulator" in last, last
    assert "waiting for health" in done.stderr          # it said what it was waiting for
    status, body = get(url + "v1/status")
    assert status == 200
    assert body["source"] == "live" and body["exchange"] == "simulator", body
    status, book = get(url + "v1/book?symbol=BTCUSDT")
    assert status == 200 and book["source"] == "live" and book["exchange"] == "simulator"
    assert book["bids"] and book["asks"], "the live path serves the simulator's book"
    assert sorted(n.split("-")[-2] for n in running(project["HFTLIVE_PROJECT"])) == [
        "connector", "service", "simulator"]


def inspect(name: str, service: str) -> dict:
    ids = subprocess.run(["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={name}", "--filter",
                          f"label=com.docker.compose.service={service}"], capture_output=True, text=True).stdout.split()
    assert len(ids) == 1, (service, ids)
    return json.loads(subprocess.run(["docker", "inspect", ids[0]], capture_output=True, text=True, check=True).stdout)[0]


def test_up_with_a_strategy_runs_the_bot_with_one_key_pair_as_files_and_down_stops_it(project):
    strategy = ROOT / "strategies" / "market_maker.py"
    done = hftlive(project, "up", "--strategy", str(strategy))

    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert "profile live + sim + bot" in last and f"strategy {strategy}" in last, last
    name = project["HFTLIVE_PROJECT"]
    assert sorted(n.split("-")[-2] for n in running(name)) == ["bot", "connector", "service", "simulator"]
    key = (apikeys.FOLDER / apikeys.KEY).read_text()
    secret = (apikeys.FOLDER / apikeys.SECRET).read_text()
    # The secret reaches the connector and the simulator as a file only: no container's inspect shows it.
    for service in ("bot", "connector", "service", "simulator"):
        assert secret not in json.dumps(inspect(name, service)), service
    connector, simulator, bot = (inspect(name, s) for s in ("connector", "simulator", "bot"))
    assert key not in json.dumps(connector["Config"]["Env"])
    assert f"SIM_API_KEY={key}" in simulator["Config"]["Env"]
    assert {m["Destination"] for m in connector["Mounts"]} >= {"/run/secrets/bybit_api_key",
                                                                 "/run/secrets/bybit_api_secret"}
    [mounted] = [m for m in bot["Mounts"] if m["Destination"] == "/strategy/strategy.py"]
    assert (mounted["Source"], mounted["RW"]) == (str(strategy), False)
    assert bot["Config"]["User"] == connector["Config"]["User"]
    # The connector found the pair: trading on, against the simulator (the entrypoint's first line).
    logs = subprocess.run(["docker", "logs", connector["Id"]], capture_output=True, text=True).stderr
    assert "API keys from /run/secrets: orders to ws://simulator:" in logs, logs[-2000:]
    # What the page shows: the bot quoting, then filling, on the simulator.
    url = re.search(r"http://127\.0\.0\.1:[0-9]+/", last).group(0)
    deadline = time.monotonic() + 120
    while True:
        status, trading = get(url + "v1/trading")
        mine = trading.get("symbols", {}).get("BTCUSDT", {}) if status == 200 else {}
        if mine.get("fills", 0) > 0 and mine.get("open_orders"):
            break
        assert time.monotonic() < deadline, f"the bot neither quoted nor filled in 120 s: {status} {trading}"
        time.sleep(2)
    assert trading["exchange"] == "simulator" and trading["enabled"] and not trading["killed"], trading

    done = hftlive(project, "down")
    assert done.returncode == 0, done.stderr[-2000:]
    assert running(name) == []


def test_an_unreachable_exchange_fails_within_a_minute_with_one_line(project):
    # Port 9 on the connector's own loopback: closed, so nothing outside this machine is contacted.
    env = dict(project, BYBIT_PUBLIC_URL="ws://127.0.0.1:9/v5/public/linear", BYBIT_REST_URL="http://127.0.0.1:9")
    started = time.monotonic()
    done = hftlive(env, "up", "--exchange", "bybit")
    took = time.monotonic() - started

    assert done.returncode != 0
    assert took < 60, f"took {took:.0f} s"
    errors = [line for line in done.stderr.splitlines() if line.startswith("hftlive: error:")]
    assert len(errors) == 1, done.stderr[-2000:]
    assert "cannot reach the exchange bybit" in errors[0] and "127.0.0.1:9" in errors[0], errors[0]
    assert "Traceback" not in done.stderr
    assert running(project["HFTLIVE_PROJECT"]) == []     # nothing half-started is left behind
