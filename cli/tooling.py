"""Check the Docker engine, buildx and compose v2, and say how to get what is missing; install()
adds buildx and compose v2 from Debian trixie on apt's mirror (pinned low: nothing else moves)."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import aptsources

TRIXIE_SOURCES = Path("/etc/apt/sources.list.d/hftlive-trixie.sources")
TRIXIE_PIN = Path("/etc/apt/preferences.d/hftlive-trixie")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    remedy: str = ""
    required: bool = True  # False: only some paths need it (debootstrap: only without a registry)


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
                      "install Docker Engine (on Debian, its packaged engine)")]
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
    debootstrap = shutil.which("debootstrap") or next(
        (p for p in ("/usr/sbin/debootstrap", "/sbin/debootstrap") if Path(p).is_file()), None)
    checks.append(Check("debootstrap", debootstrap is not None, debootstrap or "not found",
                        "needed only where base images cannot be pulled: apt-get install debootstrap",
                        required=False))
    return checks


def can_install() -> bool:
    """Whether install() can work here: apt on a Debian host with a Debian mirror configured."""
    if shutil.which("apt-get") is None:
        return False
    try:
        aptsources.debian_mirrors()
    except aptsources.NoDebianMirror:
        return False
    return True


def install(missing: list[str], step) -> None:
    """Install what `missing` names (check() names) with apt: root on a Debian host only."""
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
    quiet = {"env": env, "check": True, "stdout": subprocess.DEVNULL}
    if "debootstrap" in missing:
        step.say("installing debootstrap")
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"], **quiet)
    plugins = [package for name, package in (("docker buildx", "docker-buildx"),
                                              ("docker compose v2", "docker-compose")) if name in missing]
    if plugins:
        step.say(f"installing {' and '.join(plugins)} from Debian trixie")
        # No recommends: trixie's docker-cli would replace the engine package's own client.
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "-t", "trixie",
                        *plugins], **quiet)
