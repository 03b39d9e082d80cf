"""Build the runtime images (Dockerfile.runtime) from the wheelhouse, tagged hftlive/<target>:latest."""
from __future__ import annotations

import datetime as dt
import json
import platform
import re
import subprocess
import tomllib
from pathlib import Path

from . import bases, buildx, inputs
from .progress import fail
from .versions import ROOT, runtime_facts
from .wheelhouse import WHEELHOUSE, verify

DOCKERFILE = ROOT / "Dockerfile.runtime"
CONNECTOR = ROOT / "connector"
# docker/runtime.env: every key is a build arg of Dockerfile.runtime, which has no defaults for them.
FACTS = runtime_facts()
SERVICE_PYTHON = FACTS["SERVICE_PYTHON"]
BASE = f"python{SERVICE_PYTHON}-bookworm"   # the runtime images' base: a key of bases.BASES
SERVICE_TAG = "cp" + SERVICE_PYTHON.replace(".", "")   # the wheelhouse must have this CPython's locks
# The images people run, in build order, and the base each starts from.
TARGETS = dict.fromkeys(("service-mock", "service", "connector", "simulator", "bot"), BASE)
# compose.yaml's profiles and the images each runs.
PROFILES = {"mock": ["service-mock"], "live": ["service", "connector"], "sim": ["simulator"], "bot": ["bot"]}
BASE_ARG = {BASE: "SERVICE_BASE"}
LABEL_INPUTS = "io.hftlive.inputs"


def tag(target: str) -> str:
    return f"hftlive/{target}:latest"


def present(target: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag(target)], capture_output=True).returncode == 0


def stale(targets: list[str]) -> list[str]:
    """The targets whose image is missing or was built from other sources or another wheelhouse."""
    current = inputs.fingerprint(inputs.IMAGES)
    found = []
    for target in targets:
        done = subprocess.run(["docker", "image", "inspect", "--format",
                               f'{{{{ index .Config.Labels "{LABEL_INPUTS}" }}}}', tag(target)],
                              capture_output=True, text=True)
        if done.returncode != 0 or done.stdout.strip() != current:
            found.append(target)
    return found


def stages(dockerfile: Path = DOCKERFILE) -> list[str]:
    return re.findall(r"^FROM\s+\S+\s+AS\s+([\w-]+)", dockerfile.read_text(), re.M | re.I)


def check_wheelhouse(directory: Path = WHEELHOUSE, need_connector: bool = False) -> dict:
    """The wheelhouse's manifest, once it verifies and holds the service images' locks."""
    if BASE not in bases.BASES:
        fail(f"docker/runtime.env asks for CPython {SERVICE_PYTHON}, but cli/bases.py has no base {BASE}; "
             "add it to BASES there, or change SERVICE_PYTHON")
    if not (directory / "manifest.json").is_file():
        fail(f"there is no wheelhouse in {directory}; build it first with `./hftlive wheels` "
             "(or `make wheelhouse`)")
    problems = verify(directory)
    if problems:
        fail(f"the wheelhouse in {directory} does not verify ({'; '.join(problems[:3])}); "
             "rebuild it with `./hftlive wheels`")
    manifest = json.loads((directory / "manifest.json").read_text())
    if SERVICE_TAG not in manifest.get("service_locks", {}) or SERVICE_TAG not in manifest.get("locks", {}):
        fail(f"the wheelhouse has no CPython {SERVICE_PYTHON} locks for the service images (it has "
             f"{', '.join(manifest.get('python_tags', [])) or 'none'}); "
             f"rebuild it with `./hftlive wheels --python {SERVICE_PYTHON}`")
    if need_connector and not manifest.get("connector"):
        fail("the wheelhouse has no exchange connector (hftlive-connector); it was built before the "
             "connector existed: rebuild it with `./hftlive wheels`")
    return manifest


def revision() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True,
                               text=True, check=True).stdout.strip()
        return out + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def connector_versions(directory: Path = CONNECTOR) -> dict[str, str]:
    """The connector's version (Cargo.toml) and the hftbacktest crate it is built on (Cargo.lock,
    what cargo resolved), for the connector image's labels."""
    package = tomllib.loads((directory / "Cargo.toml").read_text())["package"]
    locked = tomllib.loads((directory / "Cargo.lock").read_text())["package"]
    crates = [p["version"] for p in locked if p["name"] == "hftbacktest"]
    if len(crates) != 1:
        fail(f"{directory / 'Cargo.lock'} locks {len(crates)} versions of hftbacktest, not one")
    return {"CONNECTOR_VERSION": package["version"], "HFTBACKTEST_CRATE": crates[0]}


def build_args(manifest: dict, base_refs: dict[str, str]) -> dict[str, str]:
    args = {BASE_ARG[key]: ref for key, ref in base_refs.items()}
    args.update(FACTS)
    args.update(connector_versions())
    args.update({
        "HFTLIVE_REVISION": revision(),
        "HFTLIVE_CREATED": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "HFTBACKTEST_VERSION": manifest["hftbacktest_version"],
        "HFTBACKTEST_FEATURES": " ".join(manifest["features"]),
        "HFTBACKTEST_PATCHES": " ".join(p["name"] for p in manifest["patches"]) or "none",
        "HFTLIVE_INPUTS": inputs.fingerprint(inputs.IMAGES),
    })
    return args


def push_options(prefix: str, target: str, metadata: Path) -> tuple[str, list[str]]:
    """The output and flags that push one image by digest, with SBOM and provenance attestations
    (release.yml; needs a docker-container builder). The digest lands in `metadata`."""
    output = f"type=image,name={prefix}-{target},push-by-digest=true,name-canonical=true,push=true"
    return output, ["--sbom=true", "--provenance=mode=max", "--metadata-file", str(metadata)]


def push(wanted: list[str], manifest: dict, *, prefix: str, digests: Path, ca: Path) -> list[str]:
    """Build and push `wanted` for this machine's architecture by digest; write each digest to
    digests/TARGET-ARCH (release.yml joins the two architectures under the version's tag)."""
    base_refs = {key: bases.ensure(key) for key in {TARGETS[t] for t in wanted}}
    args = build_args(manifest, base_refs)
    digests.mkdir(parents=True, exist_ok=True)
    arch = platform.machine()
    pushed = []
    for target in wanted:
        metadata = digests / f".{target}-{arch}.json"
        output, options = push_options(prefix, target, metadata)
        buildx.build("Dockerfile.runtime", target, build_args=args, ca=ca, output=output,
                     options=options, name=f"image {target} (push)")
        digest = json.loads(metadata.read_text())["containerimage.digest"]
        metadata.unlink()
        (digests / f"{target}-{arch}").write_text(digest + "\n")
        pushed.append(f"{prefix}-{target}@{digest}")
    return pushed


def build(wanted: list[str], manifest: dict, *, offline: bool, ca: Path) -> list[str]:
    missing = sorted(set(wanted) - set(stages()))
    if missing:
        fail(f"Dockerfile.runtime has no stage {', '.join(missing)}")
    base_refs = {key: bases.ensure(key, offline=offline) for key in {TARGETS[t] for t in wanted}}
    args = build_args(manifest, base_refs)
    for target in wanted:
        buildx.build("Dockerfile.runtime", target, build_args=args, ca=ca, tag=tag(target),
                     name=f"image {target}")
    return [tag(t) for t in wanted]
