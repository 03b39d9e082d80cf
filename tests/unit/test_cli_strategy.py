"""`./hftlive up --strategy FILE` without Docker: a missing file is one line and exit 2; the compose call
adds the bot profile and the strategy; against the simulator both sides get one key pair, made once,
as files; `down` stops the bot too."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from unittest import mock

import pytest

from cli import apikeys, compose, images
from cli.versions import runtime_facts
from tests.support.commands import hftlive


@pytest.fixture
def strategy(tmp_path) -> Path:
    path = tmp_path / "my_strategy.py"
    path.write_text("def strategy(hbt):\n    return True\n")
    return path


def test_a_missing_strategy_file_is_one_line_and_exit_2_before_any_docker_call(tmp_path):
    done = hftlive("up", "--strategy", str(tmp_path / "nowhere.py"))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"hftlive: error: no strategy file {tmp_path / 'nowhere.py'} (--strategy takes a Python file with a numba "
        "`strategy(hbt)`, such as strategies/market_maker.py)"]
    done = hftlive("up", "--strategy", str(tmp_path))   # a folder is no strategy file either
    assert done.returncode == 2 and "no strategy file" in done.stderr


def test_the_mock_market_takes_no_strategy(strategy):
    done = hftlive("up", "--mock", "--strategy", str(strategy))
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["hftlive: error: --mock has no exchange to trade on; drop --strategy, "
                                        "or drop --mock"]


@pytest.mark.parametrize("exchange, profiles", [
    (None, ("live", "sim", "bot")),
    ("bybit-testnet", ("live", "bot")),
])
def test_a_strategy_adds_the_bot_profile(strategy, exchange, profiles):
    plan = compose.plan(exchange, False, str(strategy))
    assert (plan.profiles, plan.strategy) == (profiles, strategy)
    assert "bot" in plan.services and images.PROFILES["bot"] == ["bot"]
    assert compose.plan(exchange, False).profiles == profiles[:-1]   # no strategy: no bot


def started_with(monkeypatch, plan: compose.Plan) -> tuple[list[str], dict[str, str]]:
    """The command and environment `up` runs compose's `up --wait` with (compose itself stubbed out)."""
    calls = []

    def popen(command, **kwargs):
        calls.append((command, kwargs["env"]))
        return mock.Mock(**{"poll.return_value": 0})
    monkeypatch.setattr(compose.subprocess, "Popen", popen)
    monkeypatch.setattr(compose, "down", lambda: 0)
    monkeypatch.setattr(compose, "watch", lambda *args: None)
    monkeypatch.setattr(compose.Project, "published", lambda self, *args: "127.0.0.1:8000")
    assert compose.up(plan) == "http://127.0.0.1:8000/"
    [(command, env)] = calls
    return command, env


def test_up_runs_compose_with_the_bot_profile_the_strategy_and_one_key_pair(monkeypatch, tmp_path, strategy):
    monkeypatch.setattr(apikeys, "FOLDER", tmp_path / ".hftlive" / "secrets")
    monkeypatch.delenv("HFTLIVE_STRATEGY", raising=False)
    command, env = started_with(monkeypatch, compose.plan(None, False, str(strategy)))

    profiles = [command[i + 1] for i, word in enumerate(command) if word == "--profile"]
    assert profiles == ["live", "sim", "bot"]
    assert command[command.index("up"):][:2] == ["up", "--detach"]
    assert env["HFTLIVE_STRATEGY"] == str(strategy) and env["HFTLIVE_EXCHANGE"] == "simulator"
    # The connector's secrets and the simulator's are the same pair: files, the secret never in a variable.
    key_file, secret_file = Path(env["BYBIT_API_KEY_FILE"]), Path(env["BYBIT_API_SECRET_FILE"])
    assert (key_file.parent, key_file.name, secret_file.name) == (
        tmp_path / ".hftlive" / "secrets", "bybit_api_key", "bybit_api_secret")
    key, secret = key_file.read_text(), secret_file.read_text()
    assert len(key) == 18 and len(secret) == 36 and (key + secret).isalnum()
    assert env["SIM_API_KEY"] == key and env["SIM_API_SECRET_FILE"] == "/run/secrets/bybit_api_secret"
    assert secret not in env.values()
    # Only the folder's owner on this host may look in; the containers' user may read the files.
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    for path in (key_file, secret_file):
        if os.geteuid() == 0:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert path.stat().st_uid == int(runtime_facts()["HFTLIVE_UID"])
        else:
            assert stat.S_IMODE(path.stat().st_mode) == 0o644
    # Made once: the next `up` gives both sides the same pair again.
    _, again = started_with(monkeypatch, compose.plan(None, False, str(strategy)))
    assert (again["SIM_API_KEY"], Path(again["BYBIT_API_SECRET_FILE"]).read_text()) == (key, secret)


def test_without_a_strategy_or_the_simulator_no_key_pair_is_made(monkeypatch, tmp_path, strategy):
    monkeypatch.setattr(apikeys, "FOLDER", tmp_path / "secrets")
    for var in ("BYBIT_API_KEY_FILE", "SIM_API_KEY", "HFTLIVE_STRATEGY"):
        monkeypatch.delenv(var, raising=False)
    _, env = started_with(monkeypatch, compose.plan(None, False))
    assert not {"HFTLIVE_STRATEGY", "BYBIT_API_KEY_FILE", "SIM_API_KEY"} & set(env)
    # A real exchange: the user's own key files (BYBIT_API_KEY_FILE in .env), never ours.
    _, env = started_with(monkeypatch, compose.plan("bybit-testnet", False, str(strategy)))
    assert env["HFTLIVE_STRATEGY"] == str(strategy) and "BYBIT_API_KEY_FILE" not in env
    assert not (tmp_path / "secrets").exists()


def test_down_stops_the_bot_too(monkeypatch):
    asked = []
    monkeypatch.setattr(compose.subprocess, "run", lambda command, **kwargs: asked.append(command) or
                        subprocess.CompletedProcess(command, 0, "", ""))
    assert compose.down() == 0
    profiles = [asked[0][i + 1] for i, word in enumerate(asked[0]) if word == "--profile"]
    assert "bot" in profiles and set(profiles) == set(images.PROFILES)
