"""`./hftlive release ARTIFACTS OUT --version V`: from release.yml's artifacts (one folder each),
the files a GitHub release attaches, in OUT with an SBOM and SHA256SUMS; the notes in OUT.md,
beside OUT so that they are not attached."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import tarfile
from pathlib import Path

from .progress import fail
from .sbom import document, purl, sha256, wheel
from .versions import load

ARCHES = ("x86_64", "aarch64")
LABEL = "hftlive"   # patch 0006: our wheels' local version label


def find(artifacts: Path, arches: tuple[str, ...]) -> dict[str, dict[str, Path]]:
    """Per architecture: its wheel, connector and wheelhouse archive, or a one-line error."""
    version = load()["HFTBACKTEST_VERSION"]
    found: dict[str, dict[str, Path]] = {}
    for arch in arches:
        wheels = sorted(artifacts.glob(f"*/hftbacktest-*_{arch}.whl"))
        ours = [w for w in wheels if w.name.startswith(f"hftbacktest-{version}+{LABEL}-")]
        if len(wheels) != 1 or len(ours) != 1:
            fail(f"release: expected one hftbacktest {version}+{LABEL} wheel for {arch} under {artifacts}, "
                 f"found {[w.name for w in wheels] or 'none'}")
        files = {"wheel": ours[0]}
        for kind, pattern in (("connector", f"hftlive-connector-linux-{arch}"),
                              ("wheelhouse", f"hftlive-wheelhouse-linux-{arch}.tar.gz")):
            matches = sorted(artifacts.glob(f"*/{pattern}"))
            if len(matches) != 1:
                fail(f"release: expected one {pattern} under {artifacts}, found {len(matches)}")
            files[kind] = matches[0]
        found[arch] = files
    return found


def wheelhouse_manifest(archive: Path) -> dict:
    with tarfile.open(archive) as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith("manifest.json")), None)
        if member is None:
            fail(f"release: {archive.name} holds no manifest.json; is it a wheelhouse?")
        return json.load(tar.extractfile(member))


def sbom(version: str, sums: dict[Path, str], manifests: dict[str, dict], built_at: str) -> dict:
    """CycloneDX 1.5: every attached file (with its sha256), and every wheel in each wheelhouse."""
    components = []
    for path, digest in sorted(sums.items()):
        component = {"type": "file", "bom-ref": f"file:{path.name}", "name": path.name,
                     "hashes": [{"alg": "SHA-256", "content": digest}]}
        match = re.fullmatch(r"([A-Za-z0-9_.]+)-([^-]+)-.*\.whl", path.name)
        if match:
            component.update(type="library", name=match.group(1), version=match.group(2),
                             purl=purl(match.group(1), match.group(2)))
            component["properties"] = [{"name": "hftlive:file", "value": path.name}]
        components.append(component)
    for arch, manifest in sorted(manifests.items()):
        for entry in manifest["wheels"] + manifest["runtime_wheels"]:
            components.append(wheel(entry, f"wheelhouse-{arch}/{entry['file']}", "hftlive:wheelhouse",
                                    f"hftlive-wheelhouse-linux-{arch}.tar.gz"))
    return document(version, built_at, components)


def notes(version: str, pins: dict[str, str], sums: dict[Path, str], wheel: str, connector: str) -> str:
    listing = "\n".join(f"    {digest}  {p.name}" for p, digest in sorted(sums.items()))
    return f"""hftlive {version}: hftbacktest {pins['HFTBACKTEST_VERSION']} with the live feature
({pins['HFTBACKTEST_FEATURES']}), one abi3 wheel per architecture for CPython {pins['PYTHON_VERSIONS'].replace(' ', ', ')},
{pins['MANYLINUX_POLICY']}; the exchange connector; and each architecture's offline wheelhouse.
The loose wheels are cibuildwheel's, tested on every CPython; each wheelhouse carries the wheel
its images were built from (Dockerfile.build, the same patched source and flags, another file).

Verify, then install (README, "Releases"):

    sha256sum -c SHA256SUMS
    gh attestation verify {connector} --repo {os.environ.get("GITHUB_REPOSITORY", "OWNER/hftlive")}
    pip install ./{wheel}

Files:

{listing}
"""


def assemble(artifacts: Path, out: Path, version: str, arches: tuple[str, ...] = ARCHES) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", version):
        fail(f"release: version {version!r} is not a plain tag name (such as v1.2.0)")
    if not artifacts.is_dir():
        fail(f"release: {artifacts} is not a folder of downloaded artifacts")
    pins = load()
    found = find(artifacts, arches)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    attached, manifests = [], {}
    for arch, files in found.items():
        for kind, source in files.items():
            target = out / source.name
            shutil.copy2(source, target)
            attached.append(target)
        manifests[arch] = wheelhouse_manifest(files["wheelhouse"])
        connector = manifests[arch].get("connector") or {}
        if connector.get("sha256") != sha256(files["connector"]):
            fail(f"release: hftlive-connector-linux-{arch} is not the connector of its wheelhouse "
                 "(sha256 differs from its manifest)")
    built_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    sums = {path: sha256(path) for path in attached}   # each file hashed once
    bom = out / f"hftlive-{version}.cdx.json"
    bom.write_text(json.dumps(sbom(version, sums, manifests, built_at), indent=2) + "\n")
    sums[bom] = sha256(bom)
    (out / "SHA256SUMS").write_text("".join(f"{d}  {p.name}\n" for p, d in sorted(sums.items())))
    notes_file = out.with_name(out.name + ".md")
    first = found[arches[0]]
    notes_file.write_text(notes(version, pins, sums, first["wheel"].name, first["connector"].name))
    width = max(len(p.name) for p in sums)
    print(f"{'file':<{width}}  {'MB':>7}  sha256")
    for path, digest in sorted(sums.items()):
        print(f"{path.name:<{width}}  {path.stat().st_size / 1e6:7.1f}  {digest[:16]}…")
    print(f"release: {len(sums)} files and SHA256SUMS in {out}; notes in {notes_file}")
    return out
