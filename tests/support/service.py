"""`python -m service` as its own process on 127.0.0.1, for the tests that need the real server."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from tests.support import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """`python -m service` (mock source) on 127.0.0.1, stopped with SIGTERM (then killed) at the end."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.env = {**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
                    "DATA_SOURCE": "mock", "HOST": "127.0.0.1", "PORT": str(self.port), "LOG_LEVEL": "warning",
                    "MOCK_SEED": "3", **env}
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}/v1/stream"
        self.output: str | None = None

    def __enter__(self) -> Service:
        self.proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1).read()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the service did not start: {self.stop()}") from None
                time.sleep(0.1)

    def stop(self) -> str:
        """Stops the service (once); its output."""
        if self.output is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
            self.output = self.proc.communicate()[0]
        return self.output

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def metric(self, name: str) -> float:
        text = urllib.request.urlopen(self.url + "/metrics", timeout=5).read().decode()
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no metric {name}")

    def established(self) -> int:
        """TCP connections established on the service's port, as the kernel sees them (server side)."""
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as file:
                for line in file.readlines()[1:]:
                    local, state = line.split()[1], line.split()[3]
                    if int(local.rsplit(":", 1)[1], 16) == self.port and state == "01":
                        count += 1
        return count
