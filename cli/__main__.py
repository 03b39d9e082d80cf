"""hftlive: build hftbacktest's live wheels and run the connector service, with Docker.

  ./hftlive up           build what is missing or stale, start the live path (the bundled simulator)
                         (--strategy FILE: and a bot trading FILE's strategy through the connector)
  ./hftlive test         the same builds, then every test tier (unit, integration, end to end)
  ./hftlive down         stop what `up` started
  ./hftlive setup        check (and with --install, add) Docker tooling; prepare base images
  ./hftlive wheels       build the live wheelhouse into ./wheels (Dockerfile.build)
  ./hftlive images       build the runtime images (Dockerfile.runtime)
  ./hftlive bundle       one archive for air-gapped hosts (images, compose, wheelhouse, install.sh)
  ./hftlive cibuildwheel the release workflow's cibuildwheel build of the live wheel, run here
  ./hftlive release      assemble a release's files, SBOM and SHA256SUMS (release.yml)
  ./hftlive aarch64      cross-build the aarch64 wheel and connector here, check them under qemu
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import docker.errors

from . import aptsources, bases, buildx, bundle, cibw, compose, cross, images, inputs, release, tooling, wheelhouse
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


def install_tooling(needed: list[str]) -> None:
    with Step("tooling") as step:
        try:
            tooling.install(needed, step)
        except (PermissionError, subprocess.CalledProcessError) as error:
            fail(f"could not install {', '.join(needed)}: {error}")


def cmd_setup(args: argparse.Namespace) -> int:
    needed = [c.name for c in tooling.check() if not c.ok]
    if needed and args.install:
        install_tooling(needed)
    require_tooling()
    # The builder's and the runtime images' bases; the tests prepare theirs when they need them.
    for key in dict.fromkeys([wheelhouse.BUILD_BASE, *images.TARGETS.values()]):
        bases.ensure(key, offline=args.offline)
    return 0


def cmd_bases(args: argparse.Namespace) -> int:
    unknown = [k for k in args.keys if k not in bases.BASES]
    if unknown:
        fail(f"unknown base {', '.join(unknown)}; choose from {', '.join(bases.BASES)}")
    for key in args.keys or list(bases.BASES):
        print(bases.ensure(key, offline=args.offline))
    return 0


def cmd_wheels(args: argparse.Namespace) -> int:
    pythons = wheelhouse.check_pythons(args.python)  # argument errors first, before any Docker
    ca = buildx.ca_bundle(args.ca_bundle)
    require_tooling()
    wheelhouse.build(pythons, offline=args.offline, ca=ca, rustup=args.rustup,
                     abi="per-version" if args.per_version else "abi3", lto=args.lto or "")
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    targets = args.target or list(images.TARGETS)
    manifest = images.check_wheelhouse(need_connector="connector" in targets)   # before any Docker
    if wheelhouse.other_sources(manifest):
        print("hftlive images: warning: ./wheels was not built from this checkout's sources (one of "
              f"{', '.join(inputs.WHEELHOUSE)} differs): these images get its wheels and connector as they are; "
              "`./hftlive wheels` rebuilds it (`./hftlive up` does both)", file=sys.stderr)
    ca = buildx.ca_bundle(args.ca_bundle)
    require_tooling()
    if args.push and args.offline:
        fail("--push builds on a docker-container builder, which cannot see bootstrapped local bases; "
             "drop --offline")
    if args.push:
        refs = images.push(targets, manifest, prefix=args.push, digests=Path(args.digests), ca=ca)
    else:
        refs = images.build(targets, manifest, offline=args.offline, ca=ca)
    for ref in refs:
        print(ref)
    return 0


def ensure_tooling() -> None:
    """Install what a Debian host lacks (as root), or say what to install."""
    needed = [c.name for c in tooling.check() if not c.ok]
    if needed and os.geteuid() == 0 and tooling.can_install():
        install_tooling(needed)
    if needed:
        require_tooling()   # says what is still missing, and how to get it


def prepare(targets: list[str]) -> None:
    """The wheelhouse and `targets`' images, built when absent or when their sources changed."""
    ensure_tooling()
    pythons = wheelhouse.check_pythons(None)
    why = wheelhouse.stale(pythons)
    if why:
        print(f"hftlive: building the wheelhouse: {why} (cold on 2 cores: about 7 minutes)",
              file=sys.stderr)
        wheelhouse.build(pythons, offline=False, ca=buildx.ca_bundle(None), rustup=False)
    stale = images.stale(targets)
    if stale:
        manifest = images.check_wheelhouse(need_connector="connector" in stale)
        images.build(stale, manifest, offline=False, ca=buildx.ca_bundle(None))


def cmd_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    plan = compose.plan(args.exchange, args.mock, args.strategy)   # argument errors before any Docker
    prepare([t for p in plan.profiles for t in images.PROFILES[p]])
    url = compose.up(plan)
    print(f"hftlive: up after {time.monotonic() - started:.0f} s: {url}  profile {' + '.join(plan.profiles)}, "
          f"{'exchange ' + plan.exchange if plan.exchange else 'MOCK market, no exchange'}"
          f"{', strategy ' + str(plan.strategy) if plan.strategy else ''}  (./hftlive down stops it)")
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    out = Path(args.output).resolve() if args.output else ROOT / "dist" / f"hftlive-{bundle.git_revision()}.tar"
    prepare(list(images.TARGETS))
    bundle.create(out)
    return 0


def cmd_build_here(args: argparse.Namespace) -> int:
    """`cibuildwheel` and `aarch64`: args.builder (cibw or cross) runs on this host."""
    ca = buildx.ca_bundle(args.ca_bundle)
    require_tooling()
    return args.builder.run(offline=args.offline, ca=ca)


