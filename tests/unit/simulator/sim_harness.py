"""Test helpers: `python -m simulator` as a subprocess on free ports, and a small Bybit client that rebuilds books."""
from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.support import ROOT

Op = dict[str, Any] | str | bytes   # an op for BookClient to encode, or text it sends as it is


def sim_env(**settings: Any) -> dict[str, str]:
    """This interpreter's environment minus any SIM_* of the developer's, plus `settings` as SIM_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SIM_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update({f"SIM_{k.upper()}": str(v) for k, v in settings.items()})
    return env


class Sim:
    """A running simulator: its URLs, and the control API as method calls."""

    def __init__(self, tmp: Path, **settings: Any) -> None:
        settings = {"host": "127.0.0.1", "port": 0, "control_port": 0, "log_level": "warning", **settings}
        self.stderr_path = tmp / f"simulator-{time.monotonic_ns()}.err"
        self._stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "simulator"], env=sim_env(**settings), cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline() if ready else ""
        assert line.startswith("simulator listening:"), f"did not start: {line!r} {self.stderr()}"
        words = line.split()
        self.ws_url = words[words.index("bybit") + 1]
        self.rest_url = words[words.index("rest") + 1]
        self.control_url = words[words.index("control") + 1]
        self.port = int(self.rest_url.rsplit(":", 1)[1])

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._stderr.close()

    def call(self, method: str, path: str, **params: Any) -> tuple[int, dict[str, Any]]:
        """The control API (or REST, for a path under /v5): status and JSON body."""
        base = self.rest_url if path.startswith("/v5/") else self.control_url
        url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        status, body = self.call("GET", path, **params)
        assert status == 200, body
        return body

    def post(self, path: str, **params: Any) -> dict[str, Any]:
        status, body = self.call("POST", path, **params)
        assert status == 200, body
        return body


def truth(sim: Sim, symbol: str, depth: int) -> dict[str, list[list[float]]]:
    """The simulator's own book, its best `depth` levels a side, in the shape of BookClient.book."""
    book = sim.get("/control/book", symbol=symbol, depth=depth)
    return {"bids": book["bids"], "asks": book["asks"]}


class BookClient:
    """A minimal Bybit v5 client: a book per orderbook topic from its snapshot and deltas, `u`
    checked; all else is kept for the tests to look at: replies, trades, frames it could not use."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.books: dict[str, tuple[dict[float, float], dict[float, float]]] = {}
        self.u: dict[str, int] = {}
        self.gaps: list[tuple[str, int, int]] = []         # (topic, previous u, received u)
        self.kinds: Counter[tuple[str, str]] = Counter()   # (topic, snapshot|delta) received
        self.snapshot_us: dict[str, list[int]] = {}
        self.widest: dict[str, int] = {}                   # the most levels a side ever held, per topic
        self.trades: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any]] = []
        self.unusable: list[str] = []                       # undecodable, unknown topic, or missing fields
        self.raw: list[str] = []

    @classmethod
    async def open(cls, url: str, *topics: str) -> BookClient:
        """A client connected to `url`, and subscribed to `topics` if any are given."""
        # An unbounded queue: a test that stops reading for a while must not stall the close handshake.
        client = cls(await connect(url, open_timeout=10, max_queue=None))
        if topics:
            reply = await client.subscribe(*topics)
            assert reply["success"] is True and reply["op"] == "subscribe", reply
        return client

    async def send(self, message: Op) -> None:
        """Send an op; a str or bytes as it is, so a test can send what no encoder would."""
        await self.ws.send(message if isinstance(message, (str, bytes)) else json.dumps(message))

    async def request(self, message: Op, timeout: float = 10) -> dict[str, Any]:
        """Send an op and wait for its reply (whatever else arrives meanwhile is applied as usual)."""
        seen = len(self.replies)
        await self.send(message)
        await self.until(lambda: len(self.replies) > seen, timeout)
        return self.replies[seen]

    async def subscribe(self, *topics: str) -> dict[str, Any]:
        return await self.request({"op": "subscribe", "req_id": "sub-" + "-".join(topics), "args": list(topics)})

    async def more(self, topic: str, count: int, kind: str = "delta") -> None:
        """Receive until `count` more messages of `kind` on `topic` are applied."""
        target = self.kinds[topic, kind] + count
        await self.until(lambda: self.kinds[topic, kind] >= target)

    async def until(self, done: Any, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; u={self.u} kinds={dict(self.kinds)} gaps={self.gaps}"
            self.apply(await asyncio.wait_for(self.ws.recv(), left))

    def apply(self, raw: str | bytes) -> None:
        text = raw if isinstance(raw, str) else raw.decode()
        self.raw.append(text)
        try:
            message = json.loads(text)
        except ValueError:
            self.unusable.append(text)
            return
        topic = message.get("topic")
        if topic is None:
            self.replies.append(message)
        elif topic.startswith("orderbook.") and (message.get("type") == "snapshot" or topic in self.u):
            self._book(topic, message, text)
        elif topic.startswith("publicTrade."):
            self.trades.extend(message["data"])
        else:
            self.unusable.append(text)

    def _book(self, topic: str, message: dict[str, Any], text: str) -> None:
        data = message.get("data", {})
        if not all(key in data for key in ("b", "a", "u", "seq")) or "cts" not in message:
            self.unusable.append(text)
            return
        u = data["u"]
        if message["type"] == "snapshot":
            bids, asks = {}, {}
            self.books[topic] = (bids, asks)
            self.snapshot_us.setdefault(topic, []).append(u)
        else:
            if u != self.u[topic] + 1:
                self.gaps.append((topic, self.u[topic], u))
            bids, asks = self.books[topic]
        for side, entries in ((bids, data["b"]), (asks, data["a"])):
            for price, size in entries:
                if float(size) == 0:
                    side.pop(float(price), None)
                else:
                    side[float(price)] = float(size)
        self.u[topic] = u
        self.kinds[topic, message["type"]] += 1
        self.widest[topic] = max(self.widest.get(topic, 0), len(bids), len(asks))

    def book(self, topic: str) -> dict[str, list[list[float]]]:
        bids, asks = self.books[topic]
        return {"bids": [[p, s] for p, s in sorted(bids.items(), reverse=True)],
                "asks": [[p, s] for p, s in sorted(asks.items())]}

    async def close(self) -> None:
        await self.ws.close()
