"""The runtime images and compose.yaml's profiles, run for real: what a user of the service sees."""
from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import websockets

from cli import images, versions
from service.client import Disconnected, Resynced, Snapshot, StreamClient

from tests.support import ROOT
from tests.support.stack import Stack

SYMBOL = "BTCUSDT"


def run_image(image: str, *env: str, timeout: float = 60) -> subprocess.CompletedProcess:
    command = ["docker", "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL"]
    for item in env:
        command += ["-e", item]
    return subprocess.run(command + [image], capture_output=True, text=True, timeout=timeout)


# --- the images themselves ---------------------------------------------------------------------

def test_images_run_as_the_shared_non_root_user_and_carry_their_versions(runtime_images, client, manifest):
    assert set(runtime_images) == {"service", "service-mock", "connector", "simulator", "bot"}
    facts = versions.runtime_facts()
    uid = facts["HFTLIVE_UID"]
    configs = {target: client.images.get(tag).attrs["Config"] for target, tag in runtime_images.items()}
    for target, config in configs.items():
        assert config["User"] == f"{uid}:{uid}", target
        assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", config["Labels"]["org.opencontainers.image.revision"])
        if target == "bot":   # a user's strategy: nothing to ask it
            assert not config.get("Healthcheck"), target
            continue
        assert config["Healthcheck"]["Test"][0] == "CMD", target
        if target.startswith("service"):
            assert config["Healthcheck"]["Test"] == ["CMD", "python", "-m", "service.healthcheck"]
    labels = configs["service"]["Labels"]
    assert labels["io.hftlive.hftbacktest.version"] == manifest["hftbacktest_version"]
    assert labels["io.hftlive.hftbacktest.features"] == "live"
    assert labels["io.hftlive.hftbacktest.patches"].split() == [p["name"] for p in manifest["patches"]]
    # The connector's labels are the crates it was built from, as the binary itself reports them.
    connector = configs["connector"]["Labels"]
    crates = images.connector_versions()
    assert connector["io.hftlive.connector.version"] == crates["CONNECTOR_VERSION"]
    assert connector["io.hftlive.hftbacktest.crate"] == crates["HFTBACKTEST_CRATE"]
    assert manifest["connector"]["version"] == (f"connector {crates['CONNECTOR_VERSION']} "
                                                f"(hftlive, bybit, hftbacktest {crates['HFTBACKTEST_CRATE']})")
    # docker/runtime.env's ports and connector name, as the images' environment and exposed ports.
    environment = {target: dict(e.split("=", 1) for e in config["Env"]) for target, config in configs.items()}
    exposed = {target: sorted(config.get("ExposedPorts", {})) for target, config in configs.items()}
    for target in ("service", "service-mock"):
        assert environment[target]["PORT"] == facts["HFTLIVE_SERVICE_PORT"], target
        assert exposed[target] == [f"{facts['HFTLIVE_SERVICE_PORT']}/tcp"], target
    assert environment["service"]["CONNECTOR_NAME"] == environment["connector"]["CONNECTOR_NAME"] == facts["CONNECTOR_NAME"]
    assert (environment["simulator"]["SIM_PORT"], environment["simulator"]["SIM_CONTROL_PORT"]) == (
        facts["HFTLIVE_SIMULATOR_PORT"], facts["HFTLIVE_SIMULATOR_CONTROL_PORT"])
    assert exposed["simulator"] == sorted(f"{facts[k]}/tcp" for k in ("HFTLIVE_SIMULATOR_PORT", "HFTLIVE_SIMULATOR_CONTROL_PORT"))