def cmd_release(args: argparse.Namespace) -> int:
    release.assemble(Path(args.artifacts), Path(args.out), args.version,
                     tuple(args.arch) if args.arch else release.ARCHES)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    return compose.down()


def cmd_test(args: argparse.Namespace) -> int:
    if not args.pytest_args:   # the whole suite: it needs the wheelhouse and every image
        prepare(list(images.TARGETS))
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

    def command(name: str, run, help: str, **defaults) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.set_defaults(run=run, **defaults)
        return p

    def offline_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--offline", action="store_true",
                       help="never try to pull base images; bootstrap them from Debian")

    extra_ca = "extra CA certificates to trust in the build"
    command("doctor", cmd_doctor, "check the Docker engine, buildx and compose v2")

    p = command("setup", cmd_setup, "check tooling and prepare the base images")
    p.add_argument("--install", action="store_true",
                   help="install missing buildx/compose v2/debootstrap with apt (root, Debian)")
    offline_flag(p)

    p = command("bases", cmd_bases, "pull the public base images, or bootstrap them from Debian")
    p.add_argument("keys", nargs="*", metavar="BASE", help=", ".join(bases.BASES))
    offline_flag(p)

    p = command("wheels", cmd_wheels, "build the live wheelhouse into ./wheels")
    p.add_argument("--python", action="append", metavar="3.X",
                   help="serve only this CPython version (repeatable); default: all pinned")
    p.add_argument("--per-version", action="store_true",
                   help="one wheel per CPython (upstream's way) instead of one abi3 wheel")
    p.add_argument("--lto", choices=("thin", "fat"),
                   help="link-time optimisation of the live wheel (default: WHEEL_LTO in docker/versions.env)")
    p.add_argument("--ca-bundle", metavar="PEM",
                   help="CA bundle trusted by downloads in the build (default: the host's)")
    p.add_argument("--rustup", action="store_true",
                   help="use rustup's exact RUSTUP_TOOLCHAIN instead of Debian's rustc (needs internet)")
    offline_flag(p)

    p = command("images", cmd_images, "build the runtime images from Dockerfile.runtime")
    p.add_argument("--target", action="append", choices=list(images.TARGETS),
                   help="one image (repeatable); default: all")
    p.add_argument("--ca-bundle", metavar="PEM", help=extra_ca)
    p.add_argument("--push", metavar="PREFIX",
                   help="push PREFIX-TARGET by digest with SBOM and provenance (release.yml; needs a "
                   "docker-container builder and a registry login) instead of loading the images")
    p.add_argument("--digests", metavar="DIR", default="dist/digests",
                   help="with --push: where each image's digest is written (default: dist/digests)")
    offline_flag(p)

    p = command("up", cmd_up, "build what is missing or stale, start the live path and wait for it")
    p.add_argument("--exchange", metavar="NAME",
                   help=f"{' | '.join(compose.EXCHANGES)} (default: simulator, bundled; the others are real)")
    p.add_argument("--mock", action="store_true", help="the labelled mock market instead (no exchange)")
    p.add_argument("--strategy", metavar="FILE",
                   help="also run this strategy (a Python file with a numba `strategy(hbt)`) in the bot image, "
                   "trading through the connector; against the simulator with a key pair made for it")

    p = command("bundle", cmd_bundle, "one verified archive for air-gapped hosts: images, compose, "
                "wheelhouse, install.sh (builds what is missing first)")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write it (default: dist/hftlive-REVISION.tar)")

    p = command("cibuildwheel", cmd_build_here, "build and test the live wheel with cibuildwheel "
                "as release.yml does, in a local manylinux-like image (into dist/cibuildwheel)",
                builder=cibw)
    p.add_argument("--ca-bundle", metavar="PEM", help=extra_ca)
    offline_flag(p)

    p = command("aarch64", cmd_build_here, "cross-build the aarch64 live wheel and connector, "
                "check them under qemu-user (into dist/aarch64)", builder=cross)
    p.add_argument("--ca-bundle", metavar="PEM", help=extra_ca)
    offline_flag(p)

    p = command("release", cmd_release, "assemble a release from release.yml's artifacts: the "
                "files, a CycloneDX SBOM, SHA256SUMS and the notes")
    p.add_argument("artifacts", metavar="ARTIFACTS", help="the downloaded artifacts, one folder each")
    p.add_argument("out", metavar="OUT", help="the folder to write (replaced); the notes go to OUT.md")
    p.add_argument("--version", required=True, help="the release's tag, such as v1.2.0")
    p.add_argument("--arch", action="append", choices=release.ARCHES,
                   help="only this architecture (repeatable; default: both)")

    command("down", cmd_down, "stop what `up` started")
    # `test` takes no options of its own: main() hands whatever follows it to pytest.
    command("test", cmd_test, "build what is missing, run every test tier; extra args go to pytest "
            "(and skip the build)")
    return top


def main(argv: list[str] | None = None) -> int:
    args, extra = parser().parse_known_args(argv)
    if args.command == "test":
        args.pytest_args = extra  # everything after `test` belongs to pytest, `-m unit` included
    elif extra:
        fail(f"unrecognized arguments: {' '.join(extra)} (see ./hftlive {args.command} --help)")
    try:
        return args.run(args)
    except aptsources.NoDebianMirror as error:
        fail(str(error))
    except docker.errors.DockerException as error:
        fail(f"cannot talk to the Docker engine ({str(error).splitlines()[0][:160]}); "
             "is the daemon running and may you use its socket?")


if __name__ == "__main__":
    sys.exit(main())
