"""A strategy trading end to end: strategies/market_maker.py in the `bot` image, orders through the real
connector to the simulator's exchange, checked against the simulator's ledger (its ground truth); the
connector's limits and kill switch; faults; and a backtest of the same strategy on what the service recorded."""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.live import SYMBOL, Simulator
from tests.support.market_maker_log import reports
from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
STRATEGY = ROOT / "strategies" / "market_maker.py"
GREEDY = Path(__file__).with_name("greedy_strategy.py")
TOKEN = "e2e-trading-token"
OPEN = ("New", "PartiallyFilled")


def key_pair(folder: Path, secret: str | None = None) -> dict[str, str]:
    """Key files for the connector (compose secrets) and the simulator's matching settings."""
    folder.mkdir(parents=True, exist_ok=True)
    key, secret = f"e2e{secrets.token_hex(6)}", secret or secrets.token_hex(16)
    (folder / "key").write_text(key)
    (folder / "secret").write_text(secret)
    for name in ("key", "secret"):
        os.chmod(folder / name, 0o644)   # compose bind-mounts secrets with the host's owner and mode
    return {"BYBIT_API_KEY_FILE": str(folder / "key"), "BYBIT_API_SECRET_FILE": str(folder / "secret"),
            "SIM_API_KEY": key, "SIM_API_SECRET_FILE": "/run/secrets/bybit_api_secret"}


def trading_stack(folder: Path, strategy: Path, **settings: str) -> Stack:
    return Stack(["live", "sim", "bot"], HFTLIVE_EXCHANGE="simulator", SIM_RATE="40", SIM_SEED="11",
                 API_TOKEN=TOKEN, HFTLIVE_STRATEGY=str(strategy), **{**key_pair(folder), **settings})


