"""Release CI as far as it can be proven without GitHub: cibuildwheel's configuration selects the
builds docker/versions.env asks for, docker/build/cibw stages the patched source the way
Dockerfile.build does, the workflows keep the rules (actions pinned by SHA, least permissions,
no pull_request_target, release steps that call our own scripts), and `./hftlive release`
assembles what a release attaches."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from cli import images, versions
from cli.cibw import overrides
from tests.support import ROOT
from tests.support.commands import executables, fake_sdist, hftlive, one_line_patch
from tests.unit.test_versions import runtime_pins

BUILD = ROOT / "docker" / "build"
WORKFLOWS = ROOT / ".github" / "workflows"
VENV_BIN = Path(sys.executable).parent


def cibw(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BUILD / "cibw"), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", **env})


def pinned_versions(tmp_path: Path, **changes: str) -> Path:
    """docker/versions.env with some values changed (pins reads the last line of a key)."""
    path = tmp_path / "versions.env"
    path.write_text(versions.VERSIONS_FILE.read_text() + "".join(f'{k}="{v}"\n' for k, v in changes.items()))
    return path


@pytest.mark.parametrize("pythons, env, arches", [
    (None, {}, ("x86_64", "aarch64")),   # exactly the pinned CPythons, on both architectures
    ("3.12 3.13", {"CIBW_ARCHS": "aarch64"}, ("aarch64",)),   # versions.env's, the runner's
], ids=["pinned", "versions-env-and-runner"])
def test_identifiers_follow_the_pins_and_the_runner_architecture(tmp_path, pythons, env, arches):
    if pythons:
        env = {**env, "HFTLIVE_VERSIONS": str(pinned_versions(tmp_path, PYTHON_VERSIONS=pythons))}
    done = cibw("identifiers", **env)
    assert done.returncode == 0, done.stderr
    wanted = (pythons or versions.load()["PYTHON_VERSIONS"]).split()
    expected = [f"cp{v.replace('.', '')}-manylinux_{arch}" for arch in arches for v in wanted]
    assert done.stdout.split() == expected


@pytest.fixture
def fake_cibuildwheel(tmp_path: Path) -> dict:
    """A stand-in for cibuildwheel that records what it was given, and a stand-in sdist."""
    record = tmp_path / "record.json"
    bin_dir = executables(tmp_path / "bin", cibuildwheel=f"""#!{sys.executable}
import json, os, sys
from pathlib import Path
keys = ("CIBW_BUILD", "CIBW_MANYLINUX_X86_64_IMAGE", "MATURIN_PEP517_ARGS", "HFTLIVE_POLICY",
        "HFTLIVE_RUST_MIN", "HFTLIVE_RUST_TOOLCHAIN", "CARGO_PROFILE_RELEASE_LTO")
Path({str(record)!r}).write_text(json.dumps({{
    "args": sys.argv[1:], "env": {{k: os.environ.get(k) for k in keys}},
    "files": sorted(str(p) for p in Path.cwd().rglob("*") if p.is_file()),
    "constraints": Path("build-constraints.txt").read_text(),
    "pyproject": Path("hftbacktest/pyproject.toml").read_text()}}))
