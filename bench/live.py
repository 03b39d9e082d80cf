"""Benchmark: the live path's end-to-end latency and highest loss-free rate, with cryptofeed as the anchor.

Run with .venv/bin/python bench/live.py after `./hftlive images` (needs hftlive/{simulator,connector,service}).
One compose project (`--profile live --profile sim`, a private name, env file and ports) runs the Bybit
simulator over TLS (a throwaway certificate made with openssl at run time), our connector and the service. In the
same run, on this host, two consumers in their own processes take the same simulator feed:
  service     a WebSocket client of the service's /v1/stream
              (simulator → connector → iceoryx2 IPC → hftbacktest bot → service → client)
  cryptofeed  cryptofeed's Bybit feed subscribed straight to the simulator (simulator → cryptofeed), the anchor
The simulator's rate (order-book actions per second, SIM_RATE) is ramped through --rates, one window of --seconds
each, paused at both ends so that every trade the simulator sent in a window can be counted at each consumer.

Printed per rate and consumer: trades received against trades sent (`/control/trades` `sent`) and against what
the service itself took in (its hftlive_events_in_total, to tell a loss before the service from one after it),
seq gaps and closed connections, latency percentiles for trades and book updates, and the trade latency's drift
through the window (median of the last tenth minus the first: a growing backlog); then service/cryptofeed latency
ratios, the CPU each container and consumer used, and the highest rate each consumer sustained without loss.

What the latency is: receive time (this host's clock) minus the exchange time the consumer reports, i.e. the
`T` (trades) or `cts`/`ts` (books) the simulator wrote, in MILLISECONDS. So:
  * resolution is 1 ms; truncating the send time to ms adds 0-1 ms (0.5 ms on average) to both consumers alike;
  * the simulator stamps each 10 ms model step before computing it, then sends its trades at once and its book
    pushes (orderbook.50 every 20 ms for the connector, orderbook.200 every 100 ms for cryptofeed) with the stamp
    of the step just before the push: latency includes the step's compute and encoding and, for books, not the
    time a change waited for its push (the simulator's push interval is outside what either consumer can see);
  * the service's delta carries the bot's newest feed time and is emitted once the bot process has drained the
    events waiting for it (at most 5 ms into a feed that never pauses); trades are the cleaner comparison.
The service path is also split per hop at the connector's receive time (its local_ts, nanoseconds on this
host's clock): exchange → connector and connector → client, in microseconds.
At microsecond resolution, with no truncation: the simulator records when it began writing each trade message to
each named client's socket (`/control/sent?client=NAME`, by the message's T; every consumer here names itself in its
URL, the service's path by its connector), and each consumer's trades are timed from its own write; the goals table
uses this. (Timed from the earliest write among clients, a consumer written later was charged the writes before its
own, and the simulator's write order changes from run to run.) Inside the path, the connector's and the service's
/metrics histograms give each hop per window.
With --floor, a third consumer measures the floor of any design that serves the feed to a client process: a relay
process takes the simulator's stream and passes each message on unread to its own WebSocket client (sim → relay →
client, one hop more than the anchor and no work in it); the goals table then also prints relay / anchor.
Consumers and containers share the host's cores (two here): the numbers are this machine's, not the design's.
Stops by itself: every window is bounded, the run has a time budget, the compose project is always removed.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # run as a script: the repository's packages (cli, service) from here on

from bench.service import bucket_quantile, events_in, histograms  # noqa: E402
from cli.compose import Failed, Project  # noqa: E402
from cli.images import FACTS, present, tag  # noqa: E402

SERVICES = ("simulator", "connector", "service")   # each runs its own image, hftlive/<service>
SYMBOL = "BTCUSDT"
TLS_DIR = "/run/hftlive-bench-tls"     # where the certificate directory is mounted in the containers
CLIENT_BUFFER = 8192                   # the service's per-client queue: a consumer on a busy 2-core host lags in bursts
UP_TIMEOUT_S = 150
SIM_PORT = int(FACTS["HFTLIVE_SIMULATOR_PORT"])   # the simulator's stream inside its container
SIM_CONTROL_PORT = int(FACTS["HFTLIVE_SIMULATOR_CONTROL_PORT"])   # and its controls
# What a raw client on the simulator (the raw anchor, the relay) subscribes to: the connector's topics.
RAW_SUBSCRIBE = {"op": "subscribe", "args": [f"publicTrade.{SYMBOL}", f"orderbook.50.{SYMBOL}"]}
SIM_CLIENTS = {"service": "connector"}   # the simulator's client on each consumer's path, where not the consumer
KEEPING_UP_MS = 10.0                   # trade latency may drift this much through a window and still count as kept up


# --- the consumers (each in its own process; the main process asks them over a pipe) -------------------------

class Tally:
    """What a consumer saw since the last `take`: trade and book latencies (ns), gaps and cuts."""

    def __init__(self) -> None:
        self.ready = False
        self.error: str | None = None
        self.reset()

    def reset(self) -> None:
        self.trade_ns: list[int] = []
        self.book_ns: list[int] = []
        self.hops: list[tuple[int, int]] = []   # service trades: (connector - exchange, client - connector) ns
        # per trade: (its T in ms, receive time ns, the connector's receive time ns or 0), matched after the window
        # with the simulator's send time of that T (/control/sent) for a latency at microsecond resolution
        self.arrivals: list[tuple[int, int, int]] = []
        self.gaps = 0               # seq jumps (service)
        self.cuts: list[int] = []   # close codes of lost connections

    def peek(self) -> dict:
        return {"trades": len(self.trade_ns), "books": len(self.book_ns), "ready": self.ready,
                "error": self.error}

    def take(self) -> dict:
        out = {**self.peek(), "trade_ns": self.trade_ns, "book_ns": self.book_ns, "hops": self.hops, "gaps": self.gaps,
               "cuts": self.cuts, "arrivals": self.arrivals}
        self.reset()
        return out

    async def serve(self, conn) -> None:
        """Answer the main process's `peek` / `take` / `cpu` on the event loop, between messages,
        until it says `stop`."""
        stop = asyncio.Event()
        # cpu: this consumer's CPU seconds, every thread
        answers = {"peek": self.peek, "take": self.take, "cpu": time.process_time}

        def on_command() -> None:
            while conn.poll():
                command = conn.recv()
                if command in answers:
                    conn.send(answers[command]())
                else:
                    stop.set()
                    conn.send(None)

        asyncio.get_running_loop().add_reader(conn.fileno(), on_command)
        await stop.wait()


def websocket_consumer(url: str, reader, subscribe: dict | None, ca_file: str | None, conn) -> None:
    """Follow one WebSocket until the main process says stop, reconnecting after a loss;
    `reader(tally)` makes each connection's read(receive time in ns, message)."""
    import websockets

    tally = Tally()
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None

    async def follow() -> None:
        while True:
            try:
                async with websockets.connect(url, ssl=context, max_size=2**24) as ws:
                    if subscribe:
                        await ws.send(json.dumps(subscribe))
                    read = reader(tally)
                    async for text in ws:
                        read(time.time_ns(), json.loads(text))
            except websockets.ConnectionClosed as closed:
                tally.cuts.append(closed.rcvd.code if closed.rcvd else 1006)
            except OSError as exc:
                tally.error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.5)

    async def main() -> None:
        task = asyncio.create_task(follow())
        await tally.serve(conn)
        task.cancel()

    asyncio.run(main())


