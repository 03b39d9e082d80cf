"""Benchmark: how many events/s the service-mock container delivers to 1, 10 and 100 WebSocket clients.

Run with `make bench-service` (or .venv/bin/python bench/service.py) after `./hftlive images`.
For each client count and offered rate, a fresh compose project (the mock profile) runs for a fixed
time; clients run in separate processes (on this host, beside the container). Prints a table and ratios:
  offered    events/s the mock produced (from the service's own counter, /metrics)
  per client events/s each client received (mean), and its ratio to offered
  p50/p99    source-to-client latency: client receive time minus the event's local_ts
  cut        clients closed as slow consumers (4008); RSS of the service process at the end
  send p50/p99  the service's own share: hftlive_send_delay_seconds over the cell (a client's queue to its socket
             write; the bucket holding the quantile, upper bound), so a slow client is told from a slow service
Clients: picows (default), a Cython WebSocket client from PyPI whose per-frame callback costs a few µs, or
websockets (--client websockets), pure Python, one coroutine wake per message: at 100 x 1,000/s on this 2-core
host the websockets clients themselves are the bottleneck (compare the two with --client).
Stops by itself: every cell is bounded in time, every container is removed.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from queue import Empty

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # run as a script: the repository's packages from here on

from cli.compose import Project  # noqa: E402
from service.protocol import CloseCode  # noqa: E402

IMAGE = "hftlive/service-mock:latest"
LIVE_IMAGE = "hftlive/service:latest"
TARGETS_MB = {IMAGE: 150, LIVE_IMAGE: 350}
WORKERS = 2
KEPT_UP_P99_MS = 50.0   # issue 13's bound: a client further behind than this has not kept up


def events_in(url: str, kinds: str = "delta|trade") -> float:
    """Events of `kinds` the service took in (its own counter): bench/live.py reads it too."""
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    pattern = rf'^hftlive_events_in_total\{{[^}}]*kind="(?:{kinds})"[^}}]*\}} (\S+)'
    return sum(float(v) for v in re.findall(pattern, text, re.M))


def picows_worker(url: str, count: int, seconds: float, queue) -> None:
    """`count` picows clients for `seconds`: frames counted in a callback, one in ten parsed for its latency."""
    from picows import WSListener, WSMsgType, ws_connect

    class Counter(WSListener):
        def __init__(self) -> None:
            self.received, self.latencies, self.code = 0, [], None

        def on_ws_frame(self, transport, frame) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                if self.received % 10 == 0:   # sample, as the websockets clients do
                    now = time.time_ns()
                    message = json.loads(frame.get_payload_as_bytes())
                    if message["type"] in ("delta", "trade"):
                        self.latencies.append(now - message["local_ts"])
                self.received += 1
            elif frame.msg_type == WSMsgType.CLOSE:
                self.code = int(frame.get_close_code())
                transport.disconnect()

    async def one() -> tuple[int, list[int], int | None]:
        try:
            transport, listener = await ws_connect(Counter, f"{url}/v1/stream?symbols=BTCUSDT",
                                                   max_frame_size=2**24)
        except Exception:  # counted as a client that got nothing: the cell shows it, the others still run
            return 0, [], None
        try:
            await asyncio.wait_for(transport.wait_disconnected(), seconds)
        except asyncio.TimeoutError:
            transport.disconnect()
        return listener.received, listener.latencies, listener.code

    async def all_clients() -> None:
        queue.put(await asyncio.gather(*(one() for _ in range(count))))

    asyncio.run(all_clients())


def websockets_worker(url: str, count: int, seconds: float, queue) -> None:
    # Raw websockets clients, not the product's StreamClient: they measure the service's delivery rate,
    # and parsing (let alone validating) every message would measure the clients on this 2-core host.
    import websockets

    async def one() -> tuple[int, list[int], int | None]:
        received, latencies, code = 0, [], None
        try:
            async with websockets.connect(f"{url}/v1/stream?symbols=BTCUSDT", max_size=2**24) as ws:
                end = time.monotonic() + seconds
                while (left := end - time.monotonic()) > 0:
                    try:
                        text = await asyncio.wait_for(ws.recv(), left)
                    except asyncio.TimeoutError:
                        break
                    now = time.time_ns()
                    if received % 10 == 0:   # sample: parsing every message would measure the client
                        message = json.loads(text)
                        if message["type"] in ("delta", "trade"):
                            latencies.append(now - message["local_ts"])
                    received += 1
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else 1006
        except OSError:   # could not connect: a client that got nothing, shown in the cell
            pass
        return received, latencies, code

    async def all_clients() -> None:
        queue.put(await asyncio.gather(*(one() for _ in range(count))))

    asyncio.run(all_clients())


def rss_mb(stack: Project) -> float:
    status, _, _ = stack.exec_in_container(["cat", "/proc/1/status"], "service-mock")
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


WORKER_OF = {"picows": picows_worker, "websockets": websockets_worker}


def histograms(url: str, key) -> dict[str, dict[float, float]]:
    """The histograms at url's /metrics as cumulative counts by upper bound (s), under key(family name, labels)
    (None: not wanted), read with prometheus_client's own parser: bench/live.py reads its hops with it too."""
    from prometheus_client.parser import text_string_to_metric_families
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    found: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name.endswith("_bucket") and key(family.name, sample.labels)
            if name:
                found.setdefault(name, {})[float(sample.labels["le"])] = sample.value
    return found


