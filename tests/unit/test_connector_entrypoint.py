"""The connector image's entrypoint: EXCHANGE picks the endpoints, key files turn trading on (testnet
by default), the limits and the control port become TOML keys, a mistake is one line and exit 2; and
every place that spells the exchange names spells the service's."""
import re
import subprocess
import tomllib

import pytest
import yaml

from cli import compose
from service.config import DEFAULT_EXCHANGE
from service.events import EXCHANGES
from tests.support import ROOT
from tests.support.commands import executables

ENTRYPOINT = ROOT / "docker" / "runtime" / "connector-entrypoint"


def arm(exchange: str) -> tuple[str, str]:
    """The public and REST endpoints the entrypoint's case arm for `exchange` names (the one place
    they are spelled; these tests only compare strings, nothing connects)."""
    found = re.search(rf"^  {re.escape(exchange)}\) stream=(\S+) rest=(\S+) ;;$", ENTRYPOINT.read_text(), re.M)
    assert found, f"no case arm for {exchange}"
    return found.group(1) + "/public/linear", found.group(2)


BYBIT = arm("bybit")
TESTNET = arm("bybit-testnet")
SIMULATOR = ("ws://simulator:8090/v5/public/linear", "http://simulator:8090")
NO_KEYS = "no API keys: market data only"


def run_entrypoint(tmp_path, simulator_on_network: bool = False, keys: tuple[str, str] | None = None,
                   **env: str) -> subprocess.CompletedProcess:
    """The script under sh, with stand-ins for `getent` (is the simulator on this network?) and `connector`
    (prints the TOML it was given); `keys` are the contents of the two secret files (None: compose's
    /dev/null stand-ins, empty files)."""
    getent = f"#!/bin/sh\nexit {0 if simulator_on_network else 2}\n"
    bin_dir = executables(tmp_path / "bin", getent=getent,
                          connector='#!/bin/sh\necho "connector $*"\ncat "$6"\n')
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    for name, text in zip(("bybit_api_key", "bybit_api_secret"), keys or ("", "")):
        (secrets / name).write_text(text)
    return subprocess.run(["sh", str(ENTRYPOINT)], capture_output=True, text=True, timeout=30,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "TMPDIR": str(tmp_path),
                               "CONNECTOR_SECRETS_DIR": str(secrets), **env})


def toml(done: subprocess.CompletedProcess) -> dict:
    """The TOML the connector was given."""
    assert done.returncode == 0, done.stderr
    return tomllib.loads(done.stdout.split("\n", 1)[1])


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
        f"connector name bybit_hft; {NO_KEYS}"]
    config = toml(done)
    assert not {"api_key_file", "secret_file", "api_key", "secret", "trade_on_mainnet"} & set(config)


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
    # compose gives the connector and the service one value: bybit-testnet when a key file is named and no
    # exchange is, else empty, which both read as DEFAULT_EXCHANGE (the entrypoint's line above).
    for name in ("connector", "service"):
        assert services[name]["environment"]["EXCHANGE"] == "${HFTLIVE_EXCHANGE:-${BYBIT_API_KEY_FILE:+bybit-testnet}}"
    for name in ("service-mock", "simulator"):
        assert "EXCHANGE" not in services[name]["environment"], name
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^HFTLIVE_EXCHANGE=$", example, re.M)
    assert " | ".join(EXCHANGES) in example


KEY, SECRET = "k3yFromTheSecretFile", "s3cretFromTheSecretFile0123456789abc"


def streams() -> dict[str, str]:
    """The entrypoint's own stream base per exchange (its case table): the tests name no exchange's host."""
    found = dict(re.findall(r"^ *([a-z-]+)\) stream=(\S+) ", ENTRYPOINT.read_text(), re.M))
    found["simulator"] = re.search(r"^ *stream=(ws://simulator\S+) ", ENTRYPOINT.read_text(), re.M).group(1)
    return found


@pytest.mark.parametrize("exchange, served", [
    ("", "bybit-testnet"),   # keys given: testnet unless told otherwise
    ("bybit-testnet", "bybit-testnet"),
    ("simulator", "simulator"),
    ("bybit", "bybit"),   # the connector refuses this without trade_on_mainnet
])
def test_key_files_turn_trading_on_by_path_and_testnet_is_the_default(tmp_path, exchange, served):
    stream = streams()[served]
    assert ("testnet" in stream) == (served == "bybit-testnet") and stream.startswith(("ws://", "wss://"))
    done = run_entrypoint(tmp_path, simulator_on_network=True, keys=(KEY, SECRET), EXCHANGE=exchange)
    config = toml(done)
    secrets = tmp_path / "secrets"
    assert (config["public_url"], config["private_url"], config["trade_url"]) == (
        f"{stream}/public/linear", f"{stream}/private", f"{stream}/trade")
    assert (config["api_key_file"], config["secret_file"]) == (
        str(secrets / "bybit_api_key"), str(secrets / "bybit_api_secret"))
    assert "trade_on_mainnet" not in config and not {"api_key", "secret"} & set(config)
    assert done.stderr.splitlines() == [
        f"connector-entrypoint: exchange {served} at {stream}/public/linear (REST {config['rest_url']}), "
        f"connector name bybit_hft; API keys from {secrets}: orders to {stream}/trade"]
    # The keys themselves are never printed, nor written anywhere but their own files.
    for text in (done.stdout, done.stderr, (tmp_path / "connector.toml").read_text()):
        assert KEY not in text and SECRET not in text


