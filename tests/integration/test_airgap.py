"""The air-gapped install, for real: `./hftlive bundle`, then its install.sh on a second, empty Docker
engine that runs inside a network namespace holding only a loopback interface (no route out, no
DNS, no registry, none of this machine's images). The engine and the namespace are removed
afterwards, also when a test fails. Needs root, like `.ci/run`."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from tests.support import ROOT


SERVICE = "http://127.0.0.1:8000"


def run(*command: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("timeout", 120)
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if check and done.returncode != 0:
        pytest.fail(f"`{' '.join(command)}` failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


class AirGap:
    """A network namespace with only `lo`, and a dockerd in it with its own roots and socket."""

    def __init__(self, home: Path):
        self.home = home
        self.netns = f"hftlive-airgap-{uuid.uuid4().hex[:8]}"
        self.socket = home / "docker.sock"
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.socket}")
        self.enter = ["nsenter", f"--net=/run/netns/{self.netns}"]
        self.daemon: subprocess.Popen | None = None

    def start(self) -> None:
        run("ip", "netns", "add", self.netns)
        run("ip", "-n", self.netns, "link", "set", "lo", "up")
        # What the namespace held before dockerd added its bridges.
        self.links_at_start = [line.split(":")[1].strip()
                               for line in run("ip", "-n", self.netns, "-o", "link").stdout.splitlines()]
        log = (self.home / "dockerd.log").open("wb")
        # Its own (empty) config file: the host's daemon.json would set the host's data root.
        (self.home / "daemon.json").write_text("{}")
        # nsenter enters only the network namespace; `ip netns exec` would also remount /sys,
        # which hides the cgroup mounts dockerd needs.
        self.daemon = subprocess.Popen(
            [*self.enter, "dockerd", "--config-file", str(self.home / "daemon.json"),
             "--data-root", str(self.home / "data"),
             "--exec-root", str(self.home / "exec"), "--pidfile", str(self.home / "docker.pid"),
             "--host", f"unix://{self.socket}", "--storage-driver", "overlay2", "--log-level", "warn",
             # Its own containerd namespaces, in case it finds the host's containerd.
             "--containerd-namespace", self.netns, "--containerd-plugins-namespace", f"{self.netns}-plugins"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while self.docker("version", check=False).returncode != 0:
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the air-gapped dockerd did not start:\n" + self.log()[-3000:])
            time.sleep(0.5)

    def log(self) -> str:
        return (self.home / "dockerd.log").read_text(errors="replace")

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run("docker", *args, check=check, env=self.env)

    def inside(self, *command: str, timeout: float = 900) -> subprocess.CompletedProcess:
        """Run a command in the namespace, talking to this engine."""
        return run(*self.enter, *command, check=False, env=self.env, timeout=timeout)

    def get(self, url: str) -> dict:
        code = ("import json, sys, urllib.request; "
                "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())")
        done = self.inside(sys.executable, "-c", code, url, timeout=30)
        assert done.returncode == 0, done.stderr[-1000:]
        return json.loads(done.stdout)

    def stop(self) -> None:
        if self.daemon and self.daemon.poll() is None:
            containers = self.docker("ps", "-aq", check=False).stdout.split()
            if containers:
                self.docker("rm", "-f", *containers, check=False)
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        # Whatever it started and left (its containerd, shims) carries this folder in its command line.
        run("pkill", "-KILL", "-f", str(self.home), check=False)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(self.home))), reverse=True):
            run("umount", "-l", mount, check=False)
        run("ip", "netns", "delete", self.netns, check=False)


@pytest.fixture(scope="module")
def bundle(runtime_images, tmp_path_factory) -> Path:
    """The bundle `./hftlive bundle` writes, unpacked; with everything built it only packs."""
    out = tmp_path_factory.mktemp("bundle") / "hftlive.tar"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cli", "bundle", "-o", str(out)], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"bundle: {out.stat().st_size / 1e6:.0f} MB in {time.monotonic() - started:.0f} s")
    assert f"bundle {out}  sha256 " in done.stdout
    with tarfile.open(out) as tar:
        names = tar.getnames()
        top = names[0].split("/")[0]
        assert all(n == top or n.startswith(top + "/") for n in names), "one folder, nothing outside it"
        tar.extractall(out.parent, filter="data")
    return out.parent / top


@pytest.fixture(scope="module")
def airgap():
    if os.geteuid() != 0:
        pytest.fail("the air-gap test needs root (a network namespace and a second dockerd); CI runs as root")
    home = Path(tempfile.mkdtemp(prefix="hftlive-ag-", dir="/tmp"))   # short: unix socket paths
    engine = AirGap(home)
    try:
        engine.start()
        yield engine
    finally:
        engine.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_the_bundle_is_whole_and_described(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    listed = dict(line.split() for line in (bundle / "images.txt").read_text().splitlines())
    assert sorted(listed) == ["hftlive/bot:latest", "hftlive/connector:latest", "hftlive/service-mock:latest",
                              "hftlive/service:latest", "hftlive/simulator:latest"]
    assert {i["ref"]: i["id"] for i in manifest["images"]} == listed
    assert all(i.startswith("sha256:") for i in listed.values())
    sums = dict(reversed(line.split("  ", 1)) for line in (bundle / "SHA256SUMS").read_text().splitlines())
    on_disk = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert set(sums) == on_disk, "SHA256SUMS covers every file"
    for name in ("install.sh", "compose.yaml", ".env.example", "channel.toml", "README", "sbom.cdx.json",
                 "images.tar.gz", "wheels/requirements-cp311.txt", "wheels/manifest.json"):
        assert name in sums, name
    assert any(w["file"].startswith("wheels/hftbacktest-") for w in manifest["wheels"])
    text = (bundle / "sbom.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(text) is None, "a valid CycloneDX 1.5 document"
    sbom = json.loads(text)
    names = {c["name"] for c in sbom["components"]}
    assert {"hftbacktest", "fastapi", "numpy", "hftlive/service"} <= names, sorted(names)[:20]


def test_install_on_an_engine_that_has_never_seen_a_network(bundle, airgap):
    # The namespace really is cut off: it had only a loopback interface, it has no default route
    # (a documentation-range address, 192.0.2.1, is unreachable: a route lookup, nothing is sent),
    # and the engine is empty.
    assert airgap.links_at_start == ["lo"]
    assert run("ip", "-n", airgap.netns, "route", "show", "default").stdout.strip() == ""
    lookup = run("ip", "-n", airgap.netns, "route", "get", "192.0.2.1", check=False)
    assert lookup.returncode != 0 and "unreachable" in lookup.stderr.lower(), lookup.stdout + lookup.stderr
    assert airgap.docker("images", "-q").stdout.split() == []

    # One byte changed in the image archive: refused, named, and nothing loaded.
    archive = bundle / "images.tar.gz"
    with archive.open("r+b") as f:
        f.seek(archive.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    try:
        refused = airgap.inside("sh", str(bundle / "install.sh"), "--dir", str(airgap.home / "site"))
    finally:
        with archive.open("r+b") as f:
            f.seek(archive.stat().st_size // 2)
            f.write(byte)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "DIFFERS  images.tar.gz" in refused.stderr
    assert "nothing was loaded" in refused.stderr.strip().splitlines()[-1]
    assert airgap.docker("images", "-q").stdout.split() == []
    assert not (airgap.home / "site").exists()

    verified = airgap.inside("sh", str(bundle / "install.sh"), "--verify")
    assert verified.returncode == 0 and "verified" in verified.stdout, verified.stderr

    # The install: images loaded and checked, live + sim healthy, the simulator's book served live.
    started = time.monotonic()
    first = airgap.inside("sh", str(bundle / "install.sh"), "--dir", str(airgap.home / "site"))
    took = time.monotonic() - started
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    print(f"install on the empty engine: {took:.0f} s\n{first.stdout}")
    assert f"{SERVICE}/" in first.stdout.strip().splitlines()[-1]
    manifest = json.loads((bundle / "manifest.json").read_text())
    for image in manifest["images"]:
        assert airgap.docker("image", "inspect", "--format", "{{.Id}}", image["ref"]).stdout.strip() == image["id"]
    status = airgap.get(f"{SERVICE}/v1/status")
    assert status["source"] == "live" and status["exchange"] == "simulator", status
    book = airgap.get(f"{SERVICE}/v1/book?symbol=BTCUSDT")
    assert book["source"] == "live" and book["bids"] and book["asks"], book

    # The same bundle again: nothing loaded, nothing restarted, the settings untouched.
    site_env = airgap.home / "site" / ".env"
    env_before = (site_env.read_text(), site_env.stat().st_mtime_ns)
    state = "{{.Id}} {{.State.StartedAt}}"
    containers = sorted(airgap.docker("ps", "-q").stdout.split())
    before = [airgap.docker("inspect", "--format", state, c).stdout for c in containers]
    second = airgap.inside("sh", str(bundle / "install.sh"), "--dir", str(airgap.home / "site"))
    assert second.returncode == 0, second.stderr[-3000:]
    assert "nothing to load" in second.stdout and "kept your settings" in second.stdout
    assert sorted(airgap.docker("ps", "-q").stdout.split()) == containers
    assert [airgap.docker("inspect", "--format", state, c).stdout for c in containers] == before
    assert (site_env.read_text(), site_env.stat().st_mtime_ns) == env_before

    # An upgrade: the host holds another image under one of the bundle's tags (as after bundle N),
    # and the operator changed a setting. The installer loads, the tag points at the bundle's image
    # again, and the operator's setting stays.
    ids = {i["ref"]: i["id"] for i in manifest["images"]}
    airgap.docker("tag", ids["hftlive/simulator:latest"], "hftlive/service-mock:latest")
    site_env.write_text(site_env.read_text().replace("SIM_RATE=50", "SIM_RATE=20"))
    third = airgap.inside("sh", str(bundle / "install.sh"), "--dir", str(airgap.home / "site"))
    assert third.returncode == 0, third.stderr[-3000:]
    assert "loading 5 images" in third.stdout and "kept your settings" in third.stdout
    for image in manifest["images"]:
        assert airgap.docker("image", "inspect", "--format", "{{.Id}}", image["ref"]).stdout.strip() == image["id"]
    assert "SIM_RATE=20" in site_env.read_text()
    simulator = airgap.docker("ps", "-q", "--filter", "label=com.docker.compose.service=simulator").stdout.split()
    settings = airgap.docker("inspect", "--format", "{{json .Config.Env}}", *simulator).stdout
    assert "SIM_RATE=20" in settings