""")
    fetch = fake_sdist(tmp_path, {"pyproject.toml": 'version = "9.9.9"\n'})
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "0001-label.patch").write_text(
        one_line_patch("pyproject.toml", 'version = "9.9.9"', 'version = "9.9.9+hftlive"'))
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FETCH_SDIST": str(fetch), "PATCHES": str(patches),
           "HFTLIVE_VERSIONS": str(pinned_versions(tmp_path, HFTBACKTEST_VERSION="9.9.9"))}
    return {"env": env, "record": record, "out": tmp_path / "out"}


def test_build_stages_the_patched_source_and_feeds_the_pins(fake_cibuildwheel):
    pins = versions.load()
    out = str(fake_cibuildwheel["out"])
    done = cibw("build", out, "--only", "cp311-manylinux_x86_64", **fake_cibuildwheel["env"])
    assert done.returncode == 0, done.stderr
    seen = json.loads(fake_cibuildwheel["record"].read_text())
    assert seen["args"] == ["--config-file", str(ROOT / "docker" / "cibuildwheel.toml"),
                            "--output-dir", out, "--only", "cp311-manylinux_x86_64", "hftbacktest"]
    # The project cibuildwheel copies into its container: the patched sdist and our two scripts.
    names = {Path(f).name for f in seen["files"]}
    assert {"pyproject.toml", "wheel_check.py", "ensure-rust", "build-constraints.txt"} <= names
    assert seen["pyproject"] == 'version = "9.9.9+hftlive"\n'
    # maturin's pin for the build; the wheelhouse's runtime pins, per CPython, for the test step
    lines = seen["constraints"].splitlines()
    assert lines[0] == f"maturin=={pins['MATURIN_VERSION']}"
    expected = [f'{pin}; python_version == "{v}"' for v in pins["PYTHON_VERSIONS"].split()
                for pin in runtime_pins(pins, v)]
    assert lines[1:] == expected and any("3.14" in l for l in lines)
    env = seen["env"]
    assert env["CIBW_BUILD"].split() == [f"cp{v.replace('.', '')}-*" for v in pins["PYTHON_VERSIONS"].split()]
    assert env["CIBW_MANYLINUX_X86_64_IMAGE"] == env["HFTLIVE_POLICY"] == pins["MANYLINUX_POLICY"]
    assert env["MATURIN_PEP517_ARGS"] == f"--features {pins['HFTBACKTEST_FEATURES']} --compatibility {pins['MANYLINUX_POLICY']}"
    assert (env["HFTLIVE_RUST_MIN"], env["HFTLIVE_RUST_TOOLCHAIN"]) == (pins["RUST_MIN_VERSION"], pins["RUSTUP_TOOLCHAIN"])
    assert env["CARGO_PROFILE_RELEASE_LTO"] == (None if pins["WHEEL_LTO"] == "fat" else "thin")


def test_a_patch_that_does_not_apply_stops_the_build_before_cibuildwheel(fake_cibuildwheel, tmp_path):
    (tmp_path / "patches" / "0002-stale.patch").write_text(
        one_line_patch("pyproject.toml", 'version = "1.0"', 'version = "2.0"'))
    done = cibw("build", str(fake_cibuildwheel["out"]), **fake_cibuildwheel["env"])
    assert done.returncode != 0
    assert "0002-stale.patch does not apply" in done.stderr
    assert not fake_cibuildwheel["record"].exists(), "cibuildwheel never ran"


def test_the_local_overrides_are_the_ones_the_readme_lists():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Releases", 1)[1].split("\n## ", 1)[0]
    for name in overrides("IMAGE", Path("/ca.pem")):
        assert f"`{name}`" in section, f"README's Releases section does not list the override {name}"


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def every_step(flow: dict):
    for job_name, job in flow["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


def test_every_action_is_pinned_by_commit_and_says_its_version():
    lines = [(f.name, l) for f in sorted(WORKFLOWS.glob("*.yml")) for l in f.read_text().splitlines()]
    uses = [(name, l.strip()) for name, l in lines if re.match(r"\s*(- )?uses:", l)]
    assert len(uses) >= 10
    for name, line in uses:
        assert re.fullmatch(r"(- )?uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*", line), f"{name}: {line}"


def test_least_privilege_and_no_pull_request_target():
    for path in sorted(WORKFLOWS.glob("*.yml")):
        flow = workflow(path.name)
        triggers = flow[True]   # YAML 1.1 reads the key `on` as True
        assert "pull_request_target" not in triggers, path.name
        assert flow["permissions"] == {}, f"{path.name}: no permissions by default"
        for job_name, job in flow["jobs"].items():
            assert "permissions" in job, f"{path.name}: job {job_name} says what it needs"
            assert "write-all" not in str(job["permissions"])
            assert "timeout-minutes" in job, f"{path.name}: job {job_name} is bounded in time"
        for job_name, step in every_step(flow):
            if "actions/checkout@" in step.get("uses", ""):
                assert step["with"]["persist-credentials"] is False, f"{path.name}: {job_name}"


def test_release_builds_with_our_cibuildwheel_config_on_native_runners_of_both_architectures():
    flow = workflow("release.yml")
    matrix = flow["jobs"]["wheels"]["strategy"]["matrix"]["include"]
    assert {(m["arch"], "arm" in m["runner"]) for m in matrix} == {("x86_64", False), ("aarch64", True)}
    runs = [s.get("run", "") for _, s in every_step(flow)]
    assert any(r.strip() == "docker/build/cibw build dist/wheels" for r in runs)
    assert any("./hftlive images --push" in r for r in runs)
    assert any(r.startswith("./hftlive release ") for r in runs)
    attested = [s for _, s in every_step(flow) if "attest-build-provenance@" in s.get("uses", "")]
    assert {tuple(sorted(s["with"])) for s in attested} == {
        ("push-to-registry", "subject-digest", "subject-name"), ("subject-checksums",)}


def test_ci_runs_the_unit_tier_then_dot_ci_run():
    flow = workflow("ci.yml")
    assert flow["jobs"]["unit"]["steps"][-1]["run"] == "./hftlive test -m unit"
    assert flow["jobs"]["full"]["needs"] == "unit"
    assert any("bash .ci/run" in s.get("run", "") for s in flow["jobs"]["full"]["steps"])


def test_images_push_by_digest_with_sbom_and_provenance(tmp_path):
    output, options = images.push_options("registry.example/acme/hftlive", "service", tmp_path / "m.json")
    assert output == "type=image,name=registry.example/acme/hftlive-service,push-by-digest=true,name-canonical=true,push=true"
    assert options == ["--sbom=true", "--provenance=mode=max", "--metadata-file", str(tmp_path / "m.json")]


def fake_artifacts(root: Path, arches=("x86_64", "aarch64"), label="hftlive") -> Path:
    version = versions.load()["HFTBACKTEST_VERSION"]
    for arch in arches:
        ours = f"hftbacktest-{version}+hftlive-cp311-abi3-manylinux_2_28_{arch}.whl"
        wheel = root / f"wheels-{arch}" / ours.replace("+hftlive", f"+{label}")
        wheel.parent.mkdir(parents=True)
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr("hftbacktest/__init__.py", "")
        house = root / f"wheelhouse-{arch}"
        house.mkdir(parents=True)
        connector = house / f"hftlive-connector-linux-{arch}"
        connector.write_bytes(f"connector for {arch}".encode())
        numpy = f"numpy-2.2.6-cp311-cp311-manylinux_2_28_{arch}.whl"
        manifest = {"wheels": [{"file": ours, "sha256": "a" * 64}],
                    "runtime_wheels": [{"file": numpy, "sha256": "b" * 64}],
                    "connector": {"file": "hftlive-connector",
                                  "sha256": hashlib.sha256(connector.read_bytes()).hexdigest()}}
        (house / "manifest.json").write_text(json.dumps(manifest))
        with tarfile.open(house / f"hftlive-wheelhouse-linux-{arch}.tar.gz", "w:gz") as tar:
            tar.add(house / "manifest.json", arcname="wheels/manifest.json")
    return root


def test_release_assembles_files_sums_and_a_valid_sbom(tmp_path):
    out = tmp_path / "release"
    done = hftlive("release", str(fake_artifacts(tmp_path / "artifacts")), str(out), "--version", "v1.2.0")
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in out.iterdir())
    version = versions.load()["HFTBACKTEST_VERSION"]
    assert names == sorted(["SHA256SUMS", "hftlive-v1.2.0.cdx.json"] + [
        n for arch in ("x86_64", "aarch64") for n in (
            f"hftbacktest-{version}+hftlive-cp311-abi3-manylinux_2_28_{arch}.whl",
            f"hftlive-connector-linux-{arch}", f"hftlive-wheelhouse-linux-{arch}.tar.gz")])
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == len(names) - 1, check.stdout
    text = (out / "hftlive-v1.2.0.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(text) is None
    purls = {c.get("purl") for c in json.loads(text)["components"]}
    assert f"pkg:pypi/hftbacktest@{version}%2Bhftlive" in purls and "pkg:pypi/numpy@2.2.6" in purls
    assert "sha256sum -c SHA256SUMS" in (tmp_path / "release.md").read_text()


@pytest.mark.parametrize("arches, label, message", [
    (("x86_64",), "hftlive", "wheel for aarch64"),
    (("x86_64", "aarch64"), "other", "wheel for x86_64"),
])
def test_release_refuses_a_missing_architecture_or_a_wheel_that_is_not_ours(tmp_path, arches, label, message):
    done = hftlive("release", str(fake_artifacts(tmp_path / "a", arches, label)), str(tmp_path / "r"), "--version", "v1")
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_the_image_tag_step_joins_exactly_its_two_digests(tmp_path):
    """publish-images' shell step, run with stand-ins for docker and jq: `service` must not pick
    up `service-mock`'s digests."""
    step = next(s for _, s in every_step(workflow("release.yml")) if s.get("id") == "tag")
    digests = tmp_path / "digests"
    digests.mkdir()
    for target in ("service", "service-mock", "connector", "simulator"):
        for arch in ("x86_64", "aarch64"):
            (digests / f"{target}-{arch}").write_text(f"sha256:{target}-{arch}\n")
    calls, output = tmp_path / "calls", tmp_path / "output"
    bin_dir = executables(
        tmp_path / "bin",
        docker=f"#!/bin/sh\necho \"$*\" >> {calls}\n"
               "[ \"$3\" = inspect ] && echo '{\"digest\": \"sha256:index\"}'\nexit 0\n",
        jq=f"#!{sys.executable}\nimport json, sys\nprint(json.load(sys.stdin)['digest'])\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "REGISTRY": "registry.example",
           "OWNER": "Acme", "TARGET": "service", "VERSION": "v1.2.0", "GITHUB_OUTPUT": str(output)}
    done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    name = "registry.example/acme/hftlive-service"
    assert calls.read_text().splitlines()[0] == (
        f"buildx imagetools create -t {name}:v1.2.0 {name}@sha256:service-x86_64 {name}@sha256:service-aarch64")
    assert output.read_text().splitlines() == [f"name={name}", "digest=sha256:index"]
