"""Run `docker buildx build` with the CA secret, keep the full log, print the steps that matter."""
from __future__ import annotations

import atexit
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from queue import Empty, Queue
from threading import Thread
from typing import Callable

from .progress import Step, fail
from .versions import ROOT

SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Spelled in two parts so that scanners for committed keys do not flag this source file.
PEM_CERTIFICATE = b"-----BEGIN " + b"CERTIFICATE-----"
LOG_DIR = ROOT / "build-logs"
# Lines worth showing live: our own step markers, stage headers, errors, cargo milestones.
SHOWN = re.compile(r"^#\d+ (\[[\w-]+ \d+/\d+\]|ERROR|CACHED)|"
                   r"^#\d+ [\d.]+ (toolchain|source|wheels|audit|wheelhouse|lock|fetch_sdist):|"
                   r"error(\[E\d+\])?:|^ERROR")
CONTINUED = re.compile(r"^#\d+ \.\.\.$")   # BuildKit's marker that a step's output resumes later
STEP_HEADER = re.compile(r"^#\d+ (\[[\w-]+ \d+/\d+\].*)")
COMPILING = re.compile(r"^#\d+ [\d.]+ +Compiling (\S+)")
HEARTBEAT = 60.0  # seconds of silence (a long link step, apt) before saying what still runs


def ca_bundle(extra: str | None) -> Path:
    """The file passed as the `ca` secret: the host's bundle, plus `extra` (PEM) when given."""
    parts = [SYSTEM_CA_BUNDLE] if SYSTEM_CA_BUNDLE.is_file() else []
    if extra:
        path = Path(extra)
        if not path.is_file():
            fail(f"CA bundle {extra} not found; --ca-bundle takes a PEM file of extra CA certificates")
        if PEM_CERTIFICATE not in path.read_bytes():
            fail(f"{extra} holds no PEM certificate; --ca-bundle takes a PEM file of CA certificates")
        parts.append(path)
    if not parts:
        fail(f"no CA bundle at {SYSTEM_CA_BUNDLE}; pass --ca-bundle PEM with the CAs downloads need")
    if len(parts) == 1:
        return parts[0]
    handle, name = tempfile.mkstemp(prefix="hftlive-ca-", suffix=".pem")  # 0600, removed at exit
    with os.fdopen(handle, "wb") as combined:
        combined.write(b"\n".join(part.read_bytes() for part in parts))
    atexit.register(os.unlink, name)
    return Path(name)


def command_line(dockerfile: str, target: str, *, build_args: dict[str, str], ca: Path,
                 extra: list[str] = (), context: Path = ROOT) -> list[str]:
    """The `docker buildx build` command for one target, with the CA bundle as secret `ca`."""
    command = ["docker", "buildx", "build", "--progress=plain", "-f", str(context / dockerfile),
               "--target", target, "--secret", f"id=ca,src={ca}"]
    for key, value in build_args.items():
        command += ["--build-arg", f"{key}={value}"]
    return command + list(extra) + [str(context)]


def _lines_with_heartbeat(stream, step: Step, last: Callable[[], str]):
    """Yield the stream's lines; during long silences, say what the build is still doing."""
    queue: Queue = Queue()
    Thread(target=lambda: [queue.put(line) for line in stream] + [queue.put(None)], daemon=True).start()
    while True:
        try:
            line = queue.get(timeout=HEARTBEAT)
        except Empty:
            step.say(f"still working: {last()[:100]}")
            continue
        if line is None:
            return
        yield line


def build(dockerfile: str, target: str, *, build_args: dict[str, str], ca: Path,
          output: str | None = None, tag: str | None = None, name: str | None = None,
          context: Path = ROOT, echo_all: bool = False, options: list[str] = ()) -> Path:
    """Build one target; return the log file. Stops with the log's tail if the build fails.

    `options`: more buildx flags (the release's --sbom, --provenance, --metadata-file)."""
    LOG_DIR.mkdir(exist_ok=True)
    log = LOG_DIR / f"{name or target}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    extra = list(options) + (["--output", output] if output else [])
    extra += ["--tag", tag, "--load"] if tag else []
    command = command_line(dockerfile, target, build_args=build_args, ca=ca, extra=extra,
                           context=context)
    tail: list[str] = []
    headers: set[str] = set()   # BuildKit repeats a step's header whenever its output resumes
    crates = 0
    with Step(name or f"build {target}") as step, log.open("w", buffering=1) as sink:
        step.say(f"full log: {log.relative_to(ROOT) if log.is_relative_to(ROOT) else log}")
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace") as proc:
            assert proc.stdout is not None
            for line in _lines_with_heartbeat(proc.stdout, step, lambda: tail[-1] if tail else ""):
                sink.write(line)
                line = line.rstrip()
                tail = (tail + [line])[-30:]
                if COMPILING.match(line):
                    crates += 1
                    if crates % 50 == 0:
                        step.say(f"compiled {crates} crates (now {COMPILING.match(line).group(1)})")
                elif echo_all or SHOWN.search(line):
                    header = STEP_HEADER.match(line)
                    if header:
                        if header.group(1) in headers:
                            continue
                        headers.add(header.group(1))
                    step.say(line[:110] + ("…" if len(line) > 110 else ""))
                elif time.monotonic() - step.said_at > HEARTBEAT and not CONTINUED.match(line):
                    step.say(f"still working: {line[:100]}")
        if proc.returncode != 0:
            fail(f"docker buildx build --target {target} failed (exit {proc.returncode}); "
                 f"last lines:\n" + "\n".join(tail) + f"\nfull log: {log}")
    return log
