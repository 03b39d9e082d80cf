"""Build the wheelhouse with Dockerfile.build into ./wheels without losing files: the export
replaces the previous wheelhouse (wheels/README.md stays) only once its SHA256SUMS verifies."""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from . import bases, buildx, inputs
from .progress import Step, fail
from .versions import ROOT, load

WHEELHOUSE = ROOT / "wheels"
KEEP = {"README.md"}
# The builder's base: the runtime images' own, so a fresh machine bootstraps one base, not two.
BUILD_BASE = "python3.11-bookworm"


def verify(directory: Path) -> list[str]:
    """Problems with a wheelhouse's SHA256SUMS (empty list: every file listed and matching)."""
    sums = directory / "SHA256SUMS"
    if not sums.is_file():
        return [f"{sums} is missing"]
    problems = []
    listed = {}
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
        path = directory / name
        if not path.is_file():
            problems.append(f"{name} is listed but missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{name} does not match its sha256")
    for path in directory.iterdir():
        if path.is_file() and path.name not in listed and path.name not in KEEP | {"SHA256SUMS"}:
            problems.append(f"{path.name} is not listed in SHA256SUMS")
    return problems


def check_pythons(pythons: list[str] | None) -> list[str]:
    """The requested CPython versions in pinned order (so one set always hits one build cache)."""
    pinned = load()["PYTHON_VERSIONS"].split()
    unknown = sorted(set(pythons or []) - set(pinned))
    if unknown:
        fail(f"no wheels are built for CPython {', '.join(unknown)}; "
             f"choose from {' '.join(pinned)} (docker/versions.env)")
    return [v for v in pinned if v in pythons] if pythons else pinned


def build_args(wanted: list[str], *, offline: bool = False, rustup: bool = False,
               abi: str = "abi3", lto: str = "") -> dict[str, str]:
    """Dockerfile.build's arguments for a wheelhouse serving the CPython versions `wanted`.

    `lto` (thin or fat) overrides WHEEL_LTO of docker/versions.env; empty keeps the pin."""
    return {"BUILD_BASE": bases.ensure(BUILD_BASE, offline=offline), "PYTHON_VERSIONS": " ".join(wanted),
            "RUST_FROM": "rustup" if rustup else "debian", "WHEEL_ABI": abi, "WHEEL_LTO": lto,
            "HFTLIVE_INPUTS": fingerprint(wanted, abi, lto)}


def fingerprint(wanted: list[str], abi: str = "abi3", lto: str = "") -> str:
    return inputs.fingerprint(inputs.WHEELHOUSE, abi, *wanted, *([f"lto={lto}"] if lto else []))


def stale(wanted: list[str], directory: Path = WHEELHOUSE) -> str | None:
    """Why the wheelhouse must be (re)built for `wanted` (abi3), or None when it is current."""
    if not (directory / "manifest.json").is_file():
        return "there is no wheelhouse yet"
    if verify(directory):
        return "the wheelhouse does not verify"
    manifest = json.loads((directory / "manifest.json").read_text())
    if manifest.get("inputs") != fingerprint(wanted):
        return "its sources changed since it was built"
    return None


def other_sources(manifest: dict) -> bool:
    """Whether a wheelhouse was built from sources other than this checkout's, whichever options of
    `./hftlive wheels` built it (read back from what it holds). False when its manifest cannot tell."""
    if not manifest.get("inputs"):
        return False
    tags = set(manifest.get("python_tags", []))
    wanted = [v for v in load()["PYTHON_VERSIONS"].split() if "cp" + v.replace(".", "") in tags]   # pinned order
    abi = "abi3" if all(w.get("abi3") for w in manifest.get("wheels", [])) else "per-version"
    return manifest["inputs"] not in {fingerprint(wanted, abi, lto) for lto in ("", manifest.get("lto") or "")}


def build(wanted: list[str], *, offline: bool, ca: Path, rustup: bool, abi: str = "abi3",
          lto: str = "", dest: Path = WHEELHOUSE) -> Path:
    args = build_args(wanted, offline=offline, rustup=rustup, abi=abi, lto=lto)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".wheels-", dir=dest.parent) as scratch:
        out = Path(scratch) / "export"
        buildx.build("Dockerfile.build", "export", build_args=args, ca=ca,
                     output=f"type=local,dest={out}", name="wheels")
        problems = verify(out)
        if problems:
            fail("the exported wheelhouse does not verify: " + "; ".join(problems))
        with Step("wheelhouse") as step:
            dest.mkdir(exist_ok=True)
            for old in dest.iterdir():
                if old.name not in KEEP:
                    shutil.rmtree(old) if old.is_dir() else old.unlink()
            for new in out.iterdir():
                shutil.move(str(new), dest / new.name)
            step.say(f"wrote {dest}")
    summary(dest)
    return dest


def summary(directory: Path = WHEELHOUSE) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    audit_file = directory / "AUDIT.txt"
    lines = audit_file.read_text().splitlines() if audit_file.is_file() else []
    audit = {row[2].rstrip(":"): row[5] for row in map(str.split, lines) if len(row) > 5}
    print(f"\nhftbacktest {manifest['hftbacktest_version']} (features: "
          f"{', '.join(manifest['features'])}), {manifest['rustc']}, {manifest['maturin']}")
    print(f"{'wheel':<72} {'MB':>6}  auditwheel")
    for wheel in manifest["wheels"]:
        print(f"{wheel['file']:<72} {wheel['size'] / 1e6:6.1f}  {audit.get(wheel['file'], '?')}")
    connector = manifest.get("connector")
    if connector:
        print(f"{connector['file']:<72} {connector['size'] / 1e6:6.1f}  {connector['version']}")
    for tag, lock in sorted(manifest["locks"].items()):
        print(f"install ({tag}): pip install --no-index --find-links wheels --require-hashes -r wheels/{lock}")
    print("images: ./hftlive images")
