"""hftlive: build hftbacktest's live wheels and run the connector service, with Docker.

  ./hftlive setup        check (and with --install, add) Docker tooling; prepare base images
  ./hftlive wheels       build the live wheelhouse into ./wheels (Dockerfile.build)
  ./hftlive images       build the runtime images (Dockerfile.runtime)
  ./hftlive test         run the whole test suite (unit, then integration with containers)
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

import docker.errors

from . import aptsources, bases, buildx, images, tooling, wheelhouse
from .progress import Step, fail
from .versions import ROOT


def cmd_doctor(args: argparse.Namespace) -> int:
    missing = 0
    for item in tooling.check():
        mark = "ok     " if item.ok else ("MISSING" if item.required else "absent ")
        print(f"{mark} {item.name:<18} {item.detail}")
        if not item.ok:
            missing += item.required
            print(f"        how to fix: {item.remedy}")
    return 1 if missing else 0


def require_tooling() -> None:
    if cmd_doctor(argparse.Namespace()) != 0:
        fail("Docker tooling is missing (see above); `./hftlive setup --install` adds it on "
             "Debian as root")


def cmd_setup(args: argparse.Namespace) -> int:
    needed = [c.name for c in tooling.check() if not c.ok]
    if needed and args.install:
        with Step("tooling") as step:
            try:
                tooling.install(needed, step)
            except (PermissionError, subprocess.CalledProcessError) as error:
                fail(f"could not install {', '.join(needed)}: {error}")
    require_tooling()
    for key in bases.BASES:
        bases.ensure(key, offline=args.offline)
    return 0


def cmd_bases(args: argparse.Namespace) -> int:
    for key in args.keys or list(bases.BASES):
        print(bases.ensure(key, offline=args.offline))
    return 0


def cmd_wheels(args: argparse.Namespace) -> int:
    pythons = wheelhouse.check_pythons(args.python)  # argument errors first, before any Docker
    ca = buildx.ca_bundle(args.ca_bundle)
    require_tooling()
    wheelhouse.build(pythons, offline=args.offline, ca=ca, rustup=args.rustup)
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    targets = args.target or list(images.TARGETS)
    manifest = images.check_wheelhouse(need_connector="connector" in targets)   # before any Docker
    ca = buildx.ca_bundle(args.ca_bundle)
    require_tooling()
    for ref in images.build(targets, manifest, offline=args.offline, ca=ca):
        print(ref)
    return 0


def cmd_compose(args: argparse.Namespace) -> int:
    profiles = args.profile or ["mock"]
    unknown = sorted(set(profiles) - set(images.PROFILES))
    if unknown:
        fail(f"no compose profile {', '.join(unknown)}; choose from {', '.join(images.PROFILES)}")
    command = ["docker", "compose"] + [arg for p in profiles for arg in ("--profile", p)]
    if args.command == "down":
        return subprocess.call(command + ["down"], cwd=ROOT)
    require_tooling()
    missing = [t for p in profiles for t in images.PROFILES[p] if not images.present(t)]
    if missing:   # first run: build what the profile needs from the wheelhouse
        manifest = images.check_wheelhouse(need_connector="connector" in missing)
        images.build(missing, manifest, offline=False, ca=buildx.ca_bundle(None))
    code = subprocess.call(command + ["up", "--detach", "--wait", "--wait-timeout", "120"], cwd=ROOT)
    if code == 0:
        dotenv = dict(line.split("=", 1) for line in (ROOT / ".env").read_text().splitlines()
                      if "=" in line and not line.lstrip().startswith("#")) if (ROOT / ".env").is_file() else {}
        port = os.environ.get("HFTLIVE_PORT") or dotenv.get("HFTLIVE_PORT", "").strip() or "8000"
        print(f"hftlive: up; the page is at http://127.0.0.1:{port}/ "
              f"(`./hftlive down{''.join(' --profile ' + p for p in args.profile or [])}` stops it)")
    return code


def cmd_test(args: argparse.Namespace) -> int:
    command = [sys.executable, "-m", "pytest", *(args.pytest_args or [str(ROOT / "tests")])]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = subprocess.call(command, env=env)
    if code == 5:
        print("hftlive: pytest collected no tests; that is a failure", file=sys.stderr)
        return 1
    return code


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="hftlive", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def offline_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--offline", action="store_true",
                       help="never try to pull base images; bootstrap them from Debian")

    p = sub.add_parser("doctor", help="check the Docker engine, buildx and compose v2")
    p.set_defaults(run=cmd_doctor)

    p = sub.add_parser("setup", help="check tooling and prepare the base images")
    p.add_argument("--install", action="store_true",
                   help="install missing buildx/compose v2/debootstrap with apt (root, Debian)")
    offline_flag(p)
    p.set_defaults(run=cmd_setup)

    p = sub.add_parser("bases", help="pull the public base images, or bootstrap them from Debian")
    p.add_argument("keys", nargs="*", metavar="BASE", help=", ".join(bases.BASES))
    offline_flag(p)
    p.set_defaults(run=cmd_bases)

    p = sub.add_parser("wheels", help="build the live wheelhouse into ./wheels")
    p.add_argument("--python", action="append", metavar="3.X",
                   help="build only this CPython version (repeatable); default: all pinned")
    p.add_argument("--ca-bundle", metavar="PEM",
                   help="CA bundle trusted by downloads in the build (default: the host's)")
    p.add_argument("--rustup", action="store_true",
                   help="use rustup's exact RUSTUP_TOOLCHAIN instead of Debian's rustc (needs internet)")
    offline_flag(p)
    p.set_defaults(run=cmd_wheels)

    p = sub.add_parser("images", help="build the runtime images from Dockerfile.runtime")
    p.add_argument("--target", action="append", choices=list(images.TARGETS),
                   help="one image (repeatable); default: all")
    p.add_argument("--ca-bundle", metavar="PEM", help="extra CA certificates to trust in the build")
    offline_flag(p)
    p.set_defaults(run=cmd_images)

    for name, text in (("up", "start a compose profile (default: mock)"), ("down", "stop it")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--profile", action="append", help="compose profile (repeatable)")
        p.set_defaults(run=cmd_compose)

    p = sub.add_parser("test", help="run the test suite (pytest); extra args go to pytest")
    p.set_defaults(run=cmd_test, pytest_args=[])
    return top


def main(argv: list[str] | None = None) -> int:
    args, extra = parser().parse_known_args(argv)
    if args.command == "test":
        args.pytest_args = extra  # everything after `test` belongs to pytest, `-m unit` included
    elif extra:
        fail(f"unrecognized arguments: {' '.join(extra)} (see ./hftlive {args.command} --help)")
    if args.command == "bases":
        unknown = [k for k in args.keys if k not in bases.BASES]
        if unknown:
            fail(f"unknown base {', '.join(unknown)}; choose from {', '.join(bases.BASES)}")
    try:
        return args.run(args)
    except aptsources.NoDebianMirror as error:
        fail(str(error))
    except docker.errors.DockerException as error:
        fail(f"cannot talk to the Docker engine ({str(error).splitlines()[0][:160]}); "
             "is the daemon running and may you use its socket?")


if __name__ == "__main__":
    sys.exit(main())
