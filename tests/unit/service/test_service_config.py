"""`python -m service` refuses a bad configuration, or a live source without a live hftbacktest: one line, exit 2."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from service.config import ConfigError, load_settings

FIX = "./hftlive wheels"


def run_service(env: dict, extra: dict, tmp_path=None, fake_hftbacktest: str | None = None):
    env = {**env, **extra}
    if fake_hftbacktest is not None:
        (tmp_path / "hftbacktest").mkdir()
        (tmp_path / "hftbacktest" / "__init__.py").write_text(textwrap.dedent(fake_hftbacktest))
        env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    return subprocess.run([sys.executable, "-m", "service"], env=env, capture_output=True, text=True, timeout=120)


def refusal(done) -> str:
    """The one line a service that refused to start printed (it must have exited 2)."""
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def refused(**settings) -> str:
    """Why load_settings refuses these settings (and the environment's)."""
    with pytest.raises(ConfigError) as error:
        load_settings(**settings)
    return str(error.value)


@pytest.mark.parametrize("extra, expected", [
    ({"DATA_SOURCE": "kafka"}, "DATA_SOURCE='kafka': unknown source 'kafka'; use hft_connector (or live) or mock"),
    ({"DATA_SOURCE": "mock", "SYMBOL": "BTC/USDT"}, "SYMBOL='BTC/USDT': 'BTC/USDT' is not a symbol"),
    ({"DATA_SOURCE": "mock", "TICK_SIZE": "-0.1"}, "TICK_SIZE='-0.1': '-0.1' is not a positive number"),
    ({"DATA_SOURCE": "mock", "LOT_SIZE": "lots"}, "LOT_SIZE='lots': 'lots' is not a number"),
    ({"DATA_SOURCE": "mock", "PORT": "99999"}, "PORT='99999'"),
    ({"DATA_SOURCE": "mock", "MOCK_PRICE": "inf"},
     "MOCK_PRICE='inf': Input should be a finite number"),
    ({"DATA_SOURCE": "mock", "SYMBOL": "BTCUSDT,ETHUSDT", "TICK_SIZE": "0.1,0.01,1"},
     "TICK_SIZE has 3 values for 2 symbols"),
    ({"DATA_SOURCE": "mock", "EXCHANGE": "bybit"},
     "EXCHANGE='bybit': EXCHANGE applies only to the live source (DATA_SOURCE=hft_connector); "
     "unset it for DATA_SOURCE=mock"),
    ({"DATA_SOURCE": "live", "EXCHANGE": "binance"},
     "EXCHANGE='binance': unknown exchange 'binance'; use simulator, bybit or bybit-testnet"),
])
def test_bad_configuration_exits_2_with_one_line(service_env, extra, expected):
    line = refusal(run_service(service_env, extra))
    assert line.startswith("hftlive service: bad configuration: ")
    assert expected in line


@pytest.mark.parametrize("fake, expected", [
    ('raise ModuleNotFoundError("No module named \'hftbacktest\'", name="hftbacktest")\n',
     "but hftbacktest is not installed"),
    ('__version__ = "2.4.4"\nLIVE_FEATURE = False\n',
     "but the installed hftbacktest 2.4.4 was built without it (LIVE_FEATURE is False"),
    ('raise AttributeError("function \'hashmaplive_modify\' not found")\n',
     "but `import hftbacktest` fails (AttributeError: function 'hashmaplive_modify' not found)"),
    ('__version__ = "2.4.4"\nLIVE_FEATURE = True\nclass LiveInstrument: pass\n',
     "lacks HashMapMarketDepthLiveBot (an unpatched build)"),
])
@pytest.mark.parametrize("source", ["hft_connector", "live"])
def test_live_source_without_a_live_hftbacktest_exits_2_naming_the_fix(service_env, tmp_path, fake, expected, source):
    line = refusal(run_service(service_env, {"DATA_SOURCE": source}, tmp_path, fake))
    assert line.startswith("hftlive service: DATA_SOURCE=hft_connector needs hftbacktest built with the live feature")
    assert expected in line
    assert line.endswith(f"build the wheelhouse ({FIX}) and install its hftbacktest wheel, or set DATA_SOURCE=mock")


def test_the_default_source_is_live(service_env, tmp_path):
    done = run_service(service_env, {}, tmp_path, "LIVE_FEATURE = False\n")
    assert "DATA_SOURCE=hft_connector needs" in refusal(done)


def test_settings_read_the_environment(monkeypatch, tmp_path):
    channel = tmp_path / "channel.toml"
    channel.write_text("max_bots = 2\nbuffer_size = 1024\n")
    for name, value in {"DATA_SOURCE": "live", "SYMBOL": "btcusdt, ethusdt", "TICK_SIZE": "0.1,0.01",
                        "LOT_SIZE": "0.001", "API_TOKEN": "s3cret", "HFTBACKTEST_CHANNEL_CONFIG": str(channel),
                        "CONNECTOR_NAME": "bybit_testnet"}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.data_source == "hft_connector" and settings.source_kind == "live"
    assert [(i.symbol, i.tick_size, i.lot_size) for i in settings.instruments] == [
        ("BTCUSDT", 0.1, 0.001), ("ETHUSDT", 0.01, 0.001)]
    assert settings.api_token.get_secret_value() == "s3cret"
    assert settings.hftbacktest_channel_config == str(channel)
    assert settings.connector_name == "bybit_testnet"
    assert settings.exchange == "bybit"   # the live source's default


@pytest.mark.parametrize("variable", ["EXCHANGE", "exchange"])
@pytest.mark.parametrize("value, expected", [("simulator", "simulator"), ("Bybit-Testnet", "bybit-testnet"),
                                             (" BYBIT ", "bybit"), ("", "bybit")])
def test_the_live_source_reads_its_exchange(monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    assert load_settings(data_source="live").exchange == expected


def test_the_mock_has_no_exchange_and_refuses_one(monkeypatch):
    assert load_settings(data_source="mock").exchange is None
    assert refused(data_source="mock", exchange="simulator") == (
        "bad configuration: EXCHANGE: EXCHANGE applies only to the live source "
        "(DATA_SOURCE=hft_connector); unset it for DATA_SOURCE=mock")
    monkeypatch.setenv("EXCHANGE", "")   # what compose passes for an unset variable: no exchange asked for
    assert load_settings(data_source="mock").exchange is None


@pytest.mark.parametrize("content, expected", [
    ("max_bots = 'two'\n", "max_bots must be a positive integer"),
    ("max_bot = 2\n", "unknown key 'max_bot'"),
    ("max_bots = \n", "is not valid TOML"),
])
def test_a_channel_config_hftbacktest_would_silently_ignore_is_refused(tmp_path, content, expected):
    channel = tmp_path / "channel.toml"
    channel.write_text(content)
    message = refused(data_source="mock", hftbacktest_channel_config=str(channel))
    assert "HFTBACKTEST_CHANNEL_CONFIG" in message and expected in message

FLOATS = ("MOCK_PRICE", "READY_MAX_AGE_S", "LIVE_STALE_AFTER_S", "LIVE_REBUILD_AFTER_S",
          "MOCK_EVENT_RATE")


@pytest.mark.parametrize("name, value, expected", [
    *((name, value, "Input should be a finite number")
      for name in FLOATS for value in ("inf", "-inf", "nan", "1e400")),
    ("PORT", "8000.0", "'8000.0' is not a whole number"),
    ("CLIENT_BUFFER", "1_024", "'1_024' is not a whole number"),
    ("MOCK_SEED", "1e3", "'1e3' is not a whole number"),
    ("MOCK_SEED", "-1", "Input should be greater than or equal to 0"),
    ("READY_MAX_AGE_S", "1e9", "Input should be less than or equal to 86400"),
    ("LIVE_REBUILD_AFTER_S", "1e9", "Input should be less than or equal to 86400"),
    ("TICK_SIZE", "1e-300", "1e-300 is not between 1e-09 and 1e+09"),
    ("LOT_SIZE", "1e300", "1e+300 is not between 1e-09 and 1e+09"),
])
def test_number_settings_are_finite_whole_where_they_count_and_within_range(
        monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    assert f"{name}={value!r}: {expected}" in refused(data_source="mock")


@pytest.mark.parametrize("env, expected", [
    ({"MOCK_PRICE": "1"}, "MOCK_PRICE=1 is 10 ticks of 0.1 for BTCUSDT; the mock market needs at least 130: "
                          "set MOCK_PRICE to 13 or more, or a smaller TICK_SIZE"),
    ({"SYMBOL": "BTCUSDT,DOGEUSDT", "TICK_SIZE": "0.1,0.00001", "MOCK_PRICE": "12"},
     "MOCK_PRICE=12 is 120 ticks of 0.1 for BTCUSDT; the mock market needs at least 130: "
     "set MOCK_PRICE to 13 or more, or a smaller TICK_SIZE"),
    ({"TICK_SIZE": "1e-9"}, "MOCK_PRICE=60000 is 6e+13 ticks of 1e-09 for BTCUSDT; the book holds at most 1e+12: "
                            "set MOCK_PRICE to 1000 or less, or a larger TICK_SIZE"),
])
def test_the_mock_price_must_be_one_the_market_model_can_start_at(monkeypatch, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert refused(data_source="mock") == f"bad configuration: {expected}"


def test_the_mock_price_floor_is_the_market_models_and_applies_to_the_mock_only():
    from market.model import DEFAULT_PARAMS, MarketModel
    smallest = load_settings(data_source="mock", mock_price=13.0)
    model = MarketModel(smallest.instruments[0].tick(smallest.mock_price), 1)
    assert model.best_bid + model.best_ask == 2 * DEFAULT_PARAMS.floor_ticks == 260   # started where asked
    assert load_settings(data_source="live", tick_size="1e-9").mock_price == 60_000   # unused: not checked


@pytest.mark.parametrize("value, expected", [
    ("   ", "API_TOKEN: is set but blank; give a token, or leave it empty (or unset) for no authentication"),
    (" tok3n", "API_TOKEN: has whitespace before or after it; remove it (a bearer token cannot carry any)"),
    ("tok3n\n", "API_TOKEN: has whitespace before or after it; remove it (a bearer token cannot carry any)"),
    ("tok 3n", "API_TOKEN: may hold printable ASCII only, without spaces (as an HTTP header's bearer token)"),
    ("tok\x013n", "API_TOKEN: may hold printable ASCII only, without spaces (as an HTTP header's bearer token)"),
    ("tök3n", "API_TOKEN: may hold printable ASCII only, without spaces (as an HTTP header's bearer token)"),
])
def test_a_token_that_cannot_be_sent_is_refused_without_printing_it(monkeypatch, value, expected):
    monkeypatch.setenv("API_TOKEN", value)
    message = refused(data_source="mock")
    assert message == f"bad configuration: {expected}"
    assert "3n" not in message   # the token itself is never shown


def test_an_empty_or_unset_token_means_no_authentication(monkeypatch):
    assert load_settings(data_source="mock").api_token is None
    monkeypatch.setenv("API_TOKEN", "")   # what compose passes for an unset variable
    assert load_settings(data_source="mock").api_token is None
    monkeypatch.setenv("API_TOKEN", "a-Token_0.9~+/=")
    assert load_settings(data_source="mock").api_token.get_secret_value() == "a-Token_0.9~+/="


@pytest.mark.parametrize("env, expected", [
    ({"DATA_SOURCE": "hft_connector", "data_source": "mock"},
     "DATA_SOURCE='hft_connector' and data_source='mock' both set DATA_SOURCE; keep one"),
    ({"SYMBOL": "BTCUSDT", "SYMBOLS": "ETHUSDT"}, "SYMBOL='BTCUSDT' and SYMBOLS='ETHUSDT' both set SYMBOL; keep one"),
    ({"Port": "8001", "PORT": "8000"}, "PORT='8000' and Port='8001' both set PORT; keep one"),
    ({"API_TOKEN": "one", "api_token": "two"}, "API_TOKEN and api_token both set API_TOKEN; keep one"),
])
def test_a_setting_given_twice_with_different_values_is_refused(monkeypatch, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert refused() == f"bad configuration: {expected}"


def test_a_setting_given_twice_with_the_same_value_is_not_ambiguous(monkeypatch):
    for name in ("DATA_SOURCE", "data_source"):
        monkeypatch.setenv(name, "mock")
    monkeypatch.setenv("SYMBOL", "ETHUSDT")
    monkeypatch.setenv("symbols", "ETHUSDT")
    monkeypatch.setenv("log_level", "")   # empty is unset, so it does not clash
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = load_settings()
    assert (settings.data_source, settings.symbols, settings.log_level) == ("mock", ("ETHUSDT",), "debug")


@pytest.mark.parametrize("host", ["999.1.1.1", "exa mple", " ", "-x.example", "host:80"])
def test_a_host_that_is_no_address_or_name_is_refused_without_a_lookup(host):
    message = refused(data_source="mock", host=host)
    assert f"HOST: {host!r} is not an IP address or a host name" in message


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1", "::", "::1", "localhost", "service-mock", "a.b.example"])
def test_addresses_and_host_names_are_hosts(host):
    assert load_settings(data_source="mock", host=host).host == host
