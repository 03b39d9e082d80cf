"""`./hftlive cibuildwheel`: release.yml's build of the live wheel (docker/build/cibw) on this host,
in `manylinux-local` (Dockerfile.build) for hosts that cannot pull the manylinux_2_28 image."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import bases, buildx, wheelhouse
from .progress import Step, fail
from .versions import ROOT

IMAGE = "hftlive/manylinux-local"
OUT = ROOT / "dist" / "cibuildwheel"
ARCH = platform.machine()   # the image is built for this machine: x86_64, or aarch64
# The image has one build interpreter, Debian's CPython 3.11: the abi3 wheel is built for it.
ONLY = f"cp311-manylinux_{ARCH}"


def overrides(image: str, ca: Path) -> dict[str, str]:
    """What the local run adds to docker/build/cibw's environment; README lists each and why."""
    return {
        # the local manylinux-like image instead of pypa's manylinux_2_28 for this architecture
        f"CIBW_MANYLINUX_{ARCH.upper()}_IMAGE": image,
        # the host's CA bundle, read-only over the image's, for downloads through a TLS proxy
        "CIBW_CONTAINER_ENGINE": f"docker; create_args: --volume {ca}:/etc/ssl/certs/ca-certificates.crt:ro",
        # the image's glibc (Debian 12, 2.36) is newer than the policy's 2.28: zig links for 2.28
        "HFTLIVE_MATURIN_EXTRA": "--zig",
        # uv on the host (cibuildwheel's abi3 audit venv) trusts the system's CA store
        "UV_SYSTEM_CERTS": "1",
        # cibuildwheel 4.3.5 pins its own tools (the audit's abi3audit) to a certifi this host's
        # package index does not have yet; take the newest it has
        "CIBW_DEPENDENCY_VERSIONS": "latest",
    }


def build_image(*, offline: bool, ca: Path) -> str:
    tag = f"{IMAGE}:latest"
    base = bases.ensure(wheelhouse.BUILD_BASE, offline=offline)
    buildx.build("Dockerfile.build", "manylinux-local", build_args={"BUILD_BASE": base}, ca=ca,
                 tag=tag, name="manylinux-local")
    return tag


def run(*, offline: bool, ca: Path, out: Path = OUT) -> int:
    bin_dir = Path(sys.executable).parent
    if shutil.which("cibuildwheel", path=str(bin_dir)) is None:
        fail(f"cibuildwheel is not installed in {bin_dir.parent} (service/requirements-test.txt); "
             "run this as ./hftlive cibuildwheel, which installs it")
    started = time.monotonic()
    image = build_image(offline=offline, ca=ca)
    if out.exists():
        shutil.rmtree(out)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", **overrides(image, ca))
    command = [str(ROOT / "docker" / "build" / "cibw"), "build", str(out), "--only", ONLY]
    with Step("cibuildwheel") as step:
        step.say(f"{' '.join(command[1:])} in {image} (the wheel's cold build takes about 7 minutes)")
        code = subprocess.call(command, env=env, cwd=ROOT)
    if code != 0:
        fail(f"cibuildwheel failed (exit {code}); its output is above")
    wheels = sorted(out.glob("*.whl"))
    if len(wheels) != 1:
        fail(f"cibuildwheel left {len(wheels)} wheels in {out}, expected one")
    print(f"hftlive: cibuildwheel built and tested {wheels[0].relative_to(ROOT)} "
          f"({wheels[0].stat().st_size / 1e6:.1f} MB) in {time.monotonic() - started:.0f} s")
    return 0
