"""Check the Docker engine, buildx and compose v2; say what is missing and how to get it.

`install()` adds what a Debian host lacks: the buildx and compose v2 plugins from Debian's
trixie suite on the mirror apt already uses (pinned low so nothing else moves to trixie).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import aptsources


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    remedy: str = ""


def _run(*command: str) -> tuple[int, str]:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return 127, str(error)
    return done.returncode, (done.stdout + done.stderr).strip()


def check() -> list[Check]:
    checks = []
    if shutil.which("docker") is None:
        return [Check("docker CLI", False, "not found",
                      "install Docker Engine (Debian: apt-get install docker.io)")]
    code, out = _run("docker", "version", "--format", "{{.Server.Version}}")
    checks.append(Check("docker engine", code == 0, out.splitlines()[-1] if out else "",
                        "start the daemon (systemctl start docker) or check DOCKER_HOST and "
                        "your permission on the socket"))
    code, out = _run("docker", "buildx", "version")
    checks.append(Check("docker buildx", code == 0, out.splitlines()[0] if out else "",
                        "install the buildx plugin: `./hftlive setup --install` (Debian: "
                        "docker-buildx from trixie), or Docker's docker-buildx-plugin"))
    code, out = _run("docker", "compose", "version", "--short")
    v2 = code == 0 and out.split(".")[0].lstrip("v").isdigit() and int(out.split(".")[0].lstrip("v")) >= 2
    checks.append(Check("docker compose v2", v2, out.splitlines()[0] if out else "",
                        "install the compose v2 plugin: `./hftlive setup --install` (Debian: "
                        "docker-compose from trixie), or Docker's docker-compose-plugin"))
    checks.append(Check("debootstrap", shutil.which("debootstrap") is not None,
                        shutil.which("debootstrap") or "not found",
                        "needed only without a registry: apt-get install debootstrap"))
    return checks


TRIXIE_SOURCES = Path("/etc/apt/sources.list.d/hftlive-trixie.sources")
TRIXIE_PIN = Path("/etc/apt/preferences.d/hftlive-trixie")


def install(step) -> None:
    """Install debootstrap, buildx and compose v2 with apt (root, Debian hosts only)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PermissionError("installing tools needs root on a Debian host; install them by hand")
    archive, _ = aptsources.debian_mirrors()
    if not TRIXIE_SOURCES.exists():
        step.say(f"adding Debian trixie (pinned to priority 100) from {archive}")
        TRIXIE_SOURCES.write_text(
            f"Types: deb\nURIs: {archive}\nSuites: trixie\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
        TRIXIE_PIN.write_text("Package: *\nPin: release n=trixie\nPin-Priority: 100\n")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    step.say("apt-get update")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    step.say("installing debootstrap (bookworm), docker-buildx and docker-compose v2 (trixie)")
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"],
                   check=True, env=env)
    # No recommends: docker-cli from trixie would replace the engine package's own client.
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "-t", "trixie",
                    "docker-buildx", "docker-compose"], check=True, env=env)
