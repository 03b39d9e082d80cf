"""`up` and `down`, and the compose runner behind them: the one the tests and the benchmarks use too.
An exchange the connector cannot reach fails `up` with one line, before compose's own timeout."""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from testcontainers.compose import ComposeContainer, DockerCompose
from testcontainers.core.exceptions import ContainerIsNotRunning

from . import apikeys, images
from .progress import Step, fail
from .versions import ROOT

# What `--exchange` accepts; the service and the connector's entrypoint accept the same names.
EXCHANGES = ("simulator", "bybit", "bybit-testnet")
EXCHANGE_DEADLINE_S = 40.0   # the connector has streamed by then, or the exchange is unreachable
REFUSED_AFTER_S = 20.0       # ... or sooner, once it has only been refused for this long
HEALTH_DEADLINE_S = 180.0    # everything healthy by then (the live bot's first JIT takes a while)
WEB = ("service", "service-mock")   # the services that serve the page and the API
KEPT_VOLUMES = ("recordings",)   # what `down` leaves: the data a user would miss
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")   # colours, and compose's erase-line before log lines


class Failed(Exception):
    """A compose project could not be brought up; str() is the line to print."""


class Project(DockerCompose):
    """compose.yaml's `profiles` run as the compose project `name`: `with Project(...) as p:` starts it
    healthy and always removes it. testcontainers' DockerCompose, plus what it lacks here: a project
    name, a bound on `up --wait`, `--no-deps`, and settings that replace the user's .env.

    `settings` go to a private env file, so .env is not read (tests and benchmarks must not inherit
    the user's); without them compose reads .env itself. `files` are overrides merged over
    compose.yaml; `only` starts just those services, without their dependencies; `wait=False` returns
    once the containers are started instead of healthy."""

    def __init__(self, profiles: Iterable[str], *, name: str | None = None, settings: dict[str, str] | None = None,
                 files: Iterable[Path] = (), only: Iterable[str] = (), wait: bool = True,
                 wait_timeout: float = HEALTH_DEADLINE_S) -> None:
        self.name = name or project()
        self.only = list(only)
        self.wait_timeout = wait_timeout
        self.scratch = None
        env_file = None
        if settings is not None:
            self.scratch = tempfile.TemporaryDirectory(prefix=f"{self.name}-")
            env_file = str(Path(self.scratch.name) / "settings.env")
            Path(env_file).write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        super().__init__(context=str(ROOT), compose_file_name=[str(ROOT / "compose.yaml"), *map(str, files)],
                         profiles=list(profiles), env_file=env_file, wait=wait)

    @cached_property
    def compose_command_property(self) -> list[str]:
        # DockerCompose has no project name: compose.yaml's `name:` would make every project the user's own.
        docker, compose, *options = DockerCompose.compose_command_property.func(self)
        return [docker, compose, "--project-name", self.name, *options]

    def up_command(self) -> list[str]:
        """`up`; with `wait`, compose's `--wait`: every service started is healthy, the one wait for health."""
        command = [*self.docker_compose_command(), "up", "--detach"]
        if self.wait:
            command += ["--wait", "--wait-timeout", f"{self.wait_timeout:.0f}"]
        return command + (["--no-deps", *self.only] if self.only else [])

    def start(self) -> None:
        done = subprocess.run(self.up_command(), cwd=ROOT, capture_output=True, text=True,
                              timeout=self.wait_timeout + 60)
        if done.returncode != 0:
            logs = subprocess.run([*self.docker_compose_command(), "logs", "--no-color", "--tail", "30"], cwd=ROOT,
                                  capture_output=True, text=True).stdout
            raise Failed(f"docker compose up failed for project {self.name}: {done.stderr.strip()}\n{logs}")

    def stop(self, down: bool = True, volumes: bool = True) -> None:
        """`down`: containers, network and volumes removed — with volumes=False all but KEPT_VOLUMES;
        down=False only stops."""
        args = (["down", *(["--volumes"] if volumes else []), "--remove-orphans"] if down else ["stop"])
        done = subprocess.run([*self.docker_compose_command(), *args, "--timeout", "5"], cwd=ROOT,
                              capture_output=True, text=True)
        if down and self.scratch is not None:
            self.scratch.cleanup()
        if done.returncode != 0:
            said = done.stderr.strip().splitlines() or ["no message"]
            raise Failed(f"docker compose {args[0]} failed for project {self.name}: {said[-1]}")
        if down and not volumes:
            # The tmpfs volumes hold nothing once stopped; left behind, a changed uid or size in
            # compose.yaml would clash with them at the next `up`.
            listed = subprocess.run(["docker", "volume", "ls", "--filter",
                                     f"label=com.docker.compose.project={self.name}", "--format",
                                     '{{.Name}} {{.Label "com.docker.compose.volume"}}'],
                                    capture_output=True, text=True).stdout.split("\n")
            spare = [name for name, _, key in (line.partition(" ") for line in listed)
                     if name and key not in KEPT_VOLUMES]
            if spare:
                subprocess.run(["docker", "volume", "rm", *spare], capture_output=True, text=True)

    def states(self) -> dict[str, ComposeContainer]:
        """Every container of the project, running or not, by service: State, Health, ExitCode, ID."""
        return {c.Service: c for c in self.get_containers(include_all=True)}

    def container(self, service: str) -> str:
        return self.get_container(service, include_all=True).ID

    def health(self, service: str) -> str:
        return self.get_container(service, include_all=True).Health

    def published(self, service: str | None = None, target: int | None = None) -> str:
        """host:port where this host reaches `service` (the API's by default): its one published port, or `target`."""
        service = service or next(s for p in self.profiles for s in images.PROFILES[p] if s in WEB)
        ports = [p for p in self.get_container(service).Publishers
                 if p.PublishedPort and (target is None or p.TargetPort == target)]
        if len(ports) != 1:
            raise Failed(f"{service} publishes {len(ports)} ports{f' for {target}' if target else ''}, not one")
        return f"{ports[0].URL}:{ports[0].PublishedPort}"

    def logs(self, service: str, tail: int | None = None) -> str:
        """The service's log lines (the last `tail`), without blank ones."""
        args = ["logs", "--no-color", "--no-log-prefix", *(["--tail", str(tail)] if tail else []), service]
        done = subprocess.run([*self.docker_compose_command(), *args], cwd=ROOT, capture_output=True, text=True)
        return "\n".join(line for line in (done.stdout + done.stderr).splitlines() if line.strip())

    @property
    def network(self) -> str:
        """The project's default network: containers that must not go through a published port join it."""
        return f"{self.name}_default"


