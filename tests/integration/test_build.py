"""Dockerfile.build as a user meets it: a bad sdist hash stops it; no CA or secret in a layer."""
from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from pip._vendor import certifi as pip_certifi

from cli import bases, buildx, wheelhouse
from cli.versions import load
from tests.support import ROOT

PEM = re.compile(rb"-----BEGIN CERT" rb"IFICATE-----\r?\n(.+?)-----END CERT" rb"IFICATE-----", re.S)


def buildx_run(context: Path, target: str, ca: Path, *extra: str, args: dict | None = None,
               timeout: int = 3600):
    build_args = {"BUILD_BASE": bases.ensure(wheelhouse.BUILD_BASE), **(args or {})}
    command = buildx.command_line("Dockerfile.build", target, build_args=build_args, ca=ca,
                                  extra=list(extra), context=context)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def test_wrong_sdist_hash_stops_the_build_with_a_clear_message(tmp_path):
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy(ROOT / "Dockerfile.build", context)
    shutil.copytree(ROOT / "docker", context / "docker")
    pinned = load()["HFTBACKTEST_SDIST_SHA256"]
    wrong = "0" * 64
    versions = context / "docker" / "versions.env"
    versions.write_text(versions.read_text().replace(pinned, wrong))

    done = buildx_run(context, "source", buildx.SYSTEM_CA_BUNDLE)

    assert done.returncode != 0
    assert f"sha256 mismatch for hftbacktest-{load()['HFTBACKTEST_VERSION']}.tar.gz" in done.stdout + done.stderr
    assert f"downloaded {pinned}, pinned {wrong}" in done.stdout + done.stderr


def certificates(data: bytes) -> set[bytes]:
    return {b"".join(body.split()) for body in PEM.findall(data)}


def layer_files(client, image: str, scratch: Path):
    """Yield (path, bytes) for every regular file in every layer of a local image."""
    saved = scratch / "image.tar"
    with saved.open("wb") as sink:
        for chunk in client.images.get(image).save(named=True):
            sink.write(chunk)
    with tarfile.open(saved) as outer:
        for member in outer.getmembers():
            if not member.isfile():
                continue
            try:
                layer = tarfile.open(fileobj=outer.extractfile(member))
            except tarfile.ReadError:
                continue  # a config or manifest, not a layer
            with layer:
                for entry in layer.getmembers():
                    if entry.isfile():
                        yield entry.name.removeprefix("./"), layer.extractfile(entry).read()
    saved.unlink()


@pytest.fixture(scope="module")
def canary_bundle(tmp_path_factory) -> tuple[Path, bytes]:
    """The host's CA bundle plus a freshly made certificate no image could hold by chance."""
    folder = tmp_path_factory.mktemp("ca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=hftlive secret canary", "-keyout", str(folder / "key.pem"),
                    "-out", str(folder / "canary.pem")], check=True, capture_output=True)
    canary = (folder / "canary.pem").read_bytes()
    bundle = folder / "bundle.pem"
    bundle.write_bytes(buildx.SYSTEM_CA_BUNDLE.read_bytes() + b"\n" + canary)
    return bundle, next(iter(certificates(canary)))


def test_no_layer_holds_the_ca_secret(client, canary_bundle, manifest, tmp_path):
    bundle, canary = canary_bundle
    tag = "hftlive-test/secret-scan"
    # toolchain, source and wheelhouse rebuilt with the canary in the secret; the wheels stage
    # (an hour of compiling per rebuild) comes from the real build's cache, which ran with the
    # host's bundle: there the check is that none of the host's private CAs is in a layer.
    pythons = {"PYTHON_VERSIONS": " ".join(f"3.{t[3:]}" for t in manifest["python_tags"])}
    built = [
        buildx_run(ROOT, "source", bundle, "--no-cache", "--tag", f"{tag}:source", "--load"),
        buildx_run(ROOT, "wheels", bundle, "--tag", f"{tag}:wheels", "--load", args=pythons),
        buildx_run(ROOT, "wheelhouse", bundle, "--no-cache-filter", "wheelhouse",
                   "--tag", f"{tag}:wheelhouse", "--load", args=pythons),
    ]
    for done in built:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    images = [f"{tag}:source", f"{tag}:wheels", f"{tag}:wheelhouse"] + [
        b.local for b in bases.BASES.values() if client.images.list(name=b.local)]

    secret = certificates(bundle.read_bytes())
    public: set[bytes] = set()
    holders = []
    for image in images:
        config = client.images.get(image).attrs["Config"]
        assert not any("/run/secrets" in value or "BEGIN CERT" "IFICATE" in value
                       for value in (config.get("Env") or [])), f"{image}: the secret is in its env"
        for path, data in layer_files(client, image, tmp_path):
            assert "run/secrets/" not in path, f"{image}: a secret mount left {path}"
            if buildx.PEM_CERTIFICATE in data:
                found = certificates(data)
                if path.startswith("usr/share/ca-certificates/mozilla/"):
                    public |= found  # Debian's public store, from the ca-certificates package
                holders.append((image, path, found))
    # Public roots: Debian's store in the image, and Mozilla's as certifi ships it in pip
    # (taken from this test's own pip, not from the image, so the image cannot vouch for itself).
    public |= certificates(Path(pip_certifi.where()).read_bytes())
    assert canary in secret and canary not in public
    # What only the secret holds (the intercepting proxy's CA, the canary) must be nowhere.
    private = secret - public
    leaks = [f"{image}: {path}" for image, path, found in holders if found & private]
    for stage in ("source", "wheels", "wheelhouse"):
        client.images.remove(f"{tag}:{stage}", force=True)
    assert leaks == []
