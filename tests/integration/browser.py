"""Debian's chromium, headless, driven over the DevTools protocol: open a page, evaluate JavaScript."""
from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import websockets

START_TIMEOUT_S = 30


class Chromium:
    def __init__(self, profile: Path) -> None:
        binary = shutil.which("chromium")
        if binary is None:
            raise RuntimeError("chromium is not installed: `apt-get install --no-install-recommends chromium` "
                               "(.ci/run installs it)")
        self.profile = profile
        # --no-sandbox: tests run as root in CI; the page comes from our own service on 127.0.0.1.
        self.process = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-dev-shm-usage", "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium did not start: {self.process.stderr.read().decode()[-800:]}")
            time.sleep(0.2)
        self.port = int(port_file.read_text().splitlines()[0])

    def open(self, url: str) -> "Tab":
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/json/new?{urllib.parse.quote(url, safe='')}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            return Tab(json.loads(response.read())["webSocketDebuggerUrl"])

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Tab:
    def __init__(self, ws_url: str) -> None:
        self.ws_url = ws_url
        self.ids = itertools.count(1)

    async def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-serialisable results only)."""
        async with websockets.connect(self.ws_url, max_size=2**24) as ws:
            call = next(self.ids)
            await ws.send(json.dumps({"id": call, "method": "Runtime.evaluate",
                                      "params": {"expression": expression, "returnByValue": True}}))
            while True:
                answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if answer.get("id") == call:
                    result = answer["result"]
                    if "exceptionDetails" in result:
                        raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
                    return result["result"].get("value")