@dataclass(frozen=True)
class Plan:
    profiles: tuple[str, ...]
    exchange: str | None   # None: the mock market
    strategy: Path | None = None   # the bot profile's strategy file

    @property
    def label(self) -> str:
        if self.exchange is None:
            return "mock market"
        return f"live, exchange {self.exchange}" + (f", strategy {self.strategy.name}" if self.strategy else "")

    @property
    def services(self) -> list[str]:
        """compose.yaml's services for the plan: each is named after the image it runs."""
        return [service for p in self.profiles for service in images.PROFILES[p]]


def plan(exchange: str | None, mock: bool, strategy: str | None = None) -> Plan:
    if mock:
        if exchange:
            fail("--mock serves the mock market, which has no exchange; drop --exchange, or drop --mock")
        if strategy:
            fail("--mock has no exchange to trade on; drop --strategy, or drop --mock")
        return Plan(("mock",), None)
    exchange = exchange or "simulator"
    if exchange not in EXCHANGES:
        fail(f"no exchange {exchange!r}; choose from {', '.join(EXCHANGES)}")
    profiles = ("live", "sim") if exchange == "simulator" else ("live",)
    if strategy is None:
        return Plan(profiles, exchange)
    path = Path(strategy).expanduser().resolve()
    if not path.is_file():
        fail(f"no strategy file {strategy} (--strategy takes a Python file with a numba `strategy(hbt)`, "
             "such as strategies/market_maker.py)", code=2)
    return Plan((*profiles, "bot"), exchange, path)


def settings(plan_: Plan) -> dict[str, str]:
    """What `up` sets for compose beyond the user's .env (the command line beats .env and the shell alike,
    as compose's own environment does): the exchange, the strategy, and against the simulator with a
    strategy the key pair both sides share."""
    found = {"HFTLIVE_EXCHANGE": plan_.exchange} if plan_.exchange else {}
    if plan_.strategy:
        found["HFTLIVE_STRATEGY"] = str(plan_.strategy)
        if plan_.exchange == "simulator":
            found.update(apikeys.simulator_pair().settings())
    return found


