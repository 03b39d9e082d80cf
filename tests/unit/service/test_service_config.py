"""`python -m service` refuses a bad configuration, or a live source without a live hftbacktest: one line, exit 2."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


from service.config import ConfigError, load_settings  # noqa: E402

FIX = "./hftlive wheels"


def run_service(env: dict, extra: dict, tmp_path=None, fake_hftbacktest: str | None = None):
    env = {**env, **extra}
    if fake_hftbacktest is not None:
        (tmp_path / "hftbacktest").mkdir()
        (tmp_path / "hftbacktest" / "__init__.py").write_text(textwrap.dedent(fake_hftbacktest))
        env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    return subprocess.run([sys.executable, "-m", "service"], env=env, capture_output=True, text=True, timeout=120)


def one_line(done) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


@pytest.mark.parametrize("extra, expected", [
    ({"DATA_SOURCE": "kafka"}, "DATA_SOURCE='kafka': unknown source 'kafka'; use hft_connector (or live) or mock"),
    ({"DATA_SOURCE": "mock", "SYMBOL": "BTC/USDT"}, "SYMBOL='BTC/USDT': 'BTC/USDT' is not a symbol"),
    ({"DATA_SOURCE": "mock", "TICK_SIZE": "-0.1"}, "TICK_SIZE='-0.1': '-0.1' is not a positive number"),
    ({"DATA_SOURCE": "mock", "LOT_SIZE": "lots"}, "LOT_SIZE='lots': 'lots' is not a number"),
    ({"DATA_SOURCE": "mock", "PORT": "99999"}, "PORT='99999'"),
    ({"DATA_SOURCE": "mock", "SYMBOL": "BTCUSDT,ETHUSDT", "TICK_SIZE": "0.1,0.01,1"},
     "TICK_SIZE has 3 values for 2 symbols"),
    ({"DATA_SOURCE": "mock", "EXCHANGE": "bybit"},
     "EXCHANGE='bybit': EXCHANGE applies only to the live source (DATA_SOURCE=hft_connector); "
     "unset it for DATA_SOURCE=mock"),
    ({"DATA_SOURCE": "live", "EXCHANGE": "binance"},
     "EXCHANGE='binance': unknown exchange 'binance'; use simulator, bybit or bybit-testnet"),
])
def test_bad_configuration_exits_2_with_one_line(service_env, extra, expected):
    done = run_service(service_env, extra)
    assert done.returncode == 2
    line = one_line(done)
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
    done = run_service(service_env, {"DATA_SOURCE": source}, tmp_path, fake)
    assert done.returncode == 2
    line = one_line(done)
    assert line.startswith("hftlive service: DATA_SOURCE=hft_connector needs hftbacktest built with the live feature")
    assert expected in line
    assert line.endswith(f"build the wheelhouse ({FIX}) and install its hftbacktest wheel, or set DATA_SOURCE=mock")


def test_the_default_source_is_live(service_env, tmp_path):
    done = run_service(service_env, {}, tmp_path, 'LIVE_FEATURE = False\n')
    assert done.returncode == 2 and "DATA_SOURCE=hft_connector needs" in one_line(done)


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
    with pytest.raises(ConfigError) as error:
        load_settings(data_source="mock", exchange="simulator")
    assert str(error.value) == ("bad configuration: EXCHANGE: EXCHANGE applies only to the live source "
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
    with pytest.raises(ConfigError) as error:
        load_settings(data_source="mock", hftbacktest_channel_config=str(channel))
    assert "HFTBACKTEST_CHANNEL_CONFIG" in str(error.value) and expected in str(error.value)

