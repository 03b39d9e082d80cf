"""`up` and `down`: compose.yaml's profiles for an exchange, and a wait that says what it waits for.

The exchange decides the profiles: the bundled simulator runs `live` + `sim`; Bybit and its
testnet run `live` alone; the mock market runs `mock`. An exchange the connector cannot reach
fails `up` within EXCHANGE_DEADLINE_S with one line, instead of after compose's own timeout.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass

from . import images
from .progress import Step, fail
from .versions import ROOT

# What `--exchange` accepts; the service and the connector's entrypoint accept the same names.
EXCHANGES = ("simulator", "bybit", "bybit-testnet")
EXCHANGE_DEADLINE_S = 40.0   # the connector has streamed by then, or the exchange is unreachable
REFUSED_AFTER_S = 20.0       # ... or sooner, once it has only been refused for this long
HEALTH_DEADLINE_S = 180.0    # everything healthy by then (the live bot's first JIT takes a while)


@dataclass(frozen=True)
class Plan:
    profiles: tuple[str, ...]
    exchange: str | None   # None: the mock market

    @property
    def label(self) -> str:
        return "mock market" if self.exchange is None else f"live, exchange {self.exchange}"

    @property
    def services(self) -> list[str]:
        """compose.yaml's services for the plan: each is named after the image it runs."""
        return [service for p in self.profiles for service in images.PROFILES[p]]


def plan(exchange: str | None, mock: bool) -> Plan:
    if mock:
        if exchange:
            fail("--mock serves the mock market, which has no exchange; drop --exchange, or drop --mock")
        return Plan(("mock",), None)
    exchange = exchange or "simulator"
    if exchange not in EXCHANGES:
        fail(f"no exchange {exchange!r}; choose from {', '.join(EXCHANGES)}")
    return Plan(("live", "sim") if exchange == "simulator" else ("live",), exchange)


def project() -> str:
    """compose.yaml's `name:`, or HFTLIVE_PROJECT (a second stack beside the first, as the tests run)."""
    name = os.environ.get("HFTLIVE_PROJECT") or "hftlive"
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        fail(f"HFTLIVE_PROJECT={name!r} is not a compose project name (lowercase letters, digits, - and _)")
    return name


def command(profiles: tuple[str, ...] | list[str]) -> list[str]:
    return ["docker", "compose", "--project-name", project()] + [a for p in profiles for a in ("--profile", p)]


def settings() -> dict[str, str]:
    """.env's settings (what compose reads), overridden by the environment."""
    found: dict[str, str] = {}
    dotenv = ROOT / ".env"
    if dotenv.is_file():
        for line in dotenv.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.lstrip().startswith("#"):
                found[key.strip()] = value.strip().strip("'\"")
    return {**found, **{k: v for k, v in os.environ.items() if k in found or k.startswith(("HFTLIVE_", "BYBIT_"))}}


def states() -> dict[str, dict]:
    """compose's view of this project's containers, by service: State, Health, ExitCode."""
    done = subprocess.run(command(list(images.PROFILES)) + ["ps", "--all", "--format", "json"], cwd=ROOT,
                          capture_output=True, text=True)
    rows = []
    for line in done.stdout.splitlines():
        line = line.strip()
        if line.startswith("["):
            rows += json.loads(line)
        elif line.startswith("{"):
            rows.append(json.loads(line))
    return {row["Service"]: row for row in rows}


def logs(service: str, tail: int = 40) -> list[str]:
    done = subprocess.run(command(list(images.PROFILES)) + ["logs", "--no-color", "--no-log-prefix", "--tail", str(tail),
                                                      service], cwd=ROOT, capture_output=True, text=True)
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def unreachable_reason(lines: list[str]) -> str:
    """The connector's last word on why it cannot connect (its `cannot connect` lines)."""
    for line in reversed(lines):
        line = ANSI.sub("", line)
        if "cannot connect" in line:
            error = re.search(r"error=(.+?)(?: url=\S+)?$", line)
            url = re.search(r"url=(\S+)", line)
            reason = error.group(1).strip('"') if error else line.strip()[-160:]
            return reason + (" (" + url.group(1).strip('"') + ")" if url else "")
    last = f"; the connector's last line: {ANSI.sub('', lines[-1])[-160:]}" if lines else ""
    return "no answer from the exchange" + last