def service_reader(tally: Tally):
    """One connection to the service: every message parsed, seq checked, latency = now - exch_ts.

    Raw websockets, not the product's StreamClient: loss is what is measured, and StreamClient
    repairs a seq gap by reconnecting for a fresh snapshot (hiding the gap, losing more meanwhile);
    its validation and book would also add its own CPU to every latency on this 2-core host."""
    last, seen = None, set()   # this connection's last seq, and the kinds it delivered

    def read(now: int, message: dict) -> None:
        nonlocal last
        kind = message["type"]
        if kind == "status":
            return
        if last is not None and message["seq"] != last + 1:
            tally.gaps += 1
        last = message["seq"]
        if kind == "trade":
            tally.trade_ns.append(now - message["exch_ts"])
            # local_ts is the connector's receive time (ns, this host's clock): the hops either side of it.
            tally.hops.append((message["local_ts"] - message["exch_ts"], now - message["local_ts"]))
            tally.arrivals.append((message["exch_ts"] // 1_000_000, now, message["local_ts"]))
        elif kind == "delta":
            tally.book_ns.append(now - message["exch_ts"])
        seen.add(kind)
        tally.ready = tally.ready or {"trade", "delta"} <= seen

    return read


def raw_reader(tally: Tally):
    """One connection of the fallback anchor, a plain websockets client on the simulator."""

    def read(now: int, message: dict) -> None:
        topic = message.get("topic", "")
        if topic.startswith("publicTrade."):
            tally.trade_ns.extend(now - trade["T"] * 1_000_000 for trade in message["data"])
            tally.arrivals.extend((trade["T"], now, 0) for trade in message["data"])
        elif topic.startswith("orderbook.") and message["type"] == "delta":
            tally.book_ns.append(now - message["cts"] * 1_000_000)
        tally.ready = tally.ready or bool(tally.trade_ns and tally.book_ns)

    return read


def cryptofeed_consumer(ws_url: str, rest_url: str, ca_file: str, conn) -> None:
    """cryptofeed's Bybit feed (L2_BOOK + TRADES) on the simulator; latency = receipt time - its reported timestamp."""
    os.environ["REQUESTS_CA_BUNDLE"] = ca_file   # cryptofeed reads the instruments with requests
    import logging

    from cryptofeed.connection import RestEndpoint, WebsocketEndpoint
    from cryptofeed.defines import FUTURES, L2_BOOK, PERPETUAL, TRADES
    from cryptofeed.exchanges import Bybit

    logging.getLogger("feedhandler").setLevel(logging.ERROR)
    tally = Tally()

    class SimBybit(Bybit):
        # cryptofeed accepts only wss:// and reads its endpoints from these class attributes: the linear stream and
        # Bybit's own instrument routes moved to the simulator; everything else is cryptofeed's Bybit code.
        websocket_endpoints = [WebsocketEndpoint(
            ws_url, instrument_filter=("TYPE", (FUTURES, PERPETUAL)),
            channel_filter=(Bybit.websocket_channels[L2_BOOK], Bybit.websocket_channels[TRADES]),
            options={"compression": None, "ssl": ssl.create_default_context(cafile=ca_file)})]
        rest_endpoints = [RestEndpoint(rest_url, routes=Bybit.rest_endpoints[0].routes)]

    async def on_trade(trade, receipt: float) -> None:
        tally.trade_ns.append(int((receipt - float(trade.timestamp)) * 1e9))
        tally.arrivals.append((round(float(trade.timestamp) * 1000), int(receipt * 1e9), 0))
        tally.ready = tally.ready or bool(tally.book_ns)

    async def on_book(book, receipt: float) -> None:
        if book.delta is None:   # the snapshot on subscribe
            return
        tally.book_ns.append(int(receipt * 1e9) - int(book.timestamp) * 1_000_000)   # Bybit's `ts`, in ms
        tally.ready = tally.ready or bool(tally.trade_ns)

    async def main() -> None:
        feed = SimBybit(symbols=["BTC-USDT-PERP"], channels=[L2_BOOK, TRADES],
                        callbacks={L2_BOOK: on_book, TRADES: on_trade})
        try:
            feed.start(asyncio.get_running_loop())
        except Exception as exc:  # reported through peek: the main process then says why and falls back
            tally.error = f"{type(exc).__name__}: {exc}"
        await tally.serve(conn)
        feed.stop()
        await feed.shutdown()

    asyncio.run(main())


def relay_server(url: str, ca_file: str, conn) -> None:
    """The floor of any design that serves the feed to a client process: one process takes the simulator's stream
    and passes each message on, unparsed (no JSON, no book, no second process), to the clients of a WebSocket
    server on 127.0.0.1, whose port it sends on `conn`. One hop more than the anchor, with nothing done in it."""
    import websockets
    from websockets.asyncio.server import broadcast, serve

    clients: set = set()

    async def client(ws) -> None:
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    async def main() -> None:
        async with serve(client, "127.0.0.1", 0, compression=None) as server:
            conn.send(server.sockets[0].getsockname()[1])
            context = ssl.create_default_context(cafile=ca_file)
            while True:
                try:
                    async with websockets.connect(url, ssl=context, max_size=2**24, compression=None) as ws:
                        await ws.send(json.dumps(RAW_SUBSCRIBE))
                        async for text in ws:
                            broadcast(clients, text)
                except (websockets.ConnectionClosed, OSError):
                    await asyncio.sleep(0.5)

    asyncio.run(main())


class Relay:
    """The relay's server process, seen from the main process (its client is an ordinary Consumer)."""

    def __init__(self, project: LiveBench) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.proc = context.Process(target=relay_server, args=(project.sim_url("relay"), project.ca, child),
                                    daemon=True, name="bench-relay")
        self.proc.start()
        if not self.conn.poll(30):
            self.stop()
            raise SystemExit("the relay's server did not start within 30 s")
        self.url = f"ws://127.0.0.1:{self.conn.recv()}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(5)


class Consumer:
    """A consumer process, seen from the main process."""

    def __init__(self, name: str, target, *args) -> None:
        context = multiprocessing.get_context("spawn")
        self.name = name
        self.conn, child = context.Pipe()
        self.proc = context.Process(target=target, args=(*args, child), daemon=True, name=f"bench-{name}")
        self.proc.start()

    def ask(self, command: str, timeout: float = 20.0):
        self.conn.send(command)
        if not self.conn.poll(timeout):
            raise RuntimeError(f"the {self.name} consumer did not answer {command!r} within {timeout:.0f} s")
        return self.conn.recv()

    def stop(self) -> None:
        if self.proc.is_alive():
            try:
                self.ask("stop", timeout=10)
            except (RuntimeError, OSError):
                pass
            self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


def start_consumer(name: str, project: LiveBench) -> Consumer:
    """The service's consumer, or an anchor on the simulator: cryptofeed or raw."""
    if name == "service":
        stream = f"{project.service_url.replace('http', 'ws', 1)}/v1/stream?symbols={SYMBOL}"
        return Consumer(name, websocket_consumer, stream, service_reader, None, None)
    if name == "cryptofeed":
        return Consumer(name, cryptofeed_consumer, project.sim_url(name), project.sim_rest, project.ca)
    return Consumer(name, websocket_consumer, project.sim_url(name), raw_reader, RAW_SUBSCRIBE, project.ca)


# --- the compose project ---------------------------------------------------------------------------------------

def run(command: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def make_tls(tmp: Path) -> Path:
    """A throwaway CA and a simulator certificate (DNS:simulator, IP:127.0.0.1) in the directory
    returned, which the containers mount (the CA key stays outside it). A CA plus a leaf: rustls
    (the connector) refuses a CA certificate as the server's own. World-readable: the simulator runs
    as UID 10001."""
    mounted = tmp / "tls"
    mounted.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (tmp / "leaf.ext").write_text("subjectAltName=DNS:simulator,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
                                  "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                                  "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    steps = [
        ["openssl", "req", "-x509", *ec, "-days", "1", "-subj", "/CN=hftlive-bench-ca",
         "-keyout", str(tmp / "ca.key"), "-out", str(mounted / "ca.pem")],
        ["openssl", "req", *ec, "-subj", "/CN=simulator", "-keyout", str(mounted / "key.pem"),
         "-out", str(tmp / "leaf.csr")],
        ["openssl", "x509", "-req", "-in", str(tmp / "leaf.csr"), "-CA", str(mounted / "ca.pem"),
         "-CAkey", str(tmp / "ca.key"), "-CAcreateserial", "-days", "1", "-extfile", str(tmp / "leaf.ext"),
         "-out", str(mounted / "cert.pem")],
    ]
    for step in steps:
        done = run(step)
        if done.returncode != 0:
            raise SystemExit(f"openssl failed making the throwaway certificate: {done.stderr.strip()}")
    mounted.chmod(0o755)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (mounted / name).chmod(0o644)
    return mounted


class LiveBench(Project):
    """compose.yaml's live + sim profiles through the product's runner, plus an override: the simulator on TLS,
    published, and the connector on it. Its ports are Docker's picks, read back once it is up."""

    def __init__(self, tmp: Path, tls: Path) -> None:
        mount = f"{tls}:{TLS_DIR}:ro"
        health = (f"import ssl, urllib.request; urllib.request.urlopen('https://127.0.0.1:{SIM_PORT}/v5/market/time', "
                  f"timeout=2, context=ssl.create_default_context(cafile='{TLS_DIR}/ca.pem'))")
        override = {"services": {
            "simulator": {
                "environment": {"SIM_TLS_CERT": f"{TLS_DIR}/cert.pem", "SIM_TLS_KEY": f"{TLS_DIR}/key.pem",
                                "SIM_TRADE_HISTORY": "1",   # /control/trades is read for `sent` only
                                # Loss is what is measured: a client behind at 100,000 actions/s is not cut.
                                "SIM_MAX_BACKLOG_BYTES": str(256 << 20)},
                "volumes": [mount],
                "ports": [f"127.0.0.1:0:{SIM_PORT}"],
                "healthcheck": {"test": ["CMD", "python", "-c", health]},
            },
            "connector": {
                "environment": {"BYBIT_PUBLIC_URL": f"wss://simulator:{SIM_PORT}/v5/public/linear"
                                                    f"?client={SIM_CLIENTS['service']}",
                                "BYBIT_REST_URL": f"https://simulator:{SIM_PORT}",
                                "SSL_CERT_FILE": f"{TLS_DIR}/ca.pem"},
                "volumes": [mount],
            },
        }}
        (tmp / "override.yaml").write_text(json.dumps(override, indent=2) + "\n")   # JSON is YAML
        super().__init__(["live", "sim"], name=f"hftlive-bench-{uuid.uuid4().hex[:8]}", files=[tmp / "override.yaml"],
                         wait_timeout=UP_TIMEOUT_S, settings={
                             "HFTLIVE_PORT": "0", "SIM_CONTROL_PORT": "0", "HFTLIVE_EXCHANGE": "simulator",
                             "SYMBOL": SYMBOL, "SIM_RATE": "1000", "SIM_SEED": "1", "LOG_LEVEL": "warning",
                             "CONNECTOR_LOG": "warn", "CLIENT_BUFFER": str(CLIENT_BUFFER),
                             # the simulator is paused between windows: the bot must not be rebuilt meanwhile
                             "LIVE_STALE_AFTER_S": "60", "LIVE_REBUILD_AFTER_S": "120"})
        self.ca = str(tls / "ca.pem")
        self.containers: dict[str, str] = {}

    def check_config(self) -> None:
        """The merged configuration really has the override (compose merges lists such as volumes by target)."""
        services = self.get_config()["services"]
        sim, connector = services["simulator"], services["connector"]
        problems = []
        if not any(v.get("target") == TLS_DIR and v.get("read_only") for v in sim.get("volumes", [])):
            problems.append("the simulator lacks the read-only certificate mount")
        if not any(v.get("target") == TLS_DIR for v in connector.get("volumes", [])):
            problems.append("the connector lacks the certificate mount")
        if not any(v.get("target") == "/tmp/iceoryx2" for v in connector.get("volumes", [])):
            problems.append("the connector lost its iceoryx2 volume")
        if not any(int(p.get("target", 0)) == SIM_PORT and p.get("host_ip") == "127.0.0.1"
                   for p in sim.get("ports", [])):
            problems.append(f"the simulator's {SIM_PORT} is not published on 127.0.0.1")
        if "https://" not in " ".join(sim["healthcheck"]["test"]):
            problems.append("the simulator's healthcheck is not https")
        if connector["environment"].get("BYBIT_PUBLIC_URL", "").startswith("wss://simulator") is False:
            problems.append("the connector is not pointed at wss://simulator")
        if problems:
            raise SystemExit("the compose override did not merge as expected: " + "; ".join(problems))

    def start(self) -> None:
        super().start()
        sim = self.published("simulator", SIM_PORT)
        self.service_url = f"http://{self.published()}"
        self.control_url = f"http://{self.published('simulator', SIM_CONTROL_PORT)}"
        self.sim_ws, self.sim_rest = f"wss://{sim}/v5/public/linear", f"https://{sim}"
        # The connector's control API (its /metrics) on the project's network, reached at the container's address.
        address = run(["docker", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                       self.container("connector")]).stdout.split()
        self.connector_url = f"http://{address[0]}:{FACTS['CONNECTOR_CONTROL_PORT']}" if address else None
        # Full container ids, to read their CPU time from the cgroup (cgroup v1 or v2, when visible here).
        for service in SERVICES:
            self.containers[service] = run(["docker", "inspect", "--format", "{{.Id}}",
                                            self.container(service)]).stdout.strip()

    def sim_url(self, client: str) -> str:
        """The simulator's stream for a consumer on this host, named so that it is timed from its own writes."""
        return f"{self.sim_ws}?client={client}"

    def cpu_s(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for service, cid in self.containers.items():
            out[service] = None
            for path, scale, key in ((f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage", 1e-9, None),
                                     (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat", 1e-6, "usage_usec"),
                                     (f"/sys/fs/cgroup/docker/{cid}/cpu.stat", 1e-6, "usage_usec")):
                try:
                    text = Path(path).read_text()
                except OSError:
                    continue
                if key is None:
                    out[service] = int(text) * scale
                else:
                    out[service] = next(int(line.split()[1]) for line in text.splitlines()
                                        if line.startswith(key)) * scale
                break
        return out


# --- the simulator's controls and the service's counters -------------------------------------------------------

def control(project: LiveBench, method: str, path: str) -> dict:
    request = urllib.request.Request(project.control_url + path, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def host_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole host, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def cpu_snapshot(project: LiveBench, consumers: list[Consumer]) -> dict:
    out: dict = dict(project.cpu_s())
    for consumer in consumers:
        out[f"client:{consumer.name}"] = consumer.ask("cpu")
    out["host"] = host_busy()
    out["t"] = time.monotonic()
    return out


def cpu_percent(before: dict, after: dict) -> dict[str, float | None]:
    """% of one core per container and consumer over the window; host = % of all cores busy."""
    elapsed = after["t"] - before["t"]
    out: dict[str, float | None] = {}
    for key, value in after.items():
        if key in ("t", "host"):
            continue
        out[key] = None if value is None or before.get(key) is None else 100 * (value - before[key]) / elapsed
    busy, total = after["host"][0] - before["host"][0], after["host"][1] - before["host"][1]
    out["host"] = 100 * busy / total if total else None
    return out


SERVICE_HOPS = (("receive_to_publish", "recv→iox"), ("connector_to_bot", "conn→bot"), ("bot_to_service", "bot→svc"),
                ("send_delay", "queue→write"))


def buckets(project: LiveBench) -> dict[str, dict[float, float]]:
    """The per-hop histograms (cumulative counts by upper bound, seconds), for SERVICE_HOPS: the connector's
    (trades only) from its control API's /metrics, the service's from its /metrics."""
    wanted = {hop for hop, _ in SERVICE_HOPS}

    def key(family: str, labels: dict) -> str | None:
        hop = "send_delay" if family == "hftlive_send_delay_seconds" else labels.get("hop")
        return hop if hop in wanted and labels.get("kind", "trade") == "trade" else None

    found: dict[str, dict[float, float]] = {hop: {} for hop in wanted}
    for url in (project.connector_url, project.service_url):
        if url is None:
            continue
        try:
            found.update(histograms(url, key))
        except OSError:   # shown as '-' in the table: the hop was not read
            continue
    return found


def sent_times(project: LiveBench, since_ms: int, client: str) -> dict[int, int]:
    """When the simulator began writing each trade message stamped after since_ms to the named client (ns), by its
    T (ms). Each client's own write: the simulator writes its clients one after another, in an order that changes
    from run to run, so the earliest write among them would charge whoever came later the writes before its own."""
    path = f"/control/sent?symbol={SYMBOL}&since_ms={since_ms}&client={client}"
    try:
        return {t: sent_ns for t, sent_ns in control(project, "GET", path)["sent"]}
    except urllib.error.HTTPError as error:
        if error.code == 404:   # that client was sent no trade in the window: nothing to time
            return {}
        raise


def sim_counts(project: LiveBench) -> tuple[int, int]:
    sent = control(project, "GET", f"/control/trades?symbol={SYMBOL}")["sent"]
    actions = control(project, "GET", "/control/stats")["actions"][SYMBOL]
    return sent, actions


# --- one window ------------------------------------------------------------------------------------------------

def settle(consumers: list[Consumer], expected: int | None, quiet_s: float, limit_s: float) -> None:
    """Wait until every consumer has `expected` trades, or nothing moved for quiet_s, at most limit_s."""
    deadline = time.monotonic() + limit_s
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        peeks = [c.ask("peek") for c in consumers]
        counts = [(p["trades"], p["books"]) for p in peeks]
        if expected is not None and all(t >= expected for t, _ in counts):
            return
        if counts != last:
            last, since = counts, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.1)


def window(project: LiveBench, consumers: list[Consumer], rate: int, seconds: float) -> dict:
    control(project, "POST", "/control/pause")
    settle(consumers, None, quiet_s=0.5, limit_s=3)
    for consumer in consumers:
        consumer.ask("take")   # what came before the window
    sent0, actions0 = sim_counts(project)
    in0 = events_in(project.service_url, "trade")   # the service's count: a loss before or after it
    hops0 = buckets(project)
    since_ms = time.time_ns() // 1_000_000   # the simulator is paused: every trade of the window is stamped later
    control(project, "POST", f"/control/rate?value={rate}")
    cpu0 = cpu_snapshot(project, consumers)
    control(project, "POST", "/control/resume")
    started = time.monotonic()
    time.sleep(seconds)
    control(project, "POST", "/control/pause")
    elapsed = time.monotonic() - started
    cpu = cpu_percent(cpu0, cpu_snapshot(project, consumers))
    sent1, actions1 = sim_counts(project)
    sent = sent1 - sent0
    settle(consumers, sent, quiet_s=1.5, limit_s=6)
    seen = {c.name: c.ask("take", timeout=60) for c in consumers}
    return {"rate": rate, "actions_s": (actions1 - actions0) / elapsed, "sent": sent,
            "service_in": events_in(project.service_url, "trade") - in0, "seen": seen, "cpu": cpu,
            "hops": (hops0, buckets(project)),
            "sent_at": {c.name: sent_times(project, since_ms, SIM_CLIENTS.get(c.name, c.name)) for c in consumers}}


# --- the report ------------------------------------------------------------------------------------------------

def quantile_ms(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))] / 1e6


def latency(values: list[int]) -> dict:
    ordered = sorted(values)
    return {"n": len(ordered), "p50": quantile_ms(ordered, 0.50), "p99": quantile_ms(ordered, 0.99),
            "p999": quantile_ms(ordered, 0.999), "mean": sum(ordered) / len(ordered) / 1e6 if ordered else float("nan")}


def drift_ms(values: list[int]) -> float:
    """Median latency of the window's last tenth minus its first tenth (arrival order): > 0 is a growing backlog."""
    tenth = len(values) // 10
    if tenth < 10:
        return float("nan")
    return quantile_ms(sorted(values[-tenth:]), 0.5) - quantile_ms(sorted(values[:tenth]), 0.5)


def lost(row: dict, name: str) -> int:
    return max(0, row["sent"] - row["seen"][name]["trades"])


def clean(row: dict, name: str) -> bool:
    seen = row["seen"][name]
    return lost(row, name) == 0 and seen["gaps"] == 0 and not seen["cuts"] and row["sent"] > 0


def print_rows(row: dict, names: list[str]) -> None:
    for i, name in enumerate(names):
        seen = row["seen"][name]
        t, b = latency(seen["trade_ns"]), latency(seen["book_ns"])
        lead = (f"{row['rate']:>7} {row['actions_s']:>9.0f} {row['sent']:>7}" if i == 0 else " " * 25)
        service_in = f"{row['service_in']:>7.0f}" if name == "service" else f"{'-':>7}"
        gaps = f"{seen['gaps']:>5}" if name == "service" else f"{'-':>5}"
        cut = f"{'-':>4}" if name == "cryptofeed" else f"{len(seen['cuts']):>4}"   # cryptofeed reconnects silently
        print(f"{lead} {name:<10} {service_in} {seen['trades']:>7} {lost(row, name):>6} {gaps} {cut} | "
              f"{t['n']:>8} {t['p50']:>6.2f} {t['p99']:>6.2f} {t['p999']:>6.2f} {t['mean']:>6.2f} "
              f"{drift_ms(seen['trade_ns']):>6.1f} | "
              f"{b['n']:>7} {b['p50']:>6.2f} {b['p99']:>6.2f} {b['p999']:>6.2f} {b['mean']:>6.2f}", flush=True)


def ratio(a: float, b: float) -> str:
    return f"{a / b:>6.2f}" if b and b == b and a == a else f"{'-':>6}"


def hop_report(rows: list[dict]) -> None:
    """The service path's trade latency split at the connector's receive time, in microseconds."""
    print("\nservice path per hop, trades, µs: exchange → connector (the exchange stamps whole ms, so this hop "
          "carries the 0-1 ms truncation) and connector → client\n(iceoryx2, the bot process, the pipe, the web "
          "process, the WebSocket); service /metrics has connector → service as hftlive_hop_seconds:")
    print(f"{'rate/s':>7} | {'exch→conn p50':>13} {'p99':>8} | {'conn→client p50':>15} {'p99':>8} {'p99.9':>8} | "
          f"{'total p50':>9} {'p99':>8}")
    for row in rows:
        hops = row["seen"]["service"]["hops"]
        if not hops:
            continue
        first = sorted(h[0] for h in hops)
        second = sorted(h[1] for h in hops)
        total = sorted(h[0] + h[1] for h in hops)

        def us(values: list[int], q: float) -> str:
            return f"{quantile_ms(values, q) * 1e3:>8.0f}"
        print(f"{row['rate']:>7} | {us(first, 0.5):>13} {us(first, 0.99)} | {us(second, 0.5):>15} {us(second, 0.99)} "
              f"{us(second, 0.999)} | {us(total, 0.5):>9} {us(total, 0.99)}")
    print("\n... and connector → client split inside the connector and the service, from their /metrics histograms "
          "over each window (the bucket\nholding the quantile, upper bound, µs): recv→iox = the connector's receive to "
          "the event handed to iceoryx2; conn→bot = that, iceoryx2\nand the bot's drain and read; "
          "bot→svc = the pipe to the web process and its\nevent loop; queue→write = a client's queue to the socket "
          "write (the rest of conn→client is the client's own receive):")
    print(f"{'rate/s':>7} | " + " | ".join(f"{label + ' p50':>15} {'p99':>7}" for _, label in SERVICE_HOPS))
    for row in rows:
        before, after = row["hops"]
        cells = []
        for hop, _ in SERVICE_HOPS:
            p50, p99 = (bucket_quantile(before[hop], after[hop], q) * 1e6 for q in (0.5, 0.99))
            cells.append(f"{'≤' + format(p50, '.0f'):>15} {'≤' + format(p99, '.0f'):>7}" if p50 == p50
                         else f"{'-':>15} {'-':>7}")
        print(f"{row['rate']:>7} | " + " | ".join(cells))


def from_send(row: dict, name: str) -> tuple[list[int], list[int], int]:
    """A consumer's trades timed from the simulator's send (ns): (client receive - send, connector receive - send for
    the service, trades whose T has no send time)."""
    sent = row["sent_at"][name]
    total, to_connector, unmatched = [], [], 0
    for t, received, local in row["seen"][name]["arrivals"]:
        at = sent.get(t)
        if at is None:
            unmatched += 1
            continue
        total.append(received - at)
        if local:
            to_connector.append(local - at)
    return total, to_connector, unmatched


def send_report(rows: list[dict], anchor: str) -> None:
    """Trade latency at microsecond resolution: from the simulator's socket write to each consumer."""
    print("\ntrades timed from the simulator's send (its write of the message to that consumer's socket, the "
          "connector's for the service; /control/sent), µs:\nsim→client for both consumers, and the service path's "
          "first hop sim→conn (the connector's receive time); unmatched = trades whose T had no send time:")
    print(f"{'rate/s':>7} | {'service p50':>11} {'p99':>7} | {anchor + ' p50':>14} {'p99':>7} | {'ratio p50':>9} "
          f"{'p99':>6} | {'sim→conn p50':>12} {'p99':>7} | unmatched")
    for row in rows:
        ours, first, ours_left = from_send(row, "service")
        theirs, _, theirs_left = from_send(row, anchor)
        a, b, c = latency(ours), latency(theirs), latency(first)
        print(f"{row['rate']:>7} | {a['p50'] * 1e3:>11.0f} {a['p99'] * 1e3:>7.0f} | {b['p50'] * 1e3:>14.0f} "
              f"{b['p99'] * 1e3:>7.0f} | {ratio(a['p50'], b['p50']):>9} {ratio(a['p99'], b['p99'])} | "
              f"{c['p50'] * 1e3:>12.0f} {c['p99'] * 1e3:>7.0f} | {ours_left}/{theirs_left}")


def loss_free(rows: list[dict], name: str) -> tuple[dict | None, dict | None]:
    """(the highest window before the consumer's first loss, that first lossy window)."""
    first_bad = next((r for r in rows if not clean(r, name)), None)
    good = [r for r in rows if clean(r, name) and (first_bad is None or r["rate"] < first_bad["rate"])]
    return (good[-1] if good else None), first_bad


def goals(rows: list[dict], anchor: str) -> None:
    """Issue 13's table: each goal, both consumers' figures from this run, their ratio, and whether it is met."""
    by_rate = {r["rate"]: r for r in rows}

    def trades(rate: int, name: str, q: str) -> float:
        row = by_rate.get(rate)
        return latency(from_send(row, name)[0])[q] if row else float("nan")
    def lines(name: str) -> list[tuple[str, float, float, float]]:
        """(metric, the consumer's figure, the anchor's, their ratio) for each latency goal."""
        points = [(f"trades p50 at {rate:,}/s, ms", rate, "p50") for rate in (1000, 10000)]
        points.append(("trades p99 at 10,000/s, ms", 10000, "p99"))
        out = []
        for metric, rate, q in points:
            ours, theirs = trades(rate, name, q), trades(rate, anchor, q)
            out.append((metric, ours, theirs, ours / theirs if theirs and theirs == theirs and ours == ours
                        else float("nan")))
        return out
    print(f"\ngoals (service / {anchor}, this run; latency from the simulator's send):")
    print(f"{'metric':<44} {'service':>9} {anchor:>10} {'ratio':>6} {'goal':>7}  met")
    for metric, ours, theirs, r in lines("service"):
        print(f"{metric:<44} {ours:>9.2f} {theirs:>10.2f} {r:>6.2f} {'≤ 1.00':>7}  {'yes' if r <= 1.0 else 'no'}")
    if rows and "relay" in rows[0]["seen"]:
        print(f"... and the floor of any served design, this run: a relay that passes the simulator's messages on "
              f"unread (sim → relay → client) / {anchor}:")
        for metric, ours, theirs, r in lines("relay"):
            print(f"  {metric:<42} {ours:>9.2f} {theirs:>10.2f} {r:>6.2f}")
    (ours, _), (theirs, theirs_bad) = loss_free(rows, "service"), loss_free(rows, anchor)
    a, b = (ours["rate"] if ours else 0), (theirs["rate"] if theirs else 0)
    ceiling = "" if theirs_bad else f" ({anchor} lost nothing: its ceiling is higher)"
    print(f"{'highest loss-free rate, actions/s':<44} {a:>9} {b:>10} {a / b if b else float('nan'):>6.2f} "
          f"{'≥ 1.00':>7}  {'yes' if b and a >= b else 'no'}{ceiling}")


def report(rows: list[dict], anchor: str) -> None:
    hop_report(rows)
    send_report(rows, anchor)
    print(f"\nservice / {anchor} latency (ratio of the same statistic in the same window):")
    print(f"{'rate/s':>7} | {'trades p50':>10} {'p99':>6} {'p99.9':>6} {'mean':>6} | {'books p50':>9} {'p99':>6} "
          f"{'p99.9':>6} {'mean':>6}")
    for row in rows:
        s_t, a_t = latency(row["seen"]["service"]["trade_ns"]), latency(row["seen"][anchor]["trade_ns"])
        s_b, a_b = latency(row["seen"]["service"]["book_ns"]), latency(row["seen"][anchor]["book_ns"])
        print(f"{row['rate']:>7} | {ratio(s_t['p50'], a_t['p50']):>10} {ratio(s_t['p99'], a_t['p99'])} "
              f"{ratio(s_t['p999'], a_t['p999'])} {ratio(s_t['mean'], a_t['mean'])} | "
              f"{ratio(s_b['p50'], a_b['p50']):>9} {ratio(s_b['p99'], a_b['p99'])} "
              f"{ratio(s_b['p999'], a_b['p999'])} {ratio(s_b['mean'], a_b['mean'])}")
    print("\nCPU over each window, % of one core (host: % of all cores busy, anything else on it included):")
    columns = [("simulator", "simulator"), ("connector", "connector"), ("service", "service"),
               ("client:service", "svc client"), (f"client:{anchor}", anchor), ("host", "host")]
    print(f"{'rate/s':>7} | " + " ".join(f"{label:>10}" for _, label in columns))
    for row in rows:
        cells = [row["cpu"].get(key) for key, _ in columns]
        print(f"{row['rate']:>7} | " + " ".join(f"{c:>10.0f}" if c is not None else f"{'-':>10}" for c in cells))
    print("\nhighest rate sustained without loss (every trade sent arrived, no seq gap, no cut), this ramp:")
    for name in ("service", anchor):
        best, first_bad = loss_free(rows, name)
        shown = f"{best['rate']:>7} actions/s set ({best['actions_s']:.0f}/s measured)" if best else "none"
        after = (f"; first loss at {first_bad['rate']}/s: {lost(first_bad, name)} trades lost, "
                 f"{first_bad['seen'][name]['gaps']} gaps, cuts {first_bad['seen'][name]['cuts']}"
                 if first_bad else "; no loss at any rate tried (raise --rates)")
        print(f"  {name:<10} {shown}{after}")
    print(f"... and also without a growing backlog (trade latency drift through the window under {KEEPING_UP_MS:g} ms):")
    for name in ("service", anchor):
        first_bad = next((r for r in rows if not clean(r, name) or not drift_ms(r["seen"][name]["trade_ns"])
                          < KEEPING_UP_MS), None)
        good = [r for r in rows if first_bad is None or r["rate"] < first_bad["rate"]]
        shown = f"{good[-1]['rate']:>7} actions/s set ({good[-1]['actions_s']:.0f}/s measured)" if good else "none"
        after = (f"; at {first_bad['rate']}/s: drift {drift_ms(first_bad['seen'][name]['trade_ns']):.1f} ms, "
                 f"{lost(first_bad, name)} trades lost" if first_bad else "; kept up at every rate tried")
        print(f"  {name:<10} {shown}{after}")
    goals(rows, anchor)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="1000,2000,5000,10000,20000,50000,100000",
                        help="SIM_RATE ramp (order-book actions per second), ascending")
    parser.add_argument("--latency-rates", default="1000,10000",
                        help="rates measured even after a loss (the latency points the issue asks for)")
    parser.add_argument("--seconds", type=float, default=8.0, help="window length (at most 10)")
    parser.add_argument("--budget", type=float, default=330.0, help="stop ramping after this many seconds in all")
    parser.add_argument("--anchor", choices=("cryptofeed", "raw"), default="cryptofeed",
                        help="cryptofeed, or a plain websockets client on the simulator")
    parser.add_argument("--floor", action="store_true",
                        help="also run a relay that passes the simulator's messages on unread, and its client: the "
                             "floor of any design that serves the feed to another process (one more process pair "
                             "on the shared cores)")
    args = parser.parse_args()
    if not 0 < args.seconds <= 10:
        raise SystemExit("--seconds: give 0 to 10")
    rates = [int(r) for r in args.rates.split(",")]
    must = {int(r) for r in args.latency_rates.split(",")}
    missing = [tag(service) for service in SERVICES if not present(service)]
    if missing:
        raise SystemExit(f"missing images {', '.join(missing)}: run ./hftlive images first")
    started = time.monotonic()
    consumers: list[Consumer] = []
    relay: Relay | None = None
    anchor = args.anchor
    note = ""
    with tempfile.TemporaryDirectory(prefix="hftlive-bench-") as tmp_name:
        tmp = Path(tmp_name)
        project = LiveBench(tmp, make_tls(tmp))
        project.check_config()
        try:
            print(f"starting compose project {project.name} (live + sim, simulator on TLS) …", flush=True)
            try:
                project.start()
            except Failed as error:
                raise SystemExit(str(error)) from None
            consumers += [start_consumer("service", project), start_consumer(anchor, project)]
            if args.floor:
                relay = Relay(project)
                consumers.append(Consumer("relay", websocket_consumer, relay.url, raw_reader, None, None))
            deadline = time.monotonic() + 60
            while True:
                peeks = {c.name: c.ask("peek") for c in consumers}
                if all(p["ready"] for p in peeks.values()):
                    break
                if time.monotonic() > deadline:
                    if anchor == "cryptofeed" and peeks["service"]["ready"] and not peeks["cryptofeed"]["ready"]:
                        note = (f"cryptofeed never delivered trades and books from the simulator "
                                f"({peeks['cryptofeed']['error'] or 'no error reported'}): "
                                "the anchor is a plain websockets client instead")
                        print(note, flush=True)
                        dead = next(c for c in consumers if c.name == "cryptofeed")
                        consumers.remove(dead)
                        dead.stop()
                        anchor = "raw"
                        consumers.append(start_consumer(anchor, project))
                        deadline = time.monotonic() + 30
                        continue
                    raise SystemExit(f"the consumers did not start receiving within 60 s: {peeks}")
                time.sleep(0.5)
            names = [c.name for c in consumers]
            print("\nlive path: simulator (TLS) → connector → iceoryx2 → hftbacktest bot → service → WebSocket client;"
                  f"\nanchor: {anchor} on the same simulator. {args.seconds:g} s windows, paused at both ends; "
                  f"symbol {SYMBOL}; service CLIENT_BUFFER={CLIENT_BUFFER}; consumers in their own processes on "
                  f"this {multiprocessing.cpu_count()}-core host, beside the containers.\n"
                  "Latency = receive time - exchange time (Bybit T / cts / ts, whole ms): 1 ms resolution, +0-1 ms "
                  "truncation on both paths; book latency\nexcludes the simulator's push interval (see the "
                  "docstring).\n")
            print("rate/s = SIM_RATE set; actions/s = measured; sent = trades the simulator sent in the window; "
                  "svc in = trades the service took from the bot;\nrecv/lost = trades the consumer got / missed; "
                  "gaps = service seq jumps; cut = closed connections. Latencies in ms.\n")
            print(f"{'rate/s':>7} {'actions/s':>9} {'sent':>7} {'consumer':<10} {'svc in':>7} "
                  f"{'recv':>7} {'lost':>6} {'gaps':>5} {'cut':>4} | {'trades n':>8} {'p50':>6} "
                  f"{'p99':>6} {'p99.9':>6} {'mean':>6} {'drift':>6} | {'books n':>7} {'p50':>6} "
                  f"{'p99':>6} {'p99.9':>6} {'mean':>6}", flush=True)
            rows: list[dict] = []
            for rate in rates:
                spent = time.monotonic() - started
                if spent + args.seconds + 12 > args.budget:
                    print(f"(time budget: stopping the ramp before {rate}/s)")
                    break
                if any(not clean(r, "service") for r in rows) and rate not in must:
                    continue   # past the service's first loss: only the latency points are still wanted
                row = window(project, consumers, rate, args.seconds)
                rows.append(row)
                print_rows(row, names)
            report(rows, anchor)
            if note:
                print(f"\nnote: {note}")
        finally:
            for consumer in consumers:
                consumer.stop()
            if relay is not None:
                relay.stop()
            project.stop()
    print(f"\n(whole run {time.monotonic() - started:.0f} s; compose project removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
