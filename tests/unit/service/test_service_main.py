"""`python -m service` as a process: its log never carries the API token, and a port it cannot listen on is one line."""
from __future__ import annotations

import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from websockets.sync.client import connect

from tests.support.service import Service, free_port

SECRET = "hftlive-unit-secret-7Qx"
STARTED = "Application startup"   # uvicorn's lines around the lifespan, which starts the source


@pytest.mark.parametrize("level", ["trace", "debug"])
def test_the_api_token_never_reaches_the_log(level):
    with Service(API_TOKEN=SECRET, LOG_LEVEL=level) as service:
        status = urllib.request.Request(f"{service.url}/v1/status", headers={"Authorization": f"Bearer {SECRET}"})
        with urllib.request.urlopen(status, timeout=5) as response:
            assert response.status == 200
        with pytest.raises(urllib.error.HTTPError):   # REST takes the header only; the attempt is still logged
            urllib.request.urlopen(f"{service.url}/v1/trades?token={SECRET}", timeout=5)
        with connect(service.ws, open_timeout=5, additional_headers={"Authorization": f"Bearer {SECRET}"}) as ws:
            assert '"snapshot"' in ws.recv(timeout=5)
        with connect(f"{service.ws}?symbols=BTCUSDT&token={SECRET}", open_timeout=5) as ws:
            assert '"snapshot"' in ws.recv(timeout=5)
        log = service.stop()
    assert "/v1/status" in log and "/v1/trades" in log and "/v1/stream" in log, log   # the requests were logged
    leaks = [line for line in log.splitlines() if SECRET in line]
    assert not leaks, "\n".join(leaks)


def cannot_listen(service_env: dict, host: str, port: int) -> str:
    """The one line `python -m service` exits 2 with, before the source starts."""
    env = {**service_env, "DATA_SOURCE": "mock", "HOST": host, "PORT": str(port)}
    done = subprocess.run([sys.executable, "-m", "service"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert STARTED not in done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    return line


def test_a_taken_port_is_one_line_and_exit_2_before_the_source_starts(service_env):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert cannot_listen(service_env, "127.0.0.1", port) == (
            f"hftlive service: cannot listen on 127.0.0.1:{port}: address already in use; "
            "stop what holds the port, or set PORT to a free one")


def test_an_address_not_of_this_machine_is_one_line_and_exit_2_before_the_source_starts(service_env):
    # 192.0.2.1 (TEST-NET-1) is no local interface's address: bind() fails locally, nothing is sent.
    line = cannot_listen(service_env, "192.0.2.1", free_port())
    assert line.startswith("hftlive service: cannot listen on 192.0.2.1:")
    assert line.endswith("address not available; set HOST to an address of this machine (0.0.0.0: all of them)")


def test_a_retired_setting_still_set_is_named_on_stderr_not_silently_ignored(service_env):
    # A taken port makes the service stop right after reading its settings: the retired one is named first.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "service"], capture_output=True, text=True, timeout=120,
                              env={**service_env, "DATA_SOURCE": "mock", "HOST": "127.0.0.1", "PORT": str(port),
                                   "live_book_ticks": "100"})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 2, done.stderr
    assert lines[0] == ("hftlive service: LIVE_BOOK_TICKS is no longer used: the live source mirrors every "
                        "level the connector sends, however far from the touch")
    assert lines[1].startswith(f"hftlive service: cannot listen on 127.0.0.1:{port}")
