"""`./hftlive bundle`: everything an air-gapped host needs, in one plain tar it can verify: the
images, compose.yaml and its settings, the wheelhouse, install.sh, an SBOM and SHA256SUMS."""
from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from . import images
from .sbom import document, purl, sha256, wheel
from .progress import Step, fail
from .versions import ROOT, load
from .wheelhouse import WHEELHOUSE, verify

BUNDLE_FILES = ROOT / "docker" / "bundle"
# bundle name -> file in the checkout
COPIED = {"compose.yaml": ROOT / "compose.yaml", ".env.example": ROOT / ".env.example",
          "channel.toml": ROOT / "docker" / "channel.toml",
          "install.sh": BUNDLE_FILES / "install.sh", "README": BUNDLE_FILES / "README"}
# Lists every Python distribution an image's interpreter sees (run in the image, no network).
LIST_DISTRIBUTIONS = ("import importlib.metadata as m, json; print(json.dumps(sorted("
                      "{(d.metadata['Name'], d.version) for d in m.distributions()})))")


def git_revision() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=12"],
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def image_id(ref: str) -> str:
    done = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref],
                          capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"image {ref} is missing; build it with ./hftlive images")
    return done.stdout.strip()


def save_images(refs: list[str], dest: Path, step: Step) -> None:
    """`docker save` of all refs at once (shared layers once), gzipped as it streams (as
    `docker load` reads it)."""
    saving = subprocess.Popen(["docker", "save", *refs], stdout=subprocess.PIPE)
    written = 0
    with gzip.open(dest, "wb", compresslevel=6) as out:
        for block in iter(lambda: saving.stdout.read(1 << 22), b""):
            out.write(block)
            written += len(block)
            if time.monotonic() - step.said_at >= 10:
                step.say(f"{written >> 20} MiB saved")
    if saving.wait() != 0:
        fail(f"docker save {' '.join(refs)} failed")
    step.say(f"{written >> 20} MiB of layers, {dest.stat().st_size >> 20} MiB compressed")


def distributions(ref: str) -> list[tuple[str, str]]:
    done = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python3",
                           ref, "-c", LIST_DISTRIBUTIONS], capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"could not list the Python packages of {ref}: {done.stderr.strip()[-300:]}")
    return [tuple(pair) for pair in json.loads(done.stdout)]


def sbom(revision: str, built_at: str, image_ids: dict[str, str], packages: dict[str, list],
         wheelhouse: dict) -> dict:
    """CycloneDX 1.5: the images, every Python package in them, and the wheelhouse's wheels."""
    components = []
    for ref, ident in image_ids.items():
        name = ref.split(":")[0]
        components.append({"type": "container", "bom-ref": f"image:{ref}", "name": name,
                           "version": ident, "hashes": [{"alg": "SHA-256", "content": ident.split(":")[1]}]})
    users: dict[tuple[str, str], list[str]] = {}
    for ref, found in packages.items():
        for name, version in found:
            users.setdefault((name, version), []).append(ref)
    for (name, version), refs in sorted(users.items()):
        ref = purl(name, version)
        components.append({"type": "library", "bom-ref": f"{ref}#image", "name": name, "version": version,
                           "purl": ref, "properties": [{"name": "hftlive:image", "value": r} for r in refs]})
    for entry in wheelhouse["wheels"] + wheelhouse["runtime_wheels"]:
        path = f"wheels/{entry['file']}"
        components.append(wheel(entry, path, "hftlive:file", path))
    return document(revision, built_at, components)


def create(out: Path) -> Path:
    """Write the bundle to `out` (the wheelhouse and every runtime image must be current)."""
    problems = verify(WHEELHOUSE)
    if problems:
        fail(f"the wheelhouse does not verify ({'; '.join(problems[:3])}); rebuild it with ./hftlive wheels")
    wheelhouse = json.loads((WHEELHOUSE / "manifest.json").read_text())
    revision = git_revision()
    built_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    refs = [images.tag(target) for target in images.TARGETS]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".bundle-", dir=out.parent) as scratch:
        folder = Path(scratch) / f"hftlive-{revision}"
        (folder / "wheels").mkdir(parents=True)
        with Step("bundle") as step:
            for name, source in COPIED.items():
                shutil.copy2(source, folder / name)
            for wheel in WHEELHOUSE.iterdir():
                if wheel.is_file():
                    shutil.copy2(wheel, folder / "wheels" / wheel.name)
            image_ids = {ref: image_id(ref) for ref in refs}
            (folder / "images.txt").write_text("".join(f"{r} {i}\n" for r, i in image_ids.items()))
            step.say(f"saving {len(refs)} images")
            save_images(refs, folder / "images.tar.gz", step)
            if {ref: image_id(ref) for ref in refs} != image_ids:
                fail("an image was rebuilt while the bundle was saved; run ./hftlive bundle again")
            packages = {ref: distributions(ref) for ref in refs}
            known = {folder / "images.tar.gz": sha256(folder / "images.tar.gz")}   # hashed once
            manifest = {
                "hftlive": revision, "built_at": built_at,
                "hftbacktest": load()["HFTBACKTEST_VERSION"],
                "connector": wheelhouse.get("connector"),
                "images": [{"ref": r, "id": i} for r, i in image_ids.items()],
                "images_archive": {"file": "images.tar.gz", "sha256": known[folder / "images.tar.gz"]},
                "wheels": [{"file": f"wheels/{w['file']}", "sha256": w["sha256"]}
                           for w in wheelhouse["wheels"] + wheelhouse["runtime_wheels"]],
                "wheelhouse_inputs": wheelhouse.get("inputs"),
            }
            (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            (folder / "sbom.cdx.json").write_text(
                json.dumps(sbom(revision, built_at, image_ids, packages, wheelhouse), indent=2) + "\n")
            listed = sorted(p for p in folder.rglob("*") if p.is_file())
            (folder / "SHA256SUMS").write_text(
                "".join(f"{known.get(p) or sha256(p)}  {p.relative_to(folder)}\n" for p in listed))
            partial = out.with_name(out.name + ".partial")
            with tarfile.open(partial, "w") as tar:
                tar.add(folder, arcname=folder.name, filter=owned_by_root)
            partial.replace(out)
            step.say(f"wrote {out} ({out.stat().st_size / 1e6:.0f} MB)")
    print(f"hftlive: bundle {out}  sha256 {sha256(out)}")
    print(f"hftlive: its SHA256SUMS has sha256 {sha256_of_member(out, f'hftlive-{revision}/SHA256SUMS')}; "
          f"send both by another channel: the operator checks the archive with sha256sum before unpacking")
    return out


def owned_by_root(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """Files unpacked by root keep the owner recorded: record root, not the builder's uid."""
    member.uid = member.gid = 0
    member.uname = member.gname = "root"
    return member


def sha256_of_member(archive: Path, member: str) -> str:
    with tarfile.open(archive) as tar:
        return hashlib.sha256(tar.extractfile(member).read()).hexdigest()