def test_the_mock_image_has_no_hftbacktest_and_the_live_image_has_the_live_wheel(runtime_images):
    probe = ("import importlib.util as u; print([m for m in ('hftbacktest', 'numba', 'numpy') "
             "if u.find_spec(m)])")
    mock = subprocess.run(["docker", "run", "--rm", "--entrypoint", "python", runtime_images["service-mock"],
                           "-c", probe], capture_output=True, text=True, check=True)
    assert mock.stdout.strip() == "[]"
    live = subprocess.run(["docker", "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--entrypoint", "python",
                           runtime_images["service"], "-c",
                           "import hftbacktest as h; print(h.LIVE_FEATURE, hasattr(h, 'HashMapMarketDepthLiveBot'))"],
                          capture_output=True, text=True, timeout=120)
    assert live.returncode == 0, live.stderr
    assert live.stdout.split() == ["True", "True"]


@pytest.mark.parametrize("target", ["service-mock", "service"])
def test_a_nonsense_data_source_stops_the_container_with_the_reason(runtime_images, target):
    done = run_image(runtime_images[target], "DATA_SOURCE=nonsense")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "hftlive service: bad configuration: DATA_SOURCE='nonsense': unknown source 'nonsense'; "
        "use hft_connector (or live) or mock"]


def test_the_mock_image_asked_for_live_data_says_what_is_missing(runtime_images):
    done = run_image(runtime_images["service-mock"], "DATA_SOURCE=hft_connector")
    assert done.returncode == 2
    assert "needs hftbacktest built with the live feature, but hftbacktest is not installed" in done.stderr
    assert "or set DATA_SOURCE=mock" in done.stderr


def test_a_bad_symbol_or_number_stops_the_container(runtime_images):
    done = run_image(runtime_images["service-mock"], "SYMBOL=BTC USDT", "MOCK_EVENT_RATE=fast")
    assert done.returncode == 2
    assert "SYMBOL=" in done.stderr and "MOCK_EVENT_RATE='fast'" in done.stderr


# --- the mock profile --------------------------------------------------------------------------

async def rebuild_until(stack: Stack, checkpoints: int) -> list[tuple[int, dict, dict]]:
    """Follow the stream with the product's client; at each checkpoint ask /v1/book and keep reading until
    the client's book reaches its seq. Returns (seq, the client's book, the REST book) per checkpoint."""
    results = []
    kinds = set()
    async with StreamClient(f"{stack.ws_url}/v1/stream", [SYMBOL]) as client:
        first = await asyncio.wait_for(client.next_event(), 10)
        assert isinstance(first, Snapshot) and first.source == "mock" and first.symbol == SYMBOL
        for _ in range(checkpoints):
            await asyncio.sleep(0.5)
            status, rest_book = await asyncio.to_thread(stack.get, f"/v1/book?symbol={SYMBOL}&depth=1000")
            assert status == 200 and rest_book["source"] == "mock"
            assert rest_book["seq"] >= client.book(SYMBOL).seq
            while client.book(SYMBOL).seq < rest_book["seq"]:
                event = await asyncio.wait_for(client.next_event(), 10)
                # The client reconnects on a skipped seq and says so: here that is a lost message.
                assert not isinstance(event, (Disconnected, Resynced)), event
                assert event.source == "mock"
                kinds.add(event.type)
            book = client.book(SYMBOL)
            bids, asks = book.top(1000)
            mine = {"bids": [list(level) for level in bids], "asks": [list(level) for level in asks]}
            results.append((book.seq, mine, {"bids": rest_book["bids"], "asks": rest_book["asks"]}))
        assert {"delta", "trade"} <= kinds
    return results


def test_mock_profile_serves_a_book_a_client_rebuilds_exactly(runtime_images):
    with Stack("mock", MOCK_EVENT_RATE="500", MOCK_SEED="7") as stack:
        status, ready = stack.get("/readyz")
        assert (status, ready["ready"], ready["source"]) == (200, True, "mock")
        assert stack.health("service-mock") == "healthy"
        for seq, client_book, rest_book in asyncio.run(rebuild_until(stack, checkpoints=5)):
            assert client_book == rest_book, f"books differ at seq {seq}"
            assert client_book["bids"][0][0] < client_book["asks"][0][0]
        status, trades = stack.get(f"/v1/trades?symbol={SYMBOL}&limit=5")
        assert status == 200 and trades["source"] == "mock" and len(trades["trades"]) == 5
        status, page = stack.get("/")
        assert status == 200 and "MOCK" in page


