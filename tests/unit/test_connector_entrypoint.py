"""The connector image's entrypoint: EXCHANGE picks the endpoints, a mistake is one line and exit 2;
and every place that spells the exchange names spells the service's."""
import re
import subprocess

import pytest
import yaml

from cli import compose
from service.config import DEFAULT_EXCHANGE
from service.events import EXCHANGES
from tests.support import ROOT
from tests.support.commands import executables

ENTRYPOINT = ROOT / "docker" / "runtime" / "connector-entrypoint"


def arm(exchange: str) -> tuple[str, str]:
    """The endpoints the entrypoint's case arm for `exchange` names (the one place they are spelled;
    these tests only compare strings, nothing connects)."""
    found = re.search(rf"^  {re.escape(exchange)}\) public=(\S+) rest=(\S+) ;;$", ENTRYPOINT.read_text(), re.M)
    assert found, f"no case arm for {exchange}"
    return found.group(1), found.group(2)


BYBIT = arm("bybit")
TESTNET = arm("bybit-testnet")
SIMULATOR = ("ws://simulator:8090/v5/public/linear", "http://simulator:8090")


def run_entrypoint(tmp_path, simulator_on_network: bool = False, **env: str) -> subprocess.CompletedProcess:
    """The script under sh, with stand-ins for `getent` (is the simulator on this network?) and `connector`
    (prints the TOML it was given)."""
    getent = f"#!/bin/sh\nexit {0 if simulator_on_network else 2}\n"
    bin_dir = executables(tmp_path / "bin", getent=getent,
                          connector='#!/bin/sh\necho "connector $*"\ncat "$6"\n')
    return subprocess.run(["sh", str(ENTRYPOINT)], capture_output=True, text=True, timeout=30,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "TMPDIR": str(tmp_path), **env})


def endpoints(done: subprocess.CompletedProcess) -> tuple[str, str | None]:
    assert done.returncode == 0, done.stderr
    public = re.search(r'^public_url = "(.*)"$', done.stdout, re.M).group(1)
    rest = re.search(r'^rest_url = "(.*)"$', done.stdout, re.M)
    return public, rest.group(1) if rest else None


@pytest.mark.parametrize("env, simulator_on_network, expected", [
    ({}, False, BYBIT),
    ({"EXCHANGE": ""}, False, BYBIT),
    ({"EXCHANGE": "bybit"}, True, BYBIT),   # a simulator on the network no longer wins by itself
    ({"EXCHANGE": "bybit-testnet"}, False, TESTNET),
    ({"EXCHANGE": " Bybit-Testnet "}, False, TESTNET),   # as the service reads it
    ({"EXCHANGE": " "}, False, BYBIT),
    ({"EXCHANGE": "simulator"}, True, SIMULATOR),
    ({"EXCHANGE": "bybit-testnet", "BYBIT_REST_URL": "http://127.0.0.1:9"}, False, (TESTNET[0], "http://127.0.0.1:9")),
    ({"EXCHANGE": "simulator", "BYBIT_PUBLIC_URL": "wss://simulator:8090/v5/public/linear",
      "BYBIT_REST_URL": "https://simulator:8090"}, True,
     ("wss://simulator:8090/v5/public/linear", "https://simulator:8090")),
    ({"BYBIT_PUBLIC_URL": "ws://127.0.0.1:9/x"}, False, ("ws://127.0.0.1:9/x", None)),   # no REST unless named
])
def test_the_exchange_picks_the_endpoints_and_explicit_urls_override_them(tmp_path, env, simulator_on_network,
                                                                          expected):
    done = run_entrypoint(tmp_path, simulator_on_network, **env)
    assert endpoints(done) == expected
    assert "connector --name bybit_hft --connector bybit --config" in done.stdout
    exchange = env.get("EXCHANGE", "").strip().lower() or "bybit"
    assert done.stderr.splitlines() == [
        f"connector-entrypoint: exchange {exchange} at {expected[0]} (REST {expected[1] or 'none'}), "
        "connector name bybit_hft"]


@pytest.mark.parametrize("env, simulator_on_network, line", [
    ({"EXCHANGE": "simulator"}, False,
     "connector-entrypoint: EXCHANGE=simulator but no simulator on this network; start compose's sim profile, "
     "or use ./hftlive up"),
    ({"EXCHANGE": "binance"}, True,
     "connector-entrypoint: unknown EXCHANGE 'binance'; use simulator, bybit or bybit-testnet"),
    ({"EXCHANGE": "bybit-mainnet"}, False,
     "connector-entrypoint: unknown EXCHANGE 'bybit-mainnet'; use simulator, bybit or bybit-testnet"),
])
def test_a_wrong_exchange_stops_the_connector_with_one_line(tmp_path, env, simulator_on_network, line):
    done = run_entrypoint(tmp_path, simulator_on_network, **env)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [line]
    assert "connector --name" not in done.stdout


def test_the_real_exchanges_are_reached_over_tls_and_testnet_is_not_mainnet():
    for public, rest in (BYBIT, TESTNET):
        assert public.startswith("wss://") and public.endswith("/v5/public/linear"), public
        assert rest.startswith("https://"), rest
    assert "testnet" in TESTNET[0] and "testnet" in TESTNET[1]
    assert not set(BYBIT) & set(TESTNET)


def test_the_exchange_names_and_default_are_the_services_everywhere():
    script = ENTRYPOINT.read_text()
    arms = re.findall(r"^  ([a-z][a-z-]*)\)", script, re.M)
    assert tuple(arms) == EXCHANGES
    assert "use simulator, bybit or bybit-testnet" in script
    assert f"exchange=${{exchange:-{DEFAULT_EXCHANGE}}}" in script
    assert compose.EXCHANGES == EXCHANGES   # ./hftlive up --exchange
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for name in ("connector", "service"):
        assert services[name]["environment"]["EXCHANGE"] == f"${{HFTLIVE_EXCHANGE:-{DEFAULT_EXCHANGE}}}", name
    for name in ("service-mock", "simulator"):
        assert "EXCHANGE" not in services[name]["environment"], name
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^HFTLIVE_EXCHANGE=$", example, re.M)
    assert " | ".join(EXCHANGES) in example
