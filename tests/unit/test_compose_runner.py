"""The one compose runner (cli.compose.Project) without Docker: what it asks compose for."""
import subprocess
from pathlib import Path
from unittest import mock

import pytest

from cli import compose
from cli.compose import HEALTH_DEADLINE_S, Project
from tests.support.stack import Stack


def test_a_test_stack_is_a_private_project_with_only_its_own_settings():
    stack = Stack(["live", "sim"], HFTLIVE_EXCHANGE="simulator")
    command = stack.up_command()
    assert command[:4] == ["docker", "compose", "--project-name", stack.name] and stack.name != "hftlive"
    settings = Path(command[command.index("--env-file") + 1]).read_text().splitlines()
    assert settings == ["HFTLIVE_PORT=0", "SIM_CONTROL_PORT=0", "HFTLIVE_EXCHANGE=simulator"]   # no .env
    assert command[command.index("up"):] == ["up", "--detach", "--wait", "--wait-timeout", f"{HEALTH_DEADLINE_S:.0f}"]
    stack.scratch.cleanup()


def test_up_leaves_env_to_compose_and_only_starts_services_without_their_dependencies():
    assert "--env-file" not in Project(["mock"]).up_command()
    alone = Project(["live"], settings={}, only=["service"], wait=False)
    assert alone.up_command()[alone.up_command().index("up"):] == ["up", "--detach", "--no-deps", "service"]
    alone.scratch.cleanup()


def test_a_compose_error_while_waiting_is_one_line_and_the_background_up_is_stopped(monkeypatch, capsys):
    # The runner's `up --wait`, still running.
    background = mock.Mock(**{"poll.return_value": None})
    monkeypatch.setattr(compose.subprocess, "Popen", lambda *a, **k: background)
    monkeypatch.setattr(compose.Project, "stop", lambda self, **kwargs: None)

    def broken_daemon(*args):
        raise subprocess.CalledProcessError(1, ["docker", "compose", "ps"], stderr="Cannot connect to the Docker daemon\n")
    monkeypatch.setattr(compose, "watch", broken_daemon)
    with pytest.raises(SystemExit) as stopped:
        compose.up(compose.Plan(("mock",), None))
    err = capsys.readouterr().err
    assert stopped.value.code == 1
    background.kill.assert_called_once_with()
    assert [line for line in err.splitlines() if line.startswith("hftlive: error:")] == [
        "hftlive: error: docker compose failed: Cannot connect to the Docker daemon; stopped what had started"]
    assert "Traceback" not in err


def test_down_keeps_the_volumes_a_test_stack_removes_them(monkeypatch):
    asked = []
    volumes = "hftlive_iceoryx2 iceoryx2\nhftlive_recordings recordings\n"
    monkeypatch.setattr(compose.subprocess, "run", lambda command, **kwargs: asked.append(command) or
                        subprocess.CompletedProcess(command, 0, volumes if "ls" in command else "", ""))
    assert compose.down() == 0   # ./hftlive down: the recordings volume outlives it
    stack = Stack("mock")
    stack.stop()
    user, listing, removal, test = asked
    assert user[user.index("down"):] == ["down", "--remove-orphans", "--timeout", "5"]
    assert listing[:3] == ["docker", "volume", "ls"] and "label=com.docker.compose.project=hftlive" in listing
    assert removal == ["docker", "volume", "rm", "hftlive_iceoryx2"]   # the tmpfs one, not the recordings
    assert test[test.index("down"):] == ["down", "--volumes", "--remove-orphans", "--timeout", "5"]
