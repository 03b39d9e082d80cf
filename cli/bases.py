"""Base images: the public image when it can be pulled, else one debootstrapped from the Debian
mirror apt uses, imported into the engine, labelled with its suite and date, and reused."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from . import aptsources
from .progress import Step, fail


@dataclass(frozen=True)
class Base:
    public: str  # what users with a registry get (the Dockerfiles' default)
    suite: str  # Debian suite of the offline equivalent
    packages: tuple[str, ...] = ()  # added to debootstrap's minbase
    script: str | None = None  # debootstrap's script for the suite, when it has none of its own

    @property
    def local(self) -> str:
        return f"hftlive/debian:{self.suite}" + ("-python3" if "python3" in self.packages else "")


PYTHON = ("python3", "python3-venv", "ca-certificates")
# Keys are what the Dockerfiles and tests ask for. ca-certificates: the public python images
# have it, and the connector's wss:// needs it.
BASES = {
    # The wheel builder's and every runtime image's base.
    "python3.11-bookworm": Base("python:3.11-slim-bookworm", "bookworm", PYTHON),
    # Only the tests install on these (the wheel on CPython 3.13 and 3.14).
    "python3.13-trixie": Base("python:3.13-slim-trixie", "trixie", PYTHON),
    # Debian's python3.14 is in forky; debootstrap has no forky script yet, sid's fits.
    "python3.14-forky": Base("python:3.14-slim-trixie", "forky", PYTHON, script="sid"),
}

LABEL_SUITE = "io.hftlive.base.suite"
LABEL_DATE = "io.hftlive.base.bootstrapped"
LABEL_RECIPE = "io.hftlive.base.recipe"
LABEL_PACKAGES = "io.hftlive.base.packages"
RECIPE = "2"   # bump when bootstrap() changes what an image holds: older local bases are rebuilt

# Like Debian's slim images: no manuals, translations or docs (copyright files stay), now or
# for packages installed later.
SLIM_DPKG_CONFIG = """\
# hftlive: a slim base, as Debian's -slim images are
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
"""


def _present(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def _pull(client: docker.DockerClient, ref: str, step: Step) -> bool:
    repository, _, tag = ref.partition(":")
    try:
        client.images.pull(repository, tag=tag or "latest")
        return True
    except docker.errors.DockerException as error:  # the registry's refusal, timeouts, connections
        said = getattr(error, "explanation", None) or error   # an APIError's: the registry's words
        step.say(f"cannot pull {ref} ({str(said).splitlines()[0][:120]})")
        return False


def ensure(key: str, offline: bool = False, client: docker.DockerClient | None = None) -> str:
    """Return an image reference for base `key` that exists in the local engine.

    HFTLIVE_OFFLINE_BASES=1 makes every caller offline: bootstrap from Debian, never pull (ci.yml's
    `offline-bases` input, for proving the registry-free path on a runner that could pull)."""
    base = BASES[key]
    offline = offline or os.environ.get("HFTLIVE_OFFLINE_BASES") == "1"
    client = client or docker.from_env()
    with Step(f"base {key}") as step:
        if not offline and (_present(client, base.public) or _pull(client, base.public, step)):
            step.say(f"using {base.public}")
            return base.public
        if _present(client, base.local):
            labels = client.images.get(base.local).labels or {}
            if labels.get(LABEL_RECIPE) == RECIPE and labels.get(LABEL_PACKAGES, "") == ",".join(base.packages):
                step.say(f"reusing {base.local} (bootstrapped {labels.get(LABEL_DATE, '?')})")
                return base.local
            step.say(f"{base.local} was bootstrapped by an older recipe; bootstrapping it again")
        step.say(f"bootstrapping {base.local} from Debian {base.suite}")
        bootstrap(base, client, step)
        return base.local


def _run_streaming(command: list[str], step: Step) -> None:
    """Run a command, echoing one line per phase of its output, and fail with its tail."""
    tail: list[str] = []
    seen: set[str] = set()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-15:]
            verb = " ".join(line.split()[:2])  # "I: Retrieving", "I: Extracting", ...
            if line.startswith(("W:", "E:")) or (line.startswith("I:") and verb not in seen):
                step.say(line[:140])
                seen.add(verb)
    if proc.returncode != 0:
        fail(f"{command[0]} exited with {proc.returncode}:\n" + "\n".join(tail))


def bootstrap(base: Base, client: docker.DockerClient, step: Step) -> None:
    debootstrap = shutil.which("debootstrap", path="/usr/sbin:/sbin:" + os.environ.get("PATH", ""))
    if debootstrap is None:
        fail("debootstrap is not installed; run `apt-get install debootstrap` "
             "(or `./hftlive setup`), or give the engine access to a registry")
    if os.geteuid() != 0:
        fail("bootstrapping a base image needs root (debootstrap); run as root, "
             "or pull the public image on a host with a registry")
    archive, security = aptsources.debian_mirrors()
    with tempfile.TemporaryDirectory(prefix="hftlive-base-") as tmp:
        root = Path(tmp) / "rootfs"
        command = [debootstrap, "--variant=minbase"]
        if base.packages:
            command.append("--include=" + ",".join(base.packages))
        script = [f"/usr/share/debootstrap/scripts/{base.script}"] if base.script else []
        _run_streaming(command + [base.suite, str(root), archive] + script, step)
        (root / "etc/apt/sources.list").unlink(missing_ok=True)
        (root / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
        (root / "etc/apt/sources.list.d/debian.sources").write_text(
            aptsources.sources_for(base.suite, archive, security))
        if base.script:   # a suite still in testing: its Release file on a mirror may be past Valid-Until
            (root / "etc/apt/apt.conf.d/hftlive-testing").write_text('Acquire::Check-Valid-Until "false";\n')
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / cache).glob("*"):
                if item.is_file():
                    item.unlink()
        slim(root)
        step.say("packing root filesystem")
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tarball), "."], check=True)
        today = dt.date.today().isoformat()
        labels = (f'{LABEL_SUITE}="{base.suite}" {LABEL_DATE}="{today}" {LABEL_RECIPE}="{RECIPE}" '
                  f'{LABEL_PACKAGES}="{",".join(base.packages)}" '
                  f'io.hftlive.base.equivalent-of="{base.public}"')
        changes = [f"LABEL {labels}", "ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]']
        repository, _, tag = base.local.partition(":")
        step.say(f"importing as {base.local}")
        client.api.import_image_from_file(str(tarball), repository=repository, tag=tag, changes=changes)


def slim(root: Path) -> None:
    """Drop what SLIM_DPKG_CONFIG excludes from an installed root, and keep dpkg excluding it."""
    (root / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/dpkg/dpkg.cfg.d/hftlive-slim").write_text(SLIM_DPKG_CONFIG)
    for folder in ("man", "info", "groff", "lintian", "locale"):
        for item in (root / "usr/share" / folder).glob("*"):
            shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
    # os.walk does not follow symlinks: an absolute link in the new root must never reach the host's files.
    for folder, _, files in os.walk(root / "usr/share/doc"):
        for name in files:
            if name != "copyright":
                (Path(folder) / name).unlink()