def send_delay(url: str) -> dict[float, float]:
    """The service's hftlive_send_delay_seconds."""
    return histograms(url, lambda family, labels: "send" if family == "hftlive_send_delay_seconds" else None
                      ).get("send", {})


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound (s) of the bucket holding quantile q of what was observed between two readings of a
    histogram (cumulative counts by upper bound): bench/live.py reads its hops with it too."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return float("nan")
    return next(b for b, c in zip(bounds, counts) if c >= q * counts[-1])


def cell(count: int, rate: int, seconds: float, client: str = "picows") -> dict:
    # compose.yaml's mock profile (its hardening, its healthcheck) through the product's runner: up means ready.
    stack = Project(["mock"], name=f"hftlive-bench-{uuid.uuid4().hex[:8]}", settings={
        "HFTLIVE_PORT": "0", "MOCK_EVENT_RATE": str(rate), "MOCK_SEED": "1", "CLIENT_BUFFER": "4096",
        "LOG_LEVEL": "warning"})
    with stack:
        url = f"http://{stack.published()}"
        queue = multiprocessing.Queue()
        split = [count // WORKERS + (1 if i < count % WORKERS else 0) for i in range(WORKERS)]
        before, delays, started = events_in(url), send_delay(url), time.monotonic()
        procs = [multiprocessing.Process(target=WORKER_OF[client], args=(url.replace("http", "ws"), n, seconds, queue))
                 for n in split if n]
        for proc in procs:
            proc.start()
        try:
            results = [r for _ in procs for r in queue.get(timeout=seconds + 60)]
        except Empty:
            codes = [proc.exitcode for proc in procs]
            raise SystemExit(f"a client process gave no result within {seconds + 60:.0f} s (exit codes {codes})") from None
        offered = (events_in(url) - before) / (time.monotonic() - started)
        delays_after = send_delay(url)
        for proc in procs:
            proc.join(10)
        rss = rss_mb(stack)
    received = [r[0] for r in results]
    latencies = sorted(x for r in results for x in r[1])
    per_client = sum(received) / len(received) / seconds
    return {"clients": count, "rate": rate, "offered": offered, "per_client": per_client,
            "total": sum(received) / seconds, "p50_ms": latencies[len(latencies) // 2] / 1e6 if latencies else float("nan"),
            "p99_ms": latencies[int(len(latencies) * 0.99)] / 1e6 if latencies else float("nan"),
            "cut": sum(1 for r in results if r[2] == CloseCode.SLOW_CONSUMER), "rss_mb": rss,
            "send_p50_ms": bucket_quantile(delays, delays_after, 0.5) * 1e3,
            "send_p99_ms": bucket_quantile(delays, delays_after, 0.99) * 1e3}


def image_mb(ref: str) -> float | None:
    done = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", ref], capture_output=True, text=True)
    return int(done.stdout) / 1e6 if done.returncode == 0 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,10,100")
    parser.add_argument("--rates", default="1000,5000,20000", help="MOCK_EVENT_RATE values (actions/s)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--client", choices=tuple(WORKER_OF), default="picows",
                        help="the clients' WebSocket library (see the docstring)")
    args = parser.parse_args()
    if image_mb(IMAGE) is None:
        raise SystemExit(f"{IMAGE} is missing: run ./hftlive images first")
    print(f"service-mock, {args.seconds:g} s per cell, {args.client} clients in {WORKERS} processes on the same "
          f"{multiprocessing.cpu_count()}-core host as the container\n")
    print(f"{'clients':>7} {'rate':>6} {'offered ev/s':>12} {'per client':>10} {'ratio':>6} {'total msg/s':>11} "
          f"{'p50 ms':>7} {'p99 ms':>8} {'cut':>4} {'RSS MB':>7} | {'send p50':>8} {'p99':>6}")
    sustained: dict[int, float] = {}
    cells: dict[tuple[int, int], dict] = {}
    for count in map(int, args.clients.split(",")):
        for rate in map(int, args.rates.split(",")):
            r = cells[count, rate] = cell(count, rate, args.seconds, args.client)
            ratio = r["per_client"] / r["offered"] if r["offered"] else 0
            print(f"{count:>7} {rate:>6} {r['offered']:>12.0f} {r['per_client']:>10.0f} {ratio:>6.2f} "
                  f"{r['total']:>11.0f} {r['p50_ms']:>7.1f} {r['p99_ms']:>8.1f} {r['cut']:>4} {r['rss_mb']:>7.1f} | "
                  f"{'≤' + format(r['send_p50_ms'], '.2f'):>8} {'≤' + format(r['send_p99_ms'], '.1f'):>6}",
                  flush=True)
            if r["cut"] == 0 and ratio >= 0.98 and r["p99_ms"] <= KEPT_UP_P99_MS:
                sustained[count] = max(sustained.get(count, 0), r["offered"])
    print(f"\nsustained (every client got ≥ 98 % of the events, none cut, p99 ≤ {KEPT_UP_P99_MS:g} ms), "
          "events/s per client:")
    for count in map(int, args.clients.split(",")):
        print(f"  {count:>3} clients: {sustained.get(count, 0):>8.0f}")
    goal = cells.get((100, 1000))
    if goal is not None:
        kept = goal["offered"] and goal["per_client"] / goal["offered"] >= 0.98 and goal["cut"] == 0
        print(f"\ngoal, 100 clients x 1,000 events/s each: every client keeps up (>= 98 % of the events, none cut) "
              f"and p99 <= {KEPT_UP_P99_MS:g} ms\n  got {goal['per_client']:.0f}/s each of {goal['offered']:.0f} offered "
              f"(ratio {goal['per_client'] / goal['offered'] if goal['offered'] else 0:.2f}), {goal['cut']} cut, "
              f"p99 {goal['p99_ms']:.1f} ms: {'met' if kept and goal['p99_ms'] <= KEPT_UP_P99_MS else 'NOT met'}")
    print(f"\n{'image':<32} {'MB':>7} {'target':>7} {'ratio':>6}")
    for ref, target in TARGETS_MB.items():
        size = image_mb(ref)
        shown = f"{size:>7.1f} {target:>7} {size / target:>6.2f}" if size else "missing"
        print(f"{ref:<32} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