def project() -> str:
    """compose.yaml's `name:`, or HFTLIVE_PROJECT (a second stack beside the first, as the tests run)."""
    name = os.environ.get("HFTLIVE_PROJECT") or "hftlive"
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        fail(f"HFTLIVE_PROJECT={name!r} is not a compose project name (lowercase letters, digits, - and _)")
    return name


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


def describe(services: list[str], found: dict[str, ComposeContainer]) -> str:
    rows = {service: found.get(service) for service in services}
    return ", ".join(f"{s} {'not created' if row is None else row.Health or row.State}" for s, row in rows.items())


def watch(plan_: Plan, stack: Project, step: Step, starting: subprocess.Popen, said: Path) -> None:
    """Say what `starting` (the runner's `up --wait`) waits for until it is done; stop `up` with one line
    as soon as a service cannot become healthy (it stopped, or the connector cannot reach the exchange)."""
    started = time.monotonic()
    last, said_at = "", 0.0
    while True:
        elapsed = time.monotonic() - started
        found = stack.states()
        now = describe(plan_.services, found)
        if now != last or elapsed - said_at >= 15:
            step.say(f"waiting for health: {now}")
            last, said_at = now, elapsed
        code = starting.poll()
        if code == 0:
            return
        for service in plan_.services:
            row = found.get(service)
            if row is not None and row.State in ("exited", "dead", "restarting"):
                tail = stack.logs(service, 5).splitlines()
                raise Failed(f"{service} stopped (exit {row.ExitCode}): "
                             f"{ANSI.sub('', tail[-1]) if tail else 'no log'}")
        connector = found.get("connector")
        if plan_.exchange and not (connector and connector.Health == "healthy") and elapsed > REFUSED_AFTER_S:
            lines = [ANSI.sub("", line) for line in stack.logs("connector", 40).splitlines()]
            refused_only = any("cannot connect" in l for l in lines) and not any(" connected" in l for l in lines)
            if refused_only or elapsed > EXCHANGE_DEADLINE_S:
                raise Failed(f"cannot reach the exchange {plan_.exchange}: {unreachable_reason(lines)}; "
                             f"no market data after {elapsed:.0f} s (check the network, or try "
                             "--exchange simulator)")
        if code is not None:
            if elapsed >= HEALTH_DEADLINE_S:
                raise Failed(f"not healthy after {HEALTH_DEADLINE_S:.0f} s: {now} "
                             f"(`docker compose --project-name {stack.name} logs` says why)")
            lines = said.read_text().strip().splitlines() or ["no message"]
            raise Failed(f"docker compose up failed: {lines[-1].strip()}")
        time.sleep(1.0)


def up(plan_: Plan) -> str:
    """Start the plan's profiles and wait for health; returns the page's URL."""
    stack = Project(plan_.profiles)
    env = dict(os.environ, **settings(plan_))
    with Step("up") as step, tempfile.TemporaryDirectory(prefix="hftlive-up-") as scratch:
        step.say(f"starting {', '.join(plan_.services)} ({plan_.label})")
        down()   # whatever another profile left running would hold the port: stop every profile
        said = Path(scratch) / "compose.err"
        with said.open("w") as err:
            starting = subprocess.Popen(stack.up_command(), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                        stderr=err, text=True)
        try:
            watch(plan_, stack, step, starting, said)
            url = f"http://{stack.published()}/"
        except (Failed, subprocess.CalledProcessError, ContainerIsNotRunning) as error:
            with contextlib.suppress(Failed, subprocess.CalledProcessError):
                Project(images.PROFILES).stop(volumes=False)   # keeps the recordings
            fail(f"{one_line(error)}; stopped what had started")
        finally:
            if starting.poll() is None:
                starting.kill()
                starting.wait()
    return url


def one_line(error: Exception) -> str:
    """What went wrong, in one line: compose's own last line when a compose command failed."""
    if isinstance(error, subprocess.CalledProcessError):
        said = (error.stderr or error.stdout or "").strip().splitlines()
        return f"docker compose failed: {said[-1].strip() if said else f'exit {error.returncode}'}"
    return str(error)


def down() -> int:
    try:
        Project(images.PROFILES).stop(volumes=False)   # keeps the recordings
    except Failed as error:
        fail(str(error))
    return 0
