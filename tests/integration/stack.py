"""Run compose.yaml's profiles for tests: a private project name, a free 127.0.0.1 port, its own .env."""
from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from cli.versions import ROOT

UP_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, timeout: float = 5.0) -> tuple[int, dict | str]:
    """(status, parsed JSON or text) of a GET; HTTP errors are answers, not exceptions."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status, body, kind = response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as error:
        status, body, kind = error.code, error.read(), error.headers.get_content_type()
    text = body.decode()
    return status, json.loads(text) if kind == "application/json" else text


class Stack:
    """One compose project from compose.yaml; `with Stack(...) as s:` starts it and always removes it."""

    def __init__(self, tmp: Path, profile: str | list[str], wait: bool = True, only: list[str] | None = None,
                 **settings: str) -> None:
        self.profiles = [profile] if isinstance(profile, str) else profile
        self.wait = wait
        self.only = only or []   # start just these services, without their dependencies
        self.port = free_port()
        self.project = f"hftlive-test-{uuid.uuid4().hex[:8]}"
        self.env_file = tmp / f"{self.project}.env"
        lines = [f"HFTLIVE_PORT={self.port}"] + [f"{k}={v}" for k, v in settings.items()]
        self.env_file.write_text("\n".join(lines) + "\n")
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"

    @staticmethod
    def root() -> Path:
        return ROOT

    def compose(self, *args: str, timeout: float = UP_TIMEOUT_S + 30) -> subprocess.CompletedProcess:
        command = ["docker", "compose", "--project-name", self.project, "--env-file", str(self.env_file),
                   *[a for p in self.profiles for a in ("--profile", p)], *args]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)

    def __enter__(self) -> "Stack":
        args = ["up", "--detach"] + (["--wait", "--wait-timeout", str(UP_TIMEOUT_S)] if self.wait else [])
        args += ["--no-deps", *self.only] if self.only else []
        done = self.compose(*args)
        if done.returncode != 0:
            logs = self.compose("logs", "--no-color", "--tail", "40").stdout
            self.__exit__(None, None, None)
            raise AssertionError(f"compose up failed: {done.stderr}\n{logs}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.compose("down", "--volumes", "--timeout", "5")

    def network(self) -> str:
        """The project's default compose network: test clients that must not go through a published port join it."""
        return f"{self.project}_default"

    def container(self, service: str) -> str:
        return self.compose("ps", "--all", "--quiet", service).stdout.strip()

    def health(self, service: str) -> str:
        out = subprocess.run(["docker", "inspect", "--format", "{{.State.Health.Status}}", self.container(service)],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", service).stdout

    def get(self, path: str) -> tuple[int, dict | str]:
        return get(self.url + path)

    def wait_alive(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.get("/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the service did not answer /healthz within {timeout:.0f} s")
