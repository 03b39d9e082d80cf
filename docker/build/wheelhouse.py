"""Complete the wheelhouse: runtime wheels per CPython, hash-pinned locks, SHA256SUMS, manifest.

Usage: wheelhouse.py WHEELHOUSE PATCH_DIR SERVICE_REQUIREMENTS VERSION... (CPython versions, each
gets its locks). Runs in the build image after the audit; the pins come from
/etc/hftlive/versions.env. Afterwards, on a host with no network:
    pip install --no-index --find-links wheels --require-hashes -r wheels/requirements-cp3XY.txt
and, for the connector service, -r wheels/requirements-service-cp3XY.txt as well.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

VERSIONS = Path("/etc/hftlive/versions.env")
# Runtime wheels for the build's own machine (x86_64, or aarch64 on an arm runner).
PLATFORMS = [f"{tag}_{os.uname().machine}" for tag in
             ("manylinux_2_28", "manylinux_2_27", "manylinux_2_17", "manylinux2014")]


def pins() -> dict[str, str]:
    values = {}
    for line in VERSIONS.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = " ".join(shlex.split(value))
    return values


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def command_version(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def wheel_project(name: str) -> tuple[str, str]:
    project, version = name.split("-")[:2]
    return project.lower().replace("_", "-"), version


def download(root: Path, tag: str, requirements: list[str], deps: bool) -> list[Path]:
    """Binary wheels for one CPython tag into root; returns the files this request resolved to."""
    python = f"3.{tag[3:]}"
    with tempfile.TemporaryDirectory(dir=root.parent) as scratch:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
                   "--implementation", "cp", "--python-version", python, "--abi", tag,
                   "--dest", scratch]
        if not deps:
            command.append("--no-deps")
        for platform in PLATFORMS:
            command += ["--platform", platform]
        subprocess.run(command + requirements, check=True)
        files = []
        for wheel in sorted(Path(scratch).glob("*.whl")):
            target = root / wheel.name
            if not target.exists():
                shutil.move(str(wheel), target)
            files.append(target)
        return files


def lock_lines(wheels: list[Path]) -> list[str]:
    return [f"{project}=={version} \\\n    --hash=sha256:{sha256(w)}"
            for w in wheels for project, version in [wheel_project(w.name)]]


def serves(wheel: str, tag: str) -> bool:
    """Whether our wheel installs on CPython `tag` (cp313): its own tag, or abi3 from an older one."""
    python, abi = re.search(r"-(cp3\d+)-(cp3\d+|abi3)-", wheel).groups()
    return python == tag if abi != "abi3" else int(python[3:]) <= int(tag[3:])


def connector_entry(binary: Path) -> dict | None:
    """The exchange connector binary built beside the wheels (Dockerfile.runtime's connector image)."""
    if not binary.is_file():
        return None
    version = command_version(str(binary), "--version")
    return {"file": binary.name, "sha256": sha256(binary), "size": binary.stat().st_size, "version": version}


def main(house: str, patch_dir: str, service_requirements: str, *pythons: str) -> int:
    root = Path(house)
    values = pins()
    ours = sorted(root.glob("hftbacktest-*.whl"))
    tags = sorted({"cp" + v.replace(".", "") for v in pythons}, key=lambda t: int(t[3:]))
    unserved = [t for t in tags if not any(serves(w.name, t) for w in ours)]
    if unserved:
        print(f"wheelhouse: no hftbacktest wheel installs on {', '.join(unserved)} "
              f"(built: {', '.join(w.name for w in ours) or 'none'})", file=sys.stderr)
        return 1
    locks = {}
    service_locks = {}
    for tag in tags:
        python = f"3.{tag[3:]}"
        runtime = values.get("RUNTIME_PINS_" + tag.upper(), values["RUNTIME_PINS"]).split()
        print(f"wheelhouse: CPython {python}: downloading {' '.join(runtime)}", flush=True)
        files = download(root, tag, runtime, deps=False)
        wanted = {wheel_project(f"{p.split('==')[0]}-{p.split('==')[1]}") for p in runtime}
        ours_for_tag = [w for w in ours if serves(w.name, tag)]
        lines = [f"# hftlive wheelhouse lock for CPython {python}: hftbacktest {values['HFTBACKTEST_VERSION']}"
                 f" (features: {values['HFTBACKTEST_FEATURES']}) and what it imports.",
                 "# pip install --no-index --find-links wheels --require-hashes "
                 f"-r wheels/requirements-{tag}.txt"]
        lines += lock_lines(ours_for_tag + files)
        if {wheel_project(w.name) for w in files} != wanted:
            print(f"wheelhouse: CPython {python}: expected wheels for {sorted(wanted)}, found "
                  f"{[w.name for w in files]}", file=sys.stderr)
            return 1
        lock = root / f"requirements-{tag}.txt"
        lock.write_text("\n".join(lines) + "\n")
        locks[tag] = lock.name
        # The connector service's web stack, with everything it pulls in, for offline images.
        pinned = [line.split("#")[0].strip() for line in Path(service_requirements).read_text().splitlines()]
        print(f"wheelhouse: CPython {python}: downloading the service's requirements", flush=True)
        service = download(root, tag, [p for p in pinned if p], deps=True)
        lock = root / f"requirements-service-{tag}.txt"
        lock.write_text("\n".join(
            [f"# hftlive wheelhouse lock for CPython {python}: the connector service (service/requirements.txt).",
             "# pip install --no-index --find-links wheels --require-hashes "
             f"-r wheels/requirements-service-{tag}.txt"] + lock_lines(service)) + "\n")
        service_locks[tag] = lock.name

    patches = sorted(Path(patch_dir).glob("*.patch"))
    manifest = {
        "hftbacktest_version": values["HFTBACKTEST_VERSION"],
        "sdist": f"hftbacktest-{values['HFTBACKTEST_VERSION']}.tar.gz",
        "sdist_sha256": values["HFTBACKTEST_SDIST_SHA256"],
        "features": values["HFTBACKTEST_FEATURES"].split(),
        "patches": [{"name": p.name, "sha256": sha256(p)} for p in patches],
        "rustc": command_version("rustc", "--version"),
        "cargo": command_version("cargo", "--version"),
        "maturin": command_version("maturin", "--version"),
        "zig": command_version(sys.executable, "-m", "ziglang", "version"),
        "manylinux_policy": values["MANYLINUX_POLICY"],
        "python_tags": tags,
        "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "wheels": [{"file": w.name, "sha256": sha256(w), "size": w.stat().st_size,
                    "abi3": "-abi3-" in w.name} for w in ours],
        "runtime_wheels": [{"file": w.name, "sha256": sha256(w)}
                           for w in sorted(root.glob("*.whl")) if w not in ours],
        "locks": locks,
        "service_locks": service_locks,
        "connector": connector_entry(root / "hftlive-connector"),
        "lto": os.environ.get("WHEEL_LTO") or values["WHEEL_LTO"],
        "inputs": os.environ.get("HFTLIVE_INPUTS") or None,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    sums = [f"{sha256(p)}  {p.name}" for p in sorted(root.iterdir())
            if p.is_file() and p.name != "SHA256SUMS"]
    (root / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    print(f"wheelhouse: {len(ours)} hftbacktest wheel(s), locks for {', '.join(tags)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