def test_without_keys_the_streams_are_named_but_no_key_is(tmp_path):
    config = toml(run_entrypoint(tmp_path, EXCHANGE="bybit-testnet"))
    testnet = streams()["bybit-testnet"]
    assert (config["private_url"], config["trade_url"]) == (f"{testnet}/private", f"{testnet}/trade")
    assert "api_key_file" not in config
    # Another public endpoint: its private and trade streams only when named too.
    config = toml(run_entrypoint(tmp_path, BYBIT_PUBLIC_URL="wss://simulator:8090/v5/public/linear"))
    assert not {"private_url", "trade_url", "rest_url"} & set(config)
    config = toml(run_entrypoint(tmp_path, BYBIT_PUBLIC_URL="wss://simulator:8090/v5/public/linear",
                                 BYBIT_PRIVATE_URL="wss://simulator:8090/v5/private",
                                 BYBIT_TRADE_URL="wss://simulator:8090/v5/trade"))
    assert (config["private_url"], config["trade_url"]) == ("wss://simulator:8090/v5/private",
                                                            "wss://simulator:8090/v5/trade")


def test_mainnet_trading_takes_the_setting_that_says_so(tmp_path):
    done = run_entrypoint(tmp_path, keys=(KEY, SECRET), EXCHANGE="bybit", BYBIT_MAINNET_TRADING=" Yes ")
    assert toml(done)["trade_on_mainnet"] is True
    assert done.stderr.rstrip().endswith("mainnet trading allowed (BYBIT_MAINNET_TRADING=yes)")
    for value in ("no", ""):
        assert "trade_on_mainnet" not in toml(run_entrypoint(tmp_path, keys=(KEY, SECRET), EXCHANGE="bybit",
                                                             BYBIT_MAINNET_TRADING=value))


def test_the_limits_prefix_and_control_port_become_the_connectors_keys(tmp_path):
    config = toml(run_entrypoint(tmp_path, TRADING_MAX_ORDER_QTY="0.002", TRADING_MAX_POSITION="0.01",
                                 TRADING_MAX_OPEN_ORDERS="4", TRADING_MAX_ORDERS_PER_S="2.5", ORDER_PREFIX="bot-1",
                                 CONNECTOR_CONTROL_PORT="8092"))
    assert {k: config[k] for k in ("max_order_qty", "max_position", "max_open_orders", "max_orders_per_s",
                                   "order_prefix", "control_listen")} == {
        "max_order_qty": 0.002, "max_position": 0.01, "max_open_orders": 4, "max_orders_per_s": 2.5,
        "order_prefix": "bot-1", "control_listen": "0.0.0.0:8092"}
    # Unset or empty (compose passes every setting, empty by default): the connector's own defaults.
    empty = {name: "" for name in ("TRADING_MAX_ORDER_QTY", "TRADING_MAX_POSITION", "TRADING_MAX_OPEN_ORDERS",
                                   "TRADING_MAX_ORDERS_PER_S", "ORDER_PREFIX", "BYBIT_MAINNET_TRADING")}
    config = toml(run_entrypoint(tmp_path, **empty))
    assert not {"max_order_qty", "max_position", "max_open_orders", "max_orders_per_s", "order_prefix",
                "control_listen"} & set(config)


@pytest.mark.parametrize("keys, env, line", [
    ((KEY, ""), {}, "{secrets}/bybit_api_secret is empty or missing while its pair is set; give both the API key "
     "and its secret (BYBIT_API_KEY_FILE and BYBIT_API_SECRET_FILE), or neither"),
    (("", SECRET), {}, "{secrets}/bybit_api_key is empty or missing while its pair is set; give both the API key "
     "and its secret (BYBIT_API_KEY_FILE and BYBIT_API_SECRET_FILE), or neither"),
    (None, {"BYBIT_MAINNET_TRADING": "true"},
     "BYBIT_MAINNET_TRADING='true'; use yes (orders with real money on Bybit's mainnet) or no"),
    (None, {"TRADING_MAX_POSITION": "1e9"}, "TRADING_MAX_POSITION='1e9' is not a number"),
    (None, {"TRADING_MAX_OPEN_ORDERS": "2.5"}, "TRADING_MAX_OPEN_ORDERS='2.5' is not a whole number"),
    (None, {"ORDER_PREFIX": 'a"b'}, "ORDER_PREFIX='a\"b'; use 1 to 16 letters, digits, - or _ (Bybit's "
     "orderLinkId allows 36 characters)"),
    (None, {"ORDER_PREFIX": "p" * 17}, f"ORDER_PREFIX='{'p' * 17}'; use 1 to 16 letters, digits, - or _ (Bybit's "
     "orderLinkId allows 36 characters)"),
    (None, {"CONNECTOR_CONTROL_PORT": "80 92"}, "CONNECTOR_CONTROL_PORT='80 92' is not a port number"),
], ids=["secret-missing", "key-missing", "mainnet-not-yes", "limit-not-decimal", "open-orders-not-whole",
        "prefix-quote", "prefix-too-long", "control-port"])
def test_a_wrong_trading_setting_stops_the_connector_with_one_line(tmp_path, keys, env, line):
    done = run_entrypoint(tmp_path, keys=keys, **env)
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["connector-entrypoint: " + line.format(secrets=tmp_path / "secrets")]
    assert "connector --name" not in done.stdout
    assert KEY not in done.stderr and SECRET not in done.stderr


def test_every_key_the_entrypoint_writes_is_one_the_connector_reads():
    written = set(re.findall(r'echo "([a-z_]+) = ', ENTRYPOINT.read_text()))
    assert {"private_url", "trade_url", "api_key_file", "secret_file", "trade_on_mainnet", "order_prefix",
            "max_order_qty", "max_position", "max_open_orders", "max_orders_per_s", "control_listen"} <= written
    fields = set(re.findall(r"^\s+(?:pub\s+)?([a-z_]+): ", (ROOT / "connector" / "src" / "config.rs").read_text(), re.M))
    assert written <= fields, f"connector/src/config.rs reads no {sorted(written - fields)}"