def call(stack: Stack, path: str, method: str = "GET") -> dict:
    request = urllib.request.Request(stack.url + path, method=method,
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def ledger_view(sim: Simulator) -> tuple[float, list[str], list[dict], list[dict]]:
    """The simulator's truth: (signed position, open orderLinkIds, executions, orders)."""
    ledger = sim.get("/control/ledger")
    position = 0.0
    for p in ledger["positions"]:
        if p["symbol"] == SYMBOL and p["side"]:
            position = float(p["size"]) * (1 if p["side"] == "Buy" else -1)
    open_links = sorted(o["orderLinkId"] for o in ledger["orders"] if o["orderStatus"] in OPEN)
    return position, open_links, ledger["executions"], ledger["orders"]


def connector_view(stack: Stack) -> tuple[float, list[str], dict]:
    view = call(stack, "/v1/trading")
    mine = view["symbols"].get(SYMBOL, {"position": 0.0, "open_orders": []})
    return mine["position"], sorted(o["link_id"] for o in mine["open_orders"]), view


def bot_reports(stack: Stack) -> list[tuple[float, int]]:
    """What the strategy printed (every 5 s): its bot's position and open orders."""
    return [(r["position"], r["open"]) for r in reports(stack.logs("bot"))]


def failed_requests(stack: Stack) -> list[int]:
    """What each report of the strategy says of its requests the bot refused (a cancel naming no order, say)."""
    return [r["failed"] for r in reports(stack.logs("bot"))]


def checkpoint(stack: Stack, sim: Simulator, timeout: float = 40.0) -> tuple[list[dict], dict]:
    """Pause the market; wait until the connector's and the bot's position and open orders equal the ledger's
    (the bot's from a report printed after the pause)."""
    sim.post("/control/pause")
    reports_before = len(bot_reports(stack))
    deadline = time.monotonic() + timeout
    while True:
        position, links, executions, _ = ledger_view(sim)
        mine_position, mine_links, view = connector_view(stack)
        reports = bot_reports(stack)
        bot = reports[-1] if len(reports) > reports_before else None
        if abs(position - mine_position) < 1e-9 and links == mine_links and bot is not None \
                and abs(bot[0] - position) < 1e-9 and bot[1] == len(links):
            return executions, view
        if time.monotonic() > deadline:
            raise AssertionError(f"ledger position {position} open {links}; connector {mine_position} {mine_links}; "
                                 f"bot (position, open orders) {bot}")
        time.sleep(0.5)


def wait_for_fills(stack: Stack, sim: Simulator, at_least: int, timeout: float = 120.0) -> None:
    sim.post("/control/resume")
    deadline = time.monotonic() + timeout
    while len(ledger_view(sim)[2]) < at_least:
        if time.monotonic() > deadline:
            position, links, executions, _ = ledger_view(sim)
            raise AssertionError(f"{len(executions)} fills, not {at_least}, in {timeout:.0f}s; ledger position "
                                 f"{position}, open {links}; book {sim.book(3)}\nbot:\n{stack.logs('bot', tail=15)}"
                                 f"\nconnector:\n{stack.logs('connector', tail=15)}")
        time.sleep(1)


@pytest.fixture(scope="module")
def trading(runtime_images, tmp_path_factory):
    settings = {"RECORD_DIR": "/var/lib/hftlive/recordings", "RECORD_ROTATE_S": "30"}
    with trading_stack(tmp_path_factory.mktemp("keys"), STRATEGY, **settings) as stack:
        yield stack, Simulator(stack.published("simulator"))


def test_the_strategy_quotes_fills_and_agrees_with_the_exchange_at_every_checkpoint(trading):
    stack, sim = trading
    for round_ in range(1, 3):
        wait_for_fills(stack, sim, at_least=3 * round_)
        executions, view = checkpoint(stack, sim)
        stats = view["stats"]
        # Every fill the simulator made reached the connector exactly once; nothing was refused or sent twice.
        assert stats["fills"] == len(executions) and stats["duplicate_fills"] == 0, stats
        assert stats["exchange_rejects"] == 0, stats
        _, _, _, orders = ledger_view(sim)
        links = [o["orderLinkId"] for o in orders]
        assert len(links) == len(set(links)) == stats["creates_sent"], "an order was sent twice, or lost"
        assert view["exchange"] == "simulator" and view["reconciled"] and not view["killed"]
    # The quotes follow the market: the bot cancelled orders the market left behind, and refused none of
    # the strategy's requests.
    _, _, _, orders = ledger_view(sim)
    cancelled = [o for o in orders if o["orderStatus"] == "Cancelled" and o["rejectReason"] == "EC_NoError"]
    assert cancelled and stats["cancels_sent"] >= len(cancelled), (len(cancelled), stats)
    assert set(failed_requests(stack)) == {0}, stack.logs("bot", tail=20)
    sim.post("/control/resume")


READ_TRADING = """(() => {
  const panel = document.getElementById("trading");
  if (!panel || panel.hidden) return null;
  const text = (id) => document.getElementById(id).textContent;
  const marks = [...document.querySelectorAll("tbody#asks tr, tbody#bids tr")]
    .map((r) => [r.cells[1].textContent, r.cells[3] ? r.cells[3].textContent : ""]).filter(([, m]) => m);
  return {exchange: text("trading-exchange"), state: text("trading-state"), position: text("trading-position"),
          fills: text("trading-fills"), open: text("trading-open"), marks: marks,
          orders: [...document.getElementById("orders").rows].map((r) => [...r.cells].map((c) => c.textContent))};
})()"""


def test_the_page_shows_the_bot_quoting_and_filling(trading, tmp_path):
    from tests.integration.browser import Chromium
    stack, sim = trading
    wait_for_fills(stack, sim, at_least=1)
    _, view = checkpoint(stack, sim)   # paused: the page and the ledger stand still
    mine = view["symbols"][SYMBOL]
    chromium = Chromium(tmp_path / "profile")
    try:
        tab = chromium.open(f"{stack.url}/#token={TOKEN}")

        async def read() -> dict:
            deadline = time.monotonic() + 30
            while True:
                page = await tab.evaluate(READ_TRADING)
                if page and page["fills"] == str(mine["fills"]) and len(page["marks"]) == len(mine["open_orders"]):
                    return page
                assert time.monotonic() < deadline, f"the page never showed the bot: {page}"
                await asyncio.sleep(0.5)

        page = asyncio.run(read())
    finally:
        chromium.close()
    sim.post("/control/resume")
    assert page["exchange"].startswith("simulator") and page["state"] == "trading", page
    assert float(page["position"]) == pytest.approx(mine["position"])
    assert int(page["fills"]) > 0 and int(page["open"]) == len(mine["open_orders"])
    # Each open order is marked on the ladder at its price with its side.
    want = sorted((f"{o['price']:.1f}", ("B " if o["side"] == "Buy" else "S ")) for o in mine["open_orders"])
    assert sorted((price, mark[:2]) for price, mark in page["marks"]) == want, page["marks"]


def test_a_dropped_private_stream_reconnects_and_loses_no_fill(trading):
    stack, sim = trading
    before = len(ledger_view(sim)[2])
    reconciles = stack.logs("connector").count("reconciled with the exchange")
    sim.post("/control/drop-private")
    wait_for_fills(stack, sim, at_least=before + 2)
    executions, view = checkpoint(stack, sim)
    logs = stack.logs("connector")
    assert "trading link lost" in logs and logs.count("reconciled with the exchange") > reconciles, logs[-2000:]
    # Fills made while the stream was down are in the position (checkpoint: bot, connector and ledger agree).
    assert view["reconciled"]
    sim.post("/control/resume")


def test_a_killed_connector_restarts_and_reconciles_before_trading_again(trading):
    stack, sim = trading
    wait_for_fills(stack, sim, at_least=len(ledger_view(sim)[2]) + 1)
    connector = stack.container("connector")
    subprocess.run(["docker", "kill", connector], check=True, capture_output=True)
    time.sleep(1)
    subprocess.run(["docker", "start", connector], check=True, capture_output=True)
    deadline = time.monotonic() + 60
    while "the connector restarted" not in stack.logs("bot"):
        assert time.monotonic() < deadline, "the bot did not notice the connector's restart"
        time.sleep(1)
    logs = stack.logs("connector")
    restarted = logs[logs.rindex("starting bybit connector"):]
    reconciled, first_order = restarted.index("reconciled with the exchange"), restarted.find("order.create")
    assert first_order == -1 or first_order > reconciled, "an order went out before reconciling"
    # The bot started over (compose restarted it) and trades again; everyone agrees with the ledger.
    wait_for_fills(stack, sim, at_least=len(ledger_view(sim)[2]) + 2, timeout=180)
    checkpoint(stack, sim)
    assert set(failed_requests(stack)) == {0}, stack.logs("bot", tail=20)
    sim.post("/control/resume")


def test_a_backtest_on_the_recording_is_deterministic(trading):
    stack, sim = trading
    service = stack.container("service")
    subprocess.run(["docker", "stop", service], check=True, capture_output=True)   # flushes the recording
    volume = f"{stack.name}_recordings"
    run = ["docker", "run", "--rm", "--network", "none", "-e", "TICK_SIZE=0.1", "-e", "LOT_SIZE=0.001", "-v", f"{volume}:/rec:ro",
           "-v", f"{STRATEGY}:/strategy/strategy.py:ro", "--entrypoint", "sh", "hftlive/bot:latest", "-c",
           "python -m bot.backtest /strategy/strategy.py /rec/*.npz"]
    first = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    second = subprocess.run(run, capture_output=True, text=True, timeout=300)
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["fills"] > 0, summary
    assert second.stdout == first.stdout
    print("backtest on the recording:", summary)
    subprocess.run(["docker", "start", service], check=True, capture_output=True)


def test_limits_hold_and_the_kill_switch_cancels_everything(runtime_images, tmp_path_factory):
    """A greedy strategy asks for too much: the connector refuses, the exchange never sees the excess."""
    limits = {"TRADING_MAX_ORDER_QTY": "0.005", "TRADING_MAX_POSITION": "0.004", "TRADING_MAX_OPEN_ORDERS": "4",
              "TRADING_MAX_ORDERS_PER_S": "3"}
    with trading_stack(tmp_path_factory.mktemp("greedy"), GREEDY, **limits) as stack:
        sim = Simulator(stack.published("simulator"))
        deadline = time.monotonic() + 60
        while "greedy: done" not in stack.logs("bot"):
            assert time.monotonic() < deadline, stack.logs("bot", tail=20)
            time.sleep(1)
        refusals = [line for line in stack.logs("connector").splitlines() if "order refused" in line]
        for reason in ("max_order_qty", "max_open_orders", "max_orders_per_s", "max_position"):
            assert any(reason in line for line in refusals), f"no refusal for {reason}: {refusals}"
        position, links, _, orders = ledger_view(sim)
        view = call(stack, "/v1/trading")
        assert len(orders) == view["stats"]["creates_sent"], "the exchange saw an order the connector refused"
        assert all(float(o["qty"]) <= 0.005 for o in orders)
        assert abs(position) <= 0.004 + 1e-9 and len(links) <= 4
        assert links, "the greedy strategy leaves resting orders for the kill switch"
        # A trade stream that answers 3 s late: the kill switch does not wait for it (REST cancel-all).
        sim.post("/control/delay-acks?ms=3000")
        killed = time.monotonic()
        answer = call(stack, "/v1/trading/kill", "POST")
        assert answer["killed"] is True and answer["cancel_all"] == [SYMBOL], answer
        while ledger_view(sim)[1]:
            assert time.monotonic() - killed < 1.0, "orders still open 1 s after the kill switch"
            time.sleep(0.05)
        print(f"kill switch: every order cancelled {1000 * (time.monotonic() - killed):.0f} ms after the request")
        # The connector learns each cancel from the order stream, just after the ledger: give it a second.
        while (view := call(stack, "/v1/trading"))["symbols"][SYMBOL]["open_orders"]:
            assert time.monotonic() - killed < 2.0, view["symbols"][SYMBOL]["open_orders"]
            time.sleep(0.05)
        assert view["killed"] is True
        assert f"cancelled={len(links)}" in stack.logs("connector"), "the cancel-all answer names every order"
        sim.post("/control/delay-acks?ms=0")


def test_bad_keys_are_one_clear_line_and_no_retry_storm(runtime_images, tmp_path_factory):
    folder = tmp_path_factory.mktemp("badkeys")
    settings = {**key_pair(folder), "SIM_API_KEY": "another-key"}   # the exchange does not know the connector's key
    with Stack(["live", "sim"], HFTLIVE_EXCHANGE="simulator", **settings) as stack:
        time.sleep(10)
        logs = stack.logs("connector")
        refused = [line for line in logs.splitlines() if "refused the API keys" in line]
        assert len(refused) == 1, logs[-2000:]
        assert (folder / "secret").read_text() not in logs
        attempts = stack.logs("simulator").count("failed to authenticate")
        assert attempts <= 2, f"{attempts} authentication attempts in 10 s"