def describe(services: list[str], found: dict[str, dict]) -> str:
    parts = []
    for service in services:
        row = found.get(service)
        parts.append(f"{service} {'not created' if row is None else row.get('Health') or row.get('State')}")
    return ", ".join(parts)


def wait(plan_: Plan, step: Step, starting: subprocess.Popen) -> None:
    """Until every service of the plan is healthy; stops `up` with one line when one cannot be.

    `starting` is `compose up --detach`, which itself waits for the connector's health before it
    starts the service: its progress is shown from here, and its failure explained from here."""
    started = time.monotonic()
    last, said_at = "", 0.0
    while True:
        elapsed = time.monotonic() - started
        found = states()
        now = describe(plan_.services, found)
        if now != last or elapsed - said_at >= 15:
            step.say(f"waiting for health: {now}")
            last, said_at = now, elapsed
        if all(found.get(s, {}).get("Health") == "healthy" for s in plan_.services):
            return
        for service in plan_.services:
            row = found.get(service, {})
            if row.get("State") in ("exited", "dead") or row.get("State") == "restarting":
                tail = logs(service, 5)
                raise Failed(f"{service} stopped (exit {row.get('ExitCode')}): "
                             f"{ANSI.sub('', tail[-1]) if tail else 'no log'}")
        connector_up = found.get("connector", {}).get("Health") == "healthy"
        if plan_.exchange and not connector_up and elapsed > REFUSED_AFTER_S:
            said = [ANSI.sub("", line) for line in logs("connector")]
            refused_only = any("cannot connect" in l for l in said) and not any(" connected" in l for l in said)
            if refused_only or elapsed > EXCHANGE_DEADLINE_S:
                raise Failed(f"cannot reach the exchange {plan_.exchange}: {unreachable_reason(said)}; "
                             f"no market data after {elapsed:.0f} s (check the network, or try "
                             "--exchange simulator)")
        if starting.poll() not in (None, 0):
            said = (starting.stderr.read() if starting.stderr else "").strip().splitlines() or ["no message"]
            raise Failed(f"docker compose up failed: {said[-1]}")
        if elapsed > HEALTH_DEADLINE_S:
            raise Failed(f"not healthy after {HEALTH_DEADLINE_S:.0f} s: {now} "
                         f"(`docker compose --project-name {project()} logs` says why)")
        time.sleep(1.0)


class Failed(Exception):
    """`up` could not bring the stack up; str() is the line to print."""


def up(plan_: Plan) -> str:
    """Start the plan's profiles and wait for health; returns the page's URL."""
    env = dict(os.environ)
    if plan_.exchange:
        env["HFTLIVE_EXCHANGE"] = plan_.exchange
    with Step("up") as step:
        step.say(f"starting {', '.join(plan_.services)} ({plan_.label})")
        # Whatever another profile left running would hold the port: stop every profile first.
        subprocess.run(command(list(images.PROFILES)) + ["down", "--remove-orphans", "--timeout", "5"], cwd=ROOT,
                       env=env, capture_output=True)
        starting = subprocess.Popen(command(plan_.profiles) + ["up", "--detach"], cwd=ROOT, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait(plan_, step, starting)
        except Failed as error:
            starting.kill()
            starting.wait()
            subprocess.run(command(list(images.PROFILES)) + ["down", "--timeout", "2"], cwd=ROOT, env=env,
                           capture_output=True)
            fail(f"{error}; stopped what had started")
        starting.wait()
    port = settings().get("HFTLIVE_PORT") or "8000"
    return f"http://127.0.0.1:{port}/"


def down() -> int:
    return subprocess.call(command(list(images.PROFILES)) + ["down", "--remove-orphans"], cwd=ROOT)
