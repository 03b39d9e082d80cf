"""`python -m simulator` configuration: defaults, per-symbol lists, and one clear line plus exit 2 when wrong."""
from __future__ import annotations

import subprocess
import sys

import pytest
from sim_harness import ROOT, sim_env

from simulator.config import ConfigError, load_settings


def run(args=(), **settings) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simulator", *args], env=sim_env(**settings), cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(autouse=True)
def no_sim_env(monkeypatch):
    import os
    for name in list(os.environ):
        if name.upper().startswith("SIM_"):
            monkeypatch.delenv(name)


def test_defaults_are_one_realistic_btcusdt_market():
    s = load_settings()
    assert s.symbols == ("BTCUSDT",) and s.rate == 50 and s.idle_timeout_s == 600
    assert (s.host, s.port, s.bind_control, s.control_port) == ("0.0.0.0", 8090, "0.0.0.0", 8091)
    assert s.instruments[0].tick_size == 0.1 and s.instruments[0].lot_size == 0.001
    assert s.max_backlog_bytes == 4 * 2**20   # test_simulator_session's bound


def test_values_per_symbol(monkeypatch):
    monkeypatch.setenv("SIM_SYMBOLS", "BTCUSDT,ETHUSDT")
    monkeypatch.setenv("SIM_TICK_SIZE", "0.1,0.01")
    monkeypatch.setenv("SIM_PRICE", "60000,3000")
    monkeypatch.setenv("SIM_CONTROL_HOST", "127.0.0.1")
    s = load_settings()
    assert [(i.symbol, i.tick_size, i.lot_size) for i in s.instruments] == [("BTCUSDT", 0.1, 0.001),
                                                                             ("ETHUSDT", 0.01, 0.001)]
    assert s.prices == (60000.0, 3000.0) and s.bind_control == "127.0.0.1"


@pytest.mark.parametrize(("settings", "expected"), [
    ({"rate": "-5"}, "SIM_RATE='-5': Input should be greater than or equal to 0"),
    ({"placement_ticks": "0"}, "SIM_PLACEMENT_TICKS='0': Input should be greater than or equal to 0.5"),
    ({"max_backlog_bytes": "65536"}, "SIM_MAX_BACKLOG_BYTES='65536': Input should be greater than or equal to 1048576"),
    ({"symbols": "btcusdt"}, "SIM_SYMBOLS='btcusdt': 'btcusdt' is not a symbol"),
    ({"symbols": "BTCUSDT,ETHUSDT", "tick_size": "0.1,0.2,0.3"}, "SIM_TICK_SIZE has 3 values for 2 symbols"),
    ({"tls_cert": "/nonexistent.pem"}, "set both SIM_TLS_CERT and SIM_TLS_KEY"),
    ({"tls_cert": "/nonexistent.pem", "tls_key": "/nonexistent.pem"}, "cannot read SIM_TLS_CERT/SIM_TLS_KEY"),
])
def test_a_bad_value_is_one_line_on_stderr_and_exit_2(settings, expected):
    done = run(**settings)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hftlive simulator: bad configuration: ") and expected in lines[0]


def test_arguments_are_refused_and_help_names_the_settings():
    refused = run(["--port", "1"])
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1
    helped = run(["--help"])
    assert helped.returncode == 0 and "SIM_RATE" in helped.stdout and "SIM_CONTROL_HOST" in helped.stdout


def test_in_process_errors_are_config_errors():
    with pytest.raises(ConfigError, match="SIM_IDLE_TIMEOUT_S"):
        load_settings(idle_timeout_s=0)


def test_sigterm_stops_it_cleanly_and_a_taken_port_is_one_line(start_sim):
    sim = start_sim()
    taken = run(host="127.0.0.1", port=sim.port, control_port=0)
    assert taken.returncode == 1
    assert taken.stderr.strip().endswith("address already in use; change SIM_PORT or SIM_CONTROL_PORT")
    assert len(taken.stderr.splitlines()) == 1
    sim.proc.terminate()
    assert sim.proc.wait(15) == 0
    assert "Traceback" not in sim.stderr()