def test_a_slow_client_is_cut_off_while_a_fast_one_keeps_every_message(runtime_images):
    with Stack("mock", MOCK_EVENT_RATE="3000", MOCK_SEED="11") as stack:
        # The slow client runs beside the service on its compose network: through the published
        # port, docker-proxy's buffers would hold ~30 MB ahead of it. It is cut either way (its
        # buffer, or CLIENT_MAX_LAG_S with no pong), always with 4008.
        slow = subprocess.Popen(
            ["docker", "run", "--rm", "--network", stack.network, "--cap-drop", "ALL", "--read-only",
             "--entrypoint", "python", "-v", f"{Path(__file__).parent / 'slow_client.py'}:/slow_client.py:ro",
             runtime_images["service-mock"], "/slow_client.py", "service-mock:8000", "60"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        async def fast_client() -> list[int]:
            seqs: list[int] = []
            async with websockets.connect(f"{stack.ws_url}/v1/stream?symbols={SYMBOL}", max_size=2**24) as fast:
                while slow.poll() is None:
                    message = json.loads(await asyncio.wait_for(fast.recv(), 10))
                    if message["type"] != "status":
                        seqs.append(message["seq"])
                for _ in range(1000):   # and a little longer: the cut did not disturb it
                    message = json.loads(await asyncio.wait_for(fast.recv(), 10))
                    if message["type"] != "status":
                        seqs.append(message["seq"])
            return seqs
        fast_seqs = asyncio.run(fast_client())
        out, err = slow.communicate(timeout=120)
        assert slow.returncode == 0, err
        result = json.loads(out)
        _, metrics = stack.get("/metrics")

    assert result["counted"], "the service never counted a slow consumer"
    assert (result["code"], result["reason"]) == (4008, "slow consumer")
    assert "hftlive_slow_consumers_total 1.0" in metrics
    assert len(fast_seqs) > 5000
    assert fast_seqs == list(range(fast_seqs[0], fast_seqs[0] + len(fast_seqs))), "the fast client lost messages"


def test_live_image_without_a_connector_is_not_ready_and_serves_no_mock_data(runtime_images):
    with Stack("live", wait=False, only=["service"], LIVE_REBUILD_AFTER_S="5") as stack:
        stack.wait_for(stack.url + "/healthz")   # alive (not ready: there is no connector)
        deadline = time.monotonic() + 60
        while True:   # the bot child starts (numba compiles), then waits for the connector
            status, body = stack.get("/v1/status")
            if body["state"] == "waiting_for_connector" or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert (status, body["source"], body["state"], body["ready"]) == (200, "live", "waiting_for_connector", False)
        assert body["exchange"] == "bybit"   # compose's default when HFTLIVE_EXCHANGE is unset
        status, ready = stack.get("/readyz")
        assert status == 503 and ready["source"] == "live" and not ready["ready"]
        status, book = stack.get(f"/v1/book?symbol={SYMBOL}")
        assert status == 200 and book["source"] == "live" and book["bids"] == [] and book["asks"] == []
        status, trades = stack.get(f"/v1/trades?symbol={SYMBOL}")
        assert status == 200 and trades["trades"] == []
        assert "mock" not in json.dumps([body, ready, book, trades])

        async def first_messages():
            async with websockets.connect(f"{stack.ws_url}/v1/stream?symbols={SYMBOL}") as ws:
                return [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(2)]
        snapshot, state = asyncio.run(first_messages())
        assert (snapshot["type"], snapshot["source"], snapshot["bids"], snapshot["asks"]) == ("snapshot", "live", [], [])
        assert (state["type"], state["source"], state["state"]) == ("status", "live", "waiting_for_connector")
        assert stack.health("service") in ("starting", "unhealthy")


def test_both_profiles_are_valid_and_hardened(tmp_path):
    env = tmp_path / "empty.env"
    env.write_text("")
    done = subprocess.run(["docker", "compose", "--env-file", str(env), "--profile", "mock", "--profile", "live",
                           "config", "--format", "json"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    assert set(services) == {"service", "service-mock", "connector"}   # the simulator: profile sim
    done = subprocess.run(["docker", "compose", "--env-file", str(env), "--profile", "mock", "--profile", "live",
                           "--profile", "sim", "config", "--format", "json"], capture_output=True, text=True,
                          cwd=ROOT)
    services = json.loads(done.stdout)["services"]
    assert set(services) == {"service", "service-mock", "connector", "simulator"}
    for name, service in services.items():
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["restart"] == "unless-stopped", name
        assert "healthcheck" not in service, f"{name}: the image's HEALTHCHECK is the one definition"
        assert [p["host_ip"] for p in service.get("ports", [])] in ([], ["127.0.0.1"]), name
        assert service["pull_policy"] == "never", name
    # The live pair shares one /dev/shm and one /tmp/iceoryx2 (tmpfs volumes), and starts in order.
    # The service alone mounts the recordings volume (RECORD_DIR=/var/lib/hftlive/recordings).
    for name, more in (("connector", []), ("service", [("recordings", "/var/lib/hftlive/recordings")])):
        assert [(v["source"], v["target"]) for v in services[name]["volumes"]] == [
            ("iceoryx2-shm", "/dev/shm"), ("iceoryx2", "/tmp/iceoryx2"), *more], name
    assert services["service"]["depends_on"]["connector"]["condition"] == "service_healthy"
    assert services["service"]["environment"]["DATA_SOURCE"] == "hft_connector"
    assert services["service-mock"]["environment"]["DATA_SOURCE"] == "mock"
    # One exchange for the pair: empty when HFTLIVE_EXCHANGE is unset and no key file is named (both read
    # empty as bybit; tests/unit/test_connector_entrypoint.py and the service's config tests check that);
    # the mock has none.
    assert [services[n]["environment"].get("EXCHANGE") for n in ("connector", "service", "service-mock")] == [
        "", "", None]
    env.write_text("BYBIT_API_KEY_FILE=/dev/null\n")   # keys named, no exchange: testnet for both
    done = subprocess.run(["docker", "compose", "--env-file", str(env), "--profile", "live", "config", "--format",
                           "json"], capture_output=True, text=True, cwd=ROOT)
    keyed = json.loads(done.stdout)["services"]
    assert [keyed[n]["environment"]["EXCHANGE"] for n in ("connector", "service")] == ["bybit-testnet"] * 2


def test_the_connector_image_stops_on_a_bad_setting_with_the_reason(runtime_images):
    done = run_image(runtime_images["connector"], "CONNECTOR_DEPTH=7", "BYBIT_PUBLIC_URL=ws://127.0.0.1:9/x")
    assert done.returncode == 2, done.stderr
    assert "depth" in done.stderr and "7" in done.stderr
    done = run_image(runtime_images["connector"], 'BYBIT_PUBLIC_URL=ws://x/"; rm -rf /')
    assert done.returncode == 2
    assert "quotes, backslashes and newlines are not allowed" in done.stderr
    done = run_image(runtime_images["connector"], "EXCHANGE=simulator")   # no simulator on the default network
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "connector-entrypoint: EXCHANGE=simulator but no simulator on this network; start compose's sim profile, "
        "or use ./hftlive up"]
    done = run_image(runtime_images["connector"], "EXCHANGE=kraken")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "connector-entrypoint: unknown EXCHANGE 'kraken'; use simulator, bybit or bybit-testnet"]
